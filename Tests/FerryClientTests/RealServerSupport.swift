@testable import FerryClient
import FerryCore
import FerryTestSupport
import Foundation
import GRDB
import NIOPosix
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What a finished child process printed and how it ended.
struct ToolRun {
    let status: Int32
    let out: String
    let err: String
}

/// Runs a product binary to completion on the blocking thread pool (never on the
/// cooperative pool), feeding it `stdin`. Its streams go through files: nothing can fill up
/// and stall it while the other is read.
func runTool(_ binary: String, _ arguments: [String], environment: [String: String]? = nil, stdin: String? = nil) async throws -> ToolRun {
    try await NIOThreadPool.singleton.runIfActive {
        let files = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-tool-\(UUID().uuidString)").path
        let input = files + ".in", out = files + ".out", err = files + ".err"
        defer { for file in [input, out, err] { try? FileManager.default.removeItem(atPath: file) } }
        try Data((stdin ?? "").utf8).write(to: URL(fileURLWithPath: input))
        let pid = try Child.spawn(binary, arguments, stdin: input, stdout: out, stderr: err,
                                  environment: environment ?? ProcessInfo.processInfo.environment)
        let ended = try Child.wait(for: pid)
        func text(_ file: String) -> String { (try? String(contentsOfFile: file, encoding: .utf8)) ?? "" }
        return ToolRun(status: ended.status, out: text(out), err: text(err))
    }
}

/// The next port `freeLoopbackPort` tries: one sequence for the test process, from a random
/// start below the kernel's ephemeral range (32768 and up), so other test processes on the
/// machine rarely start on the same ports.
private let nextRealServerPort = Mutex(Int.random(in: 20_000..<30_000))

