import AsyncHTTPClient
@testable import FerryClient
import FerryCore
import FerryTestSupport
import Foundation
import Logging
import Testing

/// Passes scoped by the watcher's paths (`PassScope`, `ScopeTracker`) must plan exactly what
/// a full walk plans.
@Suite("Scoped passes")
struct ScopedPassTests {
    // MARK: the scope

    @Test(arguments: [
        (["a"], "a", true), (["a"], "a/b/c", true), (["a"], "ab", false), (["a"], "a b", false),
        (["a/b"], "a", false), (["a/b"], "a/b/c", true), (["x", "a/b"], "a/bc", false), ([], "a", false),
    ] as [([String], String, Bool)])
    func aScopeCoversItsPathsAndWhatIsBeneathThem(paths: [String], path: String, covered: Bool) {
        #expect(PassScope.paths(Set(paths)).covers(path) == covered)
        #expect(PassScope.everything.covers(path))
    }

    @Test func theWalkStartsFromPathsNoneBeneathAnother() {
        #expect(PassScope.roots(["a/b", "a", "a b", "a/b/c", "c/d", "c"]) == ["a", "a b", "c"])
        #expect(PassScope.roots(["z/1", "z/0", "y"]) == ["y", "z/0", "z/1"])
        #expect(PassScope.roots([]) == [])
    }

    // MARK: when the tracker falls back to everything

    @Test func withoutAWatcherEveryPassIsFull() {
        let tracker = ScopeTracker()
        tracker.noted([.changed("a")])
        #expect(tracker.take(storedCursor: 0) == .everything)
        #expect(tracker.take(storedCursor: 0) == .everything)
    }

    @Test func aWatcherScopesPassesAfterAFullOne() {
        let tracker = ScopeTracker()
        tracker.watchStarted()
        #expect(tracker.take(storedCursor: 5) == .everything)  // what changed before it watched
        tracker.noted([.changed("a"), .renamed(from: "b", to: "c", isDirectory: true), .removed("d"), .directoryCreated("e")])
        tracker.pulled(["f"], since: 5, cursor: 6)
        #expect(tracker.take(storedCursor: 6) == .paths(["a", "b", "c", "d", "e", "f"]))
        #expect(tracker.take(storedCursor: 6) == .paths([]))
    }

    @Test(arguments: [
        "overflow", "rootGone", "watchLimit", "ignoreFile", "watcherStopped", "rescan", "gapInTheFeed", "anotherProcessPulled", "deferred", "massDelete",
    ])
    func whatMayHaveBeenMissedMakesTheNextPassFull(reason: String) {
        let tracker = ScopeTracker()
        tracker.watchStarted()
        _ = tracker.take(storedCursor: 5)
        var stored: Int64 = 5
        switch reason {
        case "overflow": tracker.noted([.overflow])
        case "rootGone": tracker.noted([.rootGone])
        case "watchLimit": tracker.noted([.watchLimitReached("deep")])
        case "ignoreFile": #expect(tracker.noted([.changed(".ferryignore")]))
        case "watcherStopped": tracker.watchStopped()
        case "rescan": tracker.requireFull()
        case "gapInTheFeed": tracker.pulled(["x"], since: 7, cursor: 9)
        case "anotherProcessPulled": stored = 7
        case "deferred":
            var report = PassReport()
            report.deferred = 1
            tracker.finished(report)
        default:
            var report = PassReport()
            report.massDelete = MassDeletePause(remoteDeletes: 200, localDeletes: 0, entries: 300)
            tracker.finished(report)
        }
        if reason == "gapInTheFeed" { stored = 9 }
        #expect(tracker.take(storedCursor: stored) == .everything)
        if reason != "watchLimit" && reason != "watcherStopped" {
            #expect(tracker.take(storedCursor: stored) == .paths([]), "and the one after is scoped again")
        }
    }

    @Test func aBurstOfManyPathsIsWalkedWhole() {
        let tracker = ScopeTracker()
        tracker.watchStarted()
        _ = tracker.take(storedCursor: 0)
        tracker.noted((0..<ScopeTracker.scopeLimit).map { .changed("f\($0)") })
        #expect(tracker.take(storedCursor: 0) != .everything)
        tracker.noted((0...ScopeTracker.scopeLimit).map { .changed("f\($0)") })
        #expect(tracker.take(storedCursor: 0) == .everything)
    }

