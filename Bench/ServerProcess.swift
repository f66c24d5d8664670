import FerryClient
import FerryCore
import FerryHarness
import FerryServer
import Foundation
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// The real `ferry-server` binary on a free loopback port, with the user "bench": for
/// measurements of the server's own memory, apart from the client's.
struct ServerProcess {
    let pid: pid_t
    let port: Int
    let dataDirectory: String

    /// Starts the server on a fresh data directory under `root` and runs `body` with it.
    /// `tls`: HTTPS (`serve --tls`), the client pinning the certificate the server made.
    /// `metadataURL`: a PostgreSQL database to keep the metadata in instead of SQLite.
    /// `configure`: changes to the server's configuration beyond those.
    static func with<T: Sendable>(root: String, tls: Bool = false, metadataURL: String? = nil,
                                  configure: (inout ServerConfiguration) -> Void = { _ in },
                                  _ body: (ServerProcess, BenchServer) async throws -> T) async throws -> T {
        let server = try await start(root: root, name: tls ? "server-process-tls" : "server-process", tls: tls) { settings in
            settings.metadata.url = metadataURL
            configure(&settings)
        }
        defer { server.stop() }
        let pin = tls ? try CertificatePin(pem: String(contentsOfFile: server.dataDirectory + "/tls.crt", encoding: .utf8)) : nil
        return try await BenchServer.connect(port: server.port, pin: pin) { try await body(server, $0) }
    }

    /// Starts `ferry-server serve` on a free loopback port with the data directory
    /// `root/name` and the configuration `root/name.json`, and waits until it listens; the
    /// caller stops it. `addUser`: first adds the user "bench" (once per metadata store: a
    /// second instance over the same database finds it there).
    static func start(root: String, name: String, tls: Bool = false, addUser: Bool = true,
                      configure: (inout ServerConfiguration) -> Void = { _ in }) async throws -> ServerProcess {
        guard let binary = SyncBenchmark.sibling("ferry-server") else {
            throw BenchError("ferry-server is not built next to ferry-bench; run 'swift build' first")
        }
        let data = root + "/" + name
        let config = root + "/\(name).json"
        var settings = ServerConfiguration()
        settings.dataDirectory = data
        settings.storage.reserveBytes = 0
        settings.auth.pbkdf2Iterations = 1000
        configure(&settings)
        try JSONEncoder().encode(settings).write(to: URL(fileURLWithPath: config))
        if addUser {
            let passwordFile = root + "/password"
            try Data((BenchServer.password + "\n").utf8).write(to: URL(fileURLWithPath: passwordFile))
            let add = try runWithInput(binary, ["user", "add", "bench", "--password-stdin", "--data", data, "--config", config], input: passwordFile)
            guard add == 0 else { throw BenchError("ferry-server user add failed (\(add))") }
        }
        let port = try freePort()
        let pid = try Child.spawn(binary, ["serve", "--data", data, "--config", config, "--port", String(port)] + (tls ? ["--tls"] : []),
                            stdout: "/dev/null", stderr: root + "/\(name).log", environment: Child.inherited(adding: ["LOG_LEVEL": "error"]))
        let server = ServerProcess(pid: pid, port: port, dataDirectory: data)
        do {
            guard try await SyncBenchmark.poll(timeout: .seconds(30), { server.isListening }) else {
                throw BenchError("ferry-server did not start; see \(root)/\(name).log")
            }
        } catch {
            server.stop()
            throw error
        }
        return server
    }

    /// Stops the server (SIGTERM) and waits for it to exit.
    func stop() {
        kill(pid, SIGTERM)
        _ = try? Child.wait(for: pid)
    }

    /// The plain server, and with `tls` a second one over HTTPS beside it.
    static func with<T: Sendable>(root: String, alsoTLS tls: Bool, _ body: ([(ServerProcess, BenchServer)]) async throws -> T) async throws -> T {
        try await with(root: root) { plain, plainServer in
            guard tls else { return try await body([(plain, plainServer)]) }
            return try await with(root: root, tls: true) { secure, secureServer in try await body([(plain, plainServer), (secure, secureServer)]) }
        }
    }

    /// Resident memory of the server process, in bytes.
    var residentBytes: Int { SyncBenchmark.residentBytes(pid) }

    var isListening: Bool { acceptsConnections(port: port) }

    /// Drops the server's stored files from the page cache, so the next reads come from disk.
    func evictPageCache() {
        guard let walker = FileManager.default.enumerator(atPath: dataDirectory) else { return }
        for case let relative as String in walker {
            let fd = open(dataDirectory + "/" + relative, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            fdatasync(fd)
            posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
            close(fd)
        }
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
func acceptsConnections(port: Int) -> Bool {
    guard let fd = try? Loopback.socket() else { return false }
    defer { close(fd) }
    return Loopback.connect(fd, port: port)
}

/// A loopback port free right now.
func freePort() throws -> Int {
    let fd = try Loopback.socket()
    defer { close(fd) }
    return try Loopback.bind(fd)
}

/// Runs a program with standard input from a file; returns its exit status.
func runWithInput(_ executable: String, _ arguments: [String], input: String) throws -> Int32 {
    try Child.wait(for: try Child.spawn(executable, arguments, stdin: input)).status
}
