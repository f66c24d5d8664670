import FerryCore
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import FerryTestSupport
import Testing

@testable import FerryServer

@Suite("Trash and restoring deleted folders", .eachBackend)
struct TrashAndRestoreTests {
    static func directory(_ path: String, base: Int64? = nil) throws -> CommitOperation {
        CommitOperation(op: .put, path: try FerryPath(path), base: base, kind: .directory, mtimeNs: 0, mode: 0o755)
    }

    static func restore(_ api: API, _ lib: String, _ path: String, version: Int64, token: String) async throws -> TestResponse {
        try await api.call(.post, "/libraries/\(lib)/restore", token: token, json: RestoreRequest(path: try FerryPath(path), version: version))
    }

    static func current(_ api: API, _ lib: String, token: String) async throws -> [String: FileVersion] {
        Dictionary(uniqueKeysWithValues: try await api.changes(lib, token: token).changes.map { ($0.path.string, $0) })
    }

    /// A folder removed the way a device removes one (its contents first, deepest first, then
    /// the folder), after one file in it was deleted on its own earlier.
    static func removedFolder(_ api: API, _ lib: String, token: String) async throws -> (folder: Int64, head: Int64) {
        let d = try await api.commit(lib, [try directory("d"), try directory("d/sub")], token: token).results[0].version!.version
        try await api.putFile(lib, "d/a.txt", Array("a".utf8), base: nil, token: token)
        try await api.putFile(lib, "d/sub/b.txt", Array("b".utf8), base: nil, token: token)
        let old = try await api.putFile(lib, "d/old.txt", Array("deleted long ago".utf8), base: nil, token: token).version!.version
        _ = try await api.commit(lib, [.delete(try FerryPath("d/old.txt"), base: old)], token: token)
        try await api.putFile(lib, "elsewhere.txt", Array("later work".utf8), base: nil, token: token)
        let now = try await current(api, lib, token: token)
        let removal = try ["d/sub/b.txt", "d/sub", "d/a.txt", "d"].map { CommitOperation.delete(try FerryPath($0), base: now[$0]!.version) }
        let removed = try await api.commit(lib, removal, token: token)
        #expect(removed.results.allSatisfy { $0.status == .ok })
        return (d, removed.head)
    }

    @Test func restoringADeletedFolderRestoresWhatWasInItWhenItWasDeleted() async throws {
        try await withLibrary { api, token, lib in
            let (folder, head) = try await Self.removedFolder(api, lib, token: token)
            let answer = try await Self.restore(api, lib, "d", version: folder, token: token)
            #expect(answer.status == .created, "\(String(buffer: answer.body))")
            let restored = try api.decode(VersionResponse.self, answer)
            #expect(restored.version.path.string == "d" && restored.version.kind == .directory && !restored.version.deleted)
            #expect(restored.restoredEntries == 3)

            let now = try await Self.current(api, lib, token: token)
            #expect(now["d"]?.deleted == false && now["d/sub"]?.deleted == false)
            #expect(now["d/a.txt"]?.deleted == false && now["d/sub/b.txt"]?.deleted == false)
            // Deleted on its own before the folder was: it stays in the trash.
            #expect(now["d/old.txt"]?.deleted == true)
            // One new version each, in one commit.
            #expect(try await api.changes(lib, token: token).head == head + 4)
            let content = try await api.call(.get, "/libraries/\(lib)/files?path=d/sub/b.txt", token: token)
            #expect(String(buffer: content.body) == "b")
        }
    }

    @Test func restoringAFolderLeavesWhatWasRecreatedAndIsAllOrNothing() async throws {
        try await withLibrary { api, token, lib in
            let (folder, _) = try await Self.removedFolder(api, lib, token: token)
            // Since the removal, d/a.txt came back with new content: it is kept as it is.
            try await api.putFile(lib, "d/a.txt", Array("new a".utf8), base: nil, token: token)
            // And d/sub is now a file, under which b.txt cannot come back: nothing is restored.
            try await api.putFile(lib, "d/sub", Array("a file now".utf8), base: nil, token: token)
            let before = try await api.changes(lib, token: token).head
            let refused = try await Self.restore(api, lib, "d", version: folder, token: token)
            #expect(refused.status.code == 409 || refused.status.code == 400, "\(refused.status)")
            #expect(String(buffer: refused.body).contains("d/sub"))
            #expect(try await api.changes(lib, token: token).head == before)

            let now = try await Self.current(api, lib, token: token)
            _ = try await api.commit(lib, [.delete(try FerryPath("d/sub"), base: now["d/sub"]!.version)], token: token)
            let answer = try await Self.restore(api, lib, "d", version: folder, token: token)
            #expect(answer.status == .created, "\(String(buffer: answer.body))")
            let after = try await Self.current(api, lib, token: token)
            #expect(after["d/sub/b.txt"]?.deleted == false)
            let a = try await api.call(.get, "/libraries/\(lib)/files?path=d/a.txt", token: token)
            #expect(String(buffer: a.body) == "new a")
        }
    }

