import FerryCore
import Foundation
import GRDB

/// Which conflicts a listing shows.
public enum ConflictState: String, Sendable, CaseIterable {
    case open, resolved, all
}

/// Conflict records (SPEC §2, issue 8): written when a device uploads a conflict copy,
/// settled by `resolve` or by deleting the copy.
public protocol ConflictStore: Sendable {
    /// The conflicts of the user's libraries and those shared with them, newest first,
    /// optionally in one library.
    func conflicts(userId: Int64, libraryId: String?, state: ConflictState, limit: Int) async throws -> [ConflictInfo]
    /// Settles an open conflict (of a library the user owns or may write) in one
    /// transaction; the side given up stays in history.
    func resolveConflict(userId: Int64, id: String, keep: ConflictKeep, deviceId: String?) async throws -> ConflictInfo
}

extension SQLiteMetadataStore {
    public func conflicts(userId: Int64, libraryId: String?, state: ConflictState, limit: Int) async throws -> [ConflictInfo] {
        try await pool.read { db in
            let filter = switch state {
            case .open: " AND c.resolved_at IS NULL"
            case .resolved: " AND c.resolved_at IS NOT NULL"
            case .all: ""
            }
            let rows = try Row.fetchAll(db, sql: """
                SELECT c.* FROM conflict c JOIN library l ON l.id = c.library_id
                WHERE (l.user_id = ? OR EXISTS (SELECT 1 FROM library_member m WHERE m.library_id = l.id AND m.user_id = ?))
                  AND (? IS NULL OR c.library_id = ?)\(filter)
                ORDER BY c.detected_at DESC, c.id LIMIT ?
                """, arguments: [userId, userId, libraryId, libraryId, limit])
            return try rows.map { try Self.conflictInfo(db, $0) }
        }
    }

    public func resolveConflict(userId: Int64, id: String, keep: ConflictKeep, deviceId: String?) async throws -> ConflictInfo {
        try await writeAndSignal { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT c.* FROM conflict c JOIN library l ON l.id = c.library_id WHERE c.id = ? AND (l.user_id = ? OR EXISTS (
                    SELECT 1 FROM library_member m WHERE m.library_id = l.id AND m.user_id = ? AND m.role = 'write'))
                """, arguments: [id, userId, userId])
            else { throw MetadataError.notFound("conflict '\(id)'") }
            guard (row["resolved_at"] as Date?) == nil else {
                throw MetadataError.stateConflict("conflict '\(id)' was already resolved (\(row["resolution"] as String? ?? "unknown"))")
            }
            let libraryId: String = row["library_id"]
            var batch = try CommitBatch(db: db, userId: userId, libraryId: libraryId, deviceId: deviceId)
            try batch.resolve(path: try FerryPath(row["path"] as String), copyPath: try FerryPath(row["copy_path"] as String),
                              mineSeq: row["mine_seq"], keep: keep)
            // Deleting the copy above marked it `copy_deleted`; the person's choice is what we record.
            try db.execute(sql: "UPDATE conflict SET resolved_at = ?, resolution = ? WHERE id = ?", arguments: [Date(), keep.rawValue, id])
            return try Self.conflictInfo(db, Row.fetchOne(db, sql: "SELECT * FROM conflict WHERE id = ?", arguments: [id])!)
        }
    }

    static func conflictInfo(_ db: Database, _ row: Row) throws -> ConflictInfo {
        let libraryId: String = row["library_id"]
        let path = try FerryPath(row["path"] as String)
        let copyPath = try FerryPath(row["copy_path"] as String)
        guard let mine = try CommitBatch.version(db, libraryId: libraryId, path: copyPath, seq: row["mine_seq"]),
              let theirs = try CommitBatch.version(db, libraryId: libraryId, path: path, seq: row["theirs_seq"])
        else { throw MetadataError.invalid("conflict '\(row["id"] as String)' names versions that do not exist") }
        return ConflictInfo(id: row["id"], library: libraryId, path: path, mine: ConflictSide(mine), theirs: ConflictSide(theirs),
                            detectedAt: row["detected_at"], resolvedAt: row["resolved_at"], resolution: row["resolution"])
    }
}
