import FerryCore
import Foundation
import GRDB

/// Retention on SQLite (RetentionStore): each batch is one write transaction.
extension SQLiteMetadataStore {
    public func retention(userId: Int64, libraryId: String) async throws -> LibraryRetention? {
        try await pool.read { db in try Self.retention(db, userId: userId, libraryId: libraryId) }
    }

    public func setRetention(userId: Int64, libraryId: String, policy: RetentionPolicy) async throws -> LibraryRetention? {
        let (n, d, t) = StoreRules.retentionColumns(policy)
        return try await pool.write { db in
            try db.execute(sql: "UPDATE library SET keep_versions = ?, keep_days = ?, trash_days = ? WHERE id = ? AND user_id = ?",
                           arguments: [n, d, t, libraryId, userId])
            return try Self.retention(db, userId: userId, libraryId: libraryId)
        }
    }

    static func retention(_ db: Database, userId: Int64, libraryId: String) throws -> LibraryRetention? {
        try Row.fetchOne(db, sql: "SELECT keep_versions, keep_days, trash_days, purged_through FROM library WHERE id = ? AND user_id = ?",
                         arguments: [libraryId, userId]).map { row in
            LibraryRetention(library: libraryId, policy: policy(row), purgedThrough: row["purged_through"])
        }
    }

    static func policy(_ row: Row) -> RetentionPolicy {
        StoreRules.retentionPolicy(keepVersions: row["keep_versions"], keepDays: row["keep_days"], trashDays: row["trash_days"])
    }

    public func librariesWithRetention() async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: """
                SELECT id FROM library WHERE keep_versions IS NOT NULL OR keep_days IS NOT NULL OR trash_days IS NOT NULL ORDER BY id
                """)
        }
    }

    public func purgeBatch(libraryId: String, after: String?, limit: Int, now: Date) async throws -> RetentionBatch {
        try await pool.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT keep_versions, keep_days, trash_days FROM library WHERE id = ?", arguments: [libraryId])
            else { return RetentionBatch(purgedVersions: 0, removedPaths: 0, nextAfter: nil) }
            let policy = Self.policy(row)
            let paths = try String.fetchAll(db, sql: "SELECT path FROM entry WHERE library_id = ? AND path > ? ORDER BY path LIMIT ?",
                                            arguments: [libraryId, after ?? "", limit])
            guard !policy.keepsEverything, let first = paths.first, let last = paths.last else {
                return RetentionBatch(purgedVersions: 0, removedPaths: 0, nextAfter: nil)
            }
            let rows = try Row.fetchAll(db, sql: """
                SELECT path, seq, committed_at, deleted FROM version WHERE library_id = ? AND path >= ? AND path <= ? ORDER BY path, seq
                """, arguments: [libraryId, first, last]).map { row in
                (path: row["path"] as String, version: RetainedVersion(seq: row["seq"], committedAt: row["committed_at"], deleted: row["deleted"]))
            }
            // Pinned: attached versions, and both sides of an open conflict (resolving needs them).
            let pinned = Set(try Int64.fetchAll(db, sql: """
                SELECT seq FROM attachment WHERE library_id = ?1 AND path >= ?2 AND path <= ?3
                UNION SELECT mine_seq FROM conflict WHERE library_id = ?1 AND resolved_at IS NULL
                UNION SELECT theirs_seq FROM conflict WHERE library_id = ?1 AND resolved_at IS NULL
                """, arguments: [libraryId, first, last]))
            let (purged, removed) = RetentionRules.plan(rows, policy: policy, pinned: pinned, now: now)
            // The entry names its version: it goes before the versions do.
            let dropEntry = try db.cachedStatement(sql: "DELETE FROM entry WHERE library_id = ? AND path = ?")
            for path in removed { try dropEntry.execute(arguments: [libraryId, path.path]) }
            let dropVersion = try db.cachedStatement(sql: "DELETE FROM version WHERE library_id = ? AND seq = ?")
            for seq in purged { try dropVersion.execute(arguments: [libraryId, seq]) }
            if let highest = removed.map(\.seq).max() {
                try db.execute(sql: "UPDATE library SET purged_through = max(purged_through, ?) WHERE id = ?", arguments: [highest, libraryId])
            }
            return RetentionBatch(purgedVersions: purged.count, removedPaths: removed.count, nextAfter: paths.count == limit ? last : nil)
        }
    }
}
