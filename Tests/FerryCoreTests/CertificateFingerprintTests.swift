import Foundation
import Testing

@testable import FerryCore

@Suite("Certificate fingerprints and loopback hosts")
struct CertificateFingerprintTests {
    static let hex = "538801a50c52a9c309ee194325ca7fd1856b00dcdedbb0a161c4433387e39bd2"
    static let openSSL = "53:88:01:A5:0C:52:A9:C3:09:EE:19:43:25:CA:7F:D1:85:6B:00:DC:DE:DB:B0:A1:61:C4:43:33:87:E3:9B:D2"

    /// Every spelling people copy from a terminal means the same fingerprint, printed one way.
    @Test(arguments: [
        "SHA256:" + hex, "sha256:" + hex, hex, hex.uppercased(), "SHA256:" + openSSL, openSSL, "  SHA256:\(hex)  ",
    ])
    func everyAcceptedSpellingReadsTheSame(_ text: String) throws {
        let fingerprint = try CertificateFingerprint(parsing: text)
        #expect(fingerprint.description == "SHA256:" + Self.hex)
    }

    @Test(arguments: [
        "", "SHA256:", "SHA1:" + hex, String(hex.dropLast()), hex + "00", "SHA256:" + hex.replacingOccurrences(of: "5", with: "g"),
        "53:88:01", "5:38:801" + String(hex.dropFirst(8)), openSSL + ":", "MD5:" + openSSL,
    ])
    func anythingElseIsRefusedNamingTheExpectedForm(_ text: String) {
        #expect { try CertificateFingerprint(parsing: text) } throws: { error in
            (error as? FingerprintError)?.description.contains("give SHA256: followed by 64 hex digits") == true
        }
    }

    @Test func itIsTheSHA256OfTheDERAndRoundTripsAsJSON() throws {
        let der: [UInt8] = Array("not really DER, but bytes all the same".utf8)
        let fingerprint = CertificateFingerprint(der: der)
        #expect(fingerprint.digest == ContentHash.of(der))
        let json = try JSONEncoder().encode([fingerprint])
        #expect(String(decoding: json, as: UTF8.self) == #"["SHA256:\#(ContentHash.of(der).hex)"]"#)
        #expect(try JSONDecoder().decode([CertificateFingerprint].self, from: json) == [fingerprint])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([CertificateFingerprint].self, from: Data(#"["SHA256:00"]"#.utf8)) }
    }

    @Test(arguments: [
        ("127.0.0.1", true), ("127.45.0.9", true), ("localhost", true), ("LOCALHOST", true), ("::1", true), ("[::1]", true),
        ("::ffff:127.0.0.1", true), ("0.0.0.0", false), ("::", false), ("10.0.0.2", false), ("128.0.0.1", false),
        ("nas.local", false), ("localhost.example.com", false), ("nas.invalid", false), ("::2", false),
    ])
    func loopbackIsDecidedFromTheTextAlone(host: String, loopback: Bool) {
        #expect(LoopbackHost.contains(host) == loopback)
    }
}
