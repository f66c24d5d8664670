import FerryCore
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import FerryTestSupport
import Testing

@testable import FerryServer

@Suite("Commit, history and restore", .eachBackend)
struct CommitTests {
    @Test func createUpdateDeleteWithBaseVersions() async throws {
        try await withLibrary { api, token, lib in
            let v1 = try await api.putFile(lib, "notes/a.txt", Array("one".utf8), base: nil, token: token)
            #expect(v1.status == .ok)
            #expect(v1.version?.version == 1)
            #expect(v1.version?.sha256 == ContentHash.of(Array("one".utf8)))
            #expect(v1.version?.mtimeNs == 1_700_000_000_123_456_789)

            let v2 = try await api.putFile(lib, "notes/a.txt", Array("two".utf8), base: 1, token: token)
            #expect(v2.status == .ok)
            #expect(v2.version?.version == 2)

            // A stale base is a conflict, and nothing changes.
            let stale = try await api.putFile(lib, "notes/a.txt", Array("three".utf8), base: 1, token: token)
            #expect(stale.status == .conflict)
            #expect(stale.current?.version == 2)
            // Creating what already exists without a base is a conflict too.
            let blind = try await api.putFile(lib, "notes/a.txt", Array("four".utf8), base: nil, token: token)
            #expect(blind.status == .conflict)

            let del = try await api.commit(lib, [.delete(try FerryPath("notes/a.txt"), base: 2)], token: token)
            #expect(del.results[0].status == .ok)
            #expect(del.results[0].version?.deleted == true)
            #expect(del.head == 3)
            // Deleting again conflicts with the tombstone.
            let again = try await api.commit(lib, [.delete(try FerryPath("notes/a.txt"), base: 2)], token: token)
            #expect(again.results[0].status == .conflict)
            #expect(again.results[0].current?.deleted == true)
            // After a delete the path can be created anew.
            let recreated = try await api.putFile(lib, "notes/a.txt", Array("five".utf8), base: nil, token: token)
            #expect(recreated.version?.version == 4)

            let history = try api.decode(HistoryResponse.self, try await api.call(.get, "/libraries/\(lib)/history?path=notes/a.txt", token: token))
            #expect(history.versions.map(\.version) == [4, 3, 2, 1])
            #expect(history.versions.map(\.deleted) == [false, true, false, false])
            let page = try api.decode(HistoryResponse.self, try await api.call(.get, "/libraries/\(lib)/history?path=notes/a.txt&limit=2", token: token))
            #expect(page.versions.map(\.version) == [4, 3])
            #expect(page.nextBefore == 3)
            let rest = try api.decode(HistoryResponse.self, try await api.call(.get, "/libraries/\(lib)/history?path=notes/a.txt&limit=2&before=3", token: token))
            #expect(rest.versions.map(\.version) == [2, 1])
            #expect(rest.nextBefore == nil)
        }
    }

    @Test func restoreMakesAnOldVersionCurrentAsANewVersion() async throws {
        try await withLibrary { api, token, lib in
            try await api.putFile(lib, "a.txt", Array("original".utf8), base: nil, token: token)
            try await api.putFile(lib, "a.txt", Array("edited".utf8), base: 1, token: token)
            _ = try await api.commit(lib, [.delete(try FerryPath("a.txt"), base: 2)], token: token)

            let restored = try await api.call(.post, "/libraries/\(lib)/restore", token: token, json: RestoreRequest(path: try FerryPath("a.txt"), version: 1))
            #expect(restored.status == .created)
            let v = try api.decode(VersionResponse.self, restored).version
            #expect(v.version == 4)
            #expect(v.sha256 == ContentHash.of(Array("original".utf8)))
            let content = try await api.call(.get, "/libraries/\(lib)/files?path=a.txt", token: token)
            #expect(String(buffer: content.body) == "original")

            let stale = try await api.call(.post, "/libraries/\(lib)/restore", token: token, json: RestoreRequest(path: try FerryPath("a.txt"), version: 2, base: 1))
            #expect(stale.status == .conflict)
            let tombstone = try await api.call(.post, "/libraries/\(lib)/restore", token: token, json: RestoreRequest(path: try FerryPath("a.txt"), version: 3))
            #expect(tombstone.status == .badRequest)
            let unknown = try await api.call(.post, "/libraries/\(lib)/restore", token: token, json: RestoreRequest(path: try FerryPath("a.txt"), version: 99))
            #expect(unknown.status == .notFound)
            let otherPath = try await api.call(.post, "/libraries/\(lib)/restore", token: token, json: RestoreRequest(path: try FerryPath("b.txt"), version: 1))
            #expect(otherPath.status == .notFound)
        }
    }

