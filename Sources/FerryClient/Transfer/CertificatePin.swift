import FerryCore
import FerryTLS
import Foundation
import NIOSSL

/// The server certificate this device pinned at `ferry login` (SPEC §8), kept in the config
/// beside the token: every later connection of `ferry` and `ferryd` trusts this certificate
/// and nothing else, and one that presents another is refused (`CertificatePinMismatch`).
public struct CertificatePin: Codable, Sendable, Equatable {
    public let fingerprint: CertificateFingerprint
    /// The connection's only trust root.
    public let certificate: NIOSSLCertificate

    /// Pins a certificate a server presented; it must sign itself (`PinnedTrust.isSelfSigned`).
    public init(_ certificate: NIOSSLCertificate) throws {
        self.fingerprint = try CertificateProbe.fingerprint(of: certificate)
        self.certificate = certificate
    }

    /// Reads a DER certificate.
    public init(der: [UInt8]) throws {
        guard let certificate = try? NIOSSLCertificate(bytes: der, format: .der) else {
            throw ClientError.invalidInput("the pinned certificate is not a DER certificate")
        }
        try self.init(certificate)
    }

    /// Reads a PEM certificate (a server's `tls.crt`, or the config's copy).
    public init(pem: String) throws {
        guard let certificate = try? NIOSSLCertificate(bytes: Array(pem.utf8), format: .pem) else {
            throw ClientError.invalidInput("the pinned certificate is not a PEM certificate")
        }
        try self.init(certificate)
    }

    /// The TLS configuration that accepts this certificate only.
    public var tlsConfiguration: TLSConfiguration { PinnedTrust.clientConfiguration(trusting: certificate) }

    /// The certificate as PEM, as the config keeps it.
    public var pem: String {
        let der = (try? certificate.toDERBytes()) ?? []
        let base64 = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN CERTIFICATE-----\n\(base64)\n-----END CERTIFICATE-----\n"
    }

    enum CodingKeys: String, CodingKey { case fingerprint, certificate }

    /// A pin whose fingerprint does not describe its certificate was edited by hand or damaged;
    /// it is refused rather than trusted either way.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let fingerprint = try c.decode(CertificateFingerprint.self, forKey: .fingerprint)
        let pin: CertificatePin
        do { pin = try CertificatePin(pem: try c.decode(String.self, forKey: .certificate)) } catch {
            throw DecodingError.dataCorruptedError(forKey: .certificate, in: c, debugDescription: "the pinned certificate is not a PEM certificate")
        }
        guard pin.fingerprint == fingerprint else {
            throw DecodingError.dataCorruptedError(forKey: .fingerprint, in: c, debugDescription: "the pinned fingerprint does not match the pinned certificate")
        }
        self = pin
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(fingerprint, forKey: .fingerprint)
        try c.encode(pem, forKey: .certificate)
    }
}

/// A pinned server presented another certificate: refused, never accepted silently (SPEC §8).
/// Nothing was sent over the connection; a daemon keeps its work queued and tries again.
public struct CertificatePinMismatch: Error, Sendable, Equatable, CustomStringConvertible {
    public let server: String
    public let expected: CertificateFingerprint
    public let presented: CertificateFingerprint

    public init(server: String, expected: CertificateFingerprint, presented: CertificateFingerprint) {
        self.server = server
        self.expected = expected
        self.presented = presented
    }

    public var description: String {
        "the server at \(server) presented certificate \(presented) instead of the pinned \(expected), so nothing was sent; "
            + "if its certificate was replaced on purpose, compare the new fingerprint with 'ferry-server tls fingerprint' on the server "
            + "and run 'ferry login \(server) --user NAME --fingerprint \(presented)' to pin it"
    }
}
