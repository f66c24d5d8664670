@testable import FerryClient
import FerryCore
import FerryHarness
@testable import FerryServer
import FerryTLS
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// SPEC §8 end to end, with the real binaries on loopback: the fingerprint the server prints
/// is the certificate it serves, `ferry login` pins that one only, and a certificate that
/// changes afterwards is refused by `ferry` and a running `ferryd` until pinned again.
@Suite("TLS end to end", .serialized)
struct TLSEndToEndTests {
    static let user = (name: "nas", password: "nas-password-1")

    /// The fingerprint of the certificate served on 127.0.0.1:`port`.
    static func presented(port: Int) async throws -> CertificateFingerprint {
        try CertificateProbe.fingerprint(of: try await CertificateProbe.presentedChain(host: "127.0.0.1", port: port)[0])
    }

    /// `ferry login` of `home` to `server`, with `extra` flags.
    static func login(_ home: CLITests.Home, _ server: RealServer, _ extra: String...) async throws -> ToolRun {
        try await home.ferry(["login", server.url, "--user", user.name, "--device-name", "desk", "--password-stdin"] + extra,
                             stdin: user.password + "\n")
    }

    /// A device of the server's that checks what the server holds, trusting `pin`.
    static func serverTree(_ server: RealServer) async throws -> [String: String] {
        let checker = try await Device.make(serverURL: server.url, user: user, name: "checker-\(UUID().uuidString.prefix(6))", pin: try server.pin())
        defer { Task { await checker.close() } }
        try await checker.sync()
        return checker.tree()
    }

    @Test func theFingerprintPrintedIsTheCertificateServedAndLoginPinsThatOneOnly() async throws {
        let server = try await RealServer.prepare(user: Self.user.name, password: Self.user.password, tls: true)
        let running = try await server.start()
        defer { running.kill9() }
        let printed = try await server.tool("tls", "fingerprint")
        let served = try await Self.presented(port: server.port)
        #expect(printed.status == 0, "\(printed.err)")
        #expect(printed.out == "\(served)\n")

        let home = CLITests.Home()
        let configFile = home.path + "/config/ferry/config.json"
        let wrong = try await Self.login(home, server, "--fingerprint", CertificateFingerprint(der: [0]).description)
        #expect(wrong.status == 1)
        #expect(wrong.err.contains("presented certificate \(served), not the \(CertificateFingerprint(der: [0]))"), "\(wrong.err)")
        #expect(!FileManager.default.fileExists(atPath: configFile))
        // No terminal to ask on: refused, with the fingerprint to check and pass.
        let unasked = try await Self.login(home, server)
        #expect(unasked.status == 1)
        #expect(unasked.err.contains(served.description) && unasked.err.contains("--fingerprint"), "\(unasked.err)")
        #expect(!FileManager.default.fileExists(atPath: configFile))

        // The right one, in openssl's spelling: pinned, and the device syncs.
        let right = try await Self.login(home, server, "--fingerprint", served.openSSLSpelling)
        #expect(right.status == 0, "\(right.err)")
        #expect(try ClientConfig.load(from: configFile).certificatePin?.fingerprint == served)
        let folder = scratchDirectory("tls-folder")
        #expect(try await home.ferry("folder", "add", folder, "--library", "docs").status == 0)
        try Data("over TLS".utf8).write(to: URL(fileURLWithPath: folder + "/hello.txt"))
        let sync = try await home.ferry("sync")
        #expect(sync.status == 0, "\(sync.err)")
        #expect(try await Self.serverTree(server)["hello.txt"] == Device.tree(at: folder)["hello.txt"])
    }

