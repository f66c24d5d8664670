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
    /// A loopback port free right now.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw SystemCallError("bind", errno: errno) }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    final class ServerProcess: Sendable {
        let process: Process
        init(data: String, config: String, port: Int) throws {
            process = Process()
            process.executableURL = URL(fileURLWithPath: CLITests.binary("ferry-server"))
            process.arguments = ["serve", "--data", data, "--config", config, "--port", String(port)]
            process.environment = ["LOG_LEVEL": "critical", "PATH": "/usr/bin:/bin"]
            process.standardError = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            try process.run()
        }

        func kill9() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    static func waitForHealth(_ url: String) async -> Bool {
        await eventually {
            let api = ServerAPI.open(serverURL: url, token: "")
            defer { Task { await api.close() } }
            return (try? await api.health()) == true
        }
    }

    @Test func anEventCommittedBeforeSIGKILLIsDeliveredAfterRestart() async throws {
        let data = scratchDirectory("crash-server")
        let config = data + ".json"
        try Data(#"{"auth": {"pbkdf2Iterations": 1000}, "storage": {"reserveBytes": 0}, "webhooks": {"allowPrivateTargets": true, "retryBackoffSeconds": [0, 0.1, 0.1]}}"#.utf8)
            .write(to: URL(fileURLWithPath: config))
        let add = Process()
        add.executableURL = URL(fileURLWithPath: CLITests.binary("ferry-server"))
        add.arguments = ["user", "add", "kim", "--password-stdin", "--data", data, "--config", config]
        let input = Pipe()
        add.standardInput = input
        add.standardOutput = FileHandle.nullDevice
        try add.run()
        input.fileHandleForWriting.write(Data("kim-password-1\n".utf8))
        try input.fileHandleForWriting.close()
        add.waitUntilExit()
        #expect(add.terminationStatus == 0)

        let port = try Self.freePort()
        let url = "http://127.0.0.1:\(port)"
        try await withHookReceiver(holdFirst: 1) { hookURL, log in
            let first = try ServerProcess(data: data, config: config, port: port)
            #expect(await Self.waitForHealth(url))
            let (api, _) = try await ServerAPI.enroll(serverURL: url, username: "kim", password: "kim-password-1", deviceName: "desk")
            let hook = try await api.createWebhook(url: hookURL, events: try EventFilter(["file.created"]))
            let library = try await api.library(named: "docs")
            let commit = try await api.commit(library: library.id, [CommitOperation(op: .put, path: try FerryPath("reports"), base: nil, kind: .directory)])
            #expect(commit.results.first?.status == .ok)

            // The delivery is in flight (the receiver holds it) when the server dies.
            #expect(await eventually { await log.requests.count == 1 })
            first.kill9()
            await api.close()

            let second = try ServerProcess(data: data, config: config, port: port)
            defer { second.kill9() }
            #expect(await Self.waitForHealth(url))
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
