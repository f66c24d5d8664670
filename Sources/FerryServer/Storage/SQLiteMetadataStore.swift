import FerryCore
import FerrySQLite
import Foundation
import GRDB

/// The metadata store on one SQLite database (WAL, `synchronous=FULL`).
public final class SQLiteMetadataStore: MetadataStore {
    public let pool: DatabasePool
    /// Absolute lifetime of a login session, however often its refresh token rotates.
    let sessionLifetime: TimeInterval
    public let outboxSignal = OutboxSignal()

    public init(pool: DatabasePool, sessionLifetime: TimeInterval = 30 * 24 * 3600) {
        self.pool = pool
        self.sessionLifetime = sessionLifetime
    }

    /// A write transaction that may queue webhook deliveries: the dispatcher is woken once it commits.
    func writeAndSignal<T: Sendable>(_ updates: @escaping @Sendable (Database) throws -> T) async throws -> T {
        defer { outboxSignal.poke() }
        return try await pool.write(updates)
    }

    // MARK: Users

    public func createUser(username: String, passwordHash: String, isAdmin: Bool) async throws -> StoredUser {
        let now = Date()
        do {
            return try await pool.write { db in
                try db.execute(
                    sql: "INSERT INTO user (username, password_hash, is_admin, created_at, password_changed_at) VALUES (?, ?, ?, ?, ?)",
                    arguments: [username, passwordHash, isAdmin, now, now])
                return StoredUser(id: db.lastInsertedRowID, username: username, passwordHash: passwordHash, isAdmin: isAdmin, createdAt: now)
            }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw MetadataError.duplicateUser(username)
        }
    }

