import AsyncHTTPClient
import FerryClient
import FerryCore
import FerryServer
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The real server, in this process, on an ephemeral loopback port, with one user logged in.
struct BenchServer {
    let baseURL: String
    let token: String
    let library: String
    let client: HTTPClient
    /// The client library's view of the server, sharing `client` (and the limits it was told).
    let api: ServerAPI

    /// Starts the server on a fresh data directory and runs `body` against it.
    static func with<T: Sendable>(
        dataDirectory: String, configure: (inout ServerConfiguration) -> Void = { _ in }, _ body: (BenchServer) async throws -> T
    ) async throws -> T {
        var configuration = ServerConfiguration()
        configuration.dataDirectory = dataDirectory
        configuration.port = 0
        configuration.storage.reserveBytes = 0
        configuration.auth.pbkdf2Iterations = 1000
        configure(&configuration)
        var logger = Logger(label: "ferry-bench")
        logger.logLevel = .error
        let services = try await FerryServerApp.makeServices(configuration, logger: logger)
        _ = try await services.store.createUser(username: "bench", passwordHash: try services.passwords.hash(password), isAdmin: false)
        return try await FerryServerApp.withRunningServer(services) { port in try await connect(port: port, body) }
    }

    static let password = "bench-password"

    /// Logs in as "bench" on a server at `port` and creates the library "bench". With `pin`,
    /// over HTTPS trusting that certificate, as a device that pinned it does (HTTP/1.1).
    static func connect<T: Sendable>(port: Int, pin: CertificatePin? = nil, _ body: (BenchServer) async throws -> T) async throws -> T {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)
        if let pin {
            configuration.tlsConfiguration = pin.tlsConfiguration
            configuration.httpVersion = .http1Only
        }
        let client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
        do {
            let base = "\(pin == nil ? "http" : "https")://127.0.0.1:\(port)/api/v1"
            let login: TokenResponse = try await Self.json(client, .POST, base + "/auth/login", LoginRequest(username: "bench", password: password))
            let lib: LibraryInfo = try await Self.json(client, .POST, base + "/libraries", CreateLibraryRequest(name: "bench"), token: login.accessToken)
            let result = try await body(BenchServer(baseURL: base, token: login.accessToken, library: lib.id, client: client,
                                                          api: ServerAPI(serverURL: base, token: login.accessToken, client: client, pin: pin)))
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// A JSON request; throws on any non-2xx answer.
    static func json<Body: Encodable, Answer: Decodable>(
        _ client: HTTPClient, _ method: HTTPMethod, _ url: String, _ body: Body, token: String? = nil
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Content-Type", value: "application/json")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.body = .bytes(ByteBuffer(bytes: try JSONCoding.encoder.encode(body)))
        let response = try await client.execute(request, timeout: .seconds(120))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        guard (200..<300).contains(response.status.code) else {
            throw BenchError("\(method) \(url) answered \(response.status.code): \(String(buffer: bytes))")
        }
        return try JSONCoding.decoder.decode(Answer.self, from: Data(bytes.readableBytesView))
    }

    func json<Body: Encodable, Answer: Decodable>(_ method: HTTPMethod, _ path: String, _ body: Body) async throws -> Answer {
        try await Self.json(client, method, baseURL + path, body, token: token)
    }

    /// Uploads one chunk's bytes.
    func putChunk(_ hash: ContentHash, _ bytes: ByteBuffer) async throws {
        var request = HTTPClientRequest(url: "\(baseURL)/chunks/\(hash.hex)")
        request.method = .PUT
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.body = .bytes(bytes)
        let response = try await client.execute(request, timeout: .seconds(120))
        _ = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .created else { throw BenchError("chunk upload answered \(response.status.code)") }
    }

    /// Streams a file's content back, hashing it; returns bytes and hash.
    func download(_ path: String) async throws -> (Int64, ContentHash) {
        let encoded = path.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? path
        var request = HTTPClientRequest(url: "\(baseURL)/libraries/\(library)/files?path=\(encoded)")
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let response = try await client.execute(request, timeout: .seconds(600))
        guard response.status == .ok else { throw BenchError("download answered \(response.status.code)") }
        var hasher = StreamingHasher()
        for try await buffer in response.body { buffer.withUnsafeReadableBytes { hasher.update($0) } }
        return (hasher.count, hasher.finalize())
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
