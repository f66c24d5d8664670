import ArgumentParser
import FerryClient
import FerryCore
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `ferry`: the user's command line. Exit codes: 0 ok, 1 error, 2 usage (SPEC §1).
@main
struct FerryCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry",
        abstract: "Sync folders with a Ferry server.",
        version: FerryVersion.description,
        subcommands: [Login.self, Folder.self, Sync.self, Status.self, History.self, Restore.self, Trash.self, Conflicts.self, Device.self, Project.self, TaskCommand.self, Attach.self, Webhook.self, Library.self])

    /// Bare `ferry` is a usage error: the help, on standard error, and exit code 2.
    func run() async throws {
        FileHandle.standardError.write(Data((Self.helpMessage() + "\n").utf8))
        throw ExitCode(2)
    }

    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as CLIError {
            FileHandle.standardError.write(Data("ferry: \(error.message)\n".utf8))
            Foundation.exit(1)
        } catch let error as ExitCode {
            Foundation.exit(error.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success || code == .failure && error is CleanExit {
                exit(withError: error)
            }
            if code == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            FileHandle.standardError.write(Data("ferry: \(CLIError.describe(error))\n".utf8))
            Foundation.exit(1)
        }
    }
}

/// A failure already phrased for the user.
struct CLIError: Error {
    let message: String
    init(_ message: String) { self.message = message }

    static func describe(_ error: any Error) -> String {
        switch error {
        case let e as CLIError: e.message
        case let e as APIFailure where e.isAuthentication: "the server refused the credentials (\(e.message)); run 'ferry login' again"
        case let e as APIFailure: e.message
        case let e as ClientError: e.description
        case let e as any ClientAppError: e.description
        case let e as CertificatePinMismatch: e.description
        case let e as ServerUnreachable: "\(e.description); check that ferry-server is running there and try again"
        case let e as SystemCallError: e.description
        case let e as PathError: e.description
        default: "\(error)"
        }
    }
}

/// Options every command that reads the configuration takes.
struct CommonOptions: ParsableArguments {
    @Option(help: "Configuration file (default: $XDG_CONFIG_HOME/ferry/config.json).") var config: String?

    var locations: ClientLocations { ClientLocations.standard(configFile: config) }

    func load() throws -> ClientConfig {
        do { return try ClientConfig.load(from: locations.configFile) } catch let e as ClientError { throw CLIError(e.description) }
    }

    /// Runs `body` with an API client for the configured server, device token and pinned certificate.
    func withAPI<T>(_ config: ClientConfig, _ body: (ServerAPI) async throws -> T) async throws -> T {
        let api = ServerAPI.open(for: config)
        do {
            let result = try await body(api)
            await api.close()
            return result
        } catch {
            await api.close()
            throw error
        }
    }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

func quietLogger() -> Logger {
    var logger = Logger(label: "ferry")
    logger.logLevel = .warning
    return logger
}

// MARK: login

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register this device with a server and store its token (and, for a self-signed certificate, pin it).")

    @Argument(help: "The server, e.g. https://nas.local:8720 (http:// only for this machine, or with --insecure-http).") var url: String
    @Option(help: "Your user name on the server.") var user: String
    @Option(help: "A name for this device (default: the host name).") var deviceName: String?
    @Flag(help: "Read the password from standard input instead of prompting.") var passwordStdin = false
    @Option(help: "Pin the server's certificate if its SHA-256 fingerprint is this one (as 'ferry-server tls fingerprint' prints it), without asking.")
    var fingerprint: String?
    @Flag(help: "Allow plain http:// to another machine: the password, token and files cross the network readable by anyone on it.")
    var insecureHTTP = false
    @OptionGroup var options: CommonOptions

    func validate() throws {
        let address: ServerTrust.Address
        do { address = try ServerTrust.Address(url) } catch { throw ValidationError(error.description) }
        if let fingerprint {
            guard address.isHTTPS else { throw ValidationError("--fingerprint pins an https:// server's certificate; '\(url)' is plain http://") }
            do { _ = try CertificateFingerprint(parsing: fingerprint) } catch { throw ValidationError(error.description) }
        }
    }

    func run() async throws {
        let address = try ServerTrust.Address(url)
        // Before any connection or lookup: plain HTTP to another machine would show the password.
        do { try address.checkPlainHTTP(allowed: insecureHTTP) } catch { throw CLIError(error.description) }
        let pin = address.isHTTPS ? try await confirmCertificate(address) : nil
        let password = try readPassword(prompt: "Password for \(user): ", fromStdin: passwordStdin)
        let configFile = options.locations.configFile
        let config = try await LoginSetup.logIn(serverURL: url, username: user, password: password,
                                                deviceName: deviceName ?? LoginSetup.defaultDeviceName, pin: pin, configFile: configFile)
        print("Logged in as \(user); this device is '\(config.deviceName)' (\(config.deviceId)). Token stored in \(configFile).")
        if let pin { print("Pinned the server's certificate \(pin.fingerprint).") }
    }