    @Test func whatAPassWroteItselfIsNoChangeWhileItIsStillAsWritten() {
        let tracker = ScopeTracker()
        tracker.watchStarted()
        _ = tracker.take(storedCursor: 0)
        func file(_ path: String, mtime: Int64) -> IndexEntry {
            IndexEntry(path: path, kind: .file, size: 3, mtimeNs: mtime, inode: 7, ctimeNs: mtime, mode: 0o644, sha256: nil, chunks: [], target: nil, version: 1)
        }
        func onDisk(_ e: IndexEntry) -> LocalFile {
            var f = LocalFile(path: e.path, kind: e.kind, size: e.size, mtimeNs: e.mtimeNs, inode: e.inode, mode: e.mode, target: e.target)
            f.ctimeNs = e.ctimeNs
            return f
        }
        let downloaded = file("down.txt", mtime: 100), adopted = file("adopted.txt", mtime: 100), late = file("late.txt", mtime: 100)
        let directory = IndexEntry(path: "dir", kind: .directory, size: 0, mtimeNs: 1, inode: 9, ctimeNs: 1, mode: 0o755, sha256: nil, chunks: [],
                                   target: nil, version: 1)
        var update = IndexUpdate()
        update.synced = [downloaded, adopted, directory, late]
        update.unsynced = ["deleted.txt", "forgotten.txt"]
        tracker.left(update, recordedOnly: ["adopted.txt", "forgotten.txt"])
        var disk: [String: LocalFile] = [:]
        for e in [downloaded, adopted, directory, late] { disk[e.path] = onDisk(e) }
        disk["edited.txt"] = onDisk(file("edited.txt", mtime: 5))
        let now: (String) -> OnDisk = { disk[$0].map(OnDisk.entry) ?? .nothing }
        // The watcher reports the pass's own writes, one of them through its temp name, and a
        // user's edit; "adopted" and "forgotten" were recorded without a write.
        tracker.noted([.renamed(from: LocalScanner.partialPrefix + "1", to: "down.txt", isDirectory: false), .directoryCreated("dir"),
                       .removed("deleted.txt"), .changed("edited.txt"), .changed("adopted.txt"), .removed("forgotten.txt")])
        #expect(tracker.take(storedCursor: 0, now: now) == .paths(["edited.txt", "adopted.txt", "forgotten.txt"]))
        // A write reported after the pass that took the others is still recognised.
        tracker.noted([.changed("late.txt")])
        #expect(tracker.take(storedCursor: 0, now: now) == .paths([]))
        // Once recognised, a path's next report is a change again.
        tracker.noted([.changed("late.txt")])
        #expect(tracker.take(storedCursor: 0, now: now) == .paths(["late.txt"]))
        // Changed since it was written: looked at.
        tracker.left(update)
        disk["down.txt"]?.mtimeNs = 200
        disk["dir"] = onDisk(file("dir", mtime: 1))  // a file where the directory was
        tracker.noted([.changed("down.txt"), .changed("dir"), .changed("deleted.txt")])
        disk["deleted.txt"] = onDisk(file("deleted.txt", mtime: 9))
        #expect(tracker.take(storedCursor: 0, now: now) == .paths(["down.txt", "dir", "deleted.txt"]))
        // A full pass looks at everything, and forgets what was written before it.
        tracker.left(update)
        tracker.requireFull()
        #expect(tracker.take(storedCursor: 0, now: now) == .everything)
        tracker.noted([.changed("late.txt")])
        #expect(tracker.take(storedCursor: 0, now: now) == .paths(["late.txt"]))
        // Without a way to look at the disk, or when the look fails, nothing is left out.
        tracker.left(update)
        tracker.noted([.changed("late.txt")])
        #expect(tracker.take(storedCursor: 0) == .paths(["late.txt"]))
        tracker.left(update)
        tracker.noted([.changed("late.txt")])
        #expect(tracker.take(storedCursor: 0) { _ in .unknown } == .paths(["late.txt"]))
    }

