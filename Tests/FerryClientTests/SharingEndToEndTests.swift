@testable import FerryClient
import FerryCore
@testable import FerryServer
import FerryTestSupport
import Foundation
import Testing

/// Two users, three devices, the real `ferry` binary and server: a library shared to
/// write converges on all three, members commit as themselves, and unsharing cuts the
/// member off at once while his files stay on his disk (SPEC §10).
@Suite("Sharing end to end", .serialized, .eachBackend)
struct SharingEndToEndTests {
    typealias Home = CLITests.Home

    @Test func twoUsersThreeDevicesConvergeOnAWriteShare() async throws {
        try await Cloud.with { cloud in
            let alice = try await cloud.user("alice")
            let bob = try await cloud.user("bob")
            let (aliceHome, aliceFolder) = try await Home.syncing(cloud, as: alice, library: "team")
            try Data("alice's notes".utf8).write(to: URL(fileURLWithPath: aliceFolder + "/notes.txt"))
            try seededBytes(3 << 20, seed: 24).write(to: URL(fileURLWithPath: aliceFolder + "/big.bin"))
            try await Self.sync(aliceHome)

            // Before sharing bob cannot name the library; the usage and input errors are clear.
            let bobLaptop = Home()
            #expect(try await bobLaptop.ferry("login", cloud.url, "--user", bob.name, "--device-name", "bob-laptop",
                                              "--password-stdin", stdin: bob.password + "\n").status == 0)
            let laptopFolder = scratchDirectory("bob-laptop")
            let early = try await bobLaptop.ferry("folder", "add", laptopFolder, "--library", "alice/team")
            #expect(early.status == 1 && early.err.contains("no library 'alice/team' is shared with you"), "\(early.err)")
            #expect(try await aliceHome.ferry("library", "share", "team", "bob", "--role", "owner").status == 2)
            let unknown = try await aliceHome.ferry("library", "share", "nosuch", "bob", "--role", "read")
            #expect(unknown.status == 1 && unknown.err.contains("no library 'nosuch'"), "\(unknown.err)")
            let nobody = try await aliceHome.ferry("library", "share", "team", "nobody", "--role", "read")
            #expect(nobody.status == 1 && nobody.err.contains("no user named 'nobody'"), "\(nobody.err)")

            let shared = try await aliceHome.ferry("library", "share", "team", "bob", "--role", "write")
            #expect(shared.status == 0 && shared.out.contains("Shared team with bob (write)"), "\(shared.err)")
            let listed = try await bobLaptop.ferry("library", "list")
            #expect(listed.out.contains("alice/team\twrite"), "\(listed.out)")
            let members = try await bobLaptop.ferry("library", "members", "alice/team")
            #expect(members.out.contains("alice\towner") && members.out.contains("bob\twrite"), "\(members.out)")

            // bob's two devices take the shared library and converge with alice's.
            let added = try await bobLaptop.ferry("folder", "add", laptopFolder, "--library", "alice/team")
            #expect(added.status == 0 && added.out.contains("alice/team"), "\(added.err)")
            let (bobDesktop, desktopFolder) = try await Home.syncing(cloud, as: bob, library: "alice/team")
            try await Self.sync(bobLaptop)
            try await Self.sync(bobDesktop)
            #expect(Device.tree(at: laptopFolder) == Device.tree(at: aliceFolder))
            #expect(Device.tree(at: desktopFolder) == Device.tree(at: aliceFolder))

            // A write member's edits go up as his (his device in history); everyone converges.
            try Data("bob's reply".utf8).write(to: URL(fileURLWithPath: laptopFolder + "/reply.txt"))
            var big = seededBytes(3 << 20, seed: 24)
            big.replaceSubrange(1_000_000..<1_000_010, with: Data(repeating: 7, count: 10))
            try big.write(to: URL(fileURLWithPath: laptopFolder + "/big.bin"))
            try await Self.sync(bobLaptop)
            try Data("alice again".utf8).write(to: URL(fileURLWithPath: aliceFolder + "/notes.txt"))
            try await Self.sync(aliceHome)
            try await Self.sync(bobDesktop)
            try await Self.sync(bobLaptop)
            try await Self.sync(aliceHome)
            let expected = Device.tree(at: aliceFolder)
            #expect(expected["reply.txt"] != nil && expected["big.bin"] == ContentHash.of(big).hex)
            #expect(Device.tree(at: laptopFolder) == expected)
            #expect(Device.tree(at: desktopFolder) == expected)
            let laptopDevice = try ClientConfig.load(from: bobLaptop.path + "/config/ferry/config.json").deviceId
            let history = try await aliceHome.ferry("history", aliceFolder + "/reply.txt", "--json")
            let versions = try JSONCoding.decoder.decode([FileVersion].self, from: Data(history.out.utf8))
            #expect(versions.first?.deviceId == laptopDevice)

