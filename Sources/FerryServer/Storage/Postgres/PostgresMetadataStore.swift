import FerryCore
import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// The metadata store on PostgreSQL, for several `ferry-server` instances over one database
/// (SPEC §9). Same guarantees as `SQLiteMetadataStore`; where SQLite's single writer made
/// things safe, row locks and advisory locks do (docs/architecture.md, "Scale-out").
public final class PostgresMetadataStore: MetadataStore {
    public let database: PostgresDatabase
    let logger: Logger
    /// Absolute lifetime of a login session, however often its refresh token rotates.
    let sessionLifetime: TimeInterval
    /// Where the blob store's blocking publish and removal run (`recordChunks`, `gc`).
    let threadPool: NIOThreadPool
    public let outboxSignal = OutboxSignal()
    /// Names this instance in webhook leases.
    let instanceId = "ins_" + UUID().uuidString.lowercased().prefix(12)
    /// How long an endpoint's batch may stay claimed by one instance before another may take it.
    let leaseSeconds: Double

    public init(database: PostgresDatabase, threadPool: NIOThreadPool, sessionLifetime: TimeInterval, leaseSeconds: Double) {
        self.database = database
        self.logger = database.logger
        self.threadPool = threadPool
        self.sessionLifetime = sessionLifetime
        self.leaseSeconds = leaseSeconds
    }

    /// Key of the transaction-level advisory lock uploads take shared and gc exclusively.
    static let gcLock: Int64 = 0x6665_7272_795f_6763  // "ferry_gc"
    static let changesChannel = "ferry_changes"

    func read<T>(_ body: (PostgresConnection) async throws -> sending T) async throws -> sending T { try await database.read(body) }
    func write<T>(_ body: (PostgresConnection) async throws -> sending T) async throws -> sending T { try await database.write(body) }

    /// A write transaction that may queue webhook deliveries: the local dispatcher is woken
    /// once it commits (other instances by the transaction's NOTIFY).
    func writeAndSignal<T>(_ body: (PostgresConnection) async throws -> sending T) async throws -> sending T {
        defer { outboxSignal.poke() }
        return try await database.write(body)
    }

    // MARK: Signing key

    /// The JWT signing key every instance shares, created by whichever starts first.
    public func signingKey() async throws -> [UInt8] {
        let candidate = ByteBuffer(bytes: (0..<32).map { _ in UInt8.random(in: 0...255) })
        return try await write { connection in
            try await connection.query("INSERT INTO server_secret (name, value) VALUES ('jwt_signing_key', \(candidate)) ON CONFLICT (name) DO NOTHING",
                                       logger: logger)
            guard let key = try await PostgresDatabase.scalar(connection, "SELECT value FROM server_secret WHERE name = 'jwt_signing_key'",
                                                              as: ByteBuffer.self, logger: logger), key.readableBytes >= 32
            else { throw PostgresStoreError("the shared signing key in PostgreSQL is damaged (shorter than 32 bytes)") }
            return Array(key.readableBytesView)
        }
    }

    // MARK: Users

    public func createUser(username: String, passwordHash: String, isAdmin: Bool) async throws -> StoredUser {
        let now = Date()
        do {
            return try await write { connection in
                guard let id = try await PostgresDatabase.scalar(connection, """
                    INSERT INTO ferry_user (username, password_hash, is_admin, created_at, password_changed_at)
                    VALUES (\(username), \(passwordHash), \(isAdmin), \(now), \(now)) RETURNING id
                    """, as: Int64.self, logger: logger) else { throw PostgresStoreError("the new user got no id") }
                return StoredUser(id: id, username: username, passwordHash: passwordHash, isAdmin: isAdmin, createdAt: now)
            }
        } catch where PostgresDatabase.sqlState(error) == "23505" {
            throw MetadataError.duplicateUser(username)
        }
    }

    public func user(named username: String) async throws -> StoredUser? {
        try await read { try await PostgresDatabase.row($0, "SELECT * FROM ferry_user WHERE username = \(username)", logger: logger).map(PostgresRows.user) }
    }

