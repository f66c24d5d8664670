import FerryCore
import Foundation

/// Why a path argument names nothing inside a synced folder; each case is the sentence the user sees.
public enum SyncedPathError: ClientAppError, Equatable {
    /// The path (absolute) lies in no configured folder.
    case outsideFolders(String)
    /// The path is a configured folder's root, where something inside it was wanted.
    case folderRoot(String)
    /// No folder is configured, so "every synced folder" is none.
    case noFolders

    public var description: String {
        switch self {
        case .outsideFolders(let path): "\(path) is not inside a synced folder (see 'ferry folder list')"
        case .folderRoot(let path): "\(path) is a synced folder itself; name something inside it"
        case .noFolders: "no synced folders; add one with 'ferry folder add DIR'"
        }
    }
}

/// A path given on the command line, resolved inside a synced folder: the folder and the
/// library path it names there.
public struct SyncedPath: Sendable {
    /// The synced folder the path is in.
    public let folder: FolderConfig
    /// Where in the folder's library (never its root).
    public let path: FerryPath

    /// Resolves `argument` (absolute, or relative to the working directory) to something
    /// inside a synced folder; a folder's root is refused.
    public init(_ argument: String, config: ClientConfig) throws {
        let (folder, relative) = try Self.locate(argument, config: config)
        guard let relative else { throw SyncedPathError.folderRoot(folder.path) }
        self.folder = folder
        self.path = relative
    }

    /// The synced folder `argument` is in, and where in it (nil: the folder's root). The path
    /// as written is tried first, then with symbolic links resolved (a folder reached through
    /// a link to it, or a link inside it).
    public static func locate(_ argument: String, config: ClientConfig) throws -> (FolderConfig, FerryPath?) {
        let absolute = URL(fileURLWithPath: argument).standardizedFileURL.path
        guard let (folder, relative) = config.folder(containing: absolute)
                ?? config.folder(containing: URL(fileURLWithPath: argument).resolvingSymlinksInPath().path) else {
            throw SyncedPathError.outsideFolders(absolute)
        }
        return (folder, relative.isEmpty ? nil : try FerryPath(relative))
    }

    /// The folders, and where in each, that `argument` names (nil: every synced folder, each
    /// from its root). Refused when it lies outside them, or when no folder is synced.
    public static func scopes(_ argument: String?, config: ClientConfig) throws -> [(FolderConfig, FerryPath?)] {
        if let argument { return [try locate(argument, config: config)] }
        guard !config.folders.isEmpty else { throw SyncedPathError.noFolders }
        return config.folders.map { ($0, nil) }
    }
}
