import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO

/// The connection pool of the PostgreSQL metadata store, its schema migrations and its
/// durability check (SPEC §6, §9). Owns the pool's run loop: it ends when this is released.
public final class PostgresDatabase: Sendable {
    public let url: PostgresURL
    let client: PostgresClient
    let logger: Logger
    private let runner: Task<Void, Never>

    /// Connections each instance may hold: commits of different libraries run in parallel,
    /// and a long transaction (gc) must not starve the rest.
    public static let defaultConnections = 16

    public init(url: PostgresURL, connections: Int = defaultConnections, logger: Logger) {
        self.url = url
        self.logger = logger
        let client = PostgresClient(configuration: Self.clientConfiguration(url, connections: connections), backgroundLogger: logger)
        self.client = client
        self.runner = Task { await client.run() }
    }

    deinit { runner.cancel() }

    static func tls(_ mode: PostgresURL.TLSMode) -> PostgresClient.Configuration.TLS {
        switch mode {
        case .disable: .disable
        case .prefer: .prefer(.makeClientConfiguration())
        case .require: .require(.makeClientConfiguration())
        }
    }

    /// Every connection commits with `synchronous_commit=on` (read back by `verifyDurability`).
    static func clientConfiguration(_ url: PostgresURL, connections: Int) -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(host: url.host, port: url.port, username: url.username, password: url.password,
                                                         database: url.database, tls: tls(url.tls))
        configuration.options.additionalStartupParameters = [("synchronous_commit", "on"), ("application_name", "ferry-server")]
        configuration.options.maximumConnections = connections
        return configuration
    }

    /// A connection outside the pool (the LISTEN connection), with the same settings.
    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS = switch url.tls {
        case .disable: .disable
        case .prefer: .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        case .require: .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        var configuration = PostgresConnection.Configuration(host: url.host, port: url.port, username: url.username, password: url.password,
                                                             database: url.database, tls: tls)
        configuration.options.additionalStartupParameters = [("application_name", "ferry-server-listen")]
        return configuration
    }

    /// Runs `body` on a pooled connection, outside a transaction.
    func read<T>(_ body: (PostgresConnection) async throws -> sending T) async throws -> sending T {
        try await client.withConnection(body)
    }

    /// Runs `body` in a transaction; retried (at most three times in all) when PostgreSQL
    /// aborts it as a deadlock victim or a serialization failure, so `body` must be safe to
    /// run again.
    func write<T>(_ body: (PostgresConnection) async throws -> sending T) async throws -> sending T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await client.withTransaction(logger: logger, body)
            } catch let error as PostgresTransactionError {
                // What the transaction's own code threw (a MetadataError, a unique violation)
                // is the caller's error; the wrapper only says the rollback went well.
                let cause = error.closureError ?? error.commitError ?? error.beginError ?? error
                if attempt < 3, Self.isRetryable(cause) {
                    logger.debug("retrying a transaction", metadata: ["sqlstate": "\(Self.sqlState(cause) ?? "")"])
                    continue
                }
                throw cause
            }
        }
    }

    static func isRetryable(_ error: any Error) -> Bool { ["40P01", "40001"].contains(sqlState(error) ?? "") }

    /// The SQLSTATE of a server error (`23505` a unique violation…), if it is one.
    static func sqlState(_ error: any Error) -> String? {
        if let error = error as? PostgresTransactionError, let cause = error.closureError ?? error.commitError { return sqlState(cause) }
        return (error as? PSQLError)?.serverInfo?[.sqlState]
    }

    // MARK: Start-up

    /// Waits for the server (up to `timeout`), migrates the schema under an advisory lock (one
    /// instance migrates, the others wait and find nothing left to do) and checks durability.
    public func prepare(timeout: Duration = .seconds(30)) async throws {
        // One connection of our own first: the pool retries every failure silently, a
        // wrong password or database included. A server not up yet is waited for.
        let deadline = ContinuousClock.now + timeout
        let configuration = try connectionConfiguration()
        while true {
            do {
                let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
                try? await connection.close()
                break
            } catch {
                if Self.sqlState(error) != nil {
                    throw PostgresStoreError("cannot use PostgreSQL at \(url.redacted): \(Self.describe(error))")
                }
                guard ContinuousClock.now + .milliseconds(200) < deadline else {
                    throw PostgresStoreError("cannot reach PostgreSQL at \(url.redacted) within \(timeout): \(Self.describe(error))")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        try await migrate()
        try await verifyDurability()
    }

    /// Refuses to run on a server or connection that could lose acknowledged commits.
    func verifyDurability() async throws {
        let (synchronousCommit, fsync) = try await read { connection in
            let sync = try await Self.scalar(connection, "SHOW synchronous_commit", as: String.self, logger: logger) ?? ""
            let fsync = try await Self.scalar(connection, "SHOW fsync", as: String.self, logger: logger) ?? ""
            return (sync, fsync)
        }
        guard ["on", "remote_apply", "remote_write"].contains(synchronousCommit), fsync == "on" else {
            throw PostgresStoreError(
                "PostgreSQL durability check failed: synchronous_commit=\(synchronousCommit), fsync=\(fsync) (need synchronous_commit=on and fsync=on)")
        }
    }

    /// Key of the session-level advisory lock held while migrating.
    static let migrationLock: Int64 = 0x6665_7272_795f_6d67  // "ferry_mg"

    func migrate() async throws {
        let logger = self.logger
        try await client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(Self.migrationLock))", logger: logger)
            do {
                try await connection.query("""
                    CREATE TABLE IF NOT EXISTS schema_migration (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                    """, logger: logger)
                var applied = Set<String>()
                for try await name in try await connection.query("SELECT name FROM schema_migration", logger: logger).decode(String.self) {
                    applied.insert(name)
                }
                for (name, statements) in PostgresSchema.migrations where !applied.contains(name) {
                    try await connection.withTransaction(logger: logger) { tx in
                        for statement in statements {
                            try await tx.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                        }
                        try await tx.query("INSERT INTO schema_migration (name) VALUES (\(name))", logger: logger)
                    }
                    logger.info("migrated the PostgreSQL schema", metadata: ["migration": "\(name)"])
                }
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger)
                throw error
            }
            try await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger)
        }
    }

    // MARK: Helpers

    /// The first column of the first row, if any.
    static func scalar<T: PostgresDecodable>(_ connection: PostgresConnection, _ query: PostgresQuery, as _: T.Type, logger: Logger) async throws -> T? {
        for try await value in try await connection.query(query, logger: logger).decode(T.self) { return value }
        return nil
    }

    /// The first column of every row.
    static func column<T: PostgresDecodable>(_ connection: PostgresConnection, _ query: PostgresQuery, as _: T.Type, logger: Logger) async throws -> [T] {
        var out: [T] = []
        for try await value in try await connection.query(query, logger: logger).decode(T.self) { out.append(value) }
        return out
    }

    /// Every row, as random-access rows.
    static func rows(_ connection: PostgresConnection, _ query: PostgresQuery, logger: Logger) async throws -> [PostgresRandomAccessRow] {
        try await connection.query(query, logger: logger).collect().map { $0.makeRandomAccess() }
    }

    /// The first row, if any.
    static func row(_ connection: PostgresConnection, _ query: PostgresQuery, logger: Logger) async throws -> PostgresRandomAccessRow? {
        try await rows(connection, query, logger: logger).first
    }

    /// Rows affected by an UPDATE or DELETE (`query(...)` then drain, counting `RETURNING 1`).
    static func count(_ connection: PostgresConnection, _ query: PostgresQuery, logger: Logger) async throws -> Int {
        try await connection.query(query, logger: logger).collect().count
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            return "\(error.code)"
        }
        return "\(error)"
    }
}