    public func user(id: Int64) async throws -> StoredUser? {
        try await read { try await PostgresDatabase.row($0, "SELECT * FROM ferry_user WHERE id = \(id)", logger: logger).map(PostgresRows.user) }
    }

    public func users() async throws -> [StoredUser] {
        try await read { try await PostgresDatabase.rows($0, "SELECT * FROM ferry_user ORDER BY username", logger: logger).map(PostgresRows.user) }
    }

    @discardableResult
    public func setPassword(userId: Int64, passwordHash: String, revokeDevices: Bool) async throws -> [DeviceInfo] {
        let now = Date()
        return try await writeAndSignal { connection in
            let changed = try await PostgresDatabase.count(connection, """
                UPDATE ferry_user SET password_hash = \(passwordHash), password_changed_at = \(now) WHERE id = \(userId) RETURNING 1
                """, logger: logger)
            guard changed == 1 else { throw MetadataError.notFound("user") }
            let sessions = try await PostgresDatabase.column(connection, """
                UPDATE session SET revoked_at = \(now), revoke_reason = 'password changed' WHERE user_id = \(userId) AND revoked_at IS NULL RETURNING id
                """, as: String.self, logger: logger)
            try await Self.disableWebhooks(connection, userId: userId, createdBySessions: sessions, devices: [],
                                           reason: StoreRules.WebhookDisabled.sessionEndedByPasswordChange, logger: logger)
            guard revokeDevices else { return [] }
            let devices = try await PostgresDatabase.rows(connection, """
                SELECT * FROM device WHERE user_id = \(userId) AND revoked_at IS NULL ORDER BY created_at, id
                """, logger: logger).map(PostgresRows.device)
            for device in devices {
                try await Self.revokeDevice(connection, userId: userId, deviceId: device.id, name: device.name, at: now,
                                            reason: StoreRules.WebhookDisabled.deviceRevokedByPasswordChange, logger: logger)
            }
            return devices.map { var d = $0; d.revokedAt = now; return d }
        }
    }

    // MARK: Sessions

    public func createSession(userId: Int64, refreshTokenHash: [UInt8], refreshExpiresAt: Date, sessionExpiresAt: Date) async throws -> String {
        let id = UUID().uuidString.lowercased()
        let now = Date()
        try await write { connection in
            try await connection.query("""
                INSERT INTO session (id, user_id, created_at, expires_at) VALUES (\(id), \(userId), \(now), \(sessionExpiresAt))
                """, logger: logger)
            try await connection.query("""
                INSERT INTO refresh_token (token_hash, session_id, created_at, expires_at)
                VALUES (\(ByteBuffer(bytes: refreshTokenHash)), \(id), \(now), \(min(refreshExpiresAt, sessionExpiresAt)))
                """, logger: logger)
        }
        return id
    }

    /// The token's row is read `FOR UPDATE`: two instances shown the same token serialise,
    /// and the second sees it used and revokes the session (reuse detection).
    public func rotateRefreshToken(presented: [UInt8], replacement: [UInt8], replacementExpiresAt: Date) async throws -> RefreshOutcome {
        let now = Date()
        let presentedBytes = ByteBuffer(bytes: presented)
        return try await write { connection in
            guard let row = try await PostgresDatabase.row(connection, """
                SELECT r.session_id, r.expires_at, r.used_at, s.user_id, s.revoked_at, s.expires_at AS session_expires_at
                FROM refresh_token r JOIN session s ON s.id = r.session_id WHERE r.token_hash = \(presentedBytes) FOR UPDATE OF r, s
                """, logger: logger) else { return .invalid }
            let sessionId: String = try row.get("session_id")
            let userId: Int64 = try row.get("user_id")
            if try row.get("revoked_at", as: Date?.self) != nil { return .invalid }
            if try row.get("used_at", as: Date?.self) != nil {
                try await connection.query("""
                    UPDATE session SET revoked_at = \(now), revoke_reason = 'refresh token reused' WHERE id = \(sessionId)
                    """, logger: logger)
                return .reused(userId: userId, sessionId: sessionId)
            }
            let expires: Date = try row.get("expires_at")
            let sessionExpires: Date = try row.get("session_expires_at")
            guard expires > now, sessionExpires > now else { return .invalid }
            try await connection.query("UPDATE refresh_token SET used_at = \(now) WHERE token_hash = \(presentedBytes)", logger: logger)
            try await connection.query("""
                INSERT INTO refresh_token (token_hash, session_id, created_at, expires_at)
                VALUES (\(ByteBuffer(bytes: replacement)), \(sessionId), \(now), \(min(replacementExpiresAt, sessionExpires)))
                """, logger: logger)
            return .rotated(userId: userId, sessionId: sessionId)
        }
    }

