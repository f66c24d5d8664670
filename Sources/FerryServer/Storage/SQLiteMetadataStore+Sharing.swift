import FerryCore
import Foundation
import GRDB

/// Library sharing on SQLite (`LibrarySharingStore`): the `library_member` table.
extension SQLiteMetadataStore {
    public func libraryAccess(userId: Int64, id: String) async throws -> LibraryInfo? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: Self.accessQuery + " WHERE l.id = ? AND (l.user_id = ? OR m.user_id IS NOT NULL)",
                             arguments: [userId, userId, id, userId]).map(Self.sharedLibrary)
        }
    }

    public func sharedLibraries(userId: Int64) async throws -> [LibraryInfo] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: Self.accessQuery + " WHERE m.user_id IS NOT NULL ORDER BY u.username, l.name",
                             arguments: [userId, userId]).map(Self.sharedLibrary)
        }
    }

    public func shareLibrary(ownerId: Int64, libraryId: String, username: String, role: LibraryRole) async throws -> LibraryMember {
        let now = Date()
        return try await pool.write { db in
            let memberId = try Self.memberId(db, ownerId: ownerId, libraryId: libraryId, username: username)
            try db.execute(sql: """
                INSERT INTO library_member (library_id, user_id, role, added_at, added_by) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (library_id, user_id) DO UPDATE SET role = excluded.role
                """, arguments: [libraryId, memberId, role.rawValue, now, ownerId])
            let added = try Date.fetchOne(db, sql: "SELECT added_at FROM library_member WHERE library_id = ? AND user_id = ?",
                                          arguments: [libraryId, memberId]) ?? now
            return LibraryMember(username: username, role: role, addedAt: added)
        }
    }

    public func unshareLibrary(ownerId: Int64, libraryId: String, username: String) async throws -> Bool {
        try await pool.write { db in
            let memberId = try Self.memberId(db, ownerId: ownerId, libraryId: libraryId, username: username)
            try db.execute(sql: "DELETE FROM library_member WHERE library_id = ? AND user_id = ?", arguments: [libraryId, memberId])
            return db.changesCount == 1
        }
    }

    public func libraryMembers(libraryId: String) async throws -> LibraryMembersResponse {
        try await pool.read { db in
            guard let owner = try String.fetchOne(db, sql: "SELECT u.username FROM library l JOIN user u ON u.id = l.user_id WHERE l.id = ?",
                                                  arguments: [libraryId]) else { throw MetadataError.notFound("library '\(libraryId)'") }
            let members = try Row.fetchAll(db, sql: """
                SELECT u.username, m.role, m.added_at FROM library_member m JOIN user u ON u.id = m.user_id
                WHERE m.library_id = ? ORDER BY u.username
                """, arguments: [libraryId]).map { row in
                LibraryMember(username: row["username"], role: try SharingRules.role(row["role"]), addedAt: row["added_at"])
            }
            return LibraryMembersResponse(owner: owner, members: members)
        }
    }

    public func chunkSize(libraryId: String, path: FerryPath, version seq: Int64, hash: ContentHash) async throws -> Int64? {
        try await pool.read { db in
            guard let packed = try Data.fetchOne(db, sql: "SELECT chunks FROM version WHERE library_id = ? AND seq = ? AND path = ? AND deleted = 0",
                                                 arguments: [libraryId, seq, path.string]) else { return nil }
            return try packed.withUnsafeBytes { try ChunkList.size(of: hash, in: $0) }
        }
    }

    /// The role `userId` has on `libraryId`, nil when none: the check every library write
    /// makes again inside its transaction, so an unshare takes effect at once.
    static func libraryRole(_ db: Database, userId: Int64, libraryId: String) throws -> LibraryRole? {
        try String.fetchOne(db, sql: """
            SELECT CASE WHEN l.user_id = ? THEN 'owner' ELSE m.role END FROM library l
            LEFT JOIN library_member m ON m.library_id = l.id AND m.user_id = ? WHERE l.id = ?
            """, arguments: [userId, userId, libraryId]).map(SharingRules.role)
    }

    /// Libraries with the owner's name and the caller's role (bind the caller twice first).
    private static let accessQuery = """
        SELECT l.*, u.username AS owner_name, CASE WHEN l.user_id = ? THEN 'owner' ELSE m.role END AS access
        FROM library l JOIN user u ON u.id = l.user_id LEFT JOIN library_member m ON m.library_id = l.id AND m.user_id = ?
        """

    private static func sharedLibrary(_ row: Row) throws -> LibraryInfo {
        var info = library(row)
        info.owner = row["owner_name"]
        info.role = try (row["access"] as String?).map(SharingRules.role)
        return info
    }

    /// The id of the user named `username`, once `ownerId` is found to own the library.
    private static func memberId(_ db: Database, ownerId: Int64, libraryId: String, username: String) throws -> Int64 {
        guard try Bool.fetchOne(db, sql: "SELECT 1 FROM library WHERE id = ? AND user_id = ?", arguments: [libraryId, ownerId]) == true else {
            throw MetadataError.notFound("library '\(libraryId)'")
        }
        guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM user WHERE username = ?", arguments: [username]) else {
            throw SharingRules.noSuchUser(username)
        }
        guard id != ownerId else { throw SharingRules.shareWithOwner }
        return id
    }
}
