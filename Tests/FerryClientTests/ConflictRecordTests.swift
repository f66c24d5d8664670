@testable import FerryClient
import FerryCore
import FerryServer
import Foundation
import FerryTestSupport
import Testing

/// Conflicts as server records (issue 8 §6): recorded when the copy is uploaded, listed,
/// and settled with each `keep`, the side given up staying in history.
@Suite("conflict records", .eachBackend)
struct ConflictRecordTests {
    /// Two devices edit `plan.txt` at once; beta loses the race and uploads its copy.
    func makeConflict(_ cloud: Cloud, user: (name: String, password: String)) async throws -> (Device, Device, ConflictInfo) {
        let a = try await Device.make(cloud, user: user, name: "alpha")
        let b = try await Device.make(cloud, user: user, name: "beta")
        try a.write("plan.txt", "v1")
        try await a.sync()
        try await b.sync()
        try a.write("plan.txt", "alpha's edit")
        try b.write("plan.txt", "beta's edit")
        try await a.sync()
        try await b.sync()
        try await a.sync()
        let open = try await b.api.conflicts(library: b.sync.folder.libraryId)
        try #require(open.count == 1)
        return (a, b, open[0])
    }

    @Test func uploadingAConflictCopyRecordsTheConflict() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("rec")
            let (a, b, conflict) = try await makeConflict(cloud, user: user)
            defer { Task { await a.close(); await b.close() } }
            #expect(conflict.path.string == "plan.txt")
            #expect(ConflictName.isConflictCopy(conflict.mine.path.string))
            #expect(b.read(conflict.mine.path.string) == "beta's edit")
            #expect(conflict.mine.deviceId == b.config.deviceId)
            #expect(conflict.theirs.deviceId == a.config.deviceId)
            #expect(conflict.theirs.sha256 == ContentHash.of(Data("alpha's edit".utf8)))
            #expect(conflict.resolvedAt == nil)
            // The local note is cleared once the server has the record: a re-sync records nothing new.
            #expect(try b.index.conflictCopies(folder: b.root).isEmpty)
            try await b.sync()
            #expect(try await b.api.conflicts(library: b.sync.folder.libraryId, state: "all").count == 1)
        }
    }

    @Test func keepMineMakesTheCopyCurrentAndKeepsTheirsInHistory() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("mine")
            let (a, b, conflict) = try await makeConflict(cloud, user: user)
            defer { Task { await a.close(); await b.close() } }
            let resolved = try await a.api.resolveConflict(id: conflict.id, keep: .mine)
            #expect(resolved.resolution == "mine" && resolved.resolvedAt != nil)
            try await a.sync()
            try await b.sync()
            for device in [a, b] {
                #expect(device.read("plan.txt") == "beta's edit")
                #expect(!device.exists(conflict.mine.path.string))
            }
            let history = try await a.api.history(library: conflict.library, path: conflict.path)
            #expect(history.versions.contains { $0.version == conflict.theirs.version && $0.sha256 == conflict.theirs.sha256 })
            #expect(try await a.api.conflicts(library: conflict.library).isEmpty)
        }
    }

    @Test func keepTheirsRemovesTheCopyAndKeepsItInHistory() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("theirs")
            let (a, b, conflict) = try await makeConflict(cloud, user: user)
            defer { Task { await a.close(); await b.close() } }
            _ = try await b.api.resolveConflict(id: conflict.id, keep: .theirs)
            try await a.sync()
            try await b.sync()
            #expect(a.tree() == b.tree())
            #expect(b.read("plan.txt") == "alpha's edit")
            #expect(!b.exists(conflict.mine.path.string))
            let copyHistory = try await b.api.history(library: conflict.library, path: conflict.mine.path)
            #expect(copyHistory.versions.first?.deleted == true)
            #expect(copyHistory.versions.contains { $0.sha256 == ContentHash.of(Data("beta's edit".utf8)) })
        }
    }

    @Test func keepBothLeavesTheTreeAndClosesTheRecord() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("both")
            let (a, b, conflict) = try await makeConflict(cloud, user: user)
            defer { Task { await a.close(); await b.close() } }
            let before = b.tree()
            let head = try await b.api.changes(library: conflict.library, since: 0).head
            _ = try await b.api.resolveConflict(id: conflict.id, keep: .both)
            try await b.sync()
            #expect(b.tree() == before)
            #expect(try await b.api.changes(library: conflict.library, since: 0).head == head)
            // A second resolution is refused: the record is settled.
            await #expect(throws: APIFailure.self) { try await b.api.resolveConflict(id: conflict.id, keep: .mine) }
            let all = try await b.api.conflicts(library: conflict.library, state: "resolved")
            #expect(all.map(\.resolution) == ["both"])
        }
    }

    @Test func deletingTheCopyClosesTheConflict() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("delcopy")
            let (a, b, conflict) = try await makeConflict(cloud, user: user)
            defer { Task { await a.close(); await b.close() } }
            try a.remove(conflict.mine.path.string)
            try await a.sync()
            #expect(try await a.api.conflicts(library: conflict.library).isEmpty)
            #expect(try await a.api.conflicts(library: conflict.library, state: "resolved").first?.resolution == "copy_deleted")
        }
    }

    @Test func anotherUserCannotSeeOrResolveTheConflict() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("owner")
            let (a, b, conflict) = try await makeConflict(cloud, user: user)
            defer { Task { await a.close(); await b.close() } }
            let stranger = try await Device.make(cloud, user: try await cloud.user("stranger"), name: "gamma")
            defer { Task { await stranger.close() } }
            #expect(try await stranger.api.conflicts().isEmpty)
            await #expect(throws: APIFailure.self) { try await stranger.api.resolveConflict(id: conflict.id, keep: .mine) }
            #expect(try await a.api.conflicts(library: conflict.library).count == 1)
        }
    }
}
