import FerryCore
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// `CommitLedger` on PostgreSQL: what a batch may read is loaded before the engine runs, in
/// a few set-based queries (`load`), and the engine is answered from memory with the
/// batch's own writes laid over it; the writes go out at the end (`flush`), one `unnest`
/// statement per table. A batch of 4,000 operations costs about ten round trips instead of
/// one or two per operation. Asking for something that was not loaded is a bug, reported
/// as an error rather than answered wrongly.
struct PostgresCommitLedger: CommitLedger {
    let libraryId: String
    let userId: Int64
    /// Current versions of loaded paths (absent: the path has no entry).
    private var entries: [String: FileVersion] = [:]
    private var loadedPaths = Set<String>()
    /// Up to `k` live descendants of a loaded path, as committed; `complete` when fewer came back.
    private var descendants: [String: (paths: [String], complete: Bool)] = [:]
    private var chunkSizes: [ContentHash: Int64] = [:]
    private var loadedChunks = Set<ContentHash>()
    private var versions: [String: FileVersion] = [:]
    /// What a directory's removal took with it, by "seq:path" of the directory's version.
    private var removals: [String: [(FileVersion, Int64)]] = [:]
    /// Paths written by this batch: live or not.
    private var written: [String: Bool] = [:]
    /// How many paths written live by this batch lie below each directory.
    private var liveBelow: [String: Int] = [:]

    private var newVersions: [FileVersion] = []
    private var conflictWrites: [ConflictWrite] = []
    private var events: [PreparedEvent] = []
    private(set) var followed: [FileVersion] = []
    private var newHead: Int64?

    enum ConflictWrite {
        case settle(copyPath: String, at: Date)
        case insert(id: String, path: String, copyPath: String, mine: Int64, theirs: Int64, at: Date)
    }

    init(libraryId: String, userId: Int64) {
        self.libraryId = libraryId
        self.userId = userId
    }

    // MARK: Loading (async, before the engine runs)

    /// Loads what applying `operations` can ask: every path and its ancestors, the live
    /// descendants each path could meet, the user's chunks and the versions `conflict_of` names.
    mutating func load(for operations: [CommitOperation], _ connection: PostgresConnection, logger: Logger) async throws {
        var paths: [FerryPath] = []
        var chunks: [ContentHash] = []
        var versionRefs: [(FerryPath, Int64)] = []
        for op in operations {
            paths.append(op.path)
            if op.op == .put, op.kind == .file { chunks += (op.chunks ?? []).map(\.sha256) }
            if let origin = op.conflictOf { versionRefs.append((origin.path, origin.theirs)) }
        }
        try await load(paths: paths, chunks: chunks, versions: versionRefs, operations: operations, connection, logger: logger)
    }

    /// Loads entries of `paths` and their ancestors, live descendants of `paths` (enough to
    /// see past every delete among `operations`), chunk sizes and versions. May be called again.
    mutating func load(paths: [FerryPath], chunks: [ContentHash], versions versionRefs: [(FerryPath, Int64)], operations: [CommitOperation],
                       _ connection: PostgresConnection, logger: Logger) async throws {
        var wanted = Set<String>()
        for path in paths {
            var p: FerryPath? = path
            while let current = p, !loadedPaths.contains(current.string), wanted.insert(current.string).inserted { p = current.parent }
        }
        if !wanted.isEmpty {
            let list = Array(wanted)
            let rows = try await PostgresDatabase.rows(connection, """
                SELECT v.* FROM entry e JOIN version v ON v.library_id = e.library_id AND v.seq = e.seq
                WHERE e.library_id = \(libraryId) AND e.path = ANY(\(list))
                """, logger: logger)
            for row in rows {
                let version = try PostgresRows.version(row)
                entries[version.path.string] = version
            }
            loadedPaths.formUnion(list)
        }
        let needDescendants = Set(paths.map(\.string)).subtracting(descendants.keys)
        if !needDescendants.isEmpty {
            // A batch can delete at most as many entries below a path as it has operations
            // there, so one more than that many tells whether one survives.
            let sorted = operations.map(\.path.string).sorted()
            let list = Array(needDescendants)
            let limits = list.map { Int64(Self.countBelow($0, in: sorted) + 1) }
            let rows = try await PostgresDatabase.rows(connection, """
                SELECT q.p, d.path FROM unnest(\(list)::text[], \(limits)::bigint[]) AS q(p, k)
                CROSS JOIN LATERAL (
                    SELECT e.path FROM entry e WHERE e.library_id = \(libraryId)
                    AND e.path > (q.p || '/') COLLATE "C" AND e.path < (q.p || '0') COLLATE "C" AND NOT e.deleted
                    ORDER BY e.path LIMIT q.k) d
                """, logger: logger)
            var found: [String: [String]] = [:]
            for row in rows { found[try row.get("p", as: String.self), default: []].append(try row.get("path", as: String.self)) }
            for (p, k) in zip(list, limits) {
                let below = found[p] ?? []
                descendants[p] = (below, Int64(below.count) < k)
            }
        }
        let newChunks = Array(Set(chunks).subtracting(loadedChunks))
        if !newChunks.isEmpty {
            let rows = try await PostgresDatabase.rows(connection, """
                SELECT c.sha256, c.size FROM user_chunk u JOIN chunk c ON c.sha256 = u.sha256
                WHERE u.user_id = \(userId) AND u.sha256 = ANY(\(newChunks.map(PostgresRows.bytes)))
                """, logger: logger)
            for row in rows {
                if let hash = ContentHash(bytes: try row.get("sha256", as: ByteBuffer.self).readableBytesView) {
                    chunkSizes[hash] = try row.get("size", as: Int64.self)
                }
            }
            loadedChunks.formUnion(newChunks)
        }
        for (path, seq) in versionRefs where versions["\(seq):\(path.string)"] == nil {
            if let version = try await PostgresRows.version(connection, libraryId: libraryId, path: path, seq: seq, logger: logger) {
                versions["\(seq):\(path.string)"] = version
            }
        }
    }

