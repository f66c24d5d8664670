@testable import FerryClient
import Testing

/// When a run of commits moves the feed cursor past its own versions (`FeedCursor.CommitRun`).
@Suite("feed cursor")
struct FeedCursorTests {
    /// Each case: the cursor the run starts from, then answers (versions handed over, head
    /// named) in the order they arrive, and what the cursor is after each (nil: not moved).
    static let cases: [(start: Int64, answers: [([Int64], Int64)], moves: [Int64?])] = [
        // Everything up to the head is ours: move.
        (10, [([11, 12], 12)], [12]),
        // Someone else committed 12: the feed must bring it, so the cursor stays, then and later.
        (10, [([11, 13], 13), ([14], 14)], [nil, nil]),
        // Batches answered out of order: the later one completes the run.
        (10, [([13, 14], 14), ([11, 12], 12)], [nil, 14]),
        // Versions at or below the cursor count for nothing.
        (10, [([9, 10, 11], 11)], [11]),
        // Nothing new: nothing to move.
        (10, [([], 10)], [nil]),
        // A move starts a new count from the new cursor.
        (10, [([11], 11), ([13], 13), ([12], 13)], [11, nil, 13]),
    ]

    @Test(arguments: cases.indices)
    func theCursorMovesOnlyPastAnUnbrokenRunOfItsOwnVersions(_ i: Int) {
        let c = Self.cases[i]
        var run = FeedCursor.CommitRun(cursor: c.start)
        var moves: [Int64?] = []
        for (versions, head) in c.answers { moves.append(run.answered(versions: versions, head: head)) }
        #expect(moves == c.moves)
        #expect(run.cursor == (c.moves.compactMap { $0 }.last ?? c.start))
    }
}
