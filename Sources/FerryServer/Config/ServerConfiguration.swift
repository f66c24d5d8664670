import FerryCore
import Foundation

/// The server's settings: the JSON file given to `ferry-server serve --config`, overridden
/// by command-line flags. Every key is optional; missing keys keep their defaults.
public struct ServerConfiguration: Codable, Sendable, Equatable {
    public var dataDirectory: String = "./ferry-data"
    public var host: String = "127.0.0.1"
    public var port: Int = 8720
    public var storage = Storage()
    public var auth = Auth()
    public var http = HTTP()
    public var webhooks = Webhooks()
    public var tls = TLS()
    public var metrics = Metrics()
    public var security = Security()
    public var metadata = Metadata()
    public var blobs = Blobs()

    public struct Storage: Codable, Sendable, Equatable {
        /// Uploads are refused with 507 when free space would fall below this many bytes.
        public var reserveBytes: Int64 = 1 << 30
        /// `gc` keeps unreferenced chunks uploaded more recently than this (in-flight uploads).
        public var gcGraceSeconds: Double = 24 * 3600
        /// How often the running server applies libraries' retention policies (SPEC §10).
        public var retentionIntervalSeconds: Double = 3600
        public init() {}

        func validate() throws {
            guard (1...7 * 86400).contains(retentionIntervalSeconds) else {
                throw ConfigurationError("storage.retentionIntervalSeconds must be between 1 and 604800 (a week)")
            }
        }
    }

    public struct Auth: Codable, Sendable, Equatable {
        public var pbkdf2Iterations: Int = PasswordHasher.recommendedIterations
        public var accessTokenSeconds: Double = 3600
        public var refreshTokenSeconds: Double = 24 * 3600
        public var sessionDays: Double = 30
        /// A dashboard sign-in (its browser cookie and the server-side session) lasts this long.
        public var dashboardSessionHours: Double = 12
        /// Login attempts per user name and client address before each further one must
        /// wait (1 s, doubling per failure, at most the window); never a hard lock.
        public var loginFailureLimit: Int = 5
        /// Failed attempts older than this are forgotten.
        public var loginFailureWindowSeconds: Double = 300
        /// The first delay after the free attempts; it doubles with each further failure.
        public var loginDelaySeconds: Double = 1
        /// Password checks (PBKDF2) running at once; more wait, up to 64, then get 503.
        public var maxConcurrentPasswordChecks: Int = max(2, ProcessInfo.processInfo.activeProcessorCount)
        public init() {}

        func validate() throws {
            guard pbkdf2Iterations >= 1 else { throw ConfigurationError("auth.pbkdf2Iterations must be at least 1") }
            guard accessTokenSeconds > 0, refreshTokenSeconds > 0, sessionDays > 0 else {
                throw ConfigurationError("auth.accessTokenSeconds, auth.refreshTokenSeconds and auth.sessionDays must be above 0")
            }
            guard dashboardSessionHours > 0, dashboardSessionHours <= 24 * 30 else {
                throw ConfigurationError("auth.dashboardSessionHours must be above 0 and at most 720 (30 days)")
            }
            guard (1...1_000_000).contains(loginFailureLimit) else { throw ConfigurationError("auth.loginFailureLimit must be 1 to 1000000") }
            guard loginFailureWindowSeconds >= 1 else { throw ConfigurationError("auth.loginFailureWindowSeconds must be at least 1") }
            guard loginDelaySeconds > 0, loginDelaySeconds <= loginFailureWindowSeconds else {
                throw ConfigurationError("auth.loginDelaySeconds must be above 0 and at most auth.loginFailureWindowSeconds")
            }
            guard (1...256).contains(maxConcurrentPasswordChecks) else { throw ConfigurationError("auth.maxConcurrentPasswordChecks must be 1 to 256") }
        }
    }

