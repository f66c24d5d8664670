@testable import FerryClient
import FerryCore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The outbox survives `kill -9`: the real `ferry-server` binary is killed while an event's
/// delivery is in flight and its attempt unrecorded; after a restart the event is delivered.
@Suite("webhooks across a server crash", .serialized)
struct WebhookRestartTests {
    @Test func anEventCommittedBeforeSIGKILLIsDeliveredAfterRestart() async throws {
        let server = try await RealServer.prepare(
            user: "kim", password: "kim-password-1",
            settings: #""webhooks": {"allowPrivateTargets": true, "retryBackoffSeconds": [0, 0.1, 0.1]}"#)
        let url = server.url
        try await withHookReceiver(holdFirst: 1) { hookURL, log in
            let first = try await server.start()
            let (api, _) = try await ServerAPI.enroll(serverURL: url, username: "kim", password: "kim-password-1", deviceName: "desk")
            let hook = try await api.withUserSession(username: "kim", password: "kim-password-1") {
                try await $0.createWebhook(url: hookURL, events: try EventFilter(["file.created"]))
            }
            let library = try await api.library(named: "docs")
            let commit = try await api.commit(library: library.id, [CommitOperation(op: .put, path: try FerryPath("reports"), base: nil, kind: .directory)])
            #expect(commit.results.first?.status == .ok)

            // The delivery is in flight (the receiver holds it) when the server dies.
            #expect(await eventually { await log.requests.count == 1 })
            first.kill9()
            await api.close()

            let second = try await server.start()
            defer { second.kill9() }
            #expect(await eventually { await log.requests.count == 2 })
            let seen = await log.requests
            #expect(seen.map(\.type) == ["file.created", "file.created"])
            #expect(seen[0].headers["webhook-id"] == seen[1].headers["webhook-id"])
            #expect(seen[1].data["path"] as? String == "reports")
            let (again, _) = try await ServerAPI.enroll(serverURL: url, username: "kim", password: "kim-password-1", deviceName: "check")
            #expect(try await eventually { try await again.deliveries(webhook: hook.webhook.id).deliveries.first?.state == .delivered })
            await again.close()
        }
    }
}