    @Test func missingChunksAreNamedAndNothingIsCommitted() async throws {
        try await withLibrary { api, token, lib in
            let data = Array("never uploaded".utf8)
            var chunker = ContentChunker()
            chunker.update(data)
            let manifest = chunker.finish()
            let missing = try await api.call(.post, "/chunks/missing", token: token, json: MissingChunksRequest(chunks: manifest.chunks.map(\.sha256)))
            #expect(try api.decode(MissingChunksResponse.self, missing).missing == manifest.chunks.map(\.sha256))
            let result = try await api.commit(lib, [.putFile(try FerryPath("x"), base: nil, manifest: manifest, mtimeNs: 0, mode: 0o644)], token: token)
            #expect(result.results[0].status == .missingChunks)
            #expect(result.results[0].missing == manifest.chunks.map(\.sha256))
            #expect(result.head == 0)
        }
    }

    @Test func retryOfACommitWhoseAnswerWasLostIsIdempotentForTheSameDevice() async throws {
        try await withDevice { api, user, device, lib in
            let manifest = try await api.uploadContent(Array("same".utf8), token: device)
            let op = CommitOperation.putFile(try FerryPath("a"), base: nil, manifest: manifest, mtimeNs: 5, mode: 0o644)
            let first = try await api.commit(lib, [op], token: device)
            let retry = try await api.commit(lib, [op], token: device)
            #expect(first.results[0].status == .ok)
            #expect(retry.results[0].status == .ok)
            #expect(retry.results[0].version == first.results[0].version)
            #expect(retry.head == 1)
            // The same content from another committer is still a conflict: it never saw version 1.
            let other = try await api.commit(lib, [op], token: user)
            #expect(other.results[0].status == .conflict)
        }
    }

    /// A brief answer gives only the sequence number of each put applied as sent, and the
    /// versions rebuilt from it are the ones the server stored; everything else (a delete, a
    /// put whose mode the server chose, a retry answered with the earlier version) comes whole.
    @Test func briefAnswersRebuildToTheStoredVersions() async throws {
        try await withDevice { api, _, device, lib in
            let manifest = try await api.uploadContent(Array("content".utf8), token: device)
            let retried = CommitOperation.putFile(try FerryPath("old"), base: nil, manifest: manifest, mtimeNs: 3, mode: 0o600)
            _ = try await api.commit(lib, [retried], token: device)
            let ops = [
                CommitOperation(op: .put, path: try FerryPath("d"), base: nil, kind: .directory, mtimeNs: 1, mode: 0o755),
                .putFile(try FerryPath("d/a"), base: nil, manifest: manifest, mtimeNs: 2, mode: 0o644),
                CommitOperation(op: .put, path: try FerryPath("l"), base: nil, kind: .symlink, mtimeNs: 4, mode: 0o777, target: "d/a"),
                CommitOperation(op: .put, path: try FerryPath("e"), base: nil, kind: .file, size: 0, sha256: .empty, mtimeNs: 5, mode: 0o640, chunks: []),
                CommitOperation(op: .put, path: try FerryPath("m"), base: nil, kind: .directory, mtimeNs: 6),
                retried,
                .delete(try FerryPath("d/a"), base: 3),
                .putFile(try FerryPath("c"), base: 99, manifest: manifest, mtimeNs: 2, mode: 0o644),
            ]
            let brief = try await api.commit(lib, ops, token: device, brief: true)
            #expect(brief.results.map(\.status) == [.ok, .ok, .ok, .ok, .ok, .ok, .ok, .conflict])
            #expect(brief.results.map { $0.seq != nil } == [true, true, true, true, false, false, false, false])
            #expect(brief.results.map { $0.version != nil } == [false, false, false, false, true, true, true, false])
            #expect(brief.results[5].version?.version == 1)
            #expect(brief.committedAt != nil)
            let versions = brief.versions(of: ops)
            for (op, version) in zip(ops, versions).prefix(7) {
                let stored = try await api.history(lib, op.path.string, token: device).versions.first { $0.version == version?.version }
                #expect(stored != nil && stored == version, "\(op.path)")
            }
            #expect(versions[7] == nil)
            // Without asking, answers stay whole.
            let whole = try await api.commit(lib, [.putFile(try FerryPath("w"), base: nil, manifest: manifest, mtimeNs: 2, mode: 0o644)], token: device)
            #expect(whole.results[0].version != nil && whole.results[0].seq == nil && whole.committedAt == nil)
        }
    }