    /// The pin for an HTTPS server whose certificate the system does not vouch for: the one
    /// `--fingerprint` names, or the one the user confirms on the terminal. Nil when the
    /// system's trust roots accept the certificate.
    func confirmCertificate(_ address: ServerTrust.Address) async throws -> CertificatePin? {
        let expected = try fingerprint.map { try CertificateFingerprint(parsing: $0) }
        let verdict: ServerTrust.Verdict
        do { verdict = try await ServerTrust.examine(address, expected: expected) } catch let e as ClientError { throw CLIError(e.description) }
        guard case .needsConfirmation(let certificate, let presented) = verdict else { return nil }
        if expected != nil { return try CertificatePin(certificate) }
        var notice = """
            The server's certificate is not signed by an authority this system trusts.
            Its SHA-256 fingerprint is \(presented).
            Compare it with what 'ferry-server tls fingerprint' prints on the server.
            """
        if let pinned = LoginSetup.replacedPin(by: presented, serverURL: url, previous: try? ClientConfig.load(from: options.locations.configFile)) {
            notice += "\nIt replaces the certificate this device pinned before, \(pinned)."
        }
        // The terminal, not stdin: the password may come from stdin. Tests and scripts have none.
        guard isatty(STDIN_FILENO) == 1 || isatty(STDOUT_FILENO) == 1, let terminal = FileHandle(forUpdatingAtPath: "/dev/tty") else {
            throw CLIError("""
                the server's certificate \(presented) is self-signed and there is no terminal to confirm it on; compare it with \
                'ferry-server tls fingerprint' on the server and pass it with --fingerprint
                """)
        }
        terminal.write(Data((notice + "\nPin it and continue? [yes/no] ").utf8))
        let answer = String(decoding: Self.readAnswer(terminal), as: UTF8.self).trimmingCharacters(in: .whitespaces).lowercased()
        guard answer == "yes" || answer == "y" else { throw CLIError("the certificate was not confirmed, so nothing was sent; no login was made") }
        return try CertificatePin(certificate)
    }

    /// One line from the terminal, without its newline.
    static func readAnswer(_ handle: FileHandle) -> Data {
        var line = Data()
        while let byte = try? handle.read(upToCount: 1), let b = byte.first, b != UInt8(ascii: "\n") { line.append(b) }
        return line
    }
}

// MARK: folders

struct Folder: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Choose the folders this device syncs.", subcommands: [Add.self, List.self, Select.self, Remove.self, ConfirmDeletes.self, FolderRevert.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sync a local folder with a library (created if needed).")
        @Argument(help: "The local folder.") var directory: String
        @Option(help: "Library name (default: the folder's name); OWNER/NAME for one shared with you.") var library: String?
        @Option(parsing: .upToNextOption, help: "Sync only these library paths, each with everything below it (default: the whole library).")
        var only: [String] = []
        @OptionGroup var options: CommonOptions

        func validate() throws { _ = try Folder.selection(only) }

        func run() async throws {
            let config = try options.load()
            let path = FolderSetup.canonicalPath(directory)
            let folder = try await FolderSetup.add(path, libraryName: library, selection: try Folder.selection(only), to: config,
                                                   configFile: options.locations.configFile) { name in
                try await options.withAPI(config) { try await $0.library(named: name) }
            }
            let what = folder.selection.isEverything ? "library '\(folder.libraryName)'" : "\(folder.selection) of library '\(folder.libraryName)'"
            switch DaemonControl.reload(socketPath: options.locations.socketPath) {
            case .reloaded: print("Syncing \(path) with \(what); the running ferryd has started on it.")
            case .notRunning: print("Syncing \(path) with \(what); start ferryd, or run 'ferry sync', to sync it now.")
            case .failed(let why): throw CLIError("\(path) was added to the configuration, but the running ferryd did not take it up: \(why)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List synced folders.")
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let config = try options.load()
            if json { return try printJSON(config.folders) }
            if config.folders.isEmpty { print("No folders; add one with 'ferry folder add DIR'.") }
            for f in config.folders { print("\(f.path)\t\(f.libraryName)" + (f.selection.isEverything ? "" : "\tonly: \(f.selection)")) }
        }
    }

    struct ConfirmDeletes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "confirm-deletes", abstract: "Let the running ferryd carry out deletes its mass-delete guard held back in a folder.")
        @Argument(help: "The local folder.") var directory: String
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let path = FolderSetup.canonicalPath(directory)
            switch DaemonControl.confirmDeletes(socketPath: options.locations.socketPath, folder: path) {
            case .notRunning: throw CLIError("ferryd is not running; without it, run 'ferry sync --allow-mass-delete'")
            case .nothingWaiting: throw CLIError("\(path) has no deletes waiting for confirmation")
            case .confirmed: print("Confirmed: ferryd carries out the held deletes in \(path) now.")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop syncing a folder (its files stay, on disk and on the server).")
        @Argument(help: "The local folder.") var directory: String
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let path = FolderSetup.canonicalPath(directory)
            try FolderSetup.remove(path, from: try options.load(), locations: options.locations)
            print("No longer syncing \(path); its files are untouched.")
        }
    }
}

