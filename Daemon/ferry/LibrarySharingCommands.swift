import ArgumentParser
import FerryClient
import FerryCore
import Foundation

/// `ferry library list`: yours and those shared with you, with the role you have.
struct LibraryList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List your libraries and those shared with you (as OWNER/NAME).")
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var options: CommonOptions

    func run() async throws {
        let config = try options.load()
        let libraries = try await options.withAPI(config) { try await $0.libraries() }
        if json { return try printJSON(libraries) }
        if libraries.isEmpty { print("No libraries.") }
        for library in libraries {
            print("\(library.displayName)\t\((library.role ?? .owner).rawValue)\t\(library.head) versions\t\(library.id)")
        }
    }
}

/// `ferry library share NAME USER --role read|write`.
struct LibraryShare: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "share", abstract: "Share one of your libraries with another user, or change their role.",
        discussion: "A 'read' member syncs the library but never uploads; a 'write' member commits as themselves.")
    @Argument(help: "Your library's name.") var name: String
    @Argument(help: "The user to share it with.") var user: String
    @Option(help: "read or write.") var role: LibraryRole
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var options: CommonOptions

    func run() async throws {
        guard role != .owner else { throw ValidationError("--role must be 'read' or 'write'") }
        let config = try options.load()
        let member = try await options.withAPI(config) { api in
            try await api.shareLibrary(try await api.requireLibrary(named: name).id, with: user, role: role)
        }
        if json { return try printJSON(member) }
        print("Shared \(name) with \(member.username) (\(member.role.rawValue)).")
    }
}

/// `ferry library unshare NAME USER`.
struct LibraryUnshare: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unshare", abstract: "Stop sharing one of your libraries with a user; their devices keep their local files.")
    @Argument(help: "Your library's name.") var name: String
    @Argument(help: "The member to remove.") var user: String
    @OptionGroup var options: CommonOptions

    func run() async throws {
        let config = try options.load()
        try await options.withAPI(config) { api in
            try await api.unshareLibrary(try await api.requireLibrary(named: name).id, from: user)
        }
        print("\(user) no longer has \(name).")
    }
}

/// `ferry library members NAME`.
struct LibraryMembers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "members", abstract: "Show a library's owner and members.")
    @Argument(help: "The library: NAME for yours, OWNER/NAME for one shared with you.") var name: String
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var options: CommonOptions

    func run() async throws {
        let config = try options.load()
        let answer = try await options.withAPI(config) { api in
            try await api.libraryMembers(library: try await api.requireLibrary(named: name).id)
        }
        if json { return try printJSON(answer) }
        print("\(answer.owner)\towner")
        for member in answer.members { print("\(member.username)\t\(member.role.rawValue)") }
    }
}

extension LibraryRole: ExpressibleByArgument {}
