import FerryCore
import Foundation
import NIOCore
import PostgresNIO

/// Dashboard sign-ins and the admin page's storage figures on PostgreSQL, as
/// `DashboardSessionStore.swift` has them on SQLite.
extension PostgresMetadataStore {
    public func createDashboardSession(userId: Int64, cookieHash: [UInt8], expiresAt: Date) async throws -> String {
        let id = UUID().uuidString.lowercased()
        let now = Date()
        try await write { connection in
            try await connection.query("""
                INSERT INTO session (id, user_id, created_at, expires_at, cookie_hash)
                VALUES (\(id), \(userId), \(now), \(expiresAt), \(ByteBuffer(bytes: cookieHash)))
                """, logger: logger)
        }
        return id
    }

    public func dashboardIdentity(cookieHash: [UInt8]) async throws -> Identity? {
        try await read { connection in
            try await PostgresDatabase.row(connection, """
                SELECT s.id, s.user_id, u.username, u.is_admin FROM session s JOIN ferry_user u ON u.id = s.user_id
                WHERE s.cookie_hash = \(ByteBuffer(bytes: cookieHash)) AND s.revoked_at IS NULL AND s.expires_at > \(Date())
                """, logger: logger).map { row in
                Identity(userId: try row.get("user_id"), username: try row.get("username"), isAdmin: try row.get("is_admin"), deviceId: nil,
                         sessionId: try row.get("id"))
            }
        }
    }

    public func storageUse() async throws -> StorageUse {
        try await read { connection in
            let total = try await PostgresDatabase.row(connection, "SELECT count(*) AS n, coalesce(sum(size), 0)::bigint AS bytes FROM chunk",
                                                       logger: logger)
            let users = try await PostgresDatabase.rows(connection, """
                SELECT u.username, coalesce(p.n, 0) AS n, coalesce(p.bytes, 0)::bigint AS bytes FROM ferry_user u
                LEFT JOIN (SELECT uc.user_id, count(*) AS n, sum(c.size) AS bytes FROM user_chunk uc JOIN chunk c ON c.sha256 = uc.sha256
                           GROUP BY uc.user_id) p ON p.user_id = u.id
                ORDER BY u.username
                """, logger: logger).map { row in
                StorageUse.PerUser(username: try row.get("username"), chunks: Int(try row.get("n", as: Int64.self)), bytes: try row.get("bytes"))
            }
            return StorageUse(chunks: Int(try total?.get("n", as: Int64.self) ?? 0), bytes: try total?.get("bytes", as: Int64.self) ?? 0, users: users)
        }
    }
}
