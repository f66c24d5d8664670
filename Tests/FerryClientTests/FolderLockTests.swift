@testable import FerryClient
import FerryCore
import Foundation
import Logging
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One process at a time syncs a folder (issue 20, item 11): a second waits for the first,
/// and gives up with a sentence naming it.
@Suite("Folder lock", .serialized)
struct FolderLockTests {
    /// `device`'s folder synced by another `FolderSync` (as another process would), waiting
    /// at most `timeout` for the lock.
    static func second(_ device: Device, timeout: Duration) throws -> FolderSync {
        var logger = Logger(label: "ferry-test-second")
        logger.logLevel = .critical
        return try FolderSync(folder: device.sync.folder, index: device.index, api: device.api, deviceName: device.name,
                              lockTimeout: timeout, logger: logger)
    }

    @Test func aSecondSyncOfTheFolderWaitsForTheFirstOrSaysWhoHoldsIt() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("lok")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await b.close() } }
            try b.write("notes.txt", "one")
            let held = try await FolderLock.acquire(root: b.root, timeout: .seconds(1))

            // Refused after the wait, with whom it waited for.
            let impatient = try Self.second(b, timeout: .milliseconds(200))
            do {
                _ = try await impatient.syncUntilSettled()
                Issue.record("a second sync ran while the folder was locked")
            } catch let error as ClientError {
                #expect(error.description.contains("folder \(b.root) is being synced by another ferry process"), "\(error)")
                #expect(error.description.contains("pid \(getpid())"), "\(error)")
            }
            #expect(try await b.api.changes(library: b.sync.folder.libraryId, since: 0).changes.isEmpty)

            // A patient one waits, and runs once the first lets go.
            let (waits, waiting) = AsyncStream<FolderLock.Holder>.makeStream()
            let patient = try Self.second(b, timeout: .seconds(60))
            let run = Task { try await patient.syncUntilSettled { waiting.yield($0) } }
            var told = waits.makeAsyncIterator()
            let holder = await told.next()
            #expect(holder?.pid == getpid())
            held.release()
            let report = try await run.value
            #expect(report.uploadedFiles == 1)
        }
    }

    @Test func ferrySyncBesideAnotherProcessRefusesWithASentence() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("loc")
            let (home, folder) = try await CLITests.Home.syncing(cloud, as: user)
            try Data("x".utf8).write(to: URL(fileURLWithPath: folder + "/x.txt"))

            // This test process holds the folder, as a running ferryd would.
            let held = try await FolderLock.acquire(root: folder, timeout: .seconds(1))
            let refused = try await home.ferry("sync", "--wait", "1")
            #expect(refused.status == 1)
            #expect(refused.err.contains("is being synced by another ferry process"), "\(refused.err)")
            #expect(refused.err.contains("pid \(getpid())"), "\(refused.err)")
            #expect(try await home.ferry("sync", "--wait", "-1").status == 2)
            held.release()
            let synced = try await home.ferry("sync", "--wait", "1")
            #expect(synced.status == 0, "\(synced.err)")
        }
    }
}
