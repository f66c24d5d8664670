import FerryCore
import Foundation
import GRDB
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
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
             try Int.fetchOne(db, sql: "PRAGMA busy_timeout"), try Int.fetchOne(db, sql: "PRAGMA foreign_keys"))
        }
        #expect(writer.0 == "wal")
        #expect(writer.1 == 2)
        #expect((writer.2 ?? 0) > 0)
        #expect(writer.3 == 1)
        // Several concurrent readers: each new connection must be FULL too.
        let readers = try await withThrowingTaskGroup(of: Int?.self) { group in
            for _ in 0..<4 { group.addTask { try await pool.read { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(readers.allSatisfy { $0 == 2 })
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

    @Test func restartKeepsEveryCommittedVersion() async throws {
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
        let (first, password, library) = try await Self.populate(dir, data: data, then: ("b.txt", Array("small".utf8), nil))
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

    @Test func checkFindsMissingAndCorruptBlobs() async throws {
        try await withLibrary { api, token, lib in
            try await api.putFile(lib, "a", Array("aaaa".utf8), base: nil, token: token)
            try await api.putFile(lib, "b", Array("bbbb".utf8), base: nil, token: token)
            try await checkAfterDamage(api.server)
        }
    }

    private func checkAfterDamage(_ server: TestServer) async throws {
        let store = server.services.store, blobs = server.services.blobs as! FileBlobStore
        #expect(try await Maintenance.check(store: store, blobs: blobs) == CheckReport(checked: 2))
        let a = ContentHash.of(Array("aaaa".utf8)), b = ContentHash.of(Array("bbbb".utf8))
        try Data("AAAA".utf8).write(to: URL(fileURLWithPath: blobs.path(of: a)))
        try FileManager.default.removeItem(atPath: blobs.path(of: b))
        let report = try await Maintenance.check(store: store, blobs: blobs)
        #expect(report.corrupt == [a])
        #expect(report.missing == [b])
        #expect(!report.isClean)
    }

    @Test func gcRemovesOnlyUnreferencedChunksPastTheGracePeriod() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let orphan = Array("uploaded, never committed".utf8)
        let kept = Array("committed".utf8)
        let replaced = Array("replaced but in history".utf8)
        try await server.run { api in
            let token = try await api.newUser("alice")
            let lib = try await api.createLibrary("docs", token: token).id
            #expect(try await api.call(.put, "/chunks/\(ContentHash.of(orphan).hex)", token: token, body: ByteBuffer(bytes: orphan)).status == .created)
            try await api.putFile(lib, "k", kept, base: nil, token: token)
            try await api.putFile(lib, "r", replaced, base: nil, token: token)
            try await api.putFile(lib, "r", kept, base: 2, token: token)
        }
        let store = server.services.store, blobs = server.services.blobs
        // Within the grace period an unreferenced chunk may belong to an upload in flight.
        let early = try await Maintenance.collectGarbage(store: store, blobs: blobs, grace: 3600)
        #expect(early.removedChunks == 0)
        #expect(early.keptInGrace == 1)
        let late = try await Maintenance.collectGarbage(store: store, blobs: blobs, grace: 0)
        #expect(late == GarbageReport(removedChunks: 1, removedBytes: Int64(orphan.count), keptInGrace: 0))
        #expect(try !blobs.exists(ContentHash.of(orphan)))
        #expect(try blobs.exists(ContentHash.of(kept)))
        #expect(try blobs.exists(ContentHash.of(replaced)))  // history keeps it
        #expect(try blobs.trashContents().isEmpty)
        #expect(try await store.missingChunks(userId: 1, among: [ContentHash.of(orphan)]) == [ContentHash.of(orphan)])
        #expect(try await Maintenance.check(store: store, blobs: blobs).isClean)
    }

    @Test func startupSettlesWhatACrashLeftBehind() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-crash-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let body = Array("keep me".utf8), hash = ContentHash.of(body)
        do {
            let server = try await TestServer.make(dataDirectory: dir)
            try await server.run { api in
                let token = try await api.newUser("alice")
                #expect(try await api.call(.put, "/chunks/\(hash.hex)", token: token, body: ByteBuffer(bytes: body)).status == .created)
            }
            let blobs = server.services.blobs as! FileBlobStore
            // A gc that moved a live blob to the trash and then died before committing,
            // a gc that died after committing, and an upload that died mid-write.
            try blobs.moveToTrash(hash)
            let dead = ContentHash.of(Array("row already deleted".utf8))
            try Data("row already deleted".utf8).write(to: URL(fileURLWithPath: blobs.trashPath(dead)))
            try Data("partial".utf8).write(to: URL(fileURLWithPath: blobs.stagingDirectory + "/upload-deadbeef"))
            #expect(try !blobs.exists(hash))
        }
        let restarted = try await TestServer.make(dataDirectory: dir)
        #expect(try restarted.services.blobs.exists(hash))
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
        var read: [UInt8] = []
        for try await b in blobs.read(hash, offset: 1000, length: 500_000) { read += Array(b.readableBytesView) }
        #expect(read == Array(data[1000..<501_000]))
        #expect(try await blobs.verify(hash) == (Int64(data.count), true))

        let tooBig = try await blobs.makeWriter()
        await #expect(throws: BlobError.tooLarge(limit: 1 << 20)) {
            try await tooBig.write(ByteBuffer(bytes: [UInt8](repeating: 0, count: (1 << 20) + 1)))
        }
        await tooBig.abort()
        #expect(try FileManager.default.contentsOfDirectory(atPath: blobs.stagingDirectory).isEmpty)
        await #expect(throws: BlobError.self) { try await blobs.verify(ContentHash.of([0])) }
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
            #expect(server.blobFiles().isEmpty)
            let missing = try await api.call(.post, "/chunks/missing", token: token, json: MissingChunksRequest(chunks: [hash]))
            #expect(try api.decode(MissingChunksResponse.self, missing).missing == [hash])
            // The full upload afterwards succeeds.
            #expect(try await api.call(.put, "/chunks/\(hash.hex)", token: token, body: ByteBuffer(bytes: body)).status == .created)
        }
    }
}
