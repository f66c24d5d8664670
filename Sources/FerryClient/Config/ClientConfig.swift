import FerryCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One local folder mapped to one library.
public struct FolderConfig: Codable, Sendable, Hashable {
    /// Absolute path of the folder's root.
    public var path: String
    public var libraryId: String
    public var libraryName: String
    /// Mass-delete guard: percent of the folder's entries (default 50)…
    public var massDeletePercent: Double?
    /// …and minimum count (default 100) above which deletes wait for confirmation.
    public var massDeleteMinimum: Int?
    /// Selective sync: the library's subtrees this folder syncs (absent: the whole library).
    public var only: Selection?
    /// Set when the library is another user's, shared with this one (its role then; each
    /// pass asks the server for the current one): nil for the user's own library.
    public var sharedRole: LibraryRole?

    public init(path: String, libraryId: String, libraryName: String) {
        self.path = path
        self.libraryId = libraryId
        self.libraryName = libraryName
    }

    /// A folder for `library` as the server lists it to this user: named as they name it
    /// (`OWNER/NAME` when shared with them), and with `sharedRole` set unless it is their own.
    public init(path: String, library: LibraryInfo) {
        self.init(path: path, libraryId: library.id, libraryName: library.displayName)
        sharedRole = library.role == .owner ? nil : library.role
    }

    /// What this folder syncs of its library; setting the whole library clears `only`.
    public var selection: Selection {
        get { only ?? .everything }
        set { only = newValue.isEverything ? nil : newValue }
    }

    /// The guard settings for this folder.
    public var policy: SafetyPolicy {
        SafetyPolicy(massDeleteFraction: min(max(massDeletePercent ?? 50, 0), 100) / 100, massDeleteMinimum: max(massDeleteMinimum ?? 100, 1))
    }

    enum CodingKeys: String, CodingKey {
        case path, only
        case libraryId = "library_id", libraryName = "library_name"
        case massDeletePercent = "mass_delete_percent", massDeleteMinimum = "mass_delete_minimum"
        case sharedRole = "shared_role"
    }
}

/// `config.json`: the server, this device's token and the folders. Mode 0600 (it holds the token).
public struct ClientConfig: Codable, Sendable, Equatable {
    public var serverURL: String
    public var username: String
    public var deviceId: String
    public var deviceName: String
    public var deviceToken: String
    public var folders: [FolderConfig]
    /// Chunk uploads in flight at once.
    public var uploadParallelism: Int
    /// Full rescan of every folder, as a safety net behind the watcher.
    public var rescanIntervalSeconds: Int
    /// Quiet time after the last change to a path before it is uploaded.
    public var settleMilliseconds: Int
    /// Every pass walks the whole folder, even while the watcher runs (`PassScope`): for a
    /// folder on a network mount, where inotify does not see what other machines change.
    public var fullPasses: Bool
    /// The server's certificate as pinned by `ferry login` (absent when the system's trust
    /// roots vouch for it, or for plain HTTP).
    public var certificatePin: CertificatePin?

    public init(serverURL: String, username: String, deviceId: String, deviceName: String, deviceToken: String, folders: [FolderConfig] = []) {
        self.serverURL = serverURL
        self.username = username
        self.deviceId = deviceId
        self.deviceName = deviceName
        self.deviceToken = deviceToken
        self.folders = folders
        self.uploadParallelism = 4
        self.rescanIntervalSeconds = 3600
        self.settleMilliseconds = 300
        self.fullPasses = false
    }

