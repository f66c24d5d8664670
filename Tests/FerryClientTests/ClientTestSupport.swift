@testable import FerryClient
import FerryCore
import FerryServer
import FerryTestSupport
import Foundation
import Logging
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The real server on an ephemeral loopback port, on a fresh data directory.
struct Cloud {
    let url: String
    let port: Int
    let services: ServerServices
    /// What a device pins to reach this server over HTTPS; nil over plain HTTP.
    let pin: CertificatePin?

    /// Runs the server while `body` runs. A given data directory and port let a test stop
    /// the server and start it again where clients expect it. `tls`: HTTPS on loopback
    /// (`serve --tls`) with its self-signed certificate, which `Device.make` pins.
    static func with<T: Sendable>(
        dataDirectory: String? = nil, port: Int = 0, tls: Bool = false, configure: (inout ServerConfiguration) -> Void = { _ in },
        _ body: (Cloud) async throws -> T
    ) async throws -> T {
        var configuration = ServerConfiguration()
        configuration.dataDirectory = dataDirectory ?? scratchDirectory("server")
        configuration.port = port
        configuration.storage.reserveBytes = 0
        configuration.auth.pbkdf2Iterations = 1000
        configuration.metadata.url = try await Backend.metadataURL(for: configuration.dataDirectory)
        configuration.tls.enabled = tls
        try await BlobBackend.configure(&configuration)
        configure(&configuration)
        var logger = Logger(label: "ferry-test-server")
        logger.logLevel = .critical
        let services = try await FerryServerApp.makeServices(configuration, logger: logger)
        let pin = try services.certificate.map { try CertificatePin(der: $0.leafDER) }
        return try await FerryServerApp.withRunningServer(services) { port in
            try await body(Cloud(url: "\(pin == nil ? "http" : "https")://127.0.0.1:\(port)", port: port, services: services, pin: pin))
        }
    }

    /// This server reached through another loopback port (a `FaultProxy`'s), in its scheme.
    func url(via port: Int) -> String { "\(pin == nil ? "http" : "https")://127.0.0.1:\(port)" }

    /// What `ferry login` needs to trust this server: its fingerprint over HTTPS.
    var loginTrust: [String] { pin.map { ["--fingerprint", $0.fingerprint.description] } ?? [] }

    /// How many `method` requests the server has answered, as its metrics count them.
    func answered(_ method: String) -> Int {
        services.metrics.render().split(separator: "\n").filter { $0.hasPrefix("ferry_http_requests_total{method=\"\(method)\"") }
            .compactMap { Int($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }

    /// A user with a known password.
    func user(_ name: String) async throws -> (name: String, password: String) {
        let password = "pw-\(UUID().uuidString.prefix(8))"
        _ = try await services.store.createUser(username: name, passwordHash: try services.passwords.hash(password), isAdmin: false)
        return (name, password)
    }
}

extension CertificateFingerprint {
    /// As `openssl x509 -fingerprint -sha256` prints it: upper case, colons between bytes.
    var openSSLSpelling: String {
        let hex = Array(digest.hex.uppercased())
        return stride(from: 0, to: hex.count, by: 2).map { String(hex[$0..<$0 + 2]) }.joined(separator: ":")
    }
}

/// Plain HTTP, then HTTPS with the server's certificate pinned: the `tls` argument of tests
/// that run over both (`@Test(arguments: plainAndTLS)`).
let plainAndTLS = [false, true]

/// A fresh directory under the system's temporary directory. Tests hand these around
/// (a restarted device reuses its folder, a restarted server its data), so none is removed
/// by its test: all of them go when the test process exits, unless FERRY_KEEP_SCRATCH is
/// set to look at them. Before, every run left its servers' data and devices' folders
/// behind, hundreds of megabytes each time.
func scratchDirectory(_ label: String) -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-\(label)-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    ScratchDirectories.remember(path)
    return path
}

enum ScratchDirectories {
    private static let paths = Mutex<[String]>([])
    private static let removeAtExit: Void = {
        guard ProcessInfo.processInfo.environment["FERRY_KEEP_SCRATCH"] == nil else { return }
        atexit {
            for path in ScratchDirectories.paths.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
        }
    }()

    static func remember(_ path: String) {
        _ = removeAtExit
        paths.withLock { $0.append(path) }
    }
}

/// One client device: its own folder, index and device token, syncing one library.
final class Device: Sendable {
    /// The user's password, for what needs a session rather than the device token.
    let password: String
    let name: String
    let root: String
    let stateDirectory: String
    let api: ServerAPI
    let config: ClientConfig
    let index: LocalIndex
    let sync: FolderSync

    /// `root` and `stateDirectory` may be an earlier device's, for the same folder and index
    /// after a restart.
    static func make(
        _ cloud: Cloud, user: (name: String, password: String), name: String, library: String = "docs", root: String? = nil,
        stateDirectory: String? = nil
    ) async throws -> Device {
        try await make(serverURL: cloud.url, user: user, name: name, library: library, root: root, stateDirectory: stateDirectory, pin: cloud.pin)
    }