    /// The walk back from a folder's delete reads the versions a page of 1,000 at a time on
    /// PostgreSQL (`PostgresCommitLedger.loadRemoval`): a removal longer than a page, over
    /// several commits, comes back whole.
    @Test func aRemovalLongerThanOnePageOfTheWalkIsRestoredWhole() async throws {
        try await withLibrary { api, token, lib in
            let folder = try await api.commit(lib, [try Self.directory("big")], token: token).results[0].version!.version
            let names = (0..<1_200).map { "big/d\($0)" }
            var made: [(String, Int64)] = []
            for start in stride(from: 0, to: names.count, by: 400) {
                let part = Array(names[start..<start + 400])
                let answer = try await api.commit(lib, try part.map { try Self.directory($0) }, token: token)
                made += zip(part, answer.results.map { $0.version!.version })
            }
            for start in stride(from: 0, to: made.count, by: 400) {
                let answer = try await api.commit(lib, try made[start..<start + 400].map { .delete(try FerryPath($0.0), base: $0.1) }, token: token)
                #expect(answer.results.allSatisfy { $0.status == .ok })
            }
            let removed = try await api.commit(lib, [.delete(try FerryPath("big"), base: folder)], token: token)
            let answer = try await Self.restore(api, lib, "big", version: folder, token: token)
            #expect(answer.status == .created, "\(String(buffer: answer.body))")
            #expect(try api.decode(VersionResponse.self, answer).restoredEntries == 1_200)
            #expect(try await api.changes(lib, token: token).head == removed.head + 1_201)
        }
    }

    static func trash(_ api: API, _ lib: String, _ query: String, token: String) async throws -> TrashResponse {
        let r = try await api.call(.get, "/libraries/\(lib)/trash\(query)", token: token)
        #expect(r.status == .ok, "\(String(buffer: r.body))")
        return try api.decode(TrashResponse.self, r)
    }

    @Test func theTrashListsDeletedEntriesWithTheVersionToRestorePaged() async throws {
        try await withDevice { api, user, device, lib in
            let (folder, _) = try await Self.removedFolder(api, lib, token: user)
            // A delete by a device says which.
            let kept = try await api.putFile(lib, "kept.txt", Array("12345".utf8), base: nil, token: device).version!
            _ = try await api.commit(lib, [.delete(try FerryPath("kept.txt"), base: kept.version)], token: device)

            let all = try await Self.trash(api, lib, "", token: user)
            #expect(all.entries.map(\.path.string) == ["d", "d/a.txt", "d/old.txt", "d/sub", "d/sub/b.txt", "kept.txt"])
            #expect(all.nextAfter == nil)
            let d = try #require(all.entries.first)
            #expect(d.kind == .directory && d.version == folder)
            let file = try #require(all.entries.last)
            #expect(file.version == kept.version && file.size == 5 && file.deletedVersion == kept.version + 1)
            let me = try api.decode(MeResponse.self, try await api.call(.get, "/auth/me", token: device))
            #expect(file.deletedBy == me.deviceId && file.deletedBy != nil)
            #expect(d.deletedBy == nil)

            // Within a folder (the folder itself included), in pages that never claim to be complete early.
            var paged: [String] = []
            var after: String?
            repeat {
                let page = try await Self.trash(api, lib, "?path=d&limit=2" + (after.map { "&after=\(q($0))" } ?? ""), token: user)
                #expect(page.entries.count <= 2)
                paged += page.entries.map(\.path.string)
                after = page.nextAfter
            } while after != nil
            #expect(paged == ["d", "d/a.txt", "d/old.txt", "d/sub", "d/sub/b.txt"])
            #expect(try await Self.trash(api, lib, "?path=d/sub", token: user).entries.map(\.path.string) == ["d/sub", "d/sub/b.txt"])

            // Restored entries leave the trash.
            #expect(try await Self.restore(api, lib, "d", version: folder, token: user).status == .created)
            #expect(try await Self.trash(api, lib, "?path=d", token: user).entries.map(\.path.string) == ["d/old.txt"])

            let bad = try await api.call(.get, "/libraries/\(lib)/trash?path=../x", token: user)
            #expect(bad.status == .badRequest)
            let badLimit = try await api.call(.get, "/libraries/\(lib)/trash?limit=0", token: user)
            #expect(badLimit.status == .badRequest)
        }
    }
}