    enum CodingKeys: String, CodingKey {
        case folders, username
        case serverURL = "server_url", deviceId = "device_id", deviceName = "device_name", deviceToken = "device_token"
        case uploadParallelism = "upload_parallelism", rescanIntervalSeconds = "rescan_interval_seconds"
        case settleMilliseconds = "settle_milliseconds", fullPasses = "full_passes"
        case certificatePin = "pinned_certificate"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        serverURL = try c.decode(String.self, forKey: .serverURL)
        username = try c.decode(String.self, forKey: .username)
        deviceId = try c.decode(String.self, forKey: .deviceId)
        deviceName = try c.decode(String.self, forKey: .deviceName)
        deviceToken = try c.decode(String.self, forKey: .deviceToken)
        folders = try c.decodeIfPresent([FolderConfig].self, forKey: .folders) ?? []
        uploadParallelism = min(max(try c.decodeIfPresent(Int.self, forKey: .uploadParallelism) ?? 4, 1), 32)
        rescanIntervalSeconds = max(try c.decodeIfPresent(Int.self, forKey: .rescanIntervalSeconds) ?? 3600, 10)
        settleMilliseconds = min(max(try c.decodeIfPresent(Int.self, forKey: .settleMilliseconds) ?? 300, 0), 60_000)
        certificatePin = try c.decodeIfPresent(CertificatePin.self, forKey: .certificatePin)
        fullPasses = try c.decodeIfPresent(Bool.self, forKey: .fullPasses) ?? false
    }

    /// Reads the config, with one actionable sentence when it is missing or broken.
    public static func load(from path: String) throws -> ClientConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ClientError.notConfigured("not logged in (no configuration at \(path)); run 'ferry login URL --user NAME' first")
        }
        do { return try JSONDecoder().decode(ClientConfig.self, from: data) } catch {
            throw ClientError.notConfigured("\(path) is not a valid Ferry configuration (\(error)); fix it or run 'ferry login' again")
        }
    }

    /// Writes the config atomically with mode 0600: temp file, fsync, rename, fsync directory.
    public func save(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(try encoder.encode(self), to: path, mode: 0o600)
    }

    /// The folder that contains `path` (absolute), with `path` relative to it.
    public func folder(containing path: String) -> (FolderConfig, String)? {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        for folder in folders {
            if absolute == folder.path { return (folder, "") }
            if absolute.hasPrefix(folder.path + "/") { return (folder, String(absolute.dropFirst(folder.path.count + 1))) }
        }
        return nil
    }
}

/// Where the client keeps its files (SPEC §1), from XDG variables with the usual fallbacks.
public struct ClientLocations: Sendable {
    public var configFile: String
    public var stateDirectory: String
    public var socketPath: String

    /// The local index (SQLite) of every folder, shared by `ferryd` and `ferry`.
    public var indexFile: String { stateDirectory + "/index.sqlite" }

    public init(configFile: String, stateDirectory: String, socketPath: String) {
        self.configFile = configFile
        self.stateDirectory = stateDirectory
        self.socketPath = socketPath
    }

    public static func standard(configFile: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) -> ClientLocations {
        let home = environment["HOME"] ?? NSHomeDirectory()
        let configHome = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.config"
        let stateHome = environment["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.local/state"
        let state = stateHome + "/ferry"
        let socket = environment["XDG_RUNTIME_DIR"].flatMap { $0.isEmpty ? nil : $0 + "/ferry/ferryd.sock" } ?? state + "/ferryd.sock"
        return ClientLocations(configFile: configFile ?? configHome + "/ferry/config.json", stateDirectory: state, socketPath: socket)
    }
}

/// Client failures that carry one sentence for the user.
public enum ClientError: Error, CustomStringConvertible, Equatable {
    case notConfigured(String)
    case invalidInput(String)
    case folderUnavailable(String)
    case io(String)

    public var description: String {
        switch self {
        case .notConfigured(let m), .invalidInput(let m), .folderUnavailable(let m), .io(let m): m
        }
    }
}

extension ClientError {
    /// The sentence a user is shown for `error`: the failure's own description for Ferry's
    /// errors, Swift's rendering for anything else.
    static func describe(_ error: any Error) -> String {
        switch error {
        case let e as ClientError: e.description
        case let e as APIFailure: e.description
        case let e as SystemCallError: e.description
        case let e as ServerUnreachable: e.description
        default: "\(error)"
        }
    }
}
