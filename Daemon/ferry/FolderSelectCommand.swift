import ArgumentParser
import FerryClient
import FerryCore
import Foundation

extension Folder {
    /// `ferry folder select DIR [PATH…] [--all]`: selective sync (SPEC §10).
    struct Select: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sync only some subtrees of a folder's library on this device (or, with --all, all of it); without paths, print the selection.",
            discussion: """
                Paths are library paths (relative, '/'-separated); each takes everything below it. What leaves the selection is \
                removed here only where it is unchanged since it was synced, and never deleted on the server; what joins it is \
                downloaded. Files outside the selection are neither uploaded nor downloaded.
                """)
        @Argument(help: "The local folder.") var directory: String
        @Argument(help: "Library paths to sync, each with everything below it.") var paths: [String] = []
        @Flag(help: "Sync the whole library again.") var all = false
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var options: CommonOptions

        func validate() throws {
            if all && !paths.isEmpty { throw ValidationError("give library paths or --all, not both") }
            _ = try Folder.selection(paths)
        }

        struct Shown: Encodable {
            let folder: String
            let library: String
            /// Empty: the whole library.
            let only: [String]
        }

        func run() async throws {
            let config = try options.load()
            let path = FolderSetup.canonicalPath(directory)
            let change = all ? .everything : paths.isEmpty ? nil : try Folder.selection(paths)
            let folder = try FolderSetup.select(change, for: path, argument: directory, in: config, configFile: options.locations.configFile)
            if json { return try printJSON(Shown(folder: path, library: folder.libraryName, only: folder.selection.paths.map(\.string))) }
            let what = "\(path) syncs \(folder.selection) of library '\(folder.libraryName)'"
            guard all || !paths.isEmpty else { return print(what + ".") }
            switch DaemonControl.reload(socketPath: options.locations.socketPath) {
            case .reloaded: print(what + "; the running ferryd applies it now.")
            case .notRunning: print(what + "; start ferryd, or run 'ferry sync', to apply it.")
            case .failed(let why): throw CLIError("the selection of \(path) was saved, but the running ferryd did not take it up: \(why)")
            }
        }
    }

    /// The selection `paths` name, or a usage error naming the path and the rule it breaks.
    static func selection(_ paths: [String]) throws -> Selection {
        do { return try Selection(paths) } catch { throw ValidationError(error.description) }
    }
}
