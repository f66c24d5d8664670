@testable import FerryClient
import Crypto
import FerryCore
@testable import FerryServer
import Foundation
import FerryTestSupport
import Testing

/// Webhooks end to end (issue 4): the real server and dispatcher, a real receiver on
/// loopback, signatures checked by this test's own HMAC code; devices reach the server over
/// plain HTTP and over HTTPS.
@Suite("webhooks", .eachBackend)
struct WebhookTests {
    /// Loopback receivers need private targets; retries come fast.
    static func fast(_ c: inout ServerConfiguration) {
        c.webhooks.allowPrivateTargets = true
        c.webhooks.retryBackoffSeconds = [0, 0.05, 0.05]
    }

    static func hex(_ mac: some Sequence<UInt8>) -> String { mac.map { String(format: "%02x", $0) }.joined() }

    @Test(arguments: plainAndTLS) func fileEventsArriveInOrderWithBothSignatures(tls: Bool) async throws {
        try await Cloud.with(tls: tls, configure: Self.fast) { cloud in
            try await withHookReceiver { url, log in
                let user = try await cloud.user("hooks")
                let a = try await Device.make(cloud, user: user, name: "alpha")
                defer { Task { await a.close() } }
                let created = try await a.session().createWebhook(url: url, events: try EventFilter(["file.*"]))
                #expect(created.secret.hasPrefix("whsec_") && Data(base64Encoded: String(created.secret.dropFirst(6)))?.count == 32)

                try a.write("plan.txt", "v1")
                try await a.sync()
                try a.write("plan.txt", "version two")
                try await a.sync()
                try a.remove("plan.txt")
                try await a.sync()
                let history = try await a.api.history(library: a.sync.folder.libraryId, path: try FerryPath("plan.txt"))
                let first = try #require(history.versions.last)
                _ = try await a.api.restore(library: a.sync.folder.libraryId, path: try FerryPath("plan.txt"), version: first.version,
                                            base: history.versions.first?.version)
                // A second device registering is not a file event: the filter keeps it out.
                let b = try await Device.make(cloud, user: user, name: "beta")
                await b.close()

                #expect(await eventually { await log.requests.count >= 4 })
                let hooks = await log.requests
                #expect(hooks.map(\.type) == ["file.created", "file.updated", "file.deleted", "file.restored"])
                for hook in hooks {
                    let h = hook.headers
                    let timestamp = try #require(h["webhook-timestamp"].flatMap(Int64.init))
                    #expect(abs(Double(timestamp) - Date().timeIntervalSince1970) < 60)
                    let legacy = HMAC<SHA256>.authenticationCode(for: hook.body, using: SymmetricKey(data: Data(created.secret.utf8)))
                    #expect(h["x-webhook-signature"] == "sha256=" + Self.hex(legacy))
                    let key = SymmetricKey(data: Data(base64Encoded: String(created.secret.dropFirst(6)))!)
                    let standard = HMAC<SHA256>.authenticationCode(for: Data("\(h["webhook-id"]!).\(timestamp).".utf8) + hook.body, using: key)
                    #expect(h["webhook-signature"] == "v1," + Data(standard).base64EncodedString())
                    #expect(h["webhook-id"] == hook.json["id"] as? String)
                    #expect(h["x-event-type"] == hook.type && h["x-webhook-id"] == created.webhook.id)
                    #expect(h["x-delivery-attempt"] == "1" && h["x-delivery-id"] != nil)
                    #expect(hook.data["library"] as? String == a.sync.folder.libraryId && hook.data["path"] as? String == "plan.txt")
                    #expect(hook.data["device"] as? String == a.config.deviceId)
                }
                #expect(hooks[1].data["size"] as? Int == 11)
                #expect(hooks[1].data["sha256"] as? String == ContentHash.of(Data("version two".utf8)).hex)
                #expect(hooks[3].data["restored_from"] as? Int64 == first.version)
            }
        }
    }