    @Test func aLookAtThePathFindsWhatAWalkFinds() throws {
        let root = scratchDirectory("look")
        try FileManager.default.createDirectory(atPath: root + "/d", withIntermediateDirectories: true)
        try Data("abc".utf8).write(to: URL(fileURLWithPath: root + "/d/f"))
        try FileManager.default.createSymbolicLink(atPath: root + "/d/l", withDestinationPath: "f")
        for path in ["d", "d/f", "d/l"] {
            #expect(OnDisk.look(root: root, path: path) == LocalScanner.stat(root: root, path: path).map(OnDisk.entry), "\(path)")
        }
        #expect(OnDisk.look(root: root, path: "d/missing") == .nothing)
        #expect(OnDisk.look(root: root, path: "d/f/below-a-file") == .nothing)
    }

    @Test func aPassesOwnBurstOfWritesDoesNotMakeTheNextPassFull() {
        let tracker = ScopeTracker()
        tracker.watchStarted()
        _ = tracker.take(storedCursor: 0)
        var update = IndexUpdate()
        update.unsynced = (0...ScopeTracker.scopeLimit).map { "f\($0)" }
        tracker.left(update)
        tracker.noted((0...ScopeTracker.scopeLimit).map { .removed("f\($0)") })
        #expect(tracker.take(storedCursor: 0) { _ in .nothing } == .paths([]))
    }

    @Test func pathsAPassCouldNotSyncAreLookedAtAgain() {
        let tracker = ScopeTracker()
        tracker.watchStarted()
        _ = tracker.take(storedCursor: 0)
        var report = PassReport()
        report.problems = ["busy.log": "the file is changing"]
        tracker.finished(report)
        tracker.pulled(["seen-twice"], since: 0, cursor: 3)
        tracker.pulled(["seen-twice"], since: 2, cursor: 3)  // two readers of one page: no gap
        #expect(tracker.take(storedCursor: 3) == .paths(["busy.log", "seen-twice"]))
    }

    // MARK: the property

    /// Random local edits (seen by the real inotify watcher) and random server changes (as
    /// the feed stores them), several rounds each settled in between: the scoped pass's
    /// inputs and plan equal the full walk's, mass-delete guard included.
    @Test(arguments: 0..<64)
    func scopedPlansEqualFullPlans(seed: Int) async throws {
        let world = try World(seed: UInt64(seed))
        try await world.run(rounds: 5)
    }

    final class World {
        var random: SeededRandom
        let base = scratchDirectory("scoped")
        var root: String { base + "/folder" }
        let index: LocalIndex
        let sync: FolderSync
        var version: Int64 = 0
        var counter = 0
        /// Paths the edits of this round changed: the watcher must report each (or a directory above).
        var changed: [String] = []
        // A mass delete is easy to reach here: 3 of more than a fifth.
        let policy = SafetyPolicy(massDeleteFraction: 0.2, massDeleteMinimum: 3)

        init(seed: UInt64) throws {
            random = SeededRandom(seed: 0x5C0_9ED + seed)
            try FileManager.default.createDirectory(atPath: base + "/folder/" + LocalScanner.markerName, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: base + "/outside", withIntermediateDirectories: true)
            index = try LocalIndex(path: base + "/index.db")
            let api = ServerAPI(serverURL: "http://127.0.0.1:9", token: "unused", client: .shared)  // never called
            sync = try FolderSync(folder: FolderConfig(path: base + "/folder", libraryId: "lib", libraryName: "lib"), index: index, api: api,
                                  deviceName: "here", policy: policy, logger: Logger(label: "scoped-test"))
        }