    public func revokeSession(id: String, userId: Int64, reason: String) async throws {
        try await write { connection in
            try await connection.query("""
                UPDATE session SET revoked_at = \(Date()), revoke_reason = \(reason) WHERE id = \(id) AND user_id = \(userId) AND revoked_at IS NULL
                """, logger: logger)
        }
    }

    public func isSessionActive(id: String, userId: Int64) async throws -> Bool {
        try await read { connection in
            try await PostgresDatabase.row(connection, """
                SELECT 1 AS one FROM session WHERE id = \(id) AND user_id = \(userId) AND revoked_at IS NULL AND expires_at > \(Date())
                """, logger: logger) != nil
        }
    }

    public func sessionForRefreshToken(_ hash: [UInt8]) async throws -> (sessionId: String, userId: Int64)? {
        let found: (String, Int64)? = try await read { connection in
            try await PostgresDatabase.row(connection, """
                SELECT r.session_id, s.user_id FROM refresh_token r JOIN session s ON s.id = r.session_id WHERE r.token_hash = \(ByteBuffer(bytes: hash))
                """, logger: logger).map { (try $0.get("session_id", as: String.self), try $0.get("user_id", as: Int64.self)) }
        }
        return found.map { (sessionId: $0.0, userId: $0.1) }
    }

    // MARK: Devices

    public func createDevice(userId: Int64, name: String, tokenHash: [UInt8]) async throws -> DeviceInfo {
        let id = UUID().uuidString.lowercased()
        let now = Date()
        try await writeAndSignal { connection in
            try await connection.query("""
                INSERT INTO device (id, user_id, name, token_hash, created_at) VALUES (\(id), \(userId), \(name), \(ByteBuffer(bytes: tokenHash)), \(now))
                """, logger: logger)
            try await PostgresOutbox.emit(connection, userId: userId, type: .deviceRegistered, data: DeviceEventData(device: id, name: name), now: now,
                                          logger: logger)
        }
        return DeviceInfo(id: id, name: name, createdAt: now, lastSeenAt: nil, revokedAt: nil)
    }

    public func devices(userId: Int64) async throws -> [DeviceInfo] {
        try await read {
            try await PostgresDatabase.rows($0, "SELECT * FROM device WHERE user_id = \(userId) ORDER BY created_at, id", logger: logger).map(PostgresRows.device)
        }
    }

    public func revokeDevice(userId: Int64, deviceId: String) async throws -> Bool {
        try await writeAndSignal { connection in
            guard let name = try await PostgresDatabase.scalar(connection, """
                SELECT name FROM device WHERE id = \(deviceId) AND user_id = \(userId) AND revoked_at IS NULL FOR UPDATE
                """, as: String.self, logger: logger) else { return false }
            try await Self.revokeDevice(connection, userId: userId, deviceId: deviceId, name: name, at: Date(),
                                        reason: StoreRules.WebhookDisabled.deviceRevoked, logger: logger)
            return true
        }
    }

