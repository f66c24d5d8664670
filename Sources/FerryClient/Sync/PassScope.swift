import FerryCore
import Synchronization

/// What a pass looks at: the whole folder (a walk of every directory and every row of the
/// index), or only some paths, each with everything beneath it.
///
/// A pass over paths plans exactly what a full pass would, provided the paths include every
/// path that changed on either side since the last pass that finished everything: then
/// every other path is still as the index last synced it on both sides, and the planner
/// (`Planner.decide`, a decision per path) has nothing to do there. `ScopeTracker` keeps
/// that proviso; `ScopedPassTests` checks it on random event sequences.
public enum PassScope: Sendable, Equatable {
    case everything
    case paths(Set<String>)

    /// Whether the pass looks at `path`: it is one of the paths, or lies beneath one.
    public func covers(_ path: String) -> Bool {
        guard case .paths(let paths) = self else { return true }
        if paths.contains(path) { return true }
        var end = path.endIndex
        while let slash = path[..<end].lastIndex(of: "/") {
            if paths.contains(String(path[..<slash])) { return true }
            end = slash
        }
        return false
    }

    /// The paths with none beneath another of them, sorted: what a scoped walk starts from.
    public static func roots(_ paths: Set<String>) -> [String] {
        var out: [String] = []
        // Sorted, a path's descendants follow it directly once "/" is ordered before every
        // other byte a name may hold ("a", "a/b", "a b": "a b" sorts between them by bytes).
        for path in paths.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8, by: Self.slashFirst) }) {
            if let last = out.last, path.utf8.starts(with: (last + "/").utf8) { continue }
            out.append(path)
        }
        return out
    }

    private static func slashFirst(_ a: UInt8, _ b: UInt8) -> Bool {
        a == b ? false : (a == UInt8(ascii: "/") ? true : (b == UInt8(ascii: "/") ? false : a < b))
    }
}

/// Which scope the next pass of a folder may have: the paths the daemon's watcher reported
/// and the paths the change feed brought since the last pass took them, or everything.
///
/// Everything (a full walk, the safety net) whenever a path may have changed unseen: no
/// watcher running (`ferry sync`, a test), the watcher just (re)started, an inotify overflow
/// or watch limit, the folder's root gone, `.ferryignore` edited, the periodic rescan, a
/// pass that threw or left work undone, a feed this process did not read to the stored
/// cursor (another process pulled), or retention's `cursor_expired`. State behind one lock.
public final class ScopeTracker: Sendable {
    struct State {
        var watching = false
        var full = true
        var local = Set<String>()
        var remote = Set<String>()
        /// The feed cursor this process last stored; another value in the index means that
        /// another process read the feed, and this one never saw those paths.
        var cursor: Int64?
        /// Local files outside the folder's selection after the last pass.
        var outsideSelection: Set<String>?
    }

    private let state = Mutex(State())

    /// Paths above which a pass looks at everything instead: a whole walk costs about 10 µs
    /// an entry, a look at one path about ten times that (its own stat and index lookups),
    /// so a burst of this many changes (a download of thousands of files, an unpacked
    /// archive) is cheaper walked once in a folder of 100,000 files or more.
    static let scopeLimit = 10_000

    public init() {}

    /// The watcher is running: from the next (full) pass on, passes may be scoped.
    public func watchStarted() {
        state.withLock { s in
            s.watching = true
            s.full = true
        }
    }

    /// The watcher stopped: every pass is full until it runs again.
    public func watchStopped() {
        state.withLock { $0.watching = false }
    }

    /// The next pass looks at everything.
    public func requireFull() {
        state.withLock { $0.full = true }
    }

    /// Notes what the watcher reported. Returns true when `.ferryignore` changed, for which
    /// the watcher must start again with the new rules.
    @discardableResult
    public func noted(_ events: [WatchEvent]) -> Bool {
        var rulesChanged = false
        state.withLock { s in
            func add(_ path: String) {
                if path == ".ferryignore" { rulesChanged = true }
                if path.isEmpty { s.full = true }
                s.local.insert(path)
            }
            for event in events {
                switch event {
                case .changed(let p), .directoryCreated(let p), .removed(let p): add(p)
                case .renamed(let from, let to, _):
                    add(from)
                    add(to)
                case .overflow, .rootGone: s.full = true
                case .watchLimitReached: s.watching = false  // directories without a watch: full passes only
                }
            }
            if rulesChanged { s.full = true }
        }
        return rulesChanged
    }

    /// Notes a feed page this process stored in the index: the versions after `since` up to
    /// `cursor` changed `paths`. A page that starts past the last cursor this process
    /// stored leaves a gap another process read, so the next pass looks at everything.
    func pulled(_ paths: some Sequence<String>, since: Int64, cursor: Int64) {
        state.withLock { s in
            if let last = s.cursor, since > last { s.full = true }
            s.remote.formUnion(paths)
            s.cursor = max(s.cursor ?? cursor, cursor)
        }
    }

    /// The scope of the pass starting now, given the cursor stored in the index when it
    /// starts; what it covers is taken (reported again only if it changes again).
    func take(storedCursor: Int64) -> PassScope {
        state.withLock { s in
            defer {
                s.local = []
                s.remote = []
                s.full = false
            }
            // A stored cursor past this process's: another process read the feed. And past
            // `scopeLimit` paths, one walk of everything costs less than a look at each.
            guard s.watching, !s.full, let last = s.cursor, last >= storedCursor, s.local.count + s.remote.count <= Self.scopeLimit else {
                // Everything up to the stored cursor is in the mirror the full pass reads.
                s.cursor = max(s.cursor ?? storedCursor, storedCursor)
                return .everything
            }
            return .paths(s.local.union(s.remote))
        }
    }

    /// After a pass: one that left work undone makes the next one full; paths it reported
    /// a problem with (unreadable, changing, held by a guard, kept local) are looked at again.
    func finished(_ report: PassReport) {
        state.withLock { s in
            if report.deferred > 0 || report.massDelete != nil {
                s.full = true
            } else {
                s.local.formUnion(report.problems.keys)
            }
        }
    }

    /// Local files outside the selection after a pass over `scope` that found `found` of
    /// them where it looked: what it found, and what the last pass counted elsewhere.
    func outsideSelection(after scope: PassScope, found: Set<String>) -> Set<String> {
        state.withLock { s in
            guard case .paths = scope, let before = s.outsideSelection else { return found }
            return found.union(before.lazy.filter { !scope.covers($0) })
        }
    }

    /// Remembers the local files outside the selection as a pass left them.
    func record(outsideSelection: Set<String>) {
        state.withLock { $0.outsideSelection = outsideSelection }
    }
}
