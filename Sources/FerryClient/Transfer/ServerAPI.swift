import AsyncHTTPClient
import FerryCore
import FerryTLS
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// A refusal from the server: its status and the `{"error": {code, message}}` body.
public struct APIFailure: Error, CustomStringConvertible, Sendable, Equatable {
    public var status: Int
    public var code: String
    public var message: String
    public var retryAfter: Int?

    public init(status: Int, code: String, message: String, retryAfter: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "server answered \(status) \(code): \(message)" }

    /// The token was revoked or is wrong: retrying cannot help.
    public var isAuthentication: Bool { status == 401 }
    /// Worth retrying later with backoff.
    public var isTransient: Bool { (status >= 500 || status == 429 || status == 408) && !isQuotaExceeded }
    /// The upload would pass the user's quota (SPEC §10): the user has to free space or get a
    /// larger quota; retrying soon changes nothing.
    public var isQuotaExceeded: Bool { status == 507 && code == "quota_exceeded" }
}

/// The HTTP API as the client uses it, over async-http-client. Every call is scoped to the
/// token's user; paths are validated `FerryPath`s before they are sent.
public struct ServerAPI: Sendable {
    public let baseURL: String
    public let token: String
    public let client: HTTPClient
    /// The certificate the client was made to trust alone (`makeClient(pin:)`): a TLS
    /// failure is then checked against it, to say so when the server presents another.
    public let pin: CertificatePin?
    private let announced: Announced

    /// `serverURL` is e.g. `https://nas:8720`; `/api/v1` is appended. `limitsLifetime`:
    /// how long the server's announced limits are used before it is asked again. `pin`: the
    /// certificate `client` trusts (see `makeClient`).
    public init(serverURL: String, token: String, client: HTTPClient, pin: CertificatePin? = nil, limitsLifetime: Duration = .seconds(600)) {
        var base = serverURL
        while base.hasSuffix("/") { base.removeLast() }
        if !base.hasSuffix("/api/v1") { base += "/api/v1" }
        self.init(baseURL: base, token: token, client: client, pin: pin, announced: Announced(lifetime: limitsLifetime))
    }

    private init(baseURL: String, token: String, client: HTTPClient, pin: CertificatePin?, announced: Announced) {
        self.baseURL = baseURL
        self.token = token
        self.client = client
        self.pin = pin
        self.announced = announced
    }

    /// How long a connection may make no progress before the request fails and the caller's
    /// retry takes over. `stall` bounds the time without a byte read (after the request is
    /// sent) or written; it must exceed the longest long-poll the caller asks for (the daemon
    /// waits 60 s), so the default leaves room. A stalled NAS link, a dead Wi-Fi or a
    /// half-open TCP connection then costs at most `stall`, not the whole request deadline.
    public struct Timeouts: Sendable {
        public var connect: TimeAmount
        public var stall: TimeAmount

        public init(connect: TimeAmount = .seconds(10), stall: TimeAmount = .seconds(90)) {
            self.connect = connect
            self.stall = stall
        }
    }