        func run(rounds: Int) async throws {
            for _ in 0..<12 { try localChange() }
            changed = []  // made before the watcher ran
            let watcher = try InotifyWatcher(root: root) { p, _ in p == LocalScanner.markerName || p.hasPrefix(LocalScanner.markerName + "/") }
            defer { watcher.stop() }
            // A hang guard (generous: the 64 seeds run at once, beside the other suites): a watcher
            // that never reports a change ends, and the round says what it missed.
            let guardTask = Task {
                try await Task.sleep(for: .seconds(120))
                watcher.stop()
            }
            defer { guardTask.cancel() }
            sync.scopes.watchStarted()
            try await settle()
            var events = watcher.events.makeAsyncIterator()
            for round in 0..<rounds {
                try ownWrites()
                for _ in 0..<(1 + random.below(8)) { try localChange() }
                try remoteChanges()
                // Wait until the watcher reported every path changed (a move whose other end
                // it did not see is reported as a removal a little later) and this file.
                let sentinel = "sentinel-\(round)"
                try Data().write(to: URL(fileURLWithPath: root + "/" + sentinel))
                changed.append(sentinel)
                var reported = Set<String>()
                while !changed.allSatisfy(PassScope.paths(reported).covers), let batch = await events.next() {
                    sync.scopes.noted(batch)
                    for event in batch {
                        switch event {
                        case .changed(let p), .directoryCreated(let p), .removed(let p): reported.insert(p)
                        case .renamed(let from, let to, _): reported.formUnion([from, to])
                        default: break
                        }
                    }
                }
                let missed = changed.filter { !PassScope.paths(reported).covers($0) }
                try #require(missed.isEmpty, "the watcher ended without reporting \(missed)")
                changed = []
                let root = self.root
                let scope = sync.scopes.take(storedCursor: try index.cursor(folder: root)) { OnDisk.look(root: root, path: $0) }
                guard case .paths = scope else {
                    Issue.record("round \(round) fell back to a full pass")
                    return
                }
                let full = try await sync.gatherInputs(uploadEarly: false)
                let scoped = try await sync.gatherInputs(uploadEarly: false, scope: scope)
                #expect(scoped.problems == full.problems)
                #expect(scoped.local == full.local.filter { scope.covers($0.key) }, "round \(round)")
                #expect(scoped.index == full.index.filter { scope.covers($0.key) }, "round \(round)")
                let fullPlan = Planner.plan(index: full.index, local: full.local, remote: full.remote, policy: policy)
                let scopedPlan = try Planner.plan(index: scoped.index, local: scoped.local, remote: scoped.remote, policy: policy,
                                              synced: { try index.entryCount(folder: root) })
                if scopedPlan != fullPlan {
                    let onlyScoped = scopedPlan.actions.filter { !fullPlan.actions.contains($0) }.map(\.summary)
                    let onlyFull = fullPlan.actions.filter { !scopedPlan.actions.contains($0) }.map(\.summary)
                    Issue.record("DIFF round \(round): only scoped \(onlyScoped), only full \(onlyFull), pauses \(String(describing: scopedPlan.massDelete)) vs \(String(describing: fullPlan.massDelete)); scoped remote \(onlyFull.map { scoped.remote[$0.path] as Any }) full remote \(onlyFull.map { full.remote[$0.path] as Any }) scoped idx \(onlyFull.map { scoped.index[$0.path]?.version as Any }) full idx \(onlyFull.map { full.index[$0.path]?.version as Any }) scope \(scope)")
                }
                try await settle()
            }
        }

        /// What a pass that finished everything leaves: the index and the server's tree
        /// both as the folder is now.
        func settle() async throws {
            let inputs = try await sync.gatherInputs(uploadEarly: false)
            let entries = try index.entries(folder: root)
            let mirror = try index.remote(folder: root)
            var update = IndexUpdate()
            for (path, l) in inputs.local {
                version += 1
                update.synced.append(IndexEntry(path: path, kind: l.kind, size: l.file.size, mtimeNs: l.file.mtimeNs, inode: l.file.inode,
                                                ctimeNs: l.file.ctimeNs, mode: l.file.mode, sha256: l.sha256, chunks: l.chunks, target: l.file.target,
                                                version: version))
                update.remote.append(remote(path, like: l, version: version))
            }
            update.unsynced = entries.keys.filter { inputs.local[$0] == nil }
            for (path, v) in mirror where inputs.local[path] == nil && !v.deleted {
                version += 1
                update.remote.append(tombstone(v, version: version))
            }
            update.cursor = version
            try index.apply(folder: root, update)
            _ = sync.scopes.take(storedCursor: version)  // as the full pass that did this would
        }

