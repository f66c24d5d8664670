import Foundation

/// Where the S3 blob store lives, parsed from `blobs.url`
/// (`s3://BUCKET[/PREFIX]?endpoint=http://HOST:PORT&region=us-east-1&pathStyle=true`).
public struct S3Location: Sendable, Equatable {
    public var bucket: String
    /// Prepended to every key (`PREFIX/`), empty for the bucket's root.
    public var prefix: String
    /// `http://host:port` or `https://host:port`, without a path.
    public var endpoint: String
    public var region: String
    /// Path-style addressing (`endpoint/bucket/key`, what MinIO, SeaweedFS, Ceph and Garage
    /// expect) or virtual-hosted (`bucket.endpoint/key`, AWS's default).
    public var pathStyle: Bool

    /// Parses and checks a URL; every problem is one sentence naming `blobs.url`.
    public init(_ text: String) throws {
        guard let components = URLComponents(string: text), components.scheme?.lowercased() == "s3" else {
            throw ConfigurationError("blobs.url must be s3://BUCKET?endpoint=http://HOST:PORT&region=REGION&pathStyle=true (or leave it out for the data directory)")
        }
        guard let bucket = components.host, Self.isBucketName(bucket) else {
            throw ConfigurationError("blobs.url names no valid bucket (3 to 63 lower-case letters, digits, dots and hyphens)")
        }
        self.bucket = bucket
        let path = components.path.split(separator: "/").joined(separator: "/")
        self.prefix = path.isEmpty ? "" : path + "/"
        var endpoint: String?, region = "us-east-1", pathStyle = true
        for item in components.queryItems ?? [] {
            switch item.name {
            case "endpoint": endpoint = item.value
            case "region":
                guard let value = item.value, !value.isEmpty else { throw ConfigurationError("blobs.url's region is empty") }
                region = value
            case "pathStyle":
                guard let value = item.value.flatMap(Bool.init) else { throw ConfigurationError("blobs.url's pathStyle must be true or false") }
                pathStyle = value
            default:
                throw ConfigurationError("blobs.url has an unknown parameter '\(item.name)' (endpoint, region and pathStyle are read)")
            }
        }
        let resolved = endpoint ?? "https://s3.\(region).amazonaws.com"
        guard let url = URLComponents(string: resolved), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty, url.path.isEmpty || url.path == "/", url.query == nil else {
            throw ConfigurationError("blobs.url's endpoint must be http://HOST[:PORT] or https://HOST[:PORT] with no path")
        }
        self.endpoint = "\(scheme)://\(url.percentEncodedHost ?? host)" + (url.port.map { ":\($0)" } ?? "")
        self.region = region
        self.pathStyle = pathStyle
    }

    /// The host header and the path of `key` (already percent-encoded), for either addressing.
    func target(key: String) -> (url: String, host: String, path: String) {
        let endpointHost = String(endpoint.drop(while: { $0 != "/" }).dropFirst(2))
        let encodedKey = SigV4Signer.uriEncode(key, keepSlash: true)
        if pathStyle {
            let path = "/\(bucket)" + (key.isEmpty ? "" : "/" + encodedKey)
            return (endpoint + path, endpointHost, path)
        }
        let scheme = endpoint.prefix(while: { $0 != ":" })
        let host = "\(bucket).\(endpointHost)"
        let path = "/" + encodedKey
        return ("\(scheme)://\(host)\(path)", host, path)
    }

    static func isBucketName(_ name: String) -> Bool {
        (3...63).contains(name.utf8.count) && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || $0 == 0x2D }
    }
}
