import FerryCore
import FerryTestSupport
import Foundation
import Logging
import NIOPosix
import Testing

@testable import FerryServer

#if canImport(Glibc)
import Glibc
#endif

/// A raw TCP client for what no polite HTTP client does: stop mid-request, trickle bytes,
/// declare absurd lengths, or just sit there. Blocking calls, run on the thread pool.
final class RawConnection: @unchecked Sendable {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard Loopback.connect(fd, port: port) else {
            let code = errno  // before close() can change it
            close(fd)
            throw SystemCallError("connect", errno: code)
        }
    }

    deinit { close(fd) }

    /// Sends bytes; false once the server has closed the connection.
    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) == $0.count }
    }

    /// Everything the server sends until it closes the connection, `enough` holds for what
    /// arrived, or `timeout` passes; `closed` tells whether the server closed it.
    func readUntilClosed(timeout: Duration, enough: @escaping @Sendable (String) -> Bool = { _ in false }) async throws -> (text: String, closed: Bool) {
        try await NIOThreadPool.singleton.runIfActive { [fd] in
            var out = [UInt8]()
            let deadline = ContinuousClock.now + timeout
            var buffer = [UInt8](repeating: 0, count: 16 * 1024)
            while ContinuousClock.now < deadline {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 50) > 0 else { continue }
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return (String(decoding: out, as: UTF8.self), true) }
                out += buffer[..<n]
                if enough(String(decoding: out, as: UTF8.self)) { break }
            }
            return (String(decoding: out, as: UTF8.self), false)
        }
    }
}

/// Clients that are slow, stuck or hostile on purpose must not hold the server's memory,
/// connections or staging space: each is cut or refused and leaves nothing behind, and the
/// server keeps answering everyone else.
@Suite("Slow and hostile clients", .serialized)
struct SlowClientTests {
    /// A live server on loopback with short limits; `body` gets its port and a device token.
    static func withLiveServer(idleTimeoutSeconds: Int64 = 1, _ body: (Int, String, TestServer) async throws -> Void) async throws {
        let server = try await TestServer.make {
            $0.http.idleTimeoutSeconds = idleTimeoutSeconds
            $0.http.requestBodyTimeoutSeconds = 2
        }
        defer { server.removeData() }
        let (user, _) = try await server.addUser("mallory")
        let token = TokenService.randomToken(prefix: TokenService.devicePrefix)
        _ = try await server.services.store.createDevice(userId: user.id, name: "raw", tokenHash: TokenService.storedHash(token))
        try await FerryServerApp.withRunningServer(server.services) { port in try await body(port, token, server) }
    }

