import FerryCore
import Foundation
import GRDB

/// Deletions a person confirmed (issue 26): when the mass-delete guard of SPEC §6 held a
/// batch of deletes and the user let it go on one device (`ferry sync --allow-mass-delete`,
/// `ferry folder confirm-deletes`) or deleted in the dashboard, the deletion versions are
/// recorded here, and the user's other devices let those same deletions through without
/// asking again. A different mass delete has other versions, so it still asks.
public protocol DeleteConfirmationStore: Sendable {
    /// Records `versions` of the user's library as confirmed by `deviceId` (nil: the
    /// dashboard); versions that are not deletions of that library are skipped. Returns the
    /// versions recorded now or before, ascending.
    func confirmDeletions(userId: Int64, libraryId: String, versions: [Int64], deviceId: String?) async throws -> [Int64]
    /// Of `versions`, those recorded as confirmed, ascending.
    func confirmedDeletions(userId: Int64, libraryId: String, among versions: [Int64]) async throws -> [Int64]
}

extension SQLiteMetadataStore {
    public func confirmDeletions(userId: Int64, libraryId: String, versions: [Int64], deviceId: String?) async throws -> [Int64] {
        try await pool.write { db in
            try Self.requireLibrary(db, userId: userId, libraryId: libraryId, role: .write)
            let wanted = try Self.jsonArray(versions)
            try db.execute(sql: """
                INSERT OR IGNORE INTO confirmed_deletion (library_id, seq, device_id, confirmed_at)
                SELECT library_id, seq, ?, ? FROM version WHERE library_id = ? AND seq IN (SELECT value FROM json_each(?)) AND deleted
                """, arguments: [deviceId, Date(), libraryId, wanted])
            return try Self.confirmed(db, libraryId: libraryId, among: wanted)
        }
    }

    public func confirmedDeletions(userId: Int64, libraryId: String, among versions: [Int64]) async throws -> [Int64] {
        try await pool.read { db in
            try Self.requireLibrary(db, userId: userId, libraryId: libraryId, role: .read)
            return try Self.confirmed(db, libraryId: libraryId, among: try Self.jsonArray(versions))
        }
    }

    /// The user's library, or one shared with them with at least `role`.
    private static func requireLibrary(_ db: Database, userId: Int64, libraryId: String, role needed: LibraryRole) throws {
        guard let role = try libraryRole(db, userId: userId, libraryId: libraryId) else { throw MetadataError.notFound("library '\(libraryId)'") }
        guard role.allows(needed) else { throw SharingRules.readOnly }
    }

    /// One query for the whole set, as on PostgreSQL (`= ANY`): a mass delete is thousands
    /// of versions, and one argument holds them all (no limit on bound parameters).
    private static func confirmed(_ db: Database, libraryId: String, among versions: String) throws -> [Int64] {
        try Int64.fetchAll(db, sql: """
            SELECT seq FROM confirmed_deletion WHERE library_id = ? AND seq IN (SELECT value FROM json_each(?)) ORDER BY seq
            """, arguments: [libraryId, versions])
    }

    /// `versions` as the JSON array `json_each` reads.
    private static func jsonArray(_ versions: [Int64]) throws -> String {
        String(decoding: try JSONEncoder().encode(versions), as: UTF8.self)
    }
}
