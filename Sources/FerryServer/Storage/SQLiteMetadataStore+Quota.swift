import FerryCore
import FerrySQLite
import Foundation
import GRDB

/// Quotas on SQLite: the one write lock orders every change to a user's holds and counter,
/// so reading the counter, checking and adding happen as one step (docs/architecture.md, "Quotas").
extension SQLiteMetadataStore {
    public func setQuota(userId: Int64, bytes: Int64?) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE user SET quota_bytes = ? WHERE id = ?", arguments: [bytes, userId])
            guard db.changesCount == 1 else { throw MetadataError.notFound("user") }
        }
    }

    public func storageAccount(userId: Int64) async throws -> StorageAccount? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT used_bytes, quota_bytes FROM user WHERE id = ?", arguments: [userId])
                .map { StorageAccount(usedBytes: $0["used_bytes"], quotaBytes: $0["quota_bytes"]) }
        }
    }

    public func storageAccounts() async throws -> [String: StorageAccount] {
        try await pool.read { db in
            var out: [String: StorageAccount] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT username, used_bytes, quota_bytes FROM user") {
                out[row["username"]] = StorageAccount(usedBytes: row["used_bytes"], quotaBytes: row["quota_bytes"])
            }
            return out
        }
    }

    public func reconcileUsage() async throws -> [UsageDrift] {
        try await pool.write { db in
            let actual = try Self.actualUsage(db)
            var drifts: [UsageDrift] = []
            for row in try Row.fetchAll(db, sql: "SELECT id, username, used_bytes FROM user ORDER BY username") {
                let id: Int64 = row["id"], counted: Int64 = row["used_bytes"]
                let real = actual[id] ?? 0
                guard counted != real else { continue }
                try db.execute(sql: "UPDATE user SET used_bytes = ? WHERE id = ?", arguments: [real, id])
                drifts.append(UsageDrift(username: row["username"], counted: counted, actual: real))
            }
            return drifts
        }
    }

    /// Each user's usage summed from their holds, in one pass over `user_chunk` (keyed by hash first).
    static func actualUsage(_ db: Database) throws -> [Int64: Int64] {
        var out: [Int64: Int64] = [:]
        for row in try Row.fetchAll(db, sql: """
            SELECT u.user_id, COALESCE(SUM(c.size), 0) AS bytes FROM user_chunk u JOIN chunk c ON c.sha256 = u.sha256 GROUP BY u.user_id
            """) {
            out[row["user_id"]] = row["bytes"]
        }
        return out
    }

    /// `recordChunks`' charge for the bytes of the holds an upload added: the counter moves
    /// and, with a quota, must stay within it, or the upload is refused (its transaction rolls
    /// back). One statement, and none for an upload of chunks the user holds already.
    static func charge(_ db: Database, userId: Int64, _ bytes: Int64) throws {
        guard bytes > 0 else { return }
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "UPDATE user SET used_bytes = used_bytes + ? WHERE id = ? RETURNING used_bytes, quota_bytes"),
                                         arguments: [bytes, userId]) else {
            throw MetadataError.notFound("user")
        }
        try QuotaRules.check(quota: row["quota_bytes"], used: row["used_bytes"] - bytes, adding: bytes)
    }

    /// Moves a user's counter by `bytes` (negative when holds are released).
    static func addUsage(_ db: Database, userId: Int64, _ bytes: Int64) throws {
        guard bytes != 0 else { return }
        try db.cachedStatement(sql: "UPDATE user SET used_bytes = used_bytes + ? WHERE id = ?").execute(arguments: [bytes, userId])
    }

    /// Every chunk some live file version references, with its size, and per user the chunks
    /// the versions in their libraries reference: one pass over `version` for gc. A library's
    /// users here are its owner and its `write` members (who upload into it and pay for what
    /// they upload, as long as the library references it).
    static func referencedByUser(_ db: Database) throws -> (all: [ContentHash: Int64], byUser: [Int64: Set<ContentHash>]) {
        var all: [ContentHash: Int64] = [:]
        var byUser: [Int64: Set<ContentHash>] = [:]
        let cursor = try Row.fetchCursor(db, sql: """
            SELECT l.user_id, v.chunks FROM version v JOIN library l ON l.id = v.library_id WHERE v.deleted = 0 AND v.kind = 'file'
            UNION ALL
            SELECT m.user_id, v.chunks FROM version v JOIN library_member m ON m.library_id = v.library_id AND m.role = 'write'
            WHERE v.deleted = 0 AND v.kind = 'file'
            """)
        while let row = try cursor.next() {
            try QuotaRules.reference(row["chunks"], owner: row["user_id"], all: &all, byUser: &byUser)
        }
        return (all, byUser)
    }

    /// gc's release of holds (`QuotaRules.released`), in its transaction, before chunk rows go.
    static func releaseHolds(_ db: Database, referencedBy: [Int64: Set<ContentHash>], cutoff: Date) throws {
        var holds: [QuotaRules.Hold] = []
        let rows = try Row.fetchCursor(db, sql: """
            SELECT u.user_id, u.sha256, c.size, c.touched_at FROM user_chunk u JOIN chunk c ON c.sha256 = u.sha256 WHERE c.touched_at <= ?
            """, arguments: [cutoff])
        while let row = try rows.next() {
            guard let hash = ContentHash(bytes: row["sha256"] as Data) else { continue }
            holds.append(.init(userId: row["user_id"], hash: hash, size: row["size"], touchedAt: row["touched_at"]))
        }
        let (released, bytes) = QuotaRules.released(holds, referencedBy: referencedBy, cutoff: cutoff)
        let delete = try db.cachedStatement(sql: "DELETE FROM user_chunk WHERE sha256 = ? AND user_id = ?")
        for hold in released { try delete.execute(arguments: [hold.hash.data, hold.userId]) }
        for (userId, dropped) in bytes { try addUsage(db, userId: userId, -dropped) }
    }
}