    /// One shared client per process: connection pooling, bounded timeouts. With a `pin`,
    /// HTTPS trusts that certificate alone; without, the system's trust roots (SPEC §8).
    /// HTTP/1.1 over several connections: uploads and downloads spread over connections
    /// (and the server's event loops) instead of sharing one HTTP/2 connection's window.
    public static func makeClient(timeouts: Timeouts = Timeouts(), pin: CertificatePin? = nil) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: timeouts.connect, read: timeouts.stall, write: timeouts.stall)
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 16)
        configuration.decompression = .disabled
        configuration.httpVersion = .http1Only
        if let pin {
            configuration.tlsConfiguration = pin.tlsConfiguration
            // A handshake the pin refused is refused again: fail the request at once (and
            // name both certificates) instead of retrying until the connect timeout. The
            // daemon's own backoff retries, as it does for a server that is down.
            configuration.connectionPool.retryConnectionEstablishment = false
        }
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// An API with its own HTTP client; call `close()` when done.
    public static func open(serverURL: String, token: String, timeouts: Timeouts = Timeouts(), pin: CertificatePin? = nil) -> ServerAPI {
        ServerAPI(serverURL: serverURL, token: token, client: makeClient(timeouts: timeouts, pin: pin), pin: pin)
    }

    /// An API for the configured server, device token and pinned certificate, with its own
    /// HTTP client; call `close()` when done.
    public static func open(for config: ClientConfig, timeouts: Timeouts = Timeouts()) -> ServerAPI {
        open(serverURL: config.serverURL, token: config.deviceToken, timeouts: timeouts, pin: config.certificatePin)
    }

    /// The same server and client with another token.
    public func with(token: String) -> ServerAPI { ServerAPI(baseURL: baseURL, token: token, client: client, pin: pin, announced: announced) }

    /// Shuts the HTTP client down.
    public func close() async { try? await client.shutdown() }

    // MARK: auth and devices

    public func login(username: String, password: String) async throws -> TokenResponse {
        try await json(.POST, "/auth/login", LoginRequest(username: username, password: password), authenticated: false)
    }

    /// Logs in as a user and registers a device; returns the API authenticated as that
    /// device (the user's password and access token are not kept).
    public static func enroll(
        serverURL: String, username: String, password: String, deviceName: String, timeouts: Timeouts = Timeouts(), pin: CertificatePin? = nil
    ) async throws -> (api: ServerAPI, device: RegisterDeviceResponse) {
        let anonymous = ServerAPI.open(serverURL: serverURL, token: "", timeouts: timeouts, pin: pin)
        do {
            let tokens = try await anonymous.login(username: username, password: password)
            let device = try await anonymous.with(token: tokens.accessToken).registerDevice(name: deviceName)
            return (anonymous.with(token: device.token), device)
        } catch {
            await anonymous.close()
            throw error
        }
    }

    public func registerDevice(name: String) async throws -> RegisterDeviceResponse {
        try await json(.POST, "/devices", RegisterDeviceRequest(name: name))
    }

    public func devices() async throws -> [DeviceInfo] {
        let r: DeviceListResponse = try await json(.GET, "/devices", Optional<Int>.none)
        return r.devices
    }

    public func revokeDevice(_ id: String) async throws {
        try await send(.DELETE, "/devices/\(Self.escape(id))")
    }

    /// Whether the server answers `/health` with 200.
    public func health() async throws -> Bool {
        let response = try await execute(request(.GET, "/health", authenticated: false), timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 16)
        return response.status == .ok
    }

    public func me() async throws -> MeResponse { try await json(.GET, "/auth/me", Optional<Int>.none) }

    /// Ends the session this API's access token belongs to.
    public func logout() async throws { try await send(.POST, "/auth/logout") }

    /// Runs `body` with this server and client signed in as the user (a session of its own,
    /// ended afterwards), for what a device token may not do, such as managing webhooks.
    /// A wrong password is an `APIFailure` with status 401.
    public func withUserSession<T>(username: String, password: String, _ body: (ServerAPI) async throws -> T) async throws -> T {
        let session = with(token: try await login(username: username, password: password).accessToken)
        do {
            let result = try await body(session)
            try? await session.logout()
            return result
        } catch {
            try? await session.logout()
            throw error
        }
    }

    // MARK: protocol

    /// The request sizes to send this server: what it announced at `GET /protocol`, within
    /// this build's own (`ServerLimits.agreed`), or `ServerLimits.legacy` when it has no such
    /// endpoint (a server from before it) or an answer this build cannot read. Asked again
    /// after the API's `limitsLifetime` (ten minutes by default), so a daemon notices a
    /// server upgraded or downgraded under it without asking before every pass. Network
    /// errors are thrown.
    public func limits() async throws -> ServerLimits {
        let now = ContinuousClock.now
        if let (limits, asked) = announced.state.withLock({ $0 }), now - asked < announced.lifetime { return limits }
        let limits: ServerLimits
        do {
            let answer: ProtocolResponse = try await json(.GET, "/protocol", Optional<Int>.none, authenticated: false, timeout: .seconds(30))
            limits = answer.limits.agreed()
        } catch let failure as APIFailure where failure.status == 404 {
            limits = .legacy
        } catch is DecodingError {
            limits = .legacy
        }
        announced.state.withLock { $0 = (limits, now) }
        return limits
    }

    /// The last `GET /protocol` answer and when it was asked, shared by every copy of this
    /// API (also those `with(token:)` made).
    final class Announced: Sendable {
        let lifetime: Duration
        let state = Mutex<(ServerLimits, ContinuousClock.Instant)?>(nil)
        init(lifetime: Duration) { self.lifetime = lifetime }
    }

    // MARK: libraries

    public func libraries() async throws -> [LibraryInfo] {
        let r: LibraryListResponse = try await json(.GET, "/libraries", Optional<Int>.none)
        return r.libraries
    }

    public func createLibrary(name: String) async throws -> LibraryInfo {
        try await json(.POST, "/libraries", CreateLibraryRequest(name: name))
    }

    // MARK: chunks

    public func missingChunks(_ hashes: [ContentHash]) async throws -> [ContentHash] {
        var missing: [ContentHash] = []
        var start = 0
        while start < hashes.count {
            let end = min(start + FerryProtocol.maxMissingQuery, hashes.count)
            let r: MissingChunksResponse = try await json(.POST, "/chunks/missing", MissingChunksRequest(chunks: Array(hashes[start..<end])))
            missing += r.missing
            start = end
        }
        return missing
    }

    public func putChunk(_ hash: ContentHash, _ bytes: ByteBuffer) async throws {
        var request = request(.PUT, "/chunks/\(hash.hex)")
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        request.body = .bytes(bytes)
        let response = try await execute(request, timeout: .seconds(300))
        try await Self.check(response)
        _ = try await response.body.collect(upTo: 1 << 20)
    }

    /// Uploads many small chunks in one request (`ChunkBatchFormat`).
    /// Sends a `POST /chunks/batch` body already in `ChunkBatchFormat` (see `ChunkUpload.batchBody`).
    public func putChunks(body: ByteBuffer) async throws -> ChunkBatchResponse {
        var request = request(.POST, "/chunks/batch")
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        request.body = .bytes(body)
        let response = try await execute(request, timeout: .seconds(300))
        try await Self.check(response)
        let bytes = try await response.body.collect(upTo: 4 << 20)
        return try bytes.withUnsafeReadableBytes { try JSONCoding.decode(ChunkBatchResponse.self, from: $0) }
    }

    public func chunk(_ hash: ContentHash) async throws -> ByteBuffer {
        let response = try await execute(request(.GET, "/chunks/\(hash.hex)"), timeout: .seconds(300))
        try await Self.check(response)
        return try await response.body.collect(upTo: FerryProtocol.maxChunkSize + 1)
    }

    // MARK: files

    /// `brief`: puts applied as sent are answered with their sequence number only (read
    /// the versions with `CommitResponse.versions(of:)`).
    public func commit(library: String, _ operations: [CommitOperation], brief: Bool = false) async throws -> CommitResponse {
        try await json(.POST, "/libraries/\(Self.escape(library))/commit", CommitRequest(operations: operations, brief: brief ? true : nil))
    }

    public func changes(library: String, since: Int64, limit: Int = 1000, wait: Int = 0) async throws -> ChangesResponse {
        try await json(.GET, "/libraries/\(Self.escape(library))/changes?since=\(since)&limit=\(limit)&wait=\(wait)", Optional<Int>.none,
                       timeout: .seconds(Int64(wait) + 60))
    }

    public func history(library: String, path: FerryPath, before: Int64? = nil, limit: Int = 100) async throws -> HistoryResponse {
        var query = "path=\(Self.escape(path.string))&limit=\(limit)"
        if let before { query += "&before=\(before)" }
        return try await json(.GET, "/libraries/\(Self.escape(library))/history?\(query)", Optional<Int>.none)
    }

    /// One page of the live entries directly inside `directory` (nil: the root).
    public func list(library: String, directory: FerryPath?, after: String? = nil, limit: Int = 1000) async throws -> ListResponse {
        var query = "limit=\(limit)"
        if let directory { query += "&path=\(Self.escape(directory.string))" }
        if let after { query += "&after=\(Self.escape(after))" }
        return try await json(.GET, "/libraries/\(Self.escape(library))/list?\(query)", Optional<Int>.none)
    }

    /// Deleted entries at and beneath `directory` (nil: the whole library), one page.
    public func trash(library: String, directory: FerryPath?, after: String? = nil, limit: Int = 1000) async throws -> TrashResponse {
        var query = "limit=\(limit)"
        if let directory { query += "&path=\(Self.escape(directory.string))" }
        if let after { query += "&after=\(Self.escape(after))" }
        return try await json(.GET, "/libraries/\(Self.escape(library))/trash?\(query)", Optional<Int>.none)
    }

    /// Makes `version` of `path` current again; a directory comes back with what was removed with it.
    public func restore(library: String, path: FerryPath, version: Int64, base: Int64?) async throws -> VersionResponse {
        try await json(.POST, "/libraries/\(Self.escape(library))/restore", RestoreRequest(path: path, version: version, base: base))
    }

    /// Records deletion versions of a library as confirmed past the mass-delete guard, so the
    /// user's other devices let them through; returns those the server recorded.
    public func confirmDeletions(library: String, versions: [Int64]) async throws -> [Int64] {
        try await inGroups(versions) { group in
            let answer: ConfirmedDeletions = try await json(.POST, "/libraries/\(Self.escape(library))/confirmed-deletes", ConfirmedDeletions(versions: group))
            return answer.versions
        }
    }

    /// Of these deletion versions of a library, those confirmed (on any of the user's devices or in the dashboard).
    public func confirmedDeletions(library: String, among versions: [Int64]) async throws -> Set<Int64> {
        Set(try await inGroups(versions) { group in
            let answer: ConfirmedDeletions = try await json(.POST, "/libraries/\(Self.escape(library))/confirmed-deletes/lookup", ConfirmedDeletions(versions: group))
            return answer.versions
        })
    }

    /// `body` over `versions` in requests of at most `ConfirmedDeletions.maxCount`.
    private func inGroups(_ versions: [Int64], _ body: ([Int64]) async throws -> [Int64]) async throws -> [Int64] {
        var out: [Int64] = []
        for start in stride(from: 0, to: versions.count, by: ConfirmedDeletions.maxCount) {
            out += try await body(Array(versions[start..<min(start + ConfirmedDeletions.maxCount, versions.count)]))
        }
        return out
    }

    /// Conflict records, newest first: all libraries, or one.
    public func conflicts(library: String? = nil, state: String = "open", limit: Int = 1000) async throws -> [ConflictInfo] {
        var query = "state=\(Self.escape(state))&limit=\(limit)"
        if let library { query += "&library=\(Self.escape(library))" }
        let r: ConflictListResponse = try await json(.GET, "/conflicts?\(query)", Optional<Int>.none)
        return r.conflicts
    }

    public func resolveConflict(id: String, keep: ConflictKeep) async throws -> ConflictInfo {
        try await json(.POST, "/conflicts/\(Self.escape(id))/resolve", ResolveConflictRequest(keep: keep))
    }

    // MARK: webhooks

    /// Needs a user session (`userSession`), as every change to webhooks does.
    public func createWebhook(url: String, events: EventFilter, secret: String? = nil, keepResponseExcerpts: Bool? = nil,
                              tlsFingerprint: String? = nil) async throws -> CreatedWebhookResponse {
        try await json(.POST, "/webhooks", CreateWebhookRequest(url: url, events: events, secret: secret, keepResponseExcerpts: keepResponseExcerpts,
                                                                tlsFingerprint: tlsFingerprint))
    }

    public func webhooks() async throws -> [WebhookInfo] {
        let r: WebhookListResponse = try await json(.GET, "/webhooks", Optional<Int>.none)
        return r.webhooks
    }

    public func updateWebhook(id: String, _ update: UpdateWebhookRequest) async throws -> WebhookInfo {
        try await json(.PATCH, "/webhooks/\(Self.escape(id))", update)
    }

    public func deleteWebhook(id: String) async throws {
        try await send(.DELETE, "/webhooks/\(Self.escape(id))")
    }

    public func deliveries(webhook id: String, before: Int64? = nil, limit: Int = 50) async throws -> DeliveryListResponse {
        var query = "limit=\(limit)"
        if let before { query += "&before=\(before)" }
        return try await json(.GET, "/webhooks/\(Self.escape(id))/deliveries?\(query)", Optional<Int>.none)
    }

    /// Queues a `ping` for the endpoint.
    public func testWebhook(id: String) async throws -> DeliveryInfo {
        try await json(.POST, "/webhooks/\(Self.escape(id))/test", Optional<Int>.none)
    }

    public func redeliver(delivery id: Int64) async throws -> DeliveryInfo {
        try await json(.POST, "/deliveries/\(id)/redeliver", Optional<Int>.none)
    }

    // MARK: projects, tasks, attachments

    public func createProject(name: String) async throws -> ProjectInfo {
        try await json(.POST, "/projects", CreateProjectRequest(name: name))
    }

    public func projects() async throws -> [ProjectInfo] {
        let r: ProjectListResponse = try await json(.GET, "/projects", Optional<Int>.none)
        return r.projects
    }

    public func addProjectMember(project: String, username: String) async throws -> ProjectInfo {
        try await json(.POST, "/projects/\(Self.escape(project))/members", AddMemberRequest(username: username))
    }

    public func createTask(_ request: CreateTaskRequest) async throws -> TaskInfo {
        try await json(.POST, "/tasks", request)
    }

    public func tasks(project: String? = nil, status: TaskStatus? = nil, assignee: String? = nil, after: Int64? = nil, limit: Int = 100) async throws -> TaskListResponse {
        var query = "limit=\(limit)"
        if let project { query += "&project=\(Self.escape(project))" }
        if let status { query += "&status=\(status.rawValue)" }
        if let assignee { query += "&assignee=\(Self.escape(assignee))" }
        if let after { query += "&after=\(after)" }
        return try await json(.GET, "/tasks?\(query)", Optional<Int>.none)
    }

    public func task(id: String) async throws -> TaskInfo {
        try await json(.GET, "/tasks/\(Self.escape(id))", Optional<Int>.none)
    }

    public func updateTask(id: String, _ update: UpdateTaskRequest) async throws -> TaskInfo {
        try await json(.PATCH, "/tasks/\(Self.escape(id))", update)
    }

    public func attach(task: String, _ request: AttachRequest) async throws -> AttachmentInfo {
        try await json(.POST, "/tasks/\(Self.escape(task))/attachments", request)
    }

    public func removeAttachment(task: String, attachment: String) async throws {
        try await send(.DELETE, "/tasks/\(Self.escape(task))/attachments/\(Self.escape(attachment))")
    }

    /// An attachment's pinned content (for small files: it is held in memory).
    public func attachmentContent(id: String, limit: Int = 64 << 20) async throws -> Data {
        let response = try await execute(request(.GET, "/attachments/\(Self.escape(id))/content"), timeout: .seconds(120))
        try await Self.check(response)
        return Data(try await response.body.collect(upTo: limit).readableBytesView)
    }

    // MARK: plumbing

    static func escape(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    /// Sends a request; with a pin, a failed TLS handshake is checked against it, so a server
    /// that presents another certificate is refused with both fingerprints named.
    func execute(_ request: HTTPClientRequest, timeout: TimeAmount) async throws -> HTTPClientResponse {
        do {
            return try await client.execute(request, timeout: timeout)
        } catch {
            throw await explain(error)
        }
    }

    /// `ServerUnreachable` when no connection could be made; `CertificatePinMismatch` when
    /// `error` ended a handshake with a pinned server that now presents another certificate
    /// (seen by a probe that sends nothing); `error` otherwise.
    func explain(_ error: any Error) async -> any Error {
        if let unreachable = ServerUnreachable.classify(error, server: serverURL) { return unreachable }
        guard let pin, error is NIOSSLError || error is BoringSSLError, let url = URL(string: baseURL), let host = url.host else { return error }
        let port = url.port ?? (url.scheme == "https" ? 443 : 80)
        guard let chain = try? await CertificateProbe.presentedChain(host: host, port: port, serverName: host),
              let presented = try? CertificateProbe.fingerprint(of: chain[0]), presented != pin.fingerprint
        else { return error }
        return CertificatePinMismatch(server: serverURL, expected: pin.fingerprint, presented: presented)
    }

    /// The server as configured: the base URL without `/api/v1`.
    public var serverURL: String {
        var server = baseURL
        if server.hasSuffix("/api/v1") { server.removeLast("/api/v1".count) }
        return server
    }

    func request(_ method: HTTPMethod, _ path: String, authenticated: Bool = true) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if authenticated { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        return request
    }

    func json<Body: Encodable, Answer: Decodable>(
        _ method: HTTPMethod, _ path: String, _ body: Body?, authenticated: Bool = true, timeout: TimeAmount = .seconds(120)
    ) async throws -> Answer {
        var request = request(method, path, authenticated: authenticated)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONCoding.encode(body)))
        }
        let response = try await execute(request, timeout: timeout)
        try await Self.check(response)
        let bytes = try await response.body.collect(upTo: 256 << 20)
        return try bytes.withUnsafeReadableBytes { try JSONCoding.decode(Answer.self, from: $0) }
    }

    func send(_ method: HTTPMethod, _ path: String) async throws {
        let response = try await execute(request(method, path), timeout: .seconds(60))
        try await Self.check(response)
        _ = try await response.body.collect(upTo: 1 << 20)
    }

    /// Turns a non-2xx answer into an `APIFailure` with the server's message.
    static func check(_ response: HTTPClientResponse) async throws {
        guard !(200..<300).contains(response.status.code) else { return }
        let bytes = (try? await response.body.collect(upTo: 64 * 1024)) ?? ByteBuffer()
        let envelope = try? JSONCoding.decoder.decode(ErrorEnvelope.self, from: Data(bytes.readableBytesView))
        throw APIFailure(
            status: Int(response.status.code), code: envelope?.error.code ?? "http_\(response.status.code)",
            message: envelope?.error.message ?? response.status.reasonPhrase,
            retryAfter: response.headers.first(name: "Retry-After").flatMap(Int.init))
    }
}
