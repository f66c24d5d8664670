@testable import FerryClient
import FerryCore
import Foundation
import Testing

/// The planner is a pure function: a table of (index, local, remote) → decision.
@Suite("Planner decisions")
struct PlannerTests {
    static func file(_ path: String, _ content: String, mtime: Int64 = 1, inode: UInt64 = 1, mode: Int32 = 0o644) -> LocalState {
        let hash = ContentHash.of(Array(content.utf8))
        let size = Int64(content.utf8.count)
        return LocalState(file: LocalFile(path: path, kind: .file, size: size, mtimeNs: mtime, inode: inode, mode: mode, target: nil),
                          sha256: hash, chunks: size == 0 ? [] : [ChunkRef(sha256: hash, size: size)])
    }

    static func entry(_ l: LocalState, version: Int64) -> IndexEntry {
        IndexEntry(path: l.path, kind: l.kind, size: l.file.size, mtimeNs: l.file.mtimeNs, inode: l.file.inode, ctimeNs: l.file.ctimeNs, mode: l.file.mode,
                   sha256: l.sha256, chunks: l.chunks, target: nil, version: version)
    }

    static func remote(_ l: LocalState, version: Int64, deleted: Bool = false) -> FileVersion {
        FileVersion(version: version, path: try! FerryPath(l.path), kind: .file, deleted: deleted, size: deleted ? 0 : l.file.size,
                    sha256: deleted ? nil : l.sha256, mtimeNs: l.file.mtimeNs, mode: l.file.mode, chunks: deleted ? [] : l.chunks,
                    target: nil, deviceId: "d", committedAt: Date(timeIntervalSince1970: 0))
    }

    struct Row: Sendable, CustomTestStringConvertible {
        let name: String
        let index: IndexEntry?
        let local: LocalState?
        let remote: FileVersion?
        let expected: String?
        var testDescription: String { name }
    }

    static let v1 = file("a.txt", "one")
    static let v2local = file("a.txt", "two (here)", mtime: 2)
    static let v2remote = file("a.txt", "two (there)", mtime: 3)

    static let rows: [Row] = [
        Row(name: "in sync", index: entry(v1, version: 1), local: v1, remote: remote(v1, version: 1), expected: nil),
        Row(name: "new here", index: nil, local: v1, remote: nil, expected: "upload base nil"),
        Row(name: "new there", index: nil, local: nil, remote: remote(v1, version: 4), expected: "download 4"),
        Row(name: "edited here", index: entry(v1, version: 1), local: v2local, remote: remote(v1, version: 1), expected: "upload base 1"),
        Row(name: "edited there", index: entry(v1, version: 1), local: v1, remote: remote(v2remote, version: 5), expected: "download 5"),
        Row(name: "deleted here", index: entry(v1, version: 1), local: nil, remote: remote(v1, version: 1), expected: "delete-remote base 1"),
        Row(name: "deleted there", index: entry(v1, version: 1), local: v1, remote: remote(v1, version: 6, deleted: true), expected: "delete-local"),
        Row(name: "edited on both sides", index: entry(v1, version: 1), local: v2local, remote: remote(v2remote, version: 7), expected: "conflict"),
        Row(name: "same edit on both sides", index: entry(v1, version: 1), local: v2local, remote: remote(v2local, version: 7), expected: "adopt 7"),
        Row(name: "edited here, deleted there", index: entry(v1, version: 1), local: v2local, remote: remote(v1, version: 8, deleted: true),
            expected: "upload base 8"),
        Row(name: "deleted here, edited there", index: entry(v1, version: 1), local: nil, remote: remote(v2remote, version: 9), expected: "download 9"),
        Row(name: "deleted on both sides", index: entry(v1, version: 1), local: nil, remote: remote(v1, version: 9, deleted: true), expected: "forget"),
        Row(name: "unknown to the mirror is not a deletion", index: entry(v1, version: 1), local: v1, remote: nil, expected: nil),
        Row(name: "new on both sides, different", index: nil, local: v2local, remote: remote(v2remote, version: 3), expected: "conflict"),
        Row(name: "exec bit set here", index: entry(v1, version: 1), local: file("a.txt", "one", mode: 0o755), remote: remote(v1, version: 1),
            expected: "upload base 1"),
    ]

