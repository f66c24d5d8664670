#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
import Foundation

/// The kinds of entry a library holds.
public enum EntryKind: String, Codable, Sendable, CaseIterable {
    case file, directory, symlink
}

/// One version of one path in a library, as the server records it. Deletes are versions
/// too (`deleted == true`): tombstones that propagate.
public struct FileVersion: Codable, Sendable, Hashable {
    /// The library's sequence number at which this version was committed.
    public var version: Int64
    public var path: FerryPath
    public var kind: EntryKind
    public var deleted: Bool
    public var size: Int64
    /// Whole-content SHA-256 for files; nil for directories, symlinks and tombstones.
    public var sha256: ContentHash?
    /// Modification time in integer nanoseconds since the Unix epoch.
    public var mtimeNs: Int64
    /// Permission bits (e.g. 0o644).
    public var mode: Int32
    /// Content chunks, in order (files only).
    public var chunks: [ChunkRef]
    /// Link target (symlinks only).
    public var target: String?
    /// The device that committed it; nil for web/script uploads with a user token.
    public var deviceId: String?
    /// When the server committed it.
    public var committedAt: Date

    public init(
        version: Int64, path: FerryPath, kind: EntryKind, deleted: Bool, size: Int64, sha256: ContentHash?,
        mtimeNs: Int64, mode: Int32, chunks: [ChunkRef], target: String?, deviceId: String?, committedAt: Date
    ) {
        self.version = version
        self.path = path
        self.kind = kind
        self.deleted = deleted
        self.size = size
        self.sha256 = sha256
        self.mtimeNs = mtimeNs
        self.mode = mode
        self.chunks = chunks
        self.target = target
        self.deviceId = deviceId
        self.committedAt = committedAt
    }

    enum CodingKeys: String, CodingKey {
        case version, path, kind, deleted, size, sha256, mode, chunks, target
        case mtimeNs = "mtime_ns", deviceId = "device_id", committedAt = "committed_at"
    }
}

/// One operation of a commit batch.
public struct CommitOperation: Codable, Sendable, Hashable {
    public enum Op: String, Codable, Sendable { case put, delete }

    public var op: Op
    public var path: FerryPath
    /// The version this change was based on; nil when the client believes the path is new.
    public var base: Int64?
    // Put only:
    public var kind: EntryKind?
    public var size: Int64?
    public var sha256: ContentHash?
    public var mtimeNs: Int64?
    public var mode: Int32?
    public var chunks: [ChunkRef]?
    public var target: String?
    /// Set when this put uploads a conflict copy: the server records the conflict.
    public var conflictOf: ConflictOrigin?

    public init(
        op: Op, path: FerryPath, base: Int64?, kind: EntryKind? = nil, size: Int64? = nil, sha256: ContentHash? = nil,
        mtimeNs: Int64? = nil, mode: Int32? = nil, chunks: [ChunkRef]? = nil, target: String? = nil, conflictOf: ConflictOrigin? = nil
    ) {
        self.conflictOf = conflictOf
        self.op = op
        self.path = path
        self.base = base
        self.kind = kind
        self.size = size
        self.sha256 = sha256
        self.mtimeNs = mtimeNs
        self.mode = mode
        self.chunks = chunks
        self.target = target
    }

    /// A put of file content described by a manifest.
    public static func putFile(_ path: FerryPath, base: Int64?, manifest: ContentManifest, mtimeNs: Int64, mode: Int32) -> Self {
        .init(op: .put, path: path, base: base, kind: .file, size: manifest.size, sha256: manifest.sha256,
              mtimeNs: mtimeNs, mode: mode, chunks: manifest.chunks)
    }

    /// A delete of `path`, based on the version the client last saw.
    public static func delete(_ path: FerryPath, base: Int64?) -> Self {
        .init(op: .delete, path: path, base: base)
    }

    enum CodingKeys: String, CodingKey {
        case op, path, base, kind, size, sha256, mode, chunks, target
        case mtimeNs = "mtime_ns", conflictOf = "conflict_of"
    }
}

/// What a conflict copy is a copy of: the path both sides changed and the server version
/// that won it (the copy holds the side that lost).
public struct ConflictOrigin: Codable, Sendable, Hashable {
    public var path: FerryPath
    public var theirs: Int64
    public init(path: FerryPath, theirs: Int64) {
        self.path = path
        self.theirs = theirs
    }
}