    /// Who may read `GET /metrics`: an administrator's token, or this scrape token.
    public struct Metrics: Codable, Sendable, Equatable {
        /// A bearer token for Prometheus (at least 32 characters); unset, only administrators may scrape.
        public var scrapeToken: String?
        public init() {}

        func validate() throws {
            if let scrapeToken, scrapeToken.utf8.count < 32 || scrapeToken.contains(where: { $0.isWhitespace }) {
                throw ConfigurationError("metrics.scrapeToken must be at least 32 characters without spaces")
            }
        }
    }

    public struct Security: Codable, Sendable, Equatable {
        /// Security log entries older than this many days are removed (daily, and at start).
        public var logRetentionDays: Double = 90
        public init() {}

        func validate() throws {
            guard logRetentionDays >= 1 else { throw ConfigurationError("security.logRetentionDays must be at least 1") }
        }
    }

    public struct HTTP: Codable, Sendable, Equatable {
        /// A connection with no traffic for this long is closed.
        public var idleTimeoutSeconds: Int64 = 60
        /// A request body gets this long from the request's start, plus one second for every
        /// `requestBodyMinRate` bytes that arrive (Apache's mod_reqtimeout rule); past that it
        /// gets 408. A slow link keeps earning time, while a client trickling bytes just fast
        /// enough to dodge the idle timeout cannot hold a connection and a staging file forever.
        public var requestBodyTimeoutSeconds: Int64 = 30
        /// Bytes per second a request body must average to keep extending its time.
        public var requestBodyMinRate: Int = 500
        /// The largest JSON request body (commit batches are the biggest).
        public var maxJSONBodyBytes: Int = 32 << 20
        /// The most chunks one `POST /chunks/batch` may carry (its content is at most 16 MiB).
        public var maxBatchChunks: Int = ServerLimits.current.batchChunks
        /// The most operations one commit may carry; each is applied in the commit's one
        /// transaction, which holds the write lock.
        public var maxCommitOperations: Int = ServerLimits.current.commitOperations
        /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the
        /// client, for the login rate limit and the security log. Empty: nobody's is believed.
        public var trustedProxies: [String] = []
        public init() {}

        /// The bound above which a batch or commit limit is refused: every request of such a
        /// size is held in memory whole.
        static let largestCount = 100_000

        func validate() throws {
            guard idleTimeoutSeconds > 0 else { throw ConfigurationError("http.idleTimeoutSeconds must be above 0") }
            guard requestBodyTimeoutSeconds > 0 else { throw ConfigurationError("http.requestBodyTimeoutSeconds must be above 0") }
            guard requestBodyMinRate > 0 else { throw ConfigurationError("http.requestBodyMinRate must be above 0") }
            guard maxJSONBodyBytes >= 4096 else { throw ConfigurationError("http.maxJSONBodyBytes must be at least 4096") }
            guard (1...Self.largestCount).contains(maxBatchChunks) else {
                throw ConfigurationError("http.maxBatchChunks must be between 1 and \(Self.largestCount)")
            }
            guard (1...Self.largestCount).contains(maxCommitOperations) else {
                throw ConfigurationError("http.maxCommitOperations must be between 1 and \(Self.largestCount)")
            }
            _ = try TrustedProxies(trustedProxies)
        }
    }

