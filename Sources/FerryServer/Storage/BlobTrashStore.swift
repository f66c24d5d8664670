import FerryCore
import Foundation

/// The metadata side of gc for blobs in an object store, whose objects are placed before any
/// lock and deleted after gc's transaction (docs/architecture.md, "gc on S3"): the
/// `blob_trash` table, the epoch uploads read before they place objects, and the lock that
/// lets one gc run delete at a time. The file blob store uses none of it.
public protocol BlobTrashStore: Sendable {
    /// The epoch an upload reads before placing its objects; bumped after every batch of
    /// deleted objects. Passed back to `recordChunks(userId:_:placedSince:makeVisible:)`.
    func blobEpoch() async throws -> Int64
    /// `recordChunks`, refusing (`MetadataError.collected`) when a hash is in the trash or
    /// objects were deleted since `epoch` (nil: no fence, the file blob store).
    func recordChunks(userId: Int64, _ chunks: [ChunkRef], placedSince epoch: Int64?,
                      makeVisible: @escaping @Sendable () throws -> [Bool]) async throws -> [Bool]
    /// gc's first phase, in one transaction under the lock uploads record under: decides as
    /// `collectGarbage` does, deletes those chunk rows and puts the hashes (rows and listed
    /// orphans) into the trash instead of removing anything.
    func trashGarbage(grace: TimeInterval, listed: [ContentHash]) async throws -> GarbageReport
    /// Takes out of the trash every hash a chunk row names again (its object stays), and
    /// returns the hashes whose objects are to be deleted.
    func settleBlobTrash() async throws -> (delete: [ContentHash], kept: Int)
    /// After the store acknowledged their deletion: removes `hashes` from the trash and
    /// bumps the epoch, in one transaction.
    func finishBlobTrash(_ hashes: [ContentHash]) async throws
    /// Runs `body` holding the gc run lock (one deleter at a time, across processes and
    /// instances); refuses at once with `MetadataError.stateConflict` when another run holds
    /// it. `body` gets a check to call before each delete: it throws when the lock may have
    /// been lost (a PostgreSQL session that ended).
    func withGarbageCollectionRun<T: Sendable>(_ body: (_ confirm: @Sendable () async throws -> Void) async throws -> T) async throws -> T
}

extension MetadataStore {
    /// `recordChunks` without a fence: the file blob store publishes under the lock gc takes.
    public func recordChunks(userId: Int64, _ chunks: [ChunkRef], makeVisible: @escaping @Sendable () throws -> [Bool]) async throws -> [Bool] {
        try await recordChunks(userId: userId, chunks, placedSince: nil, makeVisible: makeVisible)
    }
}

/// The one row of `blob_gc` is gone: the database was changed by hand.
struct BlobEpochMissing: Error, CustomStringConvertible {
    var description: String { "the blob_gc row (gc's epoch) is missing; the database was changed by hand" }
}

extension StoreRules {
    static let blobEpochMissing = BlobEpochMissing()

    /// Why an upload's record was refused by the gc fence.
    static func collected(_ hashes: [ContentHash]) -> MetadataError {
        .collected("a chunk was being removed by garbage collection while it was uploaded (\(hashes.first?.hex ?? "?")); upload it again")
    }
}