    /// Loads what restoring `directory` brings back with it (`removedWith`): the walk back
    /// from its delete, a page of versions at a time, then each path's entry, ancestors and
    /// descendants, its last live version and that version's chunks.
    mutating func loadRemoval(of directory: FileVersion, _ connection: PostgresConnection, logger: Logger) async throws {
        let key = "\(directory.version):\(directory.path.string)"
        guard removals[key] == nil else { return }
        guard let removal = try await PostgresDatabase.row(connection, """
            SELECT seq, device_id FROM version WHERE library_id = \(libraryId) AND path = \(directory.path.string) AND seq > \(directory.version)
            AND deleted ORDER BY seq LIMIT 1
            """, logger: logger) else {
            removals[key] = []
            return
        }
        var walk = RemovalWalk(directory: directory.path, removedBy: try removal.get("device_id", as: String?.self))
        var before: Int64 = try removal.get("seq")
        while !walk.done {
            let page = try await PostgresDatabase.rows(connection, """
                SELECT seq, path, deleted, device_id FROM version WHERE library_id = \(libraryId) AND seq < \(before) ORDER BY seq DESC LIMIT 1000
                """, logger: logger)
            for row in page where !walk.done {
                before = try row.get("seq")
                walk.take(seq: before, path: try row.get("path"), deleted: try row.get("deleted"), deviceId: try row.get("device_id"))
            }
            if page.count < 1000 { break }
        }
        let removed = walk.removed.sorted { $0.key < $1.key }
        guard !removed.isEmpty else {
            removals[key] = []
            return
        }
        let rows = try await PostgresDatabase.rows(connection, """
            SELECT DISTINCT ON (v.path) v.* FROM version v JOIN unnest(\(removed.map(\.key))::text[], \(removed.map(\.value))::bigint[]) AS r(path, at)
                ON v.path = r.path COLLATE "C"
            WHERE v.library_id = \(libraryId) AND v.seq < r.at AND NOT v.deleted ORDER BY v.path, v.seq DESC
            """, logger: logger)
        var last: [String: FileVersion] = [:]
        for row in rows {
            let version = try PostgresRows.version(row)
            last[version.path.string] = version
        }
        let paths = try removed.map { try FerryPath($0.key) }
        try await load(paths: paths, chunks: last.values.flatMap { $0.chunks.map(\.sha256) }, versions: [], operations: [], connection, logger: logger)
        removals[key] = removed.compactMap { path, _ in
            guard let now = entries[path], now.deleted, let version = last[path] else { return nil }
            return (version, now.version)
        }
    }

    /// How many of `sorted` lie strictly below `path`.
    static func countBelow(_ path: String, in sorted: [String]) -> Int {
        let low = path + "/", high = path + "0"
        var lo = 0, hi = sorted.count
        while lo < hi { let mid = (lo + hi) / 2; if sorted[mid] <= low { lo = mid + 1 } else { hi = mid } }
        var n = 0
        var i = lo
        while i < sorted.count, sorted[i] < high { n += 1; i += 1 }
        return n
    }

    // MARK: CommitLedger (in memory)

    struct NotLoaded: Error, CustomStringConvertible {
        let what: String
        var description: String { "internal error: the commit asked for \(what), which was not loaded" }
    }

    func current(_ path: FerryPath) throws -> FileVersion? {
        guard loadedPaths.contains(path.string) else { throw NotLoaded(what: "the entry of '\(path)'") }
        return entries[path.string]
    }

    func liveDescendant(of path: FerryPath) throws -> String? {
        guard let committed = descendants[path.string] else { throw NotLoaded(what: "the entries below '\(path)'") }
        if let survivor = committed.paths.first(where: { written[$0] ?? true }) { return survivor }
        if !committed.complete { throw NotLoaded(what: "enough entries below '\(path)'") }
        guard (liveBelow[path.string] ?? 0) > 0 else { return nil }
        let prefix = path.string + "/"
        return written.filter { $0.value && $0.key.hasPrefix(prefix) }.keys.min()
    }