    public struct Webhooks: Codable, Sendable, Equatable {
        /// Loopback and private ranges are refused as targets unless this is set.
        public var allowPrivateTargets = false
        /// When not empty, the only host names (or literal addresses) webhooks may target;
        /// any other is refused before it is resolved. For servers whose egress is limited
        /// to known receivers, and for fuzzing the API without reaching the internet.
        public var allowedHosts: [String] = []
        /// Delay before each attempt (the first is normally 0); its length is the number of
        /// attempts. The default is Standard Webhooks' schedule, reaching about a day.
        public var retryBackoffSeconds: [Double] = [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
        /// Deliveries in flight at once, across all endpoints (one per endpoint keeps their order).
        public var maxConcurrentDeliveries = 8
        public var requestTimeoutSeconds: Double = 10
        public init() {}

        func validate() throws {
            guard (1...50).contains(retryBackoffSeconds.count), retryBackoffSeconds.allSatisfy({ (0...7 * 86400).contains($0) }) else {
                throw ConfigurationError("webhooks.retryBackoffSeconds must list 1 to 50 delays of 0 to 604800 seconds")
            }
            guard (1...256).contains(maxConcurrentDeliveries) else { throw ConfigurationError("webhooks.maxConcurrentDeliveries must be 1 to 256") }
            guard requestTimeoutSeconds > 0, requestTimeoutSeconds <= 300 else { throw ConfigurationError("webhooks.requestTimeoutSeconds must be above 0 and at most 300") }
            guard allowedHosts.allSatisfy({ !$0.isEmpty && !$0.contains("/") }) else { throw ConfigurationError("webhooks.allowedHosts must list host names or addresses") }
        }
    }

    /// HTTPS (SPEC §8): on whenever the server binds an address other machines can reach.
    public struct TLS: Codable, Sendable, Equatable {
        /// Serve HTTPS on a loopback address too (`serve --tls`).
        public var enabled = false
        /// Serve plain HTTP on an address other machines reach (`serve --insecure-http`):
        /// passwords, tokens and files then cross the network readable by anyone on it.
        public var insecureHTTP = false
        /// A PEM certificate (leaf first, then any intermediates) and its PEM private key.
        /// Without them the server makes a self-signed one in the data directory. Both are
        /// read again on SIGHUP, so a renewed certificate needs no restart.
        public var certificateFile: String?
        public var keyFile: String?
        public init() {}

        func validate() throws {
            guard !(enabled && insecureHTTP) else {
                throw ConfigurationError("tls.enabled (--tls) and tls.insecureHTTP (--insecure-http) contradict each other; choose one")
            }
            guard (certificateFile == nil) == (keyFile == nil) else {
                throw ConfigurationError("tls.certificateFile and tls.keyFile go together: give both, or neither for a self-signed certificate")
            }
            for (key, path) in [("tls.certificateFile", certificateFile), ("tls.keyFile", keyFile)] {
                if let path, path.isEmpty { throw ConfigurationError("\(key) must be a file path") }
            }
        }
    }

    /// Whether `serve` speaks HTTPS: always on a non-loopback address unless plain HTTP was
    /// asked for explicitly, and on loopback when asked for.
    public var usesTLS: Bool {
        if tls.insecureHTTP { return false }
        return tls.enabled || !LoopbackHost.contains(host)
    }

    /// Where metadata lives: SQLite in the data directory (the default) or PostgreSQL, for
    /// several instances over one database (SPEC §9).
    public struct Metadata: Codable, Sendable, Equatable {
        /// `postgres://USER:PASSWORD@HOST:5432/DBNAME`; unset, `ferry.sqlite` in the data directory.
        public var url: String?
        /// Connections each instance keeps to PostgreSQL at most.
        public var maxConnections: Int = 16
        public init() {}

        /// The PostgreSQL URL, parsed and checked; nil for SQLite.
        public func postgres() throws -> PostgresURL? { try url.map(PostgresURL.init) }

        func validate() throws {
            _ = try postgres()
            guard (1...1000).contains(maxConnections) else { throw ConfigurationError("metadata.maxConnections must be 1 to 1000") }
        }
    }

    /// Where blobs live: files (and small rows) in the data directory (the default) or an
    /// S3-compatible bucket, for several instances over one store (SPEC §9).
    public struct Blobs: Codable, Sendable, Equatable {
        /// `s3://BUCKET[/PREFIX]?endpoint=http://HOST:PORT&region=us-east-1&pathStyle=true`;
        /// unset (or `file://`), the data directory's `blobs/`.
        public var url: String?
        /// The S3 access key; unset, `AWS_ACCESS_KEY_ID` from the environment.
        public var accessKeyId: String?
        /// The S3 secret; unset, `AWS_SECRET_ACCESS_KEY`. Never logged or printed.
        public var secretAccessKey: String?
        public init() {}

