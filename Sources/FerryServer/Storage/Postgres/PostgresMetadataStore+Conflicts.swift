import FerryCore
import Foundation
import Logging
import PostgresNIO

/// Conflict records on PostgreSQL; what a resolution does is `CommitEngine.resolve`.
extension PostgresMetadataStore {
    public func conflicts(userId: Int64, libraryId: String?, state: ConflictState, limit: Int) async throws -> [ConflictInfo] {
        try await read { connection in
            let rows = try await PostgresDatabase.rows(connection, """
                SELECT c.* FROM conflict c JOIN library l ON l.id = c.library_id
                WHERE (l.user_id = \(userId) OR EXISTS (SELECT 1 FROM library_member m WHERE m.library_id = l.id AND m.user_id = \(userId)))
                  AND (\(libraryId)::text IS NULL OR c.library_id = \(libraryId))
                AND (\(state.rawValue) = 'all' OR (\(state.rawValue) = 'open') = (c.resolved_at IS NULL))
                ORDER BY c.detected_at DESC, c.id LIMIT \(Int64(limit))
                """, logger: logger)
            var out: [ConflictInfo] = []
            for row in rows { out.append(try await Self.conflictInfo(connection, row, logger: logger)) }
            return out
        }
    }

    public func resolveConflict(userId: Int64, id: String, keep: ConflictKeep, deviceId: String?) async throws -> ConflictInfo {
        try await writeAndSignal { connection in
            guard let found = try await PostgresDatabase.row(connection, """
                SELECT c.library_id FROM conflict c JOIN library l ON l.id = c.library_id WHERE c.id = \(id) AND (l.user_id = \(userId) OR EXISTS (
                    SELECT 1 FROM library_member m WHERE m.library_id = l.id AND m.user_id = \(userId) AND m.role = 'write'))
                """, logger: logger) else { throw MetadataError.notFound("conflict '\(id)'") }
            // The library first, as every commit takes it, then the conflict: one lock order.
            var batch = try await batch(connection, userId: userId, libraryId: try found.get("library_id"), deviceId: deviceId)
            guard let row = try await PostgresDatabase.row(connection, "SELECT * FROM conflict WHERE id = \(id) FOR UPDATE", logger: logger) else {
                throw MetadataError.notFound("conflict '\(id)'")
            }
            if try row.get("resolved_at", as: Date?.self) != nil {
                throw MetadataError.stateConflict("conflict '\(id)' was already resolved (\(try row.get("resolution", as: String?.self) ?? "unknown"))")
            }
            let startHead = batch.head
            let path = try FerryPath(try row.get("path", as: String.self))
            let copyPath = try FerryPath(try row.get("copy_path", as: String.self))
            let mineSeq: Int64 = try row.get("mine_seq")
            let deleteCopy = CommitOperation.delete(copyPath, base: nil)
            try await batch.ledger.load(paths: [path, copyPath], chunks: [], versions: [(copyPath, mineSeq)], operations: [deleteCopy],
                                        connection, logger: logger)
            // Either side may become the content at `path`: load both sides' chunks.
            let sources = [try batch.ledger.current(copyPath), try batch.ledger.version(copyPath, seq: mineSeq)].compactMap { $0 }
            try await batch.ledger.load(paths: [], chunks: sources.flatMap { $0.chunks.map(\.sha256) }, versions: [], operations: [],
                                        connection, logger: logger)
            try batch.resolve(path: path, copyPath: copyPath, mineSeq: mineSeq, keep: keep)
            try await finish(batch, startHead: startHead, connection)
            // Deleting the copy marked it `copy_deleted`; the person's choice is what we record.
            try await connection.query("UPDATE conflict SET resolved_at = \(Date()), resolution = \(keep.rawValue) WHERE id = \(id)", logger: logger)
            guard let updated = try await PostgresDatabase.row(connection, "SELECT * FROM conflict WHERE id = \(id)", logger: logger) else {
                throw MetadataError.notFound("conflict '\(id)'")
            }
            return try await Self.conflictInfo(connection, updated, logger: logger)
        }
    }

    static func conflictInfo(_ connection: PostgresConnection, _ row: PostgresRandomAccessRow, logger: Logger) async throws -> ConflictInfo {
        let libraryId: String = try row.get("library_id")
        let path = try FerryPath(try row.get("path", as: String.self))
        let copyPath = try FerryPath(try row.get("copy_path", as: String.self))
        let id: String = try row.get("id")
        guard let mine = try await PostgresRows.version(connection, libraryId: libraryId, path: copyPath, seq: try row.get("mine_seq"), logger: logger),
              let theirs = try await PostgresRows.version(connection, libraryId: libraryId, path: path, seq: try row.get("theirs_seq"), logger: logger)
        else { throw MetadataError.invalid("conflict '\(id)' names versions that do not exist") }
        return ConflictInfo(id: id, library: libraryId, path: path, mine: ConflictSide(mine), theirs: ConflictSide(theirs),
                            detectedAt: try row.get("detected_at"), resolvedAt: try row.get("resolved_at"), resolution: try row.get("resolution"))
    }
}
