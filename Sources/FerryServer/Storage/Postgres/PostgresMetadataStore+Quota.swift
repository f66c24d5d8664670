import FerryCore
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Quotas on PostgreSQL: an upload of a user with a quota locks that user's row before it
/// checks, so two instances cannot both see room for what only one fits; the counter moves
/// by an atomic UPDATE in the transaction that adds or releases the holds (docs/architecture.md, "Quotas").
extension PostgresMetadataStore {
    public func setQuota(userId: Int64, bytes: Int64?) async throws {
        try await write { connection in
            let changed = try await PostgresDatabase.count(connection, "UPDATE ferry_user SET quota_bytes = \(bytes) WHERE id = \(userId) RETURNING 1",
                                                           logger: logger)
            guard changed == 1 else { throw MetadataError.notFound("user") }
        }
    }

    public func storageAccount(userId: Int64) async throws -> StorageAccount? {
        try await read { connection in
            try await PostgresDatabase.row(connection, "SELECT used_bytes, quota_bytes FROM ferry_user WHERE id = \(userId)", logger: logger)
                .map { StorageAccount(usedBytes: try $0.get("used_bytes"), quotaBytes: try $0.get("quota_bytes")) }
        }
    }

    public func storageAccounts() async throws -> [String: StorageAccount] {
        try await read { connection in
            var out: [String: StorageAccount] = [:]
            for row in try await PostgresDatabase.rows(connection, "SELECT username, used_bytes, quota_bytes FROM ferry_user", logger: logger) {
                out[try row.get("username")] = StorageAccount(usedBytes: try row.get("used_bytes"), quotaBytes: try row.get("quota_bytes"))
            }
            return out
        }
    }

    /// Under the gc lock held exclusively: no upload records and no gc releases while the
    /// sums are taken and the counters set.
    public func reconcileUsage() async throws -> [UsageDrift] {
        try await write { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.gcLock))", logger: logger)
            let rows = try await PostgresDatabase.rows(connection, """
                SELECT f.id, f.username, f.used_bytes, coalesce(p.bytes, 0)::bigint AS actual FROM ferry_user f
                LEFT JOIN (SELECT uc.user_id, sum(c.size) AS bytes FROM user_chunk uc JOIN chunk c ON c.sha256 = uc.sha256 GROUP BY uc.user_id) p
                  ON p.user_id = f.id
                WHERE f.used_bytes <> coalesce(p.bytes, 0) ORDER BY f.username
                """, logger: logger)
            var drifts: [UsageDrift] = []
            for row in rows {
                let id: Int64 = try row.get("id"), actual: Int64 = try row.get("actual")
                try await connection.query("UPDATE ferry_user SET used_bytes = \(actual) WHERE id = \(id)", logger: logger)
                drifts.append(UsageDrift(username: try row.get("username"), counted: try row.get("used_bytes"), actual: actual))
            }
            return drifts
        }
    }

    /// `recordChunks`' check, before any blob is made visible. A user with a quota has their
    /// row locked first (`FOR UPDATE`, held to the commit), so their uploads check and add one
    /// at a time across instances; without one nothing is locked here and the counter's
    /// UPDATE at the end is the only step that orders them.
    static func checkQuota(_ connection: PostgresConnection, userId: Int64, _ chunks: [ChunkRef], logger: Logger) async throws {
        let unlocked = try await PostgresDatabase.scalar(connection, "SELECT quota_bytes FROM ferry_user WHERE id = \(userId)",
                                                         as: Int64?.self, logger: logger)
        guard unlocked ?? nil != nil else { return }
        // Read again under the lock: the quota may have changed in between.
        guard let row = try await PostgresDatabase.row(connection, "SELECT used_bytes, quota_bytes FROM ferry_user WHERE id = \(userId) FOR UPDATE",
                                                       logger: logger),
              let quota = try row.get("quota_bytes", as: Int64?.self)
        else { return }
        var sizes: [ContentHash: Int64] = [:]
        for c in chunks { sizes[c.sha256] = c.size }
        let hashes = Array(sizes.keys)
        var held = Set<ContentHash>()
        for try await bytes in try await connection.query("""
            SELECT sha256 FROM user_chunk WHERE user_id = \(userId) AND sha256 = ANY(\(hashes.map(PostgresRows.bytes))::bytea[])
            """, logger: logger).decode(ByteBuffer.self) {
            if let hash = PostgresRows.hash(bytes) { held.insert(hash) }
        }
        let adding = sizes.reduce(Int64(0)) { $0 + (held.contains($1.key) ? 0 : $1.value) }
        try QuotaRules.check(quota: quota, used: try row.get("used_bytes"), adding: adding)
    }

    /// Moves a user's counter by `bytes` (negative when holds are released).
    static func addUsage(_ connection: PostgresConnection, userId: Int64, _ bytes: Int64, logger: Logger) async throws {
        guard bytes != 0 else { return }
        try await connection.query("UPDATE ferry_user SET used_bytes = used_bytes + \(bytes) WHERE id = \(userId)", logger: logger)
    }

    /// Every chunk some live file version references, with its size, and per user the chunks
    /// the versions in their libraries (owned, or shared with them to write) reference: for gc.
    static func referencedByUser(_ connection: PostgresConnection, logger: Logger) async throws
        -> (all: [ContentHash: Int64], byUser: [Int64: Set<ContentHash>]) {
        var all: [ContentHash: Int64] = [:]
        var byUser: [Int64: Set<ContentHash>] = [:]
        for try await (owner, packed) in try await connection.query("""
            SELECT l.user_id, v.chunks FROM version v JOIN library l ON l.id = v.library_id WHERE NOT v.deleted AND v.kind = 'file'
            UNION ALL
            SELECT m.user_id, v.chunks FROM version v JOIN library_member m ON m.library_id = v.library_id AND m.role = 'write'
            WHERE NOT v.deleted AND v.kind = 'file'
            """, logger: logger).decode((Int64, ByteBuffer).self) {
            try QuotaRules.reference(Data(packed.readableBytesView), owner: owner, all: &all, byUser: &byUser)
        }
        return (all, byUser)
    }

    /// gc's release of holds (`QuotaRules.released`), under its exclusive lock, before chunk rows go.
    static func releaseHolds(_ connection: PostgresConnection, referencedBy: [Int64: Set<ContentHash>], cutoff: Date, logger: Logger) async throws {
        var holds: [QuotaRules.Hold] = []
        for try await (userId, sha, size, touched) in try await connection.query("""
            SELECT u.user_id, u.sha256, c.size, c.touched_at FROM user_chunk u JOIN chunk c ON c.sha256 = u.sha256 WHERE c.touched_at <= \(cutoff)
            """, logger: logger).decode((Int64, ByteBuffer, Int64, Date).self) {
            if let hash = PostgresRows.hash(sha) { holds.append(.init(userId: userId, hash: hash, size: size, touchedAt: touched)) }
        }
        let (released, bytes) = QuotaRules.released(holds, referencedBy: referencedBy, cutoff: cutoff)
        guard !released.isEmpty else { return }
        try await connection.query("""
            DELETE FROM user_chunk u USING unnest(\(released.map { PostgresRows.bytes($0.hash) })::bytea[], \(released.map(\.userId))::bigint[]) AS r(sha256, user_id)
            WHERE u.sha256 = r.sha256 AND u.user_id = r.user_id
            """, logger: logger)
        for (userId, dropped) in bytes.sorted(by: { $0.key < $1.key }) { try await addUsage(connection, userId: userId, -dropped, logger: logger) }
    }
}
