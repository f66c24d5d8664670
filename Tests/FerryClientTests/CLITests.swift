@testable import FerryClient
import FerryCore
@testable import FerryServer
import Foundation
import NIOPosix
import Testing

/// The real `ferry` binary against the real server on loopback.
@Suite("ferry CLI", .serialized)
struct CLITests {
    typealias Run = ToolRun

    /// A home directory with its own XDG config, state and runtime directories.
    struct Home {
        let path = scratchDirectory("home")
        var environment: [String: String] {
            ["HOME": path, "XDG_CONFIG_HOME": path + "/config", "XDG_STATE_HOME": path + "/state", "XDG_RUNTIME_DIR": path + "/run",
             "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        }

        func ferry(_ arguments: String..., stdin: String? = nil) async throws -> Run {
            try await ferry(arguments, stdin: stdin)
        }

        func ferry(_ arguments: [String], stdin: String? = nil) async throws -> Run {
            try await runTool(CLITests.binary("ferry"), arguments, environment: environment, stdin: stdin)
        }

        /// A home logged in to `cloud` as `user`, syncing a fresh folder with `library`
        /// (default: the folder's name); returns the home and the folder.
        static func syncing(_ cloud: Cloud, as user: (name: String, password: String), library: String? = nil) async throws -> (Home, String) {
            let home = Home()
            let login = try await home.ferry("login", cloud.url, "--user", user.name, "--password-stdin", stdin: user.password + "\n")
            try #require(login.status == 0, "\(login.err)")
            let folder = scratchDirectory("cli-folder")
            let add = try await runTool(CLITests.binary("ferry"), ["folder", "add", folder] + (library.map { ["--library", $0] } ?? []),
                                        environment: home.environment)
            try #require(add.status == 0, "\(add.err)")
            return (home, folder)
        }
    }

    /// A product built next to the test bundle.
    static func binary(_ name: String) -> String {
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: me).deletingLastPathComponent()
        while !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent(name).path), dir.path != "/" {
            dir.deleteLastPathComponent()
        }
        return dir.appendingPathComponent(name).path
    }

    @Test func loginFolderSyncHistoryAndDevices() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("kim")
            let home = Home()
            let login = try await home.ferry("login", cloud.url, "--user", user.name, "--device-name", "cli-box", "--password-stdin", stdin: user.password + "\n")
            #expect(login.status == 0, "\(login.err)")
            let configPath = home.path + "/config/ferry/config.json"
            let mode = try FileManager.default.attributesOfItem(atPath: configPath)[.posixPermissions] as? Int
            #expect(mode == 0o600)

            let folder = scratchDirectory("cli-folder")
            let add = try await home.ferry("folder", "add", folder, "--library", "work")
            #expect(add.status == 0, "\(add.err)")
            #expect(FileManager.default.fileExists(atPath: folder + "/.ferry"))
            let list = try await home.ferry("folder", "list", "--json")
            #expect(list.out.contains(folder))

            try Data("quarterly numbers".utf8).write(to: URL(fileURLWithPath: folder + "/q3.txt"))
            let dry = try await home.ferry("sync", "--dry-run")
            #expect(dry.status == 0, "\(dry.err)")
            #expect(dry.out.contains("upload\tq3.txt"))
            let dryJSON = try await home.ferry("sync", "--dry-run", "--json")
            #expect(dryJSON.out.contains("\"action\" : \"upload\""))
            let sync = try await home.ferry("sync")
            #expect(sync.status == 0, "\(sync.err)")
            try Data("revised numbers".utf8).write(to: URL(fileURLWithPath: folder + "/q3.txt"))
            #expect(try await home.ferry("sync").status == 0)

            let history = try await home.ferry("history", folder + "/q3.txt", "--json")
            #expect(history.status == 0, "\(history.err)")
            let versions = try JSONCoding.decoder.decode([FileVersion].self, from: Data(history.out.utf8))
            #expect(versions.count == 2)

            // Restore the first version, then sync brings it back to disk.
            let restore = try await home.ferry("restore", folder + "/q3.txt")
            #expect(restore.status == 0, "\(restore.err)")
            #expect(try await home.ferry("sync").status == 0)
            #expect(FileManager.default.contents(atPath: folder + "/q3.txt") == Data("quarterly numbers".utf8))

            let devices = try await home.ferry("device", "list")
            #expect(devices.out.contains("cli-box"))

            // No daemon: status says so and fails.
            let status = try await home.ferry("status")
            #expect(status.status == 1)
            #expect(status.err.contains("not running"))

