@testable import FerryClient
import FerryCore
import Foundation
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What another device of the same user, or a compromised server, can put in a library must
/// never reach outside the synced folder, crash the client or land with powers it should not
/// have (issue 20, items 1 and 6).
@Suite("Hostile remote state", .serialized)
struct HostileRemoteTests {
    /// A directory outside every synced folder, and what is in it.
    static func outsideDirectory() -> String { scratchDirectory("outside") }

    static func contents(of directory: String) -> [String] {
        ((try? FileManager.default.subpathsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    /// The process umask, read without changing it.
    static var umaskBits: Int32 {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("Umask:") }
        return line.flatMap { Int32($0.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8) } ?? 0o022
    }

    /// Commits `content` at each of `paths` (and `deletes`) from `device` the way a script or
    /// a hostile client can: no directory above them is needed.
    static func commit(_ content: String, at paths: [String], deleting deletes: [FileVersion] = [], from device: Device) async throws {
        let bytes = Array(content.utf8)
        let hash = ContentHash.of(bytes)
        try await device.api.putChunk(hash, ByteBuffer(bytes: bytes))
        let manifest = ContentManifest(size: Int64(bytes.count), sha256: hash, chunks: [ChunkRef(sha256: hash, size: Int64(bytes.count))])
        let puts = try paths.map { CommitOperation.putFile(try FerryPath($0), base: nil, manifest: manifest, mtimeNs: 0, mode: 0o644) }
        let answer = try await device.api.commit(library: device.sync.folder.libraryId, deletes.map { .delete($0.path, base: $0.version) } + puts)
        #expect(answer.results.allSatisfy { $0.status == .ok })
    }

    @Test func aLinkReplacedByADirectoryNeverLeadsADownloadOutsideTheFolder() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("mal")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            let outside = Self.outsideDirectory()
            try FileManager.default.createSymbolicLink(atPath: a.root + "/s", withDestinationPath: outside)
            try await a.sync()
            try await b.sync()
            #expect(b.tree()["s"] == "link:" + outside)

            // The link becomes a real directory with a file in it.
            try a.remove("s")
            try a.write("s/x.txt", "inside")
            try a.write("s/deep/y.txt", "deeper")
            try await a.sync()
            try await b.sync()
            #expect(Self.contents(of: outside).isEmpty)
            #expect(b.tree()["s"] == "dir")
            #expect(b.read("s/x.txt") == "inside")
            #expect(b.read("s/deep/y.txt") == "deeper")
            #expect(b.tree() == a.tree())
        }
    }

    @Test func aDeletedLinkWithAFileCommittedBeneathItIsDeletedBeforeTheDownload() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("mel")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            let outside = Self.outsideDirectory()
            try FileManager.default.createSymbolicLink(atPath: a.root + "/s", withDestinationPath: outside)
            try await a.sync()
            try await b.sync()
            let link = try #require(try await a.api.changes(library: a.sync.folder.libraryId, since: 0).changes.first { $0.path.string == "s" })

