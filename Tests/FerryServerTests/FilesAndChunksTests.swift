import FerryCore
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import FerryTestSupport
import Testing

@testable import FerryServer

@Suite("Files and chunks", .eachBackend)
struct FilesAndChunksTests {
    /// In-process, and over HTTPS (HTTP/2) on loopback: streaming, ranges and ETags the same.
    @Test(.eachBlobBackend, arguments: [false, true]) func plainUploadIsChunkedByTheServerAndStreamsBack(overTLS: Bool) async throws {
        let server = try await TestServer.make(tls: overTLS)
        defer { server.removeData() }
        let data = randomBytes(6 << 20, seed: 7)
        try await server.run(overTLS ? server.live : .router) { api in
            let token = try await api.newUser("alice")
            let lib = try await api.createLibrary("docs", token: token).id
            let path = "photos/été 2024/big.bin"
            let put = try await api.call(.put, "/libraries/\(lib)/files?path=\(q(path))&mtime_ns=42&mode=420", token: token, body: ByteBuffer(bytes: data))
            #expect(put.status == .created)
            let v = try api.decode(VersionResponse.self, put).version
            #expect(v.size == Int64(data.count))
            #expect(v.sha256 == ContentHash.of(data))
            #expect(v.chunks.count >= 2)
            #expect(v.mtimeNs == 42)
            #expect(v.path.string == path)

            let get = try await api.call(.get, "/libraries/\(lib)/files?path=\(q(path))", token: token)
            #expect(get.status == .ok)
            #expect(Array(get.body.readableBytesView) == data)
            let etag = try #require(get.headers[.eTag])
            #expect(etag == "\"\(ContentHash.of(data).hex)\"")
            #expect(get.headers[.acceptRanges] == "bytes")

            let notModified = try await api.call(.get, "/libraries/\(lib)/files?path=\(q(path))", token: token, headers: [.ifNoneMatch: etag])
            #expect(notModified.status == .notModified)

            // A range that spans a chunk boundary.
            let boundary = Int(v.chunks[0].size)
            let range = try await api.call(.get, "/libraries/\(lib)/files?path=\(q(path))", token: token, headers: [.range: "bytes=\(boundary - 10)-\(boundary + 9)"])
            #expect(range.status == .partialContent)
            #expect(Array(range.body.readableBytesView) == Array(data[(boundary - 10)...(boundary + 9)]))
            #expect(range.headers[.contentRange] == "bytes \(boundary - 10)-\(boundary + 9)/\(data.count)")
            let suffix = try await api.call(.get, "/libraries/\(lib)/files?path=\(q(path))", token: token, headers: [.range: "bytes=-5"])
            #expect(Array(suffix.body.readableBytesView) == Array(data.suffix(5)))
            let outside = try await api.call(.get, "/libraries/\(lib)/files?path=\(q(path))", token: token, headers: [.range: "bytes=\(data.count)-"])
            #expect(outside.status == .rangeNotSatisfiable)
            #expect(outside.headers[.contentRange] == "bytes */\(data.count)")

            // Overwrite without a base replaces the file; the old version stays readable.
            let second = try await api.call(.put, "/libraries/\(lib)/files?path=\(q(path))", token: token, body: ByteBuffer(string: "small now"))
            #expect(second.status == .created)
            let old = try await api.call(.get, "/libraries/\(lib)/files?path=\(q(path))&version=\(v.version)", token: token)
            #expect(Array(old.body.readableBytesView) == data)
            // With a stale base it is a conflict.
            let stale = try await api.call(.put, "/libraries/\(lib)/files?path=\(q(path))&base=\(v.version)", token: token, body: ByteBuffer(string: "x"))
            #expect(stale.status == .conflict)
            // An empty upload is an empty file.
            let empty = try await api.call(.put, "/libraries/\(lib)/files?path=empty", token: token)
            #expect(try api.decode(VersionResponse.self, empty).version.sha256 == .empty)
            #expect(try await api.call(.get, "/libraries/\(lib)/files?path=empty", token: token).body.readableBytes == 0)
        }
    }

