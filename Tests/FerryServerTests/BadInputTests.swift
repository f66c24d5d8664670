import FerryCore
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

@testable import FerryServer

@Suite("Bad input")
struct BadInputTests {
    @Test func oversizedJSONBodiesAre413AndChangeNothing() async throws {
        let server = try await TestServer.make { $0.http.maxJSONBodyBytes = 4096 }
        defer { server.removeData() }
        try await server.run { api in
            let token = try await api.newUser("alice")
            let lib = try await api.createLibrary("docs", token: token).id
            let ops = (0..<100).map { CommitOperation(op: .put, path: try! FerryPath("dir-\($0)"), base: nil, kind: .directory) }
            let r = try await api.call(.post, "/libraries/\(lib)/commit", token: token, json: CommitRequest(operations: ops))
            #expect(r.status == .contentTooLarge)
            #expect(api.errorCode(r) == "too_large")
            #expect(try await api.changes(lib, token: token).head == 0)
            // Streamed without a length, the limit still holds.
            let login = try await api.call(.post, "/auth/login", body: ByteBuffer(string: String(repeating: " ", count: 20_000)))
            #expect(login.status == .contentTooLarge)
        }
    }

    @Test func unknownRoutesAndMethodsAnswerInTheErrorEnvelope() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run { api in
            let token = try await api.newUser("alice")
            let unknown = try await api.call(.get, "/nothing-here", token: token)
            #expect(unknown.status == .notFound)
            #expect(api.errorCode(unknown) != nil)
            let noAuthFirst = try await api.call(.get, "/libraries/x/files?path=a")
            #expect(noAuthFirst.status == .unauthorized)
        }
    }

    @Test func configurationFileKeepsDefaultsForMissingKeysAndRejectsWrongTypes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.json")
        try Data(#"{"port": 9000, "storage": {"reserveBytes": 5}, "webhooks": {"allowPrivateTargets": true}}"#.utf8).write(to: good)
        let c = try ServerConfiguration.load(path: good.path)
        #expect(c.port == 9000)
        #expect(c.storage.reserveBytes == 5)
        #expect(c.storage.gcGraceSeconds == 86400)
        #expect(c.host == "127.0.0.1")
        #expect(c.auth.pbkdf2Iterations == 600_000)
        let bad = dir.appendingPathComponent("bad.json")
        try Data(#"{"port": "eighty"}"#.utf8).write(to: bad)
        #expect(throws: DecodingError.self) { try ServerConfiguration.load(path: bad.path) }
        for webhooks in [#"{"retryBackoffSeconds": []}"#, #"{"retryBackoffSeconds": [0, -1]}"#, #"{"maxConcurrentDeliveries": 0}"#,
                         #"{"requestTimeoutSeconds": 0}"#] {
            try Data(#"{"webhooks": \#(webhooks)}"#.utf8).write(to: bad)
            #expect(throws: ConfigurationError.self, "\(webhooks)") { try ServerConfiguration.load(path: bad.path) }
        }
        try Data(#"{"webhooks": {"allowedHosts": ["ok", ""]}}"#.utf8).write(to: bad)
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.load(path: bad.path) }
        for http in [#"{"idleTimeoutSeconds": 0}"#, #"{"requestBodyTimeoutSeconds": -5}"#, #"{"requestBodyMinRate": 0}"#, #"{"maxJSONBodyBytes": 10}"#,
                     #"{"maxBatchChunks": 0}"#, #"{"maxBatchChunks": 100001}"#, #"{"maxCommitOperations": -1}"#, #"{"maxCommitOperations": 100001}"#] {
            try Data(#"{"http": \#(http)}"#.utf8).write(to: bad)
            #expect(throws: ConfigurationError.self, "\(http)") { try ServerConfiguration.load(path: bad.path) }
        }
        #expect(c.http.requestBodyTimeoutSeconds == 30 && c.http.requestBodyMinRate == 500)
        #expect(c.http.maxBatchChunks == 4000 && c.http.maxCommitOperations == 4000)
        try Data(#"{"http": {"maxBatchChunks": 7, "maxCommitOperations": 100000}}"#.utf8).write(to: bad)
        let small = try ServerConfiguration.load(path: bad.path)
        #expect(small.http.maxBatchChunks == 7 && small.http.maxCommitOperations == 100_000)
        #expect(c.webhooks.allowPrivateTargets && c.webhooks.retryBackoffSeconds.count == 10)
    }

    @Test func webhookTargetsOutsideTheAllowedHostsAreRefusedBeforeAnyLookup() async throws {
        let server = try await TestServer.make {
            $0.webhooks.allowPrivateTargets = true
            $0.webhooks.allowedHosts = ["127.0.0.1", "Hooks.Example"]
        }
        defer { server.removeData() }
        try await server.run { api in
            let token = try await api.newUser("alice")
            for (url, accepted) in [("http://127.0.0.1:9/a", true), ("https://hooks.example/b", true),
                                    ("http://localhost:9/c", false), ("http://10.0.0.1/d", false), ("https://example.com/e", false)] {
                let r = try await api.call(.post, "/webhooks", token: token, json: CreateWebhookRequest(url: url, events: try EventFilter(["*"])))
                #expect((r.status == .created) == accepted, "\(url): \(r.status)")
                if !accepted { #expect(String(buffer: r.body).contains("allowedHosts"), "\(url)") }
            }
        }
    }

    @Test(arguments: [
        ("bytes=0-9", 100, ByteRange.range(0..<10)),
        ("bytes=90-", 100, .range(90..<100)),
        ("bytes=-10", 100, .range(90..<100)),
        ("bytes=-500", 100, .range(0..<100)),
        ("bytes=95-200", 100, .range(95..<100)),
        ("bytes=100-", 100, .unsatisfiable),
        ("bytes=0-0", 0, .unsatisfiable),
        ("bytes=5-1", 100, .whole),
        ("bytes=0-1,5-6", 100, .whole),
        ("items=0-1", 100, .whole),
        ("bytes=x-y", 100, .whole),
    ])
    func rangeHeaderParsing(header: String, size: Int64, expected: ByteRange) {
        #expect(ByteRange.parse(header, size: size) == expected)
    }
}
