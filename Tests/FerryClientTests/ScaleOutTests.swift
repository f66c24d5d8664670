@testable import FerryClient
import FerryCore
import FerryServer
import FerryTestSupport
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Several `ferry-server` instances over one PostgreSQL database (SPEC §9): any instance
/// answers any request, commits wake long-polls on the other instances, and each webhook
/// attempt is made by one instance. Runs when `FERRY_TEST_POSTGRES_URL` names a server.
@Suite("scale-out: instances over one PostgreSQL", .enabled(if: Backend.adminURL != nil), .serialized)
struct ScaleOutTests {
    /// Two instances in-process, on one fresh database and one blob directory (the shared
    /// file system of a cluster that keeps blobs as files).
    static func withTwoInstances<T: Sendable>(
        _ configure: @escaping (inout ServerConfiguration) -> Void = { _ in }, _ body: (Cloud, Cloud) async throws -> T
    ) async throws -> T {
        let url = try await Backend.freshDatabase()
        let data = scratchDirectory("cluster")
        let setUp: (inout ServerConfiguration) -> Void = { c in
            c.metadata.url = url
            configure(&c)
        }
        return try await Cloud.with(dataDirectory: data, configure: setUp) { first in
            try await Cloud.with(dataDirectory: data, configure: setUp) { second in try await body(first, second) }
        }
    }

    @Test func aTokenIssuedByOneInstanceIsAcceptedByTheOther() async throws {
        try await Self.withTwoInstances { a, b in
            let user = try await a.user("ann")
            let onA = try await ServerAPI.enroll(serverURL: a.url, username: user.name, password: user.password, deviceName: "laptop")
            let onB = ServerAPI.open(serverURL: b.url, token: onA.device.token)
            let anonymous = ServerAPI.open(serverURL: a.url, token: "")
            let sessionOnB = ServerAPI.open(serverURL: b.url, token: try await anonymous.login(username: user.name, password: user.password).accessToken)
            defer { Task { for api in [onA.api, onB, anonymous, sessionOnB] { await api.close() } } }
            let library = try await onB.createLibrary(name: "docs")
            #expect(try await onA.api.library(named: "docs").id == library.id)
            #expect(try await sessionOnB.library(named: "docs").id == library.id)
        }
    }

    @Test func devicesOnDifferentInstancesConverge() async throws {
        try await Self.withTwoInstances { a, b in
            let user = try await a.user("bea")
            let left = try await Device.make(a, user: user, name: "left")
            let right = try await Device.make(b, user: user, name: "right")
            defer { Task { await left.close(); await right.close() } }
            try left.write("notes.txt", "from the left")
            try left.write("docs/a.md", "# a")
            try right.write("docs/b.md", "# b")
            try await left.sync()
            try await right.sync()
            try await left.sync()
            #expect(left.tree() == right.tree())
            #expect(right.read("notes.txt") == "from the left")
            #expect(left.read("docs/b.md") == "# b")
        }
    }

