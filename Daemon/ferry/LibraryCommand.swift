import ArgumentParser

/// `ferry library …`: the libraries this account owns or has been given.
struct Library: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "library", abstract: "List libraries, share them with other users and set their retention.",
        subcommands: [LibraryList.self, LibraryShare.self, LibraryUnshare.self, LibraryMembers.self, LibraryRetentionCommand.self])
}
