@testable import FerryClient
import FerryCore
import FerryHarness
import Foundation
import Logging
import ServiceLifecycle
import Testing

/// The real `ferryd` under its service group: SIGTERM in the middle of a sync ends it
/// cleanly and promptly, and the daemon started again sends only what was not yet stored.
@Suite("ferryd shutdown", .serialized)
struct DaemonShutdownTests {
    /// In-process, as ferryd runs it: a graceful shutdown of the group ends the daemon, and
    /// its socket file is gone.
    @Test(.timeLimit(.minutes(1))) func aGracefulShutdownEndsTheDaemonAndRemovesItsSocket() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("gus")
            let a = try await Device.make(cloud, user: user, name: "a")
            defer { Task { await a.close() } }
            let daemon = DaemonTests.daemon(a)
            let socket = DaemonTests.locations(a).socketPath
            var logger = Logger(label: "ferryd-test-group")
            logger.logLevel = .critical
            let group = ServiceGroup(configuration: .init(services: [daemon], logger: logger))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                #expect(await eventually { daemon.board.snapshot.folders[0].lastSyncAt != nil })
                #expect(FileManager.default.fileExists(atPath: socket))
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            #expect(!FileManager.default.fileExists(atPath: socket))
            #expect(DaemonControl.statusDocument(socketPath: socket) == nil)
        }
    }

    @Test func sigtermMidSyncExitsCleanlyAndARestartSendsOnlyWhatIsMissing() async throws {
        let data = scratchDirectory("server-ferryd-term")
        try await Cloud.with(dataDirectory: data) { cloud in
            let user = try await cloud.user("dee")
            // Slow enough that the upload is still running when the signal comes.
            let proxy = try FaultProxy(upstreamPort: cloud.port, mode: .slow(bytesPerSecond: 4 << 20))
            defer { proxy.stop() }
            let (home, folder) = try await FaultInjectionTests.desk(cloud, user: user, via: proxy)
            try FaultInjectionTests.writeWorkload(root: folder, megabytes: 48, seed: 64)
            let socket = ClientLocations.standard(environment: home.environment).socketPath

            let first = try UsabilityTests.Daemon(home)
            defer { first.stop() }
            #expect(await eventually { FileManager.default.fileExists(atPath: socket) })
            // Mid-upload: the pass has planned (the status shows what is queued) and sent a part.
            #expect(await eventually(timeout: .seconds(60)) {
                let queued = try? await UsabilityTests.status(home)?.folders.first?.queuedBytes
                return (queued ?? 0) > 0 && RealServer.storedBlobBytes(in: data) >= Int64(8 << 20)
            })
            let signalled = ContinuousClock.now
            first.process.terminate()
            // Promptly: the rest of the upload would take seconds more through the proxy.
            #expect(await eventually(timeout: .seconds(10)) { !first.process.isRunning })
            first.stop()
            let stopping = ContinuousClock.now - signalled
            // Bytes the daemon had handed to the kernel must not trickle in later.
            proxy.resetAll()
            #expect(await eventually { proxy.openConnections == 0 })
            #expect(try first.process.wait() == .exited(0), "\(first.log)")
            #expect(!FileManager.default.fileExists(atPath: socket))
            #expect(first.log.contains("ferryd stopped"), "\(first.log)")

            let (checker, _) = try await ServerAPI.enroll(serverURL: cloud.url, username: user.name, password: user.password, deviceName: "checker",
                                                          pin: cloud.pin)
            defer { Task { await checker.close() } }
            let (missing, total) = try await FaultInjectionTests.bytesStillMissing(checker, root: folder)
            // The pass stops at its next safe point, letting uploads in flight finish (about 3 s
            // here), so the first daemon may have stored every chunk; it must have stopped first.
            #expect(missing < total, "\(missing) of \(total) missing; stopping took \(stopping); log: \(first.log)")

            // Started again on the same index: it completes, having sent only what was missing.
            let second = try UsabilityTests.Daemon(home)
            defer { second.stop() }
            #expect(await eventually(timeout: .seconds(60)) {
                (try? await FaultInjectionTests.bytesStillMissing(checker, root: folder).missing) == 0
            })
            var folderStatus: FolderStatus?
            #expect(await eventually {
                folderStatus = try? await UsabilityTests.status(home)?.folders.first
                return folderStatus?.state == .idle && folderStatus?.lastSyncAt != nil
            })
            #expect((folderStatus?.transferredBytes ?? 0) == missing)
        }
    }
}
