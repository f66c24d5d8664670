import ArgumentParser
import FerryClient
import Foundation

/// `ferry folder revert DIR`: the library's content back in a folder whose library is
/// shared with this user to read only (SPEC §10). The rules are `ReadOnlyPlan.reverting`.
struct FolderRevert: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revert", abstract: "Put a read-only shared library's content back over this folder's local changes.",
        discussion: "A file changed here is kept as a conflict copy beside the library's version; a file deleted here comes back; files only here stay.")
    @Argument(help: "The synced folder.") var directory: String
    @Flag(help: "Print the result as JSON.") var json = false
    @OptionGroup var options: CommonOptions

    func run() async throws {
        let config = try options.load()
        let path = FolderSetup.canonicalPath(directory)
        let folder = try FolderSetup.synced(path, in: config)
        let index = try LocalIndex(path: options.locations.indexFile)
        let report = try await options.withAPI(config) { api in
            try await FolderSync(folder: folder, of: config, index: index, api: api, progress: TransferProgress(), logger: quietLogger()).revert()
        }
        if json { return try printJSON(report) }
        print("\(path): \(report.downloadedFiles) file(s) put back, \(report.conflicts) local change(s) kept as conflict copies.")
        for (file, why) in report.problems.sorted(by: { $0.key < $1.key }) {
            FileHandle.standardError.write(Data("\(path)/\(file): \(why)\n".utf8))
        }
    }
}
