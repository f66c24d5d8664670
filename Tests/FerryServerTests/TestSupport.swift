import FerryCore
import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import FerryTestSupport
import PostgresNIO
import Testing

@testable import FerryServer

/// A server on a fresh temporary data directory, with test-speed password hashing.
struct TestServer {
    let services: ServerServices
    let dataDirectory: String

    /// `tls`: serve HTTPS on loopback (`serve --tls`), with a certificate made in the data directory.
    static func make(dataDirectory: String? = nil, tls: Bool = false, _ configure: (inout ServerConfiguration) -> Void = { _ in }) async throws -> TestServer {
        let dir = dataDirectory ?? FileManager.default.temporaryDirectory.appendingPathComponent("ferry-test-\(UUID().uuidString)").path
        var configuration = ServerConfiguration()
        configuration.dataDirectory = dir
        configuration.port = 0
        configuration.storage.reserveBytes = 0
        configuration.auth.pbkdf2Iterations = 1000
        configuration.metadata.url = try await Backend.metadataURL(for: dir)
        configuration.tls.enabled = tls
        try await BlobBackend.configure(&configuration)
        configure(&configuration)
        var logger = Logger(label: "ferry-test")
        logger.logLevel = .critical
        return TestServer(services: try await FerryServerApp.makeServices(configuration, logger: logger), dataDirectory: dir)
    }

    /// A live loopback server as this server speaks: plain HTTP, or HTTPS through a client that
    /// negotiates HTTP/2 by ALPN (and checks no certificate: `TLSTests` checks those).
    var live: TestingSetup { services.certificate == nil ? .live : .ahc(.https) }

    /// Runs `body` against the real router in-process (`.router`) or a live loopback server (`live`).
    func run<T: Sendable>(_ setup: TestingSetup = .router, _ body: @Sendable (API) async throws -> T) async throws -> T {
        let app = FerryServerApp.buildApplication(services)
        return try await app.test(setup) { client in try await body(API(client: client, server: self)) }
    }

    /// Creates a user directly in the store.
    @discardableResult
    func addUser(_ name: String, password: String = "password-\(UUID().uuidString.prefix(6))", admin: Bool = false) async throws -> (StoredUser, String) {
        let hash = try services.passwords.hash(password)
        return (try await services.store.createUser(username: name, passwordHash: hash, isAdmin: admin), password)
    }

    func removeData() { try? FileManager.default.removeItem(atPath: dataDirectory) }

    /// Files left in the staging directory (`tmp/`); none with S3 blobs, which stage nothing here.
    func stagedFiles() throws -> [String] {
        if services.blobs is S3BlobStore { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: dataDirectory + "/tmp")
    }

    /// Every blob file under `blobs/`.
    func blobFiles() -> [String] {
        let root = dataDirectory + "/blobs"
        return (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).filter { $0.split(separator: "/").count == 2 }
    }

    /// Every stored blob: the files, and the small blobs kept as rows (`row:<sha256>`); in
    /// S3, the bucket's objects (`s3:<sha256>`).
    func storedBlobs() async throws -> [String] {
        if let s3 = services.blobs as? S3BlobStore { return try await s3.storedHashes().map { "s3:" + $0.hex } }
        let rows = try await (services.blobs as! FileBlobStore).inline.pool.read { db in
            try Data.fetchAll(db, sql: "SELECT sha256 FROM blob WHERE NOT trashed")
        }
        return blobFiles() + rows.map { "row:" + ContentHash(bytes: [UInt8]($0))!.hex }
    }
}

extension TestServer {
    /// Runs one statement straight on the metadata database, whichever backend holds it
    /// (`?` placeholders, text arguments): for tests of what the schema itself refuses.
    func executeRaw(_ sql: String, _ arguments: [String]) async throws {
        switch services.store {
        case let store as SQLiteMetadataStore:
            try await store.pool.write { try $0.execute(sql: sql, arguments: StatementArguments(arguments)) }
        case let store as PostgresMetadataStore:
            let query = Self.postgresQuery(sql, arguments)
            try await store.database.write { _ = try await $0.query(query, logger: store.logger).collect() }
        default:
            throw TestFailure("no raw access to \(type(of: services.store))")
        }
    }

    /// The first column of every row a query answers, as bytes, on either backend.
    func fetchBytes(_ sql: String) async throws -> [Data] {
        switch services.store {
        case let store as SQLiteMetadataStore:
            return try await store.pool.read { try Data.fetchAll($0, sql: sql) }
        case let store as PostgresMetadataStore:
            let query = Self.postgresQuery(sql, [])
            let buffers = try await store.database.read { connection in
                try await PostgresDatabase.column(connection, query, as: ByteBuffer.self, logger: store.logger)
            }
            return buffers.map { Data($0.readableBytesView) }
        default:
            throw TestFailure("no raw access to \(type(of: services.store))")
        }
    }

