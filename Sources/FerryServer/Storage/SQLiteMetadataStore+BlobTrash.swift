import FerryCore
import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// gc's trash and fence for blobs in an object store, on SQLite: the write lock orders
/// uploads' records against gc's transactions, and an `flock` beside the database lets one
/// process delete at a time (docs/architecture.md, "gc on S3").
extension SQLiteMetadataStore {
    public func blobEpoch() async throws -> Int64 {
        try await pool.read { db in try Self.epoch(db) }
    }

    static func epoch(_ db: Database) throws -> Int64 {
        guard let epoch = try Int64.fetchOne(db, sql: "SELECT epoch FROM blob_gc WHERE id = 1") else {
            throw StoreRules.blobEpochMissing
        }
        return epoch
    }

    /// Refuses a record whose objects may have been deleted since they were placed: a hash in
    /// the trash, or any delete acknowledged after `epoch` was read.
    static func checkBlobFence(_ db: Database, _ hashes: [ContentHash], placedSince epoch: Int64) throws {
        if try Self.epoch(db) > epoch { throw StoreRules.collected(hashes) }
        let trashed = try db.cachedStatement(sql: "SELECT 1 FROM blob_trash WHERE sha256 = ?")
        for hash in hashes where try Bool.fetchOne(trashed, arguments: [hash.data]) ?? false {
            throw StoreRules.collected([hash])
        }
    }

    public func trashGarbage(grace: TimeInterval, listed: [ContentHash]) async throws -> GarbageReport {
        let cutoff = Date().addingTimeInterval(-grace)
        return try await pool.write { db in
            let (removed, report) = try Self.deleteGarbageRows(db, listed: listed, cutoff: cutoff)
            let insert = try db.cachedStatement(sql: "INSERT OR IGNORE INTO blob_trash (sha256) VALUES (?)")
            for hash in removed { try insert.execute(arguments: [hash.data]) }
            return report
        }
    }

    public func settleBlobTrash() async throws -> (delete: [ContentHash], kept: Int) {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM blob_trash WHERE sha256 IN (SELECT sha256 FROM chunk)")
            let kept = db.changesCount
            let hashes = try Data.fetchAll(db, sql: "SELECT sha256 FROM blob_trash ORDER BY sha256").compactMap { ContentHash(bytes: $0) }
            return (hashes, kept)
        }
    }

    public func finishBlobTrash(_ hashes: [ContentHash]) async throws {
        try await pool.write { db in
            let delete = try db.cachedStatement(sql: "DELETE FROM blob_trash WHERE sha256 = ?")
            for hash in hashes { try delete.execute(arguments: [hash.data]) }
            try db.execute(sql: "UPDATE blob_gc SET epoch = epoch + 1 WHERE id = 1")
        }
    }

    /// An exclusive `flock` on `<database>-gc.lock`: the server and an admin command are
    /// different processes, and the kernel releases the lock with a process that dies.
    public func withGarbageCollectionRun<T: Sendable>(_ body: (_ confirm: @Sendable () async throws -> Void) async throws -> T) async throws -> T {
        let lockPath = pool.path + "-gc.lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw DataDirectoryError("cannot open '\(lockPath)': \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            throw MetadataError.stateConflict("another gc is running on this data directory; try again when it has finished")
        }
        return try await body({})
    }
}
