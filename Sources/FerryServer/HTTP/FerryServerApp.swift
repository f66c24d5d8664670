#if canImport(Glibc)
import Glibc
#endif
import Crypto
import FerryCore
import Foundation
import GRDB
import Hummingbird
import HummingbirdCore
import HummingbirdHTTP2
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

/// Assembles the server in one place so tests build the same app with other settings.
public enum FerryServerApp {
    /// Opens the data directory (creating it, the database and the signing key on first
    /// start), settles anything a crash left behind, and wires the services.
    public static func makeServices(_ configuration: ServerConfiguration, logger: Logger) async throws -> ServerServices {
        try configuration.validate()
        let threadPool = Self.ioPool
        let stores = try await StoreFactory.open(configuration, threadPool: threadPool, logger: logger)
        let (store, blobs, data) = (stores.store, stores.blobs, stores.dataDirectory)
        // Instances sharing the stores may have uploads in flight: only staged files an hour old are a crash's.
        try await Maintenance.recover(store: store, blobs: blobs, stagingOlderThan: stores.isShared ? 3600 : 0, logger: logger)
        // One key every instance shares: tokens and the dashboard's CSRF tokens verify anywhere.
        let signingKey = try await stores.signingKey()
        let tokens = await TokenService(
            signingKey: signingKey, accessTokenLifetime: configuration.auth.accessTokenSeconds,
            refreshTokenLifetime: configuration.auth.refreshTokenSeconds)
        let passwords = PasswordHasher(iterations: configuration.auth.pbkdf2Iterations)
        let decoy = try await threadPool.runIfActive { try passwords.makeDecoy() }
        let certificate = try await prepareTLS(configuration, data: data, logger: logger)
        let auth = configuration.auth
        let notifier = ChangeNotifier()
        return ServerServices(
            configuration: configuration, store: store, blobs: blobs, tokens: tokens,
            passwords: passwords, decoyPasswordHash: decoy,
            limiter: stores.loginLedger(settings: .init(freeAttempts: auth.loginFailureLimit, window: auth.loginFailureWindowSeconds,
                                                        baseDelay: auth.loginDelaySeconds)),
            passwordGate: ConcurrencyGate(total: auth.maxConcurrentPasswordChecks), refusals: RefusalLog(),
            trustedProxies: try TrustedProxies(configuration.http.trustedProxies),
            // A client keeps up to four commits in flight; eight bodies of at most 32 MiB
            // bound what large requests can hold in memory at once.
            largeBodies: ConcurrencyGate(total: 8, perKey: 4, maxWaiting: 256),
            notifier: notifier, metrics: ServerMetrics(), threadPool: threadPool, logger: logger,
            dispatcher: WebhookDispatcher(store: store, settings: configuration.webhooks, threadPool: threadPool, logger: logger),
            certificate: certificate, dashboard: try DashboardState(signingKey: signingKey),
            backgroundServices: stores.backgroundServices(notifier: notifier, logger: logger))
    }

    /// The certificate `serve` presents when it speaks HTTPS (made on first start when none
    /// is configured), with its fingerprint logged; nil for plain HTTP, which is warned
    /// about on every start where it reaches a network (SPEC §8).
    static func prepareTLS(_ configuration: ServerConfiguration, data: DataDirectory, logger: Logger) async throws -> ServerCertificate? {
        guard configuration.usesTLS else {
            if !LoopbackHost.contains(configuration.host) {
                logger.warning("""
                    serving plain HTTP on \(configuration.host) (--insecure-http): passwords, device tokens and files cross \
                    the network readable by anyone on it; serve HTTPS unless a TLS-terminating proxy on this host is the only client
                    """)
            }
            return nil
        }
        let (certificate, created) = try await ioPool.runIfActive { try ServerCertificate.prepare(configuration, data: data) }
        logger.notice(created ? "created a self-signed TLS certificate" : "TLS certificate loaded", metadata: [
            "fingerprint": "\(certificate.fingerprint)", "certificate": "\(certificate.certificatePath)",
        ])
        if certificate.notValidAfter < Date().addingTimeInterval(30 * 86400) {
            logger.warning("the TLS certificate expires soon or has expired; renew it and send SIGHUP", metadata: [
                "certificate": "\(certificate.certificatePath)", "notValidAfter": "\(certificate.notValidAfter)",
            ])
        }
        return certificate
    }

