@testable import FerryClient
import FerryCore
import FerryHarness
import FerryServer
import NIOCore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Faults a sync meets in real life, injected on purpose: the server or the client killed
/// with SIGKILL in the middle of a large sync, a network that resets, hangs or crawls, a
/// server disk that fills up, and clocks that disagree. After each: nothing is lost, the
/// server's store checks clean, the sync completes, and what was committed is not sent again.
@Suite("fault injection", .serialized)
struct FaultInjectionTests {
    /// One large file and a few hundred small ones: about `megabytes` MiB of random bytes,
    /// so no chunk dedupes against another.
    static func writeWorkload(_ device: Device, megabytes: Int, seed: UInt64) throws {
        try writeWorkload(root: device.root, megabytes: megabytes, seed: seed)
    }

    static func writeWorkload(root: String, megabytes: Int, seed: UInt64) throws {
        let large = (megabytes * 3 / 4) << 20
        try seededBytes(large, seed: seed).write(to: URL(fileURLWithPath: root + "/large.bin"))
        var rest = (megabytes << 20) - large
        var i = 0
        while rest > 0 {
            let size = min(rest, 4096 + (i * 7919) % (60 << 10))
            let dir = root + "/small/\(i % 10)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try seededBytes(size, seed: seed &* 1000 &+ UInt64(i)).write(to: URL(fileURLWithPath: dir + "/f\(i).dat"))
            rest -= size
            i += 1
        }
    }

    /// Every chunk of every file under `root`, with sizes.
    static func chunks(under root: String) throws -> [ContentHash: Int64] {
        var out: [ContentHash: Int64] = [:]
        for (path, file) in LocalScanner.scan(root: root, rules: IgnoreRules(userPatterns: "", includeDefaults: true)).entries where file.kind == .file {
            for chunk in try ContentChunker.manifest(ofFileAt: root + "/" + path).chunks { out[chunk.sha256] = chunk.size }
        }
        return out
    }

    /// Bytes of the chunks the server does not hold yet: exactly what a resumed sync should send.
    /// A home logged in as `user` through `proxy` (device "desk"), syncing a fresh folder
    /// with library "docs"; returns the home and the folder.
    static func desk(_ cloud: Cloud, user: (name: String, password: String), via proxy: FaultProxy) async throws -> (CLITests.Home, String) {
        let home = CLITests.Home()
        let login = try await home.ferry(["login", cloud.url(via: proxy.port), "--user", user.name, "--device-name", "desk", "--password-stdin"]
                                         + cloud.loginTrust, stdin: user.password + "\n")
        try #require(login.status == 0, "\(login.err)")
        let folder = scratchDirectory("desk-folder")
        try #require(try await home.ferry("folder", "add", folder, "--library", "docs").status == 0)
        return (home, folder)
    }

    static func bytesStillMissing(_ api: ServerAPI, root: String) async throws -> (missing: Int64, total: Int64) {
        try await bytesStillMissing(api, of: try chunks(under: root))
    }

    static func bytesStillMissing(_ api: ServerAPI, of all: [ContentHash: Int64]) async throws -> (missing: Int64, total: Int64) {
        let missing = try await api.missingChunks(Array(all.keys))
        return (missing.reduce(0) { $0 + all[$1]! }, all.values.reduce(0, +))
    }

    /// Syncs as the daemon would after failures: again, until a pass completes with nothing
    /// deferred. Returns how many attempts failed on the way.
    @discardableResult
    static func syncUntilComplete(_ device: Device, attempts: Int = 40) async throws -> Int {
        var failures = 0
        for _ in 0..<attempts {
            do {
                let report = try await device.sync()
                if report.deferred == 0 && report.problems.isEmpty && report.planned == 0 { return failures }
                if report.deferred > 0 || !report.problems.isEmpty { failures += 1 }
            } catch {
                failures += 1
            }
        }
        Issue.record("\(device.name) did not complete a sync in \(attempts) attempts")
        return failures
    }

    // MARK: crashes

    /// Where in the transfer the kill lands: after this share of the bytes is stored.
    static let killPoints = [0.15, 0.6]