// MARK: sync and status

struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run one full sync of every folder, then exit (0 only when all are in sync).")
    @Flag(help: "Print the result as JSON.") var json = false
    @Flag(help: "Show what a sync would do, with sizes, and change nothing anywhere.") var dryRun = false
    @Flag(help: "Let deletes held back by the mass-delete guard go through.") var allowMassDelete = false
    @Option(name: .customLong("wait"), help: "Seconds to wait for another ferry process (a running ferryd) syncing the same folder.")
    var waitSeconds = 120
    @OptionGroup var options: CommonOptions

    func validate() throws {
        guard (0...86_400).contains(waitSeconds) else { throw ValidationError("--wait must be 0 to 86400 seconds") }
    }

    struct PlannedLine: Encodable {
        let action: String
        let path: String
        let bytes: Int64
    }

    struct FolderPlan: Encodable {
        let actions: [PlannedLine]
        let held: [String: String]
        let massDelete: MassDeletePause?
        let leavingSelection: [String]
        enum CodingKeys: String, CodingKey { case actions, held, massDelete = "mass_delete", leavingSelection = "leaving_selection" }
    }

    func run() async throws {
        let config = try options.load()
        guard !config.folders.isEmpty else { throw CLIError("no folders to sync; add one with 'ferry folder add DIR'") }
        let index = try LocalIndex(path: options.locations.indexFile)
        let tty = isatty(STDOUT_FILENO) == 1 && !json
        var results: [String: PassReport] = [:]
        var plans: [String: FolderPlan] = [:]
        var failures: [String: String] = [:]
        try await options.withAPI(config) { api in
            for folder in config.folders {
                if tty && !dryRun { FileHandle.standardOutput.write(Data("syncing \(folder.path) …".utf8)) }
                let progress = TransferProgress()
                let drawing = tty && !dryRun ? Task { await Self.draw(progress, label: folder.path) } : nil
                func stopDrawing() async {
                    guard let drawing else { return }
                    drawing.cancel()
                    await drawing.value
                }
                do {
                    let sync = try FolderSync(folder: folder, of: config, index: index, api: api, lockTimeout: .seconds(waitSeconds),
                                              progress: progress, logger: quietLogger())
                    if dryRun {
                        let plan = try await sync.dryRun(allowMassDelete: allowMassDelete)
                        plans[folder.path] = FolderPlan(actions: plan.actions.map { PlannedLine(action: $0.summary.kind, path: $0.summary.path, bytes: $0.summary.bytes) },
                                                        held: plan.held, massDelete: plan.massDelete, leavingSelection: plan.leavingSelection)
                        continue
                    }
                    let report = try await sync.syncUntilSettled(allowMassDelete: allowMassDelete) { holder in
                        if tty { FileHandle.standardOutput.write(Data("\r\(folder.path): waiting for \(holder), which is syncing it …".utf8)) }
                    }
                    results[folder.path] = report
                    await stopDrawing()
                    if tty {
                        let moved = ProgressLine.bytes(report.uploadedBytes + report.downloadedBytes)
                        print("\r\u{1B}[K\(folder.path): ↑\(report.uploadedFiles) ↓\(report.downloadedFiles) deleted \(report.deletedLocal + report.deletedRemote), "
                              + "conflicts \(report.conflicts), \(moved) sent and received")
                    }
                } catch let e as APIFailure where e.isAuthentication {
                    await stopDrawing()
                    throw CLIError("the server refused this device's token (revoked?); run 'ferry login' again")
                } catch let e as ServerUnreachable {
                    // Every other folder would wait for the same silence.
                    await stopDrawing()
                    if tty { print("") }
                    throw CLIError(CLIError.describe(e))
                } catch {
                    await stopDrawing()
                    failures[folder.path] = CLIError.describe(error)
                    if tty { print("\r\u{1B}[K\(folder.path): \(CLIError.describe(error))") }
                }
            }
        }
        if dryRun {
            if json {
                struct Output: Encodable { let folders: [String: FolderPlan]; let errors: [String: String] }
                try printJSON(Output(folders: plans, errors: failures))
            } else {
                for (path, plan) in plans.sorted(by: { $0.key < $1.key }) {
                    print("\(path): \(Self.headline(actions: plan.actions.count + plan.leavingSelection.count, held: plan.held.count, paused: plan.massDelete != nil))")
                    for line in plan.actions { print("  \(line.action)\t\(line.path)\(line.bytes > 0 ? "\t\(line.bytes) bytes" : "")") }
                    for file in plan.leavingSelection { print("  left the selection (removed here if unchanged)\t\(file)") }
                    for (file, why) in plan.held.sorted(by: { $0.key < $1.key }) { print("  held\t\(file)\t\(why)") }
                    if let pause = plan.massDelete { print("  paused: \(pause.description)") }
                }
            }
            return try SyncVerdict.check(results: [:], failures: failures)
        }
        if json {
            struct Output: Encodable { let folders: [String: PassReport]; let errors: [String: String] }
            try printJSON(Output(folders: results, errors: failures))
        }
        if !json {
            for (path, report) in results.sorted(by: { $0.key < $1.key }) {
                if let outside = report.outsideSelection, outside > 0 { print("\(path): outside the selection: \(outside) local file(s) not synced") }
            }
            for (path, report) in SyncVerdict.unsettled(results) {
                for (file, why) in report.problems.sorted(by: { $0.key < $1.key }) {
                    FileHandle.standardError.write(Data("\(path)/\(file): \(why)\n".utf8))
                }
            }
        }
        try SyncVerdict.check(results: results, failures: failures)
    }
}

