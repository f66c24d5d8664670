import ArgumentParser
import FerryClient
import FerryCore
import Foundation

/// `ferry library retention NAME [--keep-versions N] [--keep-days D] [--trash-days T] [--keep-all]`.
struct LibraryRetentionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention",
        abstract: "Show or set how long a library keeps old versions and deleted files.",
        discussion: """
            Without options, prints the library's policy. Each option given replaces that limit ('off' removes it); the others stay. \
            The server purges what the policy no longer keeps about once an hour ('storage.retentionIntervalSeconds'), never the \
            current version, a version attached to a task or a side of an open conflict; 'ferry-server gc' then frees the space.
            """)
    @Argument(help: "The library's name.") var name: String
    @Option(help: "Keep at least the newest N versions of each file (N ≥ 1, or 'off').") var keepVersions: String?
    @Option(help: "Keep every version that was current during the last D days (or 'off').") var keepDays: String?
    @Option(help: "Keep deleted files for T days (T ≥ 1, or 'off' for ever).") var trashDays: String?
    @Flag(help: "Remove every limit: keep every version and deleted file (the default).") var keepAll = false
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var options: CommonOptions

    func run() async throws {
        let change = try RetentionChange(keepVersions: keepVersions, keepDays: keepDays, trashDays: trashDays, keepAll: keepAll)
        let config = try options.load()
        let result = try await options.withAPI(config) { api in
            let library = try await api.requireLibrary(named: name)
            let current = try await api.retention(library: library.id)
            guard !change.isEmpty else { return current }
            return try await api.setRetention(library: library.id, try change.applied(to: current.policy))
        }
        if json { return try printJSON(result) }
        print("\(name): \(result.policy.summary)")
    }
}
