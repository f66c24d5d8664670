@testable import FerryClient
import FerryCore
import FerryTestSupport
import Foundation
import Testing

/// Selective sync (SPEC §10) end to end: the real server, the real `ferry` and `ferryd`
/// binaries on temp folders, beside a device that syncs the whole library.
@Suite("selective sync", .serialized, .eachBackend)
struct SelectiveSyncTests {
    typealias Home = CLITests.Home

    /// A home logged in to `cloud` as `user`.
    static func home(_ cloud: Cloud, _ user: (name: String, password: String)) async throws -> Home {
        let home = Home()
        let login = try await home.ferry("login", cloud.url, "--user", user.name, "--device-name", "picky", "--password-stdin", stdin: user.password + "\n")
        try #require(login.status == 0, "\(login.err)")
        return home
    }

    static func write(_ root: String, _ path: String, _ text: String) throws {
        let url = URL(fileURLWithPath: root + "/" + path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    static func read(_ root: String, _ path: String) -> String? {
        FileManager.default.contents(atPath: root + "/" + path).map { String(decoding: $0, as: UTF8.self) }
    }

    static func sync(_ home: Home) async throws -> ToolRun {
        let run = try await home.ferry("sync")
        #expect(run.status == 0, "ferry sync: \(run.err)")
        return run
    }

    @Test func onlyTheSelectedSubtreesAreSyncedAndAChangedSelectionKeepsLocalEdits() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("sel")
            let full = try await Device.make(cloud, user: user, name: "full", library: "team")
            defer { Task { await full.close() } }
            try full.write("docs/guide.txt", "guide v1")
            try full.write("docs/deep/notes.txt", "notes")
            try full.write("photos/cat.jpg", "meow")
            try full.write("readme.txt", "top")
            try await full.sync()

            let home = try await Self.home(cloud, user)
            let folder = scratchDirectory("selective")
            let add = try await home.ferry("folder", "add", folder, "--library", "team", "--only", "docs/")
            #expect(add.status == 0, "\(add.err)")
            #expect(add.out.contains("docs of library 'team'"), "\(add.out)")
            #expect(try await home.ferry("folder", "list").out.contains("\tonly: docs"))
            // Local files outside the selection, one where the library has a file too.
            try Self.write(folder, "photos/cat.jpg", "my own cat")
            try Self.write(folder, "notes/mine.txt", "private")

            let first = try await Self.sync(home)
            #expect(first.out.contains("outside the selection: 2 local file(s) not synced"), "\(first.out)")
            #expect(Set(Device.tree(at: folder).keys) == ["docs", "docs/guide.txt", "docs/deep", "docs/deep/notes.txt", "photos", "photos/cat.jpg", "notes", "notes/mine.txt"])
            #expect(Self.read(folder, "photos/cat.jpg") == "my own cat")
            let why = try await home.ferry("status", "--why", folder + "/notes/mine.txt")
            #expect(why.out.contains("outside this folder's selection (docs)"), "\(why.out) \(why.err)")
            // Nothing outside was uploaded.
            try await full.sync()
            #expect(!full.exists("notes/mine.txt") && full.read("photos/cat.jpg") == "meow")

            // Changes outside do not arrive, a delete outside deletes nothing here; inside they do.
            try full.write("photos/dog.jpg", "woof")
            try full.remove("photos/cat.jpg")
            try full.write("docs/new.txt", "new")
            try await full.sync()
            _ = try await Self.sync(home)
            #expect(Self.read(folder, "docs/new.txt") == "new")
            #expect(Self.read(folder, "photos/dog.jpg") == nil)
            #expect(Self.read(folder, "photos/cat.jpg") == "my own cat")

            // A path that joins the selection comes down (the feed passed it long ago).
            let grow = try await home.ferry("folder", "select", folder, "docs", "readme.txt")
            #expect(grow.status == 0 && grow.out.contains("syncs docs, readme.txt of library 'team'"), "\(grow.out) \(grow.err)")
            _ = try await Self.sync(home)
            #expect(Self.read(folder, "readme.txt") == "top")
            #expect(Self.read(folder, "photos/dog.jpg") == nil)

            // docs leaves: unchanged files go, empty directories with them; a local edit stays,
            // is not uploaded, and nothing is deleted on the server.
            try Self.write(folder, "docs/guide.txt", "my local edit")
            #expect(try await home.ferry("folder", "select", folder, "readme.txt").status == 0)
            #expect(try await home.ferry("folder", "select", folder).out.contains("syncs readme.txt of library 'team'"))
            let preview = try await home.ferry("sync", "--dry-run")
            #expect(preview.out.contains("left the selection (removed here if unchanged)\tdocs/deep/notes.txt"), "\(preview.out)")
            #expect(Self.read(folder, "docs/deep/notes.txt") == "notes")
            let shrink = try await Self.sync(home)
            #expect(shrink.out.contains("outside the selection: 3 local file(s) not synced"), "\(shrink.out)")
            #expect(Set(Device.tree(at: folder).keys) == ["readme.txt", "docs", "docs/guide.txt", "photos", "photos/cat.jpg", "notes", "notes/mine.txt"])
            #expect(Self.read(folder, "docs/guide.txt") == "my local edit")
            try await full.sync()
            #expect(full.read("docs/guide.txt") == "guide v1" && full.read("docs/deep/notes.txt") == "notes" && full.read("docs/new.txt") == "new")
            let library = full.sync.folder.libraryId
            #expect(try await full.api.history(library: library, path: FerryPath("docs/guide.txt")).versions.count == 1)
            #expect(try await full.api.history(library: library, path: FerryPath("docs/deep/notes.txt")).versions.count == 1)

            // The whole library again: everything comes down, and the kept edit meets the
            // server's version as a conflict, so neither is lost.
            let all = try await home.ferry("folder", "select", folder, "--all")
            #expect(all.status == 0 && all.out.contains("syncs the whole library"), "\(all.out)")
            #expect(!(try await home.ferry("folder", "list").out.contains("only:")))
            _ = try await Self.sync(home)
            #expect(Self.read(folder, "docs/guide.txt") == "guide v1" && Self.read(folder, "photos/dog.jpg") == "woof")
            let copies = Device.tree(at: folder).keys.filter { ConflictName.isConflictCopy($0) }
            #expect(copies.count == 1 && copies.first.map { Self.read(folder, $0) } == "my local edit", "\(copies)")
            try await full.sync()
            #expect(full.read("notes/mine.txt") == "private" && full.read("docs/new.txt") == "new")
        }
    }

