import FerryCore
import FerryTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import FerryServer

/// Retention in the store and the API (SPEC §10), on both backends: the purge removes
/// exactly what `RetentionRules` decides, batch by batch, keeps history, trash, restore and
/// the change feed coherent, reports nothing, and `gc` then frees the chunks.
@Suite("Retention", .eachBackend)
struct RetentionStoreTests {
    static let day: TimeInterval = 86_400

    /// Every version of every path the library has ever had, by path (history is complete
    /// for what survives; a path without an entry has no versions left).
    static func versions(_ store: any MetadataStore, _ lib: String, _ paths: [FerryPath]) async throws -> [String: [FileVersion]] {
        var out: [String: [FileVersion]] = [:]
        for path in paths {
            let history = try await store.history(libraryId: lib, path: path, before: nil, limit: 1000).versions
            if !history.isEmpty { out[path.string] = history.reversed() }
        }
        return out
    }

    @Test func randomHistoriesLoseExactlyWhatTheRulesDecide() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let store = server.services.store
        let (user, _) = try await server.addUser("alice")
        let task = try await store.createTask(userId: user.id, CreateTaskRequest(title: "pins"))
        for seed in UInt64(1)...6 {
            var rng = SeededRandom(seed: seed)
            let lib = try await store.createLibrary(userId: user.id, name: "lib-\(seed)").id
            let paths = try (0..<Int.random(in: 3...9, using: &rng)).map { try FerryPath("d/f\($0).txt") }
            var current: [String: FileVersion] = [:]
            var pinned = Set<Int64>()
            // Random puts (empty files: no chunks needed) and deletions, some versions attached.
            for _ in 0..<Int.random(in: 10...60, using: &rng) {
                let path = paths.randomElement(using: &rng)!
                let now = current[path.string]
                let op: CommitOperation = if let now, !now.deleted, Int.random(in: 0...3, using: &rng) == 0 {
                    .delete(path, base: now.version)
                } else {
                    .putFile(path, base: now.map { $0.deleted ? nil : $0.version } ?? nil, manifest: ContentManifest(size: 0, sha256: .empty, chunks: []),
                             mtimeNs: Int64.random(in: 1...1_000_000, using: &rng), mode: 0o644)
                }
                let result = try await store.commit(userId: user.id, libraryId: lib, deviceId: nil, operations: [op]).results[0]
                let version = try #require(result.version, "seed \(seed): \(result)")
                current[path.string] = version
                if !version.deleted, Int.random(in: 0...6, using: &rng) == 0 {
                    _ = try await store.attach(userId: user.id, taskId: task.id, AttachRequest(library: lib, path: path, version: version.version))
                    pinned.insert(version.version)
                }
            }
            let before = try await Self.versions(store, lib, paths)
            // A clock some days after a random version, so both the age and the trash limits
            // split the history somewhere.
            let pivot = before.values.flatMap { $0 }.randomElement(using: &rng)!.committedAt
            func maybe(_ r: ClosedRange<Int>) -> Int? { Bool.random(using: &rng) ? Int.random(in: r, using: &rng) : nil }
            var policy = RetentionPolicy(keepVersions: maybe(1...4), keepDays: maybe(0...3), trashDays: maybe(1...3))
            if policy.keepsEverything { policy.keepVersions = 1 }
            let now = pivot.addingTimeInterval(Double(policy.keepDays ?? policy.trashDays ?? 1) * Self.day)
            #expect(try await store.setRetention(userId: user.id, libraryId: lib, policy: policy)?.policy == policy)

            var expectedPurged = 0, expectedRemoved: [Int64] = []
            var expected: [String: [Int64]] = [:]
            for (path, versions) in before {
                let retained = versions.map { RetainedVersion(seq: $0.version, committedAt: $0.committedAt, deleted: $0.deleted) }
                let decision = RetentionRules.decide(retained, policy: policy, pinned: pinned, now: now)
                expectedPurged += decision.purged.count
                if decision.removesPath { expectedRemoved.append(versions.last!.version) }
                let left = versions.map(\.version).filter { !decision.purged.contains($0) }
                if !left.isEmpty { expected[path] = left }
            }
            // Two paths per transaction: the batches must add up to the whole.
            let report = try await store.purge(libraryId: lib, now: now, batchPaths: 2)
            #expect(report.purgedVersions == expectedPurged, "seed \(seed)")
            #expect(report.removedPaths == expectedRemoved.count, "seed \(seed)")
            let after = try await Self.versions(store, lib, paths).mapValues { $0.map(\.version) }
            #expect(after == expected, "seed \(seed) \(policy)")
            // The current version of every path that stays is unchanged; the others are gone from the feed.
            let read = try await store.changes(libraryId: lib, since: 0, limit: 1000)
            let feed = read.page.changes
            #expect(Set(feed.map(\.path.string)) == Set(expected.keys), "seed \(seed)")
            for v in feed { #expect(current[v.path.string]?.version == v.version, "seed \(seed)") }
            #expect(read.purgedThrough == (expectedRemoved.max() ?? 0), "seed \(seed)")
            // A second purge at the same time finds nothing more.
            #expect(try await store.purge(libraryId: lib, now: now).purgedVersions == 0, "seed \(seed)")
        }
    }

