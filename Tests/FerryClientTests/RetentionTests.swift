@testable import FerryClient
import FerryCore
import FerryServer
import FerryTestSupport
import Foundation
import Testing

/// Retention seen from devices and the CLI (SPEC §10): a device that was away while its
/// library forgot a deletion still learns of it, and `ferry library retention` shows and
/// sets the policy with errors that name the flag.
@Suite("Retention on devices", .serialized, .eachBackend)
struct RetentionTests {
    @Test func aDeviceAwayPastTheTrashLimitStillLearnsOfTheDeletion() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("ria")
            let a = try await Device.make(cloud, user: user, name: "desk", library: "work")
            let b = try await Device.make(cloud, user: user, name: "laptop", library: "work")
            defer { Task { await a.close(); await b.close() } }
            try a.write("gone.txt", "old")
            try a.write("edited.txt", "v1")
            try a.write("stays.txt", "s")
            try await a.sync()
            try await b.sync()
            #expect(b.read("gone.txt") == "old" && b.read("edited.txt") == "v1")

            // The laptop is away: the desk deletes two files, the laptop edits one of them.
            try a.remove("gone.txt")
            try a.remove("edited.txt")
            try await a.sync()
            try b.write("edited.txt", "v2 from the laptop")

            // The deletions pass their time in the trash and retention removes them.
            let store = cloud.services.store
            let owner = try #require(try await store.user(named: user.name))
            let library = try #require(try await store.libraries(userId: owner.id).first { $0.name == "work" })
            _ = try await store.setRetention(userId: owner.id, libraryId: library.id, policy: RetentionPolicy(trashDays: 1))
            let report = try await store.purge(libraryId: library.id, now: Date().addingTimeInterval(2 * 86_400))
            #expect(report.removedPaths == 2)

            // Back online: its cursor is refused, it compares the whole listing, removes the
            // untouched file and keeps its edit as a new file (modify beats delete).
            try await b.sync()
            #expect(!b.exists("gone.txt"))
            #expect(b.read("edited.txt") == "v2 from the laptop")
            #expect(b.read("stays.txt") == "s")
            #expect(try await store.current(libraryId: library.id, path: try FerryPath("gone.txt")) == nil)
            let edited = try #require(try await store.current(libraryId: library.id, path: try FerryPath("edited.txt")))
            #expect(!edited.deleted)
            try await a.sync()
            #expect(a.read("edited.txt") == "v2 from the laptop" && !a.exists("gone.txt"))
            // Settled: the next passes plan nothing, and the feed goes on from the head.
            #expect(try await b.sync.pass().planned == 0)
            #expect(try b.index.cursor(folder: b.root) >= library.head)
        }
    }

    @Test func theCLIShowsSetsAndRefusesRetention() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("cli")
            let (home, _) = try await CLITests.Home.syncing(cloud, as: user, library: "photos")
            let shown = try await home.ferry("library", "retention", "photos")
            #expect(shown.status == 0, "\(shown.err)")
            #expect(shown.out == "photos: keep every version and every deleted file\n", "\(shown.out)")

            let set = try await home.ferry("library", "retention", "photos", "--keep-versions", "5", "--trash-days", "30")
            #expect(set.status == 0, "\(set.err)")
            #expect(set.out == "photos: keep the last 5 versions; deleted files for 30 days\n", "\(set.out)")
            // A flag changes only its limit; 'off' removes one.
            let more = try await home.ferry("library", "retention", "photos", "--keep-days", "14", "--trash-days", "off", "--json")
            #expect(more.status == 0, "\(more.err)")
            let stored = try JSONCoding.decoder.decode(LibraryRetention.self, from: Data(more.out.utf8))
            #expect(stored.policy == RetentionPolicy(keepVersions: 5, keepDays: 14))

            for (arguments, message) in [
                (["--keep-versions", "0"], "--keep-versions must be between 1"),
                (["--keep-days", "soon"], "--keep-days takes a whole number of days or 'off'"),
                (["--trash-days=-3"], "--trash-days takes a whole number"),
                (["--trash-days", "0"], "--trash-days must be between 1"),
                (["--keep-all", "--keep-days", "3"], "--keep-all removes every limit"),
            ] {
                let refused = try await home.ferry(["library", "retention", "photos"] + arguments)
                #expect(refused.status != 0 && refused.err.contains(message), "\(arguments): \(refused.err)")
            }
            let unknown = try await home.ferry("library", "retention", "nope")
            #expect(unknown.status != 0 && unknown.err.contains("no library 'nope'"), "\(unknown.err)")
            // Nothing refused changed the policy; --keep-all clears it.
            let cleared = try await home.ferry("library", "retention", "photos", "--keep-all")
            #expect(cleared.out == "photos: keep every version and every deleted file\n", "\(cleared.out)")
        }
    }
}
