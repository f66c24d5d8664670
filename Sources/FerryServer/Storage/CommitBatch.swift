import FerryCore
import FerrySQLite
import Foundation
import GRDB

/// What a commit batch reads and writes in its backend, inside the batch's one transaction.
/// The decisions are `CommitEngine`'s, the same for every backend; a ledger only answers
/// and records (SQLite through cached statements, PostgreSQL from what it loaded up front).
protocol CommitLedger {
    /// The current version (tombstones included) of `path` in the batch's library.
    mutating func current(_ path: FerryPath) throws -> FileVersion?
    /// Some live entry strictly below `path`, if any.
    mutating func liveDescendant(of path: FerryPath) throws -> String?
    /// The recorded size of a chunk, if the committing user uploaded it.
    mutating func chunkSize(_ hash: ContentHash) throws -> Int64?
    /// A version of `path` by number.
    mutating func version(_ path: FerryPath, seq: Int64) throws -> FileVersion?
    /// What the removal that deleted `directory`'s version took away beneath it, each as its
    /// last live version with the tombstone that is current now, ancestors first; entries
    /// live again since are left out.
    ///
    /// A directory is deleted only once it is empty, so a device removing a folder deletes
    /// everything in it first, deepest first, just before the folder. The removal is that
    /// run: walking back from the folder's delete, the deletes beneath it by the same device,
    /// up to anything else under it (a put, another device's change) or a put of that
    /// device anywhere (its pass sent its puts before its deletes). A file deleted on its
    /// own earlier is not part of it and stays in the trash (`RemovalWalk`).
    mutating func removedWith(_ directory: FileVersion) throws -> [(FileVersion, Int64)]
    /// Writes a new version and makes it the path's current entry.
    mutating func append(_ version: FileVersion) throws
    /// Marks open conflicts whose copy is `copyPath` as settled by the copy's deletion.
    mutating func settleConflicts(copyPath: FerryPath, at stamp: Date) throws
    /// Records an open conflict: `path` was won by `theirs`; the copy is `copyPath` at `mine`.
    mutating func insertConflict(id: String, path: FerryPath, copyPath: FerryPath, mine: Int64, theirs: Int64, at stamp: Date) throws
    /// Writes an event and its deliveries to the outbox.
    mutating func emit(_ event: PreparedEvent) throws
    /// Moves attachments that follow `version.path` to `version` and reports it.
    mutating func followAttachments(_ version: FileVersion) throws
    /// Writes the library's new head.
    mutating func setHead(_ head: Int64) throws
}

/// Applies commit operations inside one write transaction. Each operation is decided and
/// written on its own (atomic per item); the library head is written once at the end.
/// Backend-neutral: every read and write goes through the ledger.
struct CommitEngine<Ledger: CommitLedger> {
    var ledger: Ledger
    /// The library's owner, whose webhooks hear of the batch (the committer may be a member).
    let userId: Int64
    let libraryId: String
    let deviceId: String?
    let libraryName: String
    private(set) var head: Int64
    private let startHead: Int64
    let now: Date
    /// The user's endpoints, read once for the whole batch.
    private let subscribers: Subscribers
    /// Set by a restore: puts are reported as `file.restored` from this version.
    var restoringFrom: Int64?
    /// Whether any attachment follows a file of this library (read once per batch).
    private let hasFollowers: Bool
    /// Paths seen to be live directories during this batch, kept up to date by `insert`:
    /// the files of one directory ask about the same parent a thousand times.
    private var liveDirectories = Set<String>()

    init(ledger: Ledger, userId: Int64, libraryId: String, deviceId: String?, libraryName: String, head: Int64,
         subscribers: Subscribers, hasFollowers: Bool, now: Date = Date()) {
        self.ledger = ledger
        self.userId = userId
        self.libraryId = libraryId
        self.deviceId = deviceId
        self.libraryName = libraryName
        self.head = head
        self.startHead = head
        self.subscribers = subscribers
        self.hasFollowers = hasFollowers
        self.now = now
    }

    /// Writes the new head if anything changed.
    mutating func finish() throws {
        guard head != startHead else { return }
        try ledger.setHead(head)
    }

