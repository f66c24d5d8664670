import FerryCore
import Foundation
import GRDB
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import FerryTestSupport
import Testing

@testable import FerryServer

@Suite("Storage durability and maintenance")
struct StorageTests {
    @Test func databaseRunsWALWithSynchronousFullOnEveryConnection() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let pool = (server.services.store as! SQLiteMetadataStore).pool
        let writer = try await pool.write { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA synchronous"),
             try Int.fetchOne(db, sql: "PRAGMA busy_timeout"), try Int.fetchOne(db, sql: "PRAGMA foreign_keys"),
             try Int.fetchOne(db, sql: "PRAGMA cache_size"), try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint"))
        }
        #expect(writer.0 == "wal")
        #expect(writer.1 == 2)
        #expect((writer.2 ?? 0) > 0)
        #expect(writer.3 == 1)
        // Room for a whole upload batch's pages, so none is spilled and written twice.
        #expect(writer.4 == -ServerDatabase.writerCacheKiB)
        // Checkpoints after 64 MiB of log in both databases, whatever their page size.
        #expect(writer.5 == ServerDatabase.checkpointBytes / 4096)
        let blobs = try #require(server.services.blobs as? FileBlobStore).inline.pool
        #expect(try await blobs.write { db in try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint") } == ServerDatabase.checkpointBytes / InlineBlobs.pageSize)
        // Several concurrent readers: each new connection must be FULL too.
        let readers = try await withThrowingTaskGroup(of: Int?.self) { group in
            for _ in 0..<4 { group.addTask { try await pool.read { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(readers.allSatisfy { $0 == 2 })
    }

    /// The v4 migration re-keys `user_chunk` by hash: every owner row survives, the separate
    /// hash index is gone, the owner check is a primary-key lookup, and both cascades (a
    /// chunk collected, a user deleted) still remove the rows.
    @Test func userChunkMigrationKeepsOwnersAndCascades() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-migrate-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pool = try ServerDatabase.durablePool(path: dir + "/ferry.sqlite", busyTimeout: 5)
        try ServerDatabase.migrator.migrate(pool, upTo: "v3-tasks")
        let hashes = (0..<50).map { ContentHash.of([UInt8($0)]).data }
        let owners: [(Data, Int64)] = hashes.enumerated().flatMap { i, h -> [(Data, Int64)] in
            i % 3 == 0 ? [(h, Int64(1)), (h, Int64(2))] : [(h, Int64(1 + i % 2))]
        }
        try pool.write { db in
            for id in [1, 2] {
                try db.execute(sql: "INSERT INTO user (id, username, password_hash, created_at, password_changed_at) VALUES (?, ?, 'x', 0, 0)",
                               arguments: [id, "u\(id)"])
            }
            for h in hashes { try db.execute(sql: "INSERT INTO chunk VALUES (?, 1, 0, 0)", arguments: [h]) }
            for (h, u) in owners { try db.execute(sql: "INSERT INTO user_chunk (user_id, sha256) VALUES (?, ?)", arguments: [u, h]) }
        }
        try ServerDatabase.migrator.migrate(pool)
        try pool.write { db in
            let rows = try Row.fetchAll(db, sql: "SELECT sha256, user_id FROM user_chunk").map { ($0[0] as Data, $0[1] as Int64) }
            #expect(Set(rows.map { "\(Array($0.0))-\($0.1)" }) == Set(owners.map { "\(Array($0.0))-\($0.1)" }))
            #expect(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE tbl_name = 'user_chunk' AND type = 'index'").isEmpty)
            let plan = try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN SELECT 1 FROM user_chunk WHERE user_id = 1 AND sha256 = x'00'")
            #expect(plan.contains { ($0["detail"] as String).contains("PRIMARY KEY (sha256=? AND user_id=?)") })
            try db.execute(sql: "DELETE FROM chunk WHERE sha256 = ?", arguments: [hashes[0]])
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM user_chunk WHERE sha256 = ?", arguments: [hashes[0]]) == 0)
            try db.execute(sql: "DELETE FROM user WHERE id = 2")
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM user_chunk WHERE user_id = 2") == 0)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM user_chunk") == owners.filter { $0.1 == 1 && $0.0 != hashes[0] }.count)
            #expect(try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").isEmpty)
        }
    }

