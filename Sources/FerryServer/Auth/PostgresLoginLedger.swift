import FerryCore
import Crypto
import Foundation
import PostgresNIO
import Synchronization

/// The login rate limiter's records in PostgreSQL, shared by every instance (SPEC §9): a
/// reservation reads its keys' rows `FOR UPDATE`, applies `LoginRateLimiter`'s rule and
/// writes them back in one transaction, so parallel attempts on different instances cannot
/// slip past the limit together. Keys are stored hashed (a key holds a NUL and a user name).
public final class PostgresLoginLedger: LoginAttemptLedger {
    let database: PostgresDatabase
    public let settings: LoginRateLimiter.Settings
    /// Reservations since the last sweep of stale rows.
    private let sinceSweep = Mutex(0)

    public init(database: PostgresDatabase, settings: LoginRateLimiter.Settings) {
        self.database = database
        self.settings = settings
    }

    public func reserve(username: String, address: String, now: Date) async throws -> Result<LoginRateLimiter.Ticket, LoginRateLimiter.RetryAfter> {
        let now = Self.date(Self.micros(now))
        let keys = LoginRateLimiter.keys(username: username, address: address, settings: settings)
        let sweep = sinceSweep.withLock { n in
            n += 1
            if n >= 256 { n = 0; return true }
            return false
        }
        return try await database.write { connection in
            var records = try await load(keys, connection)
            let result = LoginRateLimiter.reserve(&records, keys: keys, now: now, settings: settings)
            try await store(records, keys: keys, connection)
            if sweep {
                let cutoff = Self.micros(now.addingTimeInterval(-settings.window - settings.maxDelay))
                try await connection.query("""
                    DELETE FROM login_attempt WHERE next_allowed < \(cutoff) AND coalesce(failures[array_upper(failures, 1)], 0) < \(cutoff)
                    """, logger: database.logger)
            }
            return result
        }
    }

    public func succeeded(_ ticket: LoginRateLimiter.Ticket) async throws {
        try await database.write { connection in
            var records = try await load(ticket.keys, connection)
            LoginRateLimiter.succeeded(&records, ticket: ticket, settings: settings)
            try await store(records, keys: ticket.keys, connection)
        }
    }

    public func withdraw(_ ticket: LoginRateLimiter.Ticket) async throws {
        try await database.write { connection in
            var records = try await load(ticket.keys, connection)
            LoginRateLimiter.withdrawn(&records, ticket: ticket, settings: settings)
            try await store(records, keys: ticket.keys, connection)
        }
    }

    /// The keys' records, their rows locked (created first, so there is a row to lock), in
    /// one order for every transaction.
    private func load(_ keys: [LoginRateLimiter.Key], _ connection: PostgresConnection) async throws -> [LoginRateLimiter.Key: LoginRateLimiter.Record] {
        let names = keys.map { Self.stored($0.name) }
        try await connection.query("""
            INSERT INTO login_attempt (key, failures, next_allowed) SELECT k, '{}', 0 FROM unnest(\(names.sorted())::text[]) AS k
            ON CONFLICT (key) DO NOTHING
            """, logger: database.logger)
        var records: [LoginRateLimiter.Key: LoginRateLimiter.Record] = [:]
        let rows = try await PostgresDatabase.rows(connection, """
            SELECT key, failures, next_allowed FROM login_attempt WHERE key = ANY(\(names)::text[]) ORDER BY key FOR UPDATE
            """, logger: database.logger)
        for row in rows {
            let name: String = try row.get("key")
            guard let key = keys.first(where: { Self.stored($0.name) == name }) else { continue }
            let failures: [Int64] = try row.get("failures")
            let next: Int64 = try row.get("next_allowed")
            records[key] = LoginRateLimiter.Record(failures: failures.map(Self.date), nextAllowed: next == 0 ? .distantPast : Self.date(next))
        }
        return records
    }

    private func store(_ records: [LoginRateLimiter.Key: LoginRateLimiter.Record], keys: [LoginRateLimiter.Key], _ connection: PostgresConnection) async throws {
        for key in keys {
            let name = Self.stored(key.name)
            if let record = records[key] {
                let next = record.nextAllowed == .distantPast ? 0 : Self.micros(record.nextAllowed)
                try await connection.query("""
                    UPDATE login_attempt SET failures = \(record.failures.map(Self.micros)), next_allowed = \(next) WHERE key = \(name)
                    """, logger: database.logger)
            } else {
                try await connection.query("DELETE FROM login_attempt WHERE key = \(name)", logger: database.logger)
            }
        }
    }

    static func stored(_ name: String) -> String { Hex.lowercase(SHA256.hash(data: Data(name.utf8))) }
    static func micros(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1e6).rounded()) }
    static func date(_ micros: Int64) -> Date { Date(timeIntervalSince1970: Double(micros) / 1e6) }
}