    /// Revokes one live device, reports it, and switches off the webhooks it created.
    static func revokeDevice(_ connection: PostgresConnection, userId: Int64, deviceId: String, name: String, at now: Date, reason: String,
                             logger: Logger) async throws {
        let changed = try await PostgresDatabase.count(connection, """
            UPDATE device SET revoked_at = \(now) WHERE id = \(deviceId) AND user_id = \(userId) AND revoked_at IS NULL RETURNING 1
            """, logger: logger)
        guard changed == 1 else { return }
        try await PostgresOutbox.emit(connection, userId: userId, type: .deviceRevoked, data: DeviceEventData(device: deviceId, name: name), now: now,
                                      logger: logger)
        try await disableWebhooks(connection, userId: userId, createdBySessions: [], devices: [deviceId], reason: reason, logger: logger)
    }

    public func identity(deviceTokenHash: [UInt8]) async throws -> Identity? {
        let found: (Identity, Date?)? = try await read { connection in
            try await PostgresDatabase.row(connection, """
                SELECT d.id, d.user_id, d.last_seen_at, u.username, u.is_admin FROM device d JOIN ferry_user u ON u.id = d.user_id
                WHERE d.token_hash = \(ByteBuffer(bytes: deviceTokenHash)) AND d.revoked_at IS NULL
                """, logger: logger).map { row in
                (Identity(userId: try row.get("user_id"), username: try row.get("username"), isAdmin: try row.get("is_admin"),
                          deviceId: try row.get("id"), sessionId: nil),
                 try row.get("last_seen_at", as: Date?.self))
            }
        }
        guard let (identity, lastSeen) = found else { return nil }
        if StoreRules.lastSeenIsStale(lastSeen) {
            try await write { connection in
                try await connection.query("UPDATE device SET last_seen_at = \(Date()) WHERE id = \(identity.deviceId)", logger: logger)
            }
        }
        return identity
    }

    // MARK: Libraries

    public func createLibrary(userId: Int64, name: String) async throws -> LibraryInfo {
        let id = UUID().uuidString.lowercased()
        let now = Date()
        do {
            try await write { connection in
                try await connection.query("INSERT INTO library (id, user_id, name, created_at) VALUES (\(id), \(userId), \(name), \(now))", logger: logger)
            }
        } catch where PostgresDatabase.sqlState(error) == "23505" {
            throw MetadataError.duplicateLibrary(name)
        }
        return LibraryInfo(id: id, name: name, head: 0, createdAt: now)
    }

    public func libraries(userId: Int64) async throws -> [LibraryInfo] {
        try await read { try await PostgresDatabase.rows($0, "SELECT * FROM library WHERE user_id = \(userId) ORDER BY name", logger: logger).map(PostgresRows.library) }
    }

    public func library(userId: Int64, id: String) async throws -> LibraryInfo? {
        try await read {
            try await PostgresDatabase.row($0, "SELECT * FROM library WHERE id = \(id) AND user_id = \(userId)", logger: logger).map(PostgresRows.library)
        }
    }

    // MARK: Chunks

    public func missingChunks(userId: Int64, among hashes: [ContentHash]) async throws -> [ContentHash] {
        var seen = Set<ContentHash>()
        let unique = hashes.filter { seen.insert($0).inserted }
        guard !unique.isEmpty else { return [] }
        let held: Set<ContentHash> = try await read { connection in
            var held = Set<ContentHash>()
            for try await bytes in try await connection.query("""
                SELECT sha256 FROM user_chunk WHERE user_id = \(userId) AND sha256 = ANY(\(unique.map(PostgresRows.bytes))::bytea[])
                """, logger: logger).decode(ByteBuffer.self) {
                if let hash = PostgresRows.hash(bytes) { held.insert(hash) }
            }
            return held
        }
        return unique.filter { !held.contains($0) }
    }

