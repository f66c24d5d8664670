import Foundation
import Synchronization

/// Decides which refused logins reach the security log. A guessing run refused thousands of
/// times would otherwise be thousands of durable writes (each an fsync under the write lock,
/// competing with every commit): instead the first refusal of a (name, address) is written
/// at once, and the ones after it are counted and written as one line, with their count, at
/// most once per `interval`.
final class RefusalLog: Sendable {
    let interval: TimeInterval
    let maxKeys: Int
    private struct Entry { var lastWritten: Date; var unwritten: Int }
    private let table = Mutex<[String: Entry]>([:])

    init(interval: TimeInterval = 60, maxKeys: Int = 10_000) {
        self.interval = interval
        self.maxKeys = maxKeys
    }

    /// Counts one refusal; returns how many refusals to write now (this one included), or
    /// nil when it is only counted.
    func refused(username: String, address: String, now: Date = Date()) -> Int? {
        let key = address + "\u{0}" + username
        return table.withLock { table in
            guard var entry = table[key], now.timeIntervalSince(entry.lastWritten) < interval else {
                let count = (table[key]?.unwritten ?? 0) + 1
                table[key] = Entry(lastWritten: now, unwritten: 0)
                if table.count > maxKeys { table = table.filter { now.timeIntervalSince($0.value.lastWritten) < interval } }
                return count
            }
            entry.unwritten += 1
            table[key] = entry
            return nil
        }
    }
}
