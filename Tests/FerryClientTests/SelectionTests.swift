@testable import FerryClient
import FerryCore
import Foundation
import Testing

/// Selective sync's decisions are pure: a table of given paths → selection, path → place.
@Suite("Selection decisions")
struct SelectionTests {
    struct Given: Sendable, CustomTestStringConvertible {
        let raw: [String]
        /// The selection's paths, or the error's description.
        let expected: Result<[String], SelectionError>
        var testDescription: String { raw.description }
    }

    static let given: [Given] = [
        Given(raw: [], expected: .success([])),
        Given(raw: ["docs"], expected: .success(["docs"])),
        Given(raw: ["docs/"], expected: .success(["docs"])),
        Given(raw: ["docs", "docs"], expected: .success(["docs"])),
        Given(raw: ["docs/a/b", "docs", "docs/a"], expected: .success(["docs"])),
        Given(raw: ["photos/2024", "docs"], expected: .success(["docs", "photos/2024"])),
        Given(raw: ["docs-old", "docs", "docs.bak/x"], expected: .success(["docs", "docs-old", "docs.bak/x"])),
        Given(raw: ["e\u{301}t\u{e9}"], expected: .success(["\u{e9}t\u{e9}"])),
        Given(raw: ["../up"], expected: .failure(.invalidPath("../up", .dotComponent("..")))),
        Given(raw: ["docs/./x"], expected: .failure(.invalidPath("docs/./x", .dotComponent(".")))),
        Given(raw: ["/etc"], expected: .failure(.invalidPath("/etc", .absolute))),
        Given(raw: ["/"], expected: .failure(.invalidPath("/", .absolute))),
        Given(raw: [""], expected: .failure(.invalidPath("", .empty))),
        Given(raw: ["a//b"], expected: .failure(.invalidPath("a//b", .emptyComponent))),
        Given(raw: ["docs", String(repeating: "x", count: 256)],
              expected: .failure(.invalidPath(String(repeating: "x", count: 256), .componentTooLong(bytes: 256)))),
        Given(raw: [".ferry"], expected: .failure(.ferrysOwn(".ferry"))),
        Given(raw: [".ferry/state"], expected: .failure(.ferrysOwn(".ferry/state"))),
        Given(raw: ["docs/.ferry-partial-1"], expected: .failure(.ferrysOwn("docs/.ferry-partial-1"))),
    ]

    @Test(arguments: given)
    func validatesAndFolds(_ row: Given) {
        let outcome = Result { () throws(SelectionError) in try Selection(row.raw).paths.map(\.string) }
        #expect(outcome == row.expected)
    }

    struct Placed: Sendable, CustomTestStringConvertible {
        let path: String
        let place: Selection.Place
        init(_ path: String, _ place: Selection.Place) {
            self.path = path
            self.place = place
        }
        var testDescription: String { "\(path) → \(place)" }
    }

    static let selection = try! Selection(["docs", "photos/2024"])

    static let placed: [Placed] = [
        Placed("docs", .inside), Placed("docs/a.txt", .inside), Placed("docs/deep/er/x", .inside),
        Placed("docs-old", .outside), Placed("docs-old/x", .outside), Placed("doc", .outside), Placed("readme.txt", .outside),
        Placed("photos", .above), Placed("photos/2024", .inside), Placed("photos/2024/cat.jpg", .inside),
        Placed("photos/2023", .outside), Placed("photos/20245", .outside),
    ]

    @Test(arguments: placed)
    func placesPaths(_ row: Placed) {
        #expect(Self.selection.place(of: row.path) == row.place)
        #expect(Self.selection.includes(row.path) == (row.place == .inside))
        #expect(Selection.everything.place(of: row.path) == .inside)
    }

    static func entry(_ path: String, _ kind: EntryKind = .file) -> IndexEntry {
        IndexEntry(path: path, kind: kind, size: 0, mtimeNs: 0, inode: 0, ctimeNs: 0, mode: 0o644, sha256: nil, chunks: [], target: nil, version: 1)
    }

