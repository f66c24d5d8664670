import FerryCore
import FerryTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

@testable import FerryServer

/// The dashboard's retention form: linked from the library, CSRF-checked, errors named,
/// saved for the owner only.
@Suite("Dashboard retention", .serialized, .eachBackend)
struct RetentionDashboardTests {
    @Test func theRetentionFormShowsSavesAndRefuses() async throws {
        try await DashboardTests.withAlice { server, api, token, lib, browser in
            let root = try await browser.get("/libraries/\(lib)")
            #expect(root.text.contains(#"<a href="/libraries/\#(lib)/retention">Retention</a>"#), "\(root.text)")
            let page = try await browser.get("/libraries/\(lib)/retention")
            #expect(page.status == .ok)
            #expect(page.text.contains("Now: keep every version and every deleted file."), "\(page.text)")
            #expect(page.text.contains(#"name="keep_versions""#) && page.text.contains(#"name="csrf""#))

            let uri = "/libraries/\(lib)/retention"
            let fields = [("keep_versions", "4"), ("keep_days", ""), ("trash_days", "30")]
            #expect(try await browser.post(uri, fields, csrf: "").status == .forbidden)
            #expect(try await browser.post(uri, fields, csrf: "forged").status == .forbidden)
            for (bad, message) in [
                ([("keep_versions", "0")], "Keep versions must be between 1"), ([("keep_days", "soon")], "Keep days must be a whole number"),
                ([("trash_days", "0")], "Trash days must be between 1 and 36500 (or blank"), ([("keep_days", "-1")], "Keep days must be between 0"),
            ] {
                let refused = try await browser.post(uri, bad)
                #expect(refused.status == .badRequest && refused.text.contains(message), "\(bad): \(refused.status) \(refused.text)")
            }
            let user = try #require(try await server.services.store.user(named: "alice"))
            #expect(try await server.services.store.retention(userId: user.id, libraryId: lib)?.policy == .keepAll)

            let saved = try await browser.post(uri, fields)
            #expect(saved.status == .seeOther && saved.headers[.location] == uri + "?saved=1")
            #expect(try await server.services.store.retention(userId: user.id, libraryId: lib)?.policy == RetentionPolicy(keepVersions: 4, trashDays: 30))
            let shown = try await browser.get(uri + "?saved=1")
            #expect(shown.text.contains("Saved.") && shown.text.contains(#"value="4""#) && shown.text.contains("deleted files for 30 days"), "\(shown.text)")
            // Blank fields keep everything again.
            _ = try await browser.post(uri, [("keep_versions", ""), ("keep_days", ""), ("trash_days", "")])
            #expect(try await server.services.store.retention(userId: user.id, libraryId: lib)?.policy == .keepAll)

            // Another user's browser finds no such library.
            let (_, password) = try await server.addUser("bob")
            let bob = try await DashboardBrowser.signIn(api, "bob", password)
            #expect(try await bob.get(uri).status == .notFound)
            #expect(try await bob.post(uri, fields).status == .notFound)
            #expect(try await server.services.store.retention(userId: user.id, libraryId: lib)?.policy == .keepAll)
            _ = token
        }
    }
}
