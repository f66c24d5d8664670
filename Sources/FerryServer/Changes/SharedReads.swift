import Synchronization

/// Concurrent identical reads share one: the first caller starts it, callers with the same
/// key while it runs wait for that result. Nothing is kept afterwards; the next caller starts
/// a fresh read. One commit wakes every long-poll of its library at once, and each would
/// otherwise run the same change-feed query (docs/scaling.md: 10,000 idle devices). The key
/// must name everything the result depends on, including the head the caller was woken for,
/// so no caller receives a read that began before the change it waited for.
final class SharedReads<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct Flight {
        var read: Task<Value, any Error>
        var callers: Int
    }

    private let flights = Mutex<[Key: Flight]>([:])

    /// The result of `read` for `key`, shared with concurrent callers of the same key. A
    /// caller's cancellation does not cancel the read the others wait for.
    func value(for key: Key, _ read: @escaping @Sendable () async throws -> Value) async throws -> Value {
        let flight = flights.withLock { flights in
            if flights[key] != nil {
                flights[key]!.callers += 1
                return flights[key]!.read
            }
            // The read removes itself once done; it cannot run before this lock is released.
            let started = Task {
                defer { self.flights.withLock { _ = $0.removeValue(forKey: key) } }
                return try await read()
            }
            flights[key] = Flight(read: started, callers: 1)
            return started
        }
        return try await flight.value
    }

    /// Callers of the read running for `key` now, 0 when none runs (for tests).
    func callers(_ key: Key) -> Int { flights.withLock { $0[key]?.callers ?? 0 } }
}