    @Test(arguments: plainAndTLS) func conflictsDevicesAndPingsAreEventsToo(tls: Bool) async throws {
        try await Cloud.with(tls: tls, configure: Self.fast) { cloud in
            try await withHookReceiver { url, log in
                let user = try await cloud.user("events")
                let a = try await Device.make(cloud, user: user, name: "alpha")
                defer { Task { await a.close() } }
                let hook = try await a.session().createWebhook(url: url, events: try EventFilter(["file.conflict", "device.*", "ping"]))
                let b = try await Device.make(cloud, user: user, name: "beta")
                defer { Task { await b.close() } }
                try a.write("plan.txt", "v1")
                try await a.sync()
                try await b.sync()
                try a.write("plan.txt", "alpha's")
                try b.write("plan.txt", "beta's")
                try await a.sync()
                try await b.sync()
                try await a.api.revokeDevice(b.config.deviceId)
                _ = try await a.session().testWebhook(id: hook.webhook.id)

                #expect(await eventually { await log.requests.count >= 4 })
                let hooks = await log.requests
                #expect(hooks.map(\.type) == ["device.registered", "file.conflict", "device.revoked", "ping"])
                #expect(hooks[0].data["device"] as? String == b.config.deviceId && hooks[0].data["name"] as? String == "beta")
                let conflict = hooks[1].data
                #expect(conflict["path"] as? String == "plan.txt")
                #expect((conflict["mine"] as? [String: Any])?["device_id"] as? String == b.config.deviceId)
                #expect((conflict["theirs"] as? [String: Any])?["device_id"] as? String == a.config.deviceId)
                #expect(hooks[3].data["webhook"] as? String == hook.webhook.id)
            }
        }
    }

    @Test(arguments: plainAndTLS) func aReceiverFailingTwiceSeesTheThirdAttemptSucceed(tls: Bool) async throws {
        try await Cloud.with(tls: tls, configure: Self.fast) { cloud in
            try await withHookReceiver(script: [500, 503]) { url, log in
                let user = try await cloud.user("retry")
                let a = try await Device.make(cloud, user: user, name: "alpha")
                defer { Task { await a.close() } }
                let session = try await a.session()
                let hook = try await session.createWebhook(url: url, events: try EventFilter(["ping"]), keepResponseExcerpts: true)
                _ = try await session.testWebhook(id: hook.webhook.id)
                #expect(try await eventually { try await a.api.deliveries(webhook: hook.webhook.id).deliveries.first?.state == .delivered })
                let delivery = try #require(try await a.api.deliveries(webhook: hook.webhook.id).deliveries.first)
                #expect(delivery.attempts.map(\.status) == [500, 503, 200])
                #expect(delivery.attempts[0].response == "answer 500" && delivery.attempts[0].error?.contains("500") == true)
                let seen = await log.requests
                #expect(seen.map { $0.headers["x-delivery-attempt"] } == ["1", "2", "3"])
                #expect(Set(seen.map { $0.headers["webhook-id"] }).count == 1)

                // Redelivery sends the same event again as a new delivery.
                let again = try await a.session().redeliver(delivery: delivery.id)
                #expect(again.id != delivery.id && again.eventId == delivery.eventId)
                #expect(await eventually { await log.requests.count == 4 })
                #expect(await log.requests.last?.headers["webhook-id"] == delivery.eventId)
            }
        }
    }

    @Test(arguments: plainAndTLS) func goneOrExhaustedEndpointsAreDisabledAndTheOwnerIsTold(tls: Bool) async throws {
        try await Cloud.with(tls: tls, configure: Self.fast) { cloud in
            try await withHookReceiver(script: [410, 500, 500, 500]) { url, log in
                let user = try await cloud.user("gone")
                let a = try await Device.make(cloud, user: user, name: "alpha")
                defer { Task { await a.close() } }
                let watcher = try await withHookReceiver { watcherURL, watcherLog in
                    _ = try await a.session().createWebhook(url: watcherURL, events: try EventFilter(["webhook.disabled"]))
                    let gone = try await a.session().createWebhook(url: url, events: try EventFilter(["ping"]))
                    _ = try await a.session().testWebhook(id: gone.webhook.id)
                    #expect(try await eventually { try await a.api.webhooks().first { $0.id == gone.webhook.id }?.active == false })
                    #expect(try await a.api.webhooks().first { $0.id == gone.webhook.id }?.disabledReason?.contains("410") == true)
                    #expect(await eventually { await watcherLog.requests.count == 1 })
                    #expect(await watcherLog.requests.first?.data["webhook"] as? String == gone.webhook.id)

                    // Switched back on, it fails through the whole schedule (three attempts) and is disabled again.
                    _ = try await a.session().updateWebhook(id: gone.webhook.id, UpdateWebhookRequest(active: true))
                    _ = try await a.session().testWebhook(id: gone.webhook.id)
                    #expect(try await eventually { try await a.api.deliveries(webhook: gone.webhook.id).deliveries.first?.state == .failed })
                    #expect(try await a.api.webhooks().first { $0.id == gone.webhook.id }?.disabledReason?.contains("3 attempts failed") == true)
                    #expect(await eventually { await watcherLog.requests.count == 2 })
                    return await log.requests.count
                }
                #expect(watcher == 4)
            }
        }
    }

