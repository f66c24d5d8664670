import FerryCore
import Foundation

/// One version of one path, as retention judges it.
public struct RetainedVersion: Sendable, Equatable {
    public var seq: Int64
    public var committedAt: Date
    public var deleted: Bool

    public init(seq: Int64, committedAt: Date, deleted: Bool) {
        self.seq = seq
        self.committedAt = committedAt
        self.deleted = deleted
    }
}

/// What retention does to one path.
public struct RetentionDecision: Sendable, Equatable {
    /// The versions to delete, by sequence number, ascending.
    public var purged: [Int64]
    /// Whether the path goes entirely (its entry too): a deletion past `trashDays` with
    /// nothing pinned.
    public var removesPath: Bool
}

/// Which versions a library's retention policy removes (SPEC §10, docs/architecture.md
/// "Retention"). Pure: no storage, no clock; both backends purge exactly what this decides.
///
/// For one path, with `current` its newest version:
/// - a path whose current version is a deletion older than `trashDays` is removed entirely,
///   unless one of its versions is pinned; then only the current version and the pinned
///   ones stay;
/// - otherwise a version is kept when it is the current one, when it is pinned (an
///   attachment, an open conflict), when it is the last content before a current deletion
///   (what the trash restores), or when a version rule keeps it: among the newest
///   `keepVersions`, or still current at some moment of the last `keepDays` (its successor
///   was committed after `now - keepDays`). With both rules set, either keeps it (the safe
///   union); with neither, every version is kept.
public enum RetentionRules {
    static let day: TimeInterval = 86_400

    /// The decision for one path's versions (any order, at least one).
    public static func decide(_ versions: [RetainedVersion], policy: RetentionPolicy, pinned: Set<Int64>, now: Date) -> RetentionDecision {
        let sorted = versions.sorted { $0.seq < $1.seq }
        guard let current = sorted.last else { return RetentionDecision(purged: [], removesPath: false) }
        let expired = current.deleted && policy.trashDays.map { current.committedAt < now.addingTimeInterval(-Double($0) * day) } ?? false
        if expired {
            let anyPinned = sorted.contains { pinned.contains($0.seq) }
            let purged = sorted.filter { $0.seq != current.seq && !pinned.contains($0.seq) }.map(\.seq)
            return RetentionDecision(purged: anyPinned ? purged : sorted.map(\.seq), removesPath: !anyPinned)
        }
        let lastContent = current.deleted ? sorted.last(where: { !$0.deleted })?.seq : nil
        let ageCutoff = policy.keepDays.map { now.addingTimeInterval(-Double($0) * day) }
        var purged: [Int64] = []
        for (i, v) in sorted.enumerated() where v.seq != current.seq && !pinned.contains(v.seq) && v.seq != lastContent {
            let byCount = policy.keepVersions.map { sorted.count - i <= $0 } ?? false
            let byAge = ageCutoff.map { sorted[i + 1].committedAt > $0 } ?? false
            let noRule = policy.keepVersions == nil && policy.keepDays == nil
            if !(noRule || byCount || byAge) { purged.append(v.seq) }
        }
        return RetentionDecision(purged: purged, removesPath: false)
    }

    /// The decisions for a batch of rows (path, version) ordered by path: the versions to
    /// delete and the paths that go, each with its current version's number.
    static func plan(_ rows: [(path: String, version: RetainedVersion)], policy: RetentionPolicy, pinned: Set<Int64>, now: Date)
        -> (purged: [Int64], removed: [(path: String, seq: Int64)]) {
        var purged: [Int64] = []
        var removed: [(path: String, seq: Int64)] = []
        var start = rows.startIndex
        while start < rows.endIndex {
            let path = rows[start].path
            var end = start
            while end < rows.endIndex, rows[end].path == path { end += 1 }
            let versions = rows[start..<end].map(\.version)
            let decision = decide(versions, policy: policy, pinned: pinned, now: now)
            purged += decision.purged
            if decision.removesPath, let last = versions.map(\.seq).max() { removed.append((path, last)) }
            start = end
        }
        return (purged, removed)
    }
}

/// What one bounded purge transaction did.
public struct RetentionBatch: Sendable, Equatable {
    public var purgedVersions: Int
    public var removedPaths: Int
    /// Pass as `after` for the next batch; nil when the library is done.
    public var nextAfter: String?

    public init(purgedVersions: Int, removedPaths: Int, nextAfter: String?) {
        self.purgedVersions = purgedVersions
        self.removedPaths = removedPaths
        self.nextAfter = nextAfter
    }
}

/// What a purge of one or more libraries did.
public struct PurgeReport: Sendable, Equatable {
    public var libraries = 0
    public var purgedVersions = 0
    public var removedPaths = 0
    public init() {}
}