extension Sync {
    /// A folder's first line in a dry run: "in sync" only when nothing is planned, held or
    /// paused (a folder the mass-delete guard paused is anything but).
    static func headline(actions: Int, held: Int, paused: Bool) -> String {
        var parts: [String] = []
        if actions > 0 { parts.append("\(actions) action(s)") }
        if paused { parts.append("paused by the mass-delete guard") }
        if held > 0 { parts.append("\(held) file(s) held back") }
        return parts.isEmpty ? "in sync" : parts.joined(separator: ", ")
    }

    /// Redraws `progress` on one terminal line (`\r`, then clear to its end) every quarter
    /// second while a pass runs, until cancelled.
    static func draw(_ progress: TransferProgress, label: String) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(250))
            let s = progress.snapshot
            guard !Task.isCancelled, s.active, let started = s.phaseStarted else { continue }
            FileHandle.standardOutput.write(Data("\r\u{1B}[K\(label): \(ProgressLine.format(s, elapsed: .now - started))".utf8))
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show what the running ferryd is doing, or why a file is (not) in sync.")
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Explain why this file is or is not in sync.") var why: String?
    @OptionGroup var options: CommonOptions

    func run() async throws {
        if let why {
            let config = try options.load()
            let target = try SyncedPath(why, config: config)
            let index = try LocalIndex(path: options.locations.indexFile)
            let answer = try await options.withAPI(config) { api in
                let sync = try FolderSync(folder: target.folder, of: config, index: index, api: api, logger: quietLogger())
                return try await sync.explain(target.path.string)
            }
            if json { return try printJSON(["path": target.path.string, "why": answer]) }
            return print(answer)
        }
        let config = try options.load()  // "not logged in" before "ferryd is not running"
        let socket = options.locations.socketPath
        guard let data = DaemonControl.statusDocument(socketPath: socket) else {
            throw CLIError("ferryd is not running (no answer on \(socket)); start it with 'systemctl --user start ferryd' or 'ferryd'")
        }
        if json { return print(String(decoding: data, as: UTF8.self)) }
        let status = try DaemonStatus(json: data)
        print("ferryd: device '\(status.device)' → \(status.server)")
        print(await ServerAPI.storageLine(for: config))
        for f in status.folders {
            var line = "\(f.path) [\(f.library)]: \(f.state.rawValue)"
            if let retry = f.retryAt, f.state == .offline || f.state == .error {
                line += ", retrying in \(max(1, Int(retry.timeIntervalSinceNow.rounded(.up)))) s"
            }
            if let at = f.lastSyncAt { line += ", last sync \(isoDate(at))" }
            if f.conflicts > 0 { line += ", \(f.conflicts) conflict(s)" }
            if let queued = f.queuedBytes, queued > 0 || (f.queuedFiles ?? 0) > 0 {
                line += ", \(ProgressLine.bytes(queued)) in \(f.queuedFiles ?? 0) file(s) queued"
            }
            if let moved = f.transferredBytes, moved > 0 { line += ", \(ProgressLine.bytes(moved)) transferred since start" }
            print(line)
            if let e = f.lastError { print("  error: \(e)") }
            if let pause = f.massDelete { print("  paused: \(pause.description), or 'ferry folder confirm-deletes \(f.path)'") }
            if let outside = f.lastPass?.outsideSelection, outside > 0 { print("  outside the selection: \(outside) local file(s) not synced") }
            for (path, why) in f.problems.sorted(by: { $0.key < $1.key }).prefix(20) { print("  \(path): \(why)") }
        }
    }
}

// MARK: history and restore

