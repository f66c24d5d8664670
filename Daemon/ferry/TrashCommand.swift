import ArgumentParser
import FerryClient
import FerryCore
import Foundation

/// `ferry trash [DIR]`: what was deleted and can be restored, with the version to restore.
struct Trash: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List deleted files and folders that can be restored.",
        discussion: "Each line names the version 'ferry restore PATH --version V' brings back; a deleted folder comes back with what was in it.")
    @Argument(help: "A folder inside a synced folder, or a synced folder (default: every synced folder).") var directory: String?
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var options: CommonOptions

    /// One synced folder's deleted entries, for `--json`.
    struct FolderTrash: Encodable {
        let folder: String
        let entries: [TrashEntry]
    }

    func run() async throws {
        let config = try options.load()
        let targets = try SyncedPath.scopes(directory, config: config)
        let (found, names) = try await options.withAPI(config) { api in
            var found: [FolderTrash] = []
            for (folder, within) in targets {
                var entries: [TrashEntry] = []
                var after: String?
                repeat {
                    let page = try await api.trash(library: folder.libraryId, directory: within, after: after)
                    entries += page.entries
                    after = page.nextAfter
                } while after != nil
                found.append(FolderTrash(folder: folder.path, entries: entries))
            }
            return (found, try await deviceNames(api))
        }
        if json { return try printJSON(found) }
        guard found.contains(where: { !$0.entries.isEmpty }) else { return print("Nothing deleted here can be restored.") }
        for folder in found {
            for e in folder.entries {
                let path = folder.folder + "/" + e.path.string
                let what = e.kind == .file ? "\(e.size) bytes" : e.kind.rawValue
                let who = deviceLabel(e.deletedBy, names)
                print("\(path)\t\(what)\tdeleted \(isoDate(e.deletedAt)) by \(who)\trestore: ferry restore \(path) --version \(e.version)")
            }
        }
    }
}