/// `POST /libraries/{lib}/commit` body.
public struct CommitRequest: Codable, Sendable, Equatable {
    public var operations: [CommitOperation]
    /// Asks for brief answers: a put applied exactly as sent is answered with its new
    /// sequence number (`CommitResult.seq`) instead of the whole version, which the client
    /// rebuilds with `FileVersion(applying:as:deviceId:committedAt:)`.
    public var brief: Bool?
    public init(operations: [CommitOperation], brief: Bool? = nil) {
        self.operations = operations
        self.brief = brief
    }
}

/// The outcome of one commit operation. Each item is atomic on its own.
public struct CommitResult: Codable, Sendable, Hashable {
    public enum Status: String, Codable, Sendable {
        /// Applied; `version` is the new version.
        case ok
        /// The base did not match; `current` is the server's current version (nil: path never existed).
        case conflict
        /// Chunks this user has not uploaded; upload them and retry.
        case missingChunks = "missing_chunks"
        /// Refused for a reason retrying will not fix; see `error`.
        case rejected
    }

    public var status: Status
    public var version: FileVersion?
    /// In a brief answer, instead of `version`: the sequence number of a put applied as sent.
    public var seq: Int64?
    public var current: FileVersion?
    public var missing: [ContentHash]?
    public var error: ErrorBody?

    public init(status: Status, version: FileVersion? = nil, seq: Int64? = nil, current: FileVersion? = nil, missing: [ContentHash]? = nil,
                error: ErrorBody? = nil) {
        self.status = status
        self.version = version
        self.seq = seq
        self.current = current
        self.missing = missing
        self.error = error
    }
}

/// `POST /libraries/{lib}/commit` answer: one result per operation, in order.
public struct CommitResponse: Codable, Sendable, Equatable {
    public var results: [CommitResult]
    /// The library's latest sequence number after the batch.
    public var head: Int64
    /// With brief results: when they were committed, and by which device (the same for
    /// every version of one commit).
    public var committedAt: Date?
    public var deviceId: String?

    public init(results: [CommitResult], head: Int64, committedAt: Date? = nil, deviceId: String? = nil) {
        self.results = results
        self.head = head
        self.committedAt = committedAt
        self.deviceId = deviceId
    }

    enum CodingKeys: String, CodingKey {
        case results, head
        case committedAt = "committed_at", deviceId = "device_id"
    }

    /// The versions `operations` became, in order: the whole version of a full result, the
    /// rebuilt one of a brief result, nil for any other.
    public func versions(of operations: [CommitOperation]) -> [FileVersion?] {
        zip(operations, results).map { op, result in
            if let version = result.version { return version }
            guard let seq = result.seq, let committedAt else { return nil }
            return FileVersion(applying: op, as: seq, deviceId: deviceId, committedAt: committedAt)
        }
    }

    /// This answer with every result that `FileVersion(applying:as:deviceId:committedAt:)`
    /// rebuilds exactly from its operation given as its sequence number only.
    public func brief(for operations: [CommitOperation]) -> CommitResponse {
        guard let first = results.lazy.compactMap(\.version).first else { return self }
        var brief = CommitResponse(results: results, head: head, committedAt: first.committedAt, deviceId: first.deviceId)
        for (i, (op, result)) in zip(operations, results).enumerated() {
            guard let version = result.version,
                  FileVersion(applying: op, as: version.version, deviceId: first.deviceId, committedAt: first.committedAt) == version else { continue }
            brief.results[i].version = nil
            brief.results[i].seq = version.version
        }
        return brief
    }
}

extension FileVersion {
    /// The version a put of `op` becomes when the server applies it as sent, as number
    /// `seq`: what a brief commit answer stands for. Nil for a delete, and for a put that
    /// leaves its mtime or mode for the server to choose.
    public init?(applying op: CommitOperation, as seq: Int64, deviceId: String?, committedAt: Date) {
        guard op.op == .put, let kind = op.kind, let mtimeNs = op.mtimeNs, let mode = op.mode else { return nil }
        self.init(version: seq, path: op.path, kind: kind, deleted: false, size: kind == .file ? op.size ?? 0 : 0,
                  sha256: kind == .file ? op.sha256 : nil, mtimeNs: mtimeNs, mode: mode, chunks: kind == .file ? op.chunks ?? [] : [],
                  target: kind == .symlink ? op.target : nil, deviceId: deviceId, committedAt: committedAt)
    }
}