    static func describe(_ action: PlannedAction?) -> String? {
        switch action {
        case nil: nil
        case .upload(_, let base)?: "upload base \(base.map(String.init) ?? "nil")"
        case .deleteRemote(_, let base)?: "delete-remote base \(base)"
        case .download(let v)?: "download \(v.version)"
        case .deleteLocal?: "delete-local"
        case .conflict?: "conflict"
        case .adopt(_, let v)?: "adopt \(v.version)"
        case .forget?: "forget"
        }
    }

    @Test(arguments: rows)
    func decides(_ row: Row) {
        #expect(Self.describe(Planner.decide(index: row.index, local: row.local, remote: row.remote)) == row.expected)
    }

    @Test func aFileThatBecameEmptyWithItsOldMtimeIsHeldAndGoesOnceItsMtimeMoves() {
        let synced = Self.file("doc.txt", "important", mtime: 100)
        let torn = Self.file("doc.txt", "", mtime: 100)
        let index = ["doc.txt": Self.entry(synced, version: 1)], remote = ["doc.txt": Self.remote(synced, version: 1)]
        let held = Planner.plan(index: index, local: ["doc.txt": torn], remote: remote, policy: SafetyPolicy())
        #expect(held.actions.isEmpty)
        #expect(held.held["doc.txt"]?.contains("torn write") == true)
        let emptiedOnPurpose = Self.file("doc.txt", "", mtime: 200)
        let goes = Planner.plan(index: index, local: ["doc.txt": emptiedOnPurpose], remote: remote, policy: SafetyPolicy())
        #expect(goes.actions.count == 1 && goes.held.isEmpty)
    }

    static func many(_ n: Int) -> [LocalState] { (0..<n).map { file("f\($0).txt", "content \($0)") } }

