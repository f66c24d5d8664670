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
        Sentence(error: FolderSetupError.notADirectory("/d/x"), expected: "/d/x is not a directory"),
        Sentence(error: FolderSetupError.overlaps("/d/a/b", existing: "/d/a"), expected: "/d/a/b overlaps /d/a, which is already synced; folders cannot nest"),
        Sentence(error: FolderSetupError.notSynced("/d/x"), expected: "/d/x is not a synced folder"),
        Sentence(error: FolderSetupError.notSyncedToSelect("/d/x", argument: "x"),
                 expected: "/d/x is not a synced folder; add it with 'ferry folder add x --only PATH…'"),
        Sentence(error: FolderSetupError.stillSynced("/d/x", why: "timed out"),
                 expected: "/d/x was removed from the configuration, but the running ferryd still syncs it (timed out); restart ferryd"),
        Sentence(error: LoginError.wrongCredentials, expected: "wrong user name or password"),
        Sentence(error: LoginError.refused("registration closed"), expected: "registration closed"),
        Sentence(error: SyncedPathError.outsideFolders("/d/x"), expected: "/d/x is not inside a synced folder (see 'ferry folder list')"),
        Sentence(error: SyncedPathError.folderRoot("/d/a"), expected: "/d/a is a synced folder itself; name something inside it"),
        Sentence(error: SyncedPathError.noFolders, expected: "no synced folders; add one with 'ferry folder add DIR'"),
        Sentence(error: ProjectLookupError.unknown("web"), expected: "no project 'web'; 'ferry project list' shows yours"),
        Sentence(error: ProjectLookupError.ambiguous("web", ids: ["p1", "p2"]), expected: "several projects are named 'web'; give its id: p1, p2"),
        Sentence(error: RestoreChoiceError.noHistory(path("a.txt")), expected: "a.txt has no history on the server"),
        Sentence(error: RestoreChoiceError.noSuchVersion(path("a.txt"), version: 9, argument: "docs/a.txt"),
                 expected: "a.txt has no version 9; 'ferry history docs/a.txt' lists its versions"),
        Sentence(error: RestoreChoiceError.noEarlierVersion(path("a.txt")), expected: "a.txt has no earlier version to restore"),
        Sentence(error: ConflictLookupError.none(path("a.txt")), expected: "a.txt has no open conflict; 'ferry conflicts' lists them"),
        Sentence(error: ConflictLookupError.ambiguous(path("a.txt"), copies: [path("a.c1.txt"), path("a.c2.txt")]),
                 expected: "a.txt has 2 open conflicts; name the conflict copy instead: a.c1.txt, a.c2.txt"),
        Sentence(error: LibraryLookupError.notShared("bob/team"),
                 expected: "no library 'bob/team' is shared with you; 'ferry library list' shows the libraries you can sync"),
        Sentence(error: LibraryLookupError.unknown("team"),
                 expected: "no library 'team'; 'ferry library list' shows yours and those shared with you (as OWNER/NAME)"),
        Sentence(error: SyncVerdictError.failed("/d/a", message: "disk full"), expected: "/d/a: disk full"),
        Sentence(error: SyncVerdictError.paused("/d/a", MassDeletePause(remoteDeletes: 0, localDeletes: 120, entries: 150)),
                 expected: "/d/a: " + MassDeletePause(remoteDeletes: 0, localDeletes: 120, entries: 150).description),
        Sentence(error: SyncVerdictError.unsettled(2), expected: "2 folder(s) are not fully in sync; see the messages above"),
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

    // MARK: folder nesting

    struct NestingRow: Sendable, CustomTestStringConvertible {
        let name: String
        let path: String
        /// The configured folder it clashes with; nil: it may be added.
        let clash: String?
        var testDescription: String { name }
    }

    static let configured = ["/data/photos", "/data/work"]

    static let nesting: [NestingRow] = [
        NestingRow(name: "a sibling", path: "/data/music", clash: nil),
        NestingRow(name: "the same folder twice", path: "/data/photos", clash: "/data/photos"),
        NestingRow(name: "inside a synced folder", path: "/data/photos/2024", clash: "/data/photos"),
        NestingRow(name: "deep inside a synced folder", path: "/data/work/a/b/c", clash: "/data/work"),
        NestingRow(name: "around a synced folder", path: "/data", clash: "/data/photos"),
        NestingRow(name: "a name that only starts like a synced folder", path: "/data/photos-old", clash: nil),
        NestingRow(name: "a synced folder's name cut short", path: "/data/phot", clash: nil),
        NestingRow(name: "the root, around every folder", path: "/", clash: "/data/photos"),
    ]

    @Test(arguments: nesting)
    func foldersCannotNest(_ row: NestingRow) throws {
        let config = Self.config(Self.configured)
        #expect(FolderSetup.clash(for: row.path, among: config.folders)?.path == row.clash)
        let added = Result { () throws(FolderSetupError) in try FolderSetup.adding(Self.folder(row.path), to: config) }
        switch (added, row.clash) {
        case (.success(let after), nil):
            #expect(after.folders.map(\.path) == Self.configured + [row.path])
        case (.failure(let error), let existing?):
            #expect(error == .overlaps(row.path, existing: existing))
        default:
            Issue.record("\(row.path): \(added)")
        }
    }

    /// `/` as a synced folder holds every other folder (its "/" + "/" prefix matched nothing).
    @Test func aFolderInsideASyncedRootIsRefused() {
        #expect(FolderSetup.clash(for: "/data/photos", among: Self.config(["/"]).folders)?.path == "/")
    }

    @Test func aFolderAroundSeveralSyncedOnesNamesTheFirst() {
        let config = Self.config(["/data/work/b", "/data/work/a"])
        #expect(throws: FolderSetupError.overlaps("/data/work", existing: "/data/work/b")) { try FolderSetup.adding(Self.folder("/data/work"), to: config) }
        #expect(throws: FolderSetupError.overlaps("/data", existing: "/data/work/b")) { try FolderSetup.checkNesting("/data", in: config) }
    }

    @Test func theFirstFolderNeverClashes() throws {
        #expect(try FolderSetup.adding(Self.folder("/data"), to: Self.config([])).folders.map(\.path) == ["/data"])
    }

    // MARK: folder entries, removal, selection

    struct EntryRow: Sendable, CustomTestStringConvertible {
        let name: String
        let library: LibraryInfo
        let libraryName: String
        let sharedRole: LibraryRole?
        var testDescription: String { name }
    }

    static let entries: [EntryRow] = [
        EntryRow(name: "the user's own library", library: library("photos"), libraryName: "photos", sharedRole: nil),
        EntryRow(name: "a library from a server before sharing", library: library("photos", role: nil, owner: nil), libraryName: "photos", sharedRole: nil),
        EntryRow(name: "shared to read", library: library("team", role: .read, owner: "bob"), libraryName: "bob/team", sharedRole: .read),
        EntryRow(name: "shared to write", library: library("team", role: .write, owner: "bob"), libraryName: "bob/team", sharedRole: .write),
    ]

    @Test(arguments: entries)
    func aFolderEntryRecordsTheLibraryAsThePersonNamesIt(_ row: EntryRow) throws {
        let selection = try Selection(["raw"])
        let entry = FolderSetup.entry(path: "/data/p", library: row.library, selection: selection)
        #expect(entry.path == "/data/p" && entry.libraryId == row.library.id && entry.libraryName == row.libraryName)
        #expect(entry.sharedRole == row.sharedRole)
        #expect(entry.selection == selection)
        #expect(FolderSetup.entry(path: "/data/p", library: row.library, selection: .everything).only == nil)
    }

    @Test func theDefaultLibraryIsNamedLikeTheFolder() {
        #expect(FolderSetup.defaultLibraryName(forFolder: "/data/Photos 2024") == "Photos 2024")
        #expect(FolderSetup.defaultLibraryName(forFolder: "/home/ann/docs") == "docs")
    }

    @Test func removingAFolderNeedsOneThatIsSynced() throws {
        let config = Self.config(Self.configured)
        #expect(try FolderSetup.removing("/data/photos", from: config).folders.map(\.path) == ["/data/work"])
        #expect(throws: FolderSetupError.notSynced("/data/music")) { try FolderSetup.removing("/data/music", from: config) }
        #expect(throws: FolderSetupError.notSynced("/data/photos/2024")) { try FolderSetup.removing("/data/photos/2024", from: config) }
        #expect(throws: FolderSetupError.notSynced("/data")) { try FolderSetup.removing("/data", from: config) }
        #expect(try FolderSetup.synced("/data/work", in: config).path == "/data/work")
        #expect(throws: FolderSetupError.notSynced("/data/work/a")) { try FolderSetup.synced("/data/work/a", in: config) }
    }

    @Test func selectingChangesOneFolderAndNamesTheArgumentWhenThereIsNone() throws {
        let config = Self.config(Self.configured)
        let only = try Selection(["raw", "edits"])
        let selected = try FolderSetup.selecting(only, for: "/data/work", argument: "work", in: config)
        #expect(selected.folders.map(\.selection) == [.everything, only])
        #expect(try FolderSetup.selecting(.everything, for: "/data/work", argument: "work", in: selected).folders[1].only == nil)
        #expect(throws: FolderSetupError.notSyncedToSelect("/data/music", argument: "../music")) {
            try FolderSetup.selecting(only, for: "/data/music", argument: "../music", in: config)
        }
    }

    // MARK: adding and removing on disk

    /// Records the names `FolderSetup.add` looks up, and answers with `answer`.
    actor Lookups {
        var names: [String] = []
        func find(_ name: String, answer: Result<LibraryInfo, LibraryLookupError>) throws -> LibraryInfo {
            names.append(name)
            return try answer.get()
        }
    }

    @Test func addingAFolderMarksItsRootAndSavesItButOnlyOnce() async throws {
        let root = scratchDirectory("app-add")
        let configFile = root + "/config.json"
        let photos = root + "/photos"
        try FileManager.default.createDirectory(atPath: photos + "/2024", withIntermediateDirectories: true)
        let lookups = Lookups()
        let found = Self.library("photos")
        let added = try await FolderSetup.add(photos, libraryName: nil, selection: .everything, to: Self.config([]), configFile: configFile) {
            try await lookups.find($0, answer: .success(found))
        }
        #expect(added == FolderSetup.entry(path: photos, library: found, selection: .everything))
        #expect(await lookups.names == ["photos"])
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: photos + "/" + LocalScanner.markerName, isDirectory: &isDirectory) && isDirectory.boolValue)
        let saved = try ClientConfig.load(from: configFile)
        #expect(saved.folders == [added])

        // Again, inside it, around it: refused before any lookup, and nothing saved.
        for (path, existing) in [(photos, photos), (photos + "/2024", photos), (root, photos)] {
            await #expect(throws: FolderSetupError.overlaps(path, existing: existing)) {
                try await FolderSetup.add(path, libraryName: "other", selection: .everything, to: saved, configFile: configFile) {
                    try await lookups.find($0, answer: .success(found))
                }
            }
        }
        #expect(await lookups.names == ["photos"])
        #expect(try ClientConfig.load(from: configFile) == saved)
        #expect(!FileManager.default.fileExists(atPath: root + "/" + LocalScanner.markerName))
    }

    @Test func aFolderThatIsNoDirectoryOrWhoseLibraryIsNotFoundIsNotAdded() async throws {
        let root = scratchDirectory("app-add-refused")
        let configFile = root + "/config.json"
        let file = root + "/notes.txt"
        #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        let lookups = Lookups()
        for path in [file, root + "/missing"] {
            await #expect(throws: FolderSetupError.notADirectory(path)) {
                try await FolderSetup.add(path, libraryName: nil, selection: .everything, to: Self.config([]), configFile: configFile) {
                    try await lookups.find($0, answer: .success(Self.library("x")))
                }
            }
        }
        #expect(await lookups.names.isEmpty)

        let team = root + "/team"
        try FileManager.default.createDirectory(atPath: team, withIntermediateDirectories: true)
        await #expect(throws: LibraryLookupError.notShared("bob/team")) {
            try await FolderSetup.add(team, libraryName: "bob/team", selection: .everything, to: Self.config([]), configFile: configFile) {
                try await lookups.find($0, answer: .failure(.notShared($0)))
            }
        }
        #expect(await lookups.names == ["bob/team"])
        #expect(!FileManager.default.fileExists(atPath: team + "/" + LocalScanner.markerName))
        #expect(!FileManager.default.fileExists(atPath: configFile))
    }

    @Test func removingAFolderWithoutARunningDaemonSavesTheRestAndLeavesItsFiles() throws {
        let root = scratchDirectory("app-remove")
        let locations = ClientLocations(configFile: root + "/config.json", stateDirectory: root + "/state", socketPath: root + "/none.sock")
        let photos = root + "/photos"
        try FileManager.default.createDirectory(atPath: photos, withIntermediateDirectories: true)
        try FolderSetup.createMarker(in: photos)
        let config = Self.config([photos, root + "/work"])
        try config.save(to: locations.configFile)

        #expect(throws: FolderSetupError.notSynced(root + "/music")) { try FolderSetup.remove(root + "/music", from: config, locations: locations) }
        #expect(try ClientConfig.load(from: locations.configFile) == config)

        try FolderSetup.remove(photos, from: config, locations: locations)
        #expect(try ClientConfig.load(from: locations.configFile).folders.map(\.path) == [root + "/work"])
        #expect(FileManager.default.fileExists(atPath: photos + "/" + LocalScanner.markerName))
    }

    // MARK: login

    static func registered(_ id: String) -> RegisterDeviceResponse {
        RegisterDeviceResponse(device: DeviceInfo(id: id, name: "laptop", createdAt: Date(timeIntervalSince1970: 0), lastSeenAt: nil, revokedAt: nil),
                               token: "token-" + id)
    }

    static func pin() throws -> CertificatePin {
        try CertificatePin(pem: try SelfSignedCertificate.make(names: ["localhost"], addresses: ["127.0.0.1"]).certificatePEM)
    }

    struct LoginRow: Sendable, CustomTestStringConvertible {
        let name: String
        let previous: ClientConfig?
        let server: String
        let user: String
        let keepsFolders: Bool
        var testDescription: String { name }
    }

    static let logins: [LoginRow] = [
        LoginRow(name: "first login", previous: nil, server: "https://nas:8720", user: "ann", keepsFolders: false),
        LoginRow(name: "again, same server and user", previous: config(["/data/a", "/data/b"]), server: "https://nas:8720", user: "ann", keepsFolders: true),
        LoginRow(name: "same server, another user", previous: config(["/data/a"]), server: "https://nas:8720", user: "bob", keepsFolders: false),
        LoginRow(name: "same user, another server", previous: config(["/data/a"]), server: "https://other:8720", user: "ann", keepsFolders: false),
        LoginRow(name: "same user, server spelled otherwise", previous: config(["/data/a"]), server: "https://nas:8720/", user: "ann", keepsFolders: false),
    ]

    @Test(arguments: logins)
    func aLoginKeepsTheFoldersOnlyForTheSameServerAndUser(_ row: LoginRow) throws {
        for pin in [nil, try Self.pin()] {
            var previous = row.previous
            previous?.certificatePin = try Self.pin()
            let config = LoginSetup.config(after: Self.registered("dev-new"), serverURL: row.server, username: row.user, pin: pin, previous: previous)
            #expect(config.serverURL == row.server && config.username == row.user)
            // The device is always the one just registered: never the previous one's id or token.
            #expect(config.deviceId == "dev-new" && config.deviceName == "laptop" && config.deviceToken == "token-dev-new")
            #expect(config.certificatePin == pin)
            #expect(config.folders == (row.keepsFolders ? row.previous?.folders ?? [] : []))
        }
    }

    @Test func theNoticeNamesTheCertificateALoginWouldReplace() throws {
        let old = try Self.pin(), new = try Self.pin()
        var pinned = Self.config([])
        pinned.certificatePin = old
        #expect(LoginSetup.replacedPin(by: new.fingerprint, serverURL: pinned.serverURL, previous: pinned) == old.fingerprint)
        #expect(LoginSetup.replacedPin(by: old.fingerprint, serverURL: pinned.serverURL, previous: pinned) == nil)
        #expect(LoginSetup.replacedPin(by: new.fingerprint, serverURL: "https://other:8720", previous: pinned) == nil)
        #expect(LoginSetup.replacedPin(by: new.fingerprint, serverURL: pinned.serverURL, previous: Self.config([])) == nil)
        #expect(LoginSetup.replacedPin(by: new.fingerprint, serverURL: pinned.serverURL, previous: nil) == nil)
    }

    // MARK: paths on the command line

    struct PathRow: Sendable, CustomTestStringConvertible {
        let argument: String
        /// The folder and path inside it, or the error.
        let expected: Result<(folder: String, path: String?), SyncedPathError>
        var testDescription: String { argument }
    }

    static let paths: [PathRow] = [
        PathRow(argument: "/data/photos/a/b.jpg", expected: .success(("/data/photos", "a/b.jpg"))),
        PathRow(argument: "/data/photos/./a/b.jpg", expected: .success(("/data/photos", "a/b.jpg"))),
        PathRow(argument: "/data/work/x/../y.txt", expected: .success(("/data/work", "y.txt"))),
        PathRow(argument: "/data/photos", expected: .success(("/data/photos", nil))),
        PathRow(argument: "/data/photos/", expected: .success(("/data/photos", nil))),
        PathRow(argument: "/data/photos/../music/a.mp3", expected: .failure(.outsideFolders("/data/music/a.mp3"))),
        PathRow(argument: "/data/photos-old/a.jpg", expected: .failure(.outsideFolders("/data/photos-old/a.jpg"))),
        PathRow(argument: "/data", expected: .failure(.outsideFolders("/data"))),
    ]

    @Test(arguments: paths)
    func anArgumentNamesAFolderAndAPathInIt(_ row: PathRow) throws {
        let config = Self.config(Self.configured)
        switch row.expected {
        case .success(let (folder, path)):
            let (found, relative) = try SyncedPath.locate(row.argument, config: config)
            #expect(found.path == folder && relative?.string == path)
            if let path {
                let target = try SyncedPath(row.argument, config: config)
                #expect(target.folder.path == folder && target.path.string == path)
            } else {
                #expect(throws: SyncedPathError.folderRoot(folder)) { try SyncedPath(row.argument, config: config) }
            }
        case .failure(let error):
            #expect(throws: error) { try SyncedPath.locate(row.argument, config: config) }
            #expect(throws: error) { try SyncedPath(row.argument, config: config) }
        }
    }

    @Test func aPathTheLibraryCannotHoldIsRefusedWithItsRule() {
        let config = Self.config(Self.configured)
        #expect(throws: PathError.self) { try SyncedPath("/data/photos/" + String(repeating: "x", count: 300), config: config) }
    }

    @Test func aFolderReachedThroughASymbolicLinkIsFound() throws {
        let root = scratchDirectory("app-link")
        let photos = root + "/photos"
        try FileManager.default.createDirectory(atPath: photos + "/2024", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root + "/link", withDestinationPath: photos)
        let config = Self.config([photos])
        let target = try SyncedPath(root + "/link/2024", config: config)
        #expect(target.folder.path == photos && target.path.string == "2024")
    }

    @Test func scopesAreOnePlaceOrEveryFolderFromItsRoot() throws {
        let config = Self.config(Self.configured)
        #expect(try SyncedPath.scopes(nil, config: config).map { [$0.0.path, $0.1?.string ?? "-"] } == [["/data/photos", "-"], ["/data/work", "-"]])
        #expect(try SyncedPath.scopes("/data/work/old", config: config).map { [$0.0.path, $0.1?.string ?? "-"] } == [["/data/work", "old"]])
        #expect(try SyncedPath.scopes("/data/work", config: config).map { [$0.0.path, $0.1?.string ?? "-"] } == [["/data/work", "-"]])
        #expect(throws: SyncedPathError.outsideFolders("/elsewhere")) { try SyncedPath.scopes("/elsewhere", config: config) }
        #expect(throws: SyncedPathError.noFolders) { try SyncedPath.scopes(nil, config: Self.config([])) }
    }

    // MARK: projects, versions, conflicts

    static func project(_ id: String, _ name: String) -> ProjectInfo {
        ProjectInfo(id: id, name: name, owner: "ann", members: [], createdAt: Date(timeIntervalSince1970: 0))
    }

    @Test func aProjectIsNamedByIdOrByItsOnlyName() throws {
        let projects = [Self.project("p1", "web"), Self.project("p2", "web"), Self.project("p3", "app"), Self.project("p4", "p1")]
        #expect(try ProjectLookup.id(for: "p2", among: projects) == "p2")
        #expect(try ProjectLookup.id(for: "app", among: projects) == "p3")
        // An id wins over a project named like it.
        #expect(try ProjectLookup.id(for: "p1", among: projects) == "p1")
        #expect(throws: ProjectLookupError.ambiguous("web", ids: ["p1", "p2"])) { try ProjectLookup.id(for: "web", among: projects) }
        #expect(throws: ProjectLookupError.unknown("docs")) { try ProjectLookup.id(for: "docs", among: projects) }
        #expect(throws: ProjectLookupError.unknown("app")) { try ProjectLookup.id(for: "app", among: []) }
    }

    static func version(_ n: Int64, deleted: Bool = false) -> FileVersion {
        FileVersion(version: n, path: path("a.txt"), kind: .file, deleted: deleted, size: 1, sha256: nil, mtimeNs: 0, mode: 0o644, chunks: [],
                    target: nil, deviceId: nil, committedAt: Date(timeIntervalSince1970: 0))
    }

    struct RestoreRow: Sendable, CustomTestStringConvertible {
        let name: String
        let wanted: Int64?
        /// Newest first.
        let history: [FileVersion]
        let expected: Result<[Int64], RestoreChoiceError>
        var testDescription: String { name }
    }

    static let a = path("a.txt")
    static let restores: [RestoreRow] = [
        RestoreRow(name: "the one before the current", wanted: nil, history: [version(7), version(5), version(2)], expected: .success([5, 7])),
        RestoreRow(name: "deletions are skipped", wanted: nil, history: [version(7), version(6, deleted: true), version(2)], expected: .success([2, 7])),
        RestoreRow(name: "back from a deletion", wanted: nil, history: [version(7, deleted: true), version(5)], expected: .success([5, 7])),
        RestoreRow(name: "a version asked for", wanted: 2, history: [version(7), version(5), version(2)], expected: .success([2, 7])),
        RestoreRow(name: "the current version asked for", wanted: 7, history: [version(7), version(5)], expected: .success([7, 7])),
        RestoreRow(name: "no history", wanted: nil, history: [], expected: .failure(.noHistory(a))),
        RestoreRow(name: "no history, a version asked for", wanted: 3, history: [], expected: .failure(.noHistory(a))),
        RestoreRow(name: "only the current version", wanted: nil, history: [version(7)], expected: .failure(.noEarlierVersion(a))),
        RestoreRow(name: "only deletions before", wanted: nil, history: [version(7), version(6, deleted: true)], expected: .failure(.noEarlierVersion(a))),
        RestoreRow(name: "a version it does not have", wanted: 4, history: [version(7), version(5)],
                   expected: .failure(.noSuchVersion(a, version: 4, argument: "docs/a.txt"))),
        RestoreRow(name: "a version beyond a full page is the server's to check", wanted: 1,
                   history: (2...Int64(RestoreChoice.historyLimit + 1)).reversed().map { version($0) },
                   expected: .success([1, Int64(RestoreChoice.historyLimit + 1)])),
    ]

    @Test(arguments: restores)
    func theVersionARestoreBringsBack(_ row: RestoreRow) {
        let chosen = Result { () throws(RestoreChoiceError) in try RestoreChoice.choose(row.wanted, of: Self.a, argument: "docs/a.txt", history: row.history) }
        #expect(chosen.map { [$0.version, $0.base] } == row.expected)
    }

    static func conflict(_ id: String, on path: String, copy: String) -> ConflictInfo {
        ConflictInfo(id: id, library: "lib", path: Self.path(path),
                     mine: ConflictSide(path: Self.path(copy), version: 2, deviceId: "d1", sha256: nil, size: 1),
                     theirs: ConflictSide(path: Self.path(path), version: 3, deviceId: "d2", sha256: nil, size: 1),
                     detectedAt: Date(timeIntervalSince1970: 0), resolvedAt: nil, resolution: nil)
    }

    @Test func aConflictIsNamedByItsFileOrByItsCopy() throws {
        let one = Self.conflict("c1", on: "a.txt", copy: "a.conflict-1.txt")
        let two = Self.conflict("c2", on: "a.txt", copy: "a.conflict-2.txt")
        let other = Self.conflict("c3", on: "b.txt", copy: "b.conflict-1.txt")
        #expect(try ConflictLookup.conflict(for: Self.path("b.txt"), among: [one, other]) == other)
        #expect(try ConflictLookup.conflict(for: Self.path("a.conflict-2.txt"), among: [one, two, other]) == two)
        #expect(try ConflictLookup.conflict(for: Self.path("b.conflict-1.txt"), among: [one, other]) == other)
        #expect(throws: ConflictLookupError.ambiguous(Self.path("a.txt"), copies: [Self.path("a.conflict-1.txt"), Self.path("a.conflict-2.txt")])) {
            try ConflictLookup.conflict(for: Self.path("a.txt"), among: [one, two, other])
        }
        #expect(throws: ConflictLookupError.none(Self.path("c.txt"))) { try ConflictLookup.conflict(for: Self.path("c.txt"), among: [one, two, other]) }
        #expect(throws: ConflictLookupError.none(Self.path("a.txt"))) { try ConflictLookup.conflict(for: Self.path("a.txt"), among: []) }
        // A file that is one conflict's copy and another's path: the copy wins.
        let copyOfCopy = Self.conflict("c4", on: "a.conflict-1.txt", copy: "a.conflict-1.conflict-9.txt")
        #expect(try ConflictLookup.conflict(for: Self.path("a.conflict-1.txt"), among: [copyOfCopy, one]) == one)
    }

    // MARK: the verdict of a sync

    static let pause = MassDeletePause(remoteDeletes: 200, localDeletes: 0, entries: 210)

    static func report(deferred: Int = 0, problems: [String: String] = [:], paused: Bool = false) -> PassReport {
        var report = PassReport()
        report.deferred = deferred
        report.problems = problems
        report.massDelete = paused ? pause : nil
        return report
    }

    @Test func aSyncSucceedsOnlyWhenEveryFolderSettled() {
        let settled = Self.report(), deferred = Self.report(deferred: 1), problem = Self.report(problems: ["x": "too long"])
        let paused = Self.report(paused: true)
        #expect(SyncVerdict.isSettled(settled) && !SyncVerdict.isSettled(deferred) && !SyncVerdict.isSettled(problem) && !SyncVerdict.isSettled(paused))
        #expect(throws: Never.self) { try SyncVerdict.check(results: ["/a": settled, "/b": settled], failures: [:]) }
        #expect(throws: Never.self) { try SyncVerdict.check(results: [:], failures: [:]) }
        #expect(SyncVerdict.unsettled(["/c": problem, "/a": settled, "/b": deferred]).map(\.path) == ["/b", "/c"])
        #expect(throws: SyncVerdictError.unsettled(2)) { try SyncVerdict.check(results: ["/c": problem, "/a": settled, "/b": deferred], failures: [:]) }
        // A paused folder is named before the count, the first failure before both.
        #expect(throws: SyncVerdictError.paused("/b", Self.pause)) {
            try SyncVerdict.check(results: ["/c": paused, "/b": paused, "/a": deferred], failures: [:])
        }
        #expect(throws: SyncVerdictError.failed("/d", message: "gone")) {
            try SyncVerdict.check(results: ["/a": paused, "/b": deferred], failures: ["/e": "refused", "/d": "gone"])
        }
    }
}