/// `GET /libraries/{lib}/changes` answer. `changes` holds the current version of every
/// path whose version is greater than `since`, in sequence order; with `has_more` false
/// the client has everything up to `cursor`.
public struct ChangesResponse: Codable, Sendable, Equatable {
    public var changes: [FileVersion]
    /// Pass as `since` next time.
    public var cursor: Int64
    public var hasMore: Bool
    public var head: Int64

    public init(changes: [FileVersion], cursor: Int64, hasMore: Bool, head: Int64) {
        self.changes = changes
        self.cursor = cursor
        self.hasMore = hasMore
        self.head = head
    }

    enum CodingKeys: String, CodingKey {
        case changes, cursor, head
        case hasMore = "has_more"
    }
}

/// `GET /libraries/{lib}/list` answer: the live entries directly inside a directory, by name.
public struct ListResponse: Codable, Sendable {
    public var entries: [FileVersion]
    /// Pass as `after` for the next page; nil when the listing is complete.
    public var nextAfter: String?

    public init(entries: [FileVersion], nextAfter: String?) {
        self.entries = entries
        self.nextAfter = nextAfter
    }

    enum CodingKeys: String, CodingKey {
        case entries
        case nextAfter = "next_after"
    }
}

/// One deleted entry of `GET /libraries/{lib}/trash`: a path whose current version is a
/// delete, with the version that `restore` brings back.
public struct TrashEntry: Codable, Sendable, Hashable {
    public var path: FerryPath
    public var kind: EntryKind
    /// The last version before the delete: the one to restore.
    public var version: Int64
    /// That version's size (0 for directories and links).
    public var size: Int64
    /// The delete's own version number.
    public var deletedVersion: Int64
    public var deletedAt: Date
    /// The device that deleted it; nil for a user token (web, scripts).
    public var deletedBy: String?

    public init(path: FerryPath, kind: EntryKind, version: Int64, size: Int64, deletedVersion: Int64, deletedAt: Date, deletedBy: String?) {
        self.path = path
        self.kind = kind
        self.version = version
        self.size = size
        self.deletedVersion = deletedVersion
        self.deletedAt = deletedAt
        self.deletedBy = deletedBy
    }

    enum CodingKeys: String, CodingKey {
        case path, kind, version, size
        case deletedVersion = "deleted_version", deletedAt = "deleted_at", deletedBy = "deleted_by"
    }
}

/// `GET /libraries/{lib}/trash` answer: deleted entries at and under a directory, by path.
public struct TrashResponse: Codable, Sendable {
    public var entries: [TrashEntry]
    /// Pass as `after` for the next page; nil when the listing is complete.
    public var nextAfter: String?

    public init(entries: [TrashEntry], nextAfter: String?) {
        self.entries = entries
        self.nextAfter = nextAfter
    }

    enum CodingKeys: String, CodingKey {
        case entries
        case nextAfter = "next_after"
    }
}

/// `GET /libraries/{lib}/history` answer, newest first.
public struct HistoryResponse: Codable, Sendable {
    public var versions: [FileVersion]
    /// Pass as `before` for the next page; nil when there is none.
    public var nextBefore: Int64?

    public init(versions: [FileVersion], nextBefore: Int64?) {
        self.versions = versions
        self.nextBefore = nextBefore
    }

    enum CodingKeys: String, CodingKey {
        case versions
        case nextBefore = "next_before"
    }
}

/// `POST /libraries/{lib}/restore` body.
public struct RestoreRequest: Codable, Sendable {
    public var path: FerryPath
    public var version: Int64
    /// If given, the restore is refused as a conflict unless the path's current version is this.
    public var base: Int64?

    public init(path: FerryPath, version: Int64, base: Int64? = nil) {
        self.path = path
        self.version = version
        self.base = base
    }
}