    @Test func theIndexIsSplitAndWhatLeavesGoesDeepestFirst() {
        let paths = ["docs", "docs/a.txt", "photos", "photos/2023", "photos/2023/x.jpg", "photos/2024", "photos/2024/y.jpg", "readme.txt"]
        let entries = Dictionary(uniqueKeysWithValues: paths.map { ($0, Self.entry($0)) })
        let (kept, leaving) = Self.selection.split(entries)
        #expect(Set(kept.keys) == ["docs", "docs/a.txt", "photos/2024", "photos/2024/y.jpg"])
        #expect(leaving.map(\.path) == ["readme.txt", "photos/2023/x.jpg", "photos/2023", "photos"])
        let (all, none) = Selection.everything.split(entries)
        #expect(all == entries && none.isEmpty)
    }

    @Test func onlyFilesAndLinksOutsideAreCountedAsNotSynced() {
        func local(_ path: String, _ kind: EntryKind) -> (String, LocalFile) {
            (path, LocalFile(path: path, kind: kind, size: 0, mtimeNs: 0, inode: 0, mode: 0o644, target: kind == .symlink ? "x" : nil))
        }
        let scan = Dictionary(uniqueKeysWithValues: [
            local("docs", .directory), local("docs/a.txt", .file), local("photos", .directory), local("photos/2023", .directory),
            local("photos/2023/x.jpg", .file), local("link", .symlink), local("notes", .directory),
        ])
        #expect(Self.selection.outsideFiles(scan) == ["photos/2023/x.jpg", "link"])
        #expect(Selection.everything.outsideFiles(scan).isEmpty)
    }

    @Test func onlyTheLibrarysDirectoriesOutsideTheSelectionAreLeftBehindForRemoval() {
        let selection = try! Selection(["a/keep"])
        let removed = ["a/old/deep/f.txt", "a/old/deep", "b/g.txt", "mine/h.txt"]
        let library: Set<String> = ["a", "a/old", "a/old/deep", "b", "a/keep"]
        // "a" is on the way to the selection and "mine" is not the library's: both stay.
        #expect(selection.leftBehind(by: removed, libraryDirectories: library) == ["b", "a/old/deep", "a/old"])
    }

    @Test func aFolderConfigKeepsItsSelectionAndRefusesABadOne() throws {
        let plain = #"{"path": "/f", "library_id": "l", "library_name": "L"}"#
        let folder = try JSONDecoder().decode(FolderConfig.self, from: Data(plain.utf8))
        #expect(folder.selection.isEverything && folder.only == nil)
        let encoded = String(decoding: try JSONEncoder().encode(folder), as: UTF8.self)
        #expect(!encoded.contains("only"))

        let chosen = #"{"path": "/f", "library_id": "l", "library_name": "L", "only": ["docs/", "docs/x", "a"]}"#
        var selective = try JSONDecoder().decode(FolderConfig.self, from: Data(chosen.utf8))
        #expect(selective.selection.paths.map(\.string) == ["a", "docs"])
        selective.selection = .everything
        #expect(selective.only == nil)

        let bad = #"{"path": "/f", "library_id": "l", "library_name": "L", "only": ["../x"]}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(FolderConfig.self, from: Data(bad.utf8)) }
    }

    /// `ferry folder add`: a library is named as its user names it, and marked as shared
    /// (so each pass asks for the role) only when it is someone else's.
    @Test func aFolderForALibraryIsNamedAndMarkedAsTheServerListsIt() {
        let now = Date()
        let own = FolderConfig(path: "/f", library: LibraryInfo(id: "l1", name: "work", head: 0, createdAt: now, role: .owner, owner: "ria"))
        #expect(own.libraryId == "l1" && own.libraryName == "work" && own.sharedRole == nil)
        let older = FolderConfig(path: "/f", library: LibraryInfo(id: "l2", name: "work", head: 0, createdAt: now))
        #expect(older.libraryName == "work" && older.sharedRole == nil)
        let shared = FolderConfig(path: "/f", library: LibraryInfo(id: "l3", name: "team", head: 0, createdAt: now, role: .read, owner: "alice"))
        #expect(shared.libraryId == "l3" && shared.libraryName == "alice/team" && shared.sharedRole == .read)
    }
}
