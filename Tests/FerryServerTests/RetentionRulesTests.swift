import FerryCore
import FerryTestSupport
import Foundation
import Testing

@testable import FerryServer

/// The pure decision of retention (`RetentionRules`): a table of the rules, then properties
/// over random histories that state the spec's set independently of how `decide` computes it.
@Suite("Retention rules")
struct RetentionRulesTests {
    static let now = Date(timeIntervalSince1970: 2_000_000_000)
    static func daysAgo(_ d: Double) -> Date { now.addingTimeInterval(-d * 86_400) }
    /// Versions 1…n, committed at the given ages (days ago), the deleted ones marked.
    static func history(_ ages: [Double], deleted: Set<Int> = []) -> [RetainedVersion] {
        ages.enumerated().map { RetainedVersion(seq: Int64($0.offset + 1), committedAt: daysAgo($0.element), deleted: deleted.contains($0.offset + 1)) }
    }
    static func purged(_ v: [RetainedVersion], _ p: RetentionPolicy, pinned: Set<Int64> = []) -> [Int64] {
        RetentionRules.decide(v, policy: p, pinned: pinned, now: now).purged
    }

    @Test func theRulesOneByOne() {
        let five = Self.history([50, 40, 30, 20, 10])
        // No policy keeps everything.
        #expect(Self.purged(five, .keepAll) == [])
        // The newest N (the current one counts).
        #expect(Self.purged(five, RetentionPolicy(keepVersions: 2)) == [1, 2, 3])
        #expect(Self.purged(five, RetentionPolicy(keepVersions: 1)) == [1, 2, 3, 4])
        // Still current at some moment of the last 25 days: 4 (replaced 10 days ago) and 3
        // (replaced 20 days ago); 2 was replaced 30 days ago.
        #expect(Self.purged(five, RetentionPolicy(keepDays: 25)) == [1, 2])
        #expect(Self.purged(five, RetentionPolicy(keepDays: 0)) == [1, 2, 3, 4])
        // Both: either rule keeps a version (the union).
        #expect(Self.purged(five, RetentionPolicy(keepVersions: 4, keepDays: 15)) == [1])
        #expect(Self.purged(five, RetentionPolicy(keepVersions: 1, keepDays: 25)) == [1, 2])
        // Pinned versions stay.
        #expect(Self.purged(five, RetentionPolicy(keepVersions: 1), pinned: [2]) == [1, 3, 4])
        // Only trash days: live paths keep every version.
        #expect(Self.purged(five, RetentionPolicy(trashDays: 1)) == [])
    }

