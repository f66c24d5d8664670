import ArgumentParser
import AsyncHTTPClient
import FerryCore
import FerryHarness
import FerryServer
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// `ferry-bench longpoll`: the limit a big deployment meets first on one instance (SPEC §9,
/// docs/scaling.md). Idle devices each hold one long-poll on `/changes`; the benchmark
/// measures the real `ferry-server` process's memory per parked long-poll and the time one
/// commit takes to wake all of them. References, measured in the same run: a bare idle
/// connection (TCP and an HTTP/1 channel, no request) on a server of its own, and one
/// long-poll woken by one commit.
///
/// The long-polls are raw sockets (one request each, written once, read by one `poll(2)`
/// loop), so the client's own cost stays out of the server's numbers and out of the wake-up
/// time. They share one device token: the server keeps nothing per token for a long-poll.
struct LongPollBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "longpoll",
        abstract: "Idle devices holding long-polls on one instance: memory per parked long-poll and the time one commit takes to wake them all.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Idle devices, each holding one long-poll (default: 10000; --quick: 300).") var devices: Int?

    /// The scrape token the benchmark's servers accept on /metrics (it reads their gauge of
    /// parked long-polls).
    static let scrapeToken = "longpoll-benchmark-scrape-token-0123456789"
    static func configure(_ settings: inout ServerConfiguration) {
        settings.http.idleTimeoutSeconds = 900
        settings.metrics.scrapeToken = scrapeToken
    }

    /// What waking `count` long-polls with one commit measured.
    struct Wake {
        /// Server RSS growth per parked long-poll, bytes.
        var bytesPerPoll: Double
        /// Seconds from the commit request's start to each long-poll's answer, sorted. (Its
        /// acknowledgement races the answers: a woken long-poll often answers first.)
        var seconds: [Double]
        /// Seconds the parking took (connect, send, until the server counted them all).
        var parkSeconds: Double
    }

    func run() async throws {
        let root = try options.makeScratch()
        defer { options.removeScratch(root) }
        let count = devices ?? (options.quick ? 300 : 10_000)
        guard count > 0 else { throw ValidationError("--devices must be at least 1") }
        try Self.raiseDescriptorLimit(to: count + 512)

        let bare = try await ServerProcess.with(root: root, configure: Self.configure) { process, _ in
            try await Self.bareConnectionBytes(count, process: process)
        }
        try FileManager.default.createDirectory(atPath: root + "/polls", withIntermediateDirectories: true)
        let (single, many) = try await ServerProcess.with(root: root + "/polls", configure: Self.configure) { process, server in
            try await uploadBytes(seededBytes(4096, seed: 1), as: "warm-up.bin", to: server)
            let single = try await Self.wake(1, process: process, server: server)
            let many = try await Self.wake(count, process: process, server: server)
            return (single, many)
        }
        let ms = { (s: Double) in s * 1000 }
        let kib = { (b: Double) in b / 1024 }
        let rows = [
            BenchRow(name: "server RSS per parked long-poll (\(count) idle devices)", value: kib(many.bytesPerPoll), unit: "KiB",
                     reference: "bare idle connection", referenceValue: kib(bare), goal: "< 50 KiB"),
            BenchRow(name: "one commit wakes all \(count): last answer", value: ms(many.seconds.last ?? 0), unit: "ms",
                     reference: "one long-poll", referenceValue: ms(single.seconds.last ?? 0), goal: "< 1000 ms"),
            BenchRow(name: "one commit wakes all \(count): p50 answer", value: ms(percentile(many.seconds, 50)), unit: "ms"),
            BenchRow(name: "one commit wakes all \(count): p99 answer", value: ms(percentile(many.seconds, 99)), unit: "ms"),
            BenchRow(name: "parking \(count) long-polls (connect, request, counted by the server)", value: many.parkSeconds, unit: "s"),
        ]
        try BenchReport(benchmark: "longpoll", mode: options.quick ? "quick" : "full", machine: BenchReport.machine(), rows: rows)
            .emit(json: options.json)
    }

    /// Server RSS growth per connection that is open and idle, no request sent: the floor a
    /// long-poll's own cost sits on.
    static func bareConnectionBytes(_ count: Int, process: ServerProcess) async throws -> Double {
        let before = process.residentBytes
        let descriptors = LeakBenchmark.openDescriptors(process.pid)
        let sockets = try RawSockets(count: count, port: process.port)
        guard try await SyncBenchmark.poll(timeout: .seconds(120), { LeakBenchmark.openDescriptors(process.pid) >= descriptors + count }) else {
            throw BenchError("the server did not accept \(count) connections")
        }
        // The channels are set up just after accept: read the memory once it stops moving.
        let grown = Double(try await settledResidentBytes(process) - before) / Double(count)
        sockets.closeAll()
        return grown
    }

    /// Parks `count` long-polls on the bench library, commits one file, and times the answers.
    static func wake(_ count: Int, process: ServerProcess, server: BenchServer) async throws -> Wake {
        let head: ChangesResponse = try await server.get("/libraries/\(server.library)/changes?since=0&limit=1")
        let before = process.residentBytes
        let parkStart = ContinuousClock.now
        let sockets = try RawSockets(count: count, port: process.port)
        defer { sockets.closeAll() }
        let request = "GET /api/v1/libraries/\(server.library)/changes?since=\(head.head)&wait=\(FerryProtocol.maxWaitSeconds) HTTP/1.1\r\n"
            + "Host: 127.0.0.1\r\nAuthorization: Bearer \(server.token)\r\nConnection: close\r\n\r\n"
        try sockets.sendAll(Array(request.utf8))
        let deadline = ContinuousClock.now + .seconds(180)
        while try await parked(server: server) < count {
            guard ContinuousClock.now < deadline else { throw BenchError("the server parked fewer than \(count) long-polls within 180 s") }
            try await Task.sleep(for: .milliseconds(20))
        }
        let parkSeconds = (ContinuousClock.now - parkStart).timeInterval
        let bytesPerPoll = Double(try await settledResidentBytes(process) - before) / Double(count)
        let answers = Task { try await NIOThreadPool.singleton.runIfActive { try sockets.awaitAnswers(timeout: .seconds(60)) } }
        let manifest = try await putChunks(seededBytes(4096, seed: UInt64(count) + 2), to: server)
        let committing = ContinuousClock.now
        try await commitFile(manifest, as: "wake-\(count).bin", to: server)
        let times = try await answers.value
        let seconds = times.map { ($0 - committing).timeInterval }.sorted()
        return Wake(bytesPerPoll: bytesPerPoll, seconds: seconds, parkSeconds: parkSeconds)
    }

    /// The server's RSS once two samples 50 ms apart agree (at most 10 s): what the
    /// connections just set up cost, not a reading taken halfway through.
    static func settledResidentBytes(_ process: ServerProcess) async throws -> Int {
        var last = process.residentBytes
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            let now = process.residentBytes
            if now == last { return now }
            last = now
        }
        return last
    }

    /// The server's gauge of parked long-polls, read from /metrics with the scrape token.
    static func parked(server: BenchServer) async throws -> Int {
        var request = HTTPClientRequest(url: server.baseURL + "/metrics")
        request.headers.add(name: "Authorization", value: "Bearer \(scrapeToken)")
        let response = try await server.client.execute(request, timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 4 << 20))
        guard response.status == .ok else { throw BenchError("/metrics answered \(response.status.code): \(text.prefix(200))") }
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("ferry_changes_waiting ") }),
              let value = Double(line.split(separator: " ").last ?? "") else {
            throw BenchError("/metrics has no ferry_changes_waiting gauge")
        }
        return Int(value)
    }

    static func raiseDescriptorLimit(to wanted: Int) throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        guard limit.rlim_cur < rlim_t(wanted) else { return }
        guard limit.rlim_max >= rlim_t(wanted) else {
            throw BenchError("\(wanted) descriptors are needed and the hard limit is \(limit.rlim_max); lower --devices or raise 'ulimit -Hn'")
        }
        limit.rlim_cur = rlim_t(wanted)
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw SystemCallError("setrlimit", errno: errno) }
    }

}

