import ArgumentParser
import FerryCore
import FerryServer
import Foundation
import Hummingbird
import Logging
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

@main
struct FerryServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry-server",
        abstract: "The Ferry NAS server: HTTP API, chunk store and metadata.",
        version: FerryVersion.description,
        subcommands: [Serve.self, User.self, Check.self, GC.self, SecurityLog.self, TLSCommand.self, Migrate.self],
        defaultSubcommand: Serve.self)
}

/// `--data DIR`, shared by every command so admin commands work beside a running server.
struct DataOption: ParsableArguments {
    @Option(name: .long, help: "The data directory (default: ./ferry-data, or the config file's).")
    var data: String?

    @Option(name: .long, help: "A JSON configuration file.")
    var config: String?

    func resolve() throws -> ServerConfiguration {
        // Database, blobs and keys are readable by the server's user only.
        umask(0o077)
        var configuration = ServerConfiguration()
        if let config {
            do { configuration = try ServerConfiguration.load(path: config) } catch {
                throw ValidationError("cannot read config '\(config)': \(error)")
            }
        }
        if let data { configuration.dataDirectory = data }
        return configuration
    }

    /// The metadata and blob stores the configuration names, without the HTTP parts.
    func openStores() async throws -> (any MetadataStore, any BlobStore, ServerConfiguration) {
        let configuration = try resolve()
        do { try configuration.validate() } catch { throw ValidationError("\(error)") }
        var logger = Logger(label: "ferry-server")
        logger.logLevel = .error
        let stores = try await StoreFactory.open(configuration, threadPool: .singleton, logger: logger)
        return (stores.store, stores.blobs, configuration)
    }
}

func makeLogger(_ label: String) -> Logger {
    LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
    var logger = Logger(label: label)
    logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
    return logger
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server in the foreground.")

    @OptionGroup var options: DataOption
    @Option(help: "Address to listen on (default 127.0.0.1).") var host: String?
    @Option(help: "Port to listen on (default 8720).") var port: Int?
    @Flag(help: "Serve HTTPS on a loopback address too (any other address always gets HTTPS).") var tls = false
    @Flag(help: "Serve plain HTTP on a non-loopback address: passwords and files cross the network in clear text.") var insecureHTTP = false

    func run() async throws {
        var configuration = try options.resolve()
        if let host { configuration.host = host }
        if let port { configuration.port = port }
        if tls { configuration.tls.enabled = true }
        if insecureHTTP { configuration.tls.insecureHTTP = true }
        do { try configuration.validate() } catch { throw ValidationError("\(error)") }
        let logger = makeLogger("ferry-server")
        // One server per data directory on one box: a second would deliver every webhook twice
        // and race the first's recovery. Held until the process exits. Instances over
        // PostgreSQL coordinate through the database instead (SPEC §9).
        let lock = try configuration.metadata.postgres() == nil ? DataDirectory(path: configuration.dataDirectory).lockForServing() : nil
        defer { withExtendedLifetime(lock) {} }
        let services = try await FerryServerApp.makeServices(configuration, logger: logger)
        logger.info("data directory ready", metadata: ["data": "\(configuration.dataDirectory)"])
        try await FerryServerApp.serve(services)
    }
}

