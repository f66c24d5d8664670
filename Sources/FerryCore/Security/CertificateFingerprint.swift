import Foundation

/// The SHA-256 of a certificate's DER bytes: what `ferry-server tls fingerprint` prints,
/// what `ferry login --fingerprint` takes and what a device pins (SPEC §8). Written
/// `SHA256:` and 64 lowercase hex digits; read in that spelling and in the ones other tools
/// print (`SHA256:AB:CD:…` from `openssl x509 -fingerprint -sha256`, bare hex, either case).
public struct CertificateFingerprint: Hashable, Sendable, Codable, CustomStringConvertible {
    public let digest: ContentHash

    /// The label every spelling may start with (case-insensitively).
    public static let prefix = "SHA256:"

    public init(digest: ContentHash) { self.digest = digest }

    /// The fingerprint of a certificate given as DER.
    public init(der: some Sequence<UInt8>) { self.digest = .of(der) }

    /// Parses any accepted spelling; throws one sentence naming the expected form otherwise.
    public init(parsing text: String) throws(FingerprintError) {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        if rest.uppercased().hasPrefix(Self.prefix) { rest = rest.dropFirst(Self.prefix.count) }
        // Colons between byte pairs are optional, but where they are used they must be regular.
        let hex = rest.filter { $0 != ":" }
        if rest.contains(":") {
            let groups = rest.split(separator: ":", omittingEmptySubsequences: false)
            guard groups.count == 32, groups.allSatisfy({ $0.count == 2 }) else { throw FingerprintError(text) }
        }
        guard let digest = ContentHash(hex: hex) else { throw FingerprintError(text) }
        self.digest = digest
    }

    /// `SHA256:` and 64 lowercase hex digits.
    public var description: String { Self.prefix + digest.hex }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        do { self = try CertificateFingerprint(parsing: try c.decode(String.self)) } catch let error as FingerprintError {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: error.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// A fingerprint that is not one, with the form that is expected.
public struct FingerprintError: Error, Sendable, Equatable, CustomStringConvertible {
    public let text: String
    init(_ text: String) { self.text = text }

    public var description: String {
        let shown = text.count > 120 ? String(text.prefix(120)) + "…" : text
        return "'\(shown)' is not a certificate fingerprint: give SHA256: followed by 64 hex digits (colons between byte pairs allowed)"
    }
}