    @Test(arguments: plainAndTLS) func privateLinkLocalAndMetadataTargetsAreRefused(tls: Bool) async throws {
        try await Cloud.with(tls: tls) { cloud in
            try await withHookReceiver { url, log in
                let user = try await cloud.user("ssrf")
                let a = try await Device.make(cloud, user: user, name: "alpha")
                defer { Task { await a.close() } }
                let any = try EventFilter(["*"])
                for refused in [url, "http://169.254.169.254/latest/meta-data", "http://[fe80::1]/x", "http://[::ffff:127.0.0.1]/x",
                                "http://10.1.2.3/x", "http://0.0.0.0/x", "ftp://example.com/x", "http://user:pw@example.com/x", "not a url"] {
                    await #expect(throws: APIFailure.self, "\(refused)") { try await a.session().createWebhook(url: refused, events: any) }
                }
                // A name is checked on the addresses it resolves to, when delivering.
                let port = URL(string: url)!.port!
                let named = try await a.session().createWebhook(url: "http://localhost:\(port)/hook", events: try EventFilter(["ping"]))
                _ = try await a.session().testWebhook(id: named.webhook.id)
                #expect(try await eventually { try await a.api.deliveries(webhook: named.webhook.id).deliveries.first?.attempts.isEmpty == false })
                let attempt = try #require(try await a.api.deliveries(webhook: named.webhook.id).deliveries.first?.attempts.first)
                #expect(attempt.status == nil && attempt.error?.contains("refused") == true && attempt.error?.contains("private") == true)
                #expect(await log.requests.isEmpty)
            }
        }
        // Allowing private targets never allows link-local or metadata addresses.
        try await Cloud.with(tls: tls, configure: Self.fast) { cloud in
            let a = try await Device.make(cloud, user: try await cloud.user("ssrf2"), name: "alpha")
            defer { Task { await a.close() } }
            for refused in ["http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://100.100.100.200/", "http://[fe80::1%25eth0]/"] {
                await #expect(throws: APIFailure.self, "\(refused)") { try await a.session().createWebhook(url: refused, events: try EventFilter(["*"])) }
            }
            _ = try await a.session().createWebhook(url: "http://127.0.0.1:9/hook", events: try EventFilter(["*"]))
        }
    }

