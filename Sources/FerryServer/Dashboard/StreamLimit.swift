import Synchronization

/// Bounds the live-update streams held open, per user and in all: each holds a connection
/// and a task for minutes, so a script opening thousands must be refused, not served.
final class StreamLimit: Sendable {
    let perUser: Int
    let total: Int
    private let open = Mutex<[Int64: Int]>([:])

    init(perUser: Int, total: Int) {
        self.perUser = perUser
        self.total = total
    }

    /// Whether `acquire` would succeed now.
    func hasRoom(user: Int64) -> Bool {
        open.withLock { open in open[user, default: 0] < perUser && open.values.reduce(0, +) < total }
    }

    /// Takes a slot for `user`, or answers false when the user or the server is at its limit.
    func acquire(user: Int64) -> Bool {
        open.withLock { open in
            guard open[user, default: 0] < perUser, open.values.reduce(0, +) < total else { return false }
            open[user, default: 0] += 1
            return true
        }
    }

    func release(user: Int64) {
        open.withLock { open in
            let left = open[user, default: 1] - 1
            open[user] = left > 0 ? left : nil
        }
    }

    /// Streams open now (for tests).
    var count: Int { open.withLock { $0.values.reduce(0, +) } }
}
