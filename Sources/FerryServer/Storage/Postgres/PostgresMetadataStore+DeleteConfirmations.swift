import FerryCore
import Foundation
import PostgresNIO

/// Deletions a person confirmed past the mass-delete guard on PostgreSQL, as
/// `DeleteConfirmationStore.swift` has them on SQLite.
extension PostgresMetadataStore {
    public func confirmDeletions(userId: Int64, libraryId: String, versions: [Int64], deviceId: String?) async throws -> [Int64] {
        let wanted = Array(Set(versions))
        let now = Date()
        return try await write { connection in
            try await requireLibrary(connection, userId: userId, libraryId: libraryId, role: .write)
            try await connection.query("""
                INSERT INTO confirmed_deletion (library_id, seq, device_id, confirmed_at)
                SELECT library_id, seq, \(deviceId), \(now) FROM version
                WHERE library_id = \(libraryId) AND seq = ANY(\(wanted)::bigint[]) AND deleted
                ON CONFLICT DO NOTHING
                """, logger: logger)
            return try await confirmed(connection, libraryId: libraryId, among: wanted)
        }
    }

    public func confirmedDeletions(userId: Int64, libraryId: String, among versions: [Int64]) async throws -> [Int64] {
        let wanted = Array(Set(versions))
        return try await read { connection in
            try await requireLibrary(connection, userId: userId, libraryId: libraryId, role: .read)
            return try await confirmed(connection, libraryId: libraryId, among: wanted)
        }
    }

    /// The user's library, or one shared with them with at least `role`.
    private func requireLibrary(_ connection: PostgresConnection, userId: Int64, libraryId: String, role needed: LibraryRole) async throws {
        guard let role = try await libraryRole(connection, userId: userId, libraryId: libraryId) else {
            throw MetadataError.notFound("library '\(libraryId)'")
        }
        guard role.allows(needed) else { throw SharingRules.readOnly }
    }

    private func confirmed(_ connection: PostgresConnection, libraryId: String, among versions: [Int64]) async throws -> [Int64] {
        try await PostgresDatabase.rows(connection, """
            SELECT seq FROM confirmed_deletion WHERE library_id = \(libraryId) AND seq = ANY(\(versions)::bigint[]) ORDER BY seq
            """, logger: logger).map { try $0.get("seq", as: Int64.self) }
    }
}