    /// A batch remembers which parents it found to be directories; a later operation of the
    /// same batch that turns one into a file must be seen by the operations after it.
    @Test func aParentThatBecomesAFileWithinOneBatchBlocksWhatFollows() async throws {
        try await withLibrary { api, token, lib in
            let manifest = try await api.uploadContent(Array("x".utf8), token: token)
            let dir = CommitOperation(op: .put, path: try FerryPath("d"), base: nil, kind: .directory, mtimeNs: 1)
            let inside = CommitOperation.putFile(try FerryPath("d/a"), base: nil, manifest: manifest, mtimeNs: 1, mode: 0o644)
            let r = try await api.commit(lib, [
                dir, inside,
                .delete(try FerryPath("d/a"), base: 2), .delete(try FerryPath("d"), base: 1),
                .putFile(try FerryPath("d"), base: 4, manifest: manifest, mtimeNs: 1, mode: 0o644),
                .putFile(try FerryPath("d/b"), base: nil, manifest: manifest, mtimeNs: 1, mode: 0o644),
            ], token: token)
            #expect(r.results.map(\.status) == [.ok, .ok, .ok, .ok, .ok, .rejected])
            #expect(r.results[5].error?.code == "path_conflict")
            // And back: the file deleted and a directory made again, in a later batch.
            let again = try await api.commit(lib, [
                .delete(try FerryPath("d"), base: 5), dir,
                .putFile(try FerryPath("d/b"), base: nil, manifest: manifest, mtimeNs: 1, mode: 0o644),
            ], token: token)
            #expect(again.results.map(\.status) == [.ok, .ok, .ok])
        }
    }

    @Test func treeShapeRules() async throws {
        try await withLibrary { api, token, lib in
            let dir = CommitOperation(op: .put, path: try FerryPath("d"), base: nil, kind: .directory, mtimeNs: 1)
            let link = CommitOperation(op: .put, path: try FerryPath("d/link"), base: nil, kind: .symlink, mtimeNs: 1, target: "../elsewhere")
            let r = try await api.commit(lib, [dir, link], token: token)
            #expect(r.results.map(\.status) == [.ok, .ok])
            #expect(r.results[1].version?.target == "../elsewhere")
            #expect(r.results[0].version?.mode == 0o755)

            // A file cannot be created under a symlink or a file.
            let underLink = try await api.putFile(lib, "d/link/x", Array("x".utf8), base: nil, token: token)
            #expect(underLink.status == .rejected)
            #expect(underLink.error?.code == "path_conflict")
            // A directory with entries cannot be deleted or replaced by a file.
            let rmdir = try await api.commit(lib, [.delete(try FerryPath("d"), base: 1)], token: token)
            #expect(rmdir.results[0].status == .rejected)
            let replace = try await api.putFile(lib, "d", Array("x".utf8), base: 1, token: token)
            #expect(replace.status == .rejected)
            // Children first, then the directory: one batch, in order.
            let both = try await api.commit(lib, [.delete(try FerryPath("d/link"), base: 2), .delete(try FerryPath("d"), base: 1)], token: token)
            #expect(both.results.map(\.status) == [.ok, .ok])
            // "d0" sorts right after "d/": not a child, so it does not block anything.
            try await api.putFile(lib, "d0", Array("neighbour".utf8), base: nil, token: token)
        }
    }

