import AsyncHTTPClient
import Crypto
import FerryCore
import FerryTLS
import Foundation
import GRDB
import HTTPTypes
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import NIOSSL
import SwiftASN1
import FerryTestSupport
import Testing
import X509

@testable import FerryServer

/// HTTPS in the server (SPEC §8): the certificate it makes or is given, what it presents,
/// reloading, and the settings that decide whether it speaks TLS at all.
@Suite("TLS", .serialized)
struct TLSTests {
    /// A certificate and key written to a fresh directory, as an operator would configure them.
    static func writePair(in directory: String, name: String = "server") throws -> (certificate: String, key: String) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let pair = try SelfSignedCertificate.make(names: ["nas.test"], addresses: ["127.0.0.1"])
        let paths = (directory + "/\(name).crt", directory + "/\(name).key")
        try Data(pair.certificatePEM.utf8).write(to: URL(fileURLWithPath: paths.0))
        try Data(pair.keyPEM.utf8).write(to: URL(fileURLWithPath: paths.1))
        return paths
    }

    static func scratch() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("ferry-tls-\(UUID().uuidString)").path
    }

    @Test func aSelfSignedP256CertificateIsMadeOnFirstStartAndKeptAfterwards() async throws {
        let server = try await TestServer.make(tls: true)
        defer { server.removeData() }
        let made = try #require(server.services.certificate)
        let data = try DataDirectory(path: server.dataDirectory)
        let keyMode = try FileManager.default.attributesOfItem(atPath: data.tlsKeyPath)[.posixPermissions] as? Int
        #expect(keyMode == 0o600)

        let parsed = try Certificate(pemEncoded: String(contentsOfFile: data.tlsCertificatePath, encoding: .utf8))
        #expect(P256.Signing.PublicKey(parsed.publicKey) != nil)
        #expect(parsed.signatureAlgorithm == .ecdsaWithSHA256)
        #expect(parsed.issuer == parsed.subject && parsed.publicKey.isValidSignature(parsed.signature, for: parsed))
        #expect(parsed.notValidAfter.timeIntervalSinceNow > 19 * 365 * 86400)
        let names = try #require(try parsed.extensions.subjectAlternativeNames)
        #expect(names.contains(.dnsName("localhost")))
        #expect(names.contains(.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))))
        var der = DER.Serializer()
        try der.serialize(parsed)
        #expect(made.fingerprint == CertificateFingerprint(der: der.serializedBytes))

        // The next start presents the same certificate: pins stay valid across restarts.
        let again = try await TestServer.make(dataDirectory: server.dataDirectory, tls: true)
        #expect(again.services.certificate?.fingerprint == made.fingerprint)
    }

    @Test func theCertificateServedIsTheOneItsFingerprintNamesAndPlainHTTPGetsNoAnswer() async throws {
        let server = try await TestServer.make(tls: true)
        defer { server.removeData() }
        let certificate = try #require(server.services.certificate)
        try await FerryServerApp.withRunningServer(server.services) { port in
            let chain = try await CertificateProbe.presentedChain(host: "127.0.0.1", port: port)
            #expect(try CertificateProbe.fingerprint(of: chain[0]) == certificate.fingerprint)
            try await CertificateProbe.verify(host: "127.0.0.1", port: port, configuration: PinnedTrust.clientConfiguration(trusting: chain[0]))

            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            defer { Task { try? await client.shutdown() } }
            await #expect(throws: (any Error).self) {
                _ = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/v1/health"), timeout: .seconds(10))
            }
        }
    }

    /// HTTP/2 where the client offers it by ALPN, HTTP/1.1 always (SPEC §8).
    @Test(arguments: [HTTPClient.Configuration.HTTPVersion.automatic, .http1Only])
    func http2AndHTTP1AreBothServed(version: HTTPClient.Configuration.HTTPVersion) async throws {
        let server = try await TestServer.make(tls: true)
        defer { server.removeData() }
        let certificate = try #require(server.services.certificate)
        try await FerryServerApp.withRunningServer(server.services) { port in
            var configuration = HTTPClient.Configuration()
            configuration.tlsConfiguration = PinnedTrust.clientConfiguration(trusting: try NIOSSLCertificate(bytes: certificate.leafDER, format: .der))
            configuration.httpVersion = version
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            defer { Task { try? await client.shutdown() } }
            let response = try await client.execute(HTTPClientRequest(url: "https://127.0.0.1:\(port)/api/v1/health"), timeout: .seconds(10))
            #expect(response.status == .ok)
            #expect(response.version == (version == .http1Only ? .http1_1 : .http2))
        }
    }

    @Test func aReloadPresentsTheNewPairAndABadPairLeavesTheOldInPlace() async throws {
        let directory = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let paths = try Self.writePair(in: directory)
        let server = try await TestServer.make(tls: true) {
            $0.tls.certificateFile = paths.certificate
            $0.tls.keyFile = paths.key
        }
        defer { server.removeData() }
        let certificate = try #require(server.services.certificate)
        #expect(!FileManager.default.fileExists(atPath: server.dataDirectory + "/tls.crt"), "configured files: nothing is made")
        try await FerryServerApp.withRunningServer(server.services) { port in
            func presented() async throws -> CertificateFingerprint {
                try CertificateProbe.fingerprint(of: try await CertificateProbe.presentedChain(host: "127.0.0.1", port: port)[0])
            }
            let first = try await presented()
            #expect(first == certificate.fingerprint)

            // Renewed files: the next handshake presents them, no restart.
            _ = try Self.writePair(in: directory)
            let second = try certificate.reload()
            #expect(second != first)
            #expect(try await presented() == second)

            // A key that belongs to another certificate: refused, the current pair stays.
            let other = try Self.writePair(in: directory + "/other")
            try FileManager.default.removeItem(atPath: paths.key)
            try FileManager.default.copyItem(atPath: other.key, toPath: paths.key)
            #expect { try certificate.reload() } throws: { "\($0)".contains("does not belong to the certificate") }
            try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: paths.certificate))
            #expect { try certificate.reload() } throws: { "\($0)".contains("holds no PEM certificate") || "\($0)".contains("cannot read the TLS certificate") }
            #expect(try await presented() == second)
            #expect(certificate.fingerprint == second)
        }
    }

    @Test func aConnectionThatNeverCompletesAHandshakeIsClosedAtTheIdleTimeout() async throws {
        let server = try await TestServer.make(tls: true) { $0.http.idleTimeoutSeconds = 1 }
        defer { server.removeData() }
        try await FerryServerApp.withRunningServer(server.services) { port in
            let silent = try RawConnection(port: port)
            let started = ContinuousClock.now
            #expect(try await silent.readUntilClosed(timeout: .seconds(15)).closed)
            #expect(ContinuousClock.now - started < .seconds(10))
            // Half a handshake is no better.
            let halfway = try RawConnection(port: port)
            halfway.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            #expect(try await halfway.readUntilClosed(timeout: .seconds(15)).closed)
        }
    }

    @Test func settingsThatCannotWorkAreRefusedWithOneSentence() async throws {
        var both = ServerConfiguration()
        both.tls.enabled = true
        both.tls.insecureHTTP = true
        #expect { try both.validate() } throws: { "\($0)".contains("contradict each other") }

        var lonely = ServerConfiguration()
        lonely.tls.certificateFile = "/etc/ferry/tls.crt"
        #expect { try lonely.validate() } throws: { "\($0)".contains("go together") }

        let directory = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let paths = try Self.writePair(in: directory)
        await #expect { _ = try await TestServer.make(tls: true) { $0.tls.certificateFile = directory + "/missing.crt"; $0.tls.keyFile = paths.key } }
            throws: { "\($0)".contains("cannot read the TLS certificate") }
        await #expect { _ = try await TestServer.make(tls: true) { $0.tls.certificateFile = paths.certificate; $0.tls.keyFile = directory + "/missing.key" } }
            throws: { "\($0)".contains("cannot read the TLS private key") }

        let file = directory + "/config.json"
        try Data(#"{"tls": {"enabled": true, "insecureHTTP": true}}"#.utf8).write(to: URL(fileURLWithPath: file))
        #expect { try ServerConfiguration.load(path: file) } throws: { "\($0)".contains("contradict each other") }
        try Data(#"{"tls": {"certificateFile": "\#(paths.certificate)", "keyFile": "\#(paths.key)"}}"#.utf8).write(to: URL(fileURLWithPath: file))
        #expect(try ServerConfiguration.load(path: file).tls.keyFile == paths.key)

        // No certificate yet: the fingerprint command says where it will come from.
        let empty = try DataDirectory(path: directory + "/data")
        #expect { _ = try ServerCertificate.existing(ServerConfiguration(), data: empty) } throws: { "\($0)".contains("makes it on its first start") }
    }

    /// SPEC §7: the dashboard's cookies are `Secure` over TLS, with no proxy to say so.
    @Test func theDashboardsCookiesAreSecureWhenTheServerSpeaksHTTPS() async throws {
        let server = try await TestServer.make(tls: true)
        defer { server.removeData() }
        try await server.run(server.live) { api in
            let form = try await DashboardBrowser(api).get("/signin")
            #expect(form.status == .ok)
            let line = try #require(DashboardBrowser.setCookie(DashboardCookie.signIn, in: form))
            #expect(line.contains("Secure") && line.contains("HttpOnly"), "\(line)")
        }
    }

    /// The database holds the webhook pin to the one spelling, whatever code writes it.
    @Test(.eachBackend) func aWebhookPinIsStoredInTheOneSpellingOnly() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let (user, _) = try await server.addUser("hooks")
        let pin = CertificateFingerprint(der: [1, 2, 3])
        let made = try await server.services.store.createWebhook(userId: user.id, createdBy: .init(kind: .session, id: "s"), url: "https://127.0.0.1:9/x",
                                                                 events: try EventFilter(["ping"]), secret: "a-secret-of-sixteen", active: true,
                                                                 keepResponseExcerpts: false, tlsFingerprint: pin)
        #expect(try await server.services.store.webhooks(userId: user.id).map(\.tlsFingerprint) == [pin])
        for bad in ["sha256:" + pin.digest.hex, pin.digest.hex, "SHA256:00"] {
            await #expect(throws: (any Error).self, "\(bad)") {
                try await server.executeRaw("UPDATE webhook SET tls_fingerprint = ? WHERE id = ?", [bad, made.id])
            }
        }
        try await server.executeRaw("UPDATE webhook SET tls_fingerprint = ? WHERE id = ?", [pin.description, made.id])
        await #expect { try await server.services.store.createWebhook(userId: user.id, createdBy: .init(kind: .session, id: "s"), url: "http://127.0.0.1:9/x",
                                                                      events: try EventFilter(["ping"]), secret: "a-secret-of-sixteen", active: true,
                                                                      keepResponseExcerpts: false, tlsFingerprint: pin) }
            throws: { "\($0)".contains("pins an https:// receiver") }
    }

    @Test(arguments: [
        ("127.0.0.1", false, false, false), ("localhost", false, false, false), ("::1", false, false, false),
        ("127.0.0.1", true, false, true), ("0.0.0.0", false, false, true), ("::", false, false, true),
        ("192.168.1.20", false, false, true), ("nas.local", false, false, true), ("0.0.0.0", false, true, false),
    ])
    func tlsIsOnWhereverTheServerIsReachableFromANetwork(host: String, tls: Bool, insecureHTTP: Bool, expected: Bool) {
        var configuration = ServerConfiguration()
        configuration.host = host
        configuration.tls.enabled = tls
        configuration.tls.insecureHTTP = insecureHTTP
        #expect(configuration.usesTLS == expected)
    }
}
