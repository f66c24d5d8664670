import FerryCore
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// gc's trash and fence for blobs in an object store, on PostgreSQL: every change to the
/// trash and the epoch happens under the gc advisory lock held exclusively, which uploads'
/// records hold shared; a session advisory lock lets one gc run of the cluster delete at a
/// time (docs/architecture.md, "gc on S3").
extension PostgresMetadataStore {
    /// Key of the session advisory lock a gc run holds while it deletes objects.
    static let gcRunLock: Int64 = 0x6665_7272_795f_6772  // "ferry_gr"

    public func blobEpoch() async throws -> Int64 {
        try await read { try await Self.epoch($0, logger: logger) }
    }

    static func epoch(_ connection: PostgresConnection, logger: Logger) async throws -> Int64 {
        guard let epoch = try await PostgresDatabase.scalar(connection, "SELECT epoch FROM blob_gc WHERE id = 1", as: Int64.self, logger: logger) else {
            throw StoreRules.blobEpochMissing
        }
        return epoch
    }

    /// Refuses a record whose objects may have been deleted since they were placed: a hash in
    /// the trash, or any delete acknowledged after `epoch` was read. One statement, so both
    /// are read from one snapshot.
    static func checkBlobFence(_ connection: PostgresConnection, _ hashes: [ContentHash], placedSince epoch: Int64, logger: Logger) async throws {
        guard let row = try await PostgresDatabase.row(connection, """
            SELECT (SELECT epoch FROM blob_gc WHERE id = 1) AS epoch,
                   (SELECT sha256 FROM blob_trash WHERE sha256 = ANY(\(hashes.map(PostgresRows.bytes))::bytea[]) LIMIT 1) AS trashed
            """, logger: logger) else { throw PostgresStoreError("the blob fence query answered no row") }
        guard let now = try row.get("epoch", as: Int64?.self) else {
            throw StoreRules.blobEpochMissing
        }
        if now > epoch { throw StoreRules.collected(hashes) }
        if let trashed = PostgresRows.hash(try row.get("trashed", as: ByteBuffer?.self)) { throw StoreRules.collected([trashed]) }
    }

    public func trashGarbage(grace: TimeInterval, listed: [ContentHash]) async throws -> GarbageReport {
        let cutoff = Date().addingTimeInterval(-grace)
        return try await write { connection in
            let (removed, report) = try await Self.deleteGarbageRows(connection, listed: listed, cutoff: cutoff, logger: logger)
            if !removed.isEmpty {
                try await connection.query("""
                    INSERT INTO blob_trash (sha256) SELECT unnest(\(removed.map(PostgresRows.bytes))::bytea[]) ON CONFLICT DO NOTHING
                    """, logger: logger)
            }
            return report
        }
    }

    public func settleBlobTrash() async throws -> (delete: [ContentHash], kept: Int) {
        try await write { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.gcLock))", logger: logger)
            let kept = try await PostgresDatabase.count(connection, """
                DELETE FROM blob_trash t WHERE EXISTS (SELECT 1 FROM chunk c WHERE c.sha256 = t.sha256) RETURNING 1
                """, logger: logger)
            var hashes: [ContentHash] = []
            for try await bytes in try await connection.query("SELECT sha256 FROM blob_trash ORDER BY sha256", logger: logger).decode(ByteBuffer.self) {
                if let hash = PostgresRows.hash(bytes) { hashes.append(hash) }
            }
            return (hashes, kept)
        }
    }

    public func finishBlobTrash(_ hashes: [ContentHash]) async throws {
        try await write { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.gcLock))", logger: logger)
            try await connection.query("DELETE FROM blob_trash WHERE sha256 = ANY(\(hashes.map(PostgresRows.bytes))::bytea[])", logger: logger)
            try await connection.query("UPDATE blob_gc SET epoch = epoch + 1 WHERE id = 1", logger: logger)
        }
    }

    /// A session advisory lock on one pooled connection, held for the whole run and given up
    /// at its end; PostgreSQL drops it with a session that ends, and `confirm` then fails, so
    /// a run that lost its session deletes nothing more.
    public func withGarbageCollectionRun<T: Sendable>(_ body: (_ confirm: @Sendable () async throws -> Void) async throws -> T) async throws -> T {
        let logger = self.logger
        return try await read { connection in
            guard try await PostgresDatabase.scalar(connection, "SELECT pg_try_advisory_lock(\(Self.gcRunLock))", as: Bool.self, logger: logger) == true else {
                throw MetadataError.stateConflict("another gc is running on this cluster; try again when it has finished")
            }
            let result: T
            do {
                result = try await body({ try await Self.confirmSession(connection, logger: logger) })
            } catch {
                await Self.releaseRunLock(connection, logger: logger)
                throw error
            }
            await Self.releaseRunLock(connection, logger: logger)
            return result
        }
    }

    /// Proves the session holding the run lock is still there. A query sent on a connection
    /// the server has already closed (the backend terminated, PostgreSQL restarted) never
    /// answers in postgres-nio, so a closed connection is refused before asking.
    static func confirmSession(_ connection: PostgresConnection, logger: Logger) async throws {
        guard !connection.isClosed else { throw PostgresStoreError("gc lost its PostgreSQL session, and with it the run lock; it stops here") }
        try await connection.query("SELECT 1", logger: logger)
    }

    /// Gives the run lock up, whether the run ended well or not: a lock left on a pooled
    /// connection would refuse every later gc. A connection that cannot unlock is closed,
    /// which releases the lock too.
    static func releaseRunLock(_ connection: PostgresConnection, logger: Logger) async {
        guard !connection.isClosed else { return }  // the session, and its lock, are gone already
        do { _ = try await connection.query("SELECT pg_advisory_unlock(\(Self.gcRunLock))", logger: logger) } catch { try? await connection.close() }
    }
}