    @Test func listingShowsTheLiveChildrenOfADirectoryInPages() async throws {
        try await withLibrary { api, token, lib in
            let empty = ContentManifest(size: 0, sha256: .empty, chunks: [])
            var ops: [CommitOperation] = try ["a", "a/été", "a/été/deep.txt", "a/x.txt", "a/y.txt", "a0.txt", "b.txt", "gone.txt"].map { p in
                p.hasSuffix(".txt") ? .putFile(try FerryPath(p), base: nil, manifest: empty, mtimeNs: 1, mode: 0o644)
                    : CommitOperation(op: .put, path: try FerryPath(p), base: nil, kind: .directory)
            }
            let first = try await api.commit(lib, ops, token: token)
            ops = [.delete(try FerryPath("gone.txt"), base: first.results[7].version!.version)]
            _ = try await api.commit(lib, ops, token: token)

            func list(_ query: String) async throws -> ListResponse {
                let r = try await api.call(.get, "/libraries/\(lib)/list?\(query)", token: token)
                #expect(r.status == .ok, "\(String(buffer: r.body))")
                return try api.decode(ListResponse.self, r)
            }
            #expect(try await list("").entries.map(\.path.string) == ["a", "a0.txt", "b.txt"])
            #expect(try await list("path=a").entries.map(\.path.string) == ["a/x.txt", "a/y.txt", "a/été"])
            #expect(try await list("path=\(q("a/été"))").entries.map(\.path.string) == ["a/été/deep.txt"])
            let page = try await list("path=a&limit=2")
            #expect(page.entries.count == 2 && page.nextAfter == "a/y.txt")
            let rest = try await list("path=a&limit=2&after=\(q(page.nextAfter!))")
            #expect(rest.entries.map(\.path.string) == ["a/été"] && rest.nextAfter == nil)
            #expect(try await list("path=nothing-here").entries.isEmpty)
            let bad = try await api.call(.get, "/libraries/\(lib)/list?path=..", token: token)
            #expect(bad.status == .badRequest)
        }
    }

    @Test func readsOfDirectoriesDeletedAndUnknownPaths() async throws {
        try await withLibrary { api, token, lib in
            _ = try await api.commit(lib, [CommitOperation(op: .put, path: try FerryPath("d"), base: nil, kind: .directory)], token: token)
            #expect(try await api.call(.get, "/libraries/\(lib)/files?path=d", token: token).status == .badRequest)
            #expect(try await api.call(.get, "/libraries/\(lib)/files?path=nothing", token: token).status == .notFound)
            #expect(try await api.call(.get, "/libraries/\(lib)/files", token: token).status == .badRequest)
            let nfd = try await api.call(.get, "/libraries/\(lib)/files?path=%2Fetc%2Fpasswd", token: token)
            #expect(nfd.status == .badRequest)
            #expect(api.errorCode(nfd) == "invalid_path")
        }
    }

    @Test func nfdPathsAreStoredAsNFC() async throws {
        try await withLibrary { api, token, lib in
            let put = try await api.call(.put, "/libraries/\(lib)/files?path=\(q("cafe\u{301}.txt"))", token: token, body: ByteBuffer(string: "x"))
            #expect(try api.decode(VersionResponse.self, put).version.path.string == "caf\u{e9}.txt")
            #expect(try await api.call(.get, "/libraries/\(lib)/files?path=\(q("caf\u{e9}.txt"))", token: token).status == .ok)
        }
    }