    @Test func deletedPathsKeepTheirLastContentUntilTheTrashExpires() {
        // 1, 2 content; 3 the deletion, 10 days ago.
        let deleted = Self.history([30, 20, 10], deleted: [3])
        // Not expired: the tombstone and the content the trash restores stay, older goes.
        #expect(RetentionRules.decide(deleted, policy: RetentionPolicy(keepVersions: 1, trashDays: 30), pinned: [], now: Self.now)
            == RetentionDecision(purged: [1], removesPath: false))
        #expect(RetentionRules.decide(deleted, policy: RetentionPolicy(keepVersions: 1), pinned: [], now: Self.now)
            == RetentionDecision(purged: [1], removesPath: false))
        // Expired: the whole path goes.
        #expect(RetentionRules.decide(deleted, policy: RetentionPolicy(trashDays: 7), pinned: [], now: Self.now)
            == RetentionDecision(purged: [1, 2, 3], removesPath: true))
        // Expired but pinned: the tombstone and the pinned version stay, the path stays.
        #expect(RetentionRules.decide(deleted, policy: RetentionPolicy(trashDays: 7), pinned: [1], now: Self.now)
            == RetentionDecision(purged: [2], removesPath: false))
        // A deletion exactly as old as the limit is not past it.
        let edge = [RetainedVersion(seq: 1, committedAt: Self.daysAgo(9), deleted: false), RetainedVersion(seq: 2, committedAt: Self.daysAgo(7), deleted: true)]
        #expect(!RetentionRules.decide(edge, policy: RetentionPolicy(trashDays: 7), pinned: [], now: Self.now).removesPath)
        // Restored after a deletion: a live path; the old tombstone is an ordinary old version.
        let restored = Self.history([30, 20, 10], deleted: [2])
        #expect(Self.purged(restored, RetentionPolicy(keepVersions: 1, trashDays: 1)) == [1, 2])
    }

    @Test func thePlanGroupsRowsByPath() {
        let rows: [(path: String, version: RetainedVersion)] = [
            ("a", RetainedVersion(seq: 1, committedAt: Self.daysAgo(30), deleted: false)),
            ("a", RetainedVersion(seq: 4, committedAt: Self.daysAgo(10), deleted: false)),
            ("b", RetainedVersion(seq: 2, committedAt: Self.daysAgo(30), deleted: false)),
            ("b", RetainedVersion(seq: 3, committedAt: Self.daysAgo(20), deleted: true)),
        ]
        let (purged, removed) = RetentionRules.plan(rows, policy: RetentionPolicy(keepVersions: 1, trashDays: 10), pinned: [], now: Self.now)
        #expect(purged == [1, 2, 3])
        #expect(removed.map(\.path) == ["b"] && removed.map(\.seq) == [3])
    }

    /// A random history of one path: 1 to 12 versions at increasing times, some deletions
    /// (never two in a row, as commits refuse), a random policy, pins and a clock.
    static func randomCase(_ rng: inout SeededRandom) -> ([RetainedVersion], RetentionPolicy, Set<Int64>) {
        var versions: [RetainedVersion] = []
        var age = Double.random(in: 0...400, using: &rng)
        for seq in 1...Int64.random(in: 1...12, using: &rng) {
            let deleted = versions.last.map { !$0.deleted && Bool.random(using: &rng) && Int.random(in: 0...2, using: &rng) == 0 } ?? false
            versions.append(RetainedVersion(seq: seq * 3, committedAt: Self.daysAgo(age), deleted: deleted))
            age = max(0, age - Double.random(in: 0...60, using: &rng))
        }
        func maybe(_ r: ClosedRange<Int>) -> Int? { Bool.random(using: &rng) ? Int.random(in: r, using: &rng) : nil }
        let policy = RetentionPolicy(keepVersions: maybe(1...6), keepDays: maybe(0...120), trashDays: maybe(1...120))
        let pinned = Set(versions.map(\.seq).filter { _ in Int.random(in: 0...5, using: &rng) == 0 })
        return (versions, policy, pinned)
    }

    @Test func randomHistoriesKeepExactlyTheSpecsSet() {
        for seed in UInt64(1)...3000 {
            var rng = SeededRandom(seed: seed)
            let (versions, policy, pinned) = Self.randomCase(&rng)
            let decision = RetentionRules.decide(versions.shuffled(using: &rng), policy: policy, pinned: pinned, now: Self.now)
            let purged = Set(decision.purged)
            let current = versions.last!
            let cutoff = policy.trashDays.map { Self.daysAgo(Double($0)) }
            let expired = current.deleted && cutoff.map { current.committedAt < $0 } ?? false
            // The spec's set, stated version by version.
            var expected = Set<Int64>()
            for (i, v) in versions.enumerated() {
                let newest = versions.count - i
                let replacedAt = i + 1 < versions.count ? versions[i + 1].committedAt : nil
                let kept: Bool
                if v.seq == current.seq || pinned.contains(v.seq) {
                    kept = !(expired && pinned.isDisjoint(with: versions.map(\.seq)))
                } else if expired {
                    kept = false
                } else {
                    let lastContent = !v.deleted && current.deleted && versions[(i + 1)...].allSatisfy { $0.deleted }
                    let byCount = policy.keepVersions.map { newest <= $0 } ?? false
                    let byAge = policy.keepDays.map { d in replacedAt.map { $0 > Self.daysAgo(Double(d)) } ?? true } ?? false
                    kept = lastContent || byCount || byAge || (policy.keepVersions == nil && policy.keepDays == nil)
                }
                if !kept { expected.insert(v.seq) }
            }
            #expect(purged == expected, "seed \(seed): \(versions) \(policy) pinned \(pinned)")
            #expect(decision.purged == decision.purged.sorted(), "seed \(seed)")
            #expect(decision.removesPath == (purged.count == versions.count), "seed \(seed)")
            // Never the current version unless the whole path goes; never a pinned one.
            #expect(decision.removesPath || !purged.contains(current.seq), "seed \(seed)")
            #expect(purged.isDisjoint(with: pinned), "seed \(seed)")
            // A looser policy never purges more.
            var looser = policy
            looser.keepVersions = policy.keepVersions.map { $0 + 1 }
            looser.keepDays = policy.keepDays.map { $0 + 5 }
            looser.trashDays = policy.trashDays.map { $0 + 5 }
            #expect(Set(RetentionRules.decide(versions, policy: looser, pinned: pinned, now: Self.now).purged).isSubset(of: purged), "seed \(seed)")
        }
    }

    @Test func policiesOutOfRangeAreNamed() {
        #expect(RetentionPolicy(keepVersions: 0).problem?.contains("keep_versions") == true)
        #expect(RetentionPolicy(keepVersions: RetentionPolicy.maxVersions + 1).problem?.contains("keep_versions") == true)
        #expect(RetentionPolicy(keepDays: -1).problem?.contains("keep_days") == true)
        #expect(RetentionPolicy(keepDays: RetentionPolicy.maxDays + 1).problem?.contains("keep_days") == true)
        #expect(RetentionPolicy(trashDays: 0).problem?.contains("trash_days") == true)
        #expect(RetentionPolicy(keepVersions: 1, keepDays: 0, trashDays: 1).problem == nil)
        #expect(RetentionPolicy.keepAll.problem == nil)
    }
}
