import FerryCore
import FerryTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOPosix
import NIOCore
import Testing

@testable import FerryServer

/// gc with blobs in S3 (docs/architecture.md, "gc on S3"), against SeaweedFS on loopback and
/// on both metadata backends: the trash table, the epoch fence of uploads, deletes after the
/// transaction, and what an interrupted or failing delete leaves for the next run.
@Suite("gc on S3", .enabled(if: BlobBackend.endpoint != nil))
struct S3GarbageCollectionTests {
    static func server() async throws -> TestServer {
        try await BlobBackend.$current.withValue(.s3) { try await TestServer.make() }
    }

    /// The hashes in gc's trash table.
    static func trash(_ server: TestServer) async throws -> Set<ContentHash> {
        Set(try await server.fetchBytes("SELECT sha256 FROM blob_trash").compactMap { ContentHash(bytes: $0) })
    }

    /// Places `bytes` in the bucket as an upload does, with no row after it (an upload whose
    /// record failed, or one still in flight).
    static func place(_ bytes: [UInt8], in blobs: any BlobStore) async throws -> StagedBlob {
        let writer = try await blobs.makeWriter()
        try await writer.write(ByteBuffer(bytes: bytes))
        return try await writer.finish(expected: ContentHash.of(bytes))
    }

    @Test(.eachBackend) func gcDeletesExactlyTheUnreferencedObjects() async throws {
        let server = try await Self.server()
        defer { server.removeData() }
        let (unreferenced, kept, replaced) = try await server.populateForGC()
        let orphan = Array("placed, never recorded".utf8)
        let store = server.services.store, blobs = server.services.blobs
        _ = try await Self.place(orphan, in: blobs)
        #expect(try await server.storedBlobs().count == 4)

        // The object no row names goes at once; the unreferenced chunk waits for its grace.
        let early = try await Maintenance.collectGarbage(store: store, blobs: blobs, grace: 3600)
        #expect(early == GarbageReport(removedChunks: 0, removedBytes: 0, keptInGrace: 1, removedOrphans: 1, objectsDeleted: 1))
        #expect(try await !blobs.exists(ContentHash.of(orphan)))
        #expect(try await blobs.exists(ContentHash.of(unreferenced)))

        let late = try await Maintenance.collectGarbage(store: store, blobs: blobs, grace: 0)
        #expect(late == GarbageReport(removedChunks: 1, removedBytes: Int64(unreferenced.count), keptInGrace: 0, objectsDeleted: 1))
        #expect(Set(try await server.storedBlobs()) == Set([kept, replaced].map { "s3:" + ContentHash.of($0).hex }))
        #expect(try await Self.trash(server).isEmpty)
        #expect(try await store.blobEpoch() == 2)
        #expect(try await store.missingChunks(userId: 1, among: [ContentHash.of(unreferenced)]) == [ContentHash.of(unreferenced)])
        #expect(try await Maintenance.check(store: store, blobs: blobs).isClean)

        // Nothing left to delete: no request, and the epoch (which refuses uploads in flight) stays.
        #expect(try await Maintenance.collectGarbage(store: store, blobs: blobs, grace: 0) == GarbageReport(removedChunks: 0, removedBytes: 0, keptInGrace: 0))
        #expect(try await store.blobEpoch() == 2)
    }

    /// The race the fence exists for, made deterministic by running an upload's steps by hand:
    /// it reads the epoch and places its object, gc decides the object is an orphan and deletes
    /// it, and only then does the upload record. The record is refused (a 503 over HTTP), and
    /// the client's retry places the object again, so the committed file is whole.
    @Test(.eachBackend) func anUploadPlacedBeforeGcDeletedIsRefusedAndItsRetryStoresIt() async throws {
        let server = try await Self.server()
        defer { server.removeData() }
        let store = server.services.store, blobs = server.services.blobs
        let content = Array("placed before gc decided, recorded after it deleted".utf8), hash = ContentHash.of(content)
        let (user, password) = try await server.addUser("hal")

        let epoch = try await store.blobEpoch()
        let staged = try await Self.place(content, in: blobs)
        let report = try await Maintenance.collectGarbage(store: store, blobs: blobs, grace: 3600)
        #expect(report.removedOrphans == 1 && report.objectsDeleted == 1)
        #expect(try await !blobs.exists(hash))
        await #expect(throws: MetadataError.self) {
            _ = try await store.recordChunks(userId: user.id, [ChunkRef(sha256: hash, size: staged.size)], placedSince: epoch) { [true] }
        }
        #expect(try await !store.chunkExists(hash))
        let refusal = try #require(APIError.from(StoreRules.collected([hash])))
        #expect(refusal.status == .serviceUnavailable && refusal.code == "blob_collected" && refusal.retryAfter == 1)

