import FerryCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

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
        /// What this process's passes left at paths they changed on disk, as the index
        /// recorded it, until the watcher reports those writes back (`left`).
        var placed: [String: Placement] = [:]
    }

    private let state = Mutex(State())

    /// Paths above which a pass looks at everything instead: a whole walk costs about 10 µs
    /// an entry, a look at one path about ten times that (its own stat and index lookups),
    /// so a burst of this many changes (a download of thousands of files, an unpacked
    /// archive) is cheaper walked once in a folder of 100,000 files or more.
    static let scopeLimit = 10_000
    /// Paths whose placement is remembered at most: past this many, a pass's own writes are
    /// looked at again like anyone's (a full pass, once they pass `scopeLimit`).
    static let placedLimit = 20 * scopeLimit

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
                // Unfinished downloads and the marker: never synced, nothing to look at.
                if RemoteCheck.isFerrysOwn(path) { return }
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

    /// Notes what a pass of this process left on disk and recorded in the index (`update`:
    /// the downloads, links, directories and local deletes it made). The watcher reports
    /// those writes back; a path still exactly as recorded has nothing for a pass to look
    /// at, so `take` leaves it out instead of counting it (a download of thousands of files
    /// would otherwise make the next pass a full one).
    /// (`recordedOnly`: paths of `update` recorded without a write, which no report follows.)
    func left(_ update: IndexUpdate, recordedOnly: Set<String> = []) {
        state.withLock { s in
            guard s.watching else { return }
            for e in update.synced where s.placed.count < Self.placedLimit && !recordedOnly.contains(e.path) { s.placed[e.path] = Placement(e) }
            for path in update.unsynced where s.placed.count < Self.placedLimit && !recordedOnly.contains(path) { s.placed[path] = .absent }
        }
    }

    /// The scope of the pass starting now, given the cursor stored in the index when it
    /// starts; what it covers is taken (reported again only if it changes again). `now`
    /// reads what is at a path on disk; with it, a reported path that is still as this
    /// process's own pass left it (`left`) is left out.
    func take(storedCursor: Int64, now: ((String) -> OnDisk)? = nil) -> PassScope {
        let taken: (local: Set<String>, remote: Set<String>, placed: [String: Placement])? = state.withLock { s in
            defer {
                s.local = []
                s.remote = []
                s.full = false
            }
            // A stored cursor past this process's: another process read the feed.
            guard s.watching, !s.full, let last = s.cursor, last >= storedCursor else {
                // Everything up to the stored cursor is in the mirror the full pass reads.
                s.cursor = max(s.cursor ?? storedCursor, storedCursor)
                s.placed = [:]  // the walk looks at all of it
                return nil
            }
            // What this process left at the reported paths is taken with them; placements
            // whose report has not arrived yet wait for it.
            var placed: [String: Placement] = [:]
            if now != nil, !s.placed.isEmpty {
                for path in s.local { if let p = s.placed.removeValue(forKey: path) { placed[path] = p } }
            }
            return (s.local, s.remote, placed)
        }
        guard let taken else { return .everything }
        // Read outside the lock: the watcher notes events meanwhile.
        var local = taken.local
        if let now {
            for (path, placement) in taken.placed where placement.isStill(now(path)) { local.remove(path) }
        }
        // Past `scopeLimit` paths, one walk of everything costs less than a look at each.
        guard local.count + taken.remote.count <= Self.scopeLimit else { return .everything }
        return .paths(local.union(taken.remote))
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

/// A path as a pass of this process left it and the index recorded it: an entry of a kind
/// with its stat, or nothing.
enum Placement: Equatable, Sendable {
    case absent
    case entry(kind: EntryKind, size: Int64, mtimeNs: Int64, inode: UInt64, ctimeNs: Int64, target: String?)

    init(_ e: IndexEntry) {
        self = .entry(kind: e.kind, size: e.size, mtimeNs: e.mtimeNs, inode: e.inode, ctimeNs: e.ctimeNs, target: e.target)
    }

    /// Whether `now` (what is at the path now) is still this: nothing, or the same kind, and
    /// the same inode for a directory, the same stat (and target) for a file or link.
    func isStill(_ now: OnDisk) -> Bool {
        switch (self, now) {
        case (.absent, .nothing):
            return true
        case (.entry(let kind, let size, let mtimeNs, let inode, let ctimeNs, let target), .entry(let now)):
            guard now.kind == kind else { return false }
            if kind == .directory { return now.inode == inode }
            return now.sameStat(size: size, mtimeNs: mtimeNs, inode: inode, ctimeNs: ctimeNs) && now.target == target
        default:
            return false
        }
    }
}

/// What is at a path on disk, as a cheap look finds it.
enum OnDisk: Equatable, Sendable {
    case entry(LocalFile)
    case nothing
    /// It could not be looked at (a permission, an I/O error): it may be anything.
    case unknown

    /// `path` in the folder `root`, by one `lstat` of the whole path (and `readlink` for a
    /// link), where `LocalScanner.stat` opens every directory above it. An ancestor that is
    /// a link is followed, so this serves to compare with what was recorded, never to
    /// decide where to write; a path below a replaced ancestor is in a scope anyway, by the
    /// ancestor's own report.
    static func look(root: String, path: String) -> OnDisk {
        let absolute = root + "/" + path
        var st = Glibc.stat()
        guard lstat(absolute, &st) == 0 else { return errno == ENOENT || errno == ENOTDIR ? .nothing : .unknown }
        var target: String?
        if st.st_mode & S_IFMT == S_IFLNK {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(absolute, &buffer, buffer.count - 1)
            guard n >= 0 else { return .unknown }
            target = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return LocalFile(path: path, stat: st, target: target).map(OnDisk.entry) ?? .unknown
    }
}