    /// A device of a server that is not in-process (the real binary, or behind a proxy);
    /// `pin`: the server's certificate, when it speaks HTTPS.
    static func make(
        serverURL: String, user: (name: String, password: String), name: String, library: String = "docs", root: String? = nil,
        stateDirectory: String? = nil, timeouts: ServerAPI.Timeouts = .init(), parallelism: Int = 4, pin: CertificatePin? = nil
    ) async throws -> Device {
        let (api, registered) = try await ServerAPI.enroll(serverURL: serverURL, username: user.name, password: user.password,
                                                           deviceName: name, timeouts: timeouts, pin: pin)
        do {
            return try await make(api: api, registered: registered, serverURL: serverURL, user: user, name: name, library: library,
                                  root: root, stateDirectory: stateDirectory, parallelism: parallelism, pin: pin)
        } catch {
            // An HTTPClient dropped without shutdown traps in debug builds, which took the
            // whole test process down when a loaded machine timed out a step here.
            await api.close()
            throw error
        }
    }

    private static func make(
        api: ServerAPI, registered: RegisterDeviceResponse, serverURL: String, user: (name: String, password: String), name: String,
        library: String, root: String?, stateDirectory: String?, parallelism: Int, pin: CertificatePin?
    ) async throws -> Device {
        let info = try await api.library(named: library)
        let root = root ?? scratchDirectory("folder-\(name)")
        try FileManager.default.createDirectory(atPath: root + "/.ferry", withIntermediateDirectories: true)
        let state = stateDirectory ?? scratchDirectory("state-\(name)")
        let folder = FolderConfig(path: root, library: info)
        var config = ClientConfig(serverURL: serverURL, username: user.name, deviceId: registered.device.id, deviceName: name,
                                  deviceToken: registered.token, folders: [folder])
        config.settleMilliseconds = 50
        config.certificatePin = pin
        let index = try LocalIndex(path: state + "/index.sqlite")
        var logger = Logger(label: "ferry-test-\(name)")
        logger.logLevel = .critical
        let sync = try FolderSync(folder: folder, index: index, api: api, deviceName: name, parallelism: parallelism, logger: logger)
        return Device(name: name, root: root, stateDirectory: state, api: api, config: config, index: index, sync: sync, password: user.password)
    }

    init(name: String, root: String, stateDirectory: String, api: ServerAPI, config: ClientConfig, index: LocalIndex, sync: FolderSync,
         password: String) {
        self.password = password
        self.name = name
        self.root = root
        self.stateDirectory = stateDirectory
        self.api = api
        self.config = config
        self.index = index
        self.sync = sync
    }

    /// The same server as the user, signed in with a fresh session (webhooks are managed so).
    func session() async throws -> ServerAPI {
        api.with(token: try await api.login(username: config.username, password: password).accessToken)
    }

    /// Syncs until a pass plans nothing.
    @discardableResult
    func sync() async throws -> PassReport { try await sync.syncUntilSettled() }

    func write(_ path: String, _ text: String) throws { try write(path, Data(text.utf8)) }

    func write(_ path: String, _ data: Data) throws {
        let url = URL(fileURLWithPath: root + "/" + path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url)
    }

    func read(_ path: String) -> String? {
        FileManager.default.contents(atPath: root + "/" + path).map { String(decoding: $0, as: UTF8.self) }
    }

    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: root + "/" + path) }

    func remove(_ path: String) throws { try FileManager.default.removeItem(atPath: root + "/" + path) }

    func move(_ from: String, _ to: String) throws {
        let target = URL(fileURLWithPath: root + "/" + to)
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: root + "/" + from, toPath: target.path)
    }

    func mkdir(_ path: String) throws { try FileManager.default.createDirectory(atPath: root + "/" + path, withIntermediateDirectories: true) }

    /// Every entry under the root except `.ferry`: files by content hash, links by target.
    func tree() -> [String: String] { Self.tree(at: root) }

    /// The same for any folder (one a `ferry` process syncs, say).
    static func tree(at root: String) -> [String: String] {
        var out: [String: String] = [:]
        let scan = LocalScanner.scan(root: root, rules: IgnoreRules(userPatterns: "", includeDefaults: false))
        for (path, f) in scan.entries {
            switch f.kind {
            case .directory: out[path] = "dir"
            case .symlink: out[path] = "link:" + (f.target ?? "")
            case .file:
                out[path] = (try? ContentChunker.manifest(ofFileAt: root + "/" + path).sha256.hex) ?? "unreadable"
                if f.mode & 0o100 != 0 { out[path]! += "+x" }
            }
        }
        return out
    }

    func close() async { await api.close() }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes. The default is generous:
/// it bounds a wait for something that must happen, and a CI run sharing 2 cores with builds
/// took 80 s for a daemon test that takes 4 s alone. A passing test never waits it out.
func eventually(timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// Random bytes from a seeded generator, so tests are reproducible.
func seededBytes(_ count: Int, seed: UInt64) -> Data {
    var rng = SeededRandom(seed: seed)
    var data = Data(count: count)
    data.withUnsafeMutableBytes { raw in
        let words = raw.bindMemory(to: UInt64.self)
        for i in 0..<words.count { words[i] = rng.next() }
    }
    return data
}