    /// Blocking file work (blob writes, fsyncs, reads) and the password KDF. An fsync waits on
    /// the disk rather than the CPU, so more threads than cores keep several in flight; NIO's
    /// default pool has one per core, which serialised concurrent uploads behind each other.
    static let ioPool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: max(8, 2 * System.coreCount))
        pool.start()
        return pool
    }()

    /// The router with every `/api/v1` route and the web dashboard's pages.
    public static func buildRouter(_ services: ServerServices) -> Router<FerryRequestContext> {
        let router = Router(context: FerryRequestContext.self)
        router.add(middleware: ErrorAndMetricsMiddleware(services: services))
        let api = router.group("api/v1")
        OperationRoutes(services: services).add(to: api)
        AuthRoutes(services: services).addPublic(to: api)
        let authed = router.group("api/v1").add(middleware: AuthMiddleware(services: services))
        AuthRoutes(services: services).addAuthenticated(to: authed)
        DeviceAndLibraryRoutes(services: services).add(to: authed)
        ChunkRoutes(services: services).add(to: authed)
        FileRoutes(services: services).add(to: authed)
        LibrarySharingRoutes(services: services).add(to: authed)
        ConflictRoutes(services: services).add(to: authed)
        DeleteConfirmationRoutes(services: services).add(to: authed)
        RetentionRoutes(services: services).add(to: authed)
        WebhookRoutes(services: services).add(to: authed)
        TaskRoutes(services: services).add(to: authed)
        AdminRoutes(services: services).add(to: authed)
        AccountRoutes(services: services).add(to: authed)
        DashboardRoutes(services: services).add(to: router)
        return router
    }

    /// The HTTP application: idle connections are closed (SPEC §6), JSON bodies are bounded
    /// per route, and uploads stream. With a certificate it speaks HTTPS (SPEC §8), HTTP/2 or
    /// HTTP/1.1 as the client's ALPN chooses; without, plain HTTP/1.1. Either way a request
    /// that sends `Expect: 100-continue` is answered `100 Continue` at once.
    public static func buildApplication(
        _ services: ServerServices, onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let configuration = services.configuration
        let idle = TimeAmount.seconds(configuration.http.idleTimeoutSeconds)
        let server: HTTPServerBuilder
        if let certificate = services.certificate {
            let http2 = HTTP2UpgradeChannel.Configuration(
                idleTimeout: .seconds(configuration.http.idleTimeoutSeconds),
                streamConfiguration: .init(additionalChannelHandlers: [ExpectContinueHandler()], idleTimeout: idle))
            server = HTTPServerBuilder { responder in
                HTTPSChannel(base: try HTTP2UpgradeChannel(tlsConfiguration: certificate.serverConfiguration(), configuration: http2, responder: responder),
                             handshakeTimeout: idle)
            }
        } else {
            server = .http1(configuration: .init(additionalChannelHandlers: [ExpectContinueHandler()], idleTimeout: idle))
        }
        return Application(
            router: buildRouter(services),
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "ferry-server"),
            onServerRunning: onServerRunning,
            logger: services.logger)
    }
}

/// On graceful shutdown, answers every waiting long-poll at once so the HTTP server can
/// drain instead of waiting up to `wait` seconds for each.
struct LongPollCloser: Service {
    let notifier: ChangeNotifier

    func run() async throws {
        try? await gracefulShutdown()
        notifier.shutdown()
    }
}

