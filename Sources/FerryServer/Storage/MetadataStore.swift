import FerryCore
import Foundation

/// Who is making a request, once authenticated.
public struct Identity: Sendable, Equatable {
    public var userId: Int64
    public var username: String
    public var isAdmin: Bool
    /// Set for device tokens.
    public var deviceId: String?
    /// Set for user access tokens: the login session the token belongs to.
    public var sessionId: String?
}

/// A stored user.
public struct StoredUser: Sendable, Equatable {
    public var id: Int64
    public var username: String
    public var passwordHash: String
    public var isAdmin: Bool
    public var createdAt: Date
}

/// What presenting a refresh token led to.
public enum RefreshOutcome: Sendable, Equatable {
    /// Accepted and replaced by the new token.
    case rotated(userId: Int64, sessionId: String)
    /// Already used: a stolen copy may be in play, so the whole session was revoked.
    case reused(userId: Int64, sessionId: String)
    /// Unknown, expired or belonging to a revoked session.
    case invalid
}

/// What a restore made current.
public struct RestoreOutcome: Sendable, Equatable {
    /// The restored path's new version.
    public var version: FileVersion
    /// Entries beneath a restored directory restored with it.
    public var restoredEntries: Int
    /// The library's head afterwards.
    public var head: Int64
}

/// What garbage collection did.
public struct GarbageReport: Sendable, Equatable {
    public var removedChunks: Int
    public var removedBytes: Int64
    public var keptInGrace: Int
    /// Blobs with no chunk row at all: an upload whose blob was published but whose
    /// metadata transaction then failed (a full disk, a crash) left them behind.
    public var removedOrphans: Int = 0
    /// Objects deleted from an object store: this run's and what an interrupted run left in
    /// the trash table (always 0 with the file blob store, whose trash is a directory).
    public var objectsDeleted: Int = 0
    /// Hashes in the trash table that a chunk row named again: their objects were kept.
    public var keptFromTrash: Int = 0
}

/// Failures of the metadata store that map to API errors.
public enum MetadataError: Error, Equatable, Sendable {
    case duplicateUser(String)
    case duplicateLibrary(String)
    case notFound(String)
    case conflict(current: FileVersion?)
    case invalid(String)
    /// The request is valid but the resource's state refuses it (e.g. a conflict already resolved).
    case stateConflict(String)
    /// Visible to the caller but not theirs to change.
    case forbidden(String)
    /// An upload's chunk was being removed by gc when it was placed: upload it again.
    case collected(String)
}

/// Everything the server remembers apart from blob bytes. Intent-named so a PostgreSQL
/// backend can follow; every method that touches user data takes the user id and filters by it.
public protocol MetadataStore: ConflictStore, WebhookStore, TaskStore, DeleteConfirmationStore, BlobTrashStore, RetentionStore, QuotaStore, LibrarySharingStore {
    // Users
    func createUser(username: String, passwordHash: String, isAdmin: Bool) async throws -> StoredUser
    func user(named username: String) async throws -> StoredUser?
    func user(id: Int64) async throws -> StoredUser?
    func users() async throws -> [StoredUser]
    /// Replaces a password hash and ends every session of that user, and with
    /// `revokeDevices` every device too; webhooks created by what was ended are switched off.
    /// Returns the devices revoked.
    @discardableResult
    func setPassword(userId: Int64, passwordHash: String, revokeDevices: Bool) async throws -> [DeviceInfo]

    // Sessions and refresh tokens
    func createSession(userId: Int64, refreshTokenHash: [UInt8], refreshExpiresAt: Date, sessionExpiresAt: Date) async throws -> String
    func rotateRefreshToken(presented: [UInt8], replacement: [UInt8], replacementExpiresAt: Date) async throws -> RefreshOutcome
    func revokeSession(id: String, userId: Int64, reason: String) async throws
    func isSessionActive(id: String, userId: Int64) async throws -> Bool
    func sessionForRefreshToken(_ hash: [UInt8]) async throws -> (sessionId: String, userId: Int64)?
    /// A dashboard sign-in: a session without refresh tokens, found by its browser cookie,
    /// which is stored only as its SHA-256. It ends like any session (sign-out, password
    /// change, expiry).
    func createDashboardSession(userId: Int64, cookieHash: [UInt8], expiresAt: Date) async throws -> String
    /// Who a dashboard cookie signs in, while its session is live.
    func dashboardIdentity(cookieHash: [UInt8]) async throws -> Identity?

    // Devices
    func createDevice(userId: Int64, name: String, tokenHash: [UInt8]) async throws -> DeviceInfo
    func devices(userId: Int64) async throws -> [DeviceInfo]
    /// Revokes a device and switches off the webhooks it created.
    func revokeDevice(userId: Int64, deviceId: String) async throws -> Bool
    func identity(deviceTokenHash: [UInt8]) async throws -> Identity?

    // Libraries
    func createLibrary(userId: Int64, name: String) async throws -> LibraryInfo
    func libraries(userId: Int64) async throws -> [LibraryInfo]
    func library(userId: Int64, id: String) async throws -> LibraryInfo?

