import FerryCore
import FerrySQLite
import Foundation
import GRDB

/// What the daemon last saw of a path when it was in sync with a server version: the local
/// file's identity (inode, size, mtime, change time) and content, and that version.
public struct IndexEntry: Sendable, Equatable {
    public var path: String
    public var kind: EntryKind
    public var size: Int64
    public var mtimeNs: Int64
    public var inode: UInt64
    public var ctimeNs: Int64
    public var mode: Int32
    public var sha256: ContentHash?
    public var chunks: [ChunkRef]
    public var target: String?
    /// The server version this entry was in sync with.
    public var version: Int64

    public init(path: String, kind: EntryKind, size: Int64, mtimeNs: Int64, inode: UInt64, ctimeNs: Int64, mode: Int32,
                sha256: ContentHash?, chunks: [ChunkRef], target: String?, version: Int64) {
        self.path = path
        self.kind = kind
        self.size = size
        self.mtimeNs = mtimeNs
        self.inode = inode
        self.ctimeNs = ctimeNs
        self.mode = mode
        self.sha256 = sha256
        self.chunks = chunks
        self.target = target
        self.version = version
    }
}

extension IndexEntry {
    /// The entry for a local file, link or directory as synced at `version`.
    init(_ l: LocalState, version: Int64) {
        self.init(path: l.path, kind: l.kind, size: l.file.size, mtimeNs: l.file.mtimeNs, inode: l.file.inode, ctimeNs: l.file.ctimeNs,
                  mode: l.file.mode, sha256: l.sha256, chunks: l.chunks, target: l.file.target, version: version)
    }
}

/// A hashed local file waiting to be committed: written before its chunks are uploaded so a
/// restart after `kill -9` reuses the manifest (no re-hash) and the server's missing-chunk
/// answer skips every chunk already sent.
public struct JournalEntry: Sendable, Equatable {
    public var path: String
    public var inode: UInt64
    public var size: Int64
    public var mtimeNs: Int64
    public var ctimeNs: Int64
    public var sha256: ContentHash
    public var chunks: [ChunkRef]
}

/// The client's durable state (SPEC §1: `$XDG_STATE_HOME/ferry/index.sqlite`): per folder the
/// synced entries, the server's current tree as last read from the change feed, the feed
/// cursor, and the pending-upload journal. WAL with synchronous=FULL: a change is
/// acknowledged only after it is on disk.
public final class LocalIndex: Sendable {
    let pool: DatabasePool

    public init(path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        pool = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(pool)
    }

