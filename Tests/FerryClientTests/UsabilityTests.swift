@testable import FerryClient
import FerryCore
import FerryHarness
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What a new user meets first (issue 26), with the real `ferry`, `ferryd` and
/// `ferry-server` binaries.
@Suite("first-run usability", .serialized)
struct UsabilityTests {
    typealias Home = CLITests.Home

    /// A `ferryd` of `home`, its log (at info) in a file.
    final class Daemon: Sendable {
        let process: ChildProcess
        let logFile: String

        init(_ home: Home) throws {
            logFile = home.path + "/ferryd.log"
            process = try ChildProcess(CLITests.binary("ferryd"), ["--log-level", "info"], stderr: logFile, environment: home.environment)
        }

        var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

        func stop() {
            _ = try? process.stop()
        }
    }

    /// `ferry status --json`, decoded; nil while no daemon answers.
    static func status(_ home: Home) async throws -> DaemonStatus? {
        let run = try await home.ferry("status", "--json")
        guard run.status == 0 else { return nil }
        return try DaemonStatus(json: Data(run.out.utf8))
    }

    static func write(_ path: String, _ text: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    // MARK: the README

    /// The README's text, from the repository this test was built from.
    static func readme() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
    }

    /// The first `sh` block after `heading`.
    static func shellBlock(after heading: String, in text: String) throws -> String {
        let section = try #require(text.range(of: heading)).upperBound
        let open = try #require(text.range(of: "```sh\n", range: section..<text.endIndex))
        let close = try #require(text.range(of: "\n```", range: open.upperBound..<text.endIndex))
        return String(text[open.upperBound..<close.lowerBound])
    }

    @Test func theReadmesCurlExampleWorksAndAWrongPasswordPrintsNoTraceback() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("demo")
            let block = try Self.shellBlock(after: "## Try it with curl", in: try Self.readme())
            #expect(block.contains("PASTE-IT-HERE") && block.contains("http://127.0.0.1:8720/api/v1"))
            let directory = scratchDirectory("readme-curl")
            try Data("a report".utf8).write(to: URL(fileURLWithPath: directory + "/report.pdf"))
            func script(password: String) -> String {
                "set -e\ncd '\(directory)'\n"
                    + block.replacingOccurrences(of: "http://127.0.0.1:8720", with: cloud.url).replacingOccurrences(of: "PASTE-IT-HERE", with: password)
            }
            // As written, with the right password: every step answers, and the upload comes back.
            let works = try await runTool("/bin/bash", ["-c", script(password: user.password)])
            #expect(works.status == 0, "\(works.err)")
            #expect(FileManager.default.contents(atPath: directory + "/copy.pdf") == Data("a report".utf8))
            #expect(works.out.contains("\"versions\"") && works.out.contains("\"changes\""), "\(works.out)")

