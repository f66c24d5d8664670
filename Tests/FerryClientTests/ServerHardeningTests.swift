import AsyncHTTPClient
@testable import FerryClient
import FerryCore
import FerryHarness
import FerryServer
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// Issue 20's server fixes, tried the way an attacker or an operator meets them: real
/// connections in parallel, real processes, a disk that really fills.
@Suite("server hardening", .serialized)
struct ServerHardeningTests {
    /// 30 logins at once, over as many connections, used to be checked 30 times (29 wrong and
    /// the right one accepted); the attempt is now reserved before the password is hashed.
    @Test func parallelLoginsCannotPassTheLimit() async throws {
        // A real hashing cost, so the attempts overlap as they would against a release build.
        try await Cloud.with(configure: {
            $0.auth.pbkdf2Iterations = 100_000
            $0.auth.loginDelaySeconds = 60  // no delay runs out while the 30 are checked, however loaded the machine
        }) { cloud in
            let user = try await cloud.user("alice")
            let api = ServerAPI.open(serverURL: cloud.url, token: "")
            defer { Task { await api.close() } }
            let statuses = await withTaskGroup(of: Int.self) { group in
                for _ in 0..<30 {
                    group.addTask {
                        do { _ = try await api.login(username: user.name, password: "wrong"); return 200 } catch let e as APIFailure {
                            return e.status
                        } catch { return -1 }
                    }
                }
                return await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 401 }.count == 5, "\(statuses)")
            #expect(statuses.filter { $0 == 429 }.count == 25, "\(statuses)")
            do {
                _ = try await api.login(username: user.name, password: user.password)
                Issue.record("the right password got in past the limit")
            } catch let refusal as APIFailure {
                #expect(refusal.status == 429 && refusal.code == "rate_limited" && (refusal.retryAfter ?? 0) > 0)
            }
        }
    }

    /// `curl -T -` sends no length: the reserve used to be checked against 0 bytes and the
    /// upload could then fill the disk past it.
    @Test(.enabled(if: canMount, "needs root to mount a tmpfs"))
    func anUploadOfUnknownLengthKeepsTheDiskReserve() async throws {
        try await withTmpfs(size: "48m") { disk in
            try await Cloud.with(dataDirectory: disk + "/data", configure: { $0.storage.reserveBytes = 24 << 20 }) { cloud in
                let user = try await cloud.user("alice")
                let (device, _) = try await ServerAPI.enroll(serverURL: cloud.url, username: user.name, password: user.password, deviceName: "d")
                defer { Task { await device.close() } }
                let library = try await device.library(named: "docs")
                var request = HTTPClientRequest(url: cloud.url + "/api/v1/libraries/\(library.id)/files?path=big.bin")
                request.method = .PUT
                request.headers.add(name: "Authorization", value: "Bearer \(device.token)")
                let (pieces, sink) = AsyncStream<ByteBuffer>.makeStream()
                for n in 0..<32 { sink.yield(ByteBuffer(bytes: seededBytes(1 << 20, seed: UInt64(n)))) }
                sink.finish()
                request.body = .stream(pieces, length: .unknown)
                let response = try await device.client.execute(request, timeout: .seconds(60))
                let body = try await response.body.collect(upTo: 1 << 16)
                #expect(response.status.code == 507, "\(String(buffer: body))")
                let free = try cloud.services.blobs.freeBytes()
                #expect(free >= 24 << 20 - FerryProtocol.maxChunkSize, "the upload went \(24 << 20 - free) bytes into the reserve")
                #expect(try await device.list(library: library.id, directory: nil).entries.isEmpty)
            }
        }
    }

    /// A second server on the same data directory would deliver every webhook twice.
    @Test func aSecondServerOnTheSameDataDirectoryStopsAtOnce() async throws {
        let server = try await RealServer.prepare(user: "kim", password: "kim-password-1")
        let first = try await server.start()
        defer { first.kill9() }
        let other = RealServer(data: server.data, config: server.config, port: try freeLoopbackPort())
        let second = try await runTool(CLITests.binary("ferry-server"),
                                       ["serve", "--data", other.data, "--config", other.config, "--port", String(other.port)])
        #expect(second.status != 0)
        #expect(second.err.contains("already serving") && second.err.contains("pid \(first.process.pid)"), "\(second.err)")
        // Admin commands still work beside it.
        #expect(try await server.tool("user", "list").status == 0)
    }

    @Test func passwdRevokesDevicesUnlessToldNotToAndTheSecurityLogShowsIt() async throws {
        let server = try await RealServer.prepare(user: "kim", password: "kim-password-1")
        let running = try await server.start()
        defer { running.kill9() }
        let (laptop, _) = try await ServerAPI.enroll(serverURL: server.url, username: "kim", password: "kim-password-1", deviceName: "laptop")
        defer { Task { await laptop.close() } }
        let keep = try await server.tool("user", "passwd", "kim", "--password-stdin", "--keep-devices", stdin: "kim-password-2\n")
        #expect(keep.status == 0 && keep.out.contains("sessions were ended"), "\(keep.err)")
        _ = try await laptop.me()

        await #expect(throws: APIFailure.self) { _ = try await laptop.login(username: "kim", password: "kim-password-1") }
        let passwd = try await server.tool("user", "passwd", "kim", "--password-stdin", stdin: "kim-password-3\n")
        #expect(passwd.status == 0 && passwd.out.contains("1 device(s) revoked"), "\(passwd.out) \(passwd.err)")
        await #expect(throws: APIFailure.self) { _ = try await laptop.me() }

        let log = try await server.tool("security-log", "--since", "1h", "--user", "kim")
        #expect(log.status == 0, "\(log.err)")
        for kind in ["login.failed", "password.changed", "device.revoked", "device.registered"] {
            #expect(log.out.contains(kind), "\(kind) missing from: \(log.out)")
        }
        let json = try await server.tool("security-log", "--json", "--limit", "2")
        let lines = json.out.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.allSatisfy { (try? JSONCoding.decoder.decode(SecurityEvent.self, from: Data($0.utf8))) != nil })
        #expect(try await server.tool("security-log", "--since", "last tuesday").status != 0)
    }

    /// A receiver's answer is the receiver's data: the delivery log keeps it only when asked.
    @Test func responseExcerptsAreKeptOnlyWhenTheOwnerAsks() async throws {
        try await Cloud.with(configure: WebhookTests.fast) { cloud in
            try await withHookReceiver { url, _ in
                let a = try await Device.make(cloud, user: try await cloud.user("quiet"), name: "alpha")
                defer { Task { await a.close() } }
                let session = try await a.session()
                let quiet = try await session.createWebhook(url: url, events: try EventFilter(["ping"]))
                let chatty = try await session.createWebhook(url: url, events: try EventFilter(["ping"]), keepResponseExcerpts: true)
                #expect(!quiet.webhook.keepResponseExcerpts && chatty.webhook.keepResponseExcerpts)
                for hook in [quiet, chatty] { _ = try await session.testWebhook(id: hook.webhook.id) }
                for hook in [quiet, chatty] {
                    #expect(try await eventually { try await a.api.deliveries(webhook: hook.webhook.id).deliveries.first?.state == .delivered })
                }
                #expect(try await a.api.deliveries(webhook: quiet.webhook.id).deliveries[0].attempts[0].response == nil)
                #expect(try await a.api.deliveries(webhook: chatty.webhook.id).deliveries[0].attempts[0].response == "answer 200")
                // The owner can change it later.
                let on = try await session.updateWebhook(id: quiet.webhook.id, UpdateWebhookRequest(keepResponseExcerpts: true))
                #expect(on.keepResponseExcerpts)
            }
        }
    }
}