/// A single version answer (`PUT .../files`, restore).
public struct VersionResponse: Codable, Sendable {
    public var version: FileVersion
    /// For a restored directory: how many entries under it were restored with it.
    public var restoredEntries: Int?
    public init(version: FileVersion, restoredEntries: Int? = nil) {
        self.version = version
        self.restoredEntries = restoredEntries
    }

    enum CodingKeys: String, CodingKey {
        case version
        case restoredEntries = "restored_entries"
    }
}

/// The error body of every non-2xx answer: `{"error": {"code", "message"}}`.
public struct ErrorBody: Codable, Sendable, Hashable, Error {
    public var code: String
    public var message: String
    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
}

public struct ErrorEnvelope: Codable, Sendable {
    public var error: ErrorBody
    public init(error: ErrorBody) { self.error = error }
}

/// `POST /auth/login` body.
public struct LoginRequest: Codable, Sendable {
    public var username: String
    public var password: String
    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }
}

/// `POST /auth/refresh` and `POST /auth/logout` body.
public struct RefreshRequest: Codable, Sendable {
    public var refreshToken: String
    public init(refreshToken: String) { self.refreshToken = refreshToken }
    enum CodingKeys: String, CodingKey { case refreshToken = "refresh_token" }
}

/// Tokens from login and refresh.
public struct TokenResponse: Codable, Sendable {
    public var accessToken: String
    public var refreshToken: String
    /// Seconds until the access token expires.
    public var expiresIn: Int
    public var tokenType: String

    public init(accessToken: String, refreshToken: String, expiresIn: Int, tokenType: String = "Bearer") {
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.expiresIn = expiresIn
        self.tokenType = tokenType
    }

    enum CodingKeys: String, CodingKey {
        case accessToken = "access_token", refreshToken = "refresh_token", expiresIn = "expires_in", tokenType = "token_type"
    }
}

/// `GET /auth/me` answer.
public struct MeResponse: Codable, Sendable, Equatable {
    public var id: Int64
    public var username: String
    public var isAdmin: Bool
    /// Set when the request used a device token.
    public var deviceId: String?

    public init(id: Int64, username: String, isAdmin: Bool, deviceId: String?) {
        self.id = id
        self.username = username
        self.isAdmin = isAdmin
        self.deviceId = deviceId
    }

    enum CodingKeys: String, CodingKey {
        case id, username
        case isAdmin = "is_admin", deviceId = "device_id"
    }
}

/// A registered device.
public struct DeviceInfo: Codable, Sendable, Hashable {
    public var id: String
    public var name: String
    public var createdAt: Date
    public var lastSeenAt: Date?
    public var revokedAt: Date?

    public init(id: String, name: String, createdAt: Date, lastSeenAt: Date?, revokedAt: Date?) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
        self.revokedAt = revokedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name
        case createdAt = "created_at", lastSeenAt = "last_seen_at", revokedAt = "revoked_at"
    }
}

/// `POST /devices` body.
public struct RegisterDeviceRequest: Codable, Sendable {
    public var name: String
    public init(name: String) { self.name = name }
}

/// `POST /devices` answer: the device and its token, shown this once.
public struct RegisterDeviceResponse: Codable, Sendable {
    public var device: DeviceInfo
    public var token: String
    public init(device: DeviceInfo, token: String) {
        self.device = device
        self.token = token
    }
}

public struct DeviceListResponse: Codable, Sendable {
    public var devices: [DeviceInfo]
    public init(devices: [DeviceInfo]) { self.devices = devices }
}

/// A library: a named tree owned by one user, possibly shared with others (`role`, `owner`).
public struct LibraryInfo: Codable, Sendable, Hashable {
    public var id: String
    public var name: String
    /// The latest sequence number committed.
    public var head: Int64
    public var createdAt: Date
    /// The caller's access, where the server says (absent from servers before sharing).
    public var role: LibraryRole?
    /// The owner's user name, where the server says.
    public var owner: String?

    public init(id: String, name: String, head: Int64, createdAt: Date, role: LibraryRole? = nil, owner: String? = nil) {
        self.id = id
        self.name = name
        self.head = head
        self.createdAt = createdAt
        self.role = role
        self.owner = owner
    }

    enum CodingKeys: String, CodingKey {
        case id, name, head, role, owner
        case createdAt = "created_at"
    }
}

