import Foundation
import Synchronization

/// Wakes long-polling change-feed requests when a library's head moves. No polling: a
/// waiter sleeps on a continuation that the committing request resumes.
public final class ChangeNotifier: Sendable {
    private struct Waiter {
        var after: Int64
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var heads: [String: Int64] = [:]
        var waiters: [String: [UInt64: Waiter]] = [:]
        var nextId: UInt64 = 0
        var closed = false
    }

    private let state = Mutex(State())

    public init() {}

    /// Records that `library` now has changes up to `head` and wakes its waiters behind it.
    public func notify(library: String, head: Int64) {
        let ready: [CheckedContinuation<Void, Never>] = state.withLock { s in
            s.heads[library] = max(s.heads[library] ?? 0, head)
            guard var list = s.waiters[library] else { return [] }
            var out: [CheckedContinuation<Void, Never>] = []
            for (id, w) in list where w.after < head {
                out.append(w.continuation)
                list.removeValue(forKey: id)
            }
            s.waiters[library] = list.isEmpty ? nil : list
            return out
        }
        for c in ready { c.resume() }
    }

    /// Returns when `library` has a change after `after`, after `timeout`, or on cancellation,
    /// whichever comes first. The caller re-reads the feed either way. Returns the head this
    /// notifier last heard of for the library (0 if none): waiters woken by the same commit
    /// see the same head, so they can share one read (`SharedReads`).
    @discardableResult
    public func wait(library: String, after: Int64, timeout: Duration) async -> Int64 {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForNotification(library: library, after: after) }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
        return state.withLock { $0.heads[library] ?? 0 }
    }

    /// Wakes every waiter and makes later waits return at once: the server is shutting down
    /// and must not hold long-polls open until their timeout.
    public func shutdown() {
        let all: [CheckedContinuation<Void, Never>] = state.withLock { s in
            s.closed = true
            let out = s.waiters.values.flatMap { $0.values.map(\.continuation) }
            s.waiters = [:]
            return out
        }
        for c in all { c.resume() }
    }

    /// Wakes every waiter once (they re-read their feeds); later waits park as usual. For
    /// when notifications from other instances may have been missed.
    public func wakeAll() {
        let all: [CheckedContinuation<Void, Never>] = state.withLock { s in
            let out = s.waiters.values.flatMap { $0.values.map(\.continuation) }
            s.waiters = [:]
            return out
        }
        for c in all { c.resume() }
    }

    /// Whether `shutdown` ran: a stream of changes (the dashboard's) ends instead of waiting again.
    public var isShutDown: Bool { state.withLock { $0.closed } }

    /// Number of requests currently waiting (for tests and metrics).
    public var waiterCount: Int { state.withLock { $0.waiters.values.reduce(0) { $0 + $1.count } } }

    private func waitForNotification(library: String, after: Int64) async {
        let id = state.withLock { s in
            s.nextId += 1
            return s.nextId
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if Task.isCancelled || s.closed { return true }
                    if let head = s.heads[library], head > after { return true }
                    s.waiters[library, default: [:]][id] = Waiter(after: after, continuation: continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> Waiter? in
                let w = s.waiters[library]?.removeValue(forKey: id)
                if s.waiters[library]?.isEmpty == true { s.waiters[library] = nil }
                return w
            }
            waiter?.continuation.resume()
        }
    }
}
