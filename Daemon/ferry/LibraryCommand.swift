import ArgumentParser

/// `ferry library …`: settings of a library on the server.
struct LibraryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "library", abstract: "Settings of a library on the server.", subcommands: [LibraryRetentionCommand.self])
}