    /// Decides one operation and, if accepted, records it as the next version.
    mutating func apply(_ op: CommitOperation) throws -> CommitResult {
        let current = try currentVersion(of: op.path)
        if let refusal = CommitRules.validate(op) { return CommitResult(status: .rejected, error: refusal) }

        if !CommitRules.baseMatches(op.base, current: current) {
            // A retry whose first answer was lost: the same device already committed exactly this.
            if let current, current.deviceId == deviceId, deviceId != nil, CommitRules.sameContent(op, current) {
                return CommitResult(status: .ok, version: current)
            }
            return CommitResult(status: .conflict, current: current)
        }

        switch op.op {
        case .delete:
            guard let current, !current.deleted else { return CommitResult(status: .conflict, current: current) }
            if current.kind == .directory, let child = try liveDescendant(of: op.path) {
                return rejected("path_conflict", "directory '\(op.path)' is not empty ('\(child)' exists); delete its contents first")
            }
            let version = try insert(path: op.path, kind: current.kind, deleted: true, size: 0, sha256: nil,
                                     mtimeNs: CommitRules.nanoseconds(now), mode: current.mode, chunks: [], target: nil)
            // Deleting a conflict copy settles its conflict: the person chose the other side.
            try ledger.settleConflicts(copyPath: op.path, at: now)
            try report(.fileDeleted, version)
            return CommitResult(status: .ok, version: version)

        case .put:
            let kind = op.kind!
            if let blocker = try liveFileAncestor(of: op.path) {
                return rejected("path_conflict", "'\(blocker)' is a \(blocker.kind.rawValue), so '\(op.path)' cannot be created under it")
            }
            if kind != .directory, let child = try liveDescendant(of: op.path) {
                return rejected("path_conflict", "'\(op.path)' is a directory with entries ('\(child)'); it cannot become a \(kind.rawValue)")
            }
            let chunks = op.chunks ?? []
            if kind == .file {
                let (missing, wrongSize) = try checkChunks(chunks)
                if let wrongSize {
                    return rejected("chunk_size_mismatch", "chunk \(wrongSize.sha256) is stored with another size than \(wrongSize.size)")
                }
                if !missing.isEmpty { return CommitResult(status: .missingChunks, missing: missing) }
            }
            var theirs: FileVersion?
            if let origin = op.conflictOf {
                guard origin.path != op.path, let won = try ledger.version(origin.path, seq: origin.theirs) else {
                    return rejected("invalid_request", "conflict_of must name another path and a version of it that exists")
                }
                theirs = won
            }
            let mode = op.mode ?? (kind == .directory ? 0o755 : kind == .symlink ? 0o777 : 0o644)
            let version = try insert(
                path: op.path, kind: kind, deleted: false, size: kind == .file ? op.size! : 0,
                sha256: kind == .file ? op.sha256 : nil, mtimeNs: op.mtimeNs ?? CommitRules.nanoseconds(now), mode: mode,
                chunks: kind == .file ? chunks : [], target: kind == .symlink ? op.target : nil)
            if let restoringFrom {
                try report(.fileRestored, version, restoredFrom: restoringFrom)
            } else {
                try report(current.map { $0.deleted } ?? true ? .fileCreated : .fileUpdated, version)
            }
            if let theirs { try recordConflict(copy: version, theirs: theirs) }
            if hasFollowers, kind == .file { try ledger.followAttachments(version) }
            return CommitResult(status: .ok, version: version)
        }
    }

    /// Writes a file event to the outbox when one of the user's endpoints listens.
    private mutating func report(_ type: EventType, _ version: FileVersion, restoredFrom: Int64? = nil) throws {
        let targets = subscribers.matching(type.rawValue)
        guard !targets.isEmpty else { return }
        try ledger.emit(Outbox.prepare(userId: userId, type: type, targets: targets, now: now,
                                       data: FileEventData(library: libraryId, libraryName: libraryName, version: version, restoredFrom: restoredFrom)))
    }

