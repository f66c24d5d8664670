import Foundation
import Synchronization

/// Slows password guessing without letting anyone lock a user out.
///
/// Attempts are counted per key in a sliding window: the pair (user name, client address)
/// and the address alone (one address trying many names). The first `freeAttempts` of a
/// key cost nothing; after that every attempt must wait for a delay that doubles with each
/// failure, up to `maxDelay`. Nobody else's failures ever delay a user at another address,
/// so a stranger cannot lock the owner out (a hard per-name lock let anyone do that).
///
/// An attempt is *reserved* before its password is hashed, counting as a failure until it
/// succeeds, all under one lock: parallel attempts cannot slip past the limit while the
/// first ones are still being hashed (30 parallel logins used to get 30 tries, not 5).
///
/// The rules are pure functions over the keys' records (`reserve(_:keys:now:)`,
/// `succeeded(_:ticket:)`); this class keeps the records in memory for one box, and
/// `PostgresLoginLedger` keeps them in PostgreSQL for instances that share the limits.
public final class LoginRateLimiter: LoginAttemptLedger {
    public struct Settings: Sendable, Equatable {
        /// Attempts per (name, address) before delays start.
        public var freeAttempts: Int
        /// Attempts per address, across names, before delays start.
        public var freeAttemptsPerAddress: Int
        /// Failures older than this are forgotten.
        public var window: TimeInterval
        /// The first delay; each further failure doubles it.
        public var baseDelay: TimeInterval
        public var maxDelay: TimeInterval

        public init(freeAttempts: Int = 5, freeAttemptsPerAddress: Int? = nil, window: TimeInterval = 300,
                    baseDelay: TimeInterval = 1, maxDelay: TimeInterval? = nil) {
            self.freeAttempts = max(1, freeAttempts)
            self.freeAttemptsPerAddress = max(1, freeAttemptsPerAddress ?? 4 * freeAttempts)
            self.window = window
            self.baseDelay = baseDelay
            self.maxDelay = maxDelay ?? window
        }

        /// The wait after the `failures`-th failure of a key allowed `free` attempts.
        func delay(afterFailures failures: Int, free: Int) -> TimeInterval {
            guard failures >= free else { return 0 }
            let doublings = min(failures - free, 40)
            return min(maxDelay, baseDelay * pow(2, Double(doublings)))
        }
    }

    /// A reserved attempt: report how it ended with `succeeded` (a failure needs nothing).
    public struct Ticket: Sendable, Equatable {
        let keys: [Key]
        let at: Date
    }

    struct Key: Hashable, Sendable {
        let name: String
        let free: Int
    }

    struct Record: Sendable {
        var failures: [Date] = []
        var nextAllowed: Date = .distantPast
    }

    public let settings: Settings
    let maxKeys: Int
    private let table = Mutex<[Key: Record]>([:])

    public init(settings: Settings = Settings(), maxKeys: Int = 100_000) {
        self.settings = settings
        self.maxKeys = maxKeys
    }

    /// The keys an attempt for `username` from `address` counts against.
    func keys(username: String, address: String) -> [Key] { Self.keys(username: username, address: address, settings: settings) }

    static func keys(username: String, address: String, settings: Settings) -> [Key] {
        [Key(name: "pair:\(address)\u{0}\(username)", free: settings.freeAttempts),
         Key(name: "addr:\(address)", free: settings.freeAttemptsPerAddress)]
    }

    /// Reserves an attempt for `username` from `address`, or answers how many seconds to wait.
    public func reserve(username: String, address: String, now: Date = Date()) -> Result<Ticket, RetryAfter> {
        let keys = keys(username: username, address: address)
        return table.withLock { table in
            let result = Self.reserve(&table, keys: keys, now: now, settings: settings)
            evict(&table, now: now)
            return result
        }
    }

    /// The attempt was right: the pair forgets its failures, the address only this attempt.
    public func succeeded(_ ticket: Ticket) {
        table.withLock { Self.succeeded(&$0, ticket: ticket, settings: settings) }
    }

