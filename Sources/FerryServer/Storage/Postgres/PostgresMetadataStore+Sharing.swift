import FerryCore
import Foundation
import NIOCore
import PostgresNIO

/// Library sharing on PostgreSQL, as `SQLiteMetadataStore+Sharing.swift` has it on SQLite.
extension PostgresMetadataStore {
    public func libraryAccess(userId: Int64, id: String) async throws -> LibraryInfo? {
        try await read { connection in
            try await PostgresDatabase.row(connection, """
                SELECT l.*, u.username AS owner_name, CASE WHEN l.user_id = \(userId) THEN 'owner' ELSE m.role END AS access
                FROM library l JOIN ferry_user u ON u.id = l.user_id LEFT JOIN library_member m ON m.library_id = l.id AND m.user_id = \(userId)
                WHERE l.id = \(id) AND (l.user_id = \(userId) OR m.user_id IS NOT NULL)
                """, logger: logger).map(Self.sharedLibrary)
        }
    }

    public func sharedLibraries(userId: Int64) async throws -> [LibraryInfo] {
        try await read { connection in
            try await PostgresDatabase.rows(connection, """
                SELECT l.*, u.username AS owner_name, m.role AS access
                FROM library l JOIN ferry_user u ON u.id = l.user_id JOIN library_member m ON m.library_id = l.id AND m.user_id = \(userId)
                ORDER BY u.username, l.name
                """, logger: logger).map(Self.sharedLibrary)
        }
    }

    public func shareLibrary(ownerId: Int64, libraryId: String, username: String, role: LibraryRole) async throws -> LibraryMember {
        let now = Date()
        return try await write { connection in
            let memberId = try await memberId(connection, ownerId: ownerId, libraryId: libraryId, username: username)
            let added = try await PostgresDatabase.scalar(connection, """
                INSERT INTO library_member (library_id, user_id, role, added_at, added_by) VALUES (\(libraryId), \(memberId), \(role.rawValue), \(now), \(ownerId))
                ON CONFLICT (library_id, user_id) DO UPDATE SET role = excluded.role RETURNING added_at
                """, as: Date.self, logger: logger)
            return LibraryMember(username: username, role: role, addedAt: added ?? now)
        }
    }

    public func unshareLibrary(ownerId: Int64, libraryId: String, username: String) async throws -> Bool {
        try await write { connection in
            let memberId = try await memberId(connection, ownerId: ownerId, libraryId: libraryId, username: username)
            return try await PostgresDatabase.count(connection, """
                DELETE FROM library_member WHERE library_id = \(libraryId) AND user_id = \(memberId) RETURNING 1
                """, logger: logger) == 1
        }
    }

    public func libraryMembers(libraryId: String) async throws -> LibraryMembersResponse {
        try await read { connection in
            guard let owner = try await PostgresDatabase.scalar(connection, """
                SELECT u.username FROM library l JOIN ferry_user u ON u.id = l.user_id WHERE l.id = \(libraryId)
                """, as: String.self, logger: logger) else { throw MetadataError.notFound("library '\(libraryId)'") }
            let members = try await PostgresDatabase.rows(connection, """
                SELECT u.username, m.role, m.added_at FROM library_member m JOIN ferry_user u ON u.id = m.user_id
                WHERE m.library_id = \(libraryId) ORDER BY u.username
                """, logger: logger).map { row in
                LibraryMember(username: try row.get("username"), role: try SharingRules.role(try row.get("role")), addedAt: try row.get("added_at"))
            }
            return LibraryMembersResponse(owner: owner, members: members)
        }
    }

    public func chunkSize(libraryId: String, path: FerryPath, version seq: Int64, hash: ContentHash) async throws -> Int64? {
        try await read { connection in
            guard let packed = try await PostgresDatabase.scalar(connection, """
                SELECT chunks FROM version WHERE library_id = \(libraryId) AND seq = \(seq) AND path = \(path.string) AND NOT deleted
                """, as: ByteBuffer.self, logger: logger) else { return nil }
            return try packed.withUnsafeReadableBytes { try ChunkList.size(of: hash, in: $0) }
        }
    }

    /// The role `userId` has on `libraryId`, nil when none (see the SQLite twin).
    func libraryRole(_ connection: PostgresConnection, userId: Int64, libraryId: String) async throws -> LibraryRole? {
        try await PostgresDatabase.scalar(connection, """
            SELECT CASE WHEN l.user_id = \(userId) THEN 'owner' ELSE m.role END FROM library l
            LEFT JOIN library_member m ON m.library_id = l.id AND m.user_id = \(userId) WHERE l.id = \(libraryId)
            """, as: String?.self, logger: logger).flatMap { $0 }.map(SharingRules.role)
    }

    private static func sharedLibrary(_ row: PostgresRandomAccessRow) throws -> LibraryInfo {
        var info = try PostgresRows.library(row)
        info.owner = try row.get("owner_name")
        info.role = try (try row.get("access", as: String?.self)).map(SharingRules.role)
        return info
    }

    private func memberId(_ connection: PostgresConnection, ownerId: Int64, libraryId: String, username: String) async throws -> Int64 {
        guard try await PostgresDatabase.row(connection, "SELECT 1 AS one FROM library WHERE id = \(libraryId) AND user_id = \(ownerId)",
                                             logger: logger) != nil else { throw MetadataError.notFound("library '\(libraryId)'") }
        guard let id = try await PostgresDatabase.scalar(connection, "SELECT id FROM ferry_user WHERE username = \(username)",
                                                         as: Int64.self, logger: logger) else { throw SharingRules.noSuchUser(username) }
        guard id != ownerId else { throw SharingRules.shareWithOwner }
        return id
    }
}
