import FerryCore
import Foundation
import PostgresNIO

/// Retention on PostgreSQL, as `SQLiteMetadataStore+Retention.swift` has it on SQLite. A
/// batch locks the library row as commits do, so it never interleaves with a commit to the
/// same library on any instance.
extension PostgresMetadataStore {
    public func retention(userId: Int64, libraryId: String) async throws -> LibraryRetention? {
        try await read { connection in try await retention(connection, userId: userId, libraryId: libraryId) }
    }

    public func setRetention(userId: Int64, libraryId: String, policy: RetentionPolicy) async throws -> LibraryRetention? {
        let (n, d, t) = StoreRules.retentionColumns(policy)
        return try await write { connection in
            try await connection.query("""
                UPDATE library SET keep_versions = \(n), keep_days = \(d), trash_days = \(t) WHERE id = \(libraryId) AND user_id = \(userId)
                """, logger: logger)
            return try await retention(connection, userId: userId, libraryId: libraryId)
        }
    }

    private func retention(_ connection: PostgresConnection, userId: Int64, libraryId: String) async throws -> LibraryRetention? {
        guard let row = try await PostgresDatabase.row(connection, """
            SELECT keep_versions, keep_days, trash_days, purged_through FROM library WHERE id = \(libraryId) AND user_id = \(userId)
            """, logger: logger) else { return nil }
        return LibraryRetention(library: libraryId, policy: try Self.policy(row), purgedThrough: try row.get("purged_through"))
    }

    private static func policy(_ row: PostgresRandomAccessRow) throws -> RetentionPolicy {
        StoreRules.retentionPolicy(keepVersions: try row.get("keep_versions"), keepDays: try row.get("keep_days"), trashDays: try row.get("trash_days"))
    }

    public func librariesWithRetention() async throws -> [String] {
        try await read { connection in
            try await PostgresDatabase.column(connection, """
                SELECT id FROM library WHERE keep_versions IS NOT NULL OR keep_days IS NOT NULL OR trash_days IS NOT NULL ORDER BY id
                """, as: String.self, logger: logger)
        }
    }

    public func purgeBatch(libraryId: String, after: String?, limit: Int, now: Date) async throws -> RetentionBatch {
        try await write { connection in
            let none = RetentionBatch(purgedVersions: 0, removedPaths: 0, nextAfter: nil)
            guard let row = try await PostgresDatabase.row(connection, """
                SELECT keep_versions, keep_days, trash_days FROM library WHERE id = \(libraryId) FOR UPDATE
                """, logger: logger) else { return none }
            let policy = try Self.policy(row)
            let paths = try await PostgresDatabase.column(connection, """
                SELECT path FROM entry WHERE library_id = \(libraryId) AND path > \(after ?? "") ORDER BY path LIMIT \(Int64(limit))
                """, as: String.self, logger: logger)
            guard !policy.keepsEverything, let first = paths.first, let last = paths.last else { return none }
            let rows = try await PostgresDatabase.rows(connection, """
                SELECT path, seq, committed_at, deleted FROM version
                WHERE library_id = \(libraryId) AND path >= \(first) AND path <= \(last) ORDER BY path, seq
                """, logger: logger).map { row in
                (path: try row.get("path", as: String.self),
                 version: RetainedVersion(seq: try row.get("seq"), committedAt: try row.get("committed_at"), deleted: try row.get("deleted")))
            }
            // Pinned: attached versions, and both sides of an open conflict (resolving needs them).
            let pinned = Set(try await PostgresDatabase.column(connection, """
                SELECT seq FROM attachment WHERE library_id = \(libraryId) AND path >= \(first) AND path <= \(last)
                UNION SELECT mine_seq FROM conflict WHERE library_id = \(libraryId) AND resolved_at IS NULL
                UNION SELECT theirs_seq FROM conflict WHERE library_id = \(libraryId) AND resolved_at IS NULL
                """, as: Int64.self, logger: logger))
            let (purged, removed) = RetentionRules.plan(rows, policy: policy, pinned: pinned, now: now)
            // The entry names its version: it goes before the versions do.
            if !removed.isEmpty {
                try await connection.query("""
                    DELETE FROM entry WHERE library_id = \(libraryId) AND path = ANY(\(removed.map(\.path))::text[])
                    """, logger: logger)
            }
            if !purged.isEmpty {
                try await connection.query("DELETE FROM version WHERE library_id = \(libraryId) AND seq = ANY(\(purged)::bigint[])", logger: logger)
            }
            if let highest = removed.map(\.seq).max() {
                try await connection.query("""
                    UPDATE library SET purged_through = GREATEST(purged_through, \(highest)) WHERE id = \(libraryId)
                    """, logger: logger)
            }
            return RetentionBatch(purgedVersions: purged.count, removedPaths: removed.count, nextAfter: paths.count == limit ? last : nil)
        }
    }
}