    @Test(arguments: [
        (#"{"op":"put","path":"a","base":null}"#, "kind"),
        (#"{"op":"put","path":"a","base":null,"kind":"file","sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","chunks":[]}"#, "size"),
        (#"{"op":"put","path":"a","base":null,"kind":"file","size":5,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","chunks":[]}"#, "chunks"),
        (#"{"op":"put","path":"a","base":null,"kind":"file","size":0,"sha256":"0000000000000000000000000000000000000000000000000000000000000000","chunks":[]}"#, "empty"),
        (#"{"op":"put","path":"a","base":null,"kind":"file","size":3,"sha256":"0000000000000000000000000000000000000000000000000000000000000000","chunks":[{"sha256":"1111111111111111111111111111111111111111111111111111111111111111","size":3}]}"#, "one-chunk"),
        (#"{"op":"put","path":"a","base":null,"kind":"file","size":9999999,"sha256":"0000000000000000000000000000000000000000000000000000000000000000","chunks":[{"sha256":"1111111111111111111111111111111111111111111111111111111111111111","size":9999999}]}"#, "chunk sizes"),
        (#"{"op":"put","path":"a","base":null,"kind":"symlink"}"#, "target"),
        (#"{"op":"put","path":"a","base":null,"kind":"directory","size":4}"#, "directory"),
        (#"{"op":"put","path":"a","base":null,"kind":"directory","mode":99999}"#, "mode"),
        (#"{"op":"delete","path":"a","base":0}"#, "base"),
    ])
    func malformedOperationsAreRejectedOneByOne(op: String, mentions: String) async throws {
        try await withLibrary { api, token, lib in
            let body = #"{"operations":[\#(op),{"op":"put","path":"ok","base":null,"kind":"directory"}]}"#
            let r = try await api.call(.post, "/libraries/\(lib)/commit", token: token, body: ByteBuffer(string: body))
            #expect(r.status == .ok)
            let response = try api.decode(CommitResponse.self, r)
            #expect(response.results[0].status == .rejected)
            #expect(response.results[0].error?.message.contains(mentions) == true, "\(String(describing: response.results[0].error))")
            // The rest of the batch still applies.
            #expect(response.results[1].status == .ok)
        }
    }

    @Test func malformedBatchesAreRefusedWhole() async throws {
        try await withLibrary { api, token, lib in
            let badPath = try await api.call(.post, "/libraries/\(lib)/commit", token: token, body: ByteBuffer(string: #"{"operations":[{"op":"delete","path":"../etc","base":null}]}"#))
            #expect(badPath.status == .badRequest)
            #expect(try api.decode(ErrorEnvelope.self, badPath).error.message.contains("'..'"))
            let empty = try await api.call(.post, "/libraries/\(lib)/commit", token: token, json: CommitRequest(operations: []))
            #expect(empty.status == .badRequest)
            let tooMany = CommitRequest(operations: (0...ServerLimits.current.commitOperations).map { .delete(try! FerryPath("f\($0)"), base: nil) })
            #expect(try await api.call(.post, "/libraries/\(lib)/commit", token: token, json: tooMany).status == .badRequest)
            let badOp = try await api.call(.post, "/libraries/\(lib)/commit", token: token, body: ByteBuffer(string: #"{"operations":[{"op":"rename","path":"a"}]}"#))
            #expect(badOp.status == .badRequest)
            let unknownLib = try await api.call(.post, "/libraries/nope/commit", token: token, json: CommitRequest(operations: [.delete(try FerryPath("a"), base: nil)]))
            #expect(unknownLib.status == .notFound)
            #expect(try await api.changes(lib, token: token).head == 0)
        }
    }

    @Test func librariesAreNamedOncePerUser() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run { api in
            let token = try await api.newUser("alice")
            _ = try await api.createLibrary("docs", token: token)
            let dup = try await api.call(.post, "/libraries", token: token, json: CreateLibraryRequest(name: "docs"))
            #expect(dup.status == .conflict)
            for bad in ["", "a/b", "..", String(repeating: "x", count: 256)] {
                #expect(try await api.call(.post, "/libraries", token: token, json: CreateLibraryRequest(name: bad)).status == .badRequest)
            }
            let list = try api.decode(LibraryListResponse.self, try await api.call(.get, "/libraries", token: token))
            #expect(list.libraries.map(\.name) == ["docs"])
        }
    }
}
