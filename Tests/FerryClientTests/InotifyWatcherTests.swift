@testable import FerryClient
import Foundation
import Testing

@Suite("inotify watcher")
struct InotifyWatcherTests {
    /// Collects events until `done` holds for everything seen so far, or 5 s pass.
    static func collect(_ watcher: InotifyWatcher, until done: @escaping @Sendable ([WatchEvent]) -> Bool) async -> [WatchEvent] {
        await withTaskGroup(of: [WatchEvent]?.self) { group in
            group.addTask {
                var seen: [WatchEvent] = []
                for await batch in watcher.events {
                    seen += batch
                    if done(seen) { return seen }
                }
                return seen
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(5))
                return nil
            }
            var result: [WatchEvent] = []
            while let next = await group.next() {
                if let events = next { result = events }
                group.cancelAll()
                break
            }
            return result
        }
    }

    static func folder() -> String { scratchDirectory("watch") }

    @Test func aWrittenFileIsReported() async throws {
        let root = Self.folder()
        let watcher = try InotifyWatcher(root: root)
        defer { watcher.stop() }
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/a.txt"))
        let events = await Self.collect(watcher) { $0.contains(.changed("a.txt")) }
        #expect(events.contains(.changed("a.txt")))
    }

    @Test func aFileCreatedRightAfterItsDirectoryIsNotMissed() async throws {
        let root = Self.folder()
        let watcher = try InotifyWatcher(root: root)
        defer { watcher.stop() }
        try FileManager.default.createDirectory(atPath: root + "/d/e", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/d/e/x.txt"))
        let events = await Self.collect(watcher) { $0.contains(.changed("d/e/x.txt")) }
        #expect(events.contains(.directoryCreated("d")))
        #expect(events.contains(.changed("d/e/x.txt")))
        #expect(watcher.watchedDirectoryCount == 3)
    }

    @Test func renamesArePairedAndDirectoryRenamesUpdatePaths() async throws {
        let root = Self.folder()
        try FileManager.default.createDirectory(atPath: root + "/old", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/f.txt"))
        let watcher = try InotifyWatcher(root: root)
        defer { watcher.stop() }
        try FileManager.default.moveItem(atPath: root + "/f.txt", toPath: root + "/g.txt")
        try FileManager.default.moveItem(atPath: root + "/old", toPath: root + "/new")
        let renamed = await Self.collect(watcher) { $0.contains(.renamed(from: "old", to: "new", isDirectory: true)) }
        #expect(renamed.contains(.renamed(from: "f.txt", to: "g.txt", isDirectory: false)))
        try Data("y".utf8).write(to: URL(fileURLWithPath: root + "/new/inside.txt"))
        let inside = await Self.collect(watcher) { $0.contains(.changed("new/inside.txt")) }
        #expect(inside.contains(.changed("new/inside.txt")))
    }

    /// A new directory renamed on before the watcher read its creation: the watch is added
    /// where the rename took it, so what changes inside later is still reported.
    @Test func aDirectoryMovedOnBeforeItIsWatchedIsWatchedWhereItWent() async throws {
        let root = Self.folder()
        let watcher = try InotifyWatcher(root: root)
        defer { watcher.stop() }
        // Made faster than the watcher reads: most renames come before their creation is read.
        for i in 0..<100 {
            try FileManager.default.createDirectory(atPath: root + "/p\(i)/new/deep", withIntermediateDirectories: true)
            try FileManager.default.moveItem(atPath: root + "/p\(i)", toPath: root + "/q\(i)")
        }
        for i in 0..<100 { try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/q\(i)/new/deep/f.txt")) }
        var missing = Set((0..<100).map { "q\($0)/new/deep/f.txt" })
        var seen: [WatchEvent] = []
        let hangGuard = Task {
            try await Task.sleep(for: .seconds(120))
            watcher.stop()  // ends the stream below
        }
        defer { hangGuard.cancel() }
        for await batch in watcher.events {
            seen += batch
            for case .changed(let path) in batch { missing.remove(path) }
            if missing.isEmpty { break }
        }
        #expect(missing.isEmpty, "\(missing.count) missed; seen \(seen.filter { if case .changed = $0 { false } else { true } })")
        #expect(watcher.watchedDirectoryCount == 301)
    }

    @Test func movesOutOfAndIntoTheRoot() async throws {
        let root = Self.folder(), outside = Self.folder()
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/leaving.txt"))
        try FileManager.default.createDirectory(atPath: outside + "/incoming", withIntermediateDirectories: true)
        try Data("y".utf8).write(to: URL(fileURLWithPath: outside + "/incoming/file.txt"))
        let watcher = try InotifyWatcher(root: root)
        defer { watcher.stop() }
        try FileManager.default.moveItem(atPath: root + "/leaving.txt", toPath: outside + "/left.txt")
        try FileManager.default.moveItem(atPath: outside + "/incoming", toPath: root + "/incoming")
        let events = await Self.collect(watcher) { $0.contains(.removed("leaving.txt")) && $0.contains(.changed("incoming/file.txt")) }
        #expect(events.contains(.removed("leaving.txt")))
        #expect(events.contains(.directoryCreated("incoming")))
        #expect(events.contains(.changed("incoming/file.txt")))
    }

    @Test func deletionsAndIgnoredDirectories() async throws {
        let root = Self.folder()
        try FileManager.default.createDirectory(atPath: root + "/build", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/gone.txt"))
        let watcher = try InotifyWatcher(root: root) { path, _ in path == "build" || path.hasPrefix("build/") }
        defer { watcher.stop() }
        #expect(watcher.watchedDirectoryCount == 1)
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/build/out.o"))
        try FileManager.default.removeItem(atPath: root + "/gone.txt")
        let events = await Self.collect(watcher) { $0.contains(.removed("gone.txt")) }
        #expect(events.contains(.removed("gone.txt")))
        #expect(!events.contains { if case .changed(let p) = $0 { p.hasPrefix("build") } else { false } })
    }

    @Test func losingTheRootIsReportedAndStopEndsTheStream() async throws {
        let root = Self.folder()
        let watcher = try InotifyWatcher(root: root)
        try FileManager.default.moveItem(atPath: root, toPath: scratchDirectory("watch-away") + "/root")
        let events = await Self.collect(watcher) { $0.contains(.rootGone) }
        #expect(events.contains(.rootGone))
        watcher.stop()
        let finished = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await _ in watcher.events {}
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(5))
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        #expect(finished, "the event stream must finish after stop()")
    }
}
