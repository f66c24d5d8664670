@testable import FerryClient
import FerryCore
import FerryTestSupport
import Foundation
import Logging
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// SPEC §6 guards, end to end on two devices against the real server.
@Suite("Safety guards", .serialized)
struct GuardTests {
    static func populate(_ device: Device, _ count: Int) throws {
        for i in 0..<count { try device.write("set/f\(i).txt", "file \(i)") }
    }

    static func fileCount(_ device: Device) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: device.root + "/set")) ?? []).count
    }

    @Test func massDeletesWaitForConfirmationInBothDirections() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("pia")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            try Self.populate(a, 150)
            try await a.sync()
            try await b.sync()
            #expect(Self.fileCount(b) == 150)

            // A script wipes 120 of 150 files on A: nothing is deleted on the server yet.
            for i in 0..<120 { try a.remove("set/f\(i).txt") }
            let held = try await a.sync()
            #expect(held.massDelete?.remoteDeletes == 120)
            #expect(held.deletedRemote == 0)
            try await b.sync()
            #expect(Self.fileCount(b) == 150)

            // Confirmed on A: the deletes go through, and B, whose pass deletes the same
            // files, is not asked again (issue 26).
            let confirmed = try await a.sync.syncUntilSettled(allowMassDelete: true)
            #expect(confirmed.deletedRemote == 120)
            let followed = try await b.sync()
            #expect(followed.massDelete == nil && followed.deletedLocal == 120)
            #expect(Self.fileCount(b) == 30)
            #expect(a.tree() == b.tree())
        }
    }

    /// Server deletions nobody confirmed (a device with a laxer guard, a script) are held on
    /// every device; once one device lets them through, the others follow without asking.
    @Test(.eachBackend) func aMassDeleteConfirmedOnOneDeviceIsNotAskedAgainOnTheOthers() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("pim")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            let c = try await Device.make(cloud, user: user, name: "c")
            defer { Task { await a.close(); await b.close(); await c.close() } }
            try Self.populate(a, 150)
            try await a.sync()
            try await b.sync()
            try await c.sync()

            // A's guard allows up to 1000 deletes: 120 go without anyone confirming them.
            var logger = Logger(label: "lax")
            logger.logLevel = .critical
            let lax = try FolderSync(folder: a.config.folders[0], index: a.index, api: a.api, deviceName: a.name,
                                     policy: SafetyPolicy(massDeleteFraction: 0.5, massDeleteMinimum: 1000), logger: logger)
            for i in 0..<120 { try a.remove("set/f\(i).txt") }
            #expect(try await lax.syncUntilSettled().deletedRemote == 120)

            let heldOnB = try await b.sync()
            #expect(heldOnB.massDelete?.localDeletes == 120 && Self.fileCount(b) == 150)
            let heldOnC = try await c.sync()
            #expect(heldOnC.massDelete?.localDeletes == 120 && Self.fileCount(c) == 150)

            // Confirmed on B: C, asked already, now follows on its next pass.
            #expect(try await b.sync.syncUntilSettled(allowMassDelete: true).deletedLocal == 120)
            let followed = try await c.sync()
            #expect(followed.massDelete == nil && followed.deletedLocal == 120)
            #expect(b.tree() == c.tree() && Self.fileCount(c) == 30)
        }
    }

    /// Recording a confirmation the server refuses costs the other devices a question, never
    /// the pass: nothing is thrown, and the warning names the library.
    @Test func aConfirmationTheServerRefusesIsLoggedAndThePassGoesOn() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("rec")
            let a = try await Device.make(cloud, user: user, name: "a")
            defer { Task { await a.close() } }
            let logged = LoggedMessages()
            let logger = Logger(label: "gate") { _ in logged }
            await MassDeleteGate(api: a.api, library: "no-such-library", logger: logger).record([1, 2])
            let warnings = logged.messages.filter { $0.level == .warning }
            #expect(warnings.count == 1)
            #expect(warnings.first?.text.contains("could not record the confirmed deletions") == true)
            #expect(warnings.first?.metadata["library"] == "no-such-library")
            // Nothing to record asks the server nothing, and says nothing.
            await MassDeleteGate(api: a.api, library: "no-such-library", logger: logger).record([])
            #expect(logged.messages.count == 1)
        }
    }

    @Test func aTornWriteIsNotUploadedUntilTheFileIsWrittenAgain() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("quin")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            try a.write("thesis.tex", "chapter one")
            // A whole-second mtime, so Foundation can put back exactly the same one.
            let path = a.root + "/thesis.tex"
            let stamp = Date(timeIntervalSince1970: 1_790_000_000)
            try FileManager.default.setAttributes([.modificationDate: stamp], ofItemAtPath: path)
            try await a.sync()
            try await b.sync()
            // Power cut: the file is 0 bytes, its mtime what it was.
            #expect(truncate(path, 0) == 0)
            try FileManager.default.setAttributes([.modificationDate: stamp], ofItemAtPath: path)
            let restored: Int64? = LocalScanner.stat(root: a.root, path: "thesis.tex")?.mtimeNs
            #expect(restored == Int64(1_790_000_000) * 1_000_000_000)
            let report = try await a.sync()
            #expect(report.uploadedFiles == 0)
            #expect(report.problems["thesis.tex"]?.contains("torn write") == true)
            try await b.sync()
            #expect(b.read("thesis.tex") == "chapter one")
            // Written again (mtime moves): synced normally.
            try a.write("thesis.tex", "")
            #expect(try await a.sync().uploadedFiles == 1)
        }
    }

    @Test func aDryRunShowsEveryKindOfChangeAndChangesNothing() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("rex")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            for name in ["keep", "edit-here", "edit-there", "delete-here", "delete-there", "both"] { try a.write("\(name).txt", name) }
            try await a.sync()
            try await b.sync()
            try b.write("edit-there.txt", "changed on b")
            try b.remove("delete-there.txt")
            try b.write("both.txt", "b's version")
            try b.write("new-there.txt", "from b")
            try await b.sync()
            try a.write("edit-here.txt", "changed on a")
            try a.remove("delete-here.txt")
            try a.write("both.txt", "a's version")
            try a.write("new-here.txt", "from a")

            let treeBefore = a.tree()
            let library = a.config.folders[0].libraryId
            let headBefore = try await a.api.changes(library: library, since: 0).head
            let cursorBefore = try a.index.cursor(folder: a.root)
            let plan = try await a.sync.dryRun()
            let kinds = Dictionary(uniqueKeysWithValues: plan.actions.map { ($0.summary.path, $0.summary.kind) })
            #expect(kinds == [
                "edit-here.txt": "upload", "new-here.txt": "upload", "delete-here.txt": "delete on server",
                "edit-there.txt": "download", "new-there.txt": "download", "delete-there.txt": "delete here", "both.txt": "conflict",
            ])
            #expect(plan.actions.first { $0.path == "new-there.txt" }?.summary.bytes == Int64("from b".utf8.count))
            // Nothing changed anywhere: files, server head, local cursor, journal.
            #expect(a.tree() == treeBefore)
            #expect(try await a.api.changes(library: library, since: 0).head == headBefore)
            #expect(try a.index.cursor(folder: a.root) == cursorBefore)
            #expect(try a.index.journal(folder: a.root).isEmpty)
            // And the real pass does what the dry run said.
            let report = try await a.sync.pass()
            #expect(report.planned == plan.actions.count)
        }
    }

    @Test func whyAnswersForIgnoredConflictedHeldAndSyncedFiles() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("sam")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            try a.write(".ferryignore", "*.log\n")
            try a.write("run.log", "noise")
            try a.write("notes.txt", "v1")
            try a.write("shared.txt", "v1")
            try await a.sync()
            try await b.sync()
            try b.write("shared.txt", "b's edit")
            try await b.sync()
            try a.write("shared.txt", "a's edit")

            #expect(try await a.sync.explain("run.log") == "run.log is ignored by the pattern '*.log' in .ferryignore.")
            #expect(try await a.sync.explain("x.swp").contains("Ferry's default ignore list"))
            let conflict = try await a.sync.explain("shared.txt")
            #expect(conflict.contains("changed both here and on the server") && conflict.contains("device"))
            #expect(try await a.sync.explain("notes.txt").hasPrefix("notes.txt is in sync with server version"))
            try a.write("new.txt", "n")
            #expect(try await a.sync.explain("new.txt").contains("new to the server"))
        }
    }

    @Test func whyNamesTheServersRefusalFromAnEarlierPass() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("refused")
            let a = try await Device.make(cloud, user: user, name: "a")
            defer { Task { await a.close() } }
            // A conflict note naming a version the server never had: the server refuses the commit.
            try a.index.recordConflictCopy(folder: a.root, copy: "copy.txt", origin: ConflictOrigin(path: try FerryPath("orig.txt"), theirs: 999))
            try a.write("copy.txt", "kept side")
            let report = try await a.sync.pass()
            #expect(report.problems["copy.txt"]?.contains("the server refused it") == true)
            let why = try await a.sync.explain("copy.txt")
            #expect(why.hasPrefix("The last pass"), "\(why)")
            #expect(why.contains("conflict_of must name another path"))
            // The next pass uploads it as a plain file and the answer changes with it.
            try await a.sync()
            #expect(try await a.sync.explain("copy.txt").hasPrefix("copy.txt is in sync"))
        }
    }
}

/// A log handler that keeps what it is given, for tests of what is logged.
final class LoggedMessages: LogHandler, Sendable {
    struct Message: Sendable {
        let level: Logger.Level
        let text: String
        let metadata: [String: String]
    }

    private let kept = Mutex<[Message]>([])
    var messages: [Message] { kept.withLock { $0 } }

    var logLevel: Logger.Level {
        get { .trace }
        set {}
    }

    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }

    subscript(metadataKey _: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        let entry = Message(level: level, text: message.description, metadata: (metadata ?? [:]).mapValues(\.description))
        kept.withLock { $0.append(entry) }
    }
}
