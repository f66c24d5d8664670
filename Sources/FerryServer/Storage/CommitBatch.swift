import FerryCore
import FerrySQLite
import Foundation
import GRDB

/// Applies commit operations inside one write transaction. Each operation is decided and
/// written on its own (atomic per item); the library head is written once at the end.
struct CommitBatch {
    let db: Database
    let userId: Int64
    let libraryId: String
    let deviceId: String?
    let libraryName: String
    private(set) var head: Int64
    private let startHead: Int64
    private let now = Date()
    /// `now` as the text SQLite stores, formatted once for the batch instead of per row.
    private let stamp: String
    /// The user's endpoints, read once for the whole batch.
    private let subscribers: Subscribers
    /// Set by a restore: puts are reported as `file.restored` from this version.
    var restoringFrom: Int64?
    /// Whether any attachment follows a file of this library (read once per batch).
    private let hasFollowers: Bool
    /// Paths seen to be live directories during this batch, kept up to date by `insert`:
    /// the files of one directory ask about the same parent a thousand times.
    private var liveDirectories = Set<String>()
    /// The statements run for every operation, bound directly (`DirectStatement`).
    private var entrySeq: DirectStatement
    private var descendant: DirectStatement
    private var chunkSize: DirectStatement
    private var addVersion: DirectStatement
    private var setEntry: DirectStatement