/// A failure of the PostgreSQL store that is not the caller's fault; one sentence.
public struct PostgresStoreError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

extension PostgresRandomAccessRow {
    /// The column `name`, decoded (an Optional type for a nullable column).
    func get<T: PostgresDecodable>(_ name: String, as _: T.Type = T.self) throws -> T {
        try self[name].decode(T.self)
    }
}

extension PostgresDatabase {
    /// Creates an empty database `name` (letters, digits and `_`) on the server `admin` names,
    /// and returns its URL: for tests and for `migrate` into a fresh server.
    public static func createDatabase(named name: String, admin: PostgresURL, logger: Logger) async throws -> String {
        try checkDatabaseName(name)
        let database = PostgresDatabase(url: admin, connections: 1, logger: logger)
        try await database.read { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \"\(name)\""), logger: logger)
        }
        var url = admin
        url.database = name
        return url.string
    }

    /// Drops the database `name` on the server `admin` names, closing any connection still
    /// open to it (`WITH (FORCE)`, PostgreSQL 13 or later); one that is gone already is fine.
    /// For benchmarks and tests that made it with `createDatabase`.
    public static func dropDatabase(named name: String, admin: PostgresURL, logger: Logger) async throws {
        try checkDatabaseName(name)
        let database = PostgresDatabase(url: admin, connections: 1, logger: logger)
        _ = try await database.read { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \"\(name)\" WITH (FORCE)"), logger: logger)
        }
    }

    /// A name `CREATE DATABASE` and `DROP DATABASE` may quote as they are: 1 to 63 letters,
    /// digits or underscores.
    static func checkDatabaseName(_ name: String) throws {
        guard !name.isEmpty, name.utf8.count <= 63, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw PostgresStoreError("a database name must be 1 to 63 letters, digits or underscores")
        }
    }
}