struct User: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage user accounts (works while the server runs).", subcommands: [Add.self, List.self, Passwd.self, UserQuota.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user; prints a generated password unless --password-stdin.")
        @OptionGroup var options: DataOption
        @Argument(help: "The user name (1–64 bytes).") var name: String
        @Flag(help: "Make the user an administrator.") var admin = false
        @Flag(help: "Read the password from standard input instead of generating one.") var passwordStdin = false

        func run() async throws {
            guard (1...64).contains(name.utf8.count), !name.contains(where: { $0.isWhitespace || $0 == "/" }) else {
                throw ValidationError("user name must be 1 to 64 bytes without spaces or '/'")
            }
            let (store, _, configuration) = try await options.openStores()
            let (password, generated) = try readOrGeneratePassword(fromStdin: passwordStdin)
            let hash = try PasswordHasher(iterations: configuration.auth.pbkdf2Iterations).hash(password)
            do {
                _ = try await store.createUser(username: name, passwordHash: hash, isAdmin: admin)
            } catch MetadataError.duplicateUser {
                throw ValidationError("a user named '\(name)' already exists; use 'ferry-server user passwd \(name)' to change the password")
            }
            if generated { print("created user '\(name)' with password: \(password)\n(shown once; store it now)") } else { print("created user '\(name)'") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users.")
        @OptionGroup var options: DataOption
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (store, _, _) = try await options.openStores()
            let users = try await store.users()
            let accounts = try await store.storageAccounts()
            if json {
                struct Row: Encodable {
                    let id: Int64; let username: String; let is_admin: Bool; let created_at: Date
                    /// `quota_bytes` is left out for a user without a quota.
                    let used_bytes: Int64; let quota_bytes: Int64?
                }
                let data = try JSONCoding.encoder.encode(users.map {
                    Row(id: $0.id, username: $0.username, is_admin: $0.isAdmin, created_at: $0.createdAt,
                        used_bytes: accounts[$0.username]?.usedBytes ?? 0, quota_bytes: accounts[$0.username]?.quotaBytes)
                })
                print(String(decoding: data, as: UTF8.self))
            } else {
                for u in users {
                    print("\(u.id)\t\(u.username)\t\(u.isAdmin ? "admin" : "user")\t\(accounts[u.username].map(\.summary) ?? "")")
                }
            }
        }
    }

    struct Passwd: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a user's password, end their sessions and revoke their devices.",
            discussion: """
                After a stolen password every way in is closed: sessions end, devices are revoked \
                (each must run 'ferry login' again) and webhooks they created are switched off. \
                --keep-devices leaves the devices (and their webhooks) alone.
                """)
        @OptionGroup var options: DataOption
        @Argument(help: "The user name.") var name: String
        @Flag(help: "Read the password from standard input instead of generating one.") var passwordStdin = false
        @Flag(help: "Do not revoke the user's devices (only their sessions end).") var keepDevices = false

        func run() async throws {
            let (store, _, configuration) = try await options.openStores()
            guard let user = try await store.user(named: name) else { throw ValidationError("no user named '\(name)'") }
            let (password, generated) = try readOrGeneratePassword(fromStdin: passwordStdin)
            let hash = try PasswordHasher(iterations: configuration.auth.pbkdf2Iterations).hash(password)
            let revoked = try await store.setPassword(userId: user.id, passwordHash: hash, revokeDevices: !keepDevices)
            try await store.recordSecurityEvent(.init(kind: .passwordChanged, userId: user.id, username: name, detail: "admin command"))
            for device in revoked {
                try await store.recordSecurityEvent(.init(kind: .deviceRevoked, userId: user.id, username: name, deviceId: device.id, detail: "password changed"))
            }
            let ended = keepDevices ? "their sessions were ended" : "their sessions were ended and \(revoked.count) device(s) revoked"
            print(generated ? "new password for '\(name)': \(password)\n(shown once; \(ended))" : "password changed; \(ended)")
        }
    }
}

/// A password from stdin (first line) or 24 random URL-safe characters.
func readOrGeneratePassword(fromStdin: Bool) throws -> (String, Bool) {
    if fromStdin {
        guard let line = readLine(strippingNewline: true), line.count >= 8, line.utf8.count <= 1024 else {
            throw ValidationError("give a password of at least 8 characters on standard input")
        }
        return (line, false)
    }
    let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
    var rng = SystemRandomNumberGenerator()
    return (String((0..<24).map { _ in alphabet[Int(rng.next(upperBound: UInt(alphabet.count)))] }), true)
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Verify every referenced chunk exists and re-hashes correctly.")
    @OptionGroup var options: DataOption

    func run() async throws {
        let (store, blobs, _) = try await options.openStores()
        let report = try await Maintenance.check(store: store, blobs: blobs)
        print("checked \(report.checked) chunks: \(report.missing.count) missing, \(report.corrupt.count) corrupt, \(report.wrongSize.count) wrong size")
        for h in report.missing { print("missing \(h)") }
        for h in report.corrupt { print("corrupt \(h)") }
        for h in report.wrongSize { print("wrong-size \(h)") }
        for d in report.usageRepaired { print("usage of '\(d.username)' was counted as \(d.counted) bytes, holds \(d.actual): repaired") }
        if !report.isClean { throw ExitCode(1) }
    }
}

struct GC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc", abstract: "Delete chunks that no version references (keeping recent uploads).")
    @OptionGroup var options: DataOption
    @Option(help: "Keep unreferenced chunks uploaded within this many hours (default: the config's, 24).") var graceHours: Double?

    func run() async throws {
        let (store, blobs, configuration) = try await options.openStores()
        let grace = graceHours.map { $0 * 3600 } ?? configuration.storage.gcGraceSeconds
        let report = try await Maintenance.collectGarbage(store: store, blobs: blobs, grace: grace)
        print("removed \(report.removedChunks) chunks (\(report.removedBytes) bytes) and \(report.removedOrphans) blobs no chunk named; "
              + "kept \(report.keptInGrace) recent unreferenced chunks")
        if blobs is any FencedBlobStore {
            print("deleted \(report.objectsDeleted) objects from the bucket (with any an interrupted gc left); "
                  + "kept \(report.keptFromTrash) that a chunk names again")
        }
    }
}