    /// Every kill point over plain HTTP, and the early one over HTTPS (each case costs half a
    /// minute; the early one leaves the most margin for a loaded machine to land the kill mid-sync).
    static let killCases = killPoints.map { ($0, false) } + [(killPoints[0], true)]

    @Test(arguments: killCases)
    func aServerKilledMidSyncLosesNothingAndCommittedChunksAreNotSentAgain(at share: Double, tls: Bool) async throws {
        let user = (name: "ann", password: "ann-password-1")
        let server = try await RealServer.prepare(user: user.name, password: user.password, tls: tls)
        var running = try await server.start()
        let pin = try server.pin()
        // A slow link makes "the middle of the sync" a wide window rather than a race.
        let proxy = try FaultProxy(upstreamPort: server.port, mode: .slow(bytesPerSecond: 12 << 20))
        defer { proxy.stop(); running.kill9() }
        // One upload batch at a time, so batches are recorded one after another and a kill
        // after one of them finds the next still on its way.
        let a = try await Device.make(serverURL: server.url(via: proxy.port), user: user, name: "a", parallelism: 1, pin: pin)
        let direct = ServerAPI.open(serverURL: server.url, token: a.config.deviceToken, pin: pin)
        defer { Task { await a.close(); await direct.close() } }
        try Self.writeWorkload(a, megabytes: 24, seed: 61)

        let all = try Self.chunks(under: a.root)
        let pass = Task { try await a.sync() }
        // Killed once `share` of the bytes are recorded by the server, not merely written:
        // a batch's blobs appear a moment before its rows do.
        #expect(await eventually {
            guard let (missing, total) = try? await Self.bytesStillMissing(direct, of: all) else { return false }
            return Double(total - missing) >= share * Double(total)
        })
        running.kill9()
        _ = await pass.result

        let check = try await server.check()
        #expect(check.status == 0, "check after SIGKILL: \(check.out)")
        running = try await server.start()
        proxy.set(.pass)
        let (missing, total) = try await Self.bytesStillMissing(a.api, root: a.root)
        #expect(missing > 0 && missing < total, "the kill should land mid-sync: \(missing) of \(total) missing")

        let report = try await a.sync()
        #expect(report.uploadedBytes == missing, "a resumed sync sends exactly the chunks the server lacks")
        #expect(report.deferred == 0 && report.problems.isEmpty)
        let b = try await Device.make(serverURL: server.url, user: user, name: "b", pin: pin)
        defer { Task { await b.close() } }
        try await b.sync()
        #expect(b.tree() == a.tree())
        #expect(try await server.check().status == 0)
    }

    @Test(arguments: killCases)
    func aClientKilledMidSyncResumesWithoutSendingCommittedChunksAgain(at share: Double, tls: Bool) async throws {
        let data = scratchDirectory("server-client-kill")
        try await Cloud.with(dataDirectory: data, tls: tls) { cloud in
            let user = try await cloud.user("bea")
            let proxy = try FaultProxy(upstreamPort: cloud.port, mode: .slow(bytesPerSecond: 12 << 20))
            defer { proxy.stop() }
            let (home, folder) = try await Self.desk(cloud, user: user, via: proxy)
            // Twice the server test's size: uploads go in 8 MiB batches, several at once, and a
            // batch the server has fully received completes even after the client dies, so
            // a kill point needs batches still unsent behind it.
            try Self.writeWorkload(root: folder, megabytes: 48, seed: 62)

            // The real `ferry sync`, killed with SIGKILL once `share` of the bytes are stored.
            let process = try ChildProcess(CLITests.binary("ferry"), ["sync"], environment: home.environment)
            #expect(await eventually { RealServer.storedBlobBytes(in: data) >= Int64(share * Double(48 << 20)) })
            #expect(try process.stop(SIGKILL) == .signalled(SIGKILL))
            // The dead client's sockets are gone; the bytes it had already handed to the kernel
            // must not trickle in later.
            proxy.resetAll()
            #expect(await eventually { proxy.openConnections == 0 })

            let (checker, _) = try await ServerAPI.enroll(serverURL: cloud.url, username: user.name, password: user.password, deviceName: "checker",
                                                          pin: cloud.pin)
            defer { Task { await checker.close() } }
            let (missing, total) = try await Self.bytesStillMissing(checker, root: folder)
            #expect(missing > 0 && missing < total, "the kill should land mid-sync: \(missing) of \(total) missing")

            // The same client again, on the same index: completes and sends only what is missing.
            let again = try await home.ferry("sync", "--json")
            #expect(again.status == 0, "\(again.err)")
            struct Output: Decodable { let folders: [String: PassReport] }
            let report = try #require(try JSONCoding.decoder.decode(Output.self, from: Data(again.out.utf8)).folders[folder])
            #expect(report.uploadedBytes == missing)

            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await b.close() } }
            try await b.sync()
            #expect(b.tree() == Device.tree(at: folder).filter { !$0.key.hasPrefix(".ferry") })
            let check = try await Maintenance.check(store: cloud.services.store, blobs: cloud.services.blobs)
            #expect(check.isClean)
        }
    }

    // MARK: the network

    @Test(arguments: plainAndTLS) func connectionsResetMidTransferOnlyDelayTheSync(tls: Bool) async throws {
        try await Cloud.with(tls: tls) { cloud in
            let user = try await cloud.user("cal")
            // Every 11 MiB of traffic, the connection carrying it is reset: uploads (sent in
            // batches of up to 8 MiB) and downloads are cut mid-request again and again.
            let proxy = try FaultProxy(upstreamPort: cloud.port, mode: .cutEvery(bytes: 11 << 20))
            defer { proxy.stop() }
            let a = try await Device.make(serverURL: cloud.url(via: proxy.port), user: user, name: "a", pin: cloud.pin)
            let b = try await Device.make(serverURL: cloud.url(via: proxy.port), user: user, name: "b", pin: cloud.pin)
            defer { Task { await a.close(); await b.close() } }
            try Self.writeWorkload(a, megabytes: 32, seed: 63)

            try await Self.syncUntilComplete(a)
            // large.bin (24 MiB) never fits between two cuts: b gets it only because each
            // attempt resumes the unfinished download after its verified chunks.
            try await Self.syncUntilComplete(b)
            #expect(proxy.cuts >= 4, "the proxy should have cut several transfers, cut \(proxy.cuts)")
            #expect(b.tree() == a.tree())
            // No half-downloaded file stayed behind, and nothing torn was committed.
            #expect(!b.tree().keys.contains { $0.contains(".ferry-partial-") })
            let check = try await Maintenance.check(store: cloud.services.store, blobs: cloud.services.blobs)
            #expect(check.isClean)
        }
    }

    @Test func unfinishedDownloadsAreNeverSyncedAndAreSweptOnceStale() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("cyd")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            try a.mkdir("sub")
            try a.write("sub/" + LocalScanner.partialPrefix + "stale", "left by a download abandoned two days ago")
            try a.write(LocalScanner.partialPrefix + "fresh", "a download to resume")
            try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-2 * 86400)],
                                                  ofItemAtPath: a.root + "/sub/" + LocalScanner.partialPrefix + "stale")
            // A link in place of a download's temp file is replaced, never written through.
            let bait = scratchDirectory("bait") + "/precious.txt"
            try Data("not yours".utf8).write(to: URL(fileURLWithPath: bait))
            try b.mkdir("sub")
            try FileManager.default.createSymbolicLink(atPath: b.root + "/sub/" + Downloads.partialName(for: b.root + "/sub/report.txt"),
                                                       withDestinationPath: bait)
            try a.write("sub/report.txt", "the real report")
            try await a.sync()
            try await b.sync()
            #expect(b.read("sub/report.txt") == "the real report")
            #expect(String(decoding: try Data(contentsOf: URL(fileURLWithPath: bait)), as: UTF8.self) == "not yours")
            #expect(!a.exists("sub/" + LocalScanner.partialPrefix + "stale"))
            #expect(a.exists(LocalScanner.partialPrefix + "fresh"))
            #expect(b.tree() == ["sub": "dir", "sub/report.txt": a.tree()["sub/report.txt"]!])
        }
    }

    @Test(.timeLimit(.minutes(2)), arguments: plainAndTLS) func aStalledConnectionFailsTheRequestInsteadOfHangingTheSync(tls: Bool) async throws {
        try await Cloud.with(tls: tls) { cloud in
            let user = try await cloud.user("dee")
            let proxy = try FaultProxy(upstreamPort: cloud.port)
            defer { proxy.stop() }
            let a = try await Device.make(serverURL: cloud.url(via: proxy.port), user: user, name: "a", timeouts: .init(connect: .seconds(2), stall: .seconds(1)),
                                          pin: cloud.pin)
            defer { Task { await a.close() } }
            try Self.writeWorkload(a, megabytes: 4, seed: 64)

            // The link hangs: connections stay open and nothing moves, in either direction.
            proxy.set(.stall)
            let started = ContinuousClock.now
            var failed = false
            do {
                let report = try await a.sync()
                failed = report.deferred > 0 || !report.problems.isEmpty
            } catch {
                failed = true
            }
            #expect(failed)
            #expect(ContinuousClock.now - started < .seconds(60), "a stall must cost about the stall timeout, not the request deadline")

            // The link recovers: the next attempt completes and nothing was lost.
            proxy.set(.pass)
            try await Self.syncUntilComplete(a)
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await b.close() } }
            try await b.sync()
            #expect(b.tree() == a.tree())
        }
    }

    // MARK: disks

    @Test(.enabled(if: canMount)) func aFullServerDiskAnswers507AndCommitsNothingPartial() async throws {
        try await withTmpfs(size: "12m") { data in
            try await Cloud.with(dataDirectory: data) { cloud in
                let user = try await cloud.user("eve")
                let a = try await Device.make(cloud, user: user, name: "a")
                defer { Task { await a.close() } }
                // The second device registers while there is room: registering is a write,
                // which a full disk refuses (507) like any other.
                let b = try await Device.make(cloud, user: user, name: "b")
                defer { Task { await b.close() } }
                try Self.writeWorkload(a, megabytes: 20, seed: 65)

                // The real file system runs out of space under the server (no reserve set).
                var refusal: String?
                do {
                    let report = try await a.sync()
                    refusal = report.problems.values.first
                } catch {
                    refusal = "\(error)"
                }
                let said = try #require(refusal, "a sync of 20 MiB onto a 12 MiB disk cannot succeed")
                #expect(said.contains("507") || said.contains("out of storage"), "\(said)")
                // Requests still in flight when the client gave up end too; none leaves a staged file.
                let staged = { (try? FileManager.default.contentsOfDirectory(atPath: data + "/tmp")) ?? ["unreadable"] }
                #expect(await eventually(timeout: .seconds(10)) { staged().isEmpty }, "staged uploads left behind: \(staged())")
                var check = try await Maintenance.check(store: cloud.services.store, blobs: cloud.services.blobs)
                #expect(check.isClean)

                // What was committed is whole: a second device gets complete files or none.
                try await b.sync()
                let theirs = b.tree(), mine = a.tree()
                for (path, content) in theirs { #expect(mine[path] == content, "\(path) arrived different from the original") }

                // The operator frees space: the same sync completes.
                try await remountTmpfs(data, size: "64m")
                try await Self.syncUntilComplete(a)
                try await b.sync()
                #expect(b.tree() == a.tree())
                check = try await Maintenance.check(store: cloud.services.store, blobs: cloud.services.blobs)
                #expect(check.isClean)
            }
        }
    }

    // MARK: a server restored from a backup

    @Test func aServerRestoredFromAnOlderBackupStopsTheSyncAndNothingIsLost() async throws {
        let data = scratchDirectory("restored-server")
        let backup = data + "-backup"
        let port = try freeLoopbackPort()
        let user = (name: "gil", password: "gil-password-1")
        // The first life of the server: a device syncs one file, then the operator backs up.
        let (aRoot, aState) = try await Cloud.with(dataDirectory: data, port: port) { cloud in
            _ = try await cloud.services.store.createUser(username: user.name, passwordHash: try cloud.services.passwords.hash(user.password), isAdmin: false)
            let a = try await Device.make(cloud, user: user, name: "a")
            try a.write("kept.txt", "in the backup")
            try await a.sync()
            await a.close()
            return (a.root, a.stateDirectory)
        }
        try FileManager.default.copyItem(atPath: data, toPath: backup)
        // After the backup: more work reaches the server.
        try await Cloud.with(dataDirectory: data, port: port) { cloud in
            let a = try await Device.make(cloud, user: user, name: "a", root: aRoot, stateDirectory: aState)
            try a.write("later.txt", "made after the backup")
            try a.write("kept.txt", "edited after the backup")
            try await a.sync()
            await a.close()
        }
        // The server's disk dies; the operator restores the backup.
        try FileManager.default.removeItem(atPath: data)
        try FileManager.default.moveItem(atPath: backup, toPath: data)
        try await Cloud.with(dataDirectory: data, port: port) { cloud in
            let a = try await Device.make(cloud, user: user, name: "a", root: aRoot, stateDirectory: aState)
            defer { Task { await a.close() } }
            let before = a.tree()
            await #expect(throws: ClientError.self) { try await a.sync() }
            do { try await a.sync() } catch { #expect("\(error)".contains("restored from a backup")) }
            #expect(a.tree() == before, "nothing changes on the device")

            // The way out the message gives: a fresh index compares by content.
            let fresh = try await Device.make(cloud, user: user, name: "a2", root: aRoot)
            defer { Task { await fresh.close() } }
            try await fresh.sync()
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await b.close() } }
            try await b.sync()
            #expect(b.read("later.txt") == "made after the backup")
            // The file the backup holds an older version of: both versions survive, the
            // device's newer one as a conflict copy.
            let kept = Set(b.tree().keys.filter { $0.hasPrefix("kept") }.compactMap { b.read($0) })
            #expect(kept == ["in the backup", "edited after the backup"])
            #expect(b.tree() == fresh.tree())
        }
    }

    // MARK: clocks

    /// Sets a file's modification time `offset` seconds from now: a device whose clock is off.
    static func skew(_ device: Device, _ path: String, by offset: TimeInterval) throws {
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(offset)], ofItemAtPath: device.root + "/" + path)
    }

    @Test func clockSkewDoesNotDecideWhichEditWins() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("fox")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            let year: TimeInterval = 365 * 86400

            // a's clock runs a year ahead. b's later edit has an older mtime and still wins,
            // because it was made on top of a's version.
            try a.write("plan.txt", "from a, clock ahead")
            try Self.skew(a, "plan.txt", by: year)
            try await a.sync()
            try await b.sync()
            try b.write("plan.txt", "from b, edited after seeing a's")
            try await b.sync()
            try await a.sync()
            #expect(a.read("plan.txt") == "from b, edited after seeing a's")

            // b's clock runs a year behind and a's ahead; they edit at the same time. Neither
            // mtime decides: the first commit wins the name and the other is kept as a copy.
            try a.write("plan.txt", "a's concurrent edit")
            try Self.skew(a, "plan.txt", by: year)
            try b.write("plan.txt", "b's concurrent edit")
            try Self.skew(b, "plan.txt", by: -year)
            try await b.sync()
            try await a.sync()
            try await b.sync()
            #expect(a.tree() == b.tree())
            let contents = Set(a.tree().keys.filter { $0.hasPrefix("plan") }.compactMap { a.read($0) })
            #expect(contents == ["a's concurrent edit", "b's concurrent edit"])
            #expect(b.read("plan.txt") == "b's concurrent edit")

            // A file whose mtime is moved into the past (a restore from backup, `touch -d`) with
            // new content is still uploaded, and other devices take it.
            try a.write("notes.txt", "old")
            try await a.sync()
            try await b.sync()
            try a.write("notes.txt", "restored from an old backup")
            try Self.skew(a, "notes.txt", by: -3 * year)
            try await a.sync()
            try await b.sync()
            #expect(b.read("notes.txt") == "restored from an old backup")
        }
    }
}