    /// SPEC §9: a long-poll on one instance is woken by a commit on another through
    /// PostgreSQL's notification, not by its timeout. How fast is measured, not asserted
    /// (the test run shares two cores with every other suite): the delays are printed, and
    /// docs/scaling.md has them from a quiet run.
    @Test func aLongPollOnOneInstanceIsWokenByACommitOnTheOther() async throws {
        try await Self.withTwoInstances { a, b in
            let user = try await a.user("cal")
            let writer = try await Device.make(a, user: user, name: "writer")
            let reader = try await Device.make(b, user: user, name: "reader")
            defer { Task { await writer.close(); await reader.close() } }
            let library = try await reader.api.library(named: "docs")
            var delays: [Duration] = []
            for round in 0..<5 {
                let head = try await reader.api.changes(library: library.id, since: 0).head
                async let woke: ContinuousClock.Instant = {
                    _ = try await reader.api.changes(library: library.id, since: head, wait: 30)
                    return ContinuousClock.now
                }()
                // Give the long-poll time to park on instance B before committing on A.
                try await waitUntil { b.services.notifier.waiterCount > 0 }
                let start = ContinuousClock.now
                _ = try await writer.api.commit(library: library.id, [CommitOperation(op: .put, path: try FerryPath("dir\(round)"), base: nil, kind: .directory)])
                // From the commit's acknowledgement (the wake may even come first).
                let acknowledged = ContinuousClock.now
                let answered = try await woke
                delays.append(answered - acknowledged)
                // A lost notification would leave the long-poll waiting its full 30 s: there is
                // no fallback poll. Seconds of margin for a loaded machine still tell them apart.
                #expect(answered - acknowledged < .seconds(5),
                        "round \(round): answered \(answered - acknowledged) after the commit was acknowledged (\(acknowledged - start) to commit)")
            }
            let median = delays.sorted()[delays.count / 2]
            print("cross-instance wake-ups after the commit's acknowledgement: \(delays), median \(median)")
        }
    }

    @Test func eachWebhookEventIsDeliveredOnceByOneInstance() async throws {
        try await withHookReceiver { url, log in
            try await Self.withTwoInstances({ WebhookTests.fast(&$0) }) { a, b in
                let user = try await a.user("dee")
                let device = try await Device.make(a, user: user, name: "laptop")
                defer { Task { await device.close() } }
                let session = try await device.session()
                let hook = try await session.createWebhook(url: url, events: try EventFilter(["file.*"])).webhook.id
                for n in 0..<20 { try device.write("f\(n).txt", "content \(n)") }
                try await device.sync()
                // Both dispatchers run. Once every delivery is recorded as delivered, no
                // instance holds one or will send it again: a duplicate would have arrived.
                try await waitUntil(seconds: 20) {
                    let recorded = try await session.deliveries(webhook: hook, limit: 100).deliveries.filter { $0.eventType == "file.created" }
                    return recorded.count == 20 && recorded.allSatisfy { $0.state == .delivered }
                }
                let attempts = try await session.deliveries(webhook: hook, limit: 100).deliveries.filter { $0.eventType == "file.created" }.map(\.attempts.count)
                #expect(attempts == Array(repeating: 1, count: 20), "attempts per delivery: \(attempts)")
                let created = await log.of(type: "file.created")
                let ids = created.compactMap { $0.headers["webhook-id"] }
                #expect(created.count == 20 && Set(ids).count == 20, "\(created.count) deliveries of \(Set(ids).count) events")
                // One endpoint gets its events in commit order, whichever instance sent them.
                let versions = created.compactMap { ($0.data["version"] as? NSNumber)?.int64Value }
                #expect(versions == versions.sorted() && versions.count == 20)
                _ = b
            }
        }
    }
}

extension ScaleOutTests {
    /// gc on one instance, with no grace at all, while a device uploads and commits through
    /// the other: whatever gc takes, nothing a committed version names is gone. With blobs in
    /// one S3 bucket, an upload that placed an object gc then deleted is refused
    /// (`blob_collected`, a 503) and the device's next pass sends it again.
    @Test(.eachBlobBackend) func gcOnOneInstanceDeletesNothingLiveWhileTheOtherUploads() async throws {
        try await Self.withTwoInstances { a, b in
            let user = try await a.user("fay")
            let writer = try await Device.make(b, user: user, name: "writer")
            defer { Task { await writer.close() } }
            let runs = Mutex(0)
            let collector = Task {
                while !Task.isCancelled {
                    _ = try await Maintenance.collectGarbage(store: a.services.store, blobs: a.services.blobs, grace: 0)
                    runs.withLock { $0 += 1 }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            for round in 0..<6 {
                for n in 0..<15 { try writer.write("r\(round)/f\(n).txt", "round \(round) file \(n) " + String(repeating: "x", count: n * 997)) }
                do { try await writer.sync() } catch let refusal as APIFailure where refusal.code == "blob_collected" {
                    // The daemon would retry the pass after its back-off; the next round's sync does.
                }
            }
            collector.cancel()
            _ = await collector.result
            #expect(runs.withLock { $0 } > 0)
            // A run cancelled between its decision and its deletes leaves hashes in the trash
            // table (S3), refused to uploads until the next run finishes them.
            _ = try await Maintenance.collectGarbage(store: a.services.store, blobs: a.services.blobs, grace: 3600)
            // With no grace, gc may take chunks sent but not yet committed; the writer sends
            // those again, and now that gc has stopped, everything gets through. Every version
            // committed while gc ran is checked too.
            try await writer.sync()
            let check = try await Maintenance.check(store: a.services.store, blobs: a.services.blobs)
            #expect(check.isClean && check.checked > 0, "\(check)")
            let reader = try await Device.make(a, user: user, name: "reader")
            defer { Task { await reader.close() } }
            try await reader.sync()
            let (got, want) = (reader.tree(), writer.tree())
            #expect(got == want, "differ: \(Set(got.keys).symmetricDifference(want.keys).sorted()) \(want.keys.filter { got[$0] != want[$0] }.sorted())")
        }
    }
}

/// Polls `condition` every 5 ms until it holds, or fails after `seconds`.
func waitUntil(seconds: Double = 10, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw WaitTimedOut(seconds: seconds) }
        try await Task.sleep(for: .milliseconds(5))
    }
}