    @Test func aReplacedCertificateIsRefusedByFerryAndFerrydAndNothingIsUploadedUntilPinnedAgain() async throws {
        let server = try await RealServer.prepare(user: Self.user.name, password: Self.user.password, tls: true)
        var running = try await server.start()
        defer { running.kill9() }
        let old = try await Self.presented(port: server.port)
        let home = CLITests.Home()
        #expect(try await Self.login(home, server, "--fingerprint", old.description).status == 0)
        let folder = scratchDirectory("tls-daemon-folder")
        #expect(try await home.ferry("folder", "add", folder, "--library", "docs").status == 0)
        try Data("before".utf8).write(to: URL(fileURLWithPath: folder + "/before.txt"))
        #expect(try await home.ferry("sync").status == 0)

        let daemon = try Self.startDaemon(home)
        defer { _ = try? daemon.stop() }
        #expect(await eventually { (try? await Self.status(home))?.folders.first?.lastSyncAt != nil })

        // The NAS gets a new certificate (its files removed: the next start makes another).
        running.kill9()
        try FileManager.default.removeItem(atPath: server.data + "/tls.crt")
        try FileManager.default.removeItem(atPath: server.data + "/tls.key")
        running = try await server.start()
        let new = try await Self.presented(port: server.port)
        #expect(new != old)
        let storedBefore = RealServer.storedBlobBytes(in: server.data)
        try Data("written after the certificate changed".utf8).write(to: URL(fileURLWithPath: folder + "/after.txt"))

        let refused = try await home.ferry("sync")
        #expect(refused.status == 1)
        #expect(refused.err.contains("presented certificate \(new) instead of the pinned \(old)"), "\(refused.err)")
        #expect(refused.err.contains("ferry login"))
        // The daemon: an error naming both, retried with backoff, never accepted.
        #expect(await eventually(timeout: .seconds(30)) {
            guard let folder = try? await Self.status(home).folders.first else { return false }
            return folder.state == .error && folder.lastError?.contains("presented certificate \(new) instead of the pinned \(old)") == true
        })
        #expect(RealServer.storedBlobBytes(in: server.data) == storedBefore)
        #expect(try await Self.serverTree(server)["after.txt"] == nil)

        // Pinned again: the daemon, started anew, sends the work it kept.
        try daemon.stop()
        #expect(try await Self.login(home, server, "--fingerprint", new.description).status == 0)
        let again = try Self.startDaemon(home)
        defer { _ = try? again.stop() }
        #expect(try await eventually(timeout: .seconds(30)) { try await Self.serverTree(server)["after.txt"] != nil })
    }

    @Test func aServerOnAllAddressesAnswersHTTPSAndNotHTTP() async throws {
        let server = try await RealServer.prepare(user: Self.user.name, password: Self.user.password, tls: true)
        // No --tls: 0.0.0.0 reaches the network, so TLS is on by itself. Reached through 127.0.0.1.
        let running = try await server.start(arguments: ["--host", "0.0.0.0"])
        defer { running.kill9() }
        #expect(try await Self.presented(port: server.port) == server.pin()?.fingerprint)
        #expect(try await RealServer.waitForHealth(server.url, pin: server.pin()))
        let plain = try await runTool("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "http://127.0.0.1:\(server.port)/api/v1/health"])
        #expect(plain.out == "000", "plain HTTP got an answer: \(plain.out)")
    }

    @Test func plainHTTPOnANetworkAddressNeedsItsFlagAndIsWarnedAboutAtEveryStart() async throws {
        let server = try await RealServer.prepare(user: Self.user.name, password: Self.user.password)
        let running = try await server.start(arguments: ["--host", "0.0.0.0", "--insecure-http"], logLevel: "warning")
        defer { running.kill9() }
        #expect(await RealServer.waitForHealth(server.url))
        #expect(server.log.contains("serving plain HTTP on 0.0.0.0 (--insecure-http)"), "\(server.log)")
        let both = try await server.tool("serve", "--tls", "--insecure-http")
        #expect(both.status != 0 && both.err.contains("contradict each other"), "\(both.err)")
    }

    @Test func plainHTTPLoginToAnotherHostIsRefusedBeforeAnyConnection() async throws {
        let home = CLITests.Home()
        let refused = try await home.ferry("login", "http://nas.invalid:8720", "--user", "kim", "--password-stdin", stdin: "a-password\n")
        #expect(refused.status == 1)
        #expect(refused.err.contains("refusing to send your password to nas.invalid over plain http://"), "\(refused.err)")
        #expect(refused.err.contains("--insecure-http"))
        let badFingerprint = try await home.ferry("login", "https://127.0.0.1:9", "--user", "kim", "--fingerprint", "SHA256:12", "--password-stdin")
        #expect(badFingerprint.status == 2)
        #expect(badFingerprint.err.contains("is not a certificate fingerprint"), "\(badFingerprint.err)")
        let pinOnHTTP = try await home.ferry("login", "http://127.0.0.1:9", "--user", "kim", "--fingerprint", CertificateFingerprint(der: [1]).description)
        #expect(pinOnHTTP.status == 2)
        #expect(pinOnHTTP.err.contains("pins an https:// server's certificate"), "\(pinOnHTTP.err)")
    }

    /// On a terminal the fingerprint is shown and must be confirmed (`script` gives `ferry` one).
    @Test(arguments: [("no", false), ("yes", true)])
    func onATerminalTheFingerprintIsShownAndConfirmed(answer: String, pinned: Bool) async throws {
        let server = try await RealServer.prepare(user: Self.user.name, password: Self.user.password, tls: true)
        let running = try await server.start()
        defer { running.kill9() }
        let served = try await Self.presented(port: server.port)
        let home = CLITests.Home()
        let passwordFile = home.path + "/password"
        try Data((Self.user.password + "\n").utf8).write(to: URL(fileURLWithPath: passwordFile))
        let command = "\(CLITests.binary("ferry")) login \(server.url) --user \(Self.user.name) --device-name tty --password-stdin < \(passwordFile)"
        let run = try await runTool("/usr/bin/script", ["-qec", command, "/dev/null"], environment: home.environment, stdin: answer + "\n")
        #expect(run.out.contains("Its SHA-256 fingerprint is \(served)."), "\(run.out)")
        #expect(run.status == (pinned ? 0 : 1), "\(run.out)")
        let config = try? ClientConfig.load(from: home.path + "/config/ferry/config.json")
        #expect(config?.certificatePin?.fingerprint == (pinned ? served : nil))
        if !pinned { #expect(run.out.contains("not confirmed")) }
    }

    @Test func aRenewedCertificateIsServedAfterSIGHUPAndABrokenOneIsNot() async throws {
        let directory = scratchDirectory("tls-files")
        func writePair() throws -> CertificateFingerprint {
            let pair = try SelfSignedCertificate.make(names: ["localhost"], addresses: ["127.0.0.1"])
            try Data(pair.certificatePEM.utf8).write(to: URL(fileURLWithPath: directory + "/nas.crt"))
            try Data(pair.keyPEM.utf8).write(to: URL(fileURLWithPath: directory + "/nas.key"))
            return try CertificatePin(pem: pair.certificatePEM).fingerprint
        }
        let first = try writePair()
        var server = try await RealServer.prepare(
            user: Self.user.name, password: Self.user.password,
            settings: #""tls": {"certificateFile": "\#(directory)/nas.crt", "keyFile": "\#(directory)/nas.key"}"#, tls: true)
        server.certificateFile = directory + "/nas.crt"
        let running = try await server.start(logLevel: "notice")
        defer { running.kill9() }
        #expect(try await Self.presented(port: server.port) == first)
        #expect(try await server.tool("tls", "fingerprint").out == "\(first)\n")

        let second = try writePair()
        running.signal(SIGHUP)
        #expect(await eventually { (try? await Self.presented(port: server.port)) == second })
        #expect(await eventually { server.log.contains("TLS certificate reloaded") })

        // A key of another certificate: logged, and the renewed pair stays in use.
        let other = try SelfSignedCertificate.make(names: ["localhost"], addresses: [])
        try Data(other.keyPEM.utf8).write(to: URL(fileURLWithPath: directory + "/nas.key"))
        running.signal(SIGHUP)
        #expect(await eventually { server.log.contains("does not belong to the certificate") })
        #expect(try await Self.presented(port: server.port) == second)
    }

    static func startDaemon(_ home: CLITests.Home) throws -> ChildProcess {
        try ChildProcess(CLITests.binary("ferryd"), environment: home.environment)
    }

    /// `ferry status --json`, decoded.
    static func status(_ home: CLITests.Home) async throws -> DaemonStatus {
        let run = try await home.ferry("status", "--json")
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(DaemonStatus.self, from: Data(run.out.utf8))
    }
}
