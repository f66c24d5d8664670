import FerryCore
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Decoding of the PostgreSQL store's rows into the wire types, and byte conversions.
enum PostgresRows {
    static func bytes(_ data: Data) -> ByteBuffer { ByteBuffer(bytes: data) }
    static func bytes(_ hash: ContentHash) -> ByteBuffer { hash.withUnsafeBytes { ByteBuffer(bytes: $0) } }
    /// A hash, or no bytes for none (turned into NULL by `NULLIF(…, ''::bytea)`).
    static func bytes(_ hash: ContentHash?) -> ByteBuffer { hash.map(bytes) ?? ByteBuffer() }

    static func hash(_ buffer: ByteBuffer?) -> ContentHash? { buffer.flatMap { ContentHash(bytes: $0.readableBytesView) } }

    /// A `version` row.
    static func version(_ row: PostgresRandomAccessRow) throws -> FileVersion {
        let path = try FerryPath(try row.get("path", as: String.self))
        let kind = try StoreRules.kind(row.get("kind"))
        let chunks = try row.get("chunks", as: ByteBuffer.self)
        return FileVersion(
            version: try row.get("seq"), path: path, kind: kind, deleted: try row.get("deleted"), size: try row.get("size"),
            sha256: hash(try row.get("sha256", as: ByteBuffer?.self)), mtimeNs: try row.get("mtime_ns"), mode: try row.get("mode", as: Int32.self),
            chunks: try ChunkList.decode(Data(chunks.readableBytesView)), target: try row.get("target"), deviceId: try row.get("device_id"),
            committedAt: try row.get("committed_at"))
    }

    /// One version of `path` by number.
    static func version(_ connection: PostgresConnection, libraryId: String, path: FerryPath, seq: Int64, logger: Logger) async throws -> FileVersion? {
        try await PostgresDatabase.row(connection, "SELECT * FROM version WHERE library_id = \(libraryId) AND seq = \(seq) AND path = \(path.string)",
                                       logger: logger).map(version)
    }

    /// The current version (tombstones included) of `path`.
    static func current(_ connection: PostgresConnection, libraryId: String, path: FerryPath, logger: Logger) async throws -> FileVersion? {
        try await PostgresDatabase.row(connection, """
            SELECT v.* FROM entry e JOIN version v ON v.library_id = e.library_id AND v.seq = e.seq
            WHERE e.library_id = \(libraryId) AND e.path = \(path.string)
            """, logger: logger).map(version)
    }

    static func user(_ row: PostgresRandomAccessRow) throws -> StoredUser {
        StoredUser(id: try row.get("id"), username: try row.get("username"), passwordHash: try row.get("password_hash"),
                   isAdmin: try row.get("is_admin"), createdAt: try row.get("created_at"))
    }

    static func device(_ row: PostgresRandomAccessRow) throws -> DeviceInfo {
        DeviceInfo(id: try row.get("id"), name: try row.get("name"), createdAt: try row.get("created_at"),
                   lastSeenAt: try row.get("last_seen_at"), revokedAt: try row.get("revoked_at"))
    }

    static func library(_ row: PostgresRandomAccessRow) throws -> LibraryInfo {
        LibraryInfo(id: try row.get("id"), name: try row.get("name"), head: try row.get("head"), createdAt: try row.get("created_at"))
    }
}

/// The transactional outbox on PostgreSQL: events and deliveries written in the change's
/// transaction, then a `NOTIFY` that PostgreSQL sends only if that transaction commits.
enum PostgresOutbox {
    static let channel = "ferry_outbox"

    static func insert(_ events: [PreparedEvent], _ connection: PostgresConnection, logger: Logger) async throws {
        guard !events.isEmpty else { return }
        try await connection.query("""
            INSERT INTO event (id, user_id, type, body, created_at)
            SELECT * FROM unnest(\(events.map(\.id))::text[], \(events.map(\.userId))::bigint[], \(events.map(\.type.rawValue))::text[],
                                 \(events.map { PostgresRows.bytes($0.body) })::bytea[], \(events.map(\.at))::timestamptz[])
            """, logger: logger)
        var webhooks: [String] = [], eventIds: [String] = [], times: [Date] = []
        for event in events {
            for target in event.targets {
                webhooks.append(target)
                eventIds.append(event.id)
                times.append(event.at)
            }
        }
        try await connection.query("""
            INSERT INTO delivery (webhook_id, event_id, state, attempts, next_attempt_at, created_at)
            SELECT u.w, u.e, 'pending', 0, u.t, u.t FROM unnest(\(webhooks)::text[], \(eventIds)::text[], \(times)::timestamptz[]) WITH ORDINALITY AS u(w, e, t, n)
            ORDER BY u.n
            """, logger: logger)
        try await connection.query("SELECT pg_notify(\(channel), '')", logger: logger)
    }

    /// The user's active endpoints with their filters.
    static func subscribers(_ connection: PostgresConnection, userId: Int64, logger: Logger) async throws -> Subscribers {
        let rows = try await PostgresDatabase.rows(connection, "SELECT id, events FROM webhook WHERE user_id = \(userId) AND active", logger: logger)
        return Subscribers.parse(try rows.map { (try $0.get("id", as: String.self), try $0.get("events", as: String.self)) })
    }

    /// Records `type` for the user's endpoints that subscribe to it (or exactly `only`).
    @discardableResult
    static func emit(_ connection: PostgresConnection, userId: Int64, type: EventType, data: some Encodable, only: [String]? = nil,
                     now: Date = Date(), logger: Logger) async throws -> String? {
        let targets: [String]
        if let only { targets = only } else { targets = try await subscribers(connection, userId: userId, logger: logger).matching(type.rawValue) }
        guard !targets.isEmpty else { return nil }
        let event = try Outbox.prepare(userId: userId, type: type, targets: targets, now: now, data: data)
        try await insert([event], connection, logger: logger)
        return event.id
    }
}