/// Device names by id, to show who did what.
func deviceNames(_ api: ServerAPI) async throws -> [String: String] {
    Dictionary(try await api.devices().map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
}

/// Who made a version: the device's name, its id when the device is gone, "web" for the
/// dashboard or a script with a user's token.
func deviceLabel(_ id: String?, _ names: [String: String]) -> String {
    id.map { names[$0] ?? $0 } ?? "web"
}

/// A time in ISO 8601 with this machine's offset (2026-03-04T17:05:09+01:00): the same in
/// every locale, sortable, and never day-month or month-day.
func isoDate(_ date: Date) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.timeZone = .current
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.string(from: date)
}

/// A version number as `ferry history` prints it, or as `v12` elsewhere. Parsing never
/// fails here: a bad value is refused by the command's `validate()`, because a value that
/// fails to parse makes ArgumentParser look again at `--version` and print the program's
/// version instead of an error.
struct VersionNumber: ExpressibleByArgument {
    let argument: String
    /// The number, nil when the argument is not a positive number.
    let value: Int64?
    init?(argument: String) {
        self.argument = argument
        let digits = argument.hasPrefix("v") ? argument.dropFirst() : Substring(argument)
        value = Int64(digits).flatMap { $0 > 0 ? $0 : nil }
    }
}

struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the versions of a synced file, newest first.")
    @Argument(help: "A file inside a synced folder.") var path: String
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var options: CommonOptions

    func run() async throws {
        let config = try options.load()
        let target = try SyncedPath(path, config: config)
        let (history, names) = try await options.withAPI(config) { api in
            (try await api.history(library: target.folder.libraryId, path: target.path), try await deviceNames(api))
        }
        if json { return try printJSON(history.versions) }
        if history.versions.isEmpty { print("No versions of \(target.path) on the server.") }
        for v in history.versions {
            let what = v.deleted ? "deleted" : v.kind == .file ? "\(v.size) bytes  \(v.sha256?.hex.prefix(12) ?? "")" : v.kind.rawValue
            print("\(v.version)\t\(isoDate(v.committedAt))\t\(what)\t\(deviceLabel(v.deviceId, names))")
        }
        if history.versions.count > 1 { print("Restore one with 'ferry restore \(path) --version N', N from the first column.") }
    }
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make an old version of a file or folder current again (the daemon then downloads it).",
        discussion: "A deleted folder comes back with what was in it when it was deleted. 'ferry trash' lists what can be restored.")
    @Argument(help: "A file or folder inside a synced folder.") var path: String
    @Option(help: "The version to restore, as the first column of 'ferry history' shows it (default: the one before the current).")
    var version: VersionNumber?
    @OptionGroup var options: CommonOptions

    func validate() throws {
        if let version, version.value == nil {
            throw ValidationError("--version takes a version number as 'ferry history' prints it (such as 12 or v12), not '\(version.argument)'")
        }
    }

    func run() async throws {
        let config = try options.load()
        let target = try SyncedPath(path, config: config)
        let restored = try await options.withAPI(config) { api -> VersionResponse in
            let history = try await api.history(library: target.folder.libraryId, path: target.path, limit: RestoreChoice.historyLimit)
            let (wanted, current) = try RestoreChoice.choose(version?.value, of: target.path, argument: path, history: history.versions)
            return try await api.restore(library: target.folder.libraryId, path: target.path, version: wanted, base: current)
        }
        let beneath = restored.restoredEntries.map { $0 > 0 ? " with \($0) entr\($0 == 1 ? "y" : "ies") beneath it" : "" } ?? ""
        print("Restored \(target.path)\(beneath) as version \(restored.version.version); run 'ferry sync' or let ferryd bring it to disk.")
    }
}

