import FerryCore
import Foundation

/// Why a folder cannot be added, removed or changed; each case is the sentence the user sees.
public enum FolderSetupError: ClientAppError, Equatable {
    /// The path names no directory.
    case notADirectory(String)
    /// The path is, contains or lies inside `existing`, a folder already synced.
    case overlaps(String, existing: String)
    /// The path is not one of the configured folders.
    case notSynced(String)
    /// The path to select library paths in is not a configured folder; `argument` is how the user named it.
    case notSyncedToSelect(String, argument: String)
    /// The configuration no longer names the folder, but the running ferryd did not let go of it.
    case stillSynced(String, why: String)

    public var description: String {
        switch self {
        case .notADirectory(let path): "\(path) is not a directory"
        case .overlaps(let path, let existing): "\(path) overlaps \(existing), which is already synced; folders cannot nest"
        case .notSynced(let path): "\(path) is not a synced folder"
        case .notSyncedToSelect(let path, let argument): "\(path) is not a synced folder; add it with 'ferry folder add \(argument) --only PATH…'"
        case .stillSynced(let path, let why):
            "\(path) was removed from the configuration, but the running ferryd still syncs it (\(why)); restart ferryd"
        }
    }
}

/// Which local folders this device syncs: the rules `ferry folder add`, `remove`, `select`
/// and `revert` apply to the configuration. The pure parts decide; `add` and `remove` carry
/// the decision out on disk.
public enum FolderSetup {
    /// A folder argument as the configuration stores it: absolute, without `.` or `..`,
    /// symbolic links resolved.
    public static func canonicalPath(_ directory: String) -> String {
        URL(fileURLWithPath: directory).standardizedFileURL.resolvingSymlinksInPath().path
    }

    /// The configured folder `path` would clash with: the same folder, one above it or one
    /// below it. Pure; `path` and the configured paths are canonical.
    public static func clash(for path: String, among folders: [FolderConfig]) -> FolderConfig? {
        folders.first { path == $0.path || isInside(path, $0.path) || isInside($0.path, path) }
    }

    /// Whether `path` lies below `folder` (`/` holds every other absolute path).
    static func isInside(_ path: String, _ folder: String) -> Bool {
        path.hasPrefix(folder.hasSuffix("/") ? folder : folder + "/")
    }

    /// Refuses a new folder at `path` that nests with a configured folder. Pure.
    public static func checkNesting(_ path: String, in config: ClientConfig) throws(FolderSetupError) {
        if let clash = clash(for: path, among: config.folders) { throw .overlaps(path, existing: clash.path) }
    }

    /// The library a folder syncs with when none is named: the one called like the folder.
    public static func defaultLibraryName(forFolder path: String) -> String {
        (path as NSString).lastPathComponent
    }

    /// The configuration entry for syncing `path` with `library`: a library shared with this
    /// user records the role it was shared with, the user's own records none. Pure.
    public static func entry(path: String, library: LibraryInfo, selection: Selection) -> FolderConfig {
        var folder = FolderConfig(path: path, library: library)
        folder.selection = selection
        return folder
    }

    /// `config` with `folder` added; refused when it would nest with a configured folder. Pure.
    public static func adding(_ folder: FolderConfig, to config: ClientConfig) throws(FolderSetupError) -> ClientConfig {
        try checkNesting(folder.path, in: config)
        var config = config
        config.folders.append(folder)
        return config
    }

    /// `config` without the folder at `path`; refused when it syncs no such folder. Pure.
    public static func removing(_ path: String, from config: ClientConfig) throws(FolderSetupError) -> ClientConfig {
        var config = config
        guard let i = config.folders.firstIndex(where: { $0.path == path }) else { throw .notSynced(path) }
        config.folders.remove(at: i)
        return config
    }

    /// The configured folder at `path` (canonical); refused when it syncs no such folder. Pure.
    public static func synced(_ path: String, in config: ClientConfig) throws(FolderSetupError) -> FolderConfig {
        guard let folder = config.folders.first(where: { $0.path == path }) else { throw .notSynced(path) }
        return folder
    }

    /// `config` with the folder at `path` syncing `selection` of its library; refused, naming
    /// `argument` as the user gave it, when it syncs no such folder. Pure.
    public static func selecting(_ selection: Selection, for path: String, argument: String, in config: ClientConfig) throws(FolderSetupError) -> ClientConfig {
        guard let i = config.folders.firstIndex(where: { $0.path == path }) else { throw .notSyncedToSelect(path, argument: argument) }
        var config = config
        config.folders[i].selection = selection
        return config
    }

    /// The folder at `path` (canonical) after selecting `selection` (nil: as it is), saved
    /// to `configFile` when it changes; refused, naming `argument`, when it syncs no such folder.
    public static func select(_ selection: Selection?, for path: String, argument: String, in config: ClientConfig, configFile: String) throws -> FolderConfig {
        var config = config
        if let selection {
            config = try selecting(selection, for: path, argument: argument, in: config)
            try config.save(to: configFile)
        }
        guard let folder = config.folders.first(where: { $0.path == path }) else { throw FolderSetupError.notSyncedToSelect(path, argument: argument) }
        return folder
    }

    /// Adds the directory at `path` (canonical) to the configuration at `configFile`, synced
    /// with the library `libraryName` names (default: the folder's name) as `findLibrary`
    /// finds or creates it, and marks the folder's root. Nothing is looked up, created or
    /// saved when the path is no directory or nests with a configured folder.
    /// - Returns: the folder's new configuration entry.
    public static func add(
        _ path: String, libraryName: String?, selection: Selection, to config: ClientConfig, configFile: String,
        findLibrary: (String) async throws -> LibraryInfo
    ) async throws -> FolderConfig {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw FolderSetupError.notADirectory(path)
        }
        try checkNesting(path, in: config)
        let library = try await findLibrary(libraryName ?? defaultLibraryName(forFolder: path))
        try createMarker(in: path)
        let folder = entry(path: path, library: library, selection: selection)
        try adding(folder, to: config).save(to: configFile)
        return folder
    }

    /// Creates the folder's root marker (`LocalScanner.markerName`), which tells a sync that
    /// the folder is there (not an unmounted disk's empty mount point) and holds its lock.
    public static func createMarker(in path: String) throws {
        try FileManager.default.createDirectory(atPath: path + "/" + LocalScanner.markerName, withIntermediateDirectories: true)
    }

    /// Stops syncing the folder at `path` (canonical): saves the configuration without it,
    /// has a running ferryd let go of it, then forgets it in the local index. Its files stay.
    public static func remove(_ path: String, from config: ClientConfig, locations: ClientLocations) throws {
        try removing(path, from: config).save(to: locations.configFile)
        // The daemon stops the folder's loop before answering, so nothing of it still writes to the index below.
        if case .failed(let why) = DaemonControl.reload(socketPath: locations.socketPath) {
            throw FolderSetupError.stillSynced(path, why: why)
        }
        if let index = try? LocalIndex(path: locations.indexFile) { try index.forget(folder: path) }
    }
}