        /// The bucket, parsed and checked; nil for the data directory.
        public func s3() throws -> S3Location? {
            guard let url, !url.hasPrefix("file:") else { return nil }
            return try S3Location(url)
        }

        /// The credentials for the bucket, from the configuration or else the environment.
        public func credentials(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SigV4Signer.Credentials {
            guard let id = accessKeyId ?? environment["AWS_ACCESS_KEY_ID"], !id.isEmpty,
                  let secret = secretAccessKey ?? environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty else {
                throw ConfigurationError("blobs.url names an S3 bucket but no credentials: set blobs.accessKeyId and blobs.secretAccessKey, "
                                         + "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
            }
            return SigV4Signer.Credentials(accessKeyId: id, secretAccessKey: secret)
        }

        func validate() throws {
            guard let url else {
                guard accessKeyId == nil && secretAccessKey == nil else { throw ConfigurationError("blobs.accessKeyId and blobs.secretAccessKey need blobs.url") }
                return
            }
            if url.hasPrefix("file:") {
                guard url == "file://" || url == "file:" else {
                    throw ConfigurationError("blobs.url 'file://' takes no path: blobs stay in the data directory (move dataDirectory instead)")
                }
                return
            }
            _ = try s3()
            _ = try credentials()
        }
    }

    public init() {}

    /// Reads a configuration file; unknown keys are an error so typos do not pass silently.
    public static func load(path: String) throws -> ServerConfiguration {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let configuration = try JSONDecoder().decode(ServerConfiguration.self, from: data)
        try configuration.validate()
        return configuration
    }

    /// Checks every section; the first problem is thrown as one sentence naming the key.
    public func validate() throws {
        guard (0...65535).contains(port) else { throw ConfigurationError("port must be 0 to 65535") }
        guard !host.isEmpty else { throw ConfigurationError("host must not be empty") }
        try storage.validate()
        try auth.validate()
        try webhooks.validate()
        try http.validate()
        try metrics.validate()
        try security.validate()
        try tls.validate()
        try metadata.validate()
        try blobs.validate()
    }
}

public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

extension ServerConfiguration {
    enum CodingKeys: String, CodingKey { case dataDirectory, host, port, storage, auth, http, webhooks, metrics, security, tls, metadata, blobs }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self, section: "")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        dataDirectory = try c.decodeIfPresent(String.self, forKey: .dataDirectory) ?? dataDirectory
        host = try c.decodeIfPresent(String.self, forKey: .host) ?? host
        port = try c.decodeIfPresent(Int.self, forKey: .port) ?? port
        storage = try c.decodeIfPresent(Storage.self, forKey: .storage) ?? storage
        auth = try c.decodeIfPresent(Auth.self, forKey: .auth) ?? auth
        http = try c.decodeIfPresent(HTTP.self, forKey: .http) ?? http
        webhooks = try c.decodeIfPresent(Webhooks.self, forKey: .webhooks) ?? webhooks
        metrics = try c.decodeIfPresent(Metrics.self, forKey: .metrics) ?? metrics
        security = try c.decodeIfPresent(Security.self, forKey: .security) ?? security
        tls = try c.decodeIfPresent(TLS.self, forKey: .tls) ?? tls
        metadata = try c.decodeIfPresent(Metadata.self, forKey: .metadata) ?? metadata
        blobs = try c.decodeIfPresent(Blobs.self, forKey: .blobs) ?? blobs
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(dataDirectory, forKey: .dataDirectory)
        try c.encode(host, forKey: .host)
        try c.encode(port, forKey: .port)
        try c.encode(storage, forKey: .storage)
        try c.encode(auth, forKey: .auth)
        try c.encode(http, forKey: .http)
        try c.encode(webhooks, forKey: .webhooks)
        try c.encode(metrics, forKey: .metrics)
        try c.encode(security, forKey: .security)
        try c.encode(tls, forKey: .tls)
        try c.encode(metadata, forKey: .metadata)
        try c.encode(blobs, forKey: .blobs)
    }
}

extension ServerConfiguration.Storage {
    enum CodingKeys: String, CodingKey { case reserveBytes, gcGraceSeconds, retentionIntervalSeconds }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self, section: "storage")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        reserveBytes = try c.decodeIfPresent(Int64.self, forKey: .reserveBytes) ?? reserveBytes
        gcGraceSeconds = try c.decodeIfPresent(Double.self, forKey: .gcGraceSeconds) ?? gcGraceSeconds
        retentionIntervalSeconds = try c.decodeIfPresent(Double.self, forKey: .retentionIntervalSeconds) ?? retentionIntervalSeconds
    }
}

