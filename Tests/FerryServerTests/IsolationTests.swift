import FerryCore
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

@testable import FerryServer

@Suite("Isolation between users")
struct IsolationTests {
    @Test func noEndpointLetsOneUserReachAnother() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run { api in
            let alice = try await api.newUser("alice")
            let bob = try await api.newUser("bob")
            let lib = try await api.createLibrary("private", token: alice).id
            let secret = Array("alice's secret".utf8)
            try await api.putFile(lib, "s.txt", secret, base: nil, token: alice)
            let device = try await api.registerDevice("alice-laptop", token: alice)
            let hash = ContentHash.of(secret)

            // Every library endpoint answers 404 to bob, as if the library did not exist.
            let probes: [(HTTPRequest.Method, String, ByteBuffer?)] = [
                (.get, "/libraries/\(lib)/files?path=s.txt", nil),
                (.put, "/libraries/\(lib)/files?path=t.txt", ByteBuffer(string: "x")),
                (.get, "/libraries/\(lib)/changes?since=0", nil),
                (.get, "/libraries/\(lib)/history?path=s.txt", nil),
                (.post, "/libraries/\(lib)/restore", ByteBuffer(string: #"{"path":"s.txt","version":1}"#)),
                (.post, "/libraries/\(lib)/commit", ByteBuffer(string: #"{"operations":[{"op":"delete","path":"s.txt","base":1}]}"#)),
                (.get, "/chunks/\(hash.hex)", nil),
                (.delete, "/devices/\(device.device.id)", nil),
            ]
            for (method, uri, body) in probes {
                let r = try await api.call(method, uri, token: bob, body: body)
                #expect(r.status == .notFound, "\(method) \(uri) answered \(r.status)")
                #expect(!String(buffer: r.body).contains("secret"))
            }
            #expect(try api.decode(LibraryListResponse.self, try await api.call(.get, "/libraries", token: bob)).libraries.isEmpty)
            #expect(try api.decode(DeviceListResponse.self, try await api.call(.get, "/devices", token: bob)).devices.isEmpty)

            // Hash probing reveals nothing: alice's chunk is "missing" for bob...
            let probe = try await api.call(.post, "/chunks/missing", token: bob, json: MissingChunksRequest(chunks: [hash]))
            #expect(try api.decode(MissingChunksResponse.self, probe).missing == [hash])
            // ...and bob cannot commit a reference to it without uploading it.
            let bobLib = try await api.createLibrary("private", token: bob).id
            let steal = CommitOperation(op: .put, path: try FerryPath("stolen"), base: nil, kind: .file, size: Int64(secret.count), sha256: hash,
                                        mtimeNs: 0, mode: 0o644, chunks: [ChunkRef(sha256: hash, size: Int64(secret.count))])
            #expect(try await api.commit(bobLib, [steal], token: bob).results[0].status == .missingChunks)
            // Uploading the bytes proves possession; the blob is stored once.
            #expect(try await api.call(.put, "/chunks/\(hash.hex)", token: bob, body: ByteBuffer(bytes: secret)).status == .created)
            #expect(server.blobFiles().count == 1)
            #expect(try await api.commit(bobLib, [steal], token: bob).results[0].status == .ok)

            // Alice's data is untouched.
            #expect(try await api.changes(lib, token: alice).head == 1)
            #expect(try await api.call(.get, "/auth/me", token: device.token).status == .ok)
        }
    }
}
