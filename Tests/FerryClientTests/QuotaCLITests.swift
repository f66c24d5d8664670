@testable import FerryClient
import FerryCore
@testable import FerryServer
import Foundation
import Testing

/// Quotas from the command line and the daemon (issue 24): `ferry-server user quota`,
/// `ferry status`'s storage line, and a daemon whose upload passes the quota.
@Suite("quotas from the CLI and the daemon", .serialized)
struct QuotaCLITests {
    typealias Home = CLITests.Home

    @Test func ferryServerUserQuotaSetsShowsAndRefusesBadInput() async throws {
        let server = try await RealServer.prepare(user: "alice", password: "alice-password")
        let set = try await server.tool("user", "quota", "alice", "10GiB")
        #expect(set.status == 0, "\(set.err)")
        #expect(set.out.contains("quota of 'alice' set: 0 B of 10 GiB used"), "\(set.out)")
        let list = try await server.tool("user", "list")
        #expect(list.out.contains("alice\tuser\t0 B of 10 GiB used"), "\(list.out)")
        let json = try await server.tool("user", "list", "--json")
        #expect(json.out.contains(#""quota_bytes":10737418240"#) && json.out.contains(#""used_bytes":0"#), "\(json.out)")
        #expect(try await server.tool("user", "quota", "alice", "1.5 TB").out.contains("of 1.4 TiB used"))

        for (amount, complaint) in [("lots", "is not an amount of bytes"), ("5XB", "unknown unit 'xb'"), ("", "is not an amount of bytes"),
                                    ("99999999PiB", "too large"), ("12..5GiB", "is not an amount of bytes")] {
            let bad = try await server.tool("user", "quota", "alice", amount)
            #expect(bad.status != 0 && bad.err.contains(complaint), "\(amount): \(bad.err)")
        }
        let nobody = try await server.tool("user", "quota", "nobody", "1GiB")
        #expect(nobody.status != 0 && nobody.err.contains("no user named 'nobody'"), "\(nobody.err)")
        let missing = try await server.tool("user", "quota", "alice")
        #expect(missing.status != 0 && missing.err.contains("Missing expected argument"), "\(missing.err)")

        let cleared = try await server.tool("user", "quota", "alice", "none")
        #expect(cleared.status == 0 && cleared.out.contains("removed the quota of 'alice': 0 B used, no quota"), "\(cleared.out)")
        #expect(!(try await server.tool("user", "list", "--json")).out.contains("quota_bytes"))
    }

    /// The daemon's upload passes the quota: the folder shows the error naming the quota,
    /// the file stays, and once the quota allows it the daemon's own retry uploads it.
    @Test func aDaemonOverItsQuotaReportsItKeepsTheFileAndRetries() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("quinn")
            let stored = try #require(try await cloud.services.store.user(named: "quinn"))
            try await cloud.services.store.setQuota(userId: stored.id, bytes: 64 * 1024)
            let (home, folder) = try await Home.syncing(cloud, as: user, library: "docs")
            try Data("small enough".utf8).write(to: URL(fileURLWithPath: folder + "/note.txt"))
            let big = seededBytes(200 * 1024, seed: 7)
            try big.write(to: URL(fileURLWithPath: folder + "/big.bin"))

            let daemon = try UsabilityTests.Daemon(home)
            defer { daemon.stop() }
            // Read in one go: between tries the folder is `syncing` again for a moment.
            var refused: FolderStatus?
            #expect(try await eventually(timeout: .seconds(60)) {
                guard let folder = try await UsabilityTests.status(home)?.folders.first, folder.state == .error,
                      folder.lastError?.contains("quota exceeded") == true else { return false }
                refused = folder
                return true
            }, "\(daemon.log)")
            let status = try #require(refused)
            #expect(status.retryAt != nil)
            #expect(status.lastError?.contains("of 64 KiB used") == true, "\(status.lastError ?? "")")
            let shown = try await home.ferry("status")
            #expect(shown.out.contains("Storage: ") && shown.out.contains(" of 64.0 KiB used"), "\(shown.out)")
            #expect(shown.out.contains("error: ") && shown.out.contains("quota exceeded"), "\(shown.out)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: folder + "/big.bin")) == big)

            // Room again: the daemon's next try, by itself, takes the file up.
            try await cloud.services.store.setQuota(userId: stored.id, bytes: nil)
            let library = try #require(try await cloud.services.store.libraries(userId: stored.id).first)
            #expect(try await eventually(timeout: .seconds(90)) {
                try await cloud.services.store.current(libraryId: library.id, path: FerryPath("big.bin")) != nil
            }, "\(daemon.log)")
            #expect(try await eventually { try await UsabilityTests.status(home)?.folders.first?.lastError == nil })
            let after = try await home.ferry("status")
            #expect(after.out.contains("used, no quota"), "\(after.out)")
        }
    }
}