    init(db: Database, userId: Int64, libraryId: String, deviceId: String?) throws {
        guard let row = try Row.fetchOne(db, sql: "SELECT head, name FROM library WHERE id = ? AND user_id = ?", arguments: [libraryId, userId]) else {
            throw MetadataError.notFound("library")
        }
        self.db = db
        self.userId = userId
        self.libraryId = libraryId
        self.libraryName = row["name"]
        self.deviceId = deviceId
        self.head = row["head"]
        self.startHead = head
        self.stamp = String.fromDatabaseValue(now.databaseValue)!
        entrySeq = DirectStatement(try db.cachedStatement(sql: "SELECT seq FROM entry WHERE library_id = ? AND path = ?"))
        descendant = DirectStatement(try db.cachedStatement(sql: "SELECT path FROM entry WHERE library_id = ? AND path > ? AND path < ? AND deleted = 0 LIMIT 1"))
        chunkSize = DirectStatement(try db.cachedStatement(
            sql: "SELECT c.size FROM user_chunk u JOIN chunk c ON c.sha256 = u.sha256 WHERE u.user_id = ? AND u.sha256 = ?"))
        addVersion = DirectStatement(try db.cachedStatement(sql: """
            INSERT INTO version (library_id, seq, path, kind, deleted, size, sha256, mtime_ns, mode, chunks, target, device_id, committed_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """))
        setEntry = DirectStatement(try db.cachedStatement(sql: """
            INSERT INTO entry (library_id, path, seq, deleted) VALUES (?, ?, ?, ?)
            ON CONFLICT (library_id, path) DO UPDATE SET seq = excluded.seq, deleted = excluded.deleted
            """))
        self.subscribers = try Subscribers.load(db, userId: userId)
        self.hasFollowers = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM attachment WHERE library_id = ? AND follow = 1)",
                                              arguments: [libraryId]) ?? false
    }

    /// Writes the new head if anything changed.
    func finish() throws {
        guard head != startHead else { return }
        try db.cachedStatement(sql: "UPDATE library SET head = ? WHERE id = ?").execute(arguments: [head, libraryId])
    }

    /// Decides one operation and, if accepted, records it as the next version.
    mutating func apply(_ op: CommitOperation) throws -> CommitResult {
        let current = try currentVersion(of: op.path)
        if let refusal = validate(op) { return CommitResult(status: .rejected, error: refusal) }

        if !baseMatches(op.base, current: current) {
            // A retry whose first answer was lost: the same device already committed exactly this.
            if let current, current.deviceId == deviceId, deviceId != nil, sameContent(op, current) {
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
                                     mtimeNs: Self.nanoseconds(now), mode: current.mode, chunks: [], target: nil)
            // Deleting a conflict copy settles its conflict: the person chose the other side.
            try db.cachedStatement(sql: """
                UPDATE conflict SET resolved_at = ?, resolution = 'copy_deleted' WHERE library_id = ? AND copy_path = ? AND resolved_at IS NULL
                """).execute(arguments: [stamp, libraryId, op.path.string])
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
                guard origin.path != op.path, let won = try Self.version(db, libraryId: libraryId, path: origin.path, seq: origin.theirs) else {
                    return rejected("invalid_request", "conflict_of must name another path and a version of it that exists")
                }
                theirs = won
            }
            let mode = op.mode ?? (kind == .directory ? 0o755 : kind == .symlink ? 0o777 : 0o644)
            let version = try insert(
                path: op.path, kind: kind, deleted: false, size: kind == .file ? op.size! : 0,
                sha256: kind == .file ? op.sha256 : nil, mtimeNs: op.mtimeNs ?? Self.nanoseconds(now), mode: mode,
                chunks: kind == .file ? chunks : [], target: kind == .symlink ? op.target : nil)
            if let restoringFrom {
                try report(.fileRestored, version, restoredFrom: restoringFrom)
            } else {
                try report(current.map { $0.deleted } ?? true ? .fileCreated : .fileUpdated, version)
            }
            if let theirs { try recordConflict(copy: version, theirs: theirs) }
            if hasFollowers, kind == .file { try SQLiteMetadataStore.followAttachments(db, libraryId: libraryId, version: version) }
            return CommitResult(status: .ok, version: version)
        }
    }

    /// Writes a file event to the outbox when one of the user's endpoints listens.
    private func report(_ type: EventType, _ version: FileVersion, restoredFrom: Int64? = nil) throws {
        let targets = subscribers.matching(type.rawValue)
        guard !targets.isEmpty else { return }
        try Outbox.emit(db, userId: userId, type: type, data: FileEventData(library: libraryId, libraryName: libraryName, version: version, restoredFrom: restoredFrom),
                        only: targets, now: now)
    }

    /// Records an uploaded conflict copy as an open conflict and reports `file.conflict`.
    private func recordConflict(copy: FileVersion, theirs: FileVersion) throws {
        let id = SQLiteMetadataStore.newId("cfl")
        try db.cachedStatement(sql: """
            INSERT INTO conflict (id, library_id, path, copy_path, mine_seq, theirs_seq, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [id, libraryId, theirs.path.string, copy.path.string, copy.version, theirs.version, stamp])
        let info = ConflictInfo(id: id, library: libraryId, path: theirs.path, mine: ConflictSide(copy), theirs: ConflictSide(theirs),
                                detectedAt: now, resolvedAt: nil, resolution: nil)
        let targets = subscribers.matching(EventType.fileConflict.rawValue)
        guard !targets.isEmpty else { return }
        try Outbox.emit(db, userId: userId, type: .fileConflict, data: ConflictEventData(libraryName: libraryName, conflict: info), only: targets, now: now)
    }

    /// A stale base is a conflict; a path that is absent or deleted may be (re)created from nothing.
    private func baseMatches(_ base: Int64?, current: FileVersion?) -> Bool {
        guard let current else { return base == nil }
        if current.deleted { return base == nil || base == current.version }
        return base == current.version
    }

    private func sameContent(_ op: CommitOperation, _ v: FileVersion) -> Bool {
        switch op.op {
        case .delete: v.deleted
        case .put: !v.deleted && v.kind == op.kind && v.sha256 == (op.kind == .file ? op.sha256 : nil)
            && v.target == (op.kind == .symlink ? op.target : nil) && (op.mode == nil || op.mode == v.mode)
        }
    }

    /// Structural checks the JSON decoder cannot express.
    private func validate(_ op: CommitOperation) -> ErrorBody? {
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

    private func rejected(_ code: String, _ message: String) -> CommitResult {
        CommitResult(status: .rejected, error: .init(code: code, message: message))
    }

    /// Chunks this user has not uploaded, and the first whose recorded size differs.
    private mutating func checkChunks(_ chunks: [ChunkRef]) throws -> ([ContentHash], ChunkRef?) {
        var missing: [ContentHash] = []
        var seen = Set<ContentHash>()
        for c in chunks where seen.insert(c.sha256).inserted {
            guard let size = try chunkSize.int64(userId, c.sha256) else {
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

    /// Some live entry below `path`, if any. Paths under "a/" sort between "a/" and "a0".
    private mutating func liveDescendant(of path: FerryPath) throws -> String? {
        try descendant.text(libraryId, path.string + "/", path.string + "0")
    }

    /// `current` for this batch's library: the entry's sequence number first, then (only
    /// for a path that has one) its version.
    private mutating func currentVersion(of path: FerryPath) throws -> FileVersion? {
        guard let seq = try entrySeq.int64(libraryId, path.string) else { return nil }
        return try Self.version(db, libraryId: libraryId, path: path, seq: seq)
    }

    private mutating func insert(
        path: FerryPath, kind: EntryKind, deleted: Bool, size: Int64, sha256: ContentHash?, mtimeNs: Int64, mode: Int32,
        chunks: [ChunkRef], target: String?
    ) throws -> FileVersion {
        head += 1
        if !deleted && kind == .directory { liveDirectories.insert(path.string) } else { liveDirectories.remove(path.string) }
        let v = FileVersion(version: head, path: path, kind: kind, deleted: deleted, size: size, sha256: sha256, mtimeNs: mtimeNs,
                            mode: mode, chunks: chunks, target: target, deviceId: deviceId, committedAt: now)
        try addVersion.run(libraryId, head, path.string, kind.rawValue, deleted, size, sha256, mtimeNs, mode, ChunkList.encode(chunks), target,
                           deviceId, stamp)
        try setEntry.run(libraryId, path.string, head, deleted)
        return v
    }

    static func current(_ db: Database, libraryId: String, path: FerryPath) throws -> FileVersion? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT v.* FROM entry e JOIN version v ON v.library_id = e.library_id AND v.seq = e.seq WHERE e.library_id = ? AND e.path = ?"),
            arguments: [libraryId, path.string]
        ).map(VersionRow.decode)
    }

    static func version(_ db: Database, libraryId: String, path: FerryPath, seq: Int64) throws -> FileVersion? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM version WHERE library_id = ? AND seq = ? AND path = ?"),
                         arguments: [libraryId, seq, path.string]).map(VersionRow.decode)
    }

    static func nanoseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1e9).rounded()) }
}

/// Decodes `version` rows.
enum VersionRow {
    static func decode(_ row: Row) throws -> FileVersion {
        let path = try FerryPath(row["path"] as String)
        guard let kind = EntryKind(rawValue: row["kind"]) else { throw MetadataError.invalid("unknown entry kind in database") }
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
        guard let chunks = PackedChunkList.decode(data) else { throw MetadataError.invalid("corrupt chunk list in database") }
        return chunks
    }
}