struct WaitTimedOut: Error, CustomStringConvertible {
    let seconds: Double
    var description: String { "the condition did not hold within \(seconds) s" }
}

/// `ferry-server migrate`: a populated one-box server copied into PostgreSQL (SPEC §9).
@Suite("migrate a one-box server into PostgreSQL", .enabled(if: Backend.adminURL != nil), .serialized)
struct MigrationTests {
    /// A blob damaged on the one-box disk is not copied: the migration stops, naming it, and
    /// the target holds nothing under its name (each blob is read once and checked by the
    /// target's writer).
    @Test(.eachBlobBackend) func aDamagedBlobStopsTheMigrationAndIsNotCopied() async throws {
        var quiet = Logger(label: "ferry-test-migrate")
        quiet.logLevel = .critical
        var oneBox = ServerConfiguration()
        oneBox.dataDirectory = scratchDirectory("one-box-damaged")
        let source = try await BlobBackend.$current.withValue(.file) {
            try await StoreFactory.open(oneBox, threadPool: .singleton, logger: quiet)
        }
        let bytes = ByteBuffer(bytes: seededBytes(100_000, seed: 9)), hash = ContentHash.of(bytes.readableBytesView)
        let writer = try await source.blobs.makeWriter()
        try await writer.write(bytes)
        _ = try source.blobs.publish(try await writer.finish(expected: hash))
        let file = try #require(source.blobs as? FileBlobStore).path(of: hash)
        try Data(repeating: 0, count: 100_000).write(to: URL(fileURLWithPath: file))

        var cluster = ServerConfiguration()
        cluster.dataDirectory = scratchDirectory("cluster-damaged")
        cluster.metadata.url = try await Backend.freshDatabase()
        try await BlobBackend.configure(&cluster)
        let stores = try await StoreFactory.open(cluster, threadPool: .singleton, logger: quiet)
        await #expect(throws: BlobError.hashMismatch(expected: hash, actual: ContentHash.of(Data(repeating: 0, count: 100_000)))) {
            _ = try await Migration(from: oneBox.dataDirectory, into: stores, threadPool: .singleton, logger: quiet).run()
        }
        #expect(try await stores.blobs.exists(hash) == false)
    }

    /// Into PostgreSQL with the blobs in the cluster's data directory, and into PostgreSQL + S3.
    @Test(.eachBlobBackend) func aMigratedServerChecksCleanAndASyncSendsNothing() async throws {
        let oneBox = scratchDirectory("one-box")
        let folder = scratchDirectory("folder-laptop")
        let state = scratchDirectory("state-laptop")
        var user = (name: "", password: "")
        // A one-box server with history, a large and small files, a deletion and a task.
        let target = BlobBackend.current
        let before: [String: String] = try await Backend.$current.withValue(.sqlite) { try await BlobBackend.$current.withValue(.file) {
            try await Cloud.with(dataDirectory: oneBox) { cloud in
                user = try await cloud.user("eve")
                let device = try await Device.make(cloud, user: user, name: "laptop", root: folder, stateDirectory: state)
                defer { Task { await device.close() } }
                try device.write("a.txt", "one")
                try device.write("big.bin", Data(seededBytes(3 << 20, seed: 3)))
                try device.write("gone.txt", "soon deleted")
                try await device.sync()
                try device.write("a.txt", "two")
                try device.remove("gone.txt")
                try await device.sync()
                _ = try await device.session().createTask(CreateTaskRequest(title: "review"))
                return device.tree()
            }
        } }
        // What main's later migrations added: a dashboard sign-in (its cookie's hash) and a
        // webhook pinned to its receiver's certificate.
        var oneBoxConfiguration = ServerConfiguration()
        oneBoxConfiguration.dataDirectory = oneBox
        var quiet = Logger(label: "ferry-test-migrate")
        quiet.logLevel = .critical
        let cookieHash = [UInt8](repeating: 7, count: 32)
        let pin = try CertificateFingerprint(parsing: "SHA256:" + String(repeating: "ab", count: 32))
        let oneBoxStores = try await StoreFactory.open(oneBoxConfiguration, threadPool: .singleton, logger: quiet)
        let eve = try #require(try await oneBoxStores.store.user(named: "eve"))
        _ = try await oneBoxStores.store.createDashboardSession(userId: eve.id, cookieHash: cookieHash, expiresAt: Date().addingTimeInterval(3600))
        _ = try await oneBoxStores.store.createWebhook(userId: eve.id, createdBy: .init(kind: .session, id: "s"), url: "https://127.0.0.1:9/hook",
                                                       events: try EventFilter(["ping"]), secret: "a-secret-of-sixteen", active: true,
                                                       keepResponseExcerpts: false, tlsFingerprint: pin)
        try await oneBoxStores.store.setQuota(userId: eve.id, bytes: 1 << 30)
        let eveAccount = try #require(try await oneBoxStores.store.storageAccount(userId: eve.id))
        let url = try await Backend.freshDatabase()
        let cluster = scratchDirectory("cluster")
        var configuration = ServerConfiguration()
        configuration.dataDirectory = cluster
        configuration.metadata.url = url
        try await BlobBackend.configure(&configuration)
        #expect(try configuration.blobs.s3() != nil || target == .file)
        var logger = Logger(label: "ferry-test-migrate")
        logger.logLevel = .critical
        let stores = try await StoreFactory.open(configuration, threadPool: .singleton, logger: logger)
        let first = try await Migration(from: oneBox, into: stores, threadPool: .singleton, logger: logger).run()
        #expect(first.rows["version"] == 5 && first.rows["ferry_user"] == 1 && first.rows["task"] == 1 && first.blobsCopied > 0)
        // Run again (an interrupted migration is resumed so): nothing is copied twice.
        let again = try await Migration(from: oneBox, into: stores, threadPool: .singleton, logger: logger).run()
        #expect(again.rows.values.allSatisfy { $0 == 0 } && again.blobsCopied == 0 && again.blobsPresent == first.blobsCopied)
        let check = try await Maintenance.check(store: stores.store, blobs: stores.blobs)
        #expect(check.isClean && check.checked > 0)
        #expect(try await stores.store.dashboardIdentity(cookieHash: cookieHash)?.username == "eve")
        #expect(try await stores.store.webhooks(userId: eve.id).map(\.tlsFingerprint) == [pin])
        #expect(try await stores.store.storageAccount(userId: eve.id) == eveAccount && eveAccount.usedBytes > 0)

        try await Cloud.with(dataDirectory: cluster, configure: { $0.metadata.url = url }) { cloud in
            // The same folder and index, now against the cluster: nothing to send, nothing changed.
            let device = try await Device.make(cloud, user: user, name: "laptop", root: folder, stateDirectory: state)
            defer { Task { await device.close() } }
            let report = try await device.sync()
            #expect(report.uploadedBytes == 0)
            #expect(device.tree() == before)
            let history = try await device.api.history(library: try await device.api.library(named: "docs").id, path: try FerryPath("a.txt"))
            #expect(history.versions.count == 2)
            #expect(try await device.session().tasks().tasks.map(\.title) == ["review"])
        }
    }
}
