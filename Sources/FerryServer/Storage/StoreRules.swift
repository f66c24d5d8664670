import FerryCore
import Foundation

/// Rules of the metadata store that need no storage, shared by every backend so each is
/// written once: why webhooks are switched off, when a device's last use is written down,
/// and what `gc` removes.
enum StoreRules {
    /// Why a webhook was switched off when what created it was ended.
    enum WebhookDisabled {
        static let sessionEndedByPasswordChange = "created in a session that a password change ended; re-enable it if it is yours"
        static let deviceRevokedByPasswordChange = "created by a device that a password change revoked; re-enable it if it is yours"
        static let deviceRevoked = "created by a device that was revoked; re-enable it if it is yours"
    }

    /// Whether a device's `last_seen_at` is due to be written: at most once a minute, since
    /// a write per request would serialise reads.
    static func lastSeenIsStale(_ lastSeen: Date?, now: Date = Date()) -> Bool {
        lastSeen.map { now.timeIntervalSince($0) > 60 } ?? true
    }

    /// The paths at and beneath a directory (nil: the whole library) as a range in byte
    /// order, SQLite's and PostgreSQL's "C" collation alike: the paths under "d/" sort between
    /// "d/" and "d0", '0' being the byte after '/'.
    struct Subtree {
        /// The directory itself ("" for the root).
        let exact: String
        /// "d/": every path beneath sorts at or after it ("" for the root).
        let prefix: String
        /// "d0": every path beneath sorts before it (past every path for the root).
        let upper: String

        init(_ directory: FerryPath?) {
            exact = directory?.string ?? ""
            prefix = directory.map { $0.string + "/" } ?? ""
            upper = directory.map { $0.string + "0" } ?? "\u{10FFFF}"
        }
    }

    /// An entry kind as a `kind` column stores it.
    static func kind(_ stored: String) throws -> EntryKind {
        guard let kind = EntryKind(rawValue: stored) else { throw MetadataError.invalid("unknown entry kind in database") }
        return kind
    }

    /// One `chunk` row as gc sees it.
    struct ChunkRow {
        let hash: ContentHash
        let size: Int64
        let touchedAt: Date
    }

    /// What one gc run removes, decided under the lock uploads take to publish: chunk rows no
    /// version references whose last upload is older than `cutoff`, and the blobs among
    /// `listed` (listed before the lock) that no chunk row names. A listed blob still without
    /// a row once the lock is held belongs to no upload in flight, since one that published it
    /// has committed its row by then or failed.
    static func garbage(rows: [ChunkRow], referenced: [ContentHash: Int64], listed: [ContentHash], cutoff: Date)
        -> (rows: [ContentHash], blobs: [ContentHash], report: GarbageReport) {
        var report = GarbageReport(removedChunks: 0, removedBytes: 0, keptInGrace: 0)
        var removed: [ContentHash] = []
        var rowed = Set<ContentHash>()
        for row in rows {
            rowed.insert(row.hash)
            guard referenced[row.hash] == nil else { continue }
            if row.touchedAt > cutoff {
                report.keptInGrace += 1
                continue
            }
            removed.append(row.hash)
            report.removedChunks += 1
            report.removedBytes += row.size
        }
        let orphans = listed.filter { !rowed.contains($0) }
        report.removedOrphans = orphans.count
        return (removed, removed + orphans, report)
    }

    /// Adds the chunks of a live file version's packed chunk list to `referenced`.
    static func reference(_ packed: Data, into referenced: inout [ContentHash: Int64]) throws {
        for ref in try ChunkList.decode(packed) { referenced[ref.sha256] = ref.size }
    }
}