    /// The attempt was never judged (the server was too busy to check it, or failed): it
    /// stops counting, and nothing else is forgotten.
    public func withdraw(_ ticket: Ticket) {
        table.withLock { Self.withdrawn(&$0, ticket: ticket, settings: settings) }
    }

    /// The rule of a reservation, on the records of `keys` (missing ones are empty): failures
    /// past the window are forgotten; a key past its free attempts must have reached its
    /// `nextAllowed`; the attempt then counts as a failure of every key until it succeeds.
    static func reserve(_ records: inout [Key: Record], keys: [Key], now: Date, settings: Settings) -> Result<Ticket, RetryAfter> {
        var wait: TimeInterval = 0
        for key in keys {
            var record = records[key] ?? Record()
            record.failures.removeAll { now.timeIntervalSince($0) >= settings.window }
            records[key] = record
            if record.failures.count >= key.free { wait = max(wait, record.nextAllowed.timeIntervalSince(now)) }
        }
        if wait > 0 { return .failure(RetryAfter(seconds: max(1, Int(wait.rounded(.up))))) }
        for key in keys {
            var record = records[key]!
            record.failures.append(now)
            record.nextAllowed = now.addingTimeInterval(settings.delay(afterFailures: record.failures.count, free: key.free))
            records[key] = record
        }
        return .success(Ticket(keys: keys, at: now))
    }

    /// The rule of a success: the pair's record goes, the others lose this attempt's failure.
    static func succeeded(_ records: inout [Key: Record], ticket: Ticket, settings: Settings) {
        guard let pair = ticket.keys.first else { return }
        records.removeValue(forKey: pair)
        for key in ticket.keys.dropFirst() { forget(ticket, key: key, in: &records, settings: settings) }
    }

    /// The rule of a withdrawal: every key loses this attempt's failure, and only that.
    static func withdrawn(_ records: inout [Key: Record], ticket: Ticket, settings: Settings) {
        for key in ticket.keys { forget(ticket, key: key, in: &records, settings: settings) }
    }

    private static func forget(_ ticket: Ticket, key: Key, in table: inout [Key: Record], settings: Settings) {
        guard var record = table[key] else { return }
        if let i = record.failures.lastIndex(of: ticket.at) { record.failures.remove(at: i) }
        record.nextAllowed = record.failures.last.map {
            $0.addingTimeInterval(settings.delay(afterFailures: record.failures.count, free: key.free))
        } ?? .distantPast
        table[key] = record
    }

    /// Bounds memory: keys with no failure left in the window go first, then the stalest.
    private func evict(_ table: inout [Key: Record], now: Date) {
        guard table.count > maxKeys else { return }
        table = table.filter { $0.value.failures.contains { now.timeIntervalSince($0) < settings.window } }
        while table.count > maxKeys, let stalest = table.min(by: { ($0.value.failures.last ?? .distantPast) < ($1.value.failures.last ?? .distantPast) }) {
            table.removeValue(forKey: stalest.key)
        }
    }

    public struct RetryAfter: Error, Sendable, Equatable {
        public let seconds: Int
    }
}

/// Where the login rate limiter's state lives: in memory on one box, in PostgreSQL when
/// instances share the limits (SPEC §9). Reservations are atomic per attempt.
public protocol LoginAttemptLedger: Sendable {
    var settings: LoginRateLimiter.Settings { get }
    /// Reserves an attempt for `username` from `address`, or answers how many seconds to wait.
    func reserve(username: String, address: String, now: Date) async throws -> Result<LoginRateLimiter.Ticket, LoginRateLimiter.RetryAfter>
    /// The reserved attempt was right.
    func succeeded(_ ticket: LoginRateLimiter.Ticket) async throws
    /// The reserved attempt was never judged: it stops counting.
    func withdraw(_ ticket: LoginRateLimiter.Ticket) async throws
}
