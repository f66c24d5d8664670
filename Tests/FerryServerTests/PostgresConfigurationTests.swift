import FerryCore
import Foundation
import Logging
import Testing

@testable import FerryServer

/// `metadata.url` and friends: every bad value is refused at start-up with one sentence
/// naming the key; a good one parses to what the pool connects with.
@Suite("PostgreSQL configuration")
struct PostgresConfigurationTests {
    @Test func aGoodURLParsesWithItsPasswordDecodedAndRedactedInLogs() throws {
        let url = try PostgresURL("postgres://ferry:p%40ss%3Aword@db.internal:6543/ferry_main?sslmode=require")
        #expect(url.username == "ferry" && url.password == "p@ss:word" && url.host == "db.internal" && url.port == 6543)
        #expect(url.database == "ferry_main" && url.tls == .require)
        #expect(!url.redacted.contains("p@ss") && url.redacted == "postgres://ferry@db.internal:6543/ferry_main")
        #expect(try PostgresURL(url.string) == url)
        #expect(try PostgresURL("postgresql://u@127.0.0.1/db").port == 5432)
        #expect(try PostgresURL("postgresql://u@127.0.0.1/db").tls == .prefer)
    }

    @Test(arguments: [
        ("mysql://u:p@h/db", "must start with postgres://"),
        ("postgres://h/db", "names no user"),
        ("postgres://u@/db", "names no host"),
        ("postgres://u@h", "must name one database"),
        ("postgres://u@h/a/b", "must name one database"),
        ("postgres://u@h:0/db", "port must be 1 to 65535"),
        ("postgres://u@h/db?timeout=3", "unknown parameter 'timeout'"),
        ("postgres://u@h/db?sslmode=verify-full", "sslmode must be disable, prefer or require"),
        ("not a url at all", "metadata.url"),
    ])
    func badURLsAreRefusedNamingTheKey(_ text: String, _ mentions: String) {
        do {
            _ = try PostgresURL(text)
            Issue.record("'\(text)' was accepted")
        } catch {
            let message = "\(error)"
            #expect(message.contains(mentions) && message.contains("metadata.url"), "\(message)")
        }
    }

    @Test func theMetadataSectionIsValidatedAndRejectsUnknownKeys() throws {
        func load(_ json: String) throws -> ServerConfiguration {
            let configuration = try JSONDecoder().decode(ServerConfiguration.self, from: Data(json.utf8))
            try configuration.validate()
            return configuration
        }
        #expect(try load(#"{"metadata": {"url": "postgres://u@h/db", "maxConnections": 4}}"#).metadata.postgres()?.database == "db")
        #expect(try load("{}").metadata.postgres() == nil)
        #expect(throws: ConfigurationError.self) { try load(#"{"metadata": {"uri": "postgres://u@h/db"}}"#) }
        #expect(throws: ConfigurationError.self) { try load(#"{"metadata": {"url": "sqlite:///x"}}"#) }
        #expect(throws: ConfigurationError.self) { try load(#"{"metadata": {"maxConnections": 0}}"#) }
        do { _ = try load(#"{"metadata": {"uri": "x"}}"#) } catch { #expect("\(error)".contains("'metadata.uri'")) }
    }

    /// An unreachable database stops start-up with a sentence naming it (without its password).
    @Test func anUnreachableDatabaseIsReportedWithoutItsPassword() async throws {
        var logger = Logger(label: "ferry-test")
        logger.logLevel = .critical
        let database = PostgresDatabase(url: try PostgresURL("postgres://u:secret@127.0.0.1:1/db?sslmode=disable"), connections: 1, logger: logger)
        do {
            try await database.prepare(timeout: .milliseconds(300))
            Issue.record("prepare succeeded against a closed port")
        } catch {
            #expect("\(error)".contains("cannot reach PostgreSQL at postgres://u@127.0.0.1:1/db") && !"\(error)".contains("secret"), "\(error)")
        }
    }
}

extension PostgresConfigurationTests {
    /// A wrong password is one sentence naming the database, not a driver dump.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["FERRY_TEST_POSTGRES_URL"] != nil))
    func aWrongPasswordIsReportedPlainly() async throws {
        var url = try PostgresURL(ProcessInfo.processInfo.environment["FERRY_TEST_POSTGRES_URL"]!)
        url.password = "not-the-password"
        var logger = Logger(label: "ferry-test")
        logger.logLevel = .critical
        do {
            try await PostgresDatabase(url: url, connections: 1, logger: logger).prepare(timeout: .seconds(10))
            Issue.record("a wrong password was accepted")
        } catch {
            #expect("\(error)".hasPrefix("cannot use PostgreSQL at \(url.redacted)") && !"\(error)".contains("not-the-password"), "\(error)")
        }
    }
}