        func remote(_ path: String, like l: LocalState, version: Int64) -> FileVersion {
            FileVersion(version: version, path: try! FerryPath(path), kind: l.kind, deleted: false, size: l.kind == .file ? l.file.size : 0,
                        sha256: l.sha256, mtimeNs: l.file.mtimeNs, mode: l.file.mode, chunks: l.chunks, target: l.file.target,
                        deviceId: "elsewhere", committedAt: Date())
        }

        func tombstone(_ v: FileVersion, version: Int64) -> FileVersion {
            var gone = v
            gone.version = version
            gone.deleted = true
            return gone
        }

        /// What a pass of this process writes itself, as a pass does it: versions from the feed
        /// (stored, and taken by the pass), then on disk new and replaced files (written
        /// beside and renamed into place) and deletions, recorded in the index and told to the
        /// tracker (`left`). The user's edits that follow may touch the same paths.
        func ownWrites() throws {
            let (files, directories) = entries()
            let mirror = try index.remote(folder: root)
            var written: [(path: String, delete: Bool)] = []
            for _ in 0..<random.below(5) {
                if random.below(3) == 0, let path = random.pick(files), mirror[path] != nil, !written.contains(where: { $0.path == path }) {
                    written.append((path, true))
                } else if random.below(2) == 0, let path = random.pick(files), !written.contains(where: { $0.path == path }) {
                    written.append((path, false))
                } else {
                    written.append((newName(in: random.pick([""] + directories), "own"), false))
                }
            }
            guard !written.isEmpty else { return }
            // The feed brings them (stored below, with the writes), and the pass that writes them takes them.
            let since = version
            version += Int64(written.count)
            sync.scopes.pulled(written.map(\.path), since: since, cursor: version)
            _ = sync.scopes.take(storedCursor: version)
            // The writes, each recorded as a download or a local delete records it.
            var update = IndexUpdate()
            for (offset, (path, delete)) in written.enumerated() {
                let at = since + Int64(offset) + 1
                let absolute = root + "/" + path
                changed.append(path)
                if delete {
                    try FileManager.default.removeItem(atPath: absolute)
                    update.remote.append(tombstone(mirror[path]!, version: at))
                    update.unsynced.append(path)
                    continue
                }
                let temp = (absolute as NSString).deletingLastPathComponent + "/" + LocalScanner.partialPrefix + "\(at)"
                try bytes().write(to: URL(fileURLWithPath: temp))
                guard rename(temp, absolute) == 0 else { throw SystemCallError("rename", errno: errno) }
                let placed = try #require(LocalScanner.stat(root: root, path: path))
                let state = try #require(try LocalScanner.hash(root: root, file: placed))
                update.remote.append(remote(path, like: state, version: at))
                update.synced.append(IndexEntry(state, version: at))
            }
            update.cursor = version
            try index.apply(folder: root, update)
            sync.scopes.left(update)
        }

        /// Another device's edits, new files and deletions, stored as the feed stores them.
        func remoteChanges() throws {
            let mirror = try index.remote(folder: root).values.filter { !$0.deleted }
            let files = mirror.filter { $0.kind == .file }
            guard !files.isEmpty else { return }
            let since = version
            var update = IndexUpdate()
            for _ in 0..<random.below(4) {
                let model = random.pick(files)!
                var v = model
                version += 1
                v.version = version
                switch random.below(3) {
                case 0:  // the content of another file
                    let target = random.pick(files)!
                    v.path = target.path
                    v.mode = target.mode
                case 1:  // a file new to this device, in an existing directory
                    let directories = [""] + mirror.filter { $0.kind == .directory }.map(\.path.string)
                    let directory = random.pick(directories)!
                    counter += 1
                    v.path = try FerryPath((directory.isEmpty ? "" : directory + "/") + "remote-\(counter).txt")
                default:
                    v = tombstone(model, version: version)
                }
                update.remote.append(v)
            }
            update.cursor = version
            try index.apply(folder: root, update)
            sync.scopes.pulled(update.remote.map(\.path.string), since: since, cursor: version)
        }