    @Test func pinnedAndCurrentSurviveAndGcThenFreesTheChunks() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let store = server.services.store
        try await server.run { api in
            let token = try await api.newUser("alice")
            let lib = try await api.createLibrary("docs", token: token).id
            var seqs: [Int64] = []
            for round in 0..<4 {
                let base = seqs.last
                seqs.append(try #require(try await api.putFile(lib, "report.txt", randomBytes(40_000, seed: UInt64(round)), base: base, token: token).version?.version))
            }
            let user = try #require(try await store.user(named: "alice"))
            let task = try await store.createTask(userId: user.id, CreateTaskRequest(title: "review"))
            let attachment = try await store.attach(userId: user.id, taskId: task.id, AttachRequest(library: lib, path: try FerryPath("report.txt"), version: seqs[0]))

            let set = try await api.call(.put, "/libraries/\(lib)/retention", token: token, json: RetentionPolicy(keepVersions: 1))
            #expect(set.status == .ok, "\(String(buffer: set.body))")
            #expect(try api.decode(LibraryRetention.self, set) == LibraryRetention(library: lib, policy: RetentionPolicy(keepVersions: 1), purgedThrough: 0))
            let report = try await store.purgeAll(now: Date())
            #expect(report.purgedVersions == 2 && report.libraries == 1)
            // The current version and the attached one are left.
            #expect(try await api.history(lib, "report.txt", token: token).versions.map(\.version) == [seqs[3], seqs[0]])
            #expect(try await store.attachmentVersion(userId: user.id, id: attachment.id).version == seqs[0])
            #expect(try await Maintenance.check(store: store, blobs: server.services.blobs).isClean)

            // gc frees the purged versions' chunks (the grace period over), and only those.
            let gone = try await Maintenance.collectGarbage(store: store, blobs: server.services.blobs, grace: 0)
            #expect(gone.removedChunks > 0)
            #expect(try await Maintenance.check(store: store, blobs: server.services.blobs).isClean)
            for seq in [seqs[0], seqs[3]] {
                let r = try await api.call(.get, "/libraries/\(lib)/files?path=report.txt&version=\(seq)", token: token)
                #expect(r.status == .ok)
            }
            let purged = try await api.call(.get, "/libraries/\(lib)/files?path=report.txt&version=\(seqs[1])", token: token)
            #expect(purged.status == .notFound)
            // Restoring the pinned version still works; restoring a purged one is refused.
            let restored = try await api.call(.post, "/libraries/\(lib)/restore", token: token,
                                              json: RestoreRequest(path: try FerryPath("report.txt"), version: seqs[0], base: seqs[3]))
            #expect(restored.status == .created, "\(String(buffer: restored.body))")
            let refused = try await api.call(.post, "/libraries/\(lib)/restore", token: token,
                                             json: RestoreRequest(path: try FerryPath("report.txt"), version: seqs[1], base: nil))
            #expect(refused.status == .notFound || refused.status == .badRequest, "\(refused.status)")
        }
    }

