import FerryCore
import Foundation

/// What one pass over a folder did and what it left undone.
public struct PassReport: Sendable, Codable, Equatable {
    /// Passes run (a sync runs passes until the folder is settled). Not in the JSON, which
    /// older `ferry status` must keep reading.
    public var passes = 0
    /// Of those, passes over the paths the watcher and the feed named (`PassScope`); not in the JSON.
    public var scopedPasses = 0
    public var planned = 0
    public var uploadedFiles = 0
    /// Chunk bytes sent to the server (chunks it already had are not sent).
    public var uploadedBytes: Int64 = 0
    public var downloadedFiles = 0
    /// Chunk bytes fetched from the server.
    public var downloadedBytes: Int64 = 0
    /// Chunk bytes copied from other local files instead of downloaded.
    public var reusedLocalBytes: Int64 = 0
    public var deletedRemote = 0
    public var deletedLocal = 0
    public var conflicts = 0
    /// Actions that did not complete this pass (retried by the next one).
    public var deferred = 0
    /// Per path: why it is not in sync.
    public var problems: [String: String] = [:]
    /// Deletes held back by the mass-delete guard, if any.
    public var massDelete: MassDeletePause?
    /// Local files and links outside the folder's selection, not synced (nil without a selection).
    public var outsideSelection: Int?
    /// Synced files removed here, unchanged, because their subtree left the selection.
    public var removedOutsideSelection: Int?
    /// The versions this pass's deletions got on the server (not in the JSON).
    public var remoteDeleteVersions: [Int64] = []

    public init() {}

    /// Something changed on either side.
    public var didWork: Bool { uploadedFiles + downloadedFiles + deletedRemote + deletedLocal + conflicts > 0 }

    /// Everything planned was done, and nothing was made that a next pass must sync.
    public var finishedEverything: Bool { deferred == 0 && problems.isEmpty && conflicts == 0 && massDelete == nil }

    enum CodingKeys: String, CodingKey {
        case planned, conflicts, deferred, problems
        case massDelete = "mass_delete"
        case uploadedFiles = "uploaded_files", uploadedBytes = "uploaded_bytes", downloadedFiles = "downloaded_files"
        case downloadedBytes = "downloaded_bytes", reusedLocalBytes = "reused_local_bytes"
        case deletedRemote = "deleted_remote", deletedLocal = "deleted_local"
        case outsideSelection = "outside_selection", removedOutsideSelection = "removed_outside_selection"
    }
}

extension PassReport {
    mutating func merge(_ other: PassReport) {
        passes += other.passes
        scopedPasses += other.scopedPasses
        planned += other.planned
        uploadedFiles += other.uploadedFiles
        uploadedBytes += other.uploadedBytes
        downloadedFiles += other.downloadedFiles
        downloadedBytes += other.downloadedBytes
        reusedLocalBytes += other.reusedLocalBytes
        deletedRemote += other.deletedRemote
        deletedLocal += other.deletedLocal
        conflicts += other.conflicts
        if let n = other.removedOutsideSelection { removedOutsideSelection = (removedOutsideSelection ?? 0) + n }
        outsideSelection = other.outsideSelection
        deferred = other.deferred
        massDelete = other.massDelete
    }
}