            // Usage errors exit 2; other errors 1 with one sentence.
            #expect(try await home.ferry("sync", "--no-such-flag").status == 2)
            let outside = try await home.ferry("history", "/etc/hostname")
            #expect(outside.status == 1 && outside.err.contains("not inside a synced folder"))

            // A revoked device gets told to log in again.
            let config = try ClientConfig.load(from: configPath)
            let revoke = try await home.ferry("device", "revoke", config.deviceId)
            #expect(revoke.status == 0)
            let refused = try await home.ferry("sync")
            #expect(refused.status == 1)
            #expect(refused.err.contains("ferry login"))
        }
    }

    @Test func conflictsAreListedAndResolvedFromTheCLI() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("cfl")
            let home = Home()
            #expect(try await home.ferry("login", cloud.url, "--user", user.name, "--device-name", "desk", "--password-stdin", stdin: user.password + "\n").status == 0)
            let folder = scratchDirectory("cli-conflicts")
            #expect(try await home.ferry("folder", "add", folder, "--library", "docs").status == 0)
            let other = try await Device.make(cloud, user: user, name: "laptop", library: "docs")
            defer { Task { await other.close() } }
            let plan = folder + "/plan.txt"
            try Data("v1".utf8).write(to: URL(fileURLWithPath: plan))
            #expect(try await home.ferry("sync").status == 0)
            try await other.sync()
            try other.write("plan.txt", "laptop's edit")
            try await other.sync()
            try Data("desk's edit".utf8).write(to: URL(fileURLWithPath: plan))
            #expect(try await home.ferry("sync").status == 0)

            let listed = try await home.ferry("conflicts")
            #expect(listed.status == 0, "\(listed.err)")
            #expect(listed.out.contains(folder + "/plan.txt") && listed.out.contains("mine:") && listed.out.contains("desk v"))
            let json = try await home.ferry("conflicts", "--json")
            let open = try JSONCoding.decoder.decode([ConflictInfo].self, from: Data(json.out.utf8))
            let conflict = try #require(open.first)
            #expect(open.count == 1 && conflict.path.string == "plan.txt")

            let bad = try await home.ferry("conflicts", "resolve", plan, "--keep", "neither")
            #expect(bad.status == 2)
            let resolve = try await home.ferry("conflicts", "resolve", plan, "--keep", "mine")
            #expect(resolve.status == 0, "\(resolve.err)")
            #expect(FileManager.default.contents(atPath: plan) == Data("desk's edit".utf8))
            #expect(!FileManager.default.fileExists(atPath: folder + "/" + conflict.mine.path.string))
            #expect(try await home.ferry("conflicts").out.contains("No open conflicts."))
            let again = try await home.ferry("conflicts", "resolve", plan, "--keep", "theirs")
            #expect(again.status == 1 && again.err.contains("no open conflict"))
            try await other.sync()
            #expect(other.read("plan.txt") == "desk's edit")
        }
    }

    @Test func webhooksAreManagedFromTheCLI() async throws {
        try await Cloud.with(configure: WebhookTests.fast) { cloud in
            try await withHookReceiver { url, log in
                let user = try await cloud.user("hooker")
                let home = Home()
                #expect(try await home.ferry("login", cloud.url, "--user", user.name, "--password-stdin", stdin: user.password + "\n").status == 0)
                let bad = try await home.ferry("webhook", "add", url, "--events", "file.*,nonsense")
                #expect(bad.status == 2 && bad.err.contains("unknown event 'nonsense'"))
                // Changes are made as the user: the password is asked for, and a wrong one says so.
                let wrong = try await home.ferry("webhook", "add", url, "--events", "ping", "--password-stdin", stdin: "not-it\n")
                #expect(wrong.status == 1 && wrong.err.contains("wrong password"), "\(wrong.err)")
                let pw = user.password + "\n"
                let add = try await home.ferry("webhook", "add", url, "--events", "file.*,ping", "--password-stdin", stdin: pw)
                #expect(add.status == 0, "\(add.err)")
                let id = try #require(add.out.split(separator: "\n").first { $0.hasPrefix("id:") }?.split(separator: " ").last.map(String.init))
                #expect(add.out.contains("secret: whsec_"))
                let listed = try await home.ferry("webhook", "list")
                #expect(listed.out.contains("\(id)\t\(url)\tfile.*,ping\tactive\tcreated by session "), "\(listed.out)")
                #expect(try await home.ferry("webhook", "test", id, "--password-stdin", stdin: pw).status == 0)
                #expect(await eventually { await log.requests.count == 1 })
                #expect(try await eventually { try await home.ferry("webhook", "deliveries", id).out.contains("ping\tdelivered\t1 attempt(s)\tlast: HTTP 200") })
                #expect(try await home.ferry("webhook", "remove", id, "--password-stdin", stdin: pw).status == 0)
                #expect(try await home.ferry("webhook", "list").out.contains("No webhooks."))

                // A pinned receiver (SPEC §8): the fingerprint is checked before anything is
                // asked, a pin needs https://, and the list shows it.
                let garbled = try await home.ferry("webhook", "add", url, "--events", "ping", "--tls-fingerprint", "SHA256:12:34")
                #expect(garbled.status == 2 && garbled.err.contains("SHA256:"), "\(garbled.err)")
                let pin = try CertificatePin(pem: try SelfSignedCertificate.make(names: ["localhost"], addresses: ["127.0.0.1"]).certificatePEM).fingerprint
                let plainPinned = try await home.ferry("webhook", "add", url, "--events", "ping", "--tls-fingerprint", pin.description, "--password-stdin", stdin: pw)
                #expect(plainPinned.status == 1 && plainPinned.err.contains("https"), "\(plainPinned.err)")
                let httpsURL = "https://127.0.0.1:9/hook"
                let pinned = try await home.ferry("webhook", "add", httpsURL, "--events", "ping", "--tls-fingerprint", pin.openSSLSpelling, "--password-stdin", stdin: pw)
                #expect(pinned.status == 0, "\(pinned.err)")
                #expect(try await home.ferry("webhook", "list").out.contains("\t\(httpsURL)\tping\tactive\t"), "listed")
                #expect(try await home.ferry("webhook", "list").out.contains("\tpinned \(pin)"))
                let gone = try await home.ferry("webhook", "test", id, "--password-stdin", stdin: pw)
                #expect(gone.status == 1 && gone.err.contains("not found"))
            }
        }
    }

    @Test func tasksAndAttachmentsFromTheCLI() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("tess")
            _ = try await cloud.user("pat")
            let home = Home()
            #expect(try await home.ferry("login", cloud.url, "--user", user.name, "--password-stdin", stdin: user.password + "\n").status == 0)
            let folder = scratchDirectory("cli-tasks")
            #expect(try await home.ferry("folder", "add", folder, "--library", "work").status == 0)
            #expect(try await home.ferry("project", "create", "Launch").status == 0)
            #expect(try await home.ferry("project", "add-member", "Launch", "pat").out.contains("members: pat"))

            let created = try await home.ferry("task", "create", "Draft the plan", "--project", "Launch", "--assign", "pat", "--due", "2026-12-31", "--json")
            #expect(created.status == 0, "\(created.err)")
            let task = try JSONCoding.decoder.decode(TaskInfo.self, from: Data(created.out.utf8))
            #expect(task.assignees == ["pat"] && task.dueDate == "2026-12-31")
            let badDate = try await home.ferry("task", "create", "x", "--due", "tomorrow")
            #expect(badDate.status == 1 && badDate.err.contains("due_date"))
            #expect(try await home.ferry("task", "update", task.id, "--status", "in_progress").out.contains("in_progress"))
            let skip = try await home.ferry("task", "update", task.id, "--status", "done")
            #expect(skip.status == 1 && skip.err.contains("one step at a time"))
            #expect(try await home.ferry("task", "update", task.id).status == 2)
            #expect(try await home.ferry("task", "list", "--status", "in_progress").out.contains(task.id))
            #expect(try await home.ferry("task", "list", "--status", "todo").out.contains("No tasks."))

            // attach syncs the folder first, then pins the file's version.
            try Data("plan v1".utf8).write(to: URL(fileURLWithPath: folder + "/plan.md"))
            let attached = try await home.ferry("attach", folder + "/plan.md", "--task", task.id, "--follow")
            #expect(attached.status == 0, "\(attached.err)")
            let shown = try await home.ferry("task", "show", task.id)
            #expect(shown.out.contains("plan.md v") && shown.out.contains("7 bytes, follows the file"))
            let outside = try await home.ferry("attach", "/etc/hostname", "--task", task.id)
            #expect(outside.status == 1 && outside.err.contains("not inside a synced folder"))
        }
    }

    @Test func wrongPasswordAndBadURLAreClearErrors() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("lee")
            let home = Home()
            let wrong = try await home.ferry("login", cloud.url, "--user", user.name, "--password-stdin", stdin: "not-it\n")
            #expect(wrong.status == 1)
            #expect(wrong.err.contains("wrong user name or password"))
            let bad = try await home.ferry("login", "not a url", "--user", user.name, "--password-stdin", stdin: "x\n")
            #expect(bad.status == 2)
            let unconfigured = try await home.ferry("sync")
            #expect(unconfigured.status == 1 && unconfigured.err.contains("ferry login"))
        }
    }
}
