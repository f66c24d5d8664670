import FerryCore
import FerryTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import FerryServer

/// Per-user quotas (SPEC §10, issue 24): usage counts each chunk once per user, an upload
/// whose new chunks would pass the quota is refused whole with 507 `quota_exceeded`, and
/// gc lowers usage once a user's versions no longer reference a chunk.
@Suite("Quotas", .eachBackend)
struct QuotaTests {
    static let kib: Int64 = 1024

    /// A chunk-sized piece of distinct bytes and its hash.
    static func chunk(_ size: Int, seed: UInt64) -> (hash: ContentHash, bytes: [UInt8]) {
        let bytes = randomBytes(size, seed: seed)
        return (ContentHash.of(bytes), bytes)
    }

    static func usage(_ server: TestServer, _ userId: Int64) async throws -> StorageAccount {
        try #require(try await server.services.store.storageAccount(userId: userId))
    }

    static func chunkRows(_ server: TestServer) async throws -> Set<Data> {
        Set(try await server.fetchBytes("SELECT sha256 FROM chunk"))
    }

    /// A user of `server` signed in through `api`: their row and an access token.
    static func signIn(_ name: String, _ server: TestServer, _ api: API, admin: Bool = false) async throws -> (user: StoredUser, token: String) {
        let (user, password) = try await server.addUser(name, admin: admin)
        return (user, try await api.login(name, password).accessToken)
    }