    /// Publishes the blobs and inserts their rows in one transaction that holds the gc lock
    /// shared: gc, which holds it exclusively, either saw these rows or runs after the blobs
    /// are in place (docs/architecture.md).
    public func recordChunks(userId: Int64, _ chunks: [ChunkRef], placedSince epoch: Int64?,
                             makeVisible: @escaping @Sendable () throws -> [Bool]) async throws -> [Bool] {
        let now = Date()
        var sizes: [ContentHash: Int64] = [:]
        for c in chunks { sizes[c.sha256] = c.size }
        // One order for every transaction, so concurrent uploads of the same chunks never deadlock.
        let sorted = sizes.keys.sorted()
        let threadPool = self.threadPool
        return try await write { connection in
            try await connection.query("SELECT pg_advisory_xact_lock_shared(\(Self.gcLock))", logger: logger)
            if let epoch { try await Self.checkBlobFence(connection, sorted, placedSince: epoch, logger: logger) }
            try await Self.checkQuota(connection, userId: userId, chunks, logger: logger)
            let isNew = try await threadPool.runIfActive { try makeVisible() }
            try await connection.query("""
                INSERT INTO chunk (sha256, size, created_at, touched_at)
                SELECT u.sha256, u.size, \(now), \(now) FROM unnest(\(sorted.map(PostgresRows.bytes))::bytea[], \(sorted.map { sizes[$0]! })::bigint[]) AS u(sha256, size)
                ON CONFLICT (sha256) DO UPDATE SET touched_at = excluded.touched_at
                """, logger: logger)
            var added: Int64 = 0
            for try await bytes in try await connection.query("""
                INSERT INTO user_chunk (sha256, user_id) SELECT u.sha256, \(userId) FROM unnest(\(sorted.map(PostgresRows.bytes))::bytea[]) AS u(sha256)
                ON CONFLICT DO NOTHING RETURNING sha256
                """, logger: logger).decode(ByteBuffer.self) {
                added += PostgresRows.hash(bytes).flatMap { sizes[$0] } ?? 0
            }
            try await Self.addUsage(connection, userId: userId, added, logger: logger)
            return isNew
        }
    }

    public func chunkSize(userId: Int64, hash: ContentHash) async throws -> Int64? {
        try await read { connection in
            try await PostgresDatabase.scalar(connection, """
                SELECT c.size FROM user_chunk u JOIN chunk c ON c.sha256 = u.sha256 WHERE u.user_id = \(userId) AND u.sha256 = \(PostgresRows.bytes(hash))
                """, as: Int64.self, logger: logger)
        }
    }

    // MARK: Files

    /// A batch on the library, whose row is locked for the transaction: commits to one
    /// library serialise across instances, so sequence numbers stay gap-free and ordered.
    /// The gc lock is held shared as well: a commit checks that the user holds its chunks,
    /// and gc must not delete one of them between that check and the commit (on SQLite both
    /// hold the one write lock).
    func batch(_ connection: PostgresConnection, userId: Int64, libraryId: String, deviceId: String?) async throws -> CommitEngine<PostgresCommitLedger> {
        try await connection.query("SELECT pg_advisory_xact_lock_shared(\(Self.gcLock))", logger: logger)
        // The library's owner or a member allowed to write; the owner's webhooks hear of it.
        guard let row = try await PostgresDatabase.row(connection, """
            SELECT head, name, user_id FROM library WHERE id = \(libraryId) FOR UPDATE
            """, logger: logger), let role = try await libraryRole(connection, userId: userId, libraryId: libraryId)
        else { throw MetadataError.notFound("library") }
        guard role.allows(.write) else { throw SharingRules.readOnly }
        let owner: Int64 = try row.get("user_id")
        let hasFollowers = try await PostgresDatabase.row(connection, """
            SELECT 1 AS one FROM attachment WHERE library_id = \(libraryId) AND follow LIMIT 1
            """, logger: logger) != nil
        return CommitEngine(ledger: PostgresCommitLedger(libraryId: libraryId, userId: userId), userId: owner, libraryId: libraryId,
                            deviceId: deviceId, libraryName: try row.get("name"), head: try row.get("head"),
                            subscribers: try await PostgresOutbox.subscribers(connection, userId: owner, logger: logger), hasFollowers: hasFollowers)
    }