    // Chunks
    func missingChunks(userId: Int64, among hashes: [ContentHash]) async throws -> [ContentHash]
    // Recording uploaded chunks: `recordChunks(userId:_:placedSince:makeVisible:)` (BlobTrashStore)
    // records that `userId` uploaded `chunks`, in one write transaction: `makeVisible`
    // publishes their blobs under the same write lock (returning, per chunk, whether its
    // blob was new) before the rows that reference them commit.
    /// The chunk's size if this user may read it.
    func chunkSize(userId: Int64, hash: ContentHash) async throws -> Int64?

    // Files
    func commit(userId: Int64, libraryId: String, deviceId: String?, operations: [CommitOperation]) async throws -> CommitResponse
    /// A page of the change feed after `since`, and the library's retention mark as the same
    /// read saw it (after the rows: a purge the rows missed is never hidden from the 410 check).
    func changes(libraryId: String, since: Int64, limit: Int) async throws -> FeedRead
    func current(libraryId: String, path: FerryPath) async throws -> FileVersion?
    func version(libraryId: String, path: FerryPath, seq: Int64) async throws -> FileVersion?
    func history(libraryId: String, path: FerryPath, before: Int64?, limit: Int) async throws -> HistoryResponse
    /// The live entries directly inside `directory` (nil: the library's root), by path,
    /// after `after`; a page is complete only when `nextAfter` is nil (SPEC §6).
    func list(libraryId: String, directory: FerryPath?, after: String?, limit: Int) async throws -> ListResponse
    /// Deleted entries (whose current version is a delete) at and beneath `directory` (nil:
    /// the whole library), by path, after `after`; complete only when `nextAfter` is nil.
    func trash(libraryId: String, directory: FerryPath?, after: String?, limit: Int) async throws -> TrashResponse
    /// Makes an old version current again as a new version; a directory's comes back with
    /// what was removed with it (see `SQLiteMetadataStore.removedWith`), in one transaction.
    func restore(userId: Int64, libraryId: String, deviceId: String?, request: RestoreRequest) async throws -> RestoreOutcome

    /// Bytes stored, and per user the bytes of the chunks they uploaded (each counted once
    /// per user, as quotas count). One pass over the chunk tables: for the admin page.
    func storageUse() async throws -> StorageUse

    // Security log
    func recordSecurityEvent(_ event: SecurityEvent) async throws
    /// Entries newest first: of one user (or all), at or after `since`, with ids below `before`.
    func securityEvents(userId: Int64?, since: Date?, before: Int64?, limit: Int) async throws -> [SecurityEvent]
    /// Removes entries older than `cutoff`; returns how many.
    func pruneSecurityEvents(before cutoff: Date) async throws -> Int

    // Maintenance
    /// Every chunk some version references, with its recorded size.
    func referencedChunks() async throws -> [ContentHash: Int64]
    /// Removes chunks no version references whose last upload is older than `grace`, and
    /// the blobs among `listed` (every blob stored, listed before this call) that no chunk
    /// row names once the write lock is held; `remove` takes all those blobs out of place
    /// at once, under that lock, which uploads take to publish.
    func collectGarbage(grace: TimeInterval, listed: [ContentHash],
                        remove: @escaping @Sendable ([ContentHash]) throws -> Void) async throws -> GarbageReport
    /// Whether a chunk row exists (used to settle the blob trash after a crash).
    func chunkExists(_ hash: ContentHash) async throws -> Bool
}

/// What the blob store holds, in all and per user.
public struct StorageUse: Sendable, Equatable {
    public struct PerUser: Sendable, Equatable {
        public var username: String
        public var chunks: Int
        public var bytes: Int64
    }
    public var chunks: Int
    public var bytes: Int64
    /// Every user, by name; users who uploaded nothing count zero.
    public var users: [PerUser]
}

/// One line of the security log.
public struct SecurityEvent: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        case loginSucceeded = "login.succeeded"
        case loginFailed = "login.failed"
        case logout
        case passwordChanged = "password.changed"
        case rateLimited = "rate_limited"
        case deviceRegistered = "device.registered"
        case deviceRevoked = "device.revoked"
        case refreshTokenReused = "refresh_token.reused"
    }

    /// Set once stored; pages of the log go by it.
    public var id: Int64?
    public var at: Date
    public var kind: Kind
    public var userId: Int64?
    public var username: String?
    public var deviceId: String?
    public var address: String?
    public var detail: String?
    /// How many occurrences this line stands for (refused logins are written counted).
    public var count: Int

    public init(id: Int64? = nil, at: Date = Date(), kind: Kind, userId: Int64? = nil, username: String? = nil, deviceId: String? = nil,
                address: String? = nil, detail: String? = nil, count: Int = 1) {
        self.id = id
        self.at = at
        self.kind = kind
        self.userId = userId
        self.username = username
        self.deviceId = deviceId
        self.address = address
        self.detail = detail
        self.count = count
    }

    enum CodingKeys: String, CodingKey {
        case id, at, kind, username, address, detail, count
        case userId = "user_id", deviceId = "device_id"
    }
}

extension MetadataStore {
    /// The newest `limit` entries, of one user or of everyone.
    public func securityEvents(userId: Int64?, limit: Int) async throws -> [SecurityEvent] {
        try await securityEvents(userId: userId, since: nil, before: nil, limit: limit)
    }
}
