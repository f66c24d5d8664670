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

/// Runs every test of a suite (or one test) once per available backend, each run with
/// `Backend.current` set; a failure names the backend it happened on.
public struct EachBackend: TestTrait, SuiteTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        // Suites pass through; their tests (each case of a parameterised one) run per backend.
        guard testCase != nil || !test.isSuite else { return try await function() }
        for backend in Backend.available {
            do {
                try await Backend.$current.withValue(backend) { try await function() }
            } catch {
                throw BackendFailure(backend: backend, underlying: error)
            }
        }
    }
}

public struct BackendFailure: Error, CustomStringConvertible {
    public let backend: Backend
    public let underlying: any Error
    public var description: String { "on \(backend): \(underlying)" }
}

extension Trait where Self == EachBackend {
    /// Runs the test (or every test of the suite) on SQLite and, when available, PostgreSQL.
    public static var eachBackend: Self { EachBackend() }
}