    /// Writes what the batch decided, moves following attachments, and tells every instance
    /// about the new head (NOTIFY, sent when the transaction commits).
    func finish(_ batch: CommitEngine<PostgresCommitLedger>, startHead: Int64, _ connection: PostgresConnection) async throws {
        _ = try await batch.ledger.flush(connection, logger: logger)
        for version in batch.ledger.followed {
            try await Self.followAttachments(connection, libraryId: batch.libraryId, version: version, logger: logger)
        }
        if batch.head != startHead {
            try await connection.query("SELECT pg_notify(\(Self.changesChannel), \(batch.libraryId + ":" + String(batch.head)))", logger: logger)
        }
    }

    public func commit(userId: Int64, libraryId: String, deviceId: String?, operations: [CommitOperation]) async throws -> CommitResponse {
        try await writeAndSignal { connection in
            var batch = try await batch(connection, userId: userId, libraryId: libraryId, deviceId: deviceId)
            let startHead = batch.head
            try await batch.ledger.load(for: operations, connection, logger: logger)
            let results = try operations.map { try batch.apply($0) }
            try batch.finish()
            try await finish(batch, startHead: startHead, connection)
            return CommitResponse(results: results, head: batch.head)
        }
    }

    public func changes(libraryId: String, since: Int64, limit: Int) async throws -> FeedRead {
        try await read { connection in
            let head = try await PostgresDatabase.scalar(connection, "SELECT head FROM library WHERE id = \(libraryId)", as: Int64.self, logger: logger) ?? 0
            let rows = try await PostgresDatabase.rows(connection, """
                SELECT v.* FROM entry e JOIN version v ON v.library_id = e.library_id AND v.seq = e.seq
                WHERE e.library_id = \(libraryId) AND e.seq > \(since) ORDER BY e.seq LIMIT \(Int64(limit) + 1)
                """, logger: logger)
            let changes = try rows.prefix(limit).map(PostgresRows.version)
            // Read after the rows (each statement sees its own snapshot): a purge that removed
            // a deletion the rows no longer show has raised the mark by now.
            let purged = try await PostgresDatabase.scalar(connection, "SELECT purged_through FROM library WHERE id = \(libraryId)",
                                                           as: Int64.self, logger: logger) ?? 0
            return FeedRead(page: ChangesResponse(changes: changes, cursor: changes.last?.version ?? since, hasMore: rows.count > limit, head: head),
                            purgedThrough: purged)
        }
    }

    public func current(libraryId: String, path: FerryPath) async throws -> FileVersion? {
        try await read { try await PostgresRows.current($0, libraryId: libraryId, path: path, logger: logger) }
    }

    public func version(libraryId: String, path: FerryPath, seq: Int64) async throws -> FileVersion? {
        try await read { try await PostgresRows.version($0, libraryId: libraryId, path: path, seq: seq, logger: logger) }
    }

    public func list(libraryId: String, directory: FerryPath?, after: String?, limit: Int) async throws -> ListResponse {
        // The paths beneath (`StoreRules.Subtree`); a child has no further '/'.
        let tree = StoreRules.Subtree(directory)
        return try await read { connection in
            let rows = try await PostgresDatabase.rows(connection, """
                SELECT v.* FROM entry e JOIN version v ON v.library_id = e.library_id AND v.seq = e.seq
                WHERE e.library_id = \(libraryId) AND e.path >= \(tree.prefix) AND e.path < \(tree.upper) AND e.path > \(max(after ?? "", tree.prefix))
                  AND NOT e.deleted AND strpos(substr(e.path, \(Int32(tree.prefix.unicodeScalars.count + 1))), '/') = 0
                ORDER BY e.path LIMIT \(Int64(limit) + 1)
                """, logger: logger)
            let entries = try rows.prefix(limit).map(PostgresRows.version)
            return ListResponse(entries: entries, nextAfter: rows.count > limit ? entries.last?.path.string : nil)
        }
    }

