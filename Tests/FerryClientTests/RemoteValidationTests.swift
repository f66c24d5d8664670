@testable import FerryClient
import FerryCore
import Foundation
import Testing

/// What the client takes from a server is checked before it touches the disk: a version
/// that breaks the protocol's rules is a problem of its path, never a crash, and Ferry's own
/// names and what the local `.ferryignore` ignores are never received (issue 20, item 12).
@Suite("Remote versions are checked", .serialized)
struct RemoteValidationTests {
    /// A version the server should never send, in the mirror as the change feed would put it.
    static func hostile(_ path: String, kind: EntryKind = .file, size: Int64, sha256: ContentHash? = .empty, chunks: [ChunkRef] = [],
                        target: String? = nil, version: Int64) throws -> FileVersion {
        FileVersion(version: version, path: try FerryPath(path), kind: kind, deleted: false, size: size, sha256: sha256, mtimeNs: 0, mode: 0o644,
                    chunks: chunks, target: target, deviceId: "evil", committedAt: Date())
    }

    @Test func validVersionsPassAndFerrysOwnNamesAreKnown() throws {
        let hash = ContentHash.of(Array("abc".utf8))
        #expect(RemoteCheck.problem(with: try Self.hostile("f", size: 3, sha256: hash, chunks: [ChunkRef(sha256: hash, size: 3)], version: 1)) == nil)
        #expect(RemoteCheck.problem(with: try Self.hostile("empty", size: 0, version: 1)) == nil)
        #expect(RemoteCheck.problem(with: try Self.hostile("d", kind: .directory, size: 0, sha256: nil, version: 1)) == nil)
        #expect(RemoteCheck.problem(with: try Self.hostile("l", kind: .symlink, size: 0, sha256: nil, target: "../x", version: 1)) == nil)
        var tombstone = try Self.hostile("gone", size: -1, sha256: nil, version: 1)
        tombstone.deleted = true
        #expect(RemoteCheck.problem(with: tombstone) == nil)
        for own in [".ferry", ".ferry/state", "a/.ferry-partial-x", ".ferry-partial-1/b"] { #expect(RemoteCheck.isFerrysOwn(own), "\(own)") }
        for other in [".ferryignore", "a/.ferry", "a/.ferry/x", "ferry-partial-x", "a/b.ferry-partial-"] { #expect(!RemoteCheck.isFerrysOwn(other), "\(other)") }
    }

    @Test func invalidVersionsFromTheServerAreProblemsOfTheirPathNotCrashes() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("qin")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            try a.write("good.txt", "fine")
            try await a.sync()
            let hash = ContentHash.of(Array("x".utf8))
            var update = IndexUpdate()
            update.remote = [
                try Self.hostile("negative-chunk.bin", size: 5, sha256: hash, chunks: [ChunkRef(sha256: hash, size: -5)], version: 1000),
                try Self.hostile("zero-chunk.bin", size: 0, sha256: hash, chunks: [ChunkRef(sha256: hash, size: 0)], version: 1001),
                try Self.hostile("huge-chunk.bin", size: Int64(FerryProtocol.maxChunkSize) + 1, sha256: hash,
                                 chunks: [ChunkRef(sha256: hash, size: Int64(FerryProtocol.maxChunkSize) + 1)], version: 1002),
                try Self.hostile("sum.bin", size: 10, sha256: hash, chunks: [ChunkRef(sha256: hash, size: 4)], version: 1003),
                try Self.hostile("negative-size.bin", size: -1, version: 1004),
                try Self.hostile("no-hash.bin", size: 1, sha256: nil, chunks: [ChunkRef(sha256: hash, size: 1)], version: 1005),
                try Self.hostile("nul-link", kind: .symlink, size: 0, sha256: nil, target: "a\u{0}b", version: 1006),
                try Self.hostile("no-target", kind: .symlink, size: 0, sha256: nil, target: nil, version: 1007),
            ]
            try b.index.apply(folder: b.root, update)
            let report = try await b.sync()
            for v in update.remote {
                #expect(report.problems[v.path.string] != nil, "\(v.path) was not reported: \(report.problems)")
                #expect(!b.exists(v.path.string))
            }
            #expect(b.read("good.txt") == "fine")
        }
    }

    @Test func ferrysOwnNamesFromTheServerAreNeverDownloadedOrDeleted() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("rai")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await b.close() } }
            try b.write(".ferry/own-state", "kept")
            try b.write("sub/.ferry-partial-resume", "half a download")
            var update = IndexUpdate()
            update.remote = [
                try Self.hostile(".ferry", kind: .symlink, size: 0, sha256: nil, target: "/", version: 2000),
                try Self.hostile(".ferry/evil", size: 0, version: 2001),
                try Self.hostile("sub/.ferry-partial-resume", size: 0, version: 2002),
                try Self.hostile("x/.ferry-partial-dir", kind: .directory, size: 0, sha256: nil, version: 2003),
            ]
            try b.index.apply(folder: b.root, update)
            try await b.sync()
            #expect(b.read(".ferry/own-state") == "kept")
            #expect(!b.exists(".ferry/evil"))
            #expect(LocalScanner.stat(root: b.root, path: ".ferry")?.kind == .directory)
            #expect(b.read("sub/.ferry-partial-resume") == "half a download")
            #expect(!b.exists("x/.ferry-partial-dir"))
            // And their deletes do not reach those paths either.
            var deletes = IndexUpdate()
            deletes.remote = update.remote.map { v in
                var gone = v
                gone.deleted = true
                gone.version += 100
                return gone
            }
            try b.index.apply(folder: b.root, deletes)
            try await b.sync()
            #expect(b.read(".ferry/own-state") == "kept")
            #expect(b.read("sub/.ferry-partial-resume") == "half a download")
        }
    }

    @Test func pathsTheLocalIgnoreFileIgnoresAreNeitherReceivedNorDeleted() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("sol")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            try a.write("keep.log", "synced before it was ignored")
            try await a.sync()
            try await b.sync()
            #expect(b.read("keep.log") == "synced before it was ignored")

            // B starts ignoring *.log: its copy stays, and the server's too.
            try b.write(".ferryignore", "*.log\nbuild/\n")
            try await b.sync()
            #expect(b.read("keep.log") == "synced before it was ignored")
            #expect(try await a.api.history(library: a.sync.folder.libraryId, path: try FerryPath("keep.log")).versions.first?.deleted == false)

            // New ignored files elsewhere are not received; deletes of ignored ones do not apply.
            try await a.sync()
            try a.write("new.log", "not for b")
            try a.write("build/out.o", "not for b either")
            try a.remove("keep.log")
            try await a.sync()
            try await b.sync()
            #expect(!b.exists("new.log"))
            #expect(!b.exists("build"))
            #expect(b.read("keep.log") == "synced before it was ignored")
        }
    }
}