        func entries() -> (files: [String], directories: [String]) {
            var files: [String] = [], directories: [String] = []
            let enumerator = FileManager.default.enumerator(atPath: root)!
            while let path = enumerator.nextObject() as? String {
                if path == LocalScanner.markerName {
                    enumerator.skipDescendants()
                    continue
                }
                switch LocalScanner.stat(root: root, path: path)?.kind {
                case .directory: directories.append(path)
                case .file: files.append(path)
                default: break
                }
            }
            return (files.sorted(), directories.sorted())
        }

        func bytes() -> Data { Data((0..<random.below(3000)).map { _ in UInt8(truncatingIfNeeded: random.next()) }) }

        func newName(in directory: String?, _ prefix: String) -> String {
            counter += 1
            return (directory.map { $0.isEmpty ? "" : $0 + "/" } ?? "") + "\(prefix)-\(counter)"
        }

        /// One local edit, of the kinds a user or a program makes.
        func localChange() throws {
            let fm = FileManager.default
            let (files, directories) = entries()
            let anyDirectory = random.pick([""] + directories)!
            func at(_ path: String) -> String { root + "/" + path }
            switch random.below(12) {
            case 0, 1:
                let file = newName(in: anyDirectory, "new") + ".txt"
                changed.append(file)
                try bytes().write(to: URL(fileURLWithPath: at(file)))
            case 2:
                guard let file = random.pick(files) else { return }
                changed.append(file)
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: at(file)))
                try handle.seekToEnd()
                try handle.write(contentsOf: Data("more \(counter)".utf8))
                try handle.close()
            case 3:
                guard let file = random.pick(files) else { return }
                changed.append(file)
                try fm.removeItem(atPath: at(file))
            case 4:
                let directory = newName(in: anyDirectory, "dir")
                changed.append(directory)
                try fm.createDirectory(atPath: at(directory), withIntermediateDirectories: false)
                for _ in 0..<random.below(4) { try bytes().write(to: URL(fileURLWithPath: at(newName(in: directory, "in") + ".bin"))) }
            case 5:
                guard let directory = random.pick(directories) else { return }
                changed.append(directory)
                try fm.removeItem(atPath: at(directory))
            case 6:
                guard let file = random.pick(files) else { return }
                let to = newName(in: anyDirectory, "moved")
                changed += [file, to]
                try fm.moveItem(atPath: at(file), toPath: at(to))
            case 7:
                guard let directory = random.pick(directories), !anyDirectory.hasPrefix(directory) else { return }
                let to = newName(in: anyDirectory, "moved-dir")
                changed += [directory, to]
                try fm.moveItem(atPath: at(directory), toPath: at(to))
            case 8:
                guard let file = random.pick(files) else { return }
                changed.append(file)
                try fm.setAttributes([.posixPermissions: random.below(2) == 0 ? 0o755 : 0o644], ofItemAtPath: at(file))
            case 9:
                let link = newName(in: anyDirectory, "link")
                changed.append(link)
                try fm.createSymbolicLink(atPath: at(link), withDestinationPath: random.pick(files) ?? "nowhere")
            case 10:  // a directory made elsewhere and moved in whole
                let made = base + "/outside/" + newName(in: nil, "import")
                try fm.createDirectory(atPath: made + "/deep", withIntermediateDirectories: true)
                for i in 0..<1 + random.below(3) { try bytes().write(to: URL(fileURLWithPath: made + "/deep/\(i).dat")) }
                let to = newName(in: anyDirectory, "imported")
                changed.append(to)
                try fm.moveItem(atPath: made, toPath: at(to))
            default:  // a file replaced by a directory of the same name
                guard let file = random.pick(files) else { return }
                changed.append(file)
                try fm.removeItem(atPath: at(file))
                try fm.createDirectory(atPath: at(file), withIntermediateDirectories: false)
                try bytes().write(to: URL(fileURLWithPath: at(file) + "/inside.txt"))
            }
        }
    }
}