            // What a hostile client commits: the link's delete and a file beneath it, with no
            // directory in between (the server does not require one).
            try await Self.commit("planted", at: ["s/x.txt", "s/tree/z.txt"], deleting: [link], from: a)
            try await b.sync()
            #expect(Self.contents(of: outside).isEmpty)
            #expect(b.tree()["s"] == "dir")
            #expect(b.read("s/x.txt") == "planted")
            #expect(b.read("s/tree/z.txt") == "planted")
        }
    }

    @Test func aLocalLinkInTheWayHoldsTheDownloadAsAProblemUntilItIsGone() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("nia")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            let outside = Self.outsideDirectory()
            // A file committed with no directory above it (a script's upload can do that)…
            try await Self.commit("from a", at: ["t/x.txt"], from: a)
            // …while B has a link of its own where that directory would go.
            try FileManager.default.createSymbolicLink(atPath: b.root + "/t", withDestinationPath: outside)
            let report = try await b.sync()
            #expect(Self.contents(of: outside).isEmpty)
            #expect(report.problems["t/x.txt"]?.contains("not a directory") == true, "\(report.problems)")
            // The person removes the link: the next sync brings the file in a real directory.
            try b.remove("t")
            try await b.sync()
            #expect(b.read("t/x.txt") == "from a")
            #expect(LocalScanner.stat(root: b.root, path: "t")?.kind == .directory)
            #expect(Self.contents(of: outside).isEmpty)
        }
    }

    @Test func kindChangesArriveWithTheirDescendantsInTheRightOrder() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("ode")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            try a.write("k/f.txt", "in a directory")
            try a.write("m", "a file")
            try await a.sync()
            try await b.sync()

            // A directory becomes a file, and a file becomes a directory.
            try a.remove("k")
            try a.write("k", "now a file")
            try a.remove("m")
            try a.write("m/g.txt", "now in a directory")
            try await a.sync()
            try await b.sync()
            #expect(b.read("k") == "now a file")
            #expect(b.read("m/g.txt") == "now in a directory")
            #expect(b.tree() == a.tree())
        }
    }

    @Test func noStepOfMaterializingOrRemovingFollowsALinkedAncestor() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("oto")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await b.close() } }
            let outside = Self.outsideDirectory()
            try FileManager.default.createDirectory(atPath: outside + "/sub", withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: b.root + "/l", withDestinationPath: outside)
            let sources = LocalChunkSources(root: b.root, entries: [:])
            func version(_ path: String, _ kind: EntryKind) throws -> FileVersion {
                FileVersion(version: 1, path: try FerryPath(path), kind: kind, deleted: false, size: 0, sha256: kind == .file ? .empty : nil,
                            mtimeNs: 0, mode: 0o644, chunks: [], target: kind == .symlink ? "x" : nil, deviceId: nil, committedAt: Date())
            }
            for v in [try version("l/a.txt", .file), try version("l/new/b.txt", .file), try version("l/d", .directory), try version("l/k", .symlink)] {
                var report = PassReport(), update = IndexUpdate()
                await #expect(throws: (any Error).self, "\(v.path)") {
                    _ = try await b.sync.downloads.materialize(v, expected: nil, sources: sources, report: &report, update: &update)
                }
            }
            // The linked directory's empty `sub` looks like the synced directory `l/sub`: it is
            // not in the folder, so there is nothing to remove, and it stays where it is.
            let synced = IndexEntry(path: "l/sub", kind: .directory, size: 0, mtimeNs: 0, inode: 0, ctimeNs: 0, mode: 0o755, sha256: nil,
                                    chunks: [], target: nil, version: 1)
            _ = b.sync.downloads.removeLocal(synced)
            #expect(Self.contents(of: outside) == ["sub"])
            #expect(LocalScanner.stat(root: b.root, path: "l/sub") == nil)
        }
    }

    @Test func modesFromTheServerLoseSpecialBitsAndHonourTheUmask() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("pia")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await b.close() } }
            let sources = LocalChunkSources(root: b.root, entries: [:])
            let cases: [(String, EntryKind, Int32)] = [("setuid", .file, 0o4755), ("setgid", .file, 0o2777), ("sticky", .directory, 0o1777),
                                                      ("setgid-dir", .directory, 0o2777)]
            for (name, kind, mode) in cases {
                let v = FileVersion(version: 1, path: try FerryPath(name), kind: kind, deleted: false, size: 0,
                                    sha256: kind == .file ? .empty : nil, mtimeNs: 0, mode: mode, chunks: [], target: nil, deviceId: nil,
                                    committedAt: Date())
                var report = PassReport(), update = IndexUpdate()
                #expect(try await b.sync.downloads.materialize(v, expected: nil, sources: sources, report: &report, update: &update))
                // The bits on disk, all twelve (the scanner reports only the nine it syncs).
                let attributes = try FileManager.default.attributesOfItem(atPath: b.root + "/" + name)
                let placed = Int32(try #require(attributes[.posixPermissions] as? Int))
                #expect(placed == mode & 0o777 & ~Self.umaskBits, "\(name): \(String(placed, radix: 8))")
            }
        }
    }
}