            // A wrong password: the server's sentence, no Python traceback, and the script stops.
            let wrong = try await runTool("/bin/bash", ["-c", script(password: "not-the-password")])
            #expect(wrong.status != 0)
            #expect(!wrong.err.contains("Traceback") && !wrong.out.contains("Traceback"), "\(wrong.err)")
            #expect(wrong.err.contains("wrong user name or password"), "\(wrong.err)")
        }
    }

    @Test func theReadmesWorkstationStepsPrepareAFreshAccount() throws {
        let steps = try Self.shellBlock(after: "## Syncing a folder from a workstation", in: try Self.readme())
        let afterNAS = try Self.shellBlock(after: "On the workstation,", in: try Self.readme())
        #expect(steps.contains("ferry-server serve"))
        let lines = afterNAS.split(separator: "\n").map { $0.split(separator: "#")[0].trimmingCharacters(in: .whitespaces) }
        func position(_ command: String) throws -> Int { try #require(lines.firstIndex { $0.hasPrefix(command) }, "no '\(command)'") }
        // Folders before copying into them, daemon-reload before enabling the unit just copied.
        #expect(try position("mkdir -p ~/.local/bin ~/.config/systemd/user") < position("cp .build/release/ferry .build/release/ferryd ~/.local/bin/"))
        #expect(try position("cp Daemon/ferryd.service ~/.config/systemd/user/") < position("systemctl --user daemon-reload"))
        #expect(try position("systemctl --user daemon-reload") < position("systemctl --user enable --now ferryd"))
        let readme = try Self.readme()
        for needed in ["loginctl enable-linger", "--password-stdin", "FERRY_PORT", "FERRY_DATA"] {
            #expect(readme.contains(needed), "the README does not mention \(needed)")
        }
        // The unit file says the same.
        let unit = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Daemon/ferryd.service"), encoding: .utf8)
        #expect(unit.contains("ExecStart=%h/.local/bin/ferryd"))
    }

    // MARK: versions and usage

    @Test func everyProgramReportsItsVersionAndBareFerryIsAUsageError() async throws {
        let home = Home()
        for program in ["ferry", "ferryd", "ferry-server"] {
            let run = try await runTool(CLITests.binary(program), ["--version"], environment: home.environment)
            #expect(run.status == 0, "\(program): \(run.err)")
            #expect(run.out == FerryVersion.description + "\n", "\(program)")
        }
        let bare = try await home.ferry([])
        #expect(bare.status == 2)
        #expect(bare.err.contains("USAGE: ferry <subcommand>") && bare.err.contains("SUBCOMMANDS:"), "\(bare.err)")
        // `restore --version` is the restore's version, not the program's, even when it is not a number.
        let bad = try await home.ferry("restore", home.path + "/x.txt", "--version", "yesterday")
        #expect(bad.status == 2 && bad.err.contains("--version takes a version number"), "\(bad.out) \(bad.err)")
        #expect(!bad.out.contains(FerryVersion.release))
    }

    @Test func statusBeforeLoginSaysNotLoggedIn() async throws {
        let home = Home()
        let status = try await home.ferry("status")
        #expect(status.status == 1)
        #expect(status.err.contains("not logged in") && status.err.contains("ferry login"), "\(status.err)")
        #expect(!status.err.contains("ferryd is not running"))
    }

    // MARK: a server that is not answering

    @Test func aStoppedServerIsNamedAndTheDaemonSaysWhenItRetries() async throws {
        let (home, folder, url) = try await Cloud.with { cloud in
            let user = try await cloud.user("nia")
            let (home, folder) = try await Home.syncing(cloud, as: user)
            return (home, folder, cloud.url)
        }
        // The server is stopped: one sentence naming it, no errno.
        let sync = try await home.ferry("sync")
        #expect(sync.status == 1)
        #expect(sync.err.contains("the server at \(url) is not answering"), "\(sync.err)")
        #expect(!sync.err.contains("errno") && !sync.err.contains("Connection refused") && !sync.err.contains("NIOConnectionError"), "\(sync.err)")
        let login = try await home.ferry("login", url, "--user", "nia", "--password-stdin", stdin: "whatever\n")
        #expect(login.status == 1 && login.err.contains("the server at \(url) is not answering"), "\(login.err)")

        // The daemon: offline, and when it tries again, in its status and its log.
        let daemon = try Daemon(home)
        defer { daemon.stop() }
        #expect(try await eventually(timeout: .seconds(60)) { try await Self.status(home)?.folders.first?.state == .offline })
        // Each retry shows the folder as syncing for a moment, and a loaded machine may start
        // `ferry status` just then: ask until one answer falls in the wait between attempts.
        let deadline = ContinuousClock.now + .seconds(60)
        var shown = try await home.ferry("status")
        while !shown.out.contains(": offline, retrying in "), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            shown = try await home.ferry("status")
        }
        #expect(shown.out.contains("\(folder) ["), "\(shown.out)")
        #expect(shown.out.contains(": offline, retrying in ") && shown.out.contains(" s"), "\(shown.out)")
        #expect(try await eventually(timeout: .seconds(60)) { try await Self.status(home)?.folders.first?.retryAt != nil })
        #expect(await eventually { daemon.log.contains("the server at \(url) is not answering; retrying in ") }, "\(daemon.log)")
        #expect(!daemon.log.contains("errno"))
    }

    // MARK: the daemon follows the folder list

    @Test func aRunningDaemonTakesUpFolderAddAndRemove() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("rio")
            let (home, first) = try await Home.syncing(cloud, as: user, library: "first")
            let daemon = try Daemon(home)
            defer { daemon.stop() }
            #expect(try await eventually { try await Self.status(home)?.folders.map(\.path) == [first] })

            let second = scratchDirectory("cli-second")
            try Self.write(second + "/note.txt", "taken up without a restart")
            let add = try await home.ferry("folder", "add", second, "--library", "second")
            #expect(add.status == 0, "\(add.err)")
            #expect(add.out.contains("the running ferryd has started on it"), "\(add.out)")
            #expect(try await Self.status(home)?.folders.map(\.path).sorted() == [first, second].sorted())
            // The daemon's pass sends it: its history on the server has the version.
            #expect(try await eventually {
                let history = try await home.ferry("history", second + "/note.txt", "--json")
                return history.status == 0 && history.out.contains("\"version\"")
            })

            let remove = try await home.ferry("folder", "remove", second)
            #expect(remove.status == 0, "\(remove.err)")
            #expect(try await Self.status(home)?.folders.map(\.path) == [first])
            #expect(daemon.log.contains("configuration reloaded"))
        }
    }

    @Test func folderAddWithoutADaemonSaysHowToStartIt() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("ode")
            let home = Home()
            #expect(try await home.ferry("login", cloud.url, "--user", user.name, "--password-stdin", stdin: user.password + "\n").status == 0)
            let folder = scratchDirectory("cli-alone")
            let add = try await home.ferry("folder", "add", folder)
            #expect(add.status == 0, "\(add.err)")
            #expect(add.out.contains("start ferryd, or run 'ferry sync', to sync it now"), "\(add.out)")
        }
    }

    // MARK: dry run

    @Test func aDryRunDoesNotCallAPausedFolderInSync() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("dru")
            let (home, folder) = try await Home.syncing(cloud, as: user)
            let configFile = home.path + "/config/ferry/config.json"
            var config = try ClientConfig.load(from: configFile)
            config.folders[0].massDeleteMinimum = 5
            try config.save(to: configFile)
            for i in 0..<8 { try Self.write(folder + "/f\(i).txt", "file \(i)") }
            #expect(try await home.ferry("sync").status == 0)
            #expect(try await home.ferry("sync", "--dry-run").out == "\(folder): in sync\n")

            for i in 0..<8 { try FileManager.default.removeItem(atPath: folder + "/f\(i).txt") }
            let dry = try await home.ferry("sync", "--dry-run")
            #expect(dry.status == 0, "\(dry.err)")
            #expect(dry.out.hasPrefix("\(folder): paused by the mass-delete guard\n"), "\(dry.out)")
            #expect(!dry.out.contains("in sync"))
            #expect(dry.out.contains("  paused: "))
        }
    }

    // MARK: history and restore

    @Test func historyNamesDevicesWithISODatesAndRestoreTakesItsNumbers() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("hal")
            let home = Home()
            #expect(try await home.ferry("login", cloud.url, "--user", user.name, "--device-name", "study-pc", "--password-stdin",
                                         stdin: user.password + "\n").status == 0)
            let folder = scratchDirectory("cli-history")
            #expect(try await home.ferry("folder", "add", folder, "--library", "notes").status == 0)
            let file = folder + "/draft.txt"
            for text in ["first draft", "second draft", "third draft"] {
                try Self.write(file, text)
                #expect(try await home.ferry("sync").status == 0)
            }
            let config = try ClientConfig.load(from: home.path + "/config/ferry/config.json")

            let history = try await home.ferry("history", file)
            #expect(history.status == 0, "\(history.err)")
            let rows = history.out.split(separator: "\n").filter { $0.contains("\t") }.map { $0.split(separator: "\t").map(String.init) }
            #expect(rows.count == 3, "\(history.out)")
            for row in rows {
                #expect(row.last == "study-pc", "\(row)")
                #expect(row[1].wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})/) != nil, "\(row[1])")
            }
            #expect(!history.out.contains(config.deviceId))
            #expect(history.out.contains("ferry restore \(file) --version N"))

            // The number in the first column of the oldest row, as printed.
            let oldest = try #require(rows.last?.first)
            let restore = try await home.ferry("restore", file, "--version", oldest)
            #expect(restore.status == 0, "\(restore.err)")
            #expect(try await home.ferry("sync").status == 0)
            #expect(FileManager.default.contents(atPath: file) == Data("first draft".utf8))
            // `v12` as other commands write it.
            let middle = rows[1][0]
            #expect(try await home.ferry("restore", file, "--version", "v" + middle).status == 0)
            #expect(try await home.ferry("sync").status == 0)
            #expect(FileManager.default.contents(atPath: file) == Data("second draft".utf8))
            // A number it does not have: said so, with where to look.
            let missing = try await home.ferry("restore", file, "--version", "999999")
            #expect(missing.status == 1 && missing.err.contains("has no version 999999") && missing.err.contains("ferry history"), "\(missing.err)")
        }
    }

    /// "mine" is what this device wrote, on the device that lost the race and on the one that
    /// won it; a device that wrote neither side is told to say copy or current.
    @Test func mineIsThisDevicesSideOnEveryDevice() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("mia")
            func home(_ name: String) async throws -> (Home, String) {
                let home = Home()
                let login = try await home.ferry("login", cloud.url, "--user", user.name, "--device-name", name, "--password-stdin", stdin: user.password + "\n")
                try #require(login.status == 0, "\(login.err)")
                let folder = scratchDirectory("cli-\(name)")
                try #require(try await home.ferry("folder", "add", folder, "--library", "shared").status == 0)
                return (home, folder)
            }
            let (desk, deskFolder) = try await home("desk")
            let (laptop, laptopFolder) = try await home("laptop")
            let (tablet, tabletFolder) = try await home("tablet")
            try Self.write(deskFolder + "/plan.txt", "v1")
            #expect(try await desk.ferry("sync").status == 0)
            #expect(try await laptop.ferry("sync").status == 0)
            #expect(try await tablet.ferry("sync").status == 0)
            // The laptop's edit reaches the server first; the desk's becomes the conflict copy.
            try Self.write(laptopFolder + "/plan.txt", "laptop's edit")
            #expect(try await laptop.ferry("sync").status == 0)
            try Self.write(deskFolder + "/plan.txt", "desk's edit")
            #expect(try await desk.ferry("sync").status == 0)
            #expect(try await laptop.ferry("sync").status == 0)
            #expect(try await tablet.ferry("sync").status == 0)

            // Each device lists its own side as mine.
            let onDesk = try await desk.ferry("conflicts")
            #expect(onDesk.out.contains("  mine:   plan") && !onDesk.out.contains("  mine:   plan.txt") && onDesk.out.contains("(desk v"), "\(onDesk.out)")
            let onLaptop = try await laptop.ferry("conflicts")
            #expect(onLaptop.out.contains("  mine:   plan.txt  (laptop v"), "\(onLaptop.out)")
            #expect(onLaptop.out.contains("  theirs: plan") && onLaptop.out.contains("(desk v"), "\(onLaptop.out)")
            let onTablet = try await tablet.ferry("conflicts")
            #expect(onTablet.out.contains("  copy:    ") && onTablet.out.contains("  current: plan.txt") && onTablet.out.contains("--keep copy|current|both"),
                    "\(onTablet.out)")
            let help = try await tablet.ferry("conflicts", "resolve", "--help")
            #expect(help.out.contains("\"Mine\" is this device's side"), "\(help.out)")

            // The tablet wrote neither side: mine means nothing there.
            let neither = try await tablet.ferry("conflicts", "resolve", tabletFolder + "/plan.txt", "--keep", "mine")
            #expect(neither.status == 1 && neither.err.contains("use --keep copy or --keep current"), "\(neither.err)")
            #expect(neither.err.contains("from desk") && neither.err.contains("from laptop"), "\(neither.err)")

            // On the laptop, which won the race, mine keeps the laptop's edit.
            let resolve = try await laptop.ferry("conflicts", "resolve", laptopFolder + "/plan.txt", "--keep", "mine")
            #expect(resolve.status == 0, "\(resolve.err)")
            #expect(try String(contentsOfFile: laptopFolder + "/plan.txt", encoding: .utf8) == "laptop's edit")
            #expect(try await desk.ferry("sync").status == 0)
            #expect(try String(contentsOfFile: deskFolder + "/plan.txt", encoding: .utf8) == "laptop's edit")
        }
    }

    @Test func copyAndCurrentSettleAConflictFromADeviceThatWroteNeither() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("cai")
            let (tablet, tabletFolder) = try await Home.syncing(cloud, as: user, library: "docs")
            let a = try await Device.make(cloud, user: user, name: "a", library: "docs")
            let b = try await Device.make(cloud, user: user, name: "b", library: "docs")
            defer { Task { await a.close(); await b.close() } }
            try a.write("plan.txt", "v1")
            try await a.sync()
            try await b.sync()
            try b.write("plan.txt", "b's edit")
            try await b.sync()
            try a.write("plan.txt", "a's edit")
            try await a.sync()  // a loses: its edit is the conflict copy
            #expect(try await tablet.ferry("sync").status == 0)
            let resolve = try await tablet.ferry("conflicts", "resolve", tabletFolder + "/plan.txt", "--keep", "copy")
            #expect(resolve.status == 0, "\(resolve.err)")
            #expect(resolve.out.contains("kept the conflict copy's content"), "\(resolve.out)")
            #expect(try String(contentsOfFile: tabletFolder + "/plan.txt", encoding: .utf8) == "a's edit")
        }
    }
}
