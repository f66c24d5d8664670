import FerryCore
import Foundation

/// Retention per library (SPEC §10): the policy on the library row, and the purge that
/// applies it in bounded transactions (`RetentionRules` decides; both backends delete
/// exactly that). Nothing a purge removes is reported to webhooks or the change feed;
/// `FeedRead.purgedThrough` lets the feed refuse a cursor that may have missed a removed deletion.
public protocol RetentionStore: Sendable {
    /// The library's policy, if the library is `userId`'s.
    func retention(userId: Int64, libraryId: String) async throws -> LibraryRetention?
    /// Replaces the policy of `userId`'s library (checked by the caller with
    /// `RetentionPolicy.problem`); nil when there is no such library of theirs.
    func setRetention(userId: Int64, libraryId: String, policy: RetentionPolicy) async throws -> LibraryRetention?
    /// Every library whose policy is not "keep everything".
    func librariesWithRetention() async throws -> [String]
    /// Applies the library's policy to at most `limit` paths after `after` (by path), in one
    /// write transaction, so a big library never holds the write lock for long.
    func purgeBatch(libraryId: String, after: String?, limit: Int, now: Date) async throws -> RetentionBatch
}

/// One read of a library's change feed (`MetadataStore.changes`): the page, and the highest
/// sequence number of a deletion retention removed from the library (0: none), read with it
/// so the feed's 410 check costs no query of its own (every woken long-poll shares the read).
public struct FeedRead: Sendable, Equatable {
    public var page: ChangesResponse
    public var purgedThrough: Int64
}

extension RetentionStore {
    /// Applies the policy to the whole library, batch after batch (`batchPaths` paths per
    /// transaction).
    public func purge(libraryId: String, now: Date = Date(), batchPaths: Int = 500) async throws -> PurgeReport {
        var report = PurgeReport()
        report.libraries = 1
        var after: String?
        repeat {
            try Task.checkCancellation()
            let batch = try await purgeBatch(libraryId: libraryId, after: after, limit: batchPaths, now: now)
            report.purgedVersions += batch.purgedVersions
            report.removedPaths += batch.removedPaths
            after = batch.nextAfter
        } while after != nil
        return report
    }

    /// Applies every library's policy.
    public func purgeAll(now: Date = Date()) async throws -> PurgeReport {
        var total = PurgeReport()
        for library in try await librariesWithRetention() {
            let report = try await purge(libraryId: library, now: now)
            total.libraries += 1
            total.purgedVersions += report.purgedVersions
            total.removedPaths += report.removedPaths
        }
        return total
    }
}

extension StoreRules {
    /// The columns' values of a policy, as both schemas hold them (null = keep).
    static func retentionColumns(_ p: RetentionPolicy) -> (Int64?, Int64?, Int64?) {
        (p.keepVersions.map(Int64.init), p.keepDays.map(Int64.init), p.trashDays.map(Int64.init))
    }

    static func retentionPolicy(keepVersions: Int64?, keepDays: Int64?, trashDays: Int64?) -> RetentionPolicy {
        RetentionPolicy(keepVersions: keepVersions.map(Int.init), keepDays: keepDays.map(Int.init), trashDays: trashDays.map(Int.init))
    }
}
