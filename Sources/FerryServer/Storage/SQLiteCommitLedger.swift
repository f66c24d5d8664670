import FerryCore
import FerrySQLite
import Foundation
import GRDB

/// A commit batch on SQLite: the engine's reads and writes run inside the GRDB write
/// transaction through cached statements, bound directly (`DirectStatement`).
typealias CommitBatch = CommitEngine<SQLiteCommitLedger>

/// `CommitLedger` on one SQLite write transaction.
struct SQLiteCommitLedger: CommitLedger {
    let db: Database
    let userId: Int64
    let libraryId: String
    /// The batch's time as the text SQLite stores, formatted once instead of per row.
    let stamp: String
    private var entrySeq: DirectStatement
    private var descendant: DirectStatement
    private var chunkSizes: DirectStatement
    private var addVersion: DirectStatement
    private var setEntry: DirectStatement

    init(db: Database, userId: Int64, libraryId: String, now: Date) throws {
        self.db = db
        self.userId = userId
        self.libraryId = libraryId
        self.stamp = String.fromDatabaseValue(now.databaseValue)!
        entrySeq = DirectStatement(try db.cachedStatement(sql: "SELECT seq FROM entry WHERE library_id = ? AND path = ?"))
        descendant = DirectStatement(try db.cachedStatement(sql: "SELECT path FROM entry WHERE library_id = ? AND path > ? AND path < ? AND deleted = 0 LIMIT 1"))
        chunkSizes = DirectStatement(try db.cachedStatement(
            sql: "SELECT c.size FROM user_chunk u JOIN chunk c ON c.sha256 = u.sha256 WHERE u.user_id = ? AND u.sha256 = ?"))
        addVersion = DirectStatement(try db.cachedStatement(sql: """
            INSERT INTO version (library_id, seq, path, kind, deleted, size, sha256, mtime_ns, mode, chunks, target, device_id, committed_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """))
        setEntry = DirectStatement(try db.cachedStatement(sql: """
            INSERT INTO entry (library_id, path, seq, deleted) VALUES (?, ?, ?, ?)
            ON CONFLICT (library_id, path) DO UPDATE SET seq = excluded.seq, deleted = excluded.deleted
            """))
    }

    /// The entry's sequence number first, then (only for a path that has one) its version.
    mutating func current(_ path: FerryPath) throws -> FileVersion? {
        guard let seq = try entrySeq.int64(libraryId, path.string) else { return nil }
        return try CommitBatch.version(db, libraryId: libraryId, path: path, seq: seq)
    }

    /// Paths under "a/" sort between "a/" and "a0".
    mutating func liveDescendant(of path: FerryPath) throws -> String? {
        try descendant.text(libraryId, path.string + "/", path.string + "0")
    }

    mutating func chunkSize(_ hash: ContentHash) throws -> Int64? { try chunkSizes.int64(userId, hash) }

    mutating func version(_ path: FerryPath, seq: Int64) throws -> FileVersion? {
        try CommitBatch.version(db, libraryId: libraryId, path: path, seq: seq)
    }

    mutating func removedWith(_ directory: FileVersion) throws -> [(FileVersion, Int64)] {
        guard let removal = try Row.fetchOne(db, sql: """
            SELECT seq, device_id FROM version WHERE library_id = ? AND path = ? AND seq > ? AND deleted = 1 ORDER BY seq LIMIT 1
            """, arguments: [libraryId, directory.path.string, directory.version]) else { return [] }
        var walk = RemovalWalk(directory: directory.path, removedBy: removal["device_id"])
        let rows = try Row.fetchCursor(db, sql: "SELECT seq, path, deleted, device_id FROM version WHERE library_id = ? AND seq < ? ORDER BY seq DESC",
                                       arguments: [libraryId, removal["seq"] as Int64])
        while !walk.done, let row = try rows.next() {
            walk.take(seq: row["seq"], path: row["path"], deleted: row["deleted"], deviceId: row["device_id"])
        }
        var entries: [(FileVersion, Int64)] = []
        for (path, deletedAt) in walk.removed.sorted(by: { $0.key < $1.key }) {
            guard let now = try current(try FerryPath(path)), now.deleted,
                  let last = try Row.fetchOne(db, sql: """
                      SELECT * FROM version WHERE library_id = ? AND path = ? AND seq < ? AND deleted = 0 ORDER BY seq DESC LIMIT 1
                      """, arguments: [libraryId, path, deletedAt]).map(VersionRow.decode)
            else { continue }
            entries.append((last, now.version))
        }
        return entries
    }

    mutating func append(_ v: FileVersion) throws {
        try addVersion.run(libraryId, v.version, v.path.string, v.kind.rawValue, v.deleted, v.size, v.sha256, v.mtimeNs, v.mode,
                           ChunkList.encode(v.chunks), v.target, v.deviceId, stamp)
        try setEntry.run(libraryId, v.path.string, v.version, v.deleted)
    }

    mutating func settleConflicts(copyPath: FerryPath, at _: Date) throws {
        try db.cachedStatement(sql: """
            UPDATE conflict SET resolved_at = ?, resolution = 'copy_deleted' WHERE library_id = ? AND copy_path = ? AND resolved_at IS NULL
            """).execute(arguments: [stamp, libraryId, copyPath.string])
    }

    mutating func insertConflict(id: String, path: FerryPath, copyPath: FerryPath, mine: Int64, theirs: Int64, at _: Date) throws {
        try db.cachedStatement(sql: """
            INSERT INTO conflict (id, library_id, path, copy_path, mine_seq, theirs_seq, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [id, libraryId, path.string, copyPath.string, mine, theirs, stamp])
    }

    mutating func emit(_ event: PreparedEvent) throws { try Outbox.insert(db, event) }

    mutating func followAttachments(_ version: FileVersion) throws {
        try SQLiteMetadataStore.followAttachments(db, libraryId: libraryId, version: version)
    }

    mutating func setHead(_ head: Int64) throws {
        try db.cachedStatement(sql: "UPDATE library SET head = ? WHERE id = ?").execute(arguments: [head, libraryId])
    }
}

extension CommitEngine where Ledger == SQLiteCommitLedger {
    /// A batch of `userId` on the library `libraryId`, theirs or shared with them to write
    /// (404 when neither). The committer's chunks count; the owner's webhooks hear of it.
    init(db: Database, userId: Int64, libraryId: String, deviceId: String?) throws {
        let role = try SQLiteMetadataStore.libraryRole(db, userId: userId, libraryId: libraryId)
        guard let role, let row = try Row.fetchOne(db, sql: "SELECT head, name, user_id FROM library WHERE id = ?", arguments: [libraryId]) else {
            throw MetadataError.notFound("library")
        }
        guard role.allows(.write) else { throw SharingRules.readOnly }
        let owner: Int64 = row["user_id"]
        let now = Date()
        self.init(ledger: try SQLiteCommitLedger(db: db, userId: userId, libraryId: libraryId, now: now), userId: owner, libraryId: libraryId,
                  deviceId: deviceId, libraryName: row["name"], head: row["head"], subscribers: try Subscribers.load(db, userId: owner),
                  hasFollowers: try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM attachment WHERE library_id = ? AND follow = 1)",
                                                  arguments: [libraryId]) ?? false,
                  now: now)
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
}
