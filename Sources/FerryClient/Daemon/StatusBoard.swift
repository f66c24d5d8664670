import FerryCore
import Foundation
import Synchronization

/// One folder as `ferry status` shows it.
public struct FolderStatus: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable { case idle, scanning, syncing, paused, error, offline }
    public var path: String
    public var library: String
    public var state: State
    public var lastError: String?
    public var lastSyncAt: Date?
    public var conflicts: Int
    /// Per path: why it is not in sync.
    public var problems: [String: String]
    public var lastPass: PassReport?
    /// Deletes held back by the mass-delete guard until confirmed.
    public var massDelete: MassDeletePause?
    /// File bytes and files the running pass has still to upload or download (nil from a
    /// daemon older than these fields).
    public var queuedBytes: Int64?
    public var queuedFiles: Int?
    /// File bytes uploaded and downloaded since the daemon started.
    public var transferredBytes: Int64?
    /// When the next try after a failure is due (offline or in error), nil otherwise.
    public var retryAt: Date?

    public init(path: String, library: String) {
        self.path = path
        self.library = library
        self.state = .idle
        self.conflicts = 0
        self.problems = [:]
    }

    enum CodingKeys: String, CodingKey {
        case path, library, state, conflicts, problems
        case lastError = "last_error", lastSyncAt = "last_sync_at", lastPass = "last_pass", massDelete = "mass_delete"
        case queuedBytes = "queued_bytes", queuedFiles = "queued_files", transferredBytes = "transferred_bytes"
        case retryAt = "retry_at"
    }
}

/// The daemon as a whole.
public struct DaemonStatus: Codable, Sendable, Equatable {
    public var server: String
    public var device: String
    public var startedAt: Date
    public var folders: [FolderStatus]

    enum CodingKeys: String, CodingKey {
        case server, device, folders
        case startedAt = "started_at"
    }
}

/// The daemon's live status, readable synchronously from the control-socket thread.
public final class StatusBoard: Sendable {
    private let state: Mutex<DaemonStatus>
    /// Each folder's pass counts, read when a snapshot is taken.
    private let progress = Mutex<[String: TransferProgress]>([:])
    /// Folders whose held mass delete the user confirmed, for their next pass.
    private let confirmed = Mutex<Set<String>>([])

    /// Records a confirmation; false when no such folder is paused.
    public func confirmDeletes(_ folder: String) -> Bool {
        guard snapshot.folders.contains(where: { $0.path == folder && $0.massDelete != nil }) else { return false }
        confirmed.withLock { _ = $0.insert(folder) }
        return true
    }

    /// Takes the confirmation for one pass.
    public func takeConfirmation(_ folder: String) -> Bool {
        confirmed.withLock { $0.remove(folder) != nil }
    }

    public init(server: String, device: String, folders: [FolderConfig]) {
        state = Mutex(DaemonStatus(server: server, device: device, startedAt: Date(),
                                   folders: folders.map { FolderStatus(path: $0.path, library: $0.libraryName) }))
    }

    /// The status now, with each tracked folder's queued and transferred bytes.
    public var snapshot: DaemonStatus {
        var status = state.withLock { $0 }
        let counts = progress.withLock { $0 }.mapValues(\.snapshot)
        for i in status.folders.indices {
            guard let c = counts[status.folders[i].path] else { continue }
            status.folders[i].queuedBytes = c.queuedBytes
            status.folders[i].queuedFiles = c.queuedFiles
            status.folders[i].transferredBytes = c.transferredBytes
        }
        return status
    }

    /// The folders from now on: those kept keep their state, new ones start idle, removed
    /// ones (and their counts) go.
    public func setFolders(_ folders: [FolderConfig]) {
        state.withLock { status in
            let known = Dictionary(status.folders.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
            status.folders = folders.map { f in
                var s = known[f.path] ?? FolderStatus(path: f.path, library: f.libraryName)
                s.library = f.libraryName
                return s
            }
        }
        let kept = Set(folders.map(\.path))
        progress.withLock { $0 = $0.filter { kept.contains($0.key) } }
        confirmed.withLock { $0 = $0.filter { kept.contains($0) } }
    }

    /// Another server or device (after `ferry login`): every folder starts afresh.
    public func reset(server: String, device: String) {
        state.withLock { status in
            status.server = server
            status.device = device
            status.folders = []
        }
        progress.withLock { $0 = [:] }
        confirmed.withLock { $0 = [] }
    }

    /// Shows `folder`'s transfer counts in the status from now on.
    public func track(_ folder: String, _ counts: TransferProgress) {
        progress.withLock { $0[folder] = counts }
    }

    public func update(_ folder: String, _ change: (inout FolderStatus) -> Void) {
        state.withLock { status in
            if let i = status.folders.firstIndex(where: { $0.path == folder }) { change(&status.folders[i]) }
        }
    }
}