    /// A receiver with a self-signed certificate: refused as ever unless its fingerprint is
    /// pinned on the endpoint, and then only that certificate is accepted (SPEC §8).
    @Test func aSelfSignedReceiverIsReachedOnlyThroughItsPinnedFingerprint() async throws {
        let pair = try SelfSignedCertificate.make(names: ["localhost"], addresses: ["127.0.0.1"])
        let fingerprint = try CertificatePin(pem: pair.certificatePEM).fingerprint
        let other = try CertificatePin(pem: try SelfSignedCertificate.make(names: ["localhost"], addresses: []).certificatePEM).fingerprint
        // A refused handshake is retried until the connect timeout, which the request timeout bounds.
        try await Cloud.with(tls: true, configure: { Self.fast(&$0); $0.webhooks.requestTimeoutSeconds = 2 }) { cloud in
            try await withHookReceiver(tls: (pair.certificatePEM, pair.keyPEM)) { url, log in
                let a = try await Device.make(cloud, user: try await cloud.user("pinner"), name: "alpha")
                defer { Task { await a.close() } }
                let session = try await a.session()
                func firstAttempt(_ id: String) async throws -> DeliveryAttempt {
                    _ = try await session.testWebhook(id: id)
                    #expect(try await eventually { try await session.deliveries(webhook: id).deliveries.first?.attempts.isEmpty == false })
                    return try #require(try await session.deliveries(webhook: id).deliveries.first?.attempts.first)
                }
                // Not pinned: the certificate is verified as before, and refused.
                let plain = try await session.createWebhook(url: url, events: try EventFilter(["ping"]))
                #expect(plain.webhook.tlsFingerprint == nil)
                let refused = try await firstAttempt(plain.webhook.id)
                #expect(refused.status == nil && refused.error?.contains("request failed") == true, "\(refused)")

                // Pinned to another certificate: refused naming both, before anything is sent.
                let wrong = try await session.createWebhook(url: url, events: try EventFilter(["ping"]), tlsFingerprint: other.description)
                let mismatch = try await firstAttempt(wrong.webhook.id)
                #expect(mismatch.error?.contains("presented certificate \(fingerprint), not the pinned \(other)") == true, "\(mismatch)")
                #expect(await log.requests.isEmpty)

                // Pinned right (in openssl's spelling): delivered, and shown in the one spelling.
                // The refused ping spends its (short) retry schedule and switches the endpoint off;
                // pinning the right certificate switches it on again.
                #expect(try await eventually { try await session.webhooks().first { $0.id == wrong.webhook.id }?.active == false })
                let pinned = try await session.updateWebhook(id: wrong.webhook.id, UpdateWebhookRequest(active: true, tlsFingerprint: fingerprint.openSSLSpelling))
                #expect(pinned.tlsFingerprint == fingerprint)
                #expect(try await session.webhooks().first { $0.id == wrong.webhook.id }?.tlsFingerprint == fingerprint)
                let delivered = try await firstAttempt(wrong.webhook.id)
                #expect(delivered.status == 200, "\(delivered)")
                // (The ping refused above may follow it on its retry schedule, now also delivered.)
                let received = await log.requests
                #expect(!received.isEmpty && received.allSatisfy { $0.type == "ping" })

                // The pin is removed with "", and refused on plain http:// or in a wrong spelling.
                #expect(try await session.updateWebhook(id: wrong.webhook.id, UpdateWebhookRequest(tlsFingerprint: "")).tlsFingerprint == nil)
                await #expect { try await session.createWebhook(url: "http://127.0.0.1:9/hook", events: try EventFilter(["ping"]), tlsFingerprint: fingerprint.description) }
                    throws: { ($0 as? APIFailure)?.message.contains("pins an https:// receiver") == true }
                await #expect { try await session.createWebhook(url: url, events: try EventFilter(["ping"]), tlsFingerprint: "SHA256:1234") }
                    throws: { ($0 as? APIFailure)?.code == "invalid_fingerprint" }
                await #expect { try await session.updateWebhook(id: plain.webhook.id, UpdateWebhookRequest(url: "http://127.0.0.1:9/hook", tlsFingerprint: fingerprint.description)) }
                    throws: { ($0 as? APIFailure)?.status == 400 }
            }
        }
    }

    @Test(arguments: [
        ("8.8.8.8", "global"), ("127.0.0.1", "private"), ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("172.32.0.1", "global"),
        ("192.168.1.1", "private"), ("100.64.0.1", "private"), ("169.254.169.254", "forbidden"), ("169.254.1.1", "forbidden"),
        ("0.0.0.0", "forbidden"), ("224.0.0.1", "forbidden"), ("::1", "private"), ("fc00::1", "private"), ("fe80::1", "forbidden"),
        ("::", "forbidden"), ("::ffff:10.0.0.1", "private"), ("::ffff:169.254.169.254", "forbidden"), ("2606:4700::1111", "global"),
        ("fd00:ec2::254", "forbidden"), ("64:ff9b::a9fe:a9fe", "forbidden"),
        // Documentation, protocol-assignment, reserved and tunnel ranges, and the deprecated
        // IPv4-compatible form (`::/96`).
        ("192.0.2.1", "forbidden"), ("198.51.100.7", "forbidden"), ("203.0.113.9", "forbidden"), ("2001:db8::1", "forbidden"),
        ("192.0.0.8", "forbidden"), ("240.0.0.1", "forbidden"), ("::10.0.0.1", "forbidden"), ("::8.8.8.8", "forbidden"),
        ("2001::1", "forbidden"), ("2002:a9fe:a9fe::1", "forbidden"), ("2002:808:808::1", "global"), ("198.18.0.1", "private"),
    ])
    func addressesAreClassified(_ text: String, _ expected: String) throws {
        let address = try #require(IPAddress(text))
        let got = switch address.classification {
        case .global: "global"
        case .private: "private"
        case .forbidden: "forbidden"
        }
        #expect(got == expected)
        #expect(address.description == text)  // every address above is in its canonical spelling
    }