struct Conflicts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List open conflicts, or settle one.", subcommands: [List.self, Resolve.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the conflicts the server recorded in the synced folders.")
        @Flag(help: "Include resolved conflicts.") var all = false
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let config = try options.load()
            let (found, names) = try await options.withAPI(config) { api in
                var found: [(FolderConfig, ConflictInfo)] = []
                for folder in config.folders {
                    for c in try await api.conflicts(library: folder.libraryId, state: all ? "all" : "open") { found.append((folder, c)) }
                }
                return (found, try await deviceNames(api))
            }
            if json { return try printJSON(found.map(\.1)) }
            if found.isEmpty { return print(all ? "No conflicts recorded." : "No open conflicts.") }
            for (folder, c) in found {
                let who = { (side: ConflictSide) in "\(deviceLabel(side.deviceId, names)) v\(side.version), \(side.size) bytes" }
                print("\(folder.path)/\(c.path)\(c.resolution.map { "  [resolved: \($0)]" } ?? "")")
                let choices: String
                if let (mine, theirs) = ConflictPerspective(c, deviceId: config.deviceId).mineAndTheirs {
                    print("  mine:   \(mine.path)  (\(who(mine)))")
                    print("  theirs: \(theirs.path)  (\(who(theirs)))")
                    choices = "mine|theirs|both"
                } else {
                    print("  copy:    \(c.mine.path)  (\(who(c.mine)))")
                    print("  current: \(c.theirs.path)  (\(who(c.theirs)))")
                    choices = "copy|current|both"
                }
                print("  since \(isoDate(c.detectedAt)); settle with 'ferry conflicts resolve \(folder.path)/\(c.path) --keep \(choices)'")
            }
        }
    }

    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Settle a conflict: keep mine (what this device wrote), theirs (the other device's side), or both.",
            discussion: """
                "Mine" is this device's side on whichever device you run it: the conflict copy where this device lost the race, \
                the file itself where it won. Where neither side came from this device, keep copy (the conflict copy's content) \
                or current (the file as it is). The side given up stays in the file's history ('ferry history'). The folder is \
                synced afterwards.
                """)
        @Argument(help: "The conflicted file, or its conflict copy.") var path: String
        @Option(help: "mine (this device's side), theirs (the other side), both, copy or current.") var keep: ConflictChoice
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let config = try options.load()
            let target = try SyncedPath(path, config: config)
            let index = try LocalIndex(path: options.locations.indexFile)
            let resolved = try await options.withAPI(config) { api -> ConflictInfo in
                let open = try await api.conflicts(library: target.folder.libraryId)
                let conflict = try ConflictLookup.conflict(for: target.path, among: open)
                let resolution: ConflictKeep
                do { resolution = try ConflictPerspective(conflict, deviceId: config.deviceId).resolution(for: keep, names: try await deviceNames(api)) } catch let e as ClientError {
                    throw CLIError(e.description)
                }
                let resolved = try await api.resolveConflict(id: conflict.id, keep: resolution)
                let sync = try FolderSync(folder: target.folder, of: config, index: index, api: api, logger: quietLogger())
                _ = try await sync.syncUntilSettled()
                return resolved
            }
            let outcome = switch resolved.resolution {
            case "mine": "kept the conflict copy's content at \(resolved.path) and removed \(resolved.mine.path)"
            case "theirs": "kept \(resolved.path) as it is and removed \(resolved.mine.path)"
            default: "kept both \(resolved.path) and \(resolved.mine.path)"
            }
            print("Resolved: \(outcome); earlier versions stay in 'ferry history'.")
        }
    }
}

extension ConflictChoice: ExpressibleByArgument {}

