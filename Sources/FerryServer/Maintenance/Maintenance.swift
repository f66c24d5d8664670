import FerryCore
import Foundation
import Logging

/// What `ferry-server check` found.
public struct CheckReport: Sendable, Equatable {
    public var checked = 0
    public var missing: [ContentHash] = []
    public var corrupt: [ContentHash] = []
    public var wrongSize: [ContentHash] = []
    /// Usage counters that differed from the sum of the user's chunks, now set right.
    public var usageRepaired: [UsageDrift] = []
    public var isClean: Bool { missing.isEmpty && corrupt.isEmpty && wrongSize.isEmpty && usageRepaired.isEmpty }
}

/// Offline-safe upkeep shared by `serve` (recovery on start) and the admin commands.
public enum Maintenance {
    /// Settles what a crash may have left: staged uploads are removed (no row references
    /// them) and blobs in the gc trash go back into place if their row survived. With
    /// stores shared by several instances only staged files older than `stagingOlderThan`
    /// seconds go: younger ones may be another instance's uploads in flight.
    public static func recover(store: any MetadataStore, blobs: any BlobStore, stagingOlderThan: Int64 = 0, logger: Logger) async throws {
        let staged = try blobs.sweepStaging(olderThan: stagingOlderThan)
        var known: Set<ContentHash> = []
        for hash in try blobs.trashContents() where try await store.chunkExists(hash) { known.insert(hash) }
        let purged = try blobs.emptyTrash { known.contains($0) }
        if staged + purged > 0 || !known.isEmpty {
            logger.notice("recovered after an unclean stop", metadata: ["staged_removed": "\(staged)", "trash_purged": "\(purged)", "trash_restored": "\(known.count)"])
        }
    }

    /// Verifies that every chunk a version references exists and re-hashes to its name, and
    /// sets right each user's usage counter that differs from the sum of their chunks.
    public static func check(store: any MetadataStore, blobs: any BlobStore, progress: (Int, Int) -> Void = { _, _ in }) async throws -> CheckReport {
        let referenced = try await store.referencedChunks()
        var report = CheckReport()
        report.usageRepaired = try await store.reconcileUsage()
        for (hash, size) in referenced.sorted(by: { $0.key < $1.key }) {
            do {
                let (actualSize, intact) = try await blobs.verify(hash)
                if !intact { report.corrupt.append(hash) } else if actualSize != size { report.wrongSize.append(hash) }
            } catch BlobError.notFound {
                report.missing.append(hash)
            }
            report.checked += 1
            progress(report.checked, referenced.count)
        }
        return report
    }

    /// Deletes chunks no version references, keeping those uploaded within `grace` seconds
    /// (an upload whose commit has not arrived yet).
    public static func collectGarbage(store: any MetadataStore, blobs: any BlobStore, grace: TimeInterval) async throws -> GarbageReport {
        if let objects = blobs as? any FencedBlobStore {
            return try await collectObjects(store: store, blobs: objects, grace: grace) { try await objects.delete($0) }
        }
        let listed = try await blobs.storedHashes()
        let report = try await store.collectGarbage(grace: grace, listed: listed) { try blobs.moveToTrash($0) }
        _ = try blobs.emptyTrash { _ in false }
        return report
    }

    /// Keys per DeleteObjects request (S3's limit).
    static let deleteBatch = 1000

    /// gc for an object store (docs/architecture.md, "gc on S3"), holding the gc run lock: the
    /// decision puts hashes into the trash table in one transaction, then the whole trash
    /// (with what an interrupted run left) is re-checked and deleted in batches, each taken
    /// out of the trash, and the epoch bumped, only once the store acknowledged it. `delete`
    /// is the store's DeleteObjects (tests make it fail).
    static func collectObjects(store: any MetadataStore, blobs: any BlobStore, grace: TimeInterval,
                               delete: @Sendable ([ContentHash]) async throws -> Void) async throws -> GarbageReport {
        try await store.withGarbageCollectionRun { confirm in
            let listed = try await blobs.storedHashes()
            var report = try await store.trashGarbage(grace: grace, listed: listed)
            let (pending, kept) = try await store.settleBlobTrash()
            report.keptFromTrash = kept
            var start = 0
            while start < pending.count {
                let batch = Array(pending[start..<min(start + deleteBatch, pending.count)])
                try await confirm()
                do { try await delete(batch) } catch {
                    throw BlobError.io("deleting \(batch.count) objects failed (\(error)); \(pending.count - start) stay in gc's trash and the next gc deletes them")
                }
                try await store.finishBlobTrash(batch)
                report.objectsDeleted += batch.count
                start += batch.count
            }
            return report
        }
    }
}
