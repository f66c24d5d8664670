import FerryCore
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import FerryTestSupport
import Testing

@testable import FerryServer

/// Regression tests for the attacks of issue 20 against the server.
@Suite("Security")
struct SecurityTests {
    // MARK: login throttling

    @Test(arguments: [
        // (failures so far, expected wait in seconds after the next one), free = 5
        (0, 0.0), (3, 0.0), (4, 1.0), (5, 2.0), (6, 4.0), (9, 32.0), (20, 300.0), (200, 300.0),
    ])
    func delaysDoubleAfterTheFreeAttemptsUpToTheWindow(_ failures: Int, _ wait: Double) {
        let settings = LoginRateLimiter.Settings(freeAttempts: 5, window: 300)
        #expect(settings.delay(afterFailures: failures + 1, free: 5) == wait)
    }

    @Test func aStrangerCannotLockTheOwnerOutAndTheDelayGrows() {
        let limiter = LoginRateLimiter(settings: .init(freeAttempts: 5, window: 300))
        var now = Date(timeIntervalSince1970: 1_000_000)
        var waits: [Int] = []
        // The attacker keeps guessing from one address, as fast as it is let.
        for _ in 0..<9 {
            switch limiter.reserve(username: "alice", address: "203.0.113.9", now: now) {
            case .success: break
            case .failure(let retry):
                waits.append(retry.seconds)
                now = now.addingTimeInterval(Double(retry.seconds))
                guard case .success = limiter.reserve(username: "alice", address: "203.0.113.9", now: now) else {
                    Issue.record("the attempt after the delay was refused")
                    return
                }
            }
        }
        #expect(waits == [1, 2, 4, 8])
        // The owner, elsewhere, is never delayed by it.
        guard case .success(let ticket) = limiter.reserve(username: "alice", address: "198.51.100.7", now: now) else {
            Issue.record("the owner was locked out")
            return
        }
        limiter.succeeded(ticket)
        // Failures fall out of the window.
        if case .failure = limiter.reserve(username: "alice", address: "203.0.113.9", now: now.addingTimeInterval(301)) {
            Issue.record("failures older than the window still count")
        }
    }

    @Test func oneAddressSprayingManyNamesIsSlowedToo() {
        let limiter = LoginRateLimiter(settings: .init(freeAttempts: 5, freeAttemptsPerAddress: 10, window: 300))
        let now = Date()
        for i in 0..<10 { _ = limiter.reserve(username: "user\(i)", address: "10.0.0.1", now: now) }
        if case .success = limiter.reserve(username: "fresh", address: "10.0.0.1", now: now) { Issue.record("spraying was not slowed") }
        if case .failure = limiter.reserve(username: "fresh", address: "10.0.0.2", now: now) { Issue.record("another address was slowed") }
    }

    @Test func aSuccessForgetsThePairButTheAddressKeepsItsFailures() {
        let limiter = LoginRateLimiter(settings: .init(freeAttempts: 2, freeAttemptsPerAddress: 3, window: 300))
        let now = Date()
        _ = limiter.reserve(username: "bob", address: "10.0.0.1", now: now)
        guard case .success(let ticket) = limiter.reserve(username: "alice", address: "10.0.0.1", now: now) else { Issue.record(); return }
        limiter.succeeded(ticket)
        // alice's pair is clean, and her success did not count against the address.
        guard case .success = limiter.reserve(username: "alice", address: "10.0.0.1", now: now) else { Issue.record("alice was delayed"); return }
        // bob's failure and alice's second attempt are the address's 2 of 3; the third still passes.
        guard case .success = limiter.reserve(username: "carol", address: "10.0.0.1", now: now) else { Issue.record("the address limit came early"); return }
        if case .success = limiter.reserve(username: "dave", address: "10.0.0.1", now: now) { Issue.record("the address limit did not hold") }
    }