            // Unsharing: bob's next sync is refused, and nothing of his is deleted.
            let unshared = try await aliceHome.ferry("library", "unshare", "team", "bob")
            #expect(unshared.status == 0, "\(unshared.err)")
            let refused = try await bobLaptop.ferry("sync")
            #expect(refused.status == 1 && refused.err.contains("no longer shared with you") && refused.err.contains("kept"), "\(refused.err)")
            let dryRefused = try await bobLaptop.ferry("sync", "--dry-run")
            #expect(dryRefused.status == 1 && dryRefused.err.contains("no longer shared with you"), "\(dryRefused.err)")
            #expect(Device.tree(at: laptopFolder) == expected)
            #expect(try await bobLaptop.ferry("library", "list").out.contains("No libraries."))
        }
    }

    /// A read member's edits never reach the server: they stay local, `ferry sync` and
    /// `ferry status` list them, a change of the library to an edited file keeps the edit as
    /// a conflict copy (SPEC §2), and `ferry folder revert` puts the library's content back.
    @Test func aReadMembersEditsStayLocalAndRevertRestores() async throws {
        try await Cloud.with { cloud in
            let alice = try await cloud.user("alice")
            let bob = try await cloud.user("bob")
            let (aliceHome, aliceFolder) = try await Home.syncing(cloud, as: alice, library: "team")
            try Data("v1".utf8).write(to: URL(fileURLWithPath: aliceFolder + "/notes.txt"))
            try Data("keep me".utf8).write(to: URL(fileURLWithPath: aliceFolder + "/plan.txt"))
            try Data("old".utf8).write(to: URL(fileURLWithPath: aliceFolder + "/old.txt"))
            try await Self.sync(aliceHome)
            #expect(try await aliceHome.ferry("library", "share", "team", "bob", "--role", "read").status == 0)
            let (bobHome, bobFolder) = try await Home.syncing(cloud, as: bob, library: "alice/team")
            try await Self.sync(bobHome)
            let library = Device.tree(at: aliceFolder)
            #expect(Device.tree(at: bobFolder) == library)
            let writable = try await aliceHome.ferry("folder", "revert", aliceFolder)
            #expect(writable.status == 1 && writable.err.contains("nothing to revert"), "\(writable.err)")

            // bob edits, adds and deletes: nothing goes up; sync says what stayed local.
            try Data("bob's edit".utf8).write(to: URL(fileURLWithPath: bobFolder + "/plan.txt"))
            try Data("bob's own".utf8).write(to: URL(fileURLWithPath: bobFolder + "/mine.txt"))
            try FileManager.default.removeItem(atPath: bobFolder + "/old.txt")
            let kept = try await bobHome.ferry("sync")
            #expect(kept.status == 1, "\(kept.out)")
            for file in ["plan.txt: changed here", "mine.txt: new here", "old.txt: deleted here"] {
                #expect(kept.err.contains(file) && kept.err.contains("read only"), "\(file): \(kept.err)")
            }
            // The library changes a file bob edited: his edit becomes a local conflict copy.
            try Data("v2".utf8).write(to: URL(fileURLWithPath: aliceFolder + "/notes.txt"))
            try await Self.sync(aliceHome)
            try Data("bob's notes".utf8).write(to: URL(fileURLWithPath: bobFolder + "/notes.txt"))
            _ = try await bobHome.ferry("sync")
            #expect(FileManager.default.contents(atPath: bobFolder + "/notes.txt") == Data("v2".utf8))
            let copies = try FileManager.default.contentsOfDirectory(atPath: bobFolder).filter { $0.hasPrefix("notes.conflict-") }
            #expect(copies.count == 1)
            #expect(copies.first.flatMap { FileManager.default.contents(atPath: bobFolder + "/" + $0) } == Data("bob's notes".utf8))

            // The daemon's status lists the local-only changes.
            let daemon = try UsabilityTests.Daemon(bobHome)
            defer { daemon.stop() }
            #expect(await eventually(timeout: .seconds(30)) {
                guard let status = try? await UsabilityTests.status(bobHome), let folder = status.folders.first else { return false }
                return ["plan.txt", "mine.txt", "old.txt"].allSatisfy { folder.problems[$0]?.contains("read only") == true }
            }, "\(daemon.log)")
            daemon.stop()

            // Revert: the edit kept as a copy, the deleted file back, bob's own file left alone.
            let reverted = try await bobHome.ferry("folder", "revert", bobFolder)
            #expect(reverted.status == 0, "\(reverted.err)")
            #expect(FileManager.default.contents(atPath: bobFolder + "/plan.txt") == Data("keep me".utf8))
            #expect(FileManager.default.contents(atPath: bobFolder + "/old.txt") == Data("old".utf8))
            #expect(FileManager.default.contents(atPath: bobFolder + "/mine.txt") == Data("bob's own".utf8))
            let planCopies = try FileManager.default.contentsOfDirectory(atPath: bobFolder).filter { $0.hasPrefix("plan.conflict-") }
            #expect(planCopies.count == 1)

            // Nothing of bob's ever reached the server.
            try await Self.sync(aliceHome)
            let server = Device.tree(at: aliceFolder)
            #expect(Set(server.keys) == ["notes.txt", "plan.txt", "old.txt"])
            let history = try await aliceHome.ferry("history", aliceFolder + "/plan.txt", "--json")
            #expect(try JSONCoding.decoder.decode([FileVersion].self, from: Data(history.out.utf8)).count == 1)
        }
    }

    /// A run of passes asks the server for a shared library's role once, not once per pass;
    /// a folder of the user's own library never asks.
    @Test func aRunOfPassesAsksForASharedLibrarysRoleOnce() async throws {
        try await Cloud.with { cloud in
            let alice = try await cloud.user("alice")
            let bob = try await cloud.user("bob")
            let desk = try await Device.make(cloud, user: alice, name: "desk", library: "team")
            defer { Task { await desk.close() } }
            _ = try await desk.api.shareLibrary(desk.config.folders[0].libraryId, with: bob.name, role: .write)
            let member = try await Device.make(cloud, user: bob, name: "bob", library: "alice/team")
            defer { Task { await member.close() } }
            #expect(member.config.folders[0].sharedRole == .write && desk.config.folders[0].sharedRole == nil)
            // The same work on each side, with both devices up to date first: one new file,
            // uploaded by a whole run of passes, or by one bare pass (the role given).
            func reads(_ device: Device, uploading path: String, bare: Bool) async throws -> (gets: Int, passes: Int) {
                try await desk.sync()
                try await member.sync()
                try device.write(path, path)
                let before = cloud.answered("GET")
                let report = bare ? try await device.sync.pass(allowMassDelete: false, readOnly: false) : try await device.sync()
                #expect(report.uploadedFiles == 1)
                return (cloud.answered("GET") - before, report.passes)
            }
            let own = try await reads(desk, uploading: "desk.txt", bare: false)
            let shared = try await reads(member, uploading: "bob.txt", bare: false)
            #expect(own.passes == shared.passes, "own \(own) shared \(shared)")
            #expect(shared.gets == own.gets + 1, "own library: \(own.gets) GETs, shared: \(shared.gets)")
            // A pass itself asks nothing: the run it belongs to has asked.
            let ownPass = try await reads(desk, uploading: "desk2.txt", bare: true)
            let sharedPass = try await reads(member, uploading: "bob2.txt", bare: true)
            #expect(sharedPass.gets == ownPass.gets, "own library: \(ownPass.gets) GETs, shared: \(sharedPass.gets)")
        }
    }

    static func sync(_ home: Home) async throws {
        let run = try await home.ferry("sync")
        try #require(run.status == 0, "ferry sync failed: \(run.err)")
    }
}
