@testable import FerryClient
import FerryCore
@testable import FerryServer
import Foundation
import Testing

/// The client application layer (`Sources/FerryClient/App/`): the decisions `ferry` takes
/// before it prints, as tables of inputs and outcomes, failures included. The sentences are
/// the ones the CLI printed before the layer existed, word for word.
@Suite("Client application layer")
struct ClientAppTests {
    static func folder(_ path: String, library: String = "lib") -> FolderConfig {
        FolderConfig(path: path, libraryId: library + "-id", libraryName: library)
    }

    static func config(_ paths: [String], server: String = "https://nas:8720", user: String = "ann") -> ClientConfig {
        ClientConfig(serverURL: server, username: user, deviceId: "dev-old", deviceName: "old", deviceToken: "token-old",
                     folders: paths.map { folder($0) })
    }

    static func library(_ name: String, role: LibraryRole? = .owner, owner: String? = "ann", id: String? = nil) -> LibraryInfo {
        LibraryInfo(id: id ?? "\(owner ?? "?")/\(name)-id", name: name, head: 0, createdAt: Date(timeIntervalSince1970: 0), role: role, owner: owner)
    }

    static func path(_ string: String) -> FerryPath {
        do { return try FerryPath(string) } catch { preconditionFailure("\(string) is a valid path in these tables") }
    }

    // MARK: the sentences

    struct Sentence: Sendable, CustomTestStringConvertible {
        let error: any ClientAppError
        let expected: String
        var testDescription: String { expected }
    }

    static let sentences: [Sentence] = [
        Sentence(error: LibraryLookupError.notShared("bob/team"),
                 expected: "no library 'bob/team' is shared with you; 'ferry library list' shows the libraries you can sync"),
        Sentence(error: LibraryLookupError.unknown("team"),
                 expected: "no library 'team'; 'ferry library list' shows yours and those shared with you (as OWNER/NAME)"),
    ]

    @Test(arguments: sentences)
    func eachRefusalIsTheSentenceTheCLIPrints(_ row: Sentence) {
        #expect(row.error.description == row.expected)
    }

    // MARK: libraries

    @Test func aLibraryIsNamedAsItsOwnerOrAsOwnerSlashName() {
        let mine = Self.library("photos"), legacy = Self.library("old", role: nil, owner: nil)
        let shared = Self.library("team", role: .read, owner: "bob"), alsoTeam = Self.library("team", role: .write, owner: "carol")
        let all = [mine, legacy, shared, alsoTeam]
        #expect(LibraryLookup.match("photos", in: all) == mine)
        #expect(LibraryLookup.match("old", in: all) == legacy)
        #expect(LibraryLookup.match("bob/team", in: all) == shared)
        #expect(LibraryLookup.match("carol/team", in: all) == alsoTeam)
        // Another user's library is never reached by its bare name, nor under the wrong owner.
        #expect(LibraryLookup.match("team", in: all) == nil)
        #expect(LibraryLookup.match("ann/team", in: all) == nil)
        #expect(LibraryLookup.match("music", in: all) == nil)
        #expect(throws: LibraryLookupError.notShared("bob/music")) { try LibraryLookup.checkCreatable("bob/music") }
        #expect(throws: Never.self) { try LibraryLookup.checkCreatable("music") }
    }
}