/// `POST /libraries` body.
public struct CreateLibraryRequest: Codable, Sendable {
    public var name: String
    public init(name: String) { self.name = name }
}

public struct LibraryListResponse: Codable, Sendable {
    public var libraries: [LibraryInfo]
    public init(libraries: [LibraryInfo]) { self.libraries = libraries }
}

/// `POST /chunks/missing` body and answer.
public struct MissingChunksRequest: Codable, Sendable, Equatable {
    public var chunks: [ContentHash]
    public init(chunks: [ContentHash]) { self.chunks = chunks }
}

public struct MissingChunksResponse: Codable, Sendable, Equatable {
    /// The subset this user must upload, in request order.
    public var missing: [ContentHash]
    public init(missing: [ContentHash]) { self.missing = missing }
}

/// `PUT /chunks/{sha256}` answer.
public struct ChunkUploadResponse: Codable, Sendable {
    public var sha256: ContentHash
    public var size: Int64
    public init(sha256: ContentHash, size: Int64) {
        self.sha256 = sha256
        self.size = size
    }
}

/// Protocol constants shared by both sides.
public enum FerryProtocol {
    /// The wire protocol version; the chunker parameters belong to it.
    public static let version = 1
    /// The most hashes one `chunks/missing` request may ask about.
    public static let maxMissingQuery = 10_000
    /// The largest chunk the server accepts (the chunker's forced cut).
    public static let maxChunkSize = ChunkerParameters.v1.maxSize
    /// The most items a change-feed page returns.
    public static let maxChangesLimit = 5000
    /// The longest long-poll wait, in seconds.
    public static let maxWaitSeconds = 300
}

/// How large the requests a server takes may be, from `GET /protocol`. A client sizes its
/// chunk batches and commits by the smaller of these and its own `current`; a server from
/// before that endpoint answers 404 and is sent requests within `legacy`.
public struct ServerLimits: Codable, Sendable, Equatable {
    /// Chunks in one `POST /chunks/batch`.
    public var batchChunks: Int
    /// Bytes of chunk content in one batch (frame headers come on top).
    public var batchContentBytes: Int
    /// Operations in one `POST /libraries/{lib}/commit`.
    public var commitOperations: Int
    /// Bytes of one JSON request body (the server's `http.maxJSONBodyBytes`).
    public var jsonBodyBytes: Int

    public init(batchChunks: Int, batchContentBytes: Int, commitOperations: Int, jsonBodyBytes: Int) {
        self.batchChunks = batchChunks
        self.batchContentBytes = batchContentBytes
        self.commitOperations = commitOperations
        self.jsonBodyBytes = jsonBodyBytes
    }

    /// What every server accepts, also those from before `GET /protocol`.
    public static let legacy = ServerLimits(batchChunks: 1000, batchContentBytes: 16 << 20, commitOperations: 1000, jsonBodyBytes: 32 << 20)
    /// What this build sends at most, and its server accepts unless configured otherwise. Fewer, larger
    /// requests: for 20,000 small files, 4,000 per batch and per commit took 10 % less of
    /// the server's CPU and a quarter fewer bytes written than 1,000.
    public static let current = ServerLimits(batchChunks: 4000, batchContentBytes: 16 << 20, commitOperations: 4000, jsonBodyBytes: 32 << 20)

    /// The limits a client uses with a server that announced `self`: none above what this
    /// build sends (so a server cannot make it hold more in memory), none below one, and
    /// batches of at least one largest chunk (the protocol's floor: below it a chunk of
    /// `FerryProtocol.maxChunkSize` could not travel at all, and the server's refusal of it
    /// is an error a person can read).
    public func agreed(with own: ServerLimits = .current) -> ServerLimits {
        func pick(_ theirs: Int, _ mine: Int) -> Int { max(1, min(theirs, mine)) }
        let content = max(FerryProtocol.maxChunkSize, pick(batchContentBytes, own.batchContentBytes))
        return ServerLimits(batchChunks: pick(batchChunks, own.batchChunks), batchContentBytes: content,
                            commitOperations: pick(commitOperations, own.commitOperations), jsonBodyBytes: pick(jsonBodyBytes, own.jsonBodyBytes))
    }

