import FerryCore
import Foundation
import GRDB

extension SQLiteMetadataStore {
    public func createDashboardSession(userId: Int64, cookieHash: [UInt8], expiresAt: Date) async throws -> String {
        let id = UUID().uuidString.lowercased()
        let now = Date()
        try await pool.write { db in
            try db.execute(sql: "INSERT INTO session (id, user_id, created_at, expires_at, cookie_hash) VALUES (?, ?, ?, ?, ?)",
                           arguments: [id, userId, now, expiresAt, Data(cookieHash)])
        }
        return id
    }

    public func dashboardIdentity(cookieHash: [UInt8]) async throws -> Identity? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT s.id, s.user_id, u.username, u.is_admin FROM session s JOIN user u ON u.id = s.user_id
                WHERE s.cookie_hash = ? AND s.revoked_at IS NULL AND s.expires_at > ?
                """, arguments: [Data(cookieHash), Date()]).map { row in
                Identity(userId: row["user_id"], username: row["username"], isAdmin: row["is_admin"], deviceId: nil, sessionId: row["id"])
            }
        }
    }

    public func storageUse() async throws -> StorageUse {
        try await pool.read { db in
            let total = try Row.fetchOne(db, sql: "SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM chunk")
            var perUser: [Int64: (chunks: Int, bytes: Int64)] = [:]
            // `user_chunk` is keyed by hash first: one pass over it, grouped, is cheaper than a
            // scan per user.
            for row in try Row.fetchAll(db, sql: """
                SELECT u.user_id, COUNT(*) AS n, COALESCE(SUM(c.size), 0) AS bytes
                FROM user_chunk u JOIN chunk c ON c.sha256 = u.sha256 GROUP BY u.user_id
                """) {
                perUser[row["user_id"]] = (row["n"], row["bytes"])
            }
            let users = try Row.fetchAll(db, sql: "SELECT id, username FROM user ORDER BY username").map { row in
                let use = perUser[row["id"] as Int64] ?? (0, 0)
                return StorageUse.PerUser(username: row["username"], chunks: use.chunks, bytes: use.bytes)
            }
            return StorageUse(chunks: total?["n"] ?? 0, bytes: total?["bytes"] ?? 0, users: users)
        }
    }
}
