import Foundation
import Synchronization

/// Bounds expensive work in flight: at most `perKey` runs for one key and `total` overall,
/// with at most `maxWaiting` callers queued behind them (first come, first served). Past
/// that the caller is told the server is busy instead of queueing without bound, so a flood
/// costs a bounded amount of CPU and memory and one key's flood cannot take every slot.
/// Used for password checks (keyed by name and address) and for decoding large JSON bodies
/// (keyed by user).
public final class ConcurrencyGate: Sendable {
    public let total: Int
    public let perKey: Int
    public let maxWaiting: Int

    private struct Waiter {
        let id: UInt64
        let key: String
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var running = 0
        var runningPerKey: [String: Int] = [:]
        var waiting: [Waiter] = []
        var nextId: UInt64 = 0

        func canStart(_ key: String, total: Int, perKey: Int) -> Bool {
            running < total && runningPerKey[key, default: 0] < perKey
        }

        mutating func start(_ key: String) {
            running += 1
            runningPerKey[key, default: 0] += 1
        }
    }

    private let state = Mutex(State())

    public struct Busy: Error, Sendable {}

    public init(total: Int, perKey: Int = 1, maxWaiting: Int = 64) {
        self.total = max(1, total)
        self.perKey = max(1, perKey)
        self.maxWaiting = max(0, maxWaiting)
    }

    /// Runs `body` once a slot for `key` is free; throws `Busy` when too many wait already.
    public func run<T: Sendable>(key: String, _ body: () async throws -> T) async throws -> T {
        try await acquire(key)
        defer { release(key) }
        return try await body()
    }

    /// How many callers are running right now (for tests).
    public var running: Int { state.withLock { $0.running } }
    /// How many callers wait for a slot right now (for tests).
    public var waiting: Int { state.withLock { $0.waiting.count } }

    private func acquire(_ key: String) async throws {
        enum Admission { case now, busy, cancelled, queued }
        let id = state.withLock { $0.nextId &+= 1; return $0.nextId }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let admission: Admission = state.withLock { state in
                    // Whoever waits is held back by their own key's limit (a release starts
                    // everyone else), so only an earlier caller of the same key comes first.
                    if state.canStart(key, total: total, perKey: perKey), !state.waiting.contains(where: { $0.key == key }) {
                        state.start(key)
                        return .now
                    }
                    // Checked under the lock: a cancellation handled before this point found no waiter.
                    if Task.isCancelled { return .cancelled }
                    guard state.waiting.count < maxWaiting else { return .busy }
                    state.waiting.append(Waiter(id: id, key: key, continuation: continuation))
                    return .queued
                }
                switch admission {
                case .now: continuation.resume()
                case .busy: continuation.resume(throwing: Busy())
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .queued: break
                }
            }
        } onCancel: {
            let cancelled = state.withLock { state -> Waiter? in
                guard let i = state.waiting.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiting.remove(at: i)
            }
            cancelled?.continuation.resume(throwing: CancellationError())
        }
    }

    private func release(_ key: String) {
        let ready: [Waiter] = state.withLock { state in
            state.running -= 1
            state.runningPerKey[key, default: 1] -= 1
            if state.runningPerKey[key] == 0 { state.runningPerKey.removeValue(forKey: key) }
            // The oldest waiters whose key has room go next; one held back by its own key does
            // not hold back those behind it.
            var started: [Waiter] = []
            var i = 0
            while i < state.waiting.count, state.running < total {
                let waiter = state.waiting[i]
                if state.canStart(waiter.key, total: total, perKey: perKey) {
                    state.start(waiter.key)
                    started.append(state.waiting.remove(at: i))
                } else {
                    i += 1
                }
            }
            return started
        }
        for waiter in ready { waiter.continuation.resume() }
    }
}