/// A loopback port free right now that nothing else in this test process will be given: not
/// by this function again, and not by the kernel, which hands out ports for `bind(0)` and for
/// clients' own ends from its ephemeral range only. A real server restarted on its port after
/// SIGKILL therefore finds it free, and no other test's server is listening there in between
/// (one was, under a loaded full run, and answered the restarted server's clients 401).
func freeLoopbackPort() throws -> Int {
    for _ in 0..<1_000 {
        let port = nextRealServerPort.withLock { next in
            defer { next = next >= 32_000 ? 20_000 : next + 1 }
            return next
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        if (try? Loopback.bind(fd, port: port)) != nil { return port }
    }
    throw SystemCallError("bind", errno: EADDRINUSE)
}

/// The real `ferry-server` binary on its own data directory and a fixed loopback port, so a
/// test can kill it with SIGKILL and start it again where its clients expect it.
struct RealServer {
    let data: String
    let config: String
    let port: Int
    /// Serves HTTPS (`serve --tls`) with the self-signed certificate it makes in `data`.
    var tls = false
    /// The certificate file the config names (`tls.certificateFile`), if it names one.
    var certificateFile: String?
    var url: String { url(via: port) }

    /// This server reached through another loopback port (a `FaultProxy`'s), in its scheme.
    func url(via port: Int) -> String { "\(tls ? "https" : "http")://127.0.0.1:\(port)" }

    /// The certificate a device pins, once the server has made it on its first start; nil over plain HTTP.
    func pin() throws -> CertificatePin? {
        guard tls else { return nil }
        return try CertificatePin(pem: String(contentsOfFile: certificateFile ?? data + "/tls.crt", encoding: .utf8))
    }

    /// A data directory with one user, and a config file with test-speed password hashing.
    static func prepare(user: String, password: String, settings: String = "", tls: Bool = false) async throws -> RealServer {
        let data = scratchDirectory("real-server")
        let config = scratchDirectory("real-server-config") + "/config.json"
        let extra = settings.isEmpty ? "" : ", " + settings
        try Data(#"{"auth": {"pbkdf2Iterations": 1000}, "storage": {"reserveBytes": 0}\#(extra)}"#.utf8).write(to: URL(fileURLWithPath: config))
        let server = RealServer(data: data, config: config, port: try freeLoopbackPort(), tls: tls)
        let add = try await server.tool("user", "add", user, "--password-stdin", stdin: password + "\n")
        try #require(add.status == 0, "user add failed: \(add.err)")
        return server
    }

    /// `ferry-server SUBCOMMAND … --data … --config …`.
    func tool(_ arguments: String..., stdin: String? = nil) async throws -> ToolRun {
        try await runTool(CLITests.binary("ferry-server"), arguments + ["--data", data, "--config", config], stdin: stdin)
    }

    /// What the server logged (at `logLevel`) since its last start.
    var log: String { (try? String(contentsOfFile: config + ".log", encoding: .utf8)) ?? "" }

    /// Starts the server and waits until `/health` answers. `arguments` replace the flags
    /// that choose the transport (`--tls` when `tls`).
    func start(arguments: [String]? = nil, logLevel: String = "critical") async throws -> Running {
        let running = try Running(self, arguments: arguments ?? (tls ? ["--tls"] : []), logLevel: logLevel)
        try #require(await eventually { !tls || FileManager.default.fileExists(atPath: certificateFile ?? data + "/tls.crt") }, "ferry-server made no certificate")
        try #require(await Self.waitForHealth(url, pin: try pin()), "ferry-server did not come up on \(url)")
        return running
    }

    /// `ferry-server check`: every referenced chunk present and intact.
    func check() async throws -> ToolRun { try await tool("check") }

    /// Bytes of published blobs (not staging) in a server's data directory.
    static func storedBlobBytes(in data: String) -> Int64 {
        var total: Int64 = 0
        guard let walk = FileManager.default.enumerator(atPath: data + "/blobs") else { return 0 }
        while walk.nextObject() != nil {
            if walk.fileAttributes?[.type] as? FileAttributeType == .typeRegular, let size = walk.fileAttributes?[.size] as? Int64 {
                total += size
            }
        }
        // Small blobs are rows of `blobs.sqlite`.
        var readOnly = Configuration()
        readOnly.readonly = true
        let rows = try? DatabaseQueue(path: data + "/blobs.sqlite", configuration: readOnly).read { db in
            try Int64.fetchOne(db, sql: "SELECT coalesce(sum(length(data)), 0) FROM blob WHERE NOT trashed")
        }
        return total + (rows.flatMap { $0 } ?? 0)
    }

    static func waitForHealth(_ url: String, pin: CertificatePin? = nil) async -> Bool {
        await eventually {
            let api = ServerAPI.open(serverURL: url, token: "", pin: pin)
            defer { Task { await api.close() } }
            return (try? await api.health()) == true
        }
    }

    final class Running: Sendable {
        let process: ChildProcess

        init(_ server: RealServer, arguments: [String], logLevel: String) throws {
            process = try ChildProcess(CLITests.binary("ferry-server"),
                                       ["serve", "--data", server.data, "--config", server.config, "--port", String(server.port)] + arguments,
                                       stderr: server.config + ".log", environment: ["LOG_LEVEL": logLevel, "PATH": "/usr/bin:/bin"])
        }

        /// Sends a signal (SIGHUP: reload the certificate).
        func signal(_ number: Int32) { process.signal(number) }

        /// SIGKILL: no shutdown handler, no flush; what was not durable is gone.
        func kill9() { _ = try? process.stop(SIGKILL) }
    }
}

/// Mounting needs root (CI and the development machines run as root).
var canMount: Bool { getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/bin/mount") }

/// A tmpfs of `size` (e.g. "2m") mounted on a fresh directory while `body` runs: a disk
/// that really fills up. `body` may grow it with `remountTmpfs`.
func withTmpfs<T: Sendable>(size: String, _ body: (String) async throws -> T) async throws -> T {
    let mountPoint = scratchDirectory("tmpfs")
    let mounted = try await runTool("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", mountPoint])
    try #require(mounted.status == 0, "could not mount a tmpfs: \(mounted.err)")
    do {
        let result = try await body(mountPoint)
        await unmount(mountPoint)
        return result
    } catch {
        await unmount(mountPoint)
        throw error
    }
}

/// Unmounts a test's tmpfs. A server's files may still be open for a moment after the test
/// (its stores close when their last reference goes), so a busy mount is detached lazily:
/// gone from /tmp at once, freed by the kernel when the last file closes.
private func unmount(_ mountPoint: String) async {
    if (try? await runTool("/bin/umount", [mountPoint]))?.status == 0 { return }
    _ = try? await runTool("/bin/umount", ["-l", mountPoint])
}

/// Gives a mounted tmpfs a new size: the operator freed space.
func remountTmpfs(_ mountPoint: String, size: String) async throws {
    let r = try await runTool("/bin/mount", ["-o", "remount,size=\(size)", mountPoint])
    try #require(r.status == 0, "could not remount: \(r.err)")
}