/// Many blocking loopback sockets to one port, written once and read by one `poll(2)` loop.
final class RawSockets: @unchecked Sendable {
    private(set) var fds: [Int32] = []

    init(count: Int, port: Int) throws {
        fds.reserveCapacity(count)
        do {
            for _ in 0..<count { fds.append(try Self.connect(port: port)) }
        } catch {
            closeAll()
            throw error
        }
    }

    static func connect(port: Int) throws -> Int32 {
        let fd = try Loopback.socket()
        guard Loopback.connect(fd, port: port) else {
            let code = errno
            close(fd)
            throw SystemCallError("connect", errno: code)
        }
        return fd
    }

    func sendAll(_ bytes: [UInt8]) throws {
        for fd in fds {
            let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent == bytes.count else { throw SystemCallError("send", errno: errno) }
        }
    }

    /// Waits until every socket has answered "HTTP/1.1 200"; returns when each answer's first
    /// bytes arrived. Throws on another status, a closed socket, or the timeout.
    func awaitAnswers(timeout: Duration) throws -> [ContinuousClock.Instant] {
        var pending = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        var heads = [Int32: [UInt8]]()
        var answered: [ContinuousClock.Instant] = []
        answered.reserveCapacity(fds.count)
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 256)
        while !pending.isEmpty {
            guard ContinuousClock.now < deadline else { throw BenchError("\(pending.count) long-polls were not answered in time") }
            let ready = poll(&pending, nfds_t(pending.count), 100)
            guard ready > 0 else { continue }
            let now = ContinuousClock.now
            var still: [pollfd] = []
            still.reserveCapacity(pending.count)
            for entry in pending {
                guard entry.revents != 0 else { still.append(entry); continue }
                let n = buffer.withUnsafeMutableBytes { recv(entry.fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { throw BenchError("a long-poll's connection closed without an answer") }
                var head = heads[entry.fd, default: []] + buffer[..<n]
                if head.count < 12 {
                    heads[entry.fd] = head
                    still.append(pollfd(fd: entry.fd, events: Int16(POLLIN), revents: 0))
                    continue
                }
                head = Array(head.prefix(12))
                guard String(decoding: head, as: UTF8.self) == "HTTP/1.1 200" else {
                    throw BenchError("a long-poll was answered '\(String(decoding: head, as: UTF8.self))'")
                }
                answered.append(now)
            }
            pending = still
        }
        return answered
    }

    func closeAll() {
        for fd in fds { close(fd) }
        fds = []
    }
}