    /// Records an uploaded conflict copy as an open conflict and reports `file.conflict`.
    private mutating func recordConflict(copy: FileVersion, theirs: FileVersion) throws {
        let id = SQLiteMetadataStore.newId("cfl")
        try ledger.insertConflict(id: id, path: theirs.path, copyPath: copy.path, mine: copy.version, theirs: theirs.version, at: now)
        let info = ConflictInfo(id: id, library: libraryId, path: theirs.path, mine: ConflictSide(copy), theirs: ConflictSide(theirs),
                                detectedAt: now, resolvedAt: nil, resolution: nil)
        let targets = subscribers.matching(EventType.fileConflict.rawValue)
        guard !targets.isEmpty else { return }
        try ledger.emit(Outbox.prepare(userId: userId, type: .fileConflict, targets: targets, now: now,
                                       data: ConflictEventData(libraryName: libraryName, conflict: info)))
    }

    private func rejected(_ code: String, _ message: String) -> CommitResult {
        CommitResult(status: .rejected, error: .init(code: code, message: message))
    }
}

/// The walk back from a directory's delete that finds what was removed with it (see
/// `CommitLedger.removedWith`), fed versions newest first; the same rule on every backend.
struct RemovalWalk {
    let prefix: String
    let device: String?
    /// Each path beneath the directory deleted by the removal, with its delete's number.
    private(set) var removed: [String: Int64] = [:]
    private(set) var done = false

    init(directory: FerryPath, removedBy device: String?) {
        self.prefix = directory.string + "/"
        self.device = device
    }

    /// Takes the next older version; sets `done` at the first that ends the removal.
    mutating func take(seq: Int64, path: String, deleted: Bool, deviceId: String?) {
        let sameDevice = deviceId == device
        if path.hasPrefix(prefix) {
            guard deleted, sameDevice else { done = true; return }
            if removed[path] == nil { removed[path] = seq }
        } else if sameDevice, !deleted {
            done = true
        }
    }
}

/// The rules of a commit that need no storage: shape checks and how a base is judged.
enum CommitRules {
    /// A stale base is a conflict; a path that is absent or deleted may be (re)created from nothing.
    static func baseMatches(_ base: Int64?, current: FileVersion?) -> Bool {
        guard let current else { return base == nil }
        if current.deleted { return base == nil || base == current.version }
        return base == current.version
    }

    static func sameContent(_ op: CommitOperation, _ v: FileVersion) -> Bool {
        switch op.op {
        case .delete: v.deleted
        case .put: !v.deleted && v.kind == op.kind && v.sha256 == (op.kind == .file ? op.sha256 : nil)
            && v.target == (op.kind == .symlink ? op.target : nil) && (op.mode == nil || op.mode == v.mode)
        }
    }

    /// Structural checks the JSON decoder cannot express.
    static func validate(_ op: CommitOperation) -> ErrorBody? {
        if let base = op.base, base < 1 { return .init(code: "invalid_request", message: "base must be a version number (≥ 1) or null") }
        guard op.op == .put else { return nil }
        guard let kind = op.kind else { return .init(code: "invalid_request", message: "a put needs 'kind' (file, directory or symlink)") }
        // Only rwx bits: setuid, setgid and sticky bits arriving on another device could
        // make a synced program run as its owner there.
        if let mode = op.mode, !(0...0o777).contains(mode) {
            return .init(code: "invalid_request", message: "mode must be permission bits between 0 and 0o777 (no setuid, setgid or sticky bit)")
        }
        switch kind {
        case .file:
            guard let size = op.size, size >= 0 else { return .init(code: "invalid_request", message: "a file put needs a non-negative 'size'") }
            guard let sha = op.sha256 else { return .init(code: "invalid_request", message: "a file put needs 'sha256'") }
            let chunks = op.chunks ?? []
            if chunks.isEmpty != (size == 0) { return .init(code: "invalid_request", message: "'chunks' must list the content: empty exactly when size is 0") }
            var total: Int64 = 0
            for c in chunks {
                guard c.size > 0, c.size <= Int64(FerryProtocol.maxChunkSize) else {
                    return .init(code: "invalid_request", message: "chunk sizes must be between 1 and \(FerryProtocol.maxChunkSize) bytes")
                }
                total += c.size
            }
            if total != size { return .init(code: "invalid_request", message: "chunk sizes add up to \(total), not to size \(size)") }
            if size == 0 && sha != .empty { return .init(code: "hash_mismatch", message: "an empty file's sha256 must be \(ContentHash.empty)") }
            if chunks.count == 1 && chunks[0].sha256 != sha {
                return .init(code: "hash_mismatch", message: "a one-chunk file's sha256 must equal its chunk's")
            }
        case .directory:
            if (op.size ?? 0) != 0 || !(op.chunks ?? []).isEmpty || op.sha256 != nil {
                return .init(code: "invalid_request", message: "a directory has no size, sha256 or chunks")
            }
        case .symlink:
            guard let target = op.target, !target.isEmpty, target.utf8.count <= FerryPath.maxPathBytes, !target.utf8.contains(0) else {
                return .init(code: "invalid_request", message: "a symlink put needs a 'target' of 1 to \(FerryPath.maxPathBytes) bytes without NUL")
            }
        }
        return nil
    }

