@testable import FerryClient
import FerryCore
import Foundation
import FerryTestSupport
import Testing

/// `ferry trash` and `ferry restore` of a deleted folder, through the real binary, with a
/// second device that gets the folder back too.
@Suite("ferry trash and restore", .serialized, .eachBackend)
struct TrashTests {
    @Test func aDeletedFolderIsListedAndComesBackWhole() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("tia")
            let (home, folder) = try await CLITests.Home.syncing(cloud, as: user, library: "work")
            let other = try await Device.make(cloud, user: user, name: "other", library: "work")
            defer { Task { await other.close() } }

            try FileManager.default.createDirectory(atPath: folder + "/d/sub", withIntermediateDirectories: true)
            try Data("a".utf8).write(to: URL(fileURLWithPath: folder + "/d/a.txt"))
            try Data("b".utf8).write(to: URL(fileURLWithPath: folder + "/d/sub/b.txt"))
            #expect(try await home.ferry("sync").status == 0)
            try await other.sync()
            #expect(other.read("d/sub/b.txt") == "b")

            try FileManager.default.removeItem(atPath: folder + "/d")
            #expect(try await home.ferry("sync").status == 0)
            try await other.sync()
            #expect(!other.exists("d"))

            let listed = try await home.ferry("trash", folder, "--json")
            #expect(listed.status == 0, "\(listed.err)")
            #expect(["\"d\"", "\"d/a.txt\"", "\"d/sub\"", "\"d/sub/b.txt\""].allSatisfy(listed.out.contains), "\(listed.out)")
            let text = try await home.ferry("trash", folder + "/d")
            #expect(text.out.contains("\(folder)/d/sub/b.txt\t1 bytes\tdeleted "), "\(text.out)")
            #expect(text.out.contains("restore: ferry restore \(folder)/d --version "))

            let restored = try await home.ferry("restore", folder + "/d")
            #expect(restored.status == 0, "\(restored.err)")
            #expect(restored.out.contains("with 3 entries beneath it"), "\(restored.out)")
            #expect(try await home.ferry("sync").status == 0)
            #expect(FileManager.default.contents(atPath: folder + "/d/sub/b.txt") == Data("b".utf8))
            #expect(FileManager.default.contents(atPath: folder + "/d/a.txt") == Data("a".utf8))
            try await other.sync()
            #expect(other.read("d/a.txt") == "a" && other.read("d/sub/b.txt") == "b")
            #expect(try await home.ferry("trash", folder).out.contains("Nothing deleted here can be restored."))
        }
    }
}