struct SecurityLog: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "security-log", abstract: "Show the security log (logins, refusals, devices, passwords), newest first.")
    @OptionGroup var options: DataOption
    @Option(help: "Only entries since this: a duration back from now (30m, 24h, 7d) or an ISO 8601 time.") var since: String?
    @Option(help: "Only entries of this user.") var user: String?
    @Option(help: "At most this many entries (default 100).") var limit: Int = 100
    @Flag(help: "Print JSON lines.") var json = false

    func validate() throws {
        guard (1...100_000).contains(limit) else { throw ValidationError("--limit must be 1 to 100000") }
        if let since { _ = try Self.parseSince(since, now: Date()) }
    }

    /// `30m`, `24h`, `7d` back from `now`, or an ISO 8601 time.
    static func parseSince(_ text: String, now: Date) throws -> Date {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        if let unit = text.last.flatMap({ units[$0] }), let n = Double(text.dropLast()), n >= 0 { return now.addingTimeInterval(-n * unit) }
        if let date = try? Date.ISO8601FormatStyle().parse(text) { return date }
        throw ValidationError("--since takes a duration such as 30m, 24h or 7d, or an ISO 8601 time such as 2026-12-01T00:00:00Z")
    }

    func run() async throws {
        let (store, _, _) = try await options.openStores()
        var userId: Int64?
        if let user {
            guard let found = try await store.user(named: user) else { throw ValidationError("no user named '\(user)'") }
            userId = found.id
        }
        let cutoff = try since.map { try Self.parseSince($0, now: Date()) }
        let events = try await store.securityEvents(userId: userId, since: cutoff, before: nil, limit: limit)
        if json {
            for event in events { print(String(decoding: try JSONCoding.encoder.encode(event), as: UTF8.self)) }
            return
        }
        if events.isEmpty { print("No entries."); return }
        for e in events {
            var line = "\(e.at.ISO8601Format())  \(e.kind.rawValue)"
            if e.count > 1 { line += " ×\(e.count)" }
            if let name = e.username { line += "  user=\(name)" }
            if let address = e.address { line += "  from=\(address)" }
            if let device = e.deviceId { line += "  device=\(device)" }
            if let detail = e.detail { line += "  (\(detail))" }
            print(line)
        }
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a one-box server's metadata and blobs into the PostgreSQL database the config names.",
        discussion: """
            Stop the one-box server first. Safe to run again after an interruption: what was copied \
            is skipped. Then run 'ferry-server check --config FILE' and start the instances.
            """)
    @Option(help: "The one-box server's data directory.") var from: String
    @Option(help: "The cluster's JSON configuration (with metadata.url).") var config: String

    func run() async throws {
        umask(0o077)
        let configuration: ServerConfiguration
        do { configuration = try ServerConfiguration.load(path: config) } catch { throw ValidationError("cannot read config '\(config)': \(error)") }
        guard configuration.metadata.url != nil else {
            throw ValidationError("'\(config)' names no metadata.url: migrate copies into PostgreSQL (postgres://USER:PASSWORD@HOST:5432/DBNAME)")
        }
        let logger = makeLogger("ferry-server")
        let stores = try await StoreFactory.open(configuration, threadPool: .singleton, logger: logger)
        let migration = try Migration(from: from, into: stores, threadPool: .singleton, logger: logger)
        let report = try await migration.run { print($0) }
        print("copied \(report.blobsCopied) blobs (\(report.blobsPresent) already there) and \(report.rows.values.reduce(0, +)) rows; "
              + "run 'ferry-server check --config \(config)' to verify")
    }
}

struct TLSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tls", abstract: "The server's TLS certificate.", subcommands: [Fingerprint.self])

    struct Fingerprint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the SHA-256 fingerprint of the certificate the server presents, as devices pin it (SHA256:<64 hex>).")
        @OptionGroup var options: DataOption

        func run() async throws {
            let configuration = try options.resolve()
            do {
                let certificate = try ServerCertificate.existing(configuration, data: try DataDirectory(path: configuration.dataDirectory))
                print(certificate.fingerprint)
            } catch let error as ServerCertificateError {
                throw ValidationError(error.description)
            }
        }
    }
}