    /// A sign-in the server was too busy to check costs the caller nothing, and withdrawing it
    /// forgets nothing else (flooding into 503s must not wipe an attacker's failures). On the
    /// ledger the server uses: in memory on SQLite, the shared table on PostgreSQL.
    @Test(.eachBackend) func aWithdrawnAttemptStopsCountingAndForgetsNothingElse() async throws {
        let server = try await TestServer.make { $0.auth.loginFailureLimit = 2 }
        defer { server.removeData() }
        let limiter = server.services.limiter
        let now = Date()
        _ = try await limiter.reserve(username: "alice", address: "10.0.0.1", now: now)
        guard case .success(let busy) = try await limiter.reserve(username: "alice", address: "10.0.0.1", now: now) else { Issue.record(); return }
        try await limiter.withdraw(busy)
        guard case .success = try await limiter.reserve(username: "alice", address: "10.0.0.1", now: now) else {
            Issue.record("the withdrawn attempt still counted")
            return
        }
        if case .success = try await limiter.reserve(username: "alice", address: "10.0.0.1", now: now) { Issue.record("the earlier failure was forgotten") }
    }

    /// Through the route: a sign-in answered 503 because the password gate was full is
    /// withdrawn, so the caller's next attempt is judged, and the limit still holds after it.
    @Test func aSignInTheServerWasTooBusyToCheckCostsNoAttempt() async throws {
        let server = try await TestServer.make {
            $0.auth.maxConcurrentPasswordChecks = 1
            $0.auth.loginFailureLimit = 1
            $0.auth.loginDelaySeconds = 60  // no delay runs out while the test runs
        }
        defer { server.removeData() }
        try await server.addUser("alice")
        let gate = server.services.passwordGate
        let latch = Latch()
        // One check running and a full queue behind it: the next sign-in is refused as busy.
        let fillers = (0...gate.maxWaiting).map { n in Task { try await gate.run(key: "filler \(n)") { await latch.wait() } } }
        #expect(await eventuallyTrue(timeout: .seconds(120)) { gate.running == 1 && gate.waiting == gate.maxWaiting })
        try await server.run { api in
            let busy = try await api.call(.post, "/auth/login", json: LoginRequest(username: "alice", password: "wrong"))
            #expect(busy.status == .serviceUnavailable && String(buffer: busy.body).contains("busy"), "\(busy.status)")
            await latch.open()
            for filler in fillers { try await filler.value }
            #expect(try await api.call(.post, "/auth/login", json: LoginRequest(username: "alice", password: "wrong")).status == .unauthorized,
                    "the busy attempt was counted")
            #expect(try await api.call(.post, "/auth/login", json: LoginRequest(username: "alice", password: "wrong")).status == .tooManyRequests)
        }
    }

    @Test func forwardedForIsBelievedOnlyFromTrustedProxies() throws {
        let none = TrustedProxies.none
        #expect(none.clientAddress(peer: "127.0.0.1", forwardedFor: ["203.0.113.9"]) == "127.0.0.1")
        let proxies = try TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["203.0.113.9"]) == "203.0.113.9")
        // The right-most untrusted hop is the client; what it claims before that is its own word.
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["1.1.1.1, 198.51.100.7", "10.2.3.4"]) == "198.51.100.7")
        #expect(proxies.clientAddress(peer: "192.0.2.55", forwardedFor: ["1.1.1.1"]) == "192.0.2.55")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["not an address"]) == "127.0.0.1")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["[2001:db8::1]:443"]) == "2001:db8::1")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["198.51.100.7:5000"]) == "198.51.100.7")
        #expect(throws: ConfigurationError.self) { try TrustedProxies(["10.0.0.0/33"]) }
        #expect(throws: ConfigurationError.self) { try TrustedProxies(["proxy.local"]) }
    }

    /// Behind a trusted proxy each client is throttled and logged under its own address; a
    /// client that is not a trusted proxy cannot choose the address it is counted under.
    @Test(.eachBackend) func behindAProxyClientsAreThrottledApart() async throws {
        let server = try await TestServer.make {
            $0.http.trustedProxies = ["127.0.0.1", "::1"]
            $0.auth.loginDelaySeconds = 60  // no delay runs out while the test runs, however loaded the machine
        }
        defer { server.removeData() }
        let (_, password) = try await server.addUser("alice")
        try await server.run(.live) { api in
            let attacker: HTTPFields = [TrustedProxies.forwardedFor: "203.0.113.9"]
            for _ in 0..<5 {
                let r = try await api.call(.post, "/auth/login", body: Self.body("alice", "wrong"), headers: attacker)
                #expect(r.status == .unauthorized)
            }
            #expect(try await api.call(.post, "/auth/login", body: Self.body("alice", "wrong"), headers: attacker).status == .tooManyRequests)
            let owner = try await api.call(.post, "/auth/login", body: Self.body("alice", password), headers: [TrustedProxies.forwardedFor: "198.51.100.7"])
            #expect(owner.status == .ok)
        }
        let failed = try await server.services.store.securityEvents(userId: nil, limit: 50).filter { $0.kind == .loginFailed }
        #expect(failed.count == 5 && failed.allSatisfy { $0.address == "203.0.113.9" }, "\(failed.map { "\($0.username ?? "-")@\($0.address ?? "-")" })")
    }

    @Test func withoutTrustedProxiesForwardedForIsIgnored() async throws {
        let server = try await TestServer.make { $0.auth.loginDelaySeconds = 60 }
        defer { server.removeData() }
        try await server.addUser("alice")
        try await server.run(.live) { api in
            for i in 0..<6 {
                // A new claimed address each time does not reset anything.
                let r = try await api.call(.post, "/auth/login", body: Self.body("alice", "wrong"), headers: [TrustedProxies.forwardedFor: "203.0.113.\(i)"])
                #expect(r.status == (i < 5 ? .unauthorized : .tooManyRequests))
            }
        }
    }

    /// Refusals are counted, not written one by one.
    @Test(.eachBackend) func refusedLoginsAreWrittenAsCountedLines() async throws {
        let server = try await TestServer.make { $0.auth.loginDelaySeconds = 60 }
        defer { server.removeData() }
        try await server.addUser("alice")
        try await server.run { api in
            for _ in 0..<5 { _ = try await api.call(.post, "/auth/login", json: LoginRequest(username: "alice", password: "wrong")) }
            for _ in 0..<40 {
                #expect(try await api.call(.post, "/auth/login", json: LoginRequest(username: "alice", password: "wrong")).status == .tooManyRequests)
            }
        }
        let limited = try await server.services.store.securityEvents(userId: nil, limit: 100).filter { $0.kind == .rateLimited }
        #expect(limited.count == 1 && limited[0].count == 1)
        let log = RefusalLog(interval: 60)
        let t0 = Date()
        #expect(log.refused(username: "a", address: "x", now: t0) == 1)
        for s in 1...39 { #expect(log.refused(username: "a", address: "x", now: t0.addingTimeInterval(Double(s))) == nil) }
        #expect(log.refused(username: "a", address: "x", now: t0.addingTimeInterval(61)) == 40)
        #expect(log.refused(username: "b", address: "x", now: t0.addingTimeInterval(61)) == 1)
    }

    // MARK: the password gate

    @Test func theGateBoundsWorkPerKeyAndOverallAndRefusesPastItsQueue() async throws {
        // Each step waits for the gate's state, not for time: under a loaded machine a task can
        // take seconds to start, hence the long timeouts.
        let gate = ConcurrencyGate(total: 2, perKey: 1, maxWaiting: 3)
        let latch = Latch()
        let peak = PeakCounter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            // a and b run; the second a waits for its key, c and d for a slot; e finds the queue full.
            for (key, running, waiting) in [("a", 1, 0), ("b", 2, 0), ("a", 2, 1), ("c", 2, 2), ("d", 2, 3)] {
                group.addTask {
                    try await gate.run(key: key) {
                        await peak.enter(key)
                        await latch.wait()
                        await peak.leave(key)
                    }
                }
                #expect(await eventuallyTrue(timeout: .seconds(120)) { gate.running == running && gate.waiting == waiting }, "after \(key)")
            }
            await #expect(throws: ConcurrencyGate.Busy.self) { try await gate.run(key: "e") {} }
            await latch.open()
            try await group.waitForAll()
        }
        #expect(await peak.overall == 2)
        #expect(await peak.perKey == 1)
        #expect(gate.running == 0 && gate.waiting == 0)
    }

    @Test func aCancelledWaiterLeavesTheQueue() async throws {
        let gate = ConcurrencyGate(total: 1, perKey: 1, maxWaiting: 1)
        let latch = Latch()
        let holder = Task { try await gate.run(key: "a") { await latch.wait() } }
        #expect(await eventuallyTrue(timeout: .seconds(120)) { gate.running == 1 })
        let waiter = Task { try await gate.run(key: "b") {} }
        #expect(await eventuallyTrue(timeout: .seconds(120)) { gate.waiting == 1 })
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(gate.waiting == 0)
        // The queue has room again.
        let next = Task { try await gate.run(key: "c") {} }
        #expect(await eventuallyTrue(timeout: .seconds(120)) { gate.waiting == 1 })
        await latch.open()
        try await holder.value
        try await next.value
        #expect(gate.running == 0)
    }

    // MARK: metrics

    @Test func metricsNeedAnAdministratorOrTheScrapeTokenAndRevealNoDedup() async throws {
        let scrape = String(repeating: "s", count: 40)
        let server = try await TestServer.make { $0.metrics.scrapeToken = scrape }
        defer { server.removeData() }
        let (_, adminPassword) = try await server.addUser("root", admin: true)
        try await server.run { api in
            let alice = try await api.newUser("alice")
            let bob = try await api.newUser("bob")
            #expect(try await api.call(.get, "/metrics").status == .unauthorized)
            #expect(try await api.call(.get, "/metrics", token: alice).status == .forbidden)
            #expect(try await api.call(.get, "/metrics", token: "x" + scrape).status == .unauthorized)
            #expect(try await api.call(.get, "/metrics", token: scrape).status == .ok)
            let admin = try await api.login("root", adminPassword).accessToken
            func chunkLines() async throws -> [String: Double] {
                let text = String(buffer: try await api.call(.get, "/metrics", token: admin).body)
                #expect(!text.contains("dedup"))
                var out: [String: Double] = [:]
                for line in text.split(separator: "\n") where line.hasPrefix("ferry_chunk") {
                    let parts = line.split(separator: " ")
                    out[String(parts[0])] = Double(parts[1])
                }
                return out
            }
            let known = Array("content alice has".utf8), fresh = Array("content nobody has".utf8)
            #expect(known.count + 1 == fresh.count)
            _ = try await api.call(.put, "/chunks/\(ContentHash.of(known).hex)", token: alice, body: ByteBuffer(bytes: known))
            let before = try await chunkLines()
            _ = try await api.call(.put, "/chunks/\(ContentHash.of(known).hex)", token: bob, body: ByteBuffer(bytes: known))
            let afterKnown = try await chunkLines()
            _ = try await api.call(.put, "/chunks/\(ContentHash.of(fresh).hex)", token: bob, body: ByteBuffer(bytes: fresh))
            let afterFresh = try await chunkLines()
            // Uploading content someone has moves the counters exactly as new content does
            // (bytes aside, which bob knows anyway).
            for (name, value) in afterKnown where !name.contains("bytes") {
                #expect(value - before[name, default: 0] == afterFresh[name, default: 0] - value, "\(name)")
            }
            #expect(afterKnown["ferry_chunk_bytes_received_total", default: 0] - before["ferry_chunk_bytes_received_total", default: 0] == Double(known.count))
        }
    }

    // MARK: request bodies

    @Test func theMissingChunksQueryHasItsOwnLimit() async throws {
        try await withLibrary { api, token, _ in
            let body = ByteBuffer(repeating: UInt8(ascii: " "), count: ChunkRoutes.missingQueryBytes + 1)
            let r = try await api.call(.post, "/chunks/missing", token: token, body: body, headers: [.contentType: "application/json"])
            #expect(r.status == .contentTooLarge)
        }
    }

    /// A large body goes only to the fast reader: one it cannot read is refused, not handed to
    /// Foundation (which grew the server by 28 bytes per byte of JSON).
    @Test func largeBodiesMustBePlainJSON() async throws {
        try await withLibrary { api, token, lib in
            func operations(count: Int, extra: String) -> String {
                (0..<count).map { #"{"op":"put","path":"d\#($0)","kind":"directory"\#(extra)}"# }.joined(separator: ",")
            }
            // Over 1 MiB with an unknown member: Foundation would have ignored it and taken it.
            let unknown = #"{"operations":[\#(operations(count: 4000, extra: #","padding":"\#(String(repeating: "x", count: 300))""#))]}"#
            #expect(unknown.utf8.count > JSONBodies.smallLimit)
            let refused = try await api.call(.post, "/libraries/\(lib)/commit", token: token, body: ByteBuffer(string: unknown))
            #expect(refused.status == .badRequest && api.errorCode(refused) == "invalid_json")
            // The same size in the plain shape, with an escaped emoji (as Python's json writes it), is taken.
            let plain = #"{"operations":[\#(operations(count: 3999, extra: "")),{"op":"put","path":"\ud83d\ude00\#(String(repeating: "y", count: 200))","kind":"directory"}],"brief":true}"#
            let padded = plain + String(repeating: " ", count: max(0, JSONBodies.smallLimit + 10 - plain.utf8.count))
            let taken = try await api.call(.post, "/libraries/\(lib)/commit", token: token, body: ByteBuffer(string: padded))
            #expect(taken.status == .ok, "\(String(buffer: taken.body).prefix(300))")
            let current = try await api.call(.get, "/libraries/\(lib)/list?limit=5000", token: token)
            #expect(String(buffer: current.body).contains("😀"))
            // A small body with an unknown member is still decoded as before.
            let small = try await api.call(.post, "/libraries/\(lib)/commit", token: token,
                                           body: ByteBuffer(string: #"{"operations":[{"op":"put","path":"z","kind":"directory","note":1}]}"#))
            #expect(small.status == .ok)
        }
    }

    // MARK: modes

    @Test func setuidSetgidAndStickyBitsAreRefused() async throws {
        try await withLibrary { api, token, lib in
            for mode: Int32 in [0o4755, 0o2755, 0o1777] {
                let op = CommitOperation(op: .put, path: try FerryPath("bin\(mode)"), base: nil, kind: .directory, mode: mode)
                let result = try await api.commit(lib, [op], token: token).results[0]
                #expect(result.status == .rejected && result.error?.message.contains("0o777") == true)
            }
            let ok = CommitOperation(op: .put, path: try FerryPath("plain"), base: nil, kind: .directory, mode: 0o750)
            #expect(try await api.commit(lib, [ok], token: token).results[0].status == .ok)
            let put = try await api.call(.put, "/libraries/\(lib)/files?path=tool&mode=\(0o4755)", token: token, body: ByteBuffer(string: "#!/bin/sh"))
            #expect(put.status == .badRequest)
        }
    }

    // MARK: stolen password recovery

    @Test(.eachBackend) func aPasswordChangeRevokesDevicesAndSwitchesOffWhatTheyAndEndedSessionsMade() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let (user, password) = try await server.addUser("alice")
        try await server.run { api in
            let session = try await api.login("alice", password).accessToken
            let device = try await api.registerDevice("laptop", token: session).token
            let kept = try await api.registerDevice("desk", token: session)
            // Made before webhooks needed a session: by the device.
            let store = server.services.store
            let deviceId = try api.decode(MeResponse.self, try await api.call(.get, "/auth/me", token: device)).deviceId!
            let byDevice = try await store.createWebhook(userId: user.id, createdBy: .init(kind: .device, id: deviceId), url: "https://example.com/d",
                                                         events: try EventFilter(["*"]), secret: "0123456789abcdef", active: true, keepResponseExcerpts: false,
                                                         tlsFingerprint: nil)
            let created = try await api.call(.post, "/webhooks", token: session,
                                             json: CreateWebhookRequest(url: "https://example.com/s", events: try EventFilter(["*"])))
            #expect(created.status == .created)
            let bySession = try api.decode(CreatedWebhookResponse.self, created).webhook
            #expect(bySession.createdBy?.kind == .session)

            // Revoking the device switches off what it made.
            #expect(try await api.call(.delete, "/devices/\(deviceId)", token: session).status == .noContent)
            var hooks = try await store.webhooks(userId: user.id)
            #expect(hooks.first { $0.id == byDevice.id }?.active == false)
            #expect(hooks.first { $0.id == bySession.id }?.active == true)

            // The password changes: sessions end, the other device is revoked, the session's webhook is off.
            let revoked = try await store.setPassword(userId: user.id, passwordHash: try server.services.passwords.hash("new password!"), revokeDevices: true)
            #expect(revoked.map(\.id) == [kept.device.id])
            #expect(try await api.call(.get, "/auth/me", token: kept.token).status == .unauthorized)
            #expect(try await api.call(.get, "/auth/me", token: session).status == .unauthorized)
            hooks = try await store.webhooks(userId: user.id)
            let off = try #require(hooks.first { $0.id == bySession.id })
            #expect(!off.active && off.disabledReason?.contains("password change") == true)
        }
    }

    @Test(.eachBackend) func keepDevicesLeavesDevicesWorking() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let (user, password) = try await server.addUser("alice")
        try await server.run { api in
            let device = try await api.registerDevice("laptop", token: try await api.login("alice", password).accessToken).token
            #expect(try await server.services.store.setPassword(userId: user.id, passwordHash: "x", revokeDevices: false).isEmpty)
            #expect(try await api.call(.get, "/auth/me", token: device).status == .ok)
        }
    }

    @Test(.eachBackend) func webhooksAreManagedFromASessionOnly() async throws {
        try await withDevice { api, user, device, _ in
            let request = CreateWebhookRequest(url: "https://example.com/hook", events: try EventFilter(["*"]))
            let refused = try await api.call(.post, "/webhooks", token: device, json: request)
            #expect(refused.status == .forbidden && String(buffer: refused.body).contains("session"))
            let created = try api.decode(CreatedWebhookResponse.self, try await api.call(.post, "/webhooks", token: user, json: request))
            let id = created.webhook.id
            // Reading is allowed to the device; changing is not.
            #expect(try await api.call(.get, "/webhooks", token: device).status == .ok)
            #expect(try await api.call(.get, "/webhooks/\(id)/deliveries", token: device).status == .ok)
            #expect(try await api.call(.patch, "/webhooks/\(id)", token: device, json: UpdateWebhookRequest(active: false)).status == .forbidden)
            #expect(try await api.call(.post, "/webhooks/\(id)/test", token: device).status == .forbidden)
            #expect(try await api.call(.delete, "/webhooks/\(id)", token: device).status == .forbidden)
            let ping = try api.decode(DeliveryInfo.self, try await api.call(.post, "/webhooks/\(id)/test", token: user))
            #expect(try await api.call(.post, "/deliveries/\(ping.id)/redeliver", token: device).status == .forbidden)
            let listed = try api.decode(WebhookListResponse.self, try await api.call(.get, "/webhooks", token: user)).webhooks
            #expect(listed.first?.createdBy?.kind == .session && listed.first?.keepResponseExcerpts == false)
        }
    }

    // MARK: the security log

    @Test(.eachBackend) func theSecurityLogIsForAdministratorsPagedAndPruned() async throws {
        let server = try await TestServer.make { $0.security.logRetentionDays = 30 }
        defer { server.removeData() }
        let (_, adminPassword) = try await server.addUser("root", admin: true)
        let (alice, alicePassword) = try await server.addUser("alice")
        let store = server.services.store
        try await store.recordSecurityEvent(.init(at: Date().addingTimeInterval(-40 * 86400), kind: .loginFailed, userId: alice.id, username: "alice"))
        try await server.run { api in
            for _ in 0..<3 { _ = try await api.login("alice", alicePassword) }
            let user = try await api.login("alice", alicePassword).accessToken
            #expect(try await api.call(.get, "/admin/security-log", token: user).status == .forbidden)
            let admin = try await api.login("root", adminPassword).accessToken
            struct Page: Decodable { let events: [SecurityEvent]; let next_before: Int64? }
            let first = try api.decode(Page.self, try await api.call(.get, "/admin/security-log?user=alice&limit=2", token: admin))
            #expect(first.events.count == 2 && first.events.allSatisfy { $0.username == "alice" })
            let next = try #require(first.next_before)
            let second = try api.decode(Page.self, try await api.call(.get, "/admin/security-log?user=alice&limit=100&before=\(next)", token: admin))
            #expect(second.events.count == 3 && second.next_before == nil)  // two more logins and the old failure
            let since = Date().addingTimeInterval(-3600).ISO8601Format()
            let recent = try api.decode(Page.self, try await api.call(.get, "/admin/security-log?user=alice&since=\(since)", token: admin))
            #expect(recent.events.count == 4)
            #expect(try await api.call(.get, "/admin/security-log?since=yesterday", token: admin).status == .badRequest)
            #expect(try await api.call(.get, "/admin/security-log?user=nobody", token: admin).status == .notFound)
        }
        await UpkeepService(services: server.services).runOnce()
        let left = try await store.securityEvents(userId: alice.id, limit: 100)
        #expect(left.count == 4 && left.allSatisfy { $0.at > Date().addingTimeInterval(-86400) })
    }

    // MARK: configuration

    @Test func unknownAndInvalidConfigurationKeysAreRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (json, needle) in [
            (#"{"http": {"trustedProxy": ["10.0.0.1"]}}"#, "http.trustedProxy"),
            (#"{"prot": 1}"#, "'prot'"),
            (#"{"http": {"trustedProxies": ["10.0.0.1/40"]}}"#, "trustedProxies"),
            (#"{"metrics": {"scrapeToken": "short"}}"#, "scrapeToken"),
            (#"{"security": {"logRetentionDays": 0}}"#, "logRetentionDays"),
            (#"{"auth": {"maxConcurrentPasswordChecks": 0}}"#, "maxConcurrentPasswordChecks"),
        ] {
            let file = dir.appendingPathComponent("c.json")
            try Data(json.utf8).write(to: file)
            #expect(throws: ConfigurationError.self, "\(json)") { try ServerConfiguration.load(path: file.path) }
            do { _ = try ServerConfiguration.load(path: file.path) } catch { #expect("\(error)".contains(needle), "\(error)") }
        }
    }
}

extension SecurityTests {
    static func body(_ username: String, _ password: String) -> ByteBuffer {
        ByteBuffer(bytes: try! JSONCoding.encoder.encode(LoginRequest(username: username, password: password)))
    }
}

/// The most callers seen inside a gate at once, overall and per key.
actor PeakCounter {
    private var now: [String: Int] = [:]
    private(set) var overall = 0
    private(set) var perKey = 0

    func enter(_ key: String) {
        now[key, default: 0] += 1
        overall = max(overall, now.values.reduce(0, +))
        perKey = max(perKey, now[key]!)
    }

    func leave(_ key: String) { now[key, default: 1] -= 1 }
}

/// Holds callers until opened; every later caller passes at once.
actor Latch {
    private var isOpen = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func wait() async {
        if isOpen { return }
        await withCheckedContinuation { waiting.append($0) }
    }

    func open() {
        isOpen = true
        for continuation in waiting { continuation.resume() }
        waiting.removeAll()
    }
}