    @Test func expiredDeletionsGoSilentlyAndOldCursorsAreRefused() async throws {
        let server = try await TestServer.make { $0.webhooks.allowPrivateTargets = true }
        defer { server.removeData() }
        let store = server.services.store
        try await server.run { api in
            let token = try await api.newUser("alice")
            let lib = try await api.createLibrary("docs", token: token).id
            let user = try #require(try await store.user(named: "alice"))
            _ = try await store.createWebhook(userId: user.id, createdBy: .init(kind: .session, id: "s"), url: "http://127.0.0.1:9/hook",
                                              events: try EventFilter(["*"]), secret: "a-secret-of-sixteen", active: true,
                                              keepResponseExcerpts: false, tlsFingerprint: nil)
            let keep = try #require(try await api.putFile(lib, "keep.txt", [1, 2, 3], base: nil, token: token).version)
            let old = try #require(try await api.putFile(lib, "old.txt", [4, 5, 6], base: nil, token: token).version)
            let cursor = keep.version
            let deletion = try #require(try await api.commit(lib, [.delete(try FerryPath("old.txt"), base: old.version)], token: token).results[0].version)
            let trashed = try #require(try await api.putFile(lib, "recent.txt", [7], base: nil, token: token).version)
            let recentDeletion = try #require(try await api.commit(lib, [.delete(try FerryPath("recent.txt"), base: trashed.version)], token: token).results[0].version)
            let events = try await server.fetchBytes("SELECT body FROM event").count

            // Only the deletions in the trash: before they expire nothing goes, and the trash lists them.
            let set = try await api.call(.put, "/libraries/\(lib)/retention", token: token, json: RetentionPolicy(trashDays: 2))
            #expect(set.status == .ok)
            #expect(try await store.purgeAll(now: Date()).purgedVersions == 0)
            #expect(try await store.trash(libraryId: lib, directory: nil, after: nil, limit: 10).entries.count == 2)

            // Three days on, both deletions are past their time: the paths go without an event.
            let later = Date().addingTimeInterval(3 * Self.day)
            let report = try await store.purgeAll(now: later)
            #expect(report.removedPaths == 2 && report.purgedVersions == 4)
            #expect(try await server.fetchBytes("SELECT body FROM event").count == events)
            #expect(try await store.trash(libraryId: lib, directory: nil, after: nil, limit: 10).entries.isEmpty)
            #expect(try await api.history(lib, "old.txt", token: token).versions.isEmpty)
            #expect(try await store.current(libraryId: lib, path: try FerryPath("old.txt")) == nil)
            let retention = try await api.call(.get, "/libraries/\(lib)/retention", token: token)
            #expect(try api.decode(LibraryRetention.self, retention).purgedThrough == recentDeletion.version)
            #expect(recentDeletion.version > deletion.version)

            // A device whose cursor is older than a removed deletion may have missed it: 410.
            let stale = try await api.call(.get, "/libraries/\(lib)/changes?since=\(cursor)", token: token)
            #expect(stale.status == .gone && api.errorCode(stale) == "cursor_expired", "\(stale.status)")
            let waiting = try await api.call(.get, "/libraries/\(lib)/changes?since=\(cursor)&wait=1", token: token)
            #expect(waiting.status == .gone)
            // From 0 the whole listing is served; from the head on, the feed goes on as before.
            let whole = try await api.changes(lib, since: 0, token: token)
            #expect(whole.changes.map(\.path.string) == ["keep.txt"])
            #expect(try await api.changes(lib, since: whole.head, token: token).changes.isEmpty)
            // A new file at a removed path starts afresh.
            #expect(try await api.putFile(lib, "old.txt", [9], base: nil, token: token).version != nil)
        }
    }

