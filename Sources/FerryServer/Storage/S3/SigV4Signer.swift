import Crypto
import FerryCore
import Foundation

/// AWS Signature Version 4 (header form) for requests whose payload's SHA-256 is known
/// before they are sent: Ferry's blobs are named by that very hash, so every PUT is signed
/// with it and the store checks the bytes against it (`x-amz-content-sha256`). Written
/// against AWS's published test vectors (`SigV4SignerTests`), not against an SDK.
public struct SigV4Signer: Sendable {
    /// An access key pair. `description` never shows the secret.
    public struct Credentials: Sendable, Equatable, CustomStringConvertible {
        public let accessKeyId: String
        public let secretAccessKey: String
        public init(accessKeyId: String, secretAccessKey: String) {
            self.accessKeyId = accessKeyId
            self.secretAccessKey = secretAccessKey
        }
        public var description: String { "access key \(accessKeyId) (secret not shown)" }
    }

    /// The SHA-256 of an empty payload, as every bodiless request declares it.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    public let credentials: Credentials
    public let region: String
    public let service: String

    public init(credentials: Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// The headers to add to a request: `x-amz-date` and `authorization`.
    /// - Parameters:
    ///   - path: the URI path as sent, already percent-encoded (`S3Key.encodedPath`).
    ///   - query: query parameters, not yet encoded; a name without a value signs as `name=`.
    ///   - headers: every header to sign, `host` included (names in any case).
    ///   - payloadHash: the hex SHA-256 of the body (or `UNSIGNED-PAYLOAD`).
    public func sign(method: String, path: String, query: [(String, String)], headers: [(String, String)], payloadHash: String,
                     date: Date) -> [(String, String)] {
        let (amzDate, day) = Self.timestamps(date)
        var all = headers.map { (name: $0.0.lowercased(), value: Self.trim($0.1)) }
        all.append((name: "x-amz-date", value: amzDate))
        all.sort { $0.name < $1.name }
        let signedHeaders = all.map(\.name).joined(separator: ";")
        let canonicalRequest = [
            method,
            path.isEmpty ? "/" : path,
            Self.canonicalQuery(query),
            all.map { "\($0.name):\($0.value)\n" }.joined(),
            signedHeaders,
            payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n\(ContentHash.of(canonicalRequest.utf8).hex)"
        let signature = Hex.lowercase(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: signingKey(day: day)))
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyId)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return [("x-amz-date", amzDate), ("authorization", authorization)]
    }

    /// The key of one day, region and service, derived from the secret as AWS specifies.
    func signingKey(day: String) -> SymmetricKey {
        var key = SymmetricKey(data: Data(("AWS4" + credentials.secretAccessKey).utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        return key
    }

    /// Parameters encoded, then sorted by name and value, as `a=1&b=`.
    static func canonicalQuery(_ query: [(String, String)]) -> String {
        let encoded: [(name: String, value: String)] = query.map { (uriEncode($0.0, keepSlash: false), uriEncode($0.1, keepSlash: false)) }
        let sorted = encoded.sorted { (a: (name: String, value: String), b: (name: String, value: String)) -> Bool in
            a.name == b.name ? a.value < b.value : a.name < b.name
        }
        return sorted.map { $0.name + "=" + $0.value }.joined(separator: "&")
    }

    /// AWS's URI encoding: every byte but `A–Z a–z 0–9 - . _ ~` as `%XY` (upper-case hex);
    /// `/` kept in paths.
    public static func uriEncode(_ text: String, keepSlash: Bool) -> String {
        var out = ""
        for byte in text.utf8 {
            if unreserved.contains(byte) || (keepSlash && byte == 0x2F) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// The bytes AWS never encodes: letters, digits, `-`, `.`, `_` and `~`.
    static let unreserved = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8))

    /// Leading and trailing spaces dropped and inner runs of spaces made one, as AWS signs values.
    static func trim(_ value: String) -> String {
        value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
    }

    /// `20150830T123600Z` and `20150830`, in UTC.
    static func timestamps(_ date: Date) -> (String, String) {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let day = String(format: "%04d%02d%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday))
        return (day + String(format: "T%02d%02d%02dZ", Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec)), day)
    }

}
