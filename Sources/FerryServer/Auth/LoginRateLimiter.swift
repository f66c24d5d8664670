import Foundation
import Synchronization

/// Counts failed logins per user name and per client address in a sliding window; over
/// the limit, further attempts are refused until the oldest failure leaves the window.
/// Memory is bounded: at most `maxKeys` keys are tracked, oldest evicted first.
public final class LoginRateLimiter: Sendable {
    public let maxFailures: Int
    public let window: TimeInterval
    let maxKeys: Int
    private let failures = Mutex<[String: [Date]]>([:])

    public init(maxFailures: Int = 5, window: TimeInterval = 300, maxKeys: Int = 100_000) {
        self.maxFailures = maxFailures
        self.window = window
        self.maxKeys = maxKeys
    }

    /// Seconds to wait if any of `keys` is over the limit, else nil.
    public func retryAfter(keys: [String], now: Date = Date()) -> Int? {
        failures.withLock { table in
            keys.compactMap { key -> Int? in
                let recent = (table[key] ?? []).filter { now.timeIntervalSince($0) < window }
                guard recent.count >= maxFailures, let oldest = recent.first else { return nil }
                return max(1, Int((window - now.timeIntervalSince(oldest)).rounded(.up)))
            }.max()
        }
    }

    /// Records a failed attempt against each key.
    public func recordFailure(keys: [String], now: Date = Date()) {
        failures.withLock { table in
            for key in keys {
                var list = (table[key] ?? []).filter { now.timeIntervalSince($0) < window }
                list.append(now)
                table[key] = list
            }
            if table.count > maxKeys {
                // Drop keys whose failures are all outside the window, then the stalest.
                table = table.filter { $0.value.contains { now.timeIntervalSince($0) < window } }
                while table.count > maxKeys, let stalest = table.min(by: { ($0.value.last ?? .distantPast) < ($1.value.last ?? .distantPast) }) {
                    table.removeValue(forKey: stalest.key)
                }
            }
        }
    }

    /// Forgets a user's failures after a successful login (the address keeps its count).
    public func reset(key: String) {
        _ = failures.withLock { $0.removeValue(forKey: key) }
    }
}