    public func trash(libraryId: String, directory: FerryPath?, after: String?, limit: Int) async throws -> TrashResponse {
        // The directory itself, then the paths beneath it.
        let tree = StoreRules.Subtree(directory)
        return try await read { connection in
            let rows = try await PostgresDatabase.rows(connection, """
                SELECT e.path, t.seq AS deleted_seq, t.committed_at AS deleted_at, t.device_id AS deleted_by, l.seq, l.kind, l.size
                FROM entry e
                JOIN version t ON t.library_id = e.library_id AND t.seq = e.seq
                JOIN LATERAL (
                    SELECT v.seq, v.kind, v.size FROM version v
                    WHERE v.library_id = e.library_id AND v.path = e.path AND v.seq < e.seq AND NOT v.deleted ORDER BY v.seq DESC LIMIT 1) l ON true
                WHERE e.library_id = \(libraryId) AND e.deleted AND (e.path = \(tree.exact) OR (e.path >= \(tree.prefix) AND e.path < \(tree.upper)))
                  AND e.path > \(after ?? "")
                ORDER BY e.path LIMIT \(Int64(limit) + 1)
                """, logger: logger)
            let entries = try rows.prefix(limit).map { row in
                TrashEntry(path: try FerryPath(try row.get("path", as: String.self)), kind: try StoreRules.kind(row.get("kind")), version: try row.get("seq"),
                           size: try row.get("size"), deletedVersion: try row.get("deleted_seq"), deletedAt: try row.get("deleted_at"),
                           deletedBy: try row.get("deleted_by"))
            }
            return TrashResponse(entries: entries, nextAfter: rows.count > limit ? entries.last?.path.string : nil)
        }
    }

    public func history(libraryId: String, path: FerryPath, before: Int64?, limit: Int) async throws -> HistoryResponse {
        try await read { connection in
            let rows = try await PostgresDatabase.rows(connection, """
                SELECT * FROM version WHERE library_id = \(libraryId) AND path = \(path.string) AND seq < \(before ?? Int64.max)
                ORDER BY seq DESC LIMIT \(Int64(limit) + 1)
                """, logger: logger)
            let versions = try rows.prefix(limit).map(PostgresRows.version)
            return HistoryResponse(versions: versions, nextBefore: rows.count > limit ? versions.last?.version : nil)
        }
    }

    public func restore(userId: Int64, libraryId: String, deviceId: String?, request: RestoreRequest) async throws -> RestoreOutcome {
        try await writeAndSignal { connection in
            var batch = try await batch(connection, userId: userId, libraryId: libraryId, deviceId: deviceId)
            let startHead = batch.head
            try await batch.ledger.load(paths: [request.path], chunks: [], versions: [(request.path, request.version)], operations: [],
                                        connection, logger: logger)
            if let source = try batch.ledger.version(request.path, seq: request.version), !source.deleted {
                try await batch.ledger.load(paths: [], chunks: source.chunks.map(\.sha256), versions: [], operations: [], connection, logger: logger)
                if source.kind == .directory { try await batch.ledger.loadRemoval(of: source, connection, logger: logger) }
            }
            let outcome = try batch.restore(request)
            try await finish(batch, startHead: startHead, connection)
            return outcome
        }
    }

    // MARK: Security log

    public func recordSecurityEvent(_ e: SecurityEvent) async throws {
        try await write { connection in
            try await connection.query("""
                INSERT INTO security_event (at, kind, user_id, username, device_id, address, detail, count)
                VALUES (\(e.at), \(e.kind.rawValue), \(e.userId), \(e.username), \(e.deviceId), \(e.address), \(e.detail), \(Int32(max(1, min(e.count, Int(Int32.max))))))
                """, logger: logger)
        }
    }

