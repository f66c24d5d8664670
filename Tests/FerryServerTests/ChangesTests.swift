import FerryCore
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import FerryTestSupport
import Synchronization
import Testing

@testable import FerryServer

/// Counts the reads a test's `SharedReads` ran and holds them, suspended, until released.
final class ReadProbe: Sendable {
    let queries = Atomic<Int>(0)
    private let gate = Mutex<(open: Bool, held: [CheckedContinuation<Void, Never>])>((false, []))

    func hold() async {
        await withCheckedContinuation { continuation in
            let open = gate.withLock { g in
                if !g.open { g.held.append(continuation) }
                return g.open
            }
            if open { continuation.resume() }
        }
    }

    func release() {
        let held = gate.withLock { g in
            g.open = true
            defer { g.held = [] }
            return g.held
        }
        for continuation in held { continuation.resume() }
    }
}

@Suite("Change feed", .eachBackend)
struct ChangesTests {
    @Test func feedIsOrderedPagedAndCompacted() async throws {
        try await withLibrary { api, token, lib in
            let dirs = (0..<5).map { CommitOperation(op: .put, path: try! FerryPath("d\($0)"), base: nil, kind: .directory) }
            _ = try await api.commit(lib, dirs, token: token)
            // d1 changes twice more: the feed shows it once, at its latest version.
            _ = try await api.commit(lib, [CommitOperation(op: .put, path: try FerryPath("d1"), base: 2, kind: .directory, mode: 0o700)], token: token)
            _ = try await api.commit(lib, [.delete(try FerryPath("d1"), base: 6)], token: token)

            let all = try await api.changes(lib, token: token)
            #expect(all.changes.map(\.path.string) == ["d0", "d2", "d3", "d4", "d1"])
            #expect(all.changes.map(\.version) == [1, 3, 4, 5, 7])
            #expect(all.changes.last?.deleted == true)
            #expect(all.hasMore == false)
            #expect(all.cursor == 7)
            #expect(all.head == 7)

            var cursor: Int64 = 0
            var seen: [String] = []
            var pages = 0
            while true {
                let page = try await api.changes(lib, since: cursor, limit: 2, token: token)
                seen += page.changes.map(\.path.string)
                cursor = page.cursor
                pages += 1
                if !page.hasMore { break }
            }
            #expect(seen == ["d0", "d2", "d3", "d4", "d1"])
            #expect(pages == 3)

            let none = try await api.changes(lib, since: 7, token: token)
            #expect(none.changes.isEmpty)
            #expect(none.cursor == 7)
            for bad in ["since=-1", "limit=0", "limit=5001", "wait=301", "since=abc"] {
                #expect(try await api.call(.get, "/libraries/\(lib)/changes?\(bad)", token: token).status == .badRequest)
            }
        }
    }

    @Test func aCursorPastTheHeadIs409AtOnceEvenWhenLongPolling() async throws {
        try await withLibrary { api, token, lib in
            _ = try await api.commit(lib, [CommitOperation(op: .put, path: try FerryPath("d"), base: nil, kind: .directory)], token: token)
            for wait in [0, 30] {
                let started = ContinuousClock.now
                let r = try await api.call(.get, "/libraries/\(lib)/changes?since=5&wait=\(wait)", token: token)
                #expect(r.status == .conflict)
                #expect(api.errorCode(r) == "cursor_ahead")
                #expect(ContinuousClock.now - started < .seconds(10), "answered without waiting")
            }
            #expect(try await api.changes(lib, since: 1, token: token).changes.isEmpty)
        }
    }