    @Test(arguments: [(120, true), (75, false), (76, true), (99, false)])
    func massDeletesArePausedAboveTheThreshold(_ deletions: Int, _ paused: Bool) {
        // 150 synced files; `deletions` of them gone locally (and, mirrored, on the server).
        let files = Self.many(150)
        let index = Dictionary(uniqueKeysWithValues: files.map { ($0.path, Self.entry($0, version: 1)) })
        let remote = Dictionary(uniqueKeysWithValues: files.map { ($0.path, Self.remote($0, version: 1)) })
        let local = Dictionary(uniqueKeysWithValues: files.dropFirst(deletions).map { ($0.path, $0) })
        let policy = SafetyPolicy(massDeleteFraction: 0.5, massDeleteMinimum: deletions == 99 ? 100 : 10)
        let plan = Planner.plan(index: index, local: local, remote: remote, policy: policy)
        #expect((plan.massDelete != nil) == paused)
        #expect(plan.actions.count == (paused ? 0 : deletions))
        if paused { #expect(plan.massDelete?.remoteDeletes == deletions) }
        var allowed = policy
        allowed.allowMassDelete = true
        #expect(Planner.plan(index: index, local: local, remote: remote, policy: allowed).actions.count == deletions)

        // The same from the server's side: tombstones for those files, all still here.
        let tombstones = remote.mapValues { v in files.prefix(deletions).contains { $0.path == v.path.string } ? Self.remote(Self.file(v.path.string, ""), version: 2, deleted: true) : v }
        let all = Dictionary(uniqueKeysWithValues: files.map { ($0.path, $0) })
        let down = Planner.plan(index: index, local: all, remote: tombstones, policy: policy)
        #expect((down.massDelete?.localDeletes == deletions) == paused)
    }

    @Test func deletionsConfirmedElsewherePassTheGuardAndOnlyThey() {
        // 150 synced files, 120 of them deleted on the server (versions 1001…1120), all still here.
        let files = Self.many(150)
        let index = Dictionary(uniqueKeysWithValues: files.map { ($0.path, Self.entry($0, version: 1)) })
        let local = Dictionary(uniqueKeysWithValues: files.map { ($0.path, $0) })
        var remote = Dictionary(uniqueKeysWithValues: files.map { ($0.path, Self.remote($0, version: 1)) })
        for (i, f) in files.prefix(120).enumerated() { remote[f.path] = Self.remote(Self.file(f.path, ""), version: 1001 + Int64(i), deleted: true) }
        var policy = SafetyPolicy(massDeleteFraction: 0.5, massDeleteMinimum: 10)
        let held = Planner.plan(index: index, local: local, remote: remote, policy: policy)
        #expect(held.massDelete?.localDeletes == 120 && held.actions.isEmpty && held.heldDeletes.count == 120)

        policy.confirmedDeletions = Set(1001...1120)
        let confirmed = Planner.plan(index: index, local: local, remote: remote, policy: policy)
        #expect(confirmed.massDelete == nil && confirmed.actions.count == 120 && confirmed.heldDeletes.isEmpty)

        // 40 confirmed: those go, the other 80 are still a mass delete and wait.
        policy.confirmedDeletions = Set(1001...1040)
        let part = Planner.plan(index: index, local: local, remote: remote, policy: policy)
        #expect(part.massDelete?.localDeletes == 80 && part.actions.count == 40 && part.heldDeletes.count == 80)
        // A confirmed version that is not this file's tombstone lets nothing through.
        policy.confirmedDeletions = Set(1...120)
        #expect(Planner.plan(index: index, local: local, remote: remote, policy: policy).massDelete?.localDeletes == 120)
    }

    /// What must make way for a download is removed before it, deepest first; the rest after.
    @Test func localDeletesThatBlockADownloadGoFirst() throws {
        func entry(_ path: String, _ kind: EntryKind) -> IndexEntry {
            IndexEntry(path: path, kind: kind, size: 0, mtimeNs: 0, inode: 0, ctimeNs: 0, mode: 0o644, sha256: nil, chunks: [],
                       target: kind == .symlink ? "t" : nil, version: 1)
        }
        func version(_ path: String, _ kind: EntryKind) throws -> FileVersion {
            FileVersion(version: 2, path: try FerryPath(path), kind: kind, deleted: false, size: 0, sha256: kind == .file ? .empty : nil,
                        mtimeNs: 0, mode: 0o644, chunks: [], target: kind == .symlink ? "t" : nil, deviceId: nil, committedAt: Date())
        }
        let actions: [PlannedAction] = [
            .deleteLocal(entry("s", .symlink)),  // a link where s/x.txt needs a directory
            .download(try version("s/x.txt", .file)),
            .deleteLocal(entry("k/f.txt", .file)),  // inside k, which becomes a file
            .deleteLocal(entry("k/sub", .directory)),
            .deleteLocal(entry("k", .directory)),  // the directory itself: materialize removes it once empty
            .download(try version("k", .file)),
            .deleteLocal(entry("m", .directory)),  // an ancestor, but a directory already: nothing in the way
            .download(try version("m/g.txt", .file)),
            .deleteLocal(entry("old/a.txt", .file)),  // unrelated: after the downloads
            .deleteLocal(entry("old", .directory)),
        ]
        let (early, late) = LocalDeleteOrder.split(actions)
        #expect(early.map(\.path) == ["s", "k/sub", "k/f.txt"])
        #expect(late.map(\.path) == ["old/a.txt", "old", "m", "k"])
    }

    @Test func conflictNamesKeepTheExtensionAndMarkTheDevice() {
        let date = Date(timeIntervalSince1970: 1_795_000_000)  // 2026-11-18 11:06:40 UTC
        #expect(ConflictName.make(for: "docs/plan.txt", device: "my laptop", at: date) == "docs/plan.conflict-my-laptop-20261118-110640.txt")
        #expect(ConflictName.make(for: "Makefile", device: "b", at: date) == "Makefile.conflict-b-20261118-110640")
        #expect(ConflictName.make(for: ".bashrc", device: "b", at: date) == ".bashrc.conflict-b-20261118-110640")
        #expect(ConflictName.isConflictCopy("docs/plan.conflict-my-laptop-20261118-110640.txt"))
        #expect(!ConflictName.isConflictCopy("docs/plan.txt"))
        #expect(ConflictName.make(for: "docs/plan.txt", device: "b", at: date, attempt: 2) == "docs/plan.conflict-b-20261118-110640-2.txt")
        #expect(ConflictName.isConflictCopy("docs/plan.conflict-b-20261118-110640-2.txt"))
    }
}