    /// The check on the woken read: a deletion committed and purged while a long-poll waits
    /// past it is answered with 410, not with a page that silently lacks the delete.
    @Test func aPurgeWhileALongPollWaitsExpiresItsCursor() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let store = server.services.store
        try await server.run(.router) { api in
            let token = try await api.newUser("alice")
            let lib = try await api.createLibrary("docs", token: token).id
            let user = try #require(try await store.user(named: "alice"))
            let old = try #require(try await api.putFile(lib, "old.txt", [1], base: nil, token: token).version)
            #expect(try await api.call(.put, "/libraries/\(lib)/retention", token: token, json: RetentionPolicy(trashDays: 1)).status == .ok)
            async let waited = api.call(.get, "/libraries/\(lib)/changes?since=\(old.version)&wait=120", token: token)
            #expect(await eventuallyTrue(timeout: .seconds(30)) { server.services.notifier.waiterCount == 1 })
            // Straight to the store, so nothing wakes the poll before the purge is done.
            let deletion = try await store.commit(userId: user.id, libraryId: lib, deviceId: nil,
                                                  operations: [.delete(try FerryPath("old.txt"), base: old.version)])
            #expect(try await store.purgeAll(now: Date().addingTimeInterval(2 * Self.day)).removedPaths == 1)
            server.services.notifier.notify(library: lib, head: deletion.head)
            let answer = try await waited
            #expect(answer.status == .gone && api.errorCode(answer) == "cursor_expired", "\(answer.status)")
        }
    }

    @Test func theAPIValidatesAndOnlyTheOwnerSeesOrSets() async throws {
        try await withDevice { api, user, device, lib in
            let uri = "/libraries/\(lib)/retention"
            let initial = try await api.call(.get, uri, token: device)
            #expect(initial.status == .ok)
            #expect(try api.decode(LibraryRetention.self, initial).policy == .keepAll)
            #expect(String(buffer: initial.body).contains(#""keep_versions":null"#))
            let bad = [
                #"{"keep_versions":0}"#, #"{"keep_versions":-1}"#, #"{"keep_days":-2}"#, #"{"trash_days":0}"#,
                #"{"keep_days":99999999}"#, #"{"keep_versions":"3"}"#, #"{"keep_version":3}"#, "not json",
            ]
            for body in bad {
                let r = try await api.call(.put, uri, token: device, body: ByteBuffer(string: body), headers: [.contentType: "application/json"])
                #expect(r.status == .badRequest, "\(body) answered \(r.status)")
            }
            let badMessage = try await api.call(.put, uri, token: device, json: RetentionPolicy(keepVersions: 0))
            #expect(String(buffer: badMessage.body).contains("keep_versions must be between 1"))
            let good = try await api.call(.put, uri, token: device, json: RetentionPolicy(keepVersions: 3, keepDays: 30, trashDays: 14))
            #expect(try api.decode(LibraryRetention.self, good).policy == RetentionPolicy(keepVersions: 3, keepDays: 30, trashDays: 14))
            // Omitted limits are null: keep everything for them.
            let partial = try await api.call(.put, uri, token: user, body: ByteBuffer(string: #"{"keep_days":7}"#), headers: [.contentType: "application/json"])
            #expect(try api.decode(LibraryRetention.self, partial).policy == RetentionPolicy(keepDays: 7))
            // Another user neither sees nor sets it; nobody without credentials does.
            let bob = try await api.newUser("bob")
            #expect(try await api.call(.get, uri, token: bob).status == .notFound)
            #expect(try await api.call(.put, uri, token: bob, json: RetentionPolicy.keepAll).status == .notFound)
            #expect(try await api.call(.get, uri).status == .unauthorized)
            #expect(try await api.call(.get, "/libraries/nope/retention", token: user).status == .notFound)
            #expect(try api.decode(LibraryRetention.self, try await api.call(.get, uri, token: user)).policy == RetentionPolicy(keepDays: 7))
        }
    }

    @Test func theServerPurgesByItselfAndCountsIt() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run { api in
            let token = try await api.newUser("alice")
            let lib = try await api.createLibrary("docs", token: token).id
            var base: Int64?
            for round in 0..<3 { base = try await api.putFile(lib, "a.txt", [UInt8(round)], base: base, token: token).version?.version }
            _ = try await api.call(.put, "/libraries/\(lib)/retention", token: token, json: RetentionPolicy(keepVersions: 1))
            await RetentionService(services: server.services).runOnce()
            #expect(try await api.history(lib, "a.txt", token: token).versions.map(\.version) == [base])
            #expect(server.services.metrics.render().contains("ferry_retention_purged_versions_total 2"))
        }
    }
}
