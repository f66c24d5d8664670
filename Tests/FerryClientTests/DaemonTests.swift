@testable import FerryClient
import FerryCore
import Foundation
import Logging
import NIOPosix
import Testing

/// Real daemons (in this process) on temp folders against the real server on loopback.
@Suite("ferryd", .serialized)
struct DaemonTests {
    static func locations(_ device: Device) -> ClientLocations {
        ClientLocations(configFile: device.stateDirectory + "/config.json", stateDirectory: device.stateDirectory + "/daemon",
                        socketPath: device.stateDirectory + "/ferryd.sock")
    }

    static func daemon(_ device: Device, fullPasses: Bool = false) -> FerryDaemon {
        var logger = Logger(label: "ferryd-test-\(device.name)")
        logger.logLevel = .critical
        var config = device.config
        config.fullPasses = fullPasses
        return FerryDaemon(config: config, locations: locations(device), logger: logger)
    }

    @Test func aRunningDaemonPropagatesANewFileToAnother() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("jo")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            let da = Self.daemon(a), db = Self.daemon(b)
            let runA = Task { try await da.run() }
            let runB = Task { try await db.run() }
            defer { runA.cancel(); runB.cancel() }
            #expect(await eventually { da.board.snapshot.folders[0].lastSyncAt != nil && db.board.snapshot.folders[0].lastSyncAt != nil })

            try a.write("new/hello.txt", "hello from a")
            #expect(await eventually { b.read("new/hello.txt") == "hello from a" })
            try b.write("reply.txt", "and back")
            #expect(await eventually { a.read("reply.txt") == "and back" })
            try a.remove("new/hello.txt")
            #expect(await eventually { !b.exists("new/hello.txt") })