    /// Largest request body of a chunk batch within these limits.
    public var batchRequestBytes: Int { batchContentBytes + batchChunks * ChunkBatchFormat.headerSize }

    enum CodingKeys: String, CodingKey {
        case batchChunks = "batch_chunks", batchContentBytes = "batch_content_bytes"
        case commitOperations = "commit_operations", jsonBodyBytes = "json_body_bytes"
    }
}

/// `GET /protocol` answer.
public struct ProtocolResponse: Codable, Sendable, Equatable {
    public var version: Int
    public var limits: ServerLimits
    public init(version: Int = FerryProtocol.version, limits: ServerLimits) {
        self.version = version
        self.limits = limits
    }
}

/// `POST /chunks/batch`: many chunks in one request, as frames of a 32-byte SHA-256, an
/// 8-byte big-endian size and that many bytes. One file-system sync covers the batch, so
/// neither small files nor the chunks of a large one pay several fsyncs each.
public enum ChunkBatchFormat {
    public static let headerSize = 40

    public static func header(_ hash: ContentHash, size: Int) -> [UInt8] {
        withHeader(hash, size: size) { Array($0) }
    }

    /// Calls `body` with a frame's 40 header bytes, built on the stack: a batch body writes
    /// one per chunk, and an array each was two allocations.
    @discardableResult
    public static func withHeader<R>(_ hash: ContentHash, size: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var frame: (ContentHash, UInt64) = (hash, 0)
        return try hash.withUnsafeBytes { digest in
            try withUnsafeMutableBytes(of: &frame) { raw in
                raw.copyMemory(from: digest)
                raw.storeBytes(of: UInt64(size).bigEndian, toByteOffset: 32, as: UInt64.self)
                return try body(UnsafeRawBufferPointer(rebasing: raw[0..<headerSize]))
            }
        }
    }

    /// The frames of a batch of at most `maxChunks`: each chunk's hash and the byte range of
    /// its content. Throws a sentence naming the first malformed frame.
    public static func parse(_ body: UnsafeRawBufferPointer, maxChunks: Int) throws(ChunkBatchError) -> [(hash: ContentHash, range: Range<Int>)] {
        var frames: [(ContentHash, Range<Int>)] = []
        var at = 0
        while at < body.count {
            guard body.count - at >= headerSize else { throw ChunkBatchError("frame \(frames.count + 1) is cut off inside its 40-byte header") }
            guard let hash = ContentHash(bytes: UnsafeRawBufferPointer(rebasing: body[at..<(at + 32)])) else { throw ChunkBatchError("frame \(frames.count + 1) has no valid hash") }
            let size = body[(at + 32)..<(at + 40)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard size <= UInt64(FerryProtocol.maxChunkSize) else {
                throw ChunkBatchError("frame \(frames.count + 1) declares \(size) bytes; a chunk is at most \(FerryProtocol.maxChunkSize)")
            }
            let start = at + headerSize
            guard body.count - start >= Int(size) else { throw ChunkBatchError("frame \(frames.count + 1) declares \(size) bytes but the body ends first") }
            frames.append((hash, start..<(start + Int(size))))
            guard frames.count <= maxChunks else { throw ChunkBatchError("a batch holds at most \(maxChunks) chunks") }
            at = start + Int(size)
        }
        return frames
    }
}

public struct ChunkBatchError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The answer to `POST /chunks/batch`: chunks now stored for the caller, and chunks whose
/// bytes did not hash to their name (nothing of those was kept).
public struct ChunkBatchResponse: Codable, Sendable, Equatable {
    public var stored: [ChunkRef]
    public var rejected: [ContentHash]

    public init(stored: [ChunkRef], rejected: [ContentHash]) {
        self.stored = stored
        self.rejected = rejected
    }
}

/// Deletion versions of a library: confirmed past the mass-delete guard (`POST
/// /libraries/{lib}/confirmed-deletes`), or asked about (`…/confirmed-deletes/lookup`) and
/// answered with those confirmed.
public struct ConfirmedDeletions: Codable, Sendable, Equatable {
    /// At most `maxCount` per request.
    public var versions: [Int64]

    /// The most versions one request carries.
    public static let maxCount = 10_000

    public init(versions: [Int64]) { self.versions = versions }
}
