import FerryServer
import Foundation
import Logging
import Synchronization
import Testing

/// The metadata backends a test suite runs on: SQLite always, PostgreSQL when
/// `FERRY_TEST_POSTGRES_URL` names a server (`Scripts/test` starts one on loopback).
public enum Backend: String, Sendable, CustomStringConvertible {
    case sqlite, postgres

    public var description: String { rawValue }

    public static var available: [Backend] { adminURL == nil ? [.sqlite] : [.sqlite, .postgres] }

    /// A superuser URL of the test server; each test gets its own database from it.
    public static var adminURL: String? { ProcessInfo.processInfo.environment["FERRY_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 } }

    /// The backend the running test uses (set by the `.eachBackend` trait).
    @TaskLocal public static var current: Backend = .sqlite

    /// The database of each data directory, so a server restarted on the same data
    /// directory finds its metadata again.
    private static let databases = Mutex<[String: String]>([:])

    /// The metadata database of the server on `dataDirectory`: on PostgreSQL a new, empty
    /// database the first time (tests stay independent and can run in parallel), the same
    /// one after; nil on SQLite.
    public static func metadataURL(for dataDirectory: String) async throws -> String? {
        guard current == .postgres else { return nil }
        if let known = databases.withLock({ $0[dataDirectory] }) { return known }
        let url = try await freshDatabase()
        databases.withLock { $0[dataDirectory] = url }
        return url
    }

    /// A new, empty database on the test server; its URL.
    public static func freshDatabase() async throws -> String {
        guard let adminURL else { throw BackendUnavailable() }
        var logger = Logger(label: "ferry-test-postgres")
        logger.logLevel = .critical
        let name = "ferry_t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        return try await PostgresDatabase.createDatabase(named: name, admin: try PostgresURL(adminURL), logger: logger)
    }

    struct BackendUnavailable: Error, CustomStringConvertible {
        var description: String { "the PostgreSQL backend was asked for without FERRY_TEST_POSTGRES_URL" }
    }
}

/// The blob backends a test runs on: the data directory always, an S3 bucket when
/// `FERRY_TEST_S3_ENDPOINT` names one (`Scripts/test` starts SeaweedFS on loopback, with
/// `FERRY_TEST_S3_ACCESS_KEY` and `FERRY_TEST_S3_SECRET_KEY`).
public enum BlobBackend: String, Sendable, CustomStringConvertible {
    case file, s3

    public var description: String { rawValue }

    public static var available: [BlobBackend] { endpoint == nil ? [.file] : [.file, .s3] }

    static var environment: [String: String] { ProcessInfo.processInfo.environment }
    public static var endpoint: String? { environment["FERRY_TEST_S3_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } }
    public static var credentials: SigV4Signer.Credentials {
        SigV4Signer.Credentials(accessKeyId: environment["FERRY_TEST_S3_ACCESS_KEY"] ?? "", secretAccessKey: environment["FERRY_TEST_S3_SECRET_KEY"] ?? "")
    }

    /// The blob backend the running test uses (set by the `.eachBlobBackend` trait).
    @TaskLocal public static var current: BlobBackend = .file

    private static let buckets = Mutex<[String: String]>([:])

    /// Points `configuration` at the current backend: nothing for the data directory, else a
    /// bucket of its own per data directory (made the first time), so a server restarted on
    /// the same data directory finds its blobs again.
    public static func configure(_ configuration: inout ServerConfiguration) async throws {
        guard current == .s3 else { return }
        let dataDirectory = configuration.dataDirectory
        let url: String
        if let known = buckets.withLock({ $0[dataDirectory] }) {
            url = known
        } else {
            url = try await freshBucket()
            buckets.withLock { $0[dataDirectory] = url }
        }
        configuration.blobs.url = url
        configuration.blobs.accessKeyId = credentials.accessKeyId
        configuration.blobs.secretAccessKey = credentials.secretAccessKey
    }

    /// The one bucket tests share, made once per run: a bucket is a collection of volumes to
    /// SeaweedFS, and one per test would use up the volumes a test store has.
    static let bucket = "ferry-tests"

    /// A new, empty place on the test store (a key prefix of its own in the shared bucket);
    /// its `blobs.url`.
    public static func freshBucket() async throws -> String {
        guard let endpoint else { throw BackendUnavailable() }
        let query = "endpoint=\(endpoint)&region=us-east-1&pathStyle=true"
        try await S3Client(location: try S3Location("s3://\(bucket)?\(query)"), credentials: credentials, http: S3Client.sharedHTTP).createBucket()
        return "s3://\(bucket)/t-\(UUID().uuidString.lowercased())?\(query)"
    }

    struct BackendUnavailable: Error, CustomStringConvertible {
        var description: String { "the S3 blob backend was asked for without FERRY_TEST_S3_ENDPOINT" }
    }
}

/// What a suite can run across: each available value in turn, with its task-local set.
public protocol TestDimension: Sendable, CustomStringConvertible {
    static var available: [Self] { get }
    /// Runs `body` with this value as the current one.
    func scope(_ body: @Sendable () async throws -> Void) async throws
    /// How a failure names the value it happened on ("postgres", "s3 blobs").
    var failureLabel: String { get }
}

extension Backend: TestDimension {
    public func scope(_ body: @Sendable () async throws -> Void) async throws { try await Backend.$current.withValue(self, operation: body) }
    public var failureLabel: String { rawValue }
}

extension BlobBackend: TestDimension {
    public func scope(_ body: @Sendable () async throws -> Void) async throws { try await BlobBackend.$current.withValue(self, operation: body) }
    public var failureLabel: String { "\(rawValue) blobs" }
}

/// Runs every test of a suite (or one test) once per available value of `D`; a failure
/// names the value it happened on.
public struct EachOf<D: TestDimension>: TestTrait, SuiteTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        // Suites pass through; their tests (each case of a parameterised one) run per value.
        guard testCase != nil || !test.isSuite else { return try await function() }
        for value in D.available {
            do {
                try await value.scope(function)
            } catch {
                throw DimensionFailure(label: value.failureLabel, underlying: error)
            }
        }
    }
}

public struct DimensionFailure: Error, CustomStringConvertible {
    public let label: String
    public let underlying: any Error
    public var description: String { "on \(label): \(underlying)" }
}

extension Trait where Self == EachOf<Backend> {
    /// Runs the test (or every test of the suite) on SQLite and, when available, PostgreSQL.
    public static var eachBackend: Self { EachOf() }
}

extension Trait where Self == EachOf<BlobBackend> {
    /// Runs the test (or every test of the suite) on file blobs and, when available, S3.
    public static var eachBlobBackend: Self { EachOf() }
}