    public func securityEvents(userId: Int64?, since: Date?, before: Int64?, limit: Int) async throws -> [SecurityEvent] {
        try await read { connection in
            let rows = try await PostgresDatabase.rows(connection, """
                SELECT * FROM security_event WHERE id < \(before ?? Int64.max)
                AND (\(userId)::bigint IS NULL OR user_id = \(userId)) AND (\(since)::timestamptz IS NULL OR at >= \(since))
                ORDER BY id DESC LIMIT \(Int64(limit))
                """, logger: logger)
            return try rows.compactMap { row in
                try SecurityEvent.Kind(rawValue: row.get("kind")).map {
                    SecurityEvent(id: try row.get("id"), at: try row.get("at"), kind: $0, userId: try row.get("user_id"), username: try row.get("username"),
                                  deviceId: try row.get("device_id"), address: try row.get("address"), detail: try row.get("detail"),
                                  count: Int(try row.get("count", as: Int32.self)))
                }
            }
        }
    }

    public func pruneSecurityEvents(before cutoff: Date) async throws -> Int {
        try await write { try await PostgresDatabase.count($0, "DELETE FROM security_event WHERE at < \(cutoff) RETURNING 1", logger: logger) }
    }

    // MARK: Maintenance

    public func referencedChunks() async throws -> [ContentHash: Int64] {
        try await read { try await Self.referenced($0, logger: logger) }
    }

    static func referenced(_ connection: PostgresConnection, logger: Logger) async throws -> [ContentHash: Int64] {
        var out: [ContentHash: Int64] = [:]
        for try await packed in try await connection.query("SELECT chunks FROM version WHERE NOT deleted AND kind = 'file'", logger: logger)
            .decode(ByteBuffer.self) {
            try StoreRules.reference(Data(packed.readableBytesView), into: &out)
        }
        return out
    }

    public func chunkExists(_ hash: ContentHash) async throws -> Bool {
        try await read { connection in
            try await PostgresDatabase.row(connection, "SELECT 1 AS one FROM chunk WHERE sha256 = \(PostgresRows.bytes(hash))", logger: logger) != nil
        }
    }

    /// Decides and removes under the gc lock held exclusively (uploads hold it shared while
    /// they publish and record), so the argument of the SQLite write lock holds across instances.
    public func collectGarbage(grace: TimeInterval, listed: [ContentHash],
                               remove: @escaping @Sendable ([ContentHash]) throws -> Void) async throws -> GarbageReport {
        let cutoff = Date().addingTimeInterval(-grace)
        let threadPool = self.threadPool
        return try await write { connection in
            let (removed, report) = try await Self.deleteGarbageRows(connection, listed: listed, cutoff: cutoff, logger: logger)
            try await threadPool.runIfActive { try remove(removed) }
            return report
        }
    }

    /// Takes the gc lock exclusively, decides what gc removes and deletes those chunk rows;
    /// returns every blob to remove (the rows' and the listed orphans').
    static func deleteGarbageRows(_ connection: PostgresConnection, listed: [ContentHash], cutoff: Date,
                                  logger: Logger) async throws -> ([ContentHash], GarbageReport) {
        try await connection.query("SELECT pg_advisory_xact_lock(\(Self.gcLock))", logger: logger)
        let (referenced, byUser) = try await Self.referencedByUser(connection, logger: logger)
        try await Self.releaseHolds(connection, referencedBy: byUser, cutoff: cutoff, logger: logger)
        var rows: [StoreRules.ChunkRow] = []
        for try await (sha, size, touched) in try await connection.query("SELECT sha256, size, touched_at FROM chunk", logger: logger)
            .decode((ByteBuffer, Int64, Date).self) {
            if let hash = PostgresRows.hash(sha) { rows.append(.init(hash: hash, size: size, touchedAt: touched)) }
        }
        let (deleted, removed, report) = StoreRules.garbage(rows: rows, referenced: referenced, listed: listed, cutoff: cutoff)
        if !deleted.isEmpty {
            try await connection.query("DELETE FROM chunk WHERE sha256 = ANY(\(deleted.map(PostgresRows.bytes))::bytea[])", logger: logger)
        }
        return (removed, report)
    }
}