    @Test(.eachBlobBackend) func chunkUploadVerifiesTheHashAndLeavesNothingOnMismatch() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run { api in
            let token = try await api.newUser("alice")
            let good = Array("chunk body".utf8), hash = ContentHash.of(good)
            let wrong = try await api.call(.put, "/chunks/\(hash.hex)", token: token, body: ByteBuffer(string: "other body"))
            #expect(wrong.status == .unprocessableContent)
            #expect(api.errorCode(wrong) == "hash_mismatch")
            #expect(try await server.storedBlobs().isEmpty)
            #expect(try server.stagedFiles().isEmpty)
            let stillMissing = try await api.call(.post, "/chunks/missing", token: token, json: MissingChunksRequest(chunks: [hash]))
            #expect(try api.decode(MissingChunksResponse.self, stillMissing).missing == [hash])

            #expect(try await api.call(.put, "/chunks/\(hash.hex)", token: token, body: ByteBuffer(bytes: good)).status == .created)
            // Idempotent.
            #expect(try await api.call(.put, "/chunks/\(hash.hex)", token: token, body: ByteBuffer(bytes: good)).status == .created)
            #expect(try await server.storedBlobs().count == 1)
            let back = try await api.call(.get, "/chunks/\(hash.hex)", token: token)
            #expect(Array(back.body.readableBytesView) == good)
            let gone = try await api.call(.post, "/chunks/missing", token: token, json: MissingChunksRequest(chunks: [hash, hash]))
            #expect(try api.decode(MissingChunksResponse.self, gone).missing.isEmpty)

            #expect(try await api.call(.put, "/chunks/not-a-hash", token: token, body: ByteBuffer(bytes: good)).status == .badRequest)
            #expect(try await api.call(.get, "/chunks/\(ContentHash.of([1]).hex)", token: token).status == .notFound)
            let tooMany = MissingChunksRequest(chunks: Array(repeating: hash, count: FerryProtocol.maxMissingQuery + 1))
            #expect(try await api.call(.post, "/chunks/missing", token: token, json: tooMany).status == .contentTooLarge)
        }
    }

    /// A download reads each piece while the one before it is sent. A blob that is gone
    /// halfway through must end the response short, never fill it with other bytes or hang,
    /// and leave the server serving.
    @Test(.timeLimit(.minutes(3))) func aDownloadWhoseLaterChunkIsGoneEndsShortAndTheServerGoesOn() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let data = randomBytes(6 << 20, seed: 11)
        try await server.run { api in
            let token = try await api.newUser("alice")
            let lib = try await api.createLibrary("docs", token: token).id
            let put = try await api.call(.put, "/libraries/\(lib)/files?path=big.bin", token: token, body: ByteBuffer(bytes: data))
            let chunks = try api.decode(VersionResponse.self, put).version.chunks
            try #require(chunks.count >= 3)
            let store = try #require(server.services.blobs as? FileBlobStore)
            try FileManager.default.removeItem(atPath: store.path(of: chunks[2].sha256))

            // The testing client throws on a body shorter than its length; a short one is a prefix.
            let whole = try? await api.call(.get, "/libraries/\(lib)/files?path=big.bin", token: token)
            if let whole {
                let received = Array(whole.body.readableBytesView)
                #expect(received.count < data.count)
                #expect(received == Array(data.prefix(received.count)))
            }
            let chunk = try? await api.call(.get, "/chunks/\(chunks[2].sha256.hex)", token: token)
            #expect((chunk?.body.readableBytes ?? 0) < Int(chunks[2].size))
            let first = try await api.call(.get, "/chunks/\(chunks[0].sha256.hex)", token: token)
            #expect(Array(first.body.readableBytesView) == Array(data.prefix(Int(chunks[0].size))))
        }
    }

    @Test func aShardDirectoryRemovedByHandIsMadeAgainOnUpload() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run { api in
            let alice = try await api.newUser("alice")
            // One chunk for a single upload and one for a batch, each in a shard that is gone;
            // both above the small-blob limit, so both are files.
            let single = randomBytes(100_000, seed: 21), batched = randomBytes(100_000, seed: 22)
            for bytes in [single, batched] {
                try FileManager.default.removeItem(atPath: server.dataDirectory + "/blobs/" + String(ContentHash.of(bytes).hex.prefix(2)))
            }
            let put = try await api.call(.put, "/chunks/\(ContentHash.of(single).hex)", token: alice, body: ByteBuffer(bytes: single))
            #expect(put.status == .created)
            let batch = try await api.call(.post, "/chunks/batch", token: alice, body: Self.batchBody([(ContentHash.of(batched), batched)]))
            #expect(batch.status == .ok)
            #expect(try await server.storedBlobs().count == 2)
            #expect(try server.stagedFiles().isEmpty)
        }
        #expect(try await Maintenance.check(store: server.services.store, blobs: server.services.blobs).isClean)
    }

    /// A file whose chunks are stored both ways (small ones as rows, larger ones as files)
    /// reads back whole, in ranges across the seams, and chunk by chunk.
    @Test func aFileOfRowsAndFilesReadsBackWholeAndInRanges() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run { api in
            let token = try await api.newUser("alice")
            let lib = try await api.createLibrary("docs", token: token).id
            let sizes = [10_000, InlineBlobs.limit, InlineBlobs.limit + 1, 300, 200_000, 1]
            let chunks = sizes.enumerated().map { randomBytes($1, seed: UInt64(40 + $0)) }
            let r = try await api.call(.post, "/chunks/batch", token: token, body: Self.batchBody(chunks.map { (ContentHash.of($0), $0) }))
            #expect(r.status == .ok)
            let blobs = try #require(server.services.blobs as? FileBlobStore)
            #expect(chunks.map { blobs.isFile(ContentHash.of($0)) } == sizes.map { $0 > InlineBlobs.limit })
            let data = chunks.flatMap { $0 }
            let put = CommitOperation(op: .put, path: try FerryPath("mixed.bin"), base: nil, kind: .file, size: Int64(data.count), sha256: ContentHash.of(data),
                                      mtimeNs: 0, mode: 0o644, chunks: chunks.map { ChunkRef(sha256: ContentHash.of($0), size: Int64($0.count)) })
            #expect(try await api.commit(lib, [put], token: token).results[0].status == .ok)

            let whole = try await api.call(.get, "/libraries/\(lib)/files?path=mixed.bin", token: token)
            #expect(Array(whole.body.readableBytesView) == data)
            // From inside the first row, across the second row and the first file, into the third row.
            let (from, to) = (5_000, sizes[0] + sizes[1] + sizes[2] + 100)
            let range = try await api.call(.get, "/libraries/\(lib)/files?path=mixed.bin", token: token, headers: [.range: "bytes=\(from)-\(to)"])
            #expect(range.status == .partialContent)
            #expect(Array(range.body.readableBytesView) == Array(data[from...to]))
            for chunk in chunks {
                let back = try await api.call(.get, "/chunks/\(ContentHash.of(chunk).hex)", token: token)
                #expect(Array(back.body.readableBytesView) == chunk)
            }
        }
        #expect(try await Maintenance.check(store: server.services.store, blobs: server.services.blobs).isClean)
    }

    static func batchBody(_ frames: [(ContentHash, [UInt8])]) -> ByteBuffer {
        var body = ByteBuffer()
        for (hash, bytes) in frames {
            body.writeBytes(ChunkBatchFormat.header(hash, size: bytes.count))
            body.writeBytes(bytes)
        }
        return body
    }

    @Test(.eachBlobBackend) func chunkBatchStoresGoodFramesAndRejectsMismatchedOnes() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run { api in
            let alice = try await api.newUser("alice")
            let bob = try await api.newUser("bob")
            let chunks = (0..<50).map { randomBytes(100 + $0 * 37, seed: UInt64($0)) }
            let liar = Array("claims another hash".utf8)
            var frames = chunks.map { (ContentHash.of($0), $0) }
            frames.append((ContentHash.of([9, 9, 9]), liar))
            let r = try await api.call(.post, "/chunks/batch", token: alice, body: Self.batchBody(frames))
            #expect(r.status == .ok)
            let answer = try api.decode(ChunkBatchResponse.self, r)
            #expect(answer.stored.map(\.sha256) == chunks.map { ContentHash.of($0) })
            #expect(answer.rejected == [ContentHash.of([9, 9, 9])])
            #expect(try await server.storedBlobs().count == 50)
            #expect(try server.stagedFiles().isEmpty)
            let missing = try await api.call(.post, "/chunks/missing", token: alice, json: MissingChunksRequest(chunks: frames.map(\.0)))
            #expect(try api.decode(MissingChunksResponse.self, missing).missing == [ContentHash.of([9, 9, 9])])
            let back = try await api.call(.get, "/chunks/\(ContentHash.of(chunks[7]).hex)", token: alice)
            #expect(Array(back.body.readableBytesView) == chunks[7])
            // Per-user presence: bob still has to send them, and can.
            let bobMissing = try await api.call(.post, "/chunks/missing", token: bob, json: MissingChunksRequest(chunks: [ContentHash.of(chunks[0])]))
            #expect(try api.decode(MissingChunksResponse.self, bobMissing).missing.count == 1)
            let again = try await api.call(.post, "/chunks/batch", token: bob, body: Self.batchBody([(ContentHash.of(chunks[0]), chunks[0])]))
            #expect(again.status == .ok)
            #expect(try await server.storedBlobs().count == 50)
        }
    }

    @Test(.eachBlobBackend, arguments: ["truncated header", "truncated content", "oversized frame", "empty"])
    func malformedChunkBatchesAreRefusedAndLeaveNothing(_ kind: String) async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run { api in
            let token = try await api.newUser("alice")
            let bytes = Array("some chunk".utf8)
            var body = Self.batchBody([(ContentHash.of(bytes), bytes)])
            switch kind {
            case "truncated header": body = body.getSlice(at: 0, length: 20)!
            case "truncated content": body = body.getSlice(at: 0, length: body.readableBytes - 3)!
            case "oversized frame":
                body = ByteBuffer(bytes: ChunkBatchFormat.header(ContentHash.of(bytes), size: FerryProtocol.maxChunkSize + 1))
            default: body = ByteBuffer()
            }
            let r = try await api.call(.post, "/chunks/batch", token: token, body: body)
            #expect(r.status == .badRequest)
            #expect(api.errorCode(r) == "invalid_batch")
            #expect(try await server.storedBlobs().isEmpty)
            #expect(try server.stagedFiles().isEmpty)
        }
    }

    /// `GET /protocol` names the limits this server enforces: a batch of as many chunks as
    /// announced is stored, one more is refused whole, and the JSON bound is the configured one.
    @Test(.eachBlobBackend) func theAnnouncedLimitsAreTheEnforcedOnes() async throws {
        let server = try await TestServer.make { $0.http.maxJSONBodyBytes = 1 << 20 }
        defer { server.removeData() }
        try await server.run { api in
            let r = try await api.call(.get, "/protocol")
            #expect(r.status == .ok)
            let announced = try api.decode(ProtocolResponse.self, r)
            #expect(announced.version == FerryProtocol.version)
            #expect(announced.limits.jsonBodyBytes == 1 << 20)
            #expect(announced.limits.batchChunks == ServerLimits.current.batchChunks)
            #expect(announced.limits.commitOperations == ServerLimits.current.commitOperations)
            #expect(announced.limits.batchChunks > ServerLimits.legacy.batchChunks)
            let token = try await api.newUser("alice")
            let chunks = (0...announced.limits.batchChunks).map { Array("chunk \($0)".utf8) }
            let frames = chunks.map { (ContentHash.of($0), $0) }
            let tooMany = try await api.call(.post, "/chunks/batch", token: token, body: Self.batchBody(frames))
            #expect(tooMany.status == .badRequest)
            #expect(api.errorCode(tooMany) == "invalid_batch")
            #expect(try await server.storedBlobs().isEmpty)
            let full = try await api.call(.post, "/chunks/batch", token: token, body: Self.batchBody(Array(frames.dropLast())))
            #expect(full.status == .ok)
            #expect(try api.decode(ChunkBatchResponse.self, full).stored.count == announced.limits.batchChunks)
        }
    }

    @Test(.eachBlobBackend) func oversizedChunkBatchIs413() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run { api in
            let token = try await api.newUser("alice")
            let body = ByteBuffer(bytes: [UInt8](repeating: 0, count: ServerLimits.current.batchRequestBytes + 1))
            let r = try await api.call(.post, "/chunks/batch", token: token, body: body)
            #expect(r.status == .contentTooLarge)
            #expect(try await server.storedBlobs().isEmpty)
        }
    }

    @Test(.eachBlobBackend) func oversizedChunkIs413AndLeavesNothing() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run { api in
            let token = try await api.newUser("alice")
            let big = [UInt8](repeating: 1, count: FerryProtocol.maxChunkSize + 1)
            let r = try await api.call(.put, "/chunks/\(ContentHash.of(big).hex)", token: token, body: ByteBuffer(bytes: big))
            #expect(r.status == .contentTooLarge)
            #expect(try await server.storedBlobs().isEmpty)
            #expect(try server.stagedFiles().isEmpty)
        }
    }

    @Test func uploadsAreRefusedWith507BelowTheReserve() async throws {
        let server = try await TestServer.make { $0.storage.reserveBytes = Int64.max / 2 }
        defer { server.removeData() }
        try await server.run { api in
            let token = try await api.newUser("alice")
            let lib = try await api.createLibrary("docs", token: token).id
            let body = Array("data".utf8)
            let chunk = try await api.call(.put, "/chunks/\(ContentHash.of(body).hex)", token: token, body: ByteBuffer(bytes: body))
            #expect(chunk.status.code == 507)
            #expect(api.errorCode(chunk) == "insufficient_storage")
            let file = try await api.call(.put, "/libraries/\(lib)/files?path=a", token: token, body: ByteBuffer(bytes: body))
            #expect(file.status.code == 507)
            #expect(try await server.storedBlobs().isEmpty)
            #expect(try await api.changes(lib, token: token).head == 0)
            let health = try await api.call(.get, "/health")
            #expect(health.status == .serviceUnavailable)
        }
    }

    @Test func healthAndMetrics() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let (_, rootPassword) = try await server.addUser("root", admin: true)
        try await server.run { api in
            let health = try await api.call(.get, "/health")
            #expect(health.status == .ok)
            #expect(String(buffer: health.body).contains(#""database":"ok""#))
            let token = try await api.newUser("alice")
            let body = Array("metric me".utf8)
            _ = try await api.call(.put, "/chunks/\(ContentHash.of(body).hex)", token: token, body: ByteBuffer(bytes: body))
            _ = try await api.call(.put, "/chunks/\(ContentHash.of(body).hex)", token: token, body: ByteBuffer(bytes: body))
            let lib = try await api.createLibrary("docs", token: token).id
            _ = try await api.commit(lib, [CommitOperation(op: .put, path: try FerryPath("d"), base: nil, kind: .directory)], token: token)
            let admin = try await api.login("root", rootPassword).accessToken
            let text = String(buffer: try await api.call(.get, "/metrics", token: admin).body)
            #expect(text.contains("ferry_chunk_uploads_total 2"))
            #expect(text.contains("ferry_chunk_bytes_received_total \(2 * body.count)"))
            #expect(text.contains("ferry_commit_operations_total 1"))
            #expect(text.contains("ferry_commit_duration_seconds_count 1"))
            #expect(text.contains(#"ferry_http_requests_total{method="PUT",status="201"} 2"#))
            #expect(text.contains("ferry_http_request_bytes_total"))
            #expect(text.contains("ferry_changes_waiting 0"))

            // A parked long-poll is counted while it waits, and not after a commit woke it.
            let poll = Task { try await api.call(.get, "/libraries/\(lib)/changes?since=1&wait=60", token: token) }
            #expect(await eventuallyTrue { server.services.notifier.waiterCount == 1 })
            let waiting = String(buffer: try await api.call(.get, "/metrics", token: admin).body)
            #expect(waiting.contains("ferry_changes_waiting 1"))
            _ = try await api.commit(lib, [CommitOperation(op: .put, path: try FerryPath("e"), base: nil, kind: .directory)], token: token)
            #expect(try await poll.value.status == .ok)
            let after = String(buffer: try await api.call(.get, "/metrics", token: admin).body)
            #expect(after.contains("ferry_changes_waiting 0"))

            // A streamed upload (curl -T, the dashboard, a task attachment) is a commit too,
            // and wakes a long-poll like one.
            let woken = Task { try await api.call(.get, "/libraries/\(lib)/changes?since=2&wait=60", token: token) }
            #expect(await eventuallyTrue { server.services.notifier.waiterCount == 1 })
            let upload = try await api.call(.put, "/libraries/\(lib)/files?path=streamed.txt", token: token, body: ByteBuffer(string: "streamed"))
            #expect(upload.status == .created)
            #expect(try await woken.value.status == .ok)
            let uploaded = String(buffer: try await api.call(.get, "/metrics", token: admin).body)
            #expect(uploaded.contains("ferry_commit_operations_total 3"))
            #expect(uploaded.contains("ferry_commit_duration_seconds_count 3"))
        }
    }
}