    /// A server on `dir` where alice's library "docs" holds `a.bin` (`data`) and then
    /// `second` more files or versions; returns the server, her password and the library.
    static func populate(_ dir: String, data: [UInt8], then second: (path: String, bytes: [UInt8], base: Int64?)) async throws
        -> (server: TestServer, password: String, library: String) {
        let server = try await TestServer.make(dataDirectory: dir)
        let password = try await server.addUser("alice").1
        let library = try await server.run { api in
            let token = try await api.login("alice", password).accessToken
            let lib = try await api.createLibrary("docs", token: token).id
            try await api.putFile(lib, "a.bin", data, base: nil, token: token)
            try await api.putFile(lib, second.path, second.bytes, base: second.base, token: token)
            return lib
        }
        return (server, password, library)
    }

    @Test(.eachBackend) func restartKeepsEveryCommittedVersion() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-restart-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = randomBytes(300_000, seed: 3)
        let (_, password, library) = try await Self.populate(dir, data: data, then: ("a.bin", Array("v2".utf8), 1))
        let second = try await TestServer.make(dataDirectory: dir)
        try await second.run { api in
            let token = try await api.login("alice", password).accessToken
            let history = try api.decode(HistoryResponse.self, try await api.call(.get, "/libraries/\(library)/history?path=a.bin", token: token))
            #expect(history.versions.map(\.version) == [2, 1])
            let old = try await api.call(.get, "/libraries/\(library)/files?path=a.bin&version=1", token: token)
            #expect(Array(old.body.readableBytesView) == data)
            #expect(try await api.changes(library, token: token).head == 2)
        }
        #expect(try await Maintenance.check(store: second.services.store, blobs: second.services.blobs).isClean)
    }

    @Test func aDataDirectoryInTheTwoLevelLayoutIsMovedToOneLevelAtStartup() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-layout-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = randomBytes(300_000, seed: 4)
        // Both above the small-blob limit, so both are files.
        let (first, password, library) = try await Self.populate(dir, data: data, then: ("b.bin", randomBytes(100_000, seed: 5), nil))
        // Put every blob back where the two-level layout kept it, drop the marker, and leave
        // one blob already moved, as a crash midway through the move would.
        let blobs = dir + "/blobs"
        let moved = first.blobFiles()
        #expect(moved.count >= 2)
        for (i, relative) in moved.enumerated() where i > 0 {
            let name = String(relative.split(separator: "/")[1])
            let leaf = "\(blobs)/\(name.prefix(2))/\(name.dropFirst(2).prefix(2))"
            try FileManager.default.createDirectory(atPath: leaf, withIntermediateDirectories: true)
            try FileManager.default.moveItem(atPath: "\(blobs)/\(relative)", toPath: "\(leaf)/\(name)")
        }
        try FileManager.default.removeItem(atPath: blobs + "/" + FileBlobStore.layoutMarker)

        let second = try await TestServer.make(dataDirectory: dir)
        #expect(Set(second.blobFiles()) == Set(moved))
        #expect(FileManager.default.fileExists(atPath: blobs + "/" + FileBlobStore.layoutMarker))
        let leftovers = (FileManager.default.enumerator(atPath: blobs)?.allObjects as? [String] ?? []).filter { $0.split(separator: "/").count > 2 }
        #expect(leftovers.isEmpty)
        #expect(try await Maintenance.check(store: second.services.store, blobs: second.services.blobs).isClean)
        try await second.run { api in
            let token = try await api.login("alice", password).accessToken
            let back = try await api.call(.get, "/libraries/\(library)/files?path=a.bin", token: token)
            #expect(Array(back.body.readableBytesView) == data)
        }
    }

    /// Small blobs are rows and larger ones files; `check` finds either kind corrupt or gone.
    @Test(arguments: [4, 100_000])
    func checkFindsMissingAndCorruptBlobs(size: Int) async throws {
        let a = randomBytes(size, seed: 1), b = randomBytes(size, seed: 2)
        try await withLibrary { api, token, lib in
            try await api.putFile(lib, "a", a, base: nil, token: token)
            try await api.putFile(lib, "b", b, base: nil, token: token)
            let store = api.server.services.store, blobs = api.server.services.blobs as! FileBlobStore
            #expect(try await Maintenance.check(store: store, blobs: blobs) == CheckReport(checked: 2))
            let hashA = ContentHash.of(a), hashB = ContentHash.of(b)
            #expect(blobs.isFile(hashA) == (size > InlineBlobs.limit))
            try Self.damage(blobs, hashA, with: Array(a.reversed()))
            try Self.damage(blobs, hashB, with: nil)
            let report = try await Maintenance.check(store: store, blobs: blobs)
            #expect(report.corrupt == [hashA])
            #expect(report.missing == [hashB])
            #expect(!report.isClean)
        }
    }

    /// Overwrites a stored blob with `bytes`, or removes it (nil), as a disk fault would:
    /// the file, or the row of a small blob.
    static func damage(_ blobs: FileBlobStore, _ hash: ContentHash, with bytes: [UInt8]?) throws {
        if blobs.isFile(hash) {
            if let bytes { try Data(bytes).write(to: URL(fileURLWithPath: blobs.path(of: hash))) } else { try FileManager.default.removeItem(atPath: blobs.path(of: hash)) }
            return
        }
        try blobs.inline.pool.write { db in
            if let bytes {
                try db.execute(sql: "UPDATE blob SET data = ? WHERE sha256 = ?", arguments: [Data(bytes), hash.data])
            } else {
                try db.execute(sql: "DELETE FROM blob WHERE sha256 = ?", arguments: [hash.data])
            }
            #expect(db.changesCount == 1)
        }
    }

    /// A blob published whose metadata transaction then failed has no chunk row; `gc` takes
    /// such orphans out, a row and a file alike, at once (no grace: a blob no chunk row
    /// names cannot be in any version, and an upload publishes and records under the lock
    /// gc holds), and leaves every blob a chunk row names.
    @Test(.eachBackend) func gcRemovesBlobsNoChunkRowNames() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let kept = Array("committed".utf8)
        try await server.run { api in
            let token = try await api.newUser("alice")
            let lib = try await api.createLibrary("docs", token: token).id
            try await api.putFile(lib, "k", kept, base: nil, token: token)
        }
        let blobs = try #require(server.services.blobs as? FileBlobStore)
        let row = randomBytes(2_000, seed: 51), file = randomBytes(InlineBlobs.limit + 10, seed: 52)
        // Published as an upload does, but with no metadata transaction after it.
        let staged = try await blobs.stageBatch([(ContentHash.of(row), ByteBuffer(bytes: row)), (ContentHash.of(file), ByteBuffer(bytes: file))]).staged
        #expect(try blobs.publishBatch(staged) == [true, true])
        #expect(Set(try await blobs.storedHashes()) == [ContentHash.of(kept), ContentHash.of(row), ContentHash.of(file)])
        let report = try await Maintenance.collectGarbage(store: server.services.store, blobs: blobs, grace: 3600)
        #expect(report == GarbageReport(removedChunks: 0, removedBytes: 0, keptInGrace: 0, removedOrphans: 2))
        #expect(try await blobs.storedHashes() == [ContentHash.of(kept)])
        #expect(try blobs.trashContents().isEmpty)
        #expect(try await Maintenance.check(store: server.services.store, blobs: blobs).isClean)
    }

    /// gc lists the blobs before it takes the write lock, so an upload can publish and record
    /// a blob between the listing and the lock (here through a second connection, as another
    /// process would). Once gc holds the lock that blob has its row, and it is kept.
    @Test func gcKeepsABlobRecordedBetweenItsListingAndItsLock() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let blobs = try #require(server.services.blobs as? FileBlobStore)
        let content = randomBytes(3_000, seed: 53), hash = ContentHash.of(content)
        let staged = try await blobs.stageBatch([(hash, ByteBuffer(bytes: content))]).staged
        #expect(try blobs.publishBatch(staged) == [true])
        let listed = try await blobs.storedHashes()
        #expect(listed == [hash])
        let other = try DatabaseQueue(path: server.dataDirectory + "/ferry.sqlite")
        try await other.write { db in
            try db.execute(sql: "INSERT INTO user (id, username, password_hash, created_at, password_changed_at) VALUES (7, 'u', 'x', 0, 0)")
            try db.execute(sql: "INSERT INTO chunk (sha256, size, created_at, touched_at) VALUES (?, ?, ?, ?)",
                           arguments: [hash.data, content.count, Date(), Date()])
            try db.execute(sql: "INSERT INTO user_chunk (sha256, user_id) VALUES (?, 7)", arguments: [hash.data])
        }
        let report = try await server.services.store.collectGarbage(grace: 3600, listed: listed) { try blobs.moveToTrash($0) }
        #expect(report == GarbageReport(removedChunks: 0, removedBytes: 0, keptInGrace: 1, removedOrphans: 0))
        #expect(try blobs.exists(hash))
        #expect(try blobs.trashContents().isEmpty)
    }

    @Test(.eachBackend) func gcRemovesOnlyUnreferencedChunksPastTheGracePeriod() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let (orphan, kept, replaced) = try await server.populateForGC()
        let store = server.services.store, blobs = server.services.blobs
        // Within the grace period an unreferenced chunk may belong to an upload in flight.
        let early = try await Maintenance.collectGarbage(store: store, blobs: blobs, grace: 3600)
        #expect(early == GarbageReport(removedChunks: 0, removedBytes: 0, keptInGrace: 1, removedOrphans: 0))
        #expect(try await blobs.exists(ContentHash.of(orphan)))  // its chunk row names it: no orphan
        let late = try await Maintenance.collectGarbage(store: store, blobs: blobs, grace: 0)
        #expect(late == GarbageReport(removedChunks: 1, removedBytes: Int64(orphan.count), keptInGrace: 0))
        #expect(try await !blobs.exists(ContentHash.of(orphan)))
        #expect(try await blobs.exists(ContentHash.of(kept)))
        #expect(try await blobs.exists(ContentHash.of(replaced)))  // history keeps it
        #expect(try blobs.trashContents().isEmpty)
        #expect(try await store.missingChunks(userId: 1, among: [ContentHash.of(orphan)]) == [ContentHash.of(orphan)])
        #expect(try await Maintenance.check(store: store, blobs: blobs).isClean)
    }

    @Test func startupSettlesWhatACrashLeftBehind() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-crash-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A small blob (a row) and a large one (a file).
        let small = Array("keep me".utf8), large = randomBytes(100_000, seed: 8)
        let live = [ContentHash.of(small), ContentHash.of(large)]
        let deadRow = Array("row of a chunk already deleted".utf8)
        do {
            let server = try await TestServer.make(dataDirectory: dir)
            try await server.run { api in
                let token = try await api.newUser("alice")
                for body in [small, large] {
                    #expect(try await api.call(.put, "/chunks/\(ContentHash.of(body).hex)", token: token, body: ByteBuffer(bytes: body)).status == .created)
                }
            }
            let blobs = server.services.blobs as! FileBlobStore
            // A gc that moved both live blobs to the trash and then died before committing,
            // a gc that died after committing (a file and a row in the trash whose chunk rows
            // are gone), and an upload that died mid-write.
            try blobs.moveToTrash(live)
            let dead = ContentHash.of(Array("row already deleted".utf8))
            try Data("row already deleted".utf8).write(to: URL(fileURLWithPath: blobs.trashPath(dead)))
            _ = try blobs.inline.insert([(ContentHash.of(deadRow), ByteBuffer(bytes: deadRow))]) { _ in false }
            try blobs.moveToTrash([ContentHash.of(deadRow)])
            try Data("partial".utf8).write(to: URL(fileURLWithPath: blobs.stagingDirectory + "/upload-deadbeef"))
            #expect(try live.allSatisfy { try !blobs.exists($0) })
        }
        let restarted = try await TestServer.make(dataDirectory: dir)
        let restartedBlobs = try #require(restarted.services.blobs as? FileBlobStore)
        #expect(try live.allSatisfy { try restartedBlobs.exists($0) })
        #expect(try restarted.services.blobs.trashContents().isEmpty)
        #expect(try await restarted.storedBlobs().count == 2)
        #expect(try restarted.stagedFiles().isEmpty)
    }

    @Test func blobWriterStagesPrivatelyAndPublishesOnce() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-blobs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let blobs = try FileBlobStore(dataDirectory: dir, threadPool: .singleton, maxBlobSize: 1 << 20)
        let data = randomBytes(700_000, seed: 9), hash = ContentHash.of(data)
        let writer = try await blobs.makeWriter()
        for piece in stride(from: 0, to: data.count, by: 100_000) {
            try await writer.write(ByteBuffer(bytes: data[piece..<min(piece + 100_000, data.count)]))
        }
        let staged = try await writer.finish(expected: hash)
        #expect(staged.size == Int64(data.count))
        #expect(try !blobs.exists(hash))  // nothing visible before publish
        #expect(try blobs.publish(staged))
        #expect(try blobs.exists(hash))
        let again = try await blobs.makeWriter()
        try await again.write(ByteBuffer(bytes: data))
        #expect(try !blobs.publish(try await again.finish(expected: hash)))  // deduplicated
        let read = try await blobs.readTogether([BlobSpan(hash: hash, offset: 1000, length: 500_000)])
        #expect(Array(read.readableBytesView) == Array(data[1000..<501_000]))
        #expect(try await blobs.verify(hash) == (Int64(data.count), true))

        let tooBig = try await blobs.makeWriter()
        await #expect(throws: BlobError.tooLarge(limit: 1 << 20)) {
            try await tooBig.write(ByteBuffer(bytes: [UInt8](repeating: 0, count: (1 << 20) + 1)))
        }
        await tooBig.abort()
        #expect(try FileManager.default.contentsOfDirectory(atPath: blobs.stagingDirectory).isEmpty)
        await #expect(throws: BlobError.self) { try await blobs.verify(ContentHash.of([0])) }
    }

    /// Small blobs are rows of `blobs.sqlite`: staged in memory (no staging file), published
    /// once, read at any offset, trashed, put back by a new upload or a known row, deleted.
    @Test func smallBlobsAreRowsThroughEveryStep() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-rows-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let blobs = try FileBlobStore(dataDirectory: dir, threadPool: .singleton, maxBlobSize: 1 << 20)
        let small = randomBytes(5_000, seed: 31), large = randomBytes(InlineBlobs.limit + 1, seed: 32)
        let s = ContentHash.of(small), l = ContentHash.of(large)
        let items = [(hash: s, bytes: ByteBuffer(bytes: small)), (hash: l, bytes: ByteBuffer(bytes: large)), (hash: ContentHash.of([1]), bytes: ByteBuffer(bytes: [2]))]
        let (staged, mismatched) = try await blobs.stageBatch(items)
        #expect(mismatched == [ContentHash.of([1])])
        #expect(staged.map { $0.bytes != nil } == [true, false])
        #expect(try FileManager.default.contentsOfDirectory(atPath: blobs.stagingDirectory).count == 1)  // the large one only
        #expect(try !blobs.exists(s))  // nothing visible before publish
        #expect(try blobs.publishBatch(staged) == [true, true])
        #expect(!blobs.isFile(s) && blobs.isFile(l))
        #expect(try blobs.exists(s))
        #expect(try blobs.publishBatch(try await blobs.stageBatch(Array(items.prefix(1))).staged) == [false])  // deduplicated
        // A row and a file in one piece, each from an offset.
        let read = try await blobs.readTogether([BlobSpan(hash: s, offset: 1_000, length: 3_000), BlobSpan(hash: l, offset: 7, length: 100)])
        #expect(Array(read.readableBytesView) == Array(small[1_000..<4_000]) + Array(large[7..<107]))
        #expect(try await blobs.verify(s) == (Int64(small.count), true))
        await #expect(throws: BlobError.self) { try await blobs.readTogether([BlobSpan(hash: s, offset: 4_000, length: 2_000)]) }  // past its end
        await #expect(throws: BlobError.self) { try await blobs.readTogether([BlobSpan(hash: l, offset: 60_000, length: 10_000)]) }

        // A single upload of a small blob is a row too, and leaves no staging file: the
        // writer holds everything below `coalesce`, which must stay above the row limit.
        #expect(FileBlobWriter.coalesce > InlineBlobs.limit)
        let writer = try await blobs.makeWriter()
        let one = randomBytes(900, seed: 33)
        try await writer.write(ByteBuffer(bytes: one))
        #expect(try blobs.publish(try await writer.finish(expected: ContentHash.of(one))))
        #expect(try blobs.exists(ContentHash.of(one)) && !blobs.isFile(ContentHash.of(one)))
        #expect(try FileManager.default.contentsOfDirectory(atPath: blobs.stagingDirectory).isEmpty)

        // Trashed: out of place, back by a new upload of the same bytes.
        try blobs.moveToTrash([s, l])
        #expect(try !blobs.exists(s) && !blobs.exists(l))
        #expect(try Set(blobs.trashContents()) == [s, l])
        #expect(try blobs.publishBatch(try await blobs.stageBatch(Array(items.prefix(1))).staged) == [true])
        #expect(try blobs.emptyTrash { _ in false } == 1)  // the large file only; the row is back in place
        #expect(try blobs.exists(s))
        // Trashed again: a known blob goes back, an unknown one is deleted.
        try blobs.moveToTrash([s])
        #expect(try blobs.emptyTrash { $0 == s } == 0)
        #expect(try blobs.exists(s))
        try blobs.moveToTrash([s])
        #expect(try blobs.emptyTrash { _ in false } == 1)
        #expect(try !blobs.exists(s) && blobs.trashContents().isEmpty)
        await #expect(throws: BlobError.notFound(s)) { try await blobs.verify(s) }
        await #expect(throws: BlobError.notFound(s)) { try await blobs.readTogether([BlobSpan(hash: s, offset: 0, length: 10)]) }
    }

    /// A data directory that kept small blobs as files before `blobs.sqlite` existed keeps
    /// them: an upload of one adds no row beside it. A new store records that its small
    /// blobs are rows only, and that survives a restart.
    @Test func smallBlobFilesFromBeforeRowsStayTheOnlyCopy() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-legacy-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let old = randomBytes(3_000, seed: 41), new = randomBytes(2_000, seed: 42)
        let o = ContentHash.of(old), n = ContentHash.of(new)
        // The layout before rows: the shard directories, the marker, a small blob as a file.
        try FileManager.default.createDirectory(atPath: dir + "/blobs/" + String(o.hex.prefix(2)), withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: dir + "/blobs/" + FileBlobStore.layoutMarker, contents: nil))
        #expect(FileManager.default.createFile(atPath: dir + "/blobs/" + String(o.hex.prefix(2)) + "/" + o.hex, contents: Data(old)))
        for reopen in [false, true] {
            let blobs = try FileBlobStore(dataDirectory: dir, threadPool: .singleton, maxBlobSize: 1 << 20)
            #expect(blobs.inline.smallFilesMayExist, "reopened: \(reopen)")
            let staged = try await blobs.stageBatch([(o, ByteBuffer(bytes: old)), (n, ByteBuffer(bytes: new))]).staged
            #expect(try blobs.publishBatch(staged) == [false, !reopen])
            #expect(try !blobs.inline.contains(o) && blobs.inline.contains(n) && blobs.isFile(o))
            let read = try await blobs.readTogether([BlobSpan(hash: o, offset: 0, length: 3_000)])
            #expect(Array(read.readableBytesView) == old)
        }

        let fresh = dir + "/fresh"
        try FileManager.default.createDirectory(atPath: fresh, withIntermediateDirectories: true)
        for _ in 0..<2 {
            let blobs = try FileBlobStore(dataDirectory: fresh, threadPool: .singleton, maxBlobSize: 1 << 20)
            #expect(!blobs.inline.smallFilesMayExist)
        }
        #expect(!FileBlobStore.holdsAnyBlob(fresh + "/blobs") && FileBlobStore.holdsAnyBlob(dir + "/blobs"))
    }

    /// `O_DIRECT` writes with an aligned buffer, the tail written normally, give back exactly
    /// the bytes, at every size around the alignment and buffer boundaries, on a disk file
    /// system and on tmpfs (which refuses `O_DIRECT`, so every write falls back), appended
    /// piece by piece as the streaming writer does.
    @Test(arguments: [FileManager.default.temporaryDirectory.path, "/dev/shm"])
    func directWritesGiveBackExactlyTheBytes(on root: String) throws {
        guard FileManager.default.isWritableFile(atPath: root) else { return }
        let dir = root + "/ferry-direct-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = DirectWriter(keep: 1)
        let a = DirectWriter.alignment, b = DirectWriter.bufferSize
        for (i, size) in [0, 1, a - 1, a, a + 1, b - 1, b, b + a + 7, 3 * b + 5].enumerated() {
            let bytes = randomBytes(size, seed: UInt64(60 + i))
            // Whole, and as an aligned piece followed by the rest.
            for pieces in [[bytes[...]], [bytes[..<DirectWriter.alignedPrefix(size / 2)], bytes[DirectWriter.alignedPrefix(size / 2)...]]] {
                let path = "\(dir)/\(size)-\(pieces.count)"
                let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                try #require(fd >= 0)
                for piece in pieces { try Array(piece).withUnsafeBytes { try writer.write(fd, $0) } }
                close(fd)
                #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(bytes), "\(size) bytes in \(pieces.count) pieces on \(root)")
            }
        }
    }

    /// A download's spans are cut and grouped into pieces of exactly the piece size (the last
    /// may be shorter) that cover the same bytes in the same order.
    @Test func downloadPiecesCoverTheSpansInOrder() {
        let lengths: [Int64] = [1, 7, 100, 999, 1_000, 1_001, 2_500]
        for count in 0...4 {
            for size in [1, 10, 999, 1_000, 1_001, 4_096] {
                let spans = (0..<count).map { i in
                    BlobSpan(hash: ContentHash.of([UInt8(i)]), offset: Int64(i * 37), length: lengths[(i * 3 + size) % lengths.count])
                }
                let pieces = FileBlobStore.pieces(of: spans, bytes: size)
                #expect(pieces.dropLast().allSatisfy { $0.reduce(0) { $0 + $1.length } == Int64(size) })
                #expect(pieces.allSatisfy { !$0.isEmpty && $0.reduce(0) { $0 + $1.length } <= Int64(size) })
                // Every byte of every span, once, in order.
                let bytes = { (list: [BlobSpan]) in list.flatMap { s in (s.offset..<s.offset + s.length).map { (s.hash, $0) } } }
                #expect(bytes(pieces.flatMap { $0 }).elementsEqual(bytes(spans), by: ==))
            }
        }
    }

    @Test func chunkUploadCutOffMidBodyLeavesNothingVisible() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run(.live) { api in
            let token = try await api.newUser("alice")
            let port = try #require(api.client.port)
            let body = randomBytes(1 << 20, seed: 11), hash = ContentHash.of(body)
            // Send the headers and half the body, then hang up.
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
            var request = ByteBuffer(string: "PUT /api/v1/chunks/\(hash.hex) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nContent-Length: \(body.count)\r\n\r\n")
            request.writeBytes(body.prefix(body.count / 2))
            try await channel.writeAndFlush(request).get()
            try await channel.close().get()
            // The server notices the hang-up and aborts the staged write; wait for that with a deadline.
            let deadline = ContinuousClock.now + .seconds(30)
            while (try server.stagedFiles().isEmpty == false) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(try server.stagedFiles().isEmpty)
            #expect(try await server.storedBlobs().isEmpty)
            let missing = try await api.call(.post, "/chunks/missing", token: token, json: MissingChunksRequest(chunks: [hash]))
            #expect(try api.decode(MissingChunksResponse.self, missing).missing == [hash])
            // The full upload afterwards succeeds.
            #expect(try await api.call(.put, "/chunks/\(hash.hex)", token: token, body: ByteBuffer(bytes: body)).status == .created)
        }
    }
}

extension TestServer {
    /// What the gc tests start from, for user 1: a chunk uploaded and never committed, a
    /// committed file `k`, and a file `r` whose first content was replaced by `k`'s (history
    /// keeps it). Returns the three contents.
    func populateForGC() async throws -> (unreferenced: [UInt8], kept: [UInt8], replaced: [UInt8]) {
        let unreferenced = Array("uploaded, never committed".utf8), kept = Array("committed".utf8), replaced = Array("replaced but in history".utf8)
        try await run { api in
            let token = try await api.newUser("alice")
            let lib = try await api.createLibrary("docs", token: token).id
            #expect(try await api.call(.put, "/chunks/\(ContentHash.of(unreferenced).hex)", token: token, body: ByteBuffer(bytes: unreferenced)).status == .created)
            try await api.putFile(lib, "k", kept, base: nil, token: token)
            try await api.putFile(lib, "r", replaced, base: nil, token: token)
            try await api.putFile(lib, "r", kept, base: 2, token: token)
        }
        return (unreferenced, kept, replaced)
    }
}