    /// Established TCP connections whose local end is `port` on loopback (the server's
    /// side of its clients' connections), from /proc/net/tcp and tcp6.
    static func serverSideConnections(port: Int) -> Int {
        let hexPort = String(format: "%04X", port)
        var count = 0
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            // Read to the end: a /proc file has no size, and a one-read loader sees only the
            // first page of a table that other suites' connections make long.
            guard let data = FileHandle(forReadingAtPath: table)?.readDataToEndOfFile() else { continue }
            let text = String(decoding: data, as: UTF8.self)
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count > 3 else { continue }
                // local_address is HEXADDR:HEXPORT; state 01 is ESTABLISHED.
                if fields[1].hasSuffix(":" + hexPort) && fields[3] == "01" { count += 1 }
            }
        }
        return count
    }

    static func healthy(_ port: Int) async throws -> Bool {
        let c = try RawConnection(port: port)
        c.send("GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return try await c.readUntilClosed(timeout: .seconds(10)).text.hasPrefix("HTTP/1.1 200")
    }

    static func upload(_ hash: String, length: Int, token: String) -> String {
        "PUT /api/v1/chunks/\(hash) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nContent-Length: \(length)\r\n\r\n"
    }

    static let someHash = String(repeating: "ab", count: 32)

    @Test func aBodyThatStopsArrivingIsCutAtTheIdleTimeoutAndLeavesNothing() async throws {
        try await Self.withLiveServer { port, token, server in
            let c = try RawConnection(port: port)
            #expect(c.send(Self.upload(Self.someHash, length: 1 << 20, token: token)))
            #expect(c.send([UInt8](repeating: 7, count: 64 * 1024)))
            let answer = try await c.readUntilClosed(timeout: .seconds(15))
            #expect(answer.closed, "a stalled upload must not hold its connection")
            #expect(await eventuallyTrue { (try? server.stagedFiles().isEmpty) == true })
            #expect(try await Self.healthy(port))
        }
    }

    @Test func aTrickledBodyGets408AtTheBodyDeadlineAndLeavesNothing() async throws {
        try await Self.withLiveServer { port, token, server in
            let c = try RawConnection(port: port)
            #expect(c.send(Self.upload(Self.someHash, length: 1 << 20, token: token)))
            // One byte every 250 ms: never idle for a second, never done either.
            let trickle = Task.detached {
                for _ in 0..<60 {
                    guard c.send([1]) else { return }
                    try? await Task.sleep(for: .milliseconds(250))
                }
            }
            let answer = try await c.readUntilClosed(timeout: .seconds(15)) { $0.contains("request_timeout") }
            trickle.cancel()
            #expect(answer.text.hasPrefix("HTTP/1.1 408"), "\(answer.text.prefix(200))")
            #expect(answer.text.contains("request_timeout"))
            #expect(await eventuallyTrue { (try? server.stagedFiles().isEmpty) == true })
            #expect(try await Self.healthy(port))
        }
    }

    @Test func aSlowButSteadyBodyKeepsEarningTime() async throws {
        // The idle timeout is not what this test is about: on a loaded machine the sender
        // can be starved past one second between pieces, so it gets room here.
        try await Self.withLiveServer(idleTimeoutSeconds: 30) { port, token, server in
            // 30 KB at about 10 KB/s: three times the 2 s allowance, but every 500 bytes
            // earn another second.
            let body = (0..<30_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let c = try RawConnection(port: port)
            #expect(c.send(Self.upload(ContentHash.of(body).hex, length: body.count, token: token)))
            for start in stride(from: 0, to: body.count, by: 1000) {
                #expect(c.send(Array(body[start..<min(body.count, start + 1000)])))
                try await Task.sleep(for: .milliseconds(100))
            }
            let answer = try await c.readUntilClosed(timeout: .seconds(10)) { $0.contains("}") }
            #expect(answer.text.hasPrefix("HTTP/1.1 201"), "\(answer.text.prefix(200))")
            #expect(try await server.storedBlobs().count == 1)
        }
    }

    @Test func headersThatNeverEndAreCut() async throws {
        try await Self.withLiveServer { port, _, _ in
            let c = try RawConnection(port: port)
            c.send("GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            #expect(try await c.readUntilClosed(timeout: .seconds(15)).closed)
        }
    }

    @Test func anAbsurdDeclaredLengthIs413BeforeAnyOfTheBodyIsRead() async throws {
        try await Self.withLiveServer { port, token, server in
            for request in [Self.upload(Self.someHash, length: 1 << 40, token: token),
                            "POST /api/v1/chunks/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: \(1 << 40)\r\n\r\n",
                            "POST /api/v1/libraries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\nContent-Length: \(1 << 40)\r\n\r\n"] {
                let c = try RawConnection(port: port)
                c.send(request)
                let answer = try await c.readUntilClosed(timeout: .seconds(0.8))
                #expect(answer.text.hasPrefix("HTTP/1.1 413"), "\(request.prefix(40)): \(answer.text.prefix(120))")
            }
            #expect(try server.stagedFiles().isEmpty)
        }
    }

    /// The count the next test relies on sees a listener's side of a connection (the kernel
    /// completes a loopback handshake before `accept`), and only while it is open.
    @Test func theServerSideCountSeesAnOpenConnection() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        let port = try Loopback.bind(listener)
        try #require(listen(listener, 4) == 0)
        #expect(Self.serverSideConnections(port: port) == 0)
        var client: RawConnection? = try RawConnection(port: port)
        #expect(Self.serverSideConnections(port: port) == 1)
        _ = client
        client = nil
        #expect(Self.serverSideConnections(port: port) == 0)
    }

    @Test func hundredsOfIdleConnectionsAreClosedAndTheServerKeepsAnswering() async throws {
        try await Self.withLiveServer { port, _, _ in
            let idle = try (0..<300).map { _ in try RawConnection(port: port) }
            #expect(try await Self.healthy(port))
            for c in idle { #expect(try await c.readUntilClosed(timeout: .seconds(15)).closed) }
            // The server's side of each is gone too. Counted from the kernel's table of this
            // port's connections, not from the process's descriptors, which other suites
            // running alongside (PostgreSQL pools) open and close meanwhile.
            _ = idle.count
            #expect(await eventuallyTrue { Self.serverSideConnections(port: port) == 0 })
        }
    }
}

/// Polls every 20 ms until `condition` holds or `timeout` passes, and asks once more at the
/// end: a poller kept off the CPU past its deadline (a loaded full run) still sees what
/// happened meanwhile.
func eventuallyTrue(timeout: Duration = .seconds(10), _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}