        // The retry: a new upload reads the new epoch, places the bytes again and records them.
        try await server.run { api in
            let token = try await api.login("hal", password).accessToken
            #expect(try await api.call(.put, "/chunks/\(hash.hex)", token: token, body: ByteBuffer(bytes: content)).status == .created)
            let lib = try await api.createLibrary("docs", token: token).id
            try await api.putFile(lib, "f", content, base: nil, token: token)
        }
        #expect(try await blobs.exists(hash))
        #expect(try await Maintenance.check(store: store, blobs: blobs).isClean)
    }

    /// A gc that dies between its transaction and its deletes (here its delete step throws)
    /// leaves the hashes in the trash table with their objects; uploads of them are refused
    /// meanwhile. The next gc deletes them, except one a chunk row names again (as `migrate`
    /// copies rows in), whose object stays; nothing referenced is deleted.
    @Test(.eachBackend) func aGcInterruptedBeforeItsDeletesIsFinishedByTheNext() async throws {
        let server = try await Self.server()
        defer { server.removeData() }
        let store = server.services.store, blobs = server.services.blobs
        let dropped = Array("unreferenced, dropped".utf8), revived = Array("unreferenced, row copied back".utf8), kept = Array("committed".utf8)
        let token = try await server.run { api in
            let token = try await api.newUser("ida")
            for body in [dropped, revived] {
                #expect(try await api.call(.put, "/chunks/\(ContentHash.of(body).hex)", token: token, body: ByteBuffer(bytes: body)).status == .created)
            }
            let lib = try await api.createLibrary("docs", token: token).id
            try await api.putFile(lib, "k", kept, base: nil, token: token)
            return token
        }
        struct Crash: Error {}
        await #expect(throws: BlobError.self) {
            _ = try await Maintenance.collectObjects(store: store, blobs: blobs, grace: 0) { _ in throw Crash() }
        }
        #expect(try await Self.trash(server) == [ContentHash.of(dropped), ContentHash.of(revived)])
        #expect(try await blobs.exists(ContentHash.of(dropped)))
        #expect(try await blobs.exists(ContentHash.of(revived)))
        #expect(try await store.blobEpoch() == 0)

        // While a hash waits in the trash its object may go at any moment: uploads are refused.
        try await server.run { api in
            let answer = try await api.call(.put, "/chunks/\(ContentHash.of(dropped).hex)", token: token, body: ByteBuffer(bytes: dropped))
            #expect(answer.status == .serviceUnavailable && api.errorCode(answer) == "blob_collected")
        }
        #expect(try await !store.chunkExists(ContentHash.of(dropped)))

        // A row that comes back without an upload (a copy by migrate) keeps its object.
        _ = try await store.recordChunks(userId: 1, [ChunkRef(sha256: ContentHash.of(revived), size: Int64(revived.count))]) { [true] }
        let next = try await Maintenance.collectGarbage(store: store, blobs: blobs, grace: 3600)
        #expect(next.objectsDeleted == 1 && next.keptFromTrash == 1)
        #expect(try await !blobs.exists(ContentHash.of(dropped)))
        #expect(try await blobs.exists(ContentHash.of(revived)))
        #expect(try await blobs.exists(ContentHash.of(kept)))
        #expect(try await Self.trash(server).isEmpty)
        #expect(try await Maintenance.check(store: store, blobs: blobs).isClean)

        // Deleted and out of the trash, the chunk can be uploaded again.
        let again = try await server.run { api in
            try await api.call(.put, "/chunks/\(ContentHash.of(dropped).hex)", token: token, body: ByteBuffer(bytes: dropped)).status
        }
        #expect(again == .created)
        #expect(try await blobs.exists(ContentHash.of(dropped)))
    }

    /// DeleteObjects refused by the store (a client with a wrong secret): gc fails with a
    /// sentence saying the objects stay for the next run, and the next run deletes them.
    @Test(.eachBackend) func aFailingDeleteObjectsIsReportedAndRetriedByTheNextGc() async throws {
        let server = try await Self.server()
        defer { server.removeData() }
        let store = server.services.store, blobs = try #require(server.services.blobs as? S3BlobStore)
        let orphan = Array("an orphan object".utf8), hash = ContentHash.of(orphan)
        _ = try await Self.place(orphan, in: blobs)
        let refused = S3BlobStore(client: S3Client(location: blobs.client.location, credentials: .init(accessKeyId: BlobBackend.credentials.accessKeyId,
                                                                                                       secretAccessKey: "not-the-secret"),
                                                   http: S3Client.sharedHTTP), threadPool: .singleton)
        do {
            _ = try await Maintenance.collectObjects(store: store, blobs: blobs, grace: 3600) { try await refused.delete($0) }
            Issue.record("gc succeeded with DeleteObjects refused")
        } catch let BlobError.io(message) {
            #expect(message.contains("1 stay in gc's trash and the next gc deletes them") && message.contains("S3"), "\(message)")
        }
        #expect(try await blobs.exists(hash))
        #expect(try await Self.trash(server) == [hash])
        #expect(try await store.blobEpoch() == 0)

        let next = try await Maintenance.collectGarbage(store: store, blobs: blobs, grace: 3600)
        #expect(next.objectsDeleted == 1)
        #expect(try await !blobs.exists(hash))
        #expect(try await Self.trash(server).isEmpty)
        #expect(try await store.blobEpoch() == 1)
    }

    /// One deleter at a time: a gc started while another holds the run lock refuses at once,
    /// and deletes nothing; once the first is done the lock is free again.
    @Test(.eachBackend) func aSecondGcWhileOneRunsIsRefused() async throws {
        let server = try await Self.server()
        defer { server.removeData() }
        let store = server.services.store, blobs = server.services.blobs
        let orphan = Array("left for the first run".utf8)
        _ = try await Self.place(orphan, in: blobs)
        try await store.withGarbageCollectionRun { _ in
            await #expect(throws: MetadataError.self) { _ = try await Maintenance.collectGarbage(store: store, blobs: blobs, grace: 3600) }
            let present = try await blobs.exists(ContentHash.of(orphan))
            #expect(present)
        }
        // Free again, once no child process holds it: `flock` belongs to the open file, and a
        // child another test is spawning meanwhile shares it from `clone` until its `exec`
        // closes it (O_CLOEXEC), a moment in which a CI run found the lock still taken. A
        // refused try deletes nothing, so the first that runs deletes the orphan.
        var deleted = -1
        #expect(await eventuallyTrue {
            do {
                deleted = try await Maintenance.collectGarbage(store: store, blobs: blobs, grace: 3600).objectsDeleted
                return true
            } catch MetadataError.stateConflict {
                return false
            } catch {
                Issue.record("gc failed: \(error)")
                return true
            }
        })
        #expect(deleted == 1)
    }

    /// On PostgreSQL the run lock belongs to a session: a run whose session ended (a dropped
    /// connection, a restarted server) may no longer hold it, so its check before each delete
    /// fails; the lock is free again for the next run, which deletes what was left.
    @Test(.enabled(if: Backend.adminURL != nil)) func aRunThatLostItsPostgresSessionDeletesNothingMore() async throws {
        let server = try await Backend.$current.withValue(.postgres) { try await Self.server() }
        defer { server.removeData() }
        let store = server.services.store, blobs = server.services.blobs
        let orphan = Array("left by a run that lost its session".utf8)
        _ = try await Self.place(orphan, in: blobs)
        let key = PostgresMetadataStore.gcRunLock
        try await store.withGarbageCollectionRun { confirm in
            try await confirm()
            // Ends the session holding the lock, and waits (up to 10 s) until it has ended.
            try await server.executeRaw("""
                SELECT pg_terminate_backend(pid, 10000) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
                  AND classid = \(key >> 32) AND objid = \(key & 0xFFFF_FFFF) AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                """, [])
            await #expect(throws: (any Error).self) { try await confirm() }
        }
        #expect(try await blobs.exists(ContentHash.of(orphan)))
        #expect(try await Maintenance.collectGarbage(store: store, blobs: blobs, grace: 3600).objectsDeleted == 1)
        #expect(try await !blobs.exists(ContentHash.of(orphan)))
    }

    /// A gc cancelled while it deletes (the admin command interrupted, a server stopping)
    /// gives the run lock up and leaves its trash to the next run, which finishes it.
    @Test(.eachBackend) func aCancelledGcFreesItsLockAndTheNextFinishesItsTrash() async throws {
        let server = try await Self.server()
        defer { server.removeData() }
        let store = server.services.store, blobs = server.services.blobs
        let orphan = Array("left by a cancelled run".utf8)
        _ = try await Self.place(orphan, in: blobs)
        let (reached, signal) = AsyncStream<Void>.makeStream()
        let run = Task {
            try await Maintenance.collectObjects(store: store, blobs: blobs, grace: 3600) { _ in
                signal.yield()
                try await Task.sleep(for: .seconds(600))  // until cancelled
            }
        }
        for await _ in reached { break }
        run.cancel()
        await #expect(throws: BlobError.self) { _ = try await run.value }
        #expect(try await Self.trash(server) == [ContentHash.of(orphan)])
        let next = try await Maintenance.collectGarbage(store: store, blobs: blobs, grace: 3600)
        #expect(next.objectsDeleted == 1)
        #expect(try await !blobs.exists(ContentHash.of(orphan)))
    }
}