    @Test func longPollAnswersWhenAChangeCommits() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        // In-process router: requests run concurrently (the live test client has one connection).
        try await server.run(.router) { api in
            let token = try await api.newUser("alice")
            let lib = try await api.createLibrary("docs", token: token).id
            // The waiter asks for up to two minutes; it must come back with the change, not an empty page.
            async let waited = api.changes(lib, since: 0, wait: 120, token: token)
            // Commit once the request is parked on the notifier (an event, not a sleep).
            #expect(await eventuallyTrue(timeout: .seconds(30)) { server.services.notifier.waiterCount == 1 })
            _ = try await api.commit(lib, [CommitOperation(op: .put, path: try FerryPath("new"), base: nil, kind: .directory)], token: token)
            let result = try await waited
            #expect(result.changes.map(\.path.string) == ["new"])
            #expect(server.services.notifier.waiterCount == 0)
        }
    }

    @Test func notifierWakesOnlyWaitersBehindTheHead() async {
        let notifier = ChangeNotifier()
        async let behind = notifier.wait(library: "a", after: 4, timeout: .seconds(600))
        #expect(await eventuallyTrue(timeout: .seconds(120)) { notifier.waiterCount == 1 })
        notifier.notify(library: "b", head: 10)  // another library: no effect
        #expect(notifier.waiterCount == 1)
        notifier.notify(library: "a", head: 5)
        #expect(await behind == 5, "a woken waiter learns the head it was woken for")
        #expect(notifier.waiterCount == 0)
        // Already ahead: returns at once.
        await notifier.wait(library: "a", after: 3, timeout: .seconds(600))
        // A timeout ends the wait with nothing to report.
        await notifier.wait(library: "a", after: 99, timeout: .milliseconds(10))
        #expect(notifier.waiterCount == 0)
    }

    @Test func readsOfLongPollsWokenTogetherAreOneQuery() async throws {
        let reads = SharedReads<Int, Int>()
        let probe = ReadProbe()
        @Sendable func held() async throws -> Int {
            probe.queries.add(1, ordering: .relaxed)
            await probe.hold()
            return 42
        }
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<50 { group.addTask { try await reads.value(for: 1, held) } }
            // Another key is another read.
            group.addTask { try await reads.value(for: 2, held) }
            // A generous bound: a full parallel run can keep these tasks waiting for a thread.
            #expect(await eventuallyTrue(timeout: .seconds(120)) { reads.callers(1) == 50 && reads.callers(2) == 1 })
            probe.release()
            var answers: [Int] = []
            for try await answer in group { answers.append(answer) }
            #expect(answers == Array(repeating: 42, count: 51))
        }
        #expect(probe.queries.load(ordering: .relaxed) == 2)
        #expect(reads.callers(1) == 0, "nothing is kept once the read is done")
        // A later caller reads afresh.
        #expect(try await reads.value(for: 1, held) == 42)
        #expect(probe.queries.load(ordering: .relaxed) == 3)
    }

    @Test func aFailedSharedReadFailsEveryCallerAndIsNotKept() async throws {
        struct Broken: Error {}
        let reads = SharedReads<String, Int>()
        let probe = ReadProbe()
        let failing: @Sendable () async throws -> Int = {
            await probe.hold()
            throw Broken()
        }
        @Sendable func outcome() async -> Result<Int, any Error> {
            do { return .success(try await reads.value(for: "k", failing)) } catch { return .failure(error) }
        }
        async let first = outcome()
        async let second = outcome()
        #expect(await eventuallyTrue(timeout: .seconds(120)) { reads.callers("k") == 2 })
        probe.release()
        for outcome in await [first, second] {
            #expect(throws: Broken.self) { try outcome.get() }
        }
        #expect(try await reads.value(for: "k") { 7 } == 7)
    }

    @Test func shutdownReleasesEveryLongPollAtOnce() async {
        let notifier = ChangeNotifier()
        let start = ContinuousClock.now
        async let first = notifier.wait(library: "a", after: 0, timeout: .seconds(300))
        async let second = notifier.wait(library: "b", after: 5, timeout: .seconds(300))
        #expect(await eventuallyTrue(timeout: .seconds(120)) { notifier.waiterCount == 2 })
        notifier.shutdown()
        _ = await (first, second)
        #expect(notifier.waiterCount == 0)
        #expect(ContinuousClock.now - start < .seconds(60))
        // Later waits do not block either.
        await notifier.wait(library: "c", after: 0, timeout: .seconds(300))
        #expect(ContinuousClock.now - start < .seconds(60))
    }
}