    @Test func aRunningFerrydTakesUpANewSelectionWithoutTrippingTheMassDeleteGuard() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("seld")
            let full = try await Device.make(cloud, user: user, name: "full", library: "team")
            defer { Task { await full.close() } }
            for i in 0..<120 { try full.write("bulk/f\(i).txt", "bulk \(i)") }
            try full.write("keep/k.txt", "kept")
            try await full.sync()

            let home = try await Self.home(cloud, user)
            let folder = scratchDirectory("selective-daemon")
            #expect(try await home.ferry("folder", "add", folder, "--library", "team").status == 0)
            let daemon = try UsabilityTests.Daemon(home)
            defer { daemon.stop() }
            #expect(await eventually { Self.read(folder, "bulk/f119.txt") == "bulk 119" && Self.read(folder, "keep/k.txt") == "kept" })

            // 120 of 123 synced entries leave the selection: not a deletion, so no pause.
            let select = try await home.ferry("folder", "select", folder, "keep")
            #expect(select.status == 0 && select.out.contains("the running ferryd applies it now"), "\(select.out) \(select.err)")
            #expect(await eventually { !FileManager.default.fileExists(atPath: folder + "/bulk") }, "\(daemon.log)")
            #expect(Self.read(folder, "keep/k.txt") == "kept")
            let status = try #require(try await UsabilityTests.status(home))
            #expect(status.folders.first?.massDelete == nil && status.folders.first?.state != .paused)
            try await full.sync()
            #expect(full.tree().keys.filter { $0.hasPrefix("bulk/") }.count == 120)

            // A new local file outside is reported and not uploaded; news inside arrive, outside not.
            try Self.write(folder, "elsewhere.txt", "mine only")
            #expect(try await eventually { try await UsabilityTests.status(home)?.folders.first?.lastPass?.outsideSelection == 1 })
            #expect(try await home.ferry("status").out.contains("outside the selection: 1 local file(s) not synced"))
            try full.write("bulk/late.txt", "late")
            try full.write("keep/k2.txt", "second")
            try await full.sync()
            #expect(await eventually { Self.read(folder, "keep/k2.txt") == "second" })
            #expect(Self.read(folder, "bulk/late.txt") == nil)
            try await full.sync()
            #expect(!full.exists("elsewhere.txt"))

            // The whole library again, through the same running daemon.
            #expect(try await home.ferry("folder", "select", folder, "--all").status == 0)
            #expect(await eventually { Self.read(folder, "bulk/f0.txt") == "bulk 0" && Self.read(folder, "bulk/late.txt") == "late" })
            #expect(try await eventually { try await full.sync(); return full.read("elsewhere.txt") == "mine only" })
        }
    }

    @Test func badSelectionsAreRefusedWithTheRuleTheyBreak() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("selv")
            let home = try await Self.home(cloud, user)
            let folder = scratchDirectory("selective-bad")
            for (path, rule) in [("../up", "'..' are refused"), ("/etc", "must be relative"), (".ferry", "Ferry's own"), ("a//b", "empty component")] {
                let refused = try await home.ferry("folder", "add", folder, "--only", "docs", path)
                #expect(refused.status == 2 && refused.err.contains("cannot select '\(path)'") && refused.err.contains(rule), "\(refused.err)")
            }
            #expect(try await home.ferry("folder", "list").out.contains("No folders"))

            #expect(try await home.ferry("folder", "add", folder, "--only", "docs", "docs/sub", "--library", "team").status == 0)
            let listed = try await home.ferry("folder", "list", "--json")
            let folders = try JSONDecoder().decode([FolderConfig].self, from: Data(listed.out.utf8))
            #expect(folders.first?.selection.paths.map(\.string) == ["docs"])

            let both = try await home.ferry("folder", "select", folder, "docs", "--all")
            #expect(both.status == 2 && both.err.contains("not both"), "\(both.err)")
            let dots = try await home.ferry("folder", "select", folder, "docs/../etc")
            #expect(dots.status == 2 && dots.err.contains("'..' are refused"), "\(dots.err)")
            let notSynced = try await home.ferry("folder", "select", scratchDirectory("elsewhere"), "docs")
            #expect(notSynced.status == 1 && notSynced.err.contains("is not a synced folder"), "\(notSynced.err)")
            // Nothing refused was saved.
            let shown = try await home.ferry("folder", "select", folder, "--json")
            #expect(shown.status == 0 && shown.out.contains("\"only\" : [\n    \"docs\"\n  ]"), "\(shown.out)")
        }
    }
}