    public func user(named username: String) async throws -> StoredUser? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM user WHERE username = ?", arguments: [username]).map(Self.user)
        }
    }

    public func user(id: Int64) async throws -> StoredUser? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM user WHERE id = ?", arguments: [id]).map(Self.user)
        }
    }

    public func users() async throws -> [StoredUser] {
        try await pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM user ORDER BY username").map(Self.user) }
    }

    @discardableResult
    public func setPassword(userId: Int64, passwordHash: String, revokeDevices: Bool) async throws -> [DeviceInfo] {
        let now = Date()
        return try await writeAndSignal { db in
            try db.execute(sql: "UPDATE user SET password_hash = ?, password_changed_at = ? WHERE id = ?", arguments: [passwordHash, now, userId])
            guard db.changesCount == 1 else { throw MetadataError.notFound("user") }
            let sessions = try String.fetchAll(db, sql: "SELECT id FROM session WHERE user_id = ? AND revoked_at IS NULL", arguments: [userId])
            try db.execute(
                sql: "UPDATE session SET revoked_at = ?, revoke_reason = 'password changed' WHERE user_id = ? AND revoked_at IS NULL",
                arguments: [now, userId])
            try Self.disableWebhooks(db, userId: userId, createdBySessions: sessions, devices: [],
                                     reason: StoreRules.WebhookDisabled.sessionEndedByPasswordChange)
            guard revokeDevices else { return [] }
            let devices = try Row.fetchAll(db, sql: "SELECT * FROM device WHERE user_id = ? AND revoked_at IS NULL ORDER BY created_at, id",
                                           arguments: [userId]).map(Self.deviceInfo)
            for device in devices {
                try Self.revokeDevice(db, userId: userId, deviceId: device.id, name: device.name, at: now,
                                      reason: StoreRules.WebhookDisabled.deviceRevokedByPasswordChange)
            }
            return devices.map { var d = $0; d.revokedAt = now; return d }
        }
    }

    static func user(_ row: Row) -> StoredUser {
        StoredUser(id: row["id"], username: row["username"], passwordHash: row["password_hash"], isAdmin: row["is_admin"], createdAt: row["created_at"])
    }

    // MARK: Sessions

    public func createSession(userId: Int64, refreshTokenHash: [UInt8], refreshExpiresAt: Date, sessionExpiresAt: Date) async throws -> String {
        let id = UUID().uuidString.lowercased()
        let now = Date()
        try await pool.write { db in
            try db.execute(sql: "INSERT INTO session (id, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)", arguments: [id, userId, now, sessionExpiresAt])
            try db.execute(
                sql: "INSERT INTO refresh_token (token_hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                arguments: [Data(refreshTokenHash), id, now, min(refreshExpiresAt, sessionExpiresAt)])
        }
        return id
    }

    public func rotateRefreshToken(presented: [UInt8], replacement: [UInt8], replacementExpiresAt: Date) async throws -> RefreshOutcome {
        let now = Date()
        return try await pool.write { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT r.session_id, r.expires_at, r.used_at, s.user_id, s.revoked_at, s.expires_at AS session_expires_at
                FROM refresh_token r JOIN session s ON s.id = r.session_id WHERE r.token_hash = ?
                """, arguments: [Data(presented)]) else { return .invalid }
            let sessionId: String = row["session_id"]
            let userId: Int64 = row["user_id"]
            if (row["revoked_at"] as Date?) != nil { return .invalid }
            if (row["used_at"] as Date?) != nil {
                try db.execute(
                    sql: "UPDATE session SET revoked_at = ?, revoke_reason = 'refresh token reused' WHERE id = ?",
                    arguments: [now, sessionId])
                return .reused(userId: userId, sessionId: sessionId)
            }
            let expires: Date = row["expires_at"]
            let sessionExpires: Date = row["session_expires_at"]
            guard expires > now, sessionExpires > now else { return .invalid }
            try db.execute(sql: "UPDATE refresh_token SET used_at = ? WHERE token_hash = ?", arguments: [now, Data(presented)])
            try db.execute(
                sql: "INSERT INTO refresh_token (token_hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                arguments: [Data(replacement), sessionId, now, min(replacementExpiresAt, sessionExpires)])
            return .rotated(userId: userId, sessionId: sessionId)
        }
    }

    public func revokeSession(id: String, userId: Int64, reason: String) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE session SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
                arguments: [Date(), reason, id, userId])
        }
    }

    public func isSessionActive(id: String, userId: Int64) async throws -> Bool {
        try await pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM session WHERE id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?",
                              arguments: [id, userId, Date()]) ?? false
        }
    }

    public func sessionForRefreshToken(_ hash: [UInt8]) async throws -> (sessionId: String, userId: Int64)? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT r.session_id, s.user_id FROM refresh_token r JOIN session s ON s.id = r.session_id WHERE r.token_hash = ?",
                             arguments: [Data(hash)]).map { ($0["session_id"], $0["user_id"]) }
        }
    }

    // MARK: Devices

    public func createDevice(userId: Int64, name: String, tokenHash: [UInt8]) async throws -> DeviceInfo {
        let id = UUID().uuidString.lowercased()
        let now = Date()
        try await writeAndSignal { db in
            try db.execute(sql: "INSERT INTO device (id, user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [id, userId, name, Data(tokenHash), now])
            try Outbox.emit(db, userId: userId, type: .deviceRegistered, data: DeviceEventData(device: id, name: name), now: now)
        }
        return DeviceInfo(id: id, name: name, createdAt: now, lastSeenAt: nil, revokedAt: nil)
    }

    public func devices(userId: Int64) async throws -> [DeviceInfo] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM device WHERE user_id = ? ORDER BY created_at, id", arguments: [userId]).map(Self.deviceInfo)
        }
    }

    static func deviceInfo(_ row: Row) -> DeviceInfo {
        DeviceInfo(id: row["id"], name: row["name"], createdAt: row["created_at"], lastSeenAt: row["last_seen_at"], revokedAt: row["revoked_at"])
    }

    public func revokeDevice(userId: Int64, deviceId: String) async throws -> Bool {
        try await writeAndSignal { db in
            guard let name = try String.fetchOne(db, sql: "SELECT name FROM device WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
                                                 arguments: [deviceId, userId]) else { return false }
            try Self.revokeDevice(db, userId: userId, deviceId: deviceId, name: name, at: Date(),
                                  reason: StoreRules.WebhookDisabled.deviceRevoked)
            return true
        }
    }

    /// Revokes one live device, reports it, and switches off the webhooks it created: a lost
    /// or stolen device must not leave behind an endpoint that keeps receiving events.
    static func revokeDevice(_ db: Database, userId: Int64, deviceId: String, name: String, at now: Date, reason: String) throws {
        try db.execute(sql: "UPDATE device SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL", arguments: [now, deviceId, userId])
        guard db.changesCount == 1 else { return }
        try Outbox.emit(db, userId: userId, type: .deviceRevoked, data: DeviceEventData(device: deviceId, name: name), now: now)
        try disableWebhooks(db, userId: userId, createdBySessions: [], devices: [deviceId], reason: reason)
    }

    public func identity(deviceTokenHash: [UInt8]) async throws -> Identity? {
        // Row is not Sendable, so the read returns values: with a Row it resolved to GRDB's
        // blocking `read`, on a task's thread.
        let found: (identity: Identity, lastSeen: Date?)? = try await pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT d.id, d.user_id, d.last_seen_at, u.username, u.is_admin FROM device d JOIN user u ON u.id = d.user_id
                WHERE d.token_hash = ? AND d.revoked_at IS NULL
                """, arguments: [Data(deviceTokenHash)]).map { row in
                (Identity(userId: row["user_id"], username: row["username"], isAdmin: row["is_admin"], deviceId: row["id"], sessionId: nil),
                 row["last_seen_at"])
            }
        }
        guard let (identity, lastSeen) = found else { return nil }
        // Remember when a device was last seen, at most once a minute (a write per request would serialise reads).
        if StoreRules.lastSeenIsStale(lastSeen) {
            try await pool.write { db in
                try db.execute(sql: "UPDATE device SET last_seen_at = ? WHERE id = ?", arguments: [Date(), identity.deviceId])
            }
        }
        return identity
    }

    // MARK: Libraries

    public func createLibrary(userId: Int64, name: String) async throws -> LibraryInfo {
        let id = UUID().uuidString.lowercased()
        let now = Date()
        do {
            try await pool.write { db in
                try db.execute(sql: "INSERT INTO library (id, user_id, name, created_at) VALUES (?, ?, ?, ?)", arguments: [id, userId, name, now])
            }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw MetadataError.duplicateLibrary(name)
        }
        return LibraryInfo(id: id, name: name, head: 0, createdAt: now)
    }

    public func libraries(userId: Int64) async throws -> [LibraryInfo] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM library WHERE user_id = ? ORDER BY name", arguments: [userId]).map(Self.library)
        }
    }

    public func library(userId: Int64, id: String) async throws -> LibraryInfo? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM library WHERE id = ? AND user_id = ?", arguments: [id, userId]).map(Self.library)
        }
    }

    static func library(_ row: Row) -> LibraryInfo {
        LibraryInfo(id: row["id"], name: row["name"], head: row["head"], createdAt: row["created_at"])
    }

    // MARK: Chunks

    public func missingChunks(userId: Int64, among hashes: [ContentHash]) async throws -> [ContentHash] {
        try await pool.read { db in
            var held = DirectStatement(try db.cachedStatement(sql: "SELECT 1 FROM user_chunk WHERE user_id = ? AND sha256 = ?"))
            var seen = Set<ContentHash>()
            return try hashes.filter { hash in
                guard seen.insert(hash).inserted else { return false }
                return try held.int64(userId, hash) == nil
            }
        }
    }

    public func recordChunks(userId: Int64, _ chunks: [ChunkRef], placedSince epoch: Int64?,
                             makeVisible: @escaping @Sendable () throws -> [Bool]) async throws -> [Bool] {
        // Formatted once: a Date is turned into text each time it is bound.
        let now = String.fromDatabaseValue(Date().databaseValue)!
        return try await pool.write { db in
            if let epoch { try Self.checkBlobFence(db, chunks.map(\.sha256), placedSince: epoch) }
            // The rows go first (no one sees them before the commit): the holds they add are
            // what the quota is charged, before any blob is made visible.
            var chunk = DirectStatement(try db.cachedStatement(sql: """
                INSERT INTO chunk (sha256, size, created_at, touched_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (sha256) DO UPDATE SET touched_at = excluded.touched_at
                """))
            var owner = DirectStatement(try db.cachedStatement(sql: "INSERT OR IGNORE INTO user_chunk (user_id, sha256) VALUES (?, ?)"))
            var added: Int64 = 0
            for c in chunks {
                try chunk.run(c.sha256, c.size, now, now)
                try owner.run(userId, c.sha256)
                if db.changesCount > 0 { added += c.size }
            }
            try Self.charge(db, userId: userId, added)
            return try makeVisible()
        }
    }

    public func chunkSize(userId: Int64, hash: ContentHash) async throws -> Int64? {
        try await pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT c.size FROM user_chunk u JOIN chunk c ON c.sha256 = u.sha256 WHERE u.user_id = ? AND u.sha256 = ?",
                               arguments: [userId, hash.data])
        }
    }

    // MARK: Files

    public func commit(userId: Int64, libraryId: String, deviceId: String?, operations: [CommitOperation]) async throws -> CommitResponse {
        try await writeAndSignal { db in
            var batch = try CommitBatch(db: db, userId: userId, libraryId: libraryId, deviceId: deviceId)
            let results = try operations.map { try batch.apply($0) }
            try batch.finish()
            return CommitResponse(results: results, head: batch.head)
        }
    }

    public func changes(libraryId: String, since: Int64, limit: Int) async throws -> FeedRead {
        try await pool.read { db in
            // One snapshot: the mark is as current as the rows.
            let library = try Row.fetchOne(db, sql: "SELECT head, purged_through FROM library WHERE id = ?", arguments: [libraryId])
            let rows = try Row.fetchAll(db, sql: """
                SELECT v.* FROM entry e JOIN version v ON v.library_id = e.library_id AND v.seq = e.seq
                WHERE e.library_id = ? AND e.seq > ? ORDER BY e.seq LIMIT ?
                """, arguments: [libraryId, since, limit + 1])
            let hasMore = rows.count > limit
            let changes = try rows.prefix(limit).map(VersionRow.decode)
            let page = ChangesResponse(changes: changes, cursor: changes.last?.version ?? since, hasMore: hasMore, head: library?["head"] ?? 0)
            return FeedRead(page: page, purgedThrough: library?["purged_through"] ?? 0)
        }
    }

    public func current(libraryId: String, path: FerryPath) async throws -> FileVersion? {
        try await pool.read { db in try CommitBatch.current(db, libraryId: libraryId, path: path) }
    }

    public func version(libraryId: String, path: FerryPath, seq: Int64) async throws -> FileVersion? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM version WHERE library_id = ? AND seq = ? AND path = ?",
                             arguments: [libraryId, seq, path.string]).map(VersionRow.decode)
        }
    }

    public func list(libraryId: String, directory: FerryPath?, after: String?, limit: Int) async throws -> ListResponse {
        try await pool.read { db in
            // The paths beneath (`StoreRules.Subtree`); a child has no further '/'.
            let tree = StoreRules.Subtree(directory)
            let rows = try Row.fetchAll(db, sql: """
                SELECT v.* FROM entry e JOIN version v ON v.library_id = e.library_id AND v.seq = e.seq
                WHERE e.library_id = ? AND e.path >= ? AND e.path < ? AND e.path > ? AND e.deleted = 0
                  AND instr(substr(e.path, ?), '/') = 0
                ORDER BY e.path LIMIT ?
                """, arguments: [libraryId, tree.prefix, tree.upper, max(after ?? "", tree.prefix), tree.prefix.unicodeScalars.count + 1,
                                 limit + 1])
            let entries = try rows.prefix(limit).map(VersionRow.decode)
            return ListResponse(entries: entries, nextAfter: rows.count > limit ? entries.last?.path.string : nil)
        }
    }

    public func trash(libraryId: String, directory: FerryPath?, after: String?, limit: Int) async throws -> TrashResponse {
        try await pool.read { db in
            // The directory itself, then the paths beneath it.
            let tree = StoreRules.Subtree(directory)
            let rows = try Row.fetchAll(db, sql: """
                SELECT e.path, t.seq AS deleted_seq, t.committed_at AS deleted_at, t.device_id AS deleted_by, l.seq, l.kind, l.size
                FROM entry e
                JOIN version t ON t.library_id = e.library_id AND t.seq = e.seq
                JOIN version l ON l.library_id = e.library_id AND l.path = e.path AND l.seq = (
                    SELECT max(seq) FROM version WHERE library_id = e.library_id AND path = e.path AND seq < e.seq AND deleted = 0)
                WHERE e.library_id = ? AND e.deleted = 1 AND (e.path = ? OR (e.path >= ? AND e.path < ?)) AND e.path > ?
                ORDER BY e.path LIMIT ?
                """, arguments: [libraryId, tree.exact, tree.prefix, tree.upper, after ?? "", limit + 1])
            let entries = try rows.prefix(limit).map { row in
                TrashEntry(path: try FerryPath(row["path"] as String), kind: try StoreRules.kind(row["kind"]), version: row["seq"], size: row["size"],
                           deletedVersion: row["deleted_seq"], deletedAt: row["deleted_at"], deletedBy: row["deleted_by"])
            }
            return TrashResponse(entries: entries, nextAfter: rows.count > limit ? entries.last?.path.string : nil)
        }
    }

    public func history(libraryId: String, path: FerryPath, before: Int64?, limit: Int) async throws -> HistoryResponse {
        try await pool.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT * FROM version WHERE library_id = ? AND path = ? AND seq < ? ORDER BY seq DESC LIMIT ?
                """, arguments: [libraryId, path.string, before ?? Int64.max, limit + 1])
            let versions = try rows.prefix(limit).map(VersionRow.decode)
            return HistoryResponse(versions: versions, nextBefore: rows.count > limit ? versions.last?.version : nil)
        }
    }

    public func restore(userId: Int64, libraryId: String, deviceId: String?, request: RestoreRequest) async throws -> RestoreOutcome {
        try await writeAndSignal { db in
            var batch = try CommitBatch(db: db, userId: userId, libraryId: libraryId, deviceId: deviceId)
            return try batch.restore(request)
        }
    }

    // MARK: Security log

    public func recordSecurityEvent(_ e: SecurityEvent) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT INTO security_event (at, kind, user_id, username, device_id, address, detail, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [e.at, e.kind.rawValue, e.userId, e.username, e.deviceId, e.address, e.detail, max(1, e.count)])
        }
    }

    public func securityEvents(userId: Int64?, since: Date?, before: Int64?, limit: Int) async throws -> [SecurityEvent] {
        try await pool.read { db in
            var conditions = ["id < ?"]
            var arguments: StatementArguments = [before ?? Int64.max]
            if let userId {
                conditions.append("user_id = ?")
                _ = arguments.append(contentsOf: [userId])
            }
            if let since {
                conditions.append("at >= ?")
                _ = arguments.append(contentsOf: [since])
            }
            _ = arguments.append(contentsOf: [limit])
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM security_event WHERE \(conditions.joined(separator: " AND ")) ORDER BY id DESC LIMIT ?",
                                        arguments: arguments)
            return rows.compactMap { row in
                SecurityEvent.Kind(rawValue: row["kind"]).map {
                    SecurityEvent(id: row["id"], at: row["at"], kind: $0, userId: row["user_id"], username: row["username"], deviceId: row["device_id"],
                                  address: row["address"], detail: row["detail"], count: row["count"])
                }
            }
        }
    }

    public func pruneSecurityEvents(before cutoff: Date) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM security_event WHERE at < ?", arguments: [cutoff])
            return db.changesCount
        }
    }

    // MARK: Maintenance

    public func referencedChunks() async throws -> [ContentHash: Int64] {
        try await pool.read { db in try Self.referenced(db) }
    }

    static func referenced(_ db: Database) throws -> [ContentHash: Int64] {
        var out: [ContentHash: Int64] = [:]
        let cursor = try Data.fetchCursor(db, sql: "SELECT chunks FROM version WHERE deleted = 0 AND kind = 'file'")
        while let packed = try cursor.next() { try StoreRules.reference(packed, into: &out) }
        return out
    }

    public func chunkExists(_ hash: ContentHash) async throws -> Bool {
        try await pool.read { db in try Bool.fetchOne(db, sql: "SELECT 1 FROM chunk WHERE sha256 = ?", arguments: [hash.data]) ?? false }
    }

    public func collectGarbage(grace: TimeInterval, listed: [ContentHash],
                               remove: @escaping @Sendable ([ContentHash]) throws -> Void) async throws -> GarbageReport {
        let cutoff = Date().addingTimeInterval(-grace)
        return try await pool.write { db in
            let (removed, report) = try Self.deleteGarbageRows(db, listed: listed, cutoff: cutoff)
            // Rows go first inside the transaction; the blobs go while the write lock still
            // holds, so no upload can re-reference them in between.
            try remove(removed)
            return report
        }
    }

    /// Decides what gc removes and deletes those chunk rows; returns every blob to remove
    /// (the rows' and the listed orphans').
    static func deleteGarbageRows(_ db: Database, listed: [ContentHash], cutoff: Date) throws -> ([ContentHash], GarbageReport) {
        let (referenced, byUser) = try Self.referencedByUser(db)
        try Self.releaseHolds(db, referencedBy: byUser, cutoff: cutoff)
        let rows = try Row.fetchAll(db, sql: "SELECT sha256, size, touched_at FROM chunk").compactMap { row in
            ContentHash(bytes: row["sha256"] as Data).map { StoreRules.ChunkRow(hash: $0, size: row["size"], touchedAt: row["touched_at"]) }
        }
        let (deleted, removed, report) = StoreRules.garbage(rows: rows, referenced: referenced, listed: listed, cutoff: cutoff)
        let delete = try db.cachedStatement(sql: "DELETE FROM chunk WHERE sha256 = ?")
        for hash in deleted { try delete.execute(arguments: [hash.data]) }
        return (removed, report)
    }
}