    /// A NAS with a global IPv6 address: its own addresses and its LAN are global by range,
    /// but a webhook must not reach them unless private targets are allowed.
    @Test func theServersOwnAddressesAndNetworksArePrivate() throws {
        let lan = try #require(IPNetwork("2001:470:1:2::/64"))
        let neighbour = try #require(IPAddress("2001:470:1:2::5"))
        #expect(neighbour.classification == .global)
        #expect(neighbour.classification(hostNetworks: [lan]) == .private)
        #expect(IPAddress("2001:470:1:3::5")!.classification(hostNetworks: [lan]) == .global)
        let own = IPNetwork.hostNetworks()
        #expect(own.contains { $0.contains(IPAddress("127.0.0.1")!) })
        for network in own where network.address.classification == .global {
            #expect(network.address.classification(hostNetworks: own) == .private, "\(network)")
            let host = network.address.description
            let target = try WebhookTarget(host.contains(":") ? "https://[\(host)]/hook" : "https://\(host)/hook")
            #expect(throws: WebhookTargetError.self) { try target.checkWithoutResolving(allowPrivate: false, allowedHosts: []) }
        }
        #expect(IPNetwork("10.0.0.0/8")!.contains(IPAddress("::ffff:10.1.2.3")!))
        #expect(IPNetwork("10.0.0.0/33") == nil && IPNetwork("fe80::/129") == nil && IPNetwork("10.0.0.0/+8") == nil)
    }

    @Test(arguments: plainAndTLS) func inputIsValidatedAndOtherUsersSeeNothing(tls: Bool) async throws {
        try await Cloud.with(tls: tls, configure: Self.fast) { cloud in
            let owner = try await Device.make(cloud, user: try await cloud.user("owner"), name: "o")
            let other = try await Device.make(cloud, user: try await cloud.user("other"), name: "x")
            defer { Task { await owner.close(); await other.close() } }
            await #expect(throws: (any Error).self) { try await owner.session().createWebhook(url: "http://127.0.0.1/x", events: try EventFilter(["nope.*"])) }
            await #expect(throws: APIFailure.self) { try await owner.session().createWebhook(url: "http://127.0.0.1/x", events: try EventFilter(["*"]), secret: "short") }
            let mine = try await owner.session().createWebhook(url: "http://127.0.0.1:9/x", events: try EventFilter(["ping"]), secret: "a-secret-of-my-own!")
            #expect(mine.secret == "a-secret-of-my-own!")
            let ping = try await owner.session().testWebhook(id: mine.webhook.id)
            #expect(try await other.api.webhooks().isEmpty)
            await #expect(throws: APIFailure.self) { try await other.api.deliveries(webhook: mine.webhook.id) }
            await #expect(throws: APIFailure.self) { try await other.session().testWebhook(id: mine.webhook.id) }
            await #expect(throws: APIFailure.self) { try await other.session().redeliver(delivery: ping.id) }
            await #expect(throws: APIFailure.self) { try await other.session().updateWebhook(id: mine.webhook.id, UpdateWebhookRequest(active: false)) }
            await #expect(throws: APIFailure.self) { try await other.session().deleteWebhook(id: mine.webhook.id) }
            #expect(try await owner.api.webhooks().map(\.id) == [mine.webhook.id])
            try await owner.session().deleteWebhook(id: mine.webhook.id)
            #expect(try await owner.api.webhooks().isEmpty)
        }
    }
}