    /// SQLite's `?` placeholders as PostgreSQL's `$1, $2…`.
    private static func postgresQuery(_ sql: String, _ arguments: [String]) -> PostgresQuery {
        var numbered = ""
        var n = 0
        for character in sql {
            if character == "?" { n += 1; numbered += "$\(n)" } else { numbered.append(character) }
        }
        var binds = PostgresBindings()
        for argument in arguments { binds.append(argument) }
        return PostgresQuery(unsafeSQL: numbered, binds: binds)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` on a fresh in-process server with user "alice" logged in and her library
/// "docs" created; removes the data directory afterwards.
func withLibrary(_ body: @Sendable (API, _ token: String, _ library: String) async throws -> Void) async throws {
    let server = try await TestServer.make()
    defer { server.removeData() }
    try await server.run { api in
        let token = try await api.newUser("alice")
        let lib = try await api.createLibrary("docs", token: token).id
        try await body(api, token, lib)
    }
}

/// `withLibrary`, with the library used through a device token of alice's ("laptop"):
/// `body` gets the user's token and the device's.
func withDevice(_ body: @Sendable (API, _ user: String, _ device: String, _ library: String) async throws -> Void) async throws {
    try await withLibrary { api, user, lib in
        let device = try await api.registerDevice("laptop", token: user).token
        try await body(api, user, device, lib)
    }
}

/// A thin JSON client over the test framework's client.
struct API: Sendable {
    let client: any TestClientProtocol
    let server: TestServer

    func call(
        _ method: HTTPRequest.Method, _ uri: String, token: String? = nil, body: ByteBuffer? = nil, headers: HTTPFields = [:]
    ) async throws -> TestResponse {
        var headers = headers
        if let token { headers[.authorization] = "Bearer \(token)" }
        return try await client.execute(uri: "/api/v1" + uri, method: method, headers: headers, body: body)
    }

    func call(_ method: HTTPRequest.Method, _ uri: String, token: String? = nil, json: some Encodable) async throws -> TestResponse {
        let data = try JSONCoding.encoder.encode(json)
        return try await call(method, uri, token: token, body: ByteBuffer(bytes: data), headers: [.contentType: "application/json"])
    }

    func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
        try JSONCoding.decoder.decode(T.self, from: Data(response.body.readableBytesView))
    }

    func errorCode(_ response: TestResponse) -> String? {
        (try? decode(ErrorEnvelope.self, response))?.error.code
    }

    func login(_ username: String, _ password: String) async throws -> TokenResponse {
        let r = try await call(.post, "/auth/login", json: LoginRequest(username: username, password: password))
        #expect(r.status == .ok, "login failed: \(String(buffer: r.body))")
        return try decode(TokenResponse.self, r)
    }

    /// A new user, logged in: returns an access token.
    func newUser(_ name: String) async throws -> String {
        let (_, password) = try await server.addUser(name)
        return try await login(name, password).accessToken
    }

    func createLibrary(_ name: String, token: String) async throws -> LibraryInfo {
        let r = try await call(.post, "/libraries", token: token, json: CreateLibraryRequest(name: name))
        #expect(r.status == .created)
        return try decode(LibraryInfo.self, r)
    }

    func registerDevice(_ name: String, token: String) async throws -> RegisterDeviceResponse {
        let r = try await call(.post, "/devices", token: token, json: RegisterDeviceRequest(name: name))
        #expect(r.status == .created)
        return try decode(RegisterDeviceResponse.self, r)
    }

    /// Chunks `data`, uploads every chunk, and returns the manifest.
    func uploadContent(_ data: [UInt8], token: String) async throws -> ContentManifest {
        var chunker = ContentChunker()
        var pieces: [[UInt8]] = []
        var current: [UInt8] = []
        chunker.update(data) { piece in
            current.append(contentsOf: piece.bytes)
            if piece.completes != nil { pieces.append(current); current = [] }
        }
        let manifest = chunker.finish { piece in if piece.completes != nil { pieces.append(current) } }
        for (ref, bytes) in zip(manifest.chunks, pieces) {
            let r = try await call(.put, "/chunks/\(ref.sha256.hex)", token: token, body: ByteBuffer(bytes: bytes))
            #expect(r.status == .created)
        }
        return manifest
    }

    func commit(_ library: String, _ ops: [CommitOperation], token: String, brief: Bool? = nil) async throws -> CommitResponse {
        let r = try await call(.post, "/libraries/\(library)/commit", token: token, json: CommitRequest(operations: ops, brief: brief))
        #expect(r.status == .ok, "commit failed: \(String(buffer: r.body))")
        return try decode(CommitResponse.self, r)
    }

    /// Uploads and commits a file; returns the single result.
    @discardableResult
    func putFile(_ library: String, _ path: String, _ data: [UInt8], base: Int64?, token: String) async throws -> CommitResult {
        let manifest = try await uploadContent(data, token: token)
        let op = CommitOperation.putFile(try FerryPath(path), base: base, manifest: manifest, mtimeNs: 1_700_000_000_123_456_789, mode: 0o644)
        return try await commit(library, [op], token: token).results[0]
    }

    func changes(_ library: String, since: Int64 = 0, limit: Int = 1000, wait: Int = 0, token: String) async throws -> ChangesResponse {
        let r = try await call(.get, "/libraries/\(library)/changes?since=\(since)&limit=\(limit)&wait=\(wait)", token: token)
        #expect(r.status == .ok)
        return try decode(ChangesResponse.self, r)
    }

    func history(_ library: String, _ path: String, token: String) async throws -> HistoryResponse {
        let query = path.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? path
        let r = try await call(.get, "/libraries/\(library)/history?path=\(query)&limit=100", token: token)
        #expect(r.status == .ok)
        return try decode(HistoryResponse.self, r)
    }
}

/// Deterministic pseudo-random bytes (SplitMix64).
func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SeededRandom(seed: seed)
    var out = [UInt8]()
    out.reserveCapacity(count + 8)
    while out.count < count {
        withUnsafeBytes(of: rng.next()) { out.append(contentsOf: $0) }
    }
    return Array(out.prefix(count))
}

/// Percent-encodes a path for a query string.
func q(_ path: String) -> String {
    path.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~/"))) ?? path
}
