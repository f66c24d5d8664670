import FerryCore
import FerrySQLite
import Foundation
import GRDB
import NIOCore

/// Small blobs as rows of `blobs.sqlite` in the data directory, next to the blob files.
///
/// A file per small chunk costs a staging file created, written and closed, a rename into its
/// shard, an inode, and a share of two file-system syncs; for an initial sync of 20,000 small
/// files that was half of the server's CPU. A batch of rows costs one transaction and one
/// fsync of the write-ahead log. Rows follow the same publish and trash steps as files:
/// `FileBlobStore` writes them under the metadata write lock, before the chunk rows that
/// reference them commit, and garbage collection flags them `trashed` first so a crash can
/// put them back.
///
/// Every method blocks; callers run them on the blob thread pool or under the metadata lock.
struct InlineBlobs: Sendable {
    /// Blobs up to this size are rows; larger ones stay files. SQLite reads and writes rows
    /// of tens of KiB faster than files of that size, and every file the chunker cuts from a
    /// large file is at least 256 KiB, so rows hold whole small files only.
    static let limit = 64 * 1024

    /// SQLite's largest page: a batch of rows is written in far fewer system calls than with
    /// 4 KiB pages (each WAL frame is a write of its own). Initial sync of 20,000 small files,
    /// two alternated runs each: server CPU 1.46–1.60 s with 4 KiB pages, 1.31–1.36 s with
    /// 64 KiB; 16 KiB fell between.
    static let pageSize = 65536

    let pool: DatabasePool

    /// Whether some small blobs may be files: data directories that stored blobs before this
    /// database existed kept their small blobs as files, and an upload of one must not add a
    /// row beside it. A store that held no blob file when this database was made has only
    /// ever written small blobs as rows, and records so (`rowsOnly` as its `user_version`);
    /// then an upload skips looking for a file, a path lookup per blob that was 6 % of the
    /// server's CPU in an initial sync of 20,000 small files.
    let smallFilesMayExist: Bool
    static let rowsOnly = 1

    /// `anyBlobFile` tells whether the blob directory holds a file; it is asked only when the
    /// database is new.
    init(path: String, anyBlobFile: () -> Bool) throws {
        pool = try ServerDatabase.durablePool(path: path, busyTimeout: 10, pageSize: Self.pageSize)
        smallFilesMayExist = try pool.write { db in
            if try db.tableExists("blob") {
                return try Int.fetchOne(db, sql: "PRAGMA user_version") != Self.rowsOnly
            }
            let filesFirst = anyBlobFile()
            try db.execute(sql: """
                CREATE TABLE blob (
                    sha256 BLOB PRIMARY KEY CHECK (length(sha256) = 32),
                    data BLOB NOT NULL,
                    trashed BOOLEAN NOT NULL DEFAULT 0
                )
                """)
            // In the same transaction as the table: a crash leaves neither.
            if !filesFirst { try db.execute(sql: "PRAGMA user_version = \(Self.rowsOnly)") }
            return filesFirst
        }
    }

    /// Stores blobs in one transaction, durably once this returns. A blob already present
    /// (a row, or `isFile` where small files may exist) is not written again; a trashed row
    /// is put back. Returns, per blob, whether it was written.
    func insert(_ blobs: [(hash: ContentHash, bytes: ByteBuffer)], isFile: (ContentHash) -> Bool) throws -> [Bool] {
        try pool.write { db in
            // Bound straight from the request's buffer: no copy of each blob on the way in.
            var find = DirectStatement(try db.cachedStatement(sql: "SELECT trashed FROM blob WHERE sha256 = ?"))
            var restore = DirectStatement(try db.cachedStatement(sql: "UPDATE blob SET trashed = 0 WHERE sha256 = ?"))
            var add = DirectStatement(try db.cachedStatement(sql: "INSERT INTO blob (sha256, data) VALUES (?, ?)"))
            var written: [Bool] = []
            for (hash, bytes) in blobs {
                if let trashed = try find.int64(hash).map({ $0 != 0 }) {
                    if trashed { try restore.run(hash) }
                    written.append(trashed)
                } else if smallFilesMayExist && isFile(hash) {
                    written.append(false)
                } else {
                    try bytes.withUnsafeReadableBytes { try add.run(hash, $0) }
                    written.append(true)
                }
            }
            return written
        }
    }

    /// A blob's bytes, or nil when there is no row (or it is in the trash).
    func bytes(_ hash: ContentHash) throws -> Data? {
        try pool.read { db in
            try Data.fetchOne(db, sql: "SELECT data FROM blob WHERE sha256 = ? AND NOT trashed", arguments: [hash.data])
        }
    }

    func contains(_ hash: ContentHash) throws -> Bool {
        try pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM blob WHERE sha256 = ? AND NOT trashed", arguments: [hash.data]) ?? false
        }
    }

    /// Flags blobs as trashed, in one transaction: out of place for readers, still on disk
    /// until `settleTrash`.
    func trash(_ hashes: [ContentHash]) throws {
        guard !hashes.isEmpty else { return }
        try pool.write { db in
            let flag = try db.cachedStatement(sql: "UPDATE blob SET trashed = 1 WHERE sha256 = ?")
            for hash in hashes { try flag.execute(arguments: [hash.data]) }
        }
    }

    /// Every row in place (not trashed).
    func hashes() throws -> [ContentHash] {
        try pool.read { db in
            try Data.fetchAll(db, sql: "SELECT sha256 FROM blob WHERE NOT trashed").compactMap { ContentHash(bytes: $0) }
        }
    }

    func trashed() throws -> [ContentHash] {
        try pool.read { db in
            try Data.fetchAll(db, sql: "SELECT sha256 FROM blob WHERE trashed").compactMap { ContentHash(bytes: $0) }
        }
    }

    /// Trashed blobs the metadata still knows go back into place; the rest are deleted.
    /// Returns how many were deleted.
    func settleTrash(isKnown: (ContentHash) throws -> Bool) throws -> Int {
        let candidates = try trashed()
        guard !candidates.isEmpty else { return 0 }
        return try pool.write { db in
            var deleted = 0
            let restore = try db.cachedStatement(sql: "UPDATE blob SET trashed = 0 WHERE sha256 = ?")
            // Only while still trashed: an upload may have put it back meanwhile.
            let remove = try db.cachedStatement(sql: "DELETE FROM blob WHERE sha256 = ? AND trashed")
            for hash in candidates {
                if try isKnown(hash) {
                    try restore.execute(arguments: [hash.data])
                } else {
                    try remove.execute(arguments: [hash.data])
                    deleted += db.changesCount
                }
            }
            return deleted
        }
    }
}