    func chunkSize(_ hash: ContentHash) throws -> Int64? {
        guard loadedChunks.contains(hash) else { throw NotLoaded(what: "chunk \(hash)") }
        return chunkSizes[hash]
    }

    func version(_ path: FerryPath, seq: Int64) throws -> FileVersion? {
        if let v = versions["\(seq):\(path.string)"] { return v }
        if let v = entries[path.string], v.version == seq { return v }
        return newVersions.first { $0.version == seq && $0.path == path }
    }

    func removedWith(_ directory: FileVersion) throws -> [(FileVersion, Int64)] {
        guard let removed = removals["\(directory.version):\(directory.path.string)"] else {
            throw NotLoaded(what: "what was removed with '\(directory.path)'")
        }
        return removed
    }

    mutating func append(_ version: FileVersion) throws {
        let path = version.path.string
        let wasLive = written[path] ?? false
        let isLive = !version.deleted
        if wasLive != isLive {
            var parent = version.path.parent
            while let p = parent {
                liveBelow[p.string, default: 0] += isLive ? 1 : -1
                parent = p.parent
            }
        }
        written[path] = isLive
        entries[path] = version
        loadedPaths.insert(path)
        newVersions.append(version)
    }

    mutating func settleConflicts(copyPath: FerryPath, at stamp: Date) throws { conflictWrites.append(.settle(copyPath: copyPath.string, at: stamp)) }

    mutating func insertConflict(id: String, path: FerryPath, copyPath: FerryPath, mine: Int64, theirs: Int64, at stamp: Date) throws {
        conflictWrites.append(.insert(id: id, path: path.string, copyPath: copyPath.string, mine: mine, theirs: theirs, at: stamp))
    }

    mutating func emit(_ event: PreparedEvent) throws { events.append(event) }

    mutating func followAttachments(_ version: FileVersion) throws { followed.append(version) }

    mutating func setHead(_ head: Int64) throws { newHead = head }

    // MARK: Writing (async, after the engine ran)

    /// Writes everything the batch decided, in the batch's transaction. Returns whether
    /// anything went to the outbox.
    func flush(_ connection: PostgresConnection, logger: Logger) async throws -> Bool {
        if !newVersions.isEmpty {
            let v = newVersions
            let deviceId = v[0].deviceId
            let at = v[0].committedAt
            try await connection.query("""
                INSERT INTO version (library_id, seq, path, kind, deleted, size, sha256, mtime_ns, mode, chunks, target, device_id, committed_at)
                SELECT \(libraryId), u.seq, u.path, u.kind, u.deleted, u.size, NULLIF(u.sha256, ''::bytea), u.mtime_ns, u.mode, u.chunks,
                       NULLIF(u.target, ''), \(deviceId), \(at)
                FROM unnest(\(v.map(\.version))::bigint[], \(v.map(\.path.string))::text[], \(v.map(\.kind.rawValue))::text[],
                            \(v.map(\.deleted))::bool[], \(v.map(\.size))::bigint[], \(v.map { PostgresRows.bytes($0.sha256) })::bytea[],
                            \(v.map(\.mtimeNs))::bigint[], \(v.map(\.mode))::int[], \(v.map { PostgresRows.bytes(ChunkList.encode($0.chunks)) })::bytea[],
                            \(v.map { $0.target ?? "" })::text[])
                     AS u(seq, path, kind, deleted, size, sha256, mtime_ns, mode, chunks, target)
                """, logger: logger)
            // One row per path: the batch's last version of it.
            var last: [String: FileVersion] = [:]
            for version in v { last[version.path.string] = version }
            let entries = Array(last.values)
            try await connection.query("""
                INSERT INTO entry (library_id, path, seq, deleted)
                SELECT \(libraryId), u.path, u.seq, u.deleted
                FROM unnest(\(entries.map(\.path.string))::text[], \(entries.map(\.version))::bigint[], \(entries.map(\.deleted))::bool[]) AS u(path, seq, deleted)
                ON CONFLICT (library_id, path) DO UPDATE SET seq = excluded.seq, deleted = excluded.deleted
                """, logger: logger)
        }
        for write in conflictWrites {
            switch write {
            case .settle(let copyPath, let at):
                try await connection.query("""
                    UPDATE conflict SET resolved_at = \(at), resolution = 'copy_deleted'
                    WHERE library_id = \(libraryId) AND copy_path = \(copyPath) AND resolved_at IS NULL
                    """, logger: logger)
            case .insert(let id, let path, let copyPath, let mine, let theirs, let at):
                try await connection.query("""
                    INSERT INTO conflict (id, library_id, path, copy_path, mine_seq, theirs_seq, detected_at)
                    VALUES (\(id), \(libraryId), \(path), \(copyPath), \(mine), \(theirs), \(at))
                    """, logger: logger)
            }
        }
        try await PostgresOutbox.insert(events, connection, logger: logger)
        if let newHead {
            try await connection.query("UPDATE library SET head = \(newHead) WHERE id = \(libraryId)", logger: logger)
        }
        return !events.isEmpty
    }
}