    static func nanoseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1e9).rounded()) }
}

extension CommitEngine {
    /// Chunks this user has not uploaded, and the first whose recorded size differs.
    private mutating func checkChunks(_ chunks: [ChunkRef]) throws -> ([ContentHash], ChunkRef?) {
        var missing: [ContentHash] = []
        var seen = Set<ContentHash>()
        for c in chunks where seen.insert(c.sha256).inserted {
            guard let size = try ledger.chunkSize(c.sha256) else {
                missing.append(c.sha256)
                continue
            }
            if size != c.size { return (missing, c) }
        }
        return (missing, nil)
    }

    /// The nearest ancestor that is a live file or symlink, if any.
    private mutating func liveFileAncestor(of path: FerryPath) throws -> FileVersion? {
        var parent = path.parent
        while let p = parent {
            if liveDirectories.contains(p.string) { return nil }
            if let v = try currentVersion(of: p), !v.deleted {
                guard v.kind == .directory else { return v }
                liveDirectories.insert(p.string)
                return nil
            }
            parent = p.parent
        }
        return nil
    }

    private mutating func liveDescendant(of path: FerryPath) throws -> String? { try ledger.liveDescendant(of: path) }

    private mutating func currentVersion(of path: FerryPath) throws -> FileVersion? { try ledger.current(path) }

    private mutating func insert(
        path: FerryPath, kind: EntryKind, deleted: Bool, size: Int64, sha256: ContentHash?, mtimeNs: Int64, mode: Int32,
        chunks: [ChunkRef], target: String?
    ) throws -> FileVersion {
        head += 1
        if !deleted && kind == .directory { liveDirectories.insert(path.string) } else { liveDirectories.remove(path.string) }
        let v = FileVersion(version: head, path: path, kind: kind, deleted: deleted, size: size, sha256: sha256, mtimeNs: mtimeNs,
                            mode: mode, chunks: chunks, target: target, deviceId: deviceId, committedAt: now)
        try ledger.append(v)
        return v
    }
}

/// Decodes `version` rows.
enum VersionRow {
    static func decode(_ row: Row) throws -> FileVersion {
        let path = try FerryPath(row["path"] as String)
        let kind = try StoreRules.kind(row["kind"])
        let sha = (row["sha256"] as Data?).flatMap { ContentHash(bytes: $0) }
        return FileVersion(
            version: row["seq"], path: path, kind: kind, deleted: row["deleted"], size: row["size"], sha256: sha, mtimeNs: row["mtime_ns"],
            mode: row["mode"], chunks: try ChunkList.decode(row["chunks"]), target: row["target"], deviceId: row["device_id"],
            committedAt: row["committed_at"])
    }
}

/// A chunk list packed as 40-byte records (32-byte SHA-256, 8-byte big-endian size):
/// a 1 GiB file's list is ~40 KB instead of ~100 KB of JSON.
/// The server's use of the packed chunk list: a corrupt one is a database error.
enum ChunkList {
    static func encode(_ chunks: [ChunkRef]) -> Data { PackedChunkList.encode(chunks) }

    static func decode(_ data: Data) throws -> [ChunkRef] {
        guard let chunks = PackedChunkList.decode(data) else { throw corrupt }
        return chunks
    }

    /// The size `hash` has in the packed list, nil when the list does not hold it.
    static func size(of hash: ContentHash, in packed: UnsafeRawBufferPointer) throws -> Int64? {
        guard packed.count % 40 == 0 else { throw corrupt }
        return PackedChunkList.size(of: hash, in: packed)
    }

    private static let corrupt = MetadataError.invalid("corrupt chunk list in database")
}