extension ServerConfiguration.Auth {
    enum CodingKeys: String, CodingKey {
        case pbkdf2Iterations, accessTokenSeconds, refreshTokenSeconds, sessionDays, loginFailureLimit, loginFailureWindowSeconds
        case maxConcurrentPasswordChecks, loginDelaySeconds, dashboardSessionHours
    }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self, section: "auth")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        pbkdf2Iterations = try c.decodeIfPresent(Int.self, forKey: .pbkdf2Iterations) ?? pbkdf2Iterations
        accessTokenSeconds = try c.decodeIfPresent(Double.self, forKey: .accessTokenSeconds) ?? accessTokenSeconds
        refreshTokenSeconds = try c.decodeIfPresent(Double.self, forKey: .refreshTokenSeconds) ?? refreshTokenSeconds
        sessionDays = try c.decodeIfPresent(Double.self, forKey: .sessionDays) ?? sessionDays
        loginFailureLimit = try c.decodeIfPresent(Int.self, forKey: .loginFailureLimit) ?? loginFailureLimit
        loginFailureWindowSeconds = try c.decodeIfPresent(Double.self, forKey: .loginFailureWindowSeconds) ?? loginFailureWindowSeconds
        maxConcurrentPasswordChecks = try c.decodeIfPresent(Int.self, forKey: .maxConcurrentPasswordChecks) ?? maxConcurrentPasswordChecks
        loginDelaySeconds = try c.decodeIfPresent(Double.self, forKey: .loginDelaySeconds) ?? loginDelaySeconds
        dashboardSessionHours = try c.decodeIfPresent(Double.self, forKey: .dashboardSessionHours) ?? dashboardSessionHours
    }
}

extension ServerConfiguration.HTTP {
    enum CodingKeys: String, CodingKey {
        case idleTimeoutSeconds, requestBodyTimeoutSeconds, requestBodyMinRate, maxJSONBodyBytes, maxBatchChunks, maxCommitOperations
        case trustedProxies
    }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self, section: "http")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        idleTimeoutSeconds = try c.decodeIfPresent(Int64.self, forKey: .idleTimeoutSeconds) ?? idleTimeoutSeconds
        requestBodyTimeoutSeconds = try c.decodeIfPresent(Int64.self, forKey: .requestBodyTimeoutSeconds) ?? requestBodyTimeoutSeconds
        requestBodyMinRate = try c.decodeIfPresent(Int.self, forKey: .requestBodyMinRate) ?? requestBodyMinRate
        maxJSONBodyBytes = try c.decodeIfPresent(Int.self, forKey: .maxJSONBodyBytes) ?? maxJSONBodyBytes
        maxBatchChunks = try c.decodeIfPresent(Int.self, forKey: .maxBatchChunks) ?? maxBatchChunks
        maxCommitOperations = try c.decodeIfPresent(Int.self, forKey: .maxCommitOperations) ?? maxCommitOperations
        trustedProxies = try c.decodeIfPresent([String].self, forKey: .trustedProxies) ?? trustedProxies
    }
}