struct Webhook: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send signed HTTP notifications of file, device and task events to your tools.",
        subcommands: [Add.self, List.self, Deliveries.self, Test.self, Enable.self, Redeliver.self, Remove.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add an endpoint; prints its id and its secret (shown only now).",
            discussion: "Events are names like file.created or wildcards like file.* and task.*, comma-separated.")
        @Argument(help: "The receiver's http:// or https:// URL.") var url: String
        @Option(help: "Events to send, e.g. file.*,task.created.") var events: String
        @Option(help: "Your own secret (at least 16 bytes); by default one is generated.") var secret: String?
        @Flag(help: "Keep the first KiB of each answer in the delivery log (off: only status and latency are kept).")
        var keepResponses = false
        @Option(help: ArgumentHelp(
            "Trust the https:// receiver's self-signed certificate with this SHA-256 fingerprint, and only it.",
            discussion: "As 'openssl x509 -noout -fingerprint -sha256' prints it, or SHA256: and 64 hex digits (SPEC §8)."))
        var tlsFingerprint: String?
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: CommonOptions
        @OptionGroup var session: SessionOptions

        func run() async throws {
            let filter: EventFilter
            do { filter = try EventFilter(events.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) } catch {
                throw ValidationError(error.message)
            }
            var pin: CertificateFingerprint?
            if let tlsFingerprint {
                do throws(FingerprintError) { pin = try CertificateFingerprint(parsing: tlsFingerprint) } catch { throw ValidationError(error.description) }
            }
            let config = try options.load()
            let created = try await session.withSession(config, options) {
                try await $0.createWebhook(url: url, events: filter, secret: secret, keepResponseExcerpts: keepResponses,
                                           tlsFingerprint: pin?.description)
            }
            if json { return try printJSON(created) }
            print("id:     \(created.webhook.id)")
            print("secret: \(created.secret)")
            print("Keep the secret: it is not shown again. Check deliveries with 'ferry webhook deliveries \(created.webhook.id)'.")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List endpoints.")
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let config = try options.load()
            let hooks = try await options.withAPI(config) { try await $0.webhooks() }
            if json { return try printJSON(hooks) }
            if hooks.isEmpty { print("No webhooks.") }
            for h in hooks {
                let state = h.active ? "active" : "disabled" + (h.disabledReason.map { " (\($0))" } ?? "")
                let creator = h.createdBy.map { "created by \($0.kind.rawValue) \($0.id)" } ?? "creator not recorded"
                let pinned = h.tlsFingerprint.map { "\tpinned \($0)" } ?? ""
                print("\(h.id)\t\(h.url)\t\(h.events.patterns.joined(separator: ","))\t\(state)\t\(creator)\(pinned)")
            }
        }
    }

    struct Deliveries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an endpoint's latest deliveries and their attempts.")
        @Argument(help: "The webhook id.") var id: String
        @Option(help: "How many (1–500).") var limit = 20
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: CommonOptions

        func run() async throws {
            guard (1...500).contains(limit) else { throw ValidationError("--limit must be 1 to 500") }
            let config = try options.load()
            let page = try await options.withAPI(config) { try await $0.deliveries(webhook: id, limit: limit) }
            if json { return try printJSON(page.deliveries) }
            if page.deliveries.isEmpty { print("No deliveries yet.") }
            for d in page.deliveries {
                var line = "\(d.id)\t\(d.eventType)\t\(d.state.rawValue)\t\(d.attempts.count) attempt(s)"
                if let last = d.attempts.last {
                    line += "\tlast: " + (last.status.map { "HTTP \($0)" } ?? "no answer") + " in \(last.latencyMs) ms"
                    if let error = last.error, last.status.map({ !(200..<300).contains($0) }) ?? true { line += " (\(error))" }
                }
                if d.state == .pending, let next = d.nextAttemptAt { line += "\tnext \(isoDate(next))" }
                print(line)
            }
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send a ping event to an endpoint now.")
        @Argument(help: "The webhook id.") var id: String
        @OptionGroup var options: CommonOptions
        @OptionGroup var session: SessionOptions

        func run() async throws {
            let config = try options.load()
            let delivery = try await session.withSession(config, options) { try await $0.testWebhook(id: id) }
            print("Queued ping as delivery \(delivery.id); see 'ferry webhook deliveries \(id)'.")
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Switch an endpoint back on (after the server disabled it); its queued events follow.")
        @Argument(help: "The webhook id.") var id: String
        @OptionGroup var options: CommonOptions
        @OptionGroup var session: SessionOptions

        func run() async throws {
            let config = try options.load()
            _ = try await session.withSession(config, options) { try await $0.updateWebhook(id: id, UpdateWebhookRequest(active: true)) }
            print("Enabled \(id).")
        }
    }

    struct Redeliver: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send a delivery's event again.")
        @Argument(help: "The delivery id (from 'ferry webhook deliveries').") var delivery: Int64
        @OptionGroup var options: CommonOptions
        @OptionGroup var session: SessionOptions

        func run() async throws {
            let config = try options.load()
            let queued = try await session.withSession(config, options) { try await $0.redeliver(delivery: delivery) }
            print("Queued again as delivery \(queued.id).")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an endpoint and its delivery log.")
        @Argument(help: "The webhook id.") var id: String
        @OptionGroup var options: CommonOptions
        @OptionGroup var session: SessionOptions

        func run() async throws {
            let config = try options.load()
            try await session.withSession(config, options) { try await $0.deleteWebhook(id: id) }
            print("Removed \(id).")
        }
    }
}

struct Project: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Group tasks and share them with other users.", subcommands: [Create.self, List.self, AddMember.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a project you own.")
        @Argument(help: "The project's name.") var name: String
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let config = try options.load()
            let project = try await options.withAPI(config) { try await $0.createProject(name: name) }
            if json { return try printJSON(project) }
            print("Created project \(project.name) (\(project.id)).")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the projects you own or belong to.")
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let config = try options.load()
            let projects = try await options.withAPI(config) { try await $0.projects() }
            if json { return try printJSON(projects) }
            if projects.isEmpty { print("No projects.") }
            for p in projects { print("\(p.id)\t\(p.name)\towner \(p.owner)\(p.members.isEmpty ? "" : "\tmembers " + p.members.joined(separator: ","))") }
        }
    }

    struct AddMember: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add-member", abstract: "Let another user see the project's tasks and work on those assigned to them.")
        @Argument(help: "The project's id or name.") var project: String
        @Argument(help: "The user to add.") var user: String
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let config = try options.load()
            let updated = try await options.withAPI(config) { api in
                try await api.addProjectMember(project: try await ProjectLookup.id(for: project, api: api), username: user)
            }
            print("\(updated.name) members: \(updated.members.joined(separator: ", "))")
        }
    }
}

extension TaskStatus: ExpressibleByArgument {}

