import FerryCore
import Foundation

/// Per-user quotas (SPEC §10): each user's usage is the bytes of the chunks they hold (their
/// `user_chunk` rows, each chunk once), kept as a counter on the user row that the
/// transactions adding and releasing those rows move, so an upload's check reads one row.
/// `recordChunks` refuses an upload whose new bytes would pass the quota (`QuotaExceeded`);
/// gc releases a user's hold on chunks none of their versions references (docs/architecture.md,
/// "Quotas").
public protocol QuotaStore: Sendable {
    /// Sets a user's quota in bytes; nil removes it. Throws `MetadataError.notFound` for no such user.
    func setQuota(userId: Int64, bytes: Int64?) async throws
    /// A user's usage and quota; nil when there is no such user.
    func storageAccount(userId: Int64) async throws -> StorageAccount?
    /// Every user's usage and quota, by user name.
    func storageAccounts() async throws -> [String: StorageAccount]
    /// Sums every user's chunks again and sets each counter that differs (`ferry-server
    /// check`); returns the counters that were wrong, by user name.
    func reconcileUsage() async throws -> [UsageDrift]
}

/// What one user holds and may hold.
public struct StorageAccount: Sendable, Equatable {
    public var usedBytes: Int64
    /// nil: no quota.
    public var quotaBytes: Int64?

    public init(usedBytes: Int64, quotaBytes: Int64?) {
        self.usedBytes = usedBytes
        self.quotaBytes = quotaBytes
    }
}

/// A usage counter `check` found wrong and set right.
public struct UsageDrift: Sendable, Equatable {
    public var username: String
    public var counted: Int64
    public var actual: Int64
}

/// An upload refused because its new bytes would pass the user's quota; nothing of it was
/// recorded. Answered as 507 `quota_exceeded`.
public struct QuotaExceeded: Error, Equatable, Sendable, CustomStringConvertible {
    public var quotaBytes: Int64
    public var usedBytes: Int64
    /// The bytes this upload adds: chunks the user does not hold yet.
    public var neededBytes: Int64

    public var description: String {
        "quota exceeded: \(DashboardFormat.size(usedBytes)) of \(DashboardFormat.size(quotaBytes)) used; this upload needs "
            + "\(DashboardFormat.size(neededBytes)) more. Delete files (space returns once retention and gc free their chunks) "
            + "or ask an administrator to raise the quota"
    }
}

/// The quota rules every backend shares.
enum QuotaRules {
    /// Refuses adding `adding` bytes to `used` past `quota`. Adding nothing always passes: an
    /// upload of chunks the user holds costs nothing, even over a lowered quota.
    static func check(quota: Int64?, used: Int64, adding: Int64) throws {
        guard let quota, adding > 0, used + adding > quota else { return }
        throw QuotaExceeded(quotaBytes: quota, usedBytes: used, neededBytes: adding)
    }

    /// One `user_chunk` row as gc sees it, with its chunk's size and last upload.
    struct Hold {
        let userId: Int64
        let hash: ContentHash
        let size: Int64
        let touchedAt: Date
    }

    /// The holds gc releases: a user's chunk that none of the versions in that user's
    /// libraries references, last uploaded (by anyone) before `cutoff` (an upload whose
    /// commit has not arrived yet keeps its hold). Returns them and the bytes each user's
    /// usage drops by. A released chunk that another user still references stays stored; one
    /// nobody references goes with its chunk row in the same gc.
    static func released(_ holds: [Hold], referencedBy: [Int64: Set<ContentHash>], cutoff: Date)
        -> (holds: [Hold], bytes: [Int64: Int64]) {
        var out: [Hold] = []
        var bytes: [Int64: Int64] = [:]
        for hold in holds where hold.touchedAt <= cutoff && referencedBy[hold.userId]?.contains(hold.hash) != true {
            out.append(hold)
            bytes[hold.userId, default: 0] += hold.size
        }
        return (out, bytes)
    }

    /// Adds a live file version's chunks to its library owner's set and to `all`.
    static func reference(_ packed: Data, owner: Int64, all: inout [ContentHash: Int64], byUser: inout [Int64: Set<ContentHash>]) throws {
        for ref in try ChunkList.decode(packed) {
            all[ref.sha256] = ref.size
            byUser[owner, default: []].insert(ref.sha256)
        }
    }
}

extension StorageAccount {
    /// "1.2 GiB of 5.0 GiB used", or "1.2 GiB used, no quota": as the dashboard and the admin commands say it.
    public var summary: String {
        guard let quotaBytes else { return "\(DashboardFormat.size(usedBytes)) used, no quota" }
        return "\(DashboardFormat.size(usedBytes)) of \(DashboardFormat.size(quotaBytes)) used"
    }
}