extension FerryServerApp {
    /// Serves until SIGTERM or SIGINT, then shuts down gracefully.
    public static func serve(_ services: ServerServices) async throws {
        var parts = running(buildApplication(services), services)
        // SIGHUP is the operator's; an in-process server (`withRunningServer`) leaves it alone.
        if let certificate = services.certificate {
            parts.append(CertificateReloader(certificate: certificate, threadPool: services.threadPool, logger: services.logger))
        }
        let group = ServiceGroup(configuration: .init(services: parts, gracefulShutdownSignals: [.sigterm, .sigint], logger: services.logger))
        try await group.run()
    }

    /// What runs beside the HTTP application `app`, in `serve` and in `withRunningServer` alike.
    static func running(_ app: some Service, _ services: ServerServices) -> [any Service] {
        [app, LongPollCloser(notifier: services.notifier), services.dispatcher, UpkeepService(services: services), RetentionService(services: services)] + services.backgroundServices
    }

    /// Runs the server (port taken from its configuration; 0 picks a free one) while `body`
    /// runs with the bound port, then shuts it down gracefully. For benchmarks and tests
    /// that need the real HTTP server in-process.
    public static func withRunningServer<T: Sendable>(_ services: ServerServices, _ body: (Int) async throws -> T) async throws -> T {
        let (ports, portReady) = AsyncStream<Int>.makeStream()
        let app = buildApplication(services) { channel in
            portReady.yield(channel.localAddress?.port ?? 0)
            portReady.finish()
        }
        let group = ServiceGroup(configuration: .init(services: running(app, services), gracefulShutdownSignals: [], logger: services.logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            do {
                guard let port = await iterator.next() else { throw DataDirectoryError("the server did not start") }
                let result = try await body(port)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
        }
    }
}

/// The data directory's layout: `ferry.sqlite`, `blobs/`, `tmp/`, `signing.key` (0600), and
/// with TLS and no configured certificate `tls.crt` and `tls.key` (0600).
public struct DataDirectory: Sendable {
    public let path: String
    public var databasePath: String { path + "/ferry.sqlite" }
    public var signingKeyPath: String { path + "/signing.key" }
    /// The self-signed certificate made on first start when none is configured, and its key (0600).
    public var tlsCertificatePath: String { path + "/tls.crt" }
    public var tlsKeyPath: String { path + "/tls.key" }

    public init(path: String) throws {
        self.path = path
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw DataDirectoryError("cannot create data directory '\(path)': \(String(cString: strerror(errno)))")
        }
    }

    /// Reads the JWT signing key, creating 32 random bytes with mode 0600 on first start.
    public func signingKey() throws -> [UInt8] {
        if let existing = FileManager.default.contents(atPath: signingKeyPath) {
            guard existing.count >= 32 else { throw DataDirectoryError("'\(signingKeyPath)' is damaged (shorter than 32 bytes)") }
            return [UInt8](existing)
        }
        let key = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        let fd = open(signingKeyPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST { return try signingKey() }  // another process won the race
            throw DataDirectoryError("cannot create '\(signingKeyPath)': \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        try key.withUnsafeBytes { try Posix.writeAll(fd, $0) }
        guard fsync(fd) == 0 else { throw DataDirectoryError("cannot sync '\(signingKeyPath)'") }
        try Posix.syncDirectory(path)
        return key
    }
}

extension DataDirectory {
    /// An exclusive `flock` on `server.lock`, held for as long as the returned value lives:
    /// a second `serve` on the same data directory stops at once, naming the first's pid.
    /// Admin commands do not take it (they work beside a running server).
    public func lockForServing() throws -> ServerLock {
        let lockPath = path + "/server.lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw DataDirectoryError("cannot open '\(lockPath)': \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            guard busy else { throw DataDirectoryError("cannot lock '\(lockPath)': \(String(cString: strerror(errno)))") }
            let pid = n > 0 ? String(decoding: buffer[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "unknown"
            throw DataDirectoryError("another ferry-server (pid \(pid)) is already serving '\(path)'; stop it first (admin commands such as 'user add' work beside it)")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return ServerLock(fd: fd)
    }
}

/// The data directory's serving lock; released when this is deinitialised or the process ends.
public final class ServerLock: Sendable {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }
}

public struct DataDirectoryError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