            // `ferry status` reads the same board over the control socket.
            let answer = try #require(DaemonControl.statusDocument(socketPath: Self.locations(a).socketPath))
            let status = try DaemonStatus(json: answer)
            #expect(status.device == "a")
            #expect(status.folders.map(\.path) == [a.root])
        }
    }

    /// While the watcher runs, a change is synced by passes over its paths alone (on the
    /// device that made it, and on the one the feed told), and what the watcher could not
    /// report (a file its old ignore rules left out) is found by the full pass that follows
    /// an edit of `.ferryignore`, after which the watcher reports such names.
    @Test func passesLookOnlyAtWhatChangedAndAnIgnoreEditBringsAFullOne() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("sam")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            try a.write(".ferryignore", "*.tmp\n")
            for i in 0..<50 { try a.write("tree/\(i % 5)/\(i).txt", "file \(i)") }
            let da = Self.daemon(a), db = Self.daemon(b)
            let runA = Task { try await da.run() }
            let runB = Task { try await db.run() }
            defer { runA.cancel(); runB.cancel() }
            #expect(await eventually { b.read("tree/4/49.txt") == "file 49" })

            try a.write("tree/2/12.txt", "edited")
            try a.move("tree/3", "moved")
            #expect(await eventually { b.read("tree/2/12.txt") == "edited" && b.read("moved/13.txt") == "file 13" && !b.exists("tree/3") })
            #expect(await eventually { (da.board.snapshot.folders[0].lastPass?.scopedPasses ?? 0) > 0 })
            #expect(await eventually { (db.board.snapshot.folders[0].lastPass?.scopedPasses ?? 0) > 0 })

            try a.write("draft.tmp", "ignored for now")
            try a.write("after.txt", "after the draft")
            #expect(await eventually { b.read("after.txt") == "after the draft" })
            #expect(!b.exists("draft.tmp"))
            try a.write(".ferryignore", "# nothing ignored\n")
            #expect(await eventually { b.read("draft.tmp") == "ignored for now" })
            // The watcher started again with the new rules: it reports such names now.
            try a.write("later.tmp", "seen by the watcher")
            #expect(await eventually { b.read("later.tmp") == "seen by the watcher" })
        }
    }

    /// `full_passes` (a folder on a network mount): every pass walks the whole folder.
    @Test func fullPassesKeepEveryPassWhole() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("lee")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            let da = Self.daemon(a, fullPasses: true), db = Self.daemon(b, fullPasses: true)
            let runA = Task { try await da.run() }
            let runB = Task { try await db.run() }
            defer { runA.cancel(); runB.cancel() }
            #expect(await eventually { da.board.snapshot.folders[0].lastSyncAt != nil && db.board.snapshot.folders[0].lastSyncAt != nil })
            for i in 0..<3 {
                try a.write("f\(i).txt", "\(i)")
                #expect(await eventually { b.read("f\(i).txt") == "\(i)" })
            }
            #expect(da.board.snapshot.folders[0].lastPass?.scopedPasses == 0)
            #expect(db.board.snapshot.folders[0].lastPass?.scopedPasses == 0)
            let saved = #"{"server_url":"u","username":"n","device_id":"d","device_name":"x","device_token":"t""#
            #expect(try JSONDecoder().decode(ClientConfig.self, from: Data((saved + #","full_passes":true}"#).utf8)).fullPasses)
            #expect(try JSONDecoder().decode(ClientConfig.self, from: Data((saved + "}").utf8)).fullPasses == false)
        }
    }

    @Test func workMadeWhileTheServerIsDownIsSentWhenItReturns() async throws {
        let data = scratchDirectory("server")
        let (a, b, port) = try await Cloud.with(dataDirectory: data) { cloud in
            let user = try await cloud.user("olu")
            return (try await Device.make(cloud, user: user, name: "a"), try await Device.make(cloud, user: user, name: "b"), cloud.port)
        }
        defer { Task { await a.close(); await b.close() } }
        // The server is down: the daemon starts anyway, reports it, and keeps the work.
        let da = Self.daemon(a)
        let run = Task { try await da.run() }
        defer { run.cancel() }
        try a.write("offline.txt", "written while the NAS was off")
        #expect(await eventually { da.board.snapshot.folders[0].state == .offline })
        #expect(da.board.snapshot.folders[0].lastError != nil)
        // Back on the same port: the daemon's backoff finds it and the file arrives.
        try await Cloud.with(dataDirectory: data, port: port) { _ in
            #expect(await eventually(timeout: .seconds(40)) {
                (try? await b.sync()) != nil && b.read("offline.txt") == "written while the NAS was off"
            })
            #expect(await eventually { da.board.snapshot.folders[0].state == .idle })
        }
    }

    @Test func theConflictCountFallsOnceTheConflictIsResolved() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("cy")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            try a.write("plan.txt", "v1")
            try await a.sync()
            try await b.sync()
            try a.write("plan.txt", "a's edit")
            try await a.sync()
            try b.write("plan.txt", "b's edit")

            // B's daemon finds the conflict on its first pass and counts it.
            let db = Self.daemon(b)
            let run = Task { try await db.run() }
            defer { run.cancel() }
            #expect(await eventually { db.board.snapshot.folders[0].conflicts == 1 })
            let open = try await a.api.conflicts(library: a.sync.folder.libraryId)
            #expect(open.count == 1)

            // Settled elsewhere: the copy's delete reaches B, and the count falls with it.
            _ = try await a.api.resolveConflict(id: try #require(open.first).id, keep: .theirs)
            #expect(await eventually { db.board.snapshot.folders[0].conflicts == 0 && b.tree().keys.allSatisfy { !ConflictName.isConflictCopy($0) } })
        }
    }

    /// `DaemonControl.reload` off the cooperative pool: it waits on the socket.
    static func reload(_ device: Device) async throws -> DaemonControl.ReloadOutcome {
        try await NIOThreadPool.singleton.runIfActive { DaemonControl.reload(socketPath: Self.locations(device).socketPath) }
    }

    @Test func aReloadFollowsTheConfigFileAndKeepsTheFoldersWhenItIsBroken() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("rel")
            let a = try await Device.make(cloud, user: user, name: "a")
            defer { Task { await a.close() } }
            let configFile = Self.locations(a).configFile
            #expect(try await Self.reload(a) == .notRunning)
            try a.config.save(to: configFile)
            let daemon = Self.daemon(a)
            let run = Task { try await daemon.run() }
            defer { run.cancel() }
            #expect(await eventually { daemon.board.snapshot.folders.first?.lastSyncAt != nil })

            // A broken file: said so, and the folder goes on being synced.
            try Data("{ not json".utf8).write(to: URL(fileURLWithPath: configFile))
            let broken = try await Self.reload(a)
            guard case .failed(let why) = broken else { Issue.record("reloaded a broken config: \(broken)"); return }
            #expect(why.contains("is not a valid Ferry configuration") && why.contains("the folders synced stay as they were"), "\(why)")
            #expect(daemon.board.snapshot.folders.map(\.path) == [a.root])
            try a.write("still.txt", "synced after the failed reload")
            #expect(try await eventually { try await a.api.history(library: a.config.folders[0].libraryId, path: FerryPath("still.txt")).versions.count == 1 })

            // The folder removed: its loop stops.
            var none = a.config
            none.folders = []
            try none.save(to: configFile)
            #expect(try await Self.reload(a) == .reloaded(folders: []))
            #expect(daemon.board.snapshot.folders.isEmpty)
            // Back again: a new loop syncs what was written meanwhile.
            try a.write("meanwhile.txt", "written while not synced")
            try a.config.save(to: configFile)
            #expect(try await Self.reload(a) == .reloaded(folders: [a.root]))
            #expect(try await eventually { try await a.api.history(library: a.config.folders[0].libraryId, path: FerryPath("meanwhile.txt")).versions.count == 1 })
        }
    }

    @Test func aSecondDaemonOnTheSameSocketIsRefused() async throws {
        let dir = scratchDirectory("socket")
        let first = try ControlSocket(path: dir + "/s.sock") { _ in .refused("first") }
        defer { first.stop() }
        #expect(throws: ClientError.self) { _ = try ControlSocket(path: dir + "/s.sock") { _ in .refused("second") } }
        #expect(try ControlSocket.ask(path: dir + "/s.sock", .status) == .refused("first"))
    }

    /// `ferry folder confirm-deletes`: a folder's held deletes are let through, and its pass
    /// started, only where the guard holds some; no daemon and nothing held are told apart.
    @Test func confirmDeletesReachesOnlyAFolderThatHoldsDeletes() async throws {
        let socket = scratchDirectory("socket") + "/s.sock"
        #expect(DaemonControl.confirmDeletes(socketPath: socket, folder: "/f") == .notRunning)
        let board = StatusBoard(server: "s", device: "d", folders: [FolderConfig(path: "/f", libraryId: "l", libraryName: "f")])
        let triggers = TriggerTable()
        let (passes, startPass) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        triggers.register("/f", startPass)
        let (_, reload) = AsyncStream<ReloadTicket>.makeStream()
        let control = try ControlSocket(path: socket) { FerryDaemon.answer($0, board: board, triggers: triggers, reload: reload) }
        defer { control.stop() }

        #expect(DaemonControl.confirmDeletes(socketPath: socket, folder: "/f") == .nothingWaiting)
        #expect(!board.takeConfirmation("/f"))
        board.update("/f") { $0.massDelete = MassDeletePause(remoteDeletes: 0, localDeletes: 120, entries: 150) }
        #expect(DaemonControl.confirmDeletes(socketPath: socket, folder: "/other") == .nothingWaiting)
        #expect(DaemonControl.confirmDeletes(socketPath: socket, folder: "/f") == .confirmed)
        #expect(board.takeConfirmation("/f"))
        startPass.finish()
        var started = 0
        for await _ in passes { started += 1 }
        #expect(started == 1)
    }

    /// The config watch reports a change once, and none that a reload already read.
    @Test func theConfigWatchSkipsAChangeAReloadAlreadyRead() throws {
        let file = scratchDirectory("config") + "/config.json"
        try Data("{}".utf8).write(to: URL(fileURLWithPath: file))
        let watch = ConfigFileWatch(path: file)
        #expect(!watch.changedSinceRead())
        try AtomicFile.write(Data("{ }".utf8), to: file, mode: 0o600)
        #expect(watch.changedSinceRead())
        #expect(!watch.changedSinceRead())
        // Saved, then read by a reload: nothing left for the watch.
        try AtomicFile.write(Data("{  }".utf8), to: file, mode: 0o600)
        watch.markRead()
        #expect(!watch.changedSinceRead())
    }

    /// A reload keeps the folder loops running only when nothing but the folder list changed.
    @Test func onlyAChangedFolderListKeepsTheLoopsRunning() {
        let base = ClientConfig(serverURL: "https://nas:8720", username: "u", deviceId: "d", deviceName: "n", deviceToken: "t")
        var folders = base
        folders.folders = [FolderConfig(path: "/f", libraryId: "l", libraryName: "f")]
        #expect(FerryDaemon.sameSettings(base, folders))
        var tuned = base
        tuned.settleMilliseconds = 1000
        #expect(!FerryDaemon.sameSettings(base, tuned))
        var token = folders
        token.deviceToken = "t2"
        #expect(!FerryDaemon.sameSettings(folders, token))
        var server = base
        server.serverURL = "https://other:8720"
        #expect(!FerryDaemon.sameSettings(server, base))
    }

    @Test func backoffGrowsWithJitterAndIsCapped() {
        var backoff = Backoff(base: .seconds(1), cap: .seconds(60))
        var last = Duration.zero
        for attempt in 1...12 {
            let wait = backoff.next()
            let ceiling = min(Duration.seconds(60), .seconds(1) * (1 << (attempt - 1)))
            #expect(wait <= ceiling && wait >= ceiling / 2)
            last = wait
        }
        #expect(last >= .seconds(30))
        backoff.reset()
        #expect(backoff.next() <= .seconds(1))
    }
}