    /// Closes the database (the daemon, on its way out); any later use of this index throws.
    public func close() throws {
        try pool.close()
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-index") { db in
            try db.execute(sql: """
                CREATE TABLE folder_state (folder TEXT PRIMARY KEY, library TEXT NOT NULL, cursor INTEGER NOT NULL DEFAULT 0);
                CREATE TABLE entry (
                    folder TEXT NOT NULL, path TEXT NOT NULL, kind TEXT NOT NULL, size INTEGER NOT NULL,
                    mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, mode INTEGER NOT NULL, sha256 BLOB,
                    chunks BLOB NOT NULL, target TEXT, version INTEGER NOT NULL, PRIMARY KEY (folder, path)) WITHOUT ROWID;
                CREATE TABLE remote (
                    folder TEXT NOT NULL, path TEXT NOT NULL, version INTEGER NOT NULL, kind TEXT NOT NULL, deleted INTEGER NOT NULL,
                    size INTEGER NOT NULL, sha256 BLOB, mtime_ns INTEGER NOT NULL, mode INTEGER NOT NULL, chunks BLOB NOT NULL,
                    target TEXT, device_id TEXT, committed_at REAL NOT NULL, PRIMARY KEY (folder, path)) WITHOUT ROWID;
                CREATE TABLE journal (
                    folder TEXT NOT NULL, path TEXT NOT NULL, inode INTEGER NOT NULL, size INTEGER NOT NULL,
                    mtime_ns INTEGER NOT NULL, sha256 BLOB NOT NULL, chunks BLOB NOT NULL, created_at REAL NOT NULL,
                    PRIMARY KEY (folder, path)) WITHOUT ROWID;
                """)
        }
        m.registerMigration("v2-conflict-copies") { db in
            // A conflict copy made here and not yet uploaded: its upload tells the server
            // which path and which winning version it is a copy of.
            try db.execute(sql: """
                CREATE TABLE conflict_copy (
                    folder TEXT NOT NULL, path TEXT NOT NULL, original TEXT NOT NULL, theirs INTEGER NOT NULL,
                    PRIMARY KEY (folder, path)) WITHOUT ROWID;
                -- Why the last pass could not sync a path (a server refusal, a file that kept
                -- changing), so 'ferry status --why' can say so later from another process.
                CREATE TABLE problem (
                    folder TEXT NOT NULL, path TEXT NOT NULL, message TEXT NOT NULL, at REAL NOT NULL,
                    PRIMARY KEY (folder, path)) WITHOUT ROWID;
                """)
        }
        m.registerMigration("v3-change-time") { db in
            // Rows from before carry 0, so each file is re-hashed once and recorded with it.
            try db.execute(sql: """
                ALTER TABLE entry ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE journal ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT 0;
                """)
        }
        return m
    }

    // MARK: folders

    public func cursor(folder: String) throws -> Int64 {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT cursor FROM folder_state WHERE folder = ?", arguments: [folder]) ?? 0 }
    }

    /// Binds `folder` to `library`; a folder re-bound to another library starts over.
    public func attach(folder: String, library: String) throws {
        try pool.write { db in
            let current = try String.fetchOne(db, sql: "SELECT library FROM folder_state WHERE folder = ?", arguments: [folder])
            if current != library {
                try Self.clear(db, folder: folder)
                try db.execute(sql: "INSERT INTO folder_state (folder, library, cursor) VALUES (?, ?, 0)", arguments: [folder, library])
            }
        }
    }

    public func forget(folder: String) throws {
        try pool.write { db in try Self.clear(db, folder: folder) }
    }

    static func clear(_ db: Database, folder: String) throws {
        for table in ["folder_state", "entry", "remote", "journal", "conflict_copy", "problem"] {
            try db.execute(sql: "DELETE FROM \(table) WHERE folder = ?", arguments: [folder])
        }
    }

    // MARK: entries

    public func entries(folder: String) throws -> [String: IndexEntry] {
        try readAll(folder: folder, Self.readEntries)
    }

    /// The server's current tree as last read from the feed (tombstones included).
    public func remote(folder: String) throws -> [String: FileVersion] {
        try readAll(folder: folder, Self.readRemote)
    }

    public func journal(folder: String) throws -> [String: JournalEntry] {
        try readAll(folder: folder, Self.readJournal)
    }

    /// The rows a scoped pass looks at (`PassScope`), from one snapshot: those of `paths`
    /// (none beneath another) and of everything beneath them.
    public func rows(folder: String, under paths: [String]) throws
        -> (entries: [String: IndexEntry], remote: [String: FileVersion], journal: [String: JournalEntry]) {
        try pool.read { db in
            var entries: [String: IndexEntry] = [:], remote: [String: FileVersion] = [:], journal: [String: JournalEntry] = [:]
            // Two lookups per path, each a search of the primary key: the path itself, and
            // what is beneath it, from "path/" up to "path0" ("0" follows "/").
            for path in paths {
                for within in [(sql: "folder = ? AND path = ?", arguments: [folder, path]),
                               (sql: "folder = ? AND path >= ? AND path < ?", arguments: [folder, path + "/", path + "0"])] {
                    try Self.readEntries(db, within, into: &entries)
                    try Self.readRemote(db, within, into: &remote)
                    try Self.readJournal(db, within, into: &journal)
                }
            }
            return (entries, remote, journal)
        }
    }

    /// Which rows a read takes: a condition and its arguments.
    typealias Within = (sql: String, arguments: [String])

    private func readAll<Value>(folder: String, _ reader: (Database, Within, inout [String: Value]) throws -> Void) throws -> [String: Value] {
        try pool.read { db in
            var out: [String: Value] = [:]
            try reader(db, ("folder = ?", [folder]), &out)
            return out
        }
    }

    private static func readEntries(_ db: Database, _ within: Within, into out: inout [String: IndexEntry]) throws {
        let rows = try Row.fetchCursor(db.cachedStatement(sql: """
            SELECT path, kind, size, mtime_ns, inode, mode, sha256, chunks, target, version, ctime_ns FROM entry WHERE \(within.sql)
            """), arguments: StatementArguments(within.arguments))
        while let row = try rows.next() {
            let e = IndexEntry(
                path: row[0], kind: EntryKind(rawValue: row[1]) ?? .file, size: row[2], mtimeNs: row[3],
                inode: UInt64(bitPattern: row[4] as Int64), ctimeNs: row[10], mode: row[5],
                sha256: (row[6] as Data?).flatMap { ContentHash(bytes: $0) },
                chunks: PackedChunkList.decode(row[7]) ?? [], target: row[8], version: row[9])
            out[e.path] = e
        }
    }

    private static func readRemote(_ db: Database, _ within: Within, into out: inout [String: FileVersion]) throws {
        let rows = try Row.fetchCursor(db.cachedStatement(sql: """
            SELECT path, version, kind, deleted, size, sha256, mtime_ns, mode, chunks, target, device_id, committed_at
            FROM remote WHERE \(within.sql)
            """), arguments: StatementArguments(within.arguments))
        while let row = try rows.next() {
            let raw: String = row[0]
            guard let path = try? FerryPath(raw) else { continue }
            out[raw] = FileVersion(
                version: row[1], path: path, kind: EntryKind(rawValue: row[2]) ?? .file, deleted: row[3], size: row[4],
                sha256: (row[5] as Data?).flatMap { ContentHash(bytes: $0) }, mtimeNs: row[6], mode: row[7],
                chunks: PackedChunkList.decode(row[8]) ?? [], target: row[9], deviceId: row[10],
                committedAt: Date(timeIntervalSince1970: row[11]))
        }
    }

    private static func readJournal(_ db: Database, _ within: Within, into out: inout [String: JournalEntry]) throws {
        let rows = try Row.fetchCursor(db.cachedStatement(sql: "SELECT * FROM journal WHERE \(within.sql)"), arguments: StatementArguments(within.arguments))
        while let row = try rows.next() {
            guard let sha = ContentHash(bytes: row["sha256"] as Data) else { continue }
            let e = JournalEntry(path: row["path"], inode: UInt64(bitPattern: row["inode"] as Int64), size: row["size"],
                                 mtimeNs: row["mtime_ns"], ctimeNs: row["ctime_ns"], sha256: sha, chunks: PackedChunkList.decode(row["chunks"]) ?? [])
            out[e.path] = e
        }
    }

    /// How many entries the folder has synced (the mass-delete guard's measure).
    public func entryCount(folder: String) throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM entry WHERE folder = ?", arguments: [folder]) ?? 0 }
    }

    /// Remembers that `copy` holds the local side of a conflict on `origin.path`.
    public func recordConflictCopy(folder: String, copy: String, origin: ConflictOrigin) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO conflict_copy (folder, path, original, theirs) VALUES (?, ?, ?, ?)",
                           arguments: [folder, copy, origin.path.string, origin.theirs])
        }
    }

    /// Conflict copies not yet uploaded, by path.
    public func conflictCopies(folder: String) throws -> [String: ConflictOrigin] {
        try pool.read { db in
            var out: [String: ConflictOrigin] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT path, original, theirs FROM conflict_copy WHERE folder = ?", arguments: [folder]) {
                guard let original = try? FerryPath(row["original"] as String) else { continue }
                out[row["path"]] = ConflictOrigin(path: original, theirs: row["theirs"])
            }
            return out
        }
    }

    /// Replaces the folder's recorded problems with those of the pass that just ended.
    public func recordProblems(folder: String, _ problems: [String: String]) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM problem WHERE folder = ?", arguments: [folder])
            let now = Date().timeIntervalSince1970
            for (path, message) in problems {
                try db.execute(sql: "INSERT INTO problem (folder, path, message, at) VALUES (?, ?, ?, ?)", arguments: [folder, path, message, now])
            }
        }
    }

    /// What the last pass recorded about `path`, if anything.
    public func problem(folder: String, path: String) throws -> (message: String, at: Date)? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT message, at FROM problem WHERE folder = ? AND path = ?", arguments: [folder, path]).map {
                ($0["message"], Date(timeIntervalSince1970: $0["at"]))
            }
        }
    }

    /// Records hashed files before their upload starts.
    public func recordPending(folder: String, _ entries: [JournalEntry]) throws {
        guard !entries.isEmpty else { return }
        try pool.write { db in
            let statement = try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO journal (folder, path, inode, size, mtime_ns, ctime_ns, sha256, chunks, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            let now = Date().timeIntervalSince1970
            for e in entries {
                try statement.execute(arguments: [folder, e.path, Int64(bitPattern: e.inode), e.size, e.mtimeNs, e.ctimeNs,
                                                  e.sha256.data, PackedChunkList.encode(e.chunks), now])
            }
        }
    }

    /// Applies what one step of a pass settled, in one transaction: synced entries written
    /// or removed, server versions mirrored, journal rows cleared, the cursor advanced.
    public func apply(folder: String, _ update: IndexUpdate) throws {
        try pool.write { db in
            // The two rows per committed file are bound directly (`DirectStatement`): through
            // GRDB's arguments they took about 10 % of the client's CPU in an initial sync
            // of 20,000 small files, and the last answers are recorded with the server idle.
            var put = DirectStatement(try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO entry (folder, path, kind, size, mtime_ns, inode, mode, sha256, chunks, target, version, ctime_ns)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """))
            for e in update.synced {
                try put.run(folder, e.path, e.kind.rawValue, e.size, e.mtimeNs, Int64(bitPattern: e.inode), e.mode, e.sha256,
                            PackedChunkList.encode(e.chunks), e.target, e.version, e.ctimeNs)
            }
            // Statements in loops are prepared once (a plain `execute(sql:)` compiles its SQL
            // on every call: a third of this transaction's time for a batch of 1,000).
            let unsync = try db.cachedStatement(sql: "DELETE FROM entry WHERE folder = ? AND path = ?")
            for path in update.unsynced { try unsync.execute(arguments: [folder, path]) }
            // The feed and commit answers can arrive in either order: keep the newest.
            var mirror = DirectStatement(try db.cachedStatement(sql: """
                INSERT INTO remote (folder, path, version, kind, deleted, size, sha256, mtime_ns, mode, chunks, target, device_id, committed_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (folder, path) DO UPDATE SET version = excluded.version, kind = excluded.kind, deleted = excluded.deleted,
                    size = excluded.size, sha256 = excluded.sha256, mtime_ns = excluded.mtime_ns, mode = excluded.mode, chunks = excluded.chunks,
                    target = excluded.target, device_id = excluded.device_id, committed_at = excluded.committed_at
                WHERE excluded.version > remote.version
                """))
            for v in update.remote {
                // SQLite text ends at a NUL, so a link target holding one (which no server
                // should send) is stored as none: the pass then refuses the version as invalid
                // instead of making a link to the part before the NUL.
                let target = v.target.flatMap { $0.utf8.contains(0) ? nil : $0 }
                try mirror.run(folder, v.path.string, v.version, v.kind.rawValue, v.deleted, v.size, v.sha256, v.mtimeNs, v.mode,
                               PackedChunkList.encode(v.chunks), target, v.deviceId, v.committedAt.timeIntervalSince1970)
            }
            var settle = DirectStatement(try db.cachedStatement(sql: "DELETE FROM journal WHERE folder = ? AND path = ?"))
            for path in update.journalDone { try settle.run(folder, path) }
            let reported = try db.cachedStatement(sql: "DELETE FROM conflict_copy WHERE folder = ? AND path = ?")
            for path in update.conflictCopiesReported { try reported.execute(arguments: [folder, path]) }
            if let cursor = update.cursor {
                try db.execute(sql: "UPDATE folder_state SET cursor = MAX(cursor, ?) WHERE folder = ?", arguments: [cursor, folder])
            }
        }
    }
}

/// One transaction's worth of index changes.
public struct IndexUpdate: Sendable {
    public var synced: [IndexEntry] = []
    public var unsynced: [String] = []
    public var remote: [FileVersion] = []
    public var journalDone: [String] = []
    /// Conflict copies the server has recorded.
    public var conflictCopiesReported: [String] = []
    public var cursor: Int64?

    public init() {}
    public var isEmpty: Bool { synced.isEmpty && unsynced.isEmpty && remote.isEmpty && journalDone.isEmpty && cursor == nil }
}