    /// Runs `body` on a fresh in-process server.
    static func withServer(_ body: @Sendable (TestServer, API) async throws -> Void) async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run { api in try await body(server, api) }
    }

    @Test(.eachBlobBackend) func anUploadPastTheQuotaIsRefusedWholeAndLeavesNothingBehind() async throws {
        try await Self.withServer { server, api in
            let (alice, token) = try await Self.signIn("alice", server, api)
            let lib = try await api.createLibrary("docs", token: token).id
            try await server.services.store.setQuota(userId: alice.id, bytes: 100 * Self.kib)

            let first = Self.chunk(60 * 1024, seed: 1)
            #expect(try await api.call(.put, "/chunks/\(first.hash.hex)", token: token, body: ByteBuffer(bytes: first.bytes)).status == .created)
            #expect(try await Self.usage(server, alice.id) == StorageAccount(usedBytes: 60 * Self.kib, quotaBytes: 100 * Self.kib))
            let rowsBefore = try await Self.chunkRows(server)

            // Two new chunks of 30 KiB: 120 KiB in all, past 100 KiB. Refused whole.
            let a = Self.chunk(30 * 1024, seed: 2), b = Self.chunk(30 * 1024, seed: 3)
            let batch = try await api.call(.post, "/chunks/batch", token: token, body: FilesAndChunksTests.batchBody([(a.hash, a.bytes), (b.hash, b.bytes)]))
            #expect(batch.status.code == 507)
            #expect(api.errorCode(batch) == "quota_exceeded")
            let message = try api.decode(ErrorEnvelope.self, batch).error.message
            #expect(message.contains("60 KiB of 100 KiB used") && message.contains("needs 60 KiB more"), "\(message)")
            // One chunk on its own, and a streamed file of both: refused the same way.
            let big = Self.chunk(50 * 1024, seed: 4)
            let single = try await api.call(.put, "/chunks/\(big.hash.hex)", token: token, body: ByteBuffer(bytes: big.bytes))
            #expect(single.status.code == 507 && api.errorCode(single) == "quota_exceeded")
            let streamed = try await api.call(.put, "/libraries/\(lib)/files?path=big.bin", token: token, body: ByteBuffer(bytes: randomBytes(300 * 1024, seed: 5)))
            #expect(streamed.status.code == 507 && api.errorCode(streamed) == "quota_exceeded", "\(String(buffer: streamed.body))")

            // Nothing half-written: no chunk rows, no holds, no usage, no staged files, no version.
            #expect(try await Self.chunkRows(server) == rowsBefore)
            #expect(try await server.services.store.missingChunks(userId: alice.id, among: [a.hash, b.hash, big.hash]) == [a.hash, b.hash, big.hash])
            #expect(try await Self.usage(server, alice.id).usedBytes == 60 * Self.kib)
            #expect(try server.stagedFiles().isEmpty)
            #expect(try await server.services.store.current(libraryId: lib, path: try FerryPath("big.bin")) == nil)

            // What fits still goes in, and check finds everything in order.
            let fits = try await api.call(.post, "/chunks/batch", token: token, body: FilesAndChunksTests.batchBody([(a.hash, a.bytes)]))
            #expect(fits.status == .ok)
            #expect(try await Self.usage(server, alice.id).usedBytes == 90 * Self.kib)
            let report = try await Maintenance.check(store: server.services.store, blobs: server.services.blobs)
            #expect(report.isClean && report.usageRepaired.isEmpty)
            // An object store already holds the refused chunks' objects, rowless: gc's orphan
            // sweep takes them (none with files, where nothing was published).
            _ = try await Maintenance.collectGarbage(store: server.services.store, blobs: server.services.blobs, grace: 3600)
            #expect(try await server.storedBlobs().count == (try await Self.chunkRows(server)).count)
        }
    }

    @Test func chunksAlreadyHeldAndCommitsCostNothing() async throws {
        try await Self.withServer { server, api in
            let (alice, token) = try await Self.signIn("alice", server, api)
            let lib = try await api.createLibrary("docs", token: token).id
            let data = randomBytes(40 * 1024, seed: 10)
            _ = try await api.putFile(lib, "a.bin", data, base: nil, token: token)
            let used = try await Self.usage(server, alice.id).usedBytes
            #expect(used == 40 * Self.kib)
            // A quota below what she holds: the same content again, and more files naming it, still pass.
            try await server.services.store.setQuota(userId: alice.id, bytes: 10 * Self.kib)
            #expect(try await api.putFile(lib, "copy.bin", data, base: nil, token: token).status == .ok)
            let streamed = try await api.call(.put, "/libraries/\(lib)/files?path=again.bin", token: token, body: ByteBuffer(bytes: data))
            #expect(streamed.status == .created, "\(String(buffer: streamed.body))")
            #expect(try await Self.usage(server, alice.id).usedBytes == used)
            // One new byte does not.
            let tiny = try await api.call(.put, "/chunks/\(ContentHash.of([7]).hex)", token: token, body: ByteBuffer(bytes: [7]))
            #expect(tiny.status.code == 507 && api.errorCode(tiny) == "quota_exceeded")
            // Cleared, anything goes.
            try await server.services.store.setQuota(userId: alice.id, bytes: nil)
            #expect(try await api.call(.put, "/chunks/\(ContentHash.of([7]).hex)", token: token, body: ByteBuffer(bytes: [7])).status == .created)
            #expect(try await Self.usage(server, alice.id) == StorageAccount(usedBytes: used + 1, quotaBytes: nil))
            await #expect(throws: MetadataError.notFound("user")) { try await server.services.store.setQuota(userId: 999_999, bytes: 1) }
        }
    }

    @Test func usageCountsEachChunkOncePerUser() async throws {
        try await Self.withServer { server, api in
            let (alice, aliceToken) = try await Self.signIn("alice", server, api)
            let (bob, bobToken) = try await Self.signIn("bob", server, api)
            let shared = Self.chunk(25 * 1024, seed: 20)
            for token in [aliceToken, aliceToken, bobToken] {
                #expect(try await api.call(.put, "/chunks/\(shared.hash.hex)", token: token, body: ByteBuffer(bytes: shared.bytes)).status == .created)
            }
            // The same chunk twice in one batch counts once too.
            let other = Self.chunk(5 * 1024, seed: 21)
            let twice = try await api.call(.post, "/chunks/batch", token: bobToken, body: FilesAndChunksTests.batchBody([(other.hash, other.bytes), (other.hash, other.bytes)]))
            #expect(twice.status == .ok)
            #expect(try await Self.usage(server, alice.id).usedBytes == 25 * Self.kib)
            #expect(try await Self.usage(server, bob.id).usedBytes == 30 * Self.kib)
            #expect(try await server.fetchBytes("SELECT sha256 FROM chunk").count == 2)
            #expect(try await server.services.store.reconcileUsage() == [])
        }
    }

    @Test func concurrentUploadsCannotTogetherPassTheQuota() async throws {
        try await Self.withServer { server, api in
            let (alice, token) = try await Self.signIn("alice", server, api)
            try await server.services.store.setQuota(userId: alice.id, bytes: 100 * Self.kib)
            let chunks = (0..<12).map { Self.chunk(20 * 1024, seed: 100 + UInt64($0)) }
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for (n, c) in chunks.enumerated() {
                    group.addTask {
                        n.isMultiple(of: 2)
                            ? try await api.call(.put, "/chunks/\(c.hash.hex)", token: token, body: ByteBuffer(bytes: c.bytes)).status.code
                            : try await api.call(.post, "/chunks/batch", token: token, body: FilesAndChunksTests.batchBody([(c.hash, c.bytes)])).status.code
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            // Exactly five of 20 KiB fit in 100 KiB, whichever won.
            #expect(statuses.filter { $0 == 201 || $0 == 200 }.count == 5, "\(statuses)")
            #expect(statuses.filter { $0 == 507 }.count == 7, "\(statuses)")
            #expect(try await Self.usage(server, alice.id).usedBytes == 100 * Self.kib)
            #expect(try await server.services.store.reconcileUsage() == [])
        }
    }

    /// Deletes alone keep history (and its chunks) until retention purges versions; once no
    /// version in a user's libraries references a chunk, gc releases their hold and their
    /// usage drops, while another user who still uses it keeps it stored.
    @Test func usageDropsWhenRetentionAndGcReleaseChunksNoVersionOfTheUserReferences() async throws {
        try await Self.withServer { server, api in
            let store = server.services.store
            let (alice, aliceToken) = try await Self.signIn("alice", server, api)
            let (bob, bobToken) = try await Self.signIn("bob", server, api)
            let aliceLib = try await api.createLibrary("docs", token: aliceToken).id
            let bobLib = try await api.createLibrary("docs", token: bobToken).id
            let kept = randomBytes(30 * 1024, seed: 30), shared = randomBytes(20 * 1024, seed: 31)
            _ = try await api.putFile(aliceLib, "kept.bin", kept, base: nil, token: aliceToken)
            let sharedVersion = try #require(try await api.putFile(aliceLib, "shared.bin", shared, base: nil, token: aliceToken).version)
            _ = try await api.putFile(bobLib, "shared.bin", shared, base: nil, token: bobToken)
            let stray = Self.chunk(10 * 1024, seed: 32)  // uploaded, never committed
            #expect(try await api.call(.put, "/chunks/\(stray.hash.hex)", token: aliceToken, body: ByteBuffer(bytes: stray.bytes)).status == .created)
            #expect(try await Self.usage(server, alice.id).usedBytes == 60 * Self.kib)

            // Within the grace an upload may still be committed: nothing is released.
            _ = try await Maintenance.collectGarbage(store: store, blobs: server.services.blobs, grace: 3600)
            #expect(try await Self.usage(server, alice.id).usedBytes == 60 * Self.kib)

            // Deleted: history still references it, so it still counts.
            _ = try await api.commit(aliceLib, [.delete(try FerryPath("shared.bin"), base: sharedVersion.version)], token: aliceToken)
            _ = try await Maintenance.collectGarbage(store: store, blobs: server.services.blobs, grace: 0)
            #expect(try await Self.usage(server, alice.id).usedBytes == 50 * Self.kib, "the stray upload is released, the deleted file's history is not")

            // Retention removes the deleted path once its trash time is over: gc then
            // releases alice's hold only.
            _ = try #require(try await store.setRetention(userId: alice.id, libraryId: aliceLib, policy: RetentionPolicy(trashDays: 1)))
            let purged = try await store.purge(libraryId: aliceLib, now: Date().addingTimeInterval(2 * 86_400))
            #expect(purged.purgedVersions == 2, "the put and the delete of shared.bin")
            #expect(try await store.current(libraryId: aliceLib, path: FerryPath("shared.bin")) == nil)
            let report = try await Maintenance.collectGarbage(store: store, blobs: server.services.blobs, grace: 0)
            #expect(report.removedChunks == 0, "bob's file still uses the shared chunk")
            #expect(try await Self.usage(server, alice.id).usedBytes == 30 * Self.kib)
            #expect(try await Self.usage(server, bob.id).usedBytes == 20 * Self.kib)
            #expect(try await store.reconcileUsage() == [])
            #expect(try await Maintenance.check(store: store, blobs: server.services.blobs).isClean)

            // Released means not proven any more: alice must send it again, and pays again.
            var chunker = ContentChunker()
            chunker.update(shared)
            let manifest = chunker.finish()
            #expect(try await store.missingChunks(userId: alice.id, among: manifest.chunks.map(\.sha256)) == manifest.chunks.map(\.sha256))
            #expect(try await api.call(.get, "/chunks/\(manifest.chunks[0].sha256.hex)", token: aliceToken).status == .notFound)
            let back = try await api.putFile(aliceLib, "shared.bin", shared, base: nil, token: aliceToken)
            #expect(back.status == .ok)
            #expect(try await Self.usage(server, alice.id).usedBytes == 50 * Self.kib)
        }
    }

    @Test func checkSetsADriftedCounterRight() async throws {
        try await Self.withServer { server, api in
            let (alice, token) = try await Self.signIn("alice", server, api)
            let c = Self.chunk(3000, seed: 40)
            #expect(try await api.call(.put, "/chunks/\(c.hash.hex)", token: token, body: ByteBuffer(bytes: c.bytes)).status == .created)
            let table = Backend.current == .postgres ? "ferry_user" : "user"
            try await server.executeRaw("UPDATE \(table) SET used_bytes = 5 WHERE username = ?", ["alice"])
            let report = try await Maintenance.check(store: server.services.store, blobs: server.services.blobs)
            #expect(report.usageRepaired == [UsageDrift(username: "alice", counted: 5, actual: 3000)])
            #expect(!report.isClean)
            #expect(try await Self.usage(server, alice.id).usedBytes == 3000)
            #expect(try await Maintenance.check(store: server.services.store, blobs: server.services.blobs).isClean)
            // The schema refuses a negative counter or quota.
            await #expect(throws: (any Error).self) { try await server.executeRaw("UPDATE \(table) SET used_bytes = -1 WHERE username = ?", ["alice"]) }
            await #expect(throws: (any Error).self) { try await server.executeRaw("UPDATE \(table) SET quota_bytes = -1 WHERE username = ?", ["alice"]) }
        }
    }

    @Test func accountUsageAnswersTheCallerOnly() async throws {
        try await Self.withServer { server, api in
            let (alice, token) = try await Self.signIn("alice", server, api)
            let device = try await api.registerDevice("laptop", token: token).token
            let bob = try await api.newUser("bob")
            _ = try await api.call(.put, "/chunks/\(ContentHash.of([1, 2, 3]).hex)", token: token, body: ByteBuffer(bytes: [1, 2, 3]))
            let none = try await api.call(.get, "/account/usage", token: device)
            #expect(none.status == .ok)
            #expect(String(buffer: none.body).contains(#""quota_bytes":null"#), "\(String(buffer: none.body))")
            #expect(try api.decode(AccountUsageResponse.self, none) == AccountUsageResponse(username: "alice", usedBytes: 3, quotaBytes: nil))
            try await server.services.store.setQuota(userId: alice.id, bytes: 1 << 30)
            let set = try await api.call(.get, "/account/usage", token: token)
            #expect(try api.decode(AccountUsageResponse.self, set) == AccountUsageResponse(username: "alice", usedBytes: 3, quotaBytes: 1 << 30))
            let other = try await api.call(.get, "/account/usage", token: bob)
            #expect(try api.decode(AccountUsageResponse.self, other) == AccountUsageResponse(username: "bob", usedBytes: 0, quotaBytes: nil))
            #expect(try await api.call(.get, "/account/usage").status == .unauthorized)
        }
    }

    @Test func theDashboardShowsUsageAndTheAdminPageEachQuota() async throws {
        try await Self.withServer { server, api in
            let (alice, password) = try await server.addUser("alice", admin: true)
            let (bob, _) = try await server.addUser("bob")
            try await server.services.store.setQuota(userId: bob.id, bytes: 5 << 30)
            let token = try await api.login("alice", password).accessToken
            _ = try await api.call(.put, "/chunks/\(ContentHash.of([9]).hex)", token: token, body: ByteBuffer(bytes: [9]))
            let browser = try await DashboardBrowser.signIn(api, "alice", password)
            let libraries = String(buffer: try await browser.get("/libraries").body)
            #expect(libraries.contains("Storage: 1 B used, no quota"), "\(libraries)")
            try await server.services.store.setQuota(userId: alice.id, bytes: 2048)
            #expect(String(buffer: try await browser.get("/libraries").body).contains("Storage: 1 B of 2.0 KiB used"))
            let admin = String(buffer: try await browser.get("/admin").body)
            #expect(admin.contains("<th scope=\"col\">Quota</th>"))
            #expect(admin.contains("<td>5.0 GiB</td>") && admin.contains("<td>2.0 KiB</td>"), "\(admin)")
        }
    }
}