struct TaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "task", abstract: "Create, list, show and update tasks.", subcommands: [Create.self, List.self, Show.self, Update.self])

    static func line(_ t: TaskInfo) -> String {
        var line = "\(t.id)\t\(t.status.rawValue)\t\(t.title)"
        if !t.assignees.isEmpty { line += "\t@" + t.assignees.joined(separator: ",@") }
        if let due = t.dueDate { line += "\tdue \(due)" }
        return line
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a task (in your Inbox project unless --project is given).")
        @Argument(help: "The task's title.") var title: String
        @Option(help: "The project's id or name.") var project: String?
        @Option(help: "A longer description.") var description: String?
        @Option(help: "Assign to this user (repeatable).") var assign: [String] = []
        @Option(help: "Due date, YYYY-MM-DD.") var due: String?
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let config = try options.load()
            let task = try await options.withAPI(config) { api in
                let projectId = try await project.asyncMap { try await ProjectLookup.id(for: $0, api: api) }
                return try await api.createTask(CreateTaskRequest(project: projectId, title: title, description: description,
                                                                  assignees: assign.isEmpty ? nil : assign, dueDate: due))
            }
            if json { return try printJSON(task) }
            print("Created \(TaskCommand.line(task))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tasks in your projects.")
        @Option(help: "Only this project (id or name).") var project: String?
        @Option(help: "Only this status: todo, in_progress, review or done.") var status: TaskStatus?
        @Option(help: "Only tasks assigned to this user.") var assignee: String?
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let config = try options.load()
            let tasks = try await options.withAPI(config) { api -> [TaskInfo] in
                let projectId = try await project.asyncMap { try await ProjectLookup.id(for: $0, api: api) }
                var all: [TaskInfo] = []
                var after: Int64?
                repeat {
                    let page = try await api.tasks(project: projectId, status: status, assignee: assignee, after: after, limit: 500)
                    all += page.tasks
                    after = page.nextAfter
                } while after != nil
                return all
            }
            if json { return try printJSON(tasks) }
            if tasks.isEmpty { print("No tasks.") }
            tasks.forEach { print(TaskCommand.line($0)) }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a task with its attachments.")
        @Argument(help: "The task id.") var id: String
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let config = try options.load()
            let task = try await options.withAPI(config) { try await $0.task(id: id) }
            if json { return try printJSON(task) }
            print(TaskCommand.line(task))
            if !task.description.isEmpty { print(task.description) }
            print("created by \(task.createdBy) \(isoDate(task.createdAt)), project \(task.project)")
            for a in task.attachments ?? [] {
                print("  attachment \(a.id): \(a.path) v\(a.version), \(a.size) bytes\(a.follow ? ", follows the file" : "")")
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a task: status (todo → in_progress → review → done), title, description, assignees, due date.")
        @Argument(help: "The task id.") var id: String
        @Option(help: "todo, in_progress, review or done.") var status: TaskStatus?
        @Option(help: "A new title.") var title: String?
        @Option(help: "A new description.") var description: String?
        @Option(help: "Assign to these users instead (repeatable).") var assign: [String] = []
        @Option(help: "Due date, YYYY-MM-DD (empty to clear).") var due: String?
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let update = UpdateTaskRequest(title: title, description: description, status: status, assignees: assign.isEmpty ? nil : assign, dueDate: due)
            guard title != nil || description != nil || status != nil || !assign.isEmpty || due != nil else {
                throw ValidationError("say what to change: --status, --title, --description, --assign or --due")
            }
            let config = try options.load()
            let task = try await options.withAPI(config) { try await $0.updateTask(id: id, update) }
            if json { return try printJSON(task) }
            print("Updated \(TaskCommand.line(task))")
        }
    }
}

struct Attach: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attach a synced file to a task (the folder is synced first, so the file's current content is attached).",
        discussion: "The attachment pins that version: it stays downloadable after the file changes or is deleted. With --follow it moves to each new version.")
    @Argument(help: "A file inside a synced folder.") var path: String
    @Option(help: "The task id.") var task: String
    @Flag(help: "Track the file's new versions.") var follow = false
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var options: CommonOptions

    func run() async throws {
        let config = try options.load()
        let target = try SyncedPath(path, config: config)
        let index = try LocalIndex(path: options.locations.indexFile)
        let attachment = try await options.withAPI(config) { api -> AttachmentInfo in
            let sync = try FolderSync(folder: target.folder, of: config, index: index, api: api, logger: quietLogger())
            let report = try await sync.syncUntilSettled()
            if let problem = report.problems[target.path.string] { throw CLIError("\(target.path) could not be synced: \(problem)") }
            return try await api.attach(task: task, AttachRequest(library: target.folder.libraryId, path: target.path, follow: follow))
        }
        if json { return try printJSON(attachment) }
        print("Attached \(attachment.path) v\(attachment.version) to \(task) as \(attachment.id)\(follow ? "; it follows the file" : "").")
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}

// MARK: devices

struct Device: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "See and revoke this account's devices.", subcommands: [List.self, Revoke.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List devices.")
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let config = try options.load()
            let devices = try await options.withAPI(config) { try await $0.devices() }
            if json { return try printJSON(devices) }
            for d in devices {
                let state = d.revokedAt != nil ? "revoked" : d.id == config.deviceId ? "this device" : "active"
                print("\(d.id)\t\(d.name)\t\(state)")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a device: its token stops working at once.")
        @Argument(help: "The device id (see 'ferry device list').") var id: String
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let config = try options.load()
            try await options.withAPI(config) { try await $0.revokeDevice(id) }
            print("Revoked device \(id).")
        }
    }
}