extension ServerConfiguration.Webhooks {
    enum CodingKeys: String, CodingKey { case allowPrivateTargets, allowedHosts, retryBackoffSeconds, maxConcurrentDeliveries, requestTimeoutSeconds }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self, section: "webhooks")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        allowPrivateTargets = try c.decodeIfPresent(Bool.self, forKey: .allowPrivateTargets) ?? allowPrivateTargets
        allowedHosts = try c.decodeIfPresent([String].self, forKey: .allowedHosts) ?? allowedHosts
        retryBackoffSeconds = try c.decodeIfPresent([Double].self, forKey: .retryBackoffSeconds) ?? retryBackoffSeconds
        maxConcurrentDeliveries = try c.decodeIfPresent(Int.self, forKey: .maxConcurrentDeliveries) ?? maxConcurrentDeliveries
        requestTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .requestTimeoutSeconds) ?? requestTimeoutSeconds
    }
}

extension ServerConfiguration.Metrics {
    enum CodingKeys: String, CodingKey { case scrapeToken }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self, section: "metrics")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        scrapeToken = try c.decodeIfPresent(String.self, forKey: .scrapeToken)
    }
}

extension ServerConfiguration.Security {
    enum CodingKeys: String, CodingKey { case logRetentionDays }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self, section: "security")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        logRetentionDays = try c.decodeIfPresent(Double.self, forKey: .logRetentionDays) ?? logRetentionDays
    }
}

extension ServerConfiguration.Metadata {
    enum CodingKeys: String, CodingKey { case url, maxConnections }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self, section: "metadata")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        url = try c.decodeIfPresent(String.self, forKey: .url)
        maxConnections = try c.decodeIfPresent(Int.self, forKey: .maxConnections) ?? maxConnections
    }
}

/// A configuration printed or dumped never shows the S3 secret.
extension ServerConfiguration.Blobs: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        "blobs(url: \(url ?? "data directory"), accessKeyId: \(accessKeyId ?? "from environment"), secretAccessKey: \(secretAccessKey == nil ? "from environment" : "(not shown)"))"
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["description": description]) }
}

extension ServerConfiguration.Blobs {
    enum CodingKeys: String, CodingKey { case url, accessKeyId, secretAccessKey }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self, section: "blobs")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        url = try c.decodeIfPresent(String.self, forKey: .url)
        accessKeyId = try c.decodeIfPresent(String.self, forKey: .accessKeyId)
        secretAccessKey = try c.decodeIfPresent(String.self, forKey: .secretAccessKey)
    }
}

/// Any key, to see every key an object has (a keyed container only lists known ones).
private struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Decoder {
    /// A key the configuration does not know is an error, so a typo does not pass silently
    /// (a misspelt `trustedProxies` would otherwise leave the rate limit keyed on the proxy).
    func rejectUnknownKeys<Key: CodingKey>(_ known: Key.Type, section: String) throws {
        let keys = try container(keyedBy: AnyCodingKey.self).allKeys.map(\.stringValue)
        if let unknown = keys.first(where: { Key(stringValue: $0) == nil }) {
            let name = section.isEmpty ? unknown : section + "." + unknown
            throw ConfigurationError("unknown configuration key '\(name)' (see docs/operations.md for the keys)")
        }
    }
}

extension ServerConfiguration.TLS {
    enum CodingKeys: String, CodingKey { case enabled, insecureHTTP, certificateFile, keyFile }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self, section: "tls")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? enabled
        insecureHTTP = try c.decodeIfPresent(Bool.self, forKey: .insecureHTTP) ?? insecureHTTP
        certificateFile = try c.decodeIfPresent(String.self, forKey: .certificateFile)
        keyFile = try c.decodeIfPresent(String.self, forKey: .keyFile)
    }
}
