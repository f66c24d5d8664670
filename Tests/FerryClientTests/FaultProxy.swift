import FerryCore
import FerryTestSupport
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A TCP proxy on 127.0.0.1 between clients and the server that passes, stalls, slows or
/// cuts the connections through it: the network faults a sync client meets on a home LAN
/// (Wi-Fi drops, a NAS that hangs, a slow VPN). Plain blocking sockets on their own threads,
/// one pair of pumps per connection, so nothing here shares the event loops under test.
final class FaultProxy: @unchecked Sendable {
    enum Mode: Sendable, Equatable {
        /// Forward everything at once.
        case pass
        /// Hold every byte (connections stay open, nothing moves) until the mode changes.
        case stall
        /// Forward at most this many bytes per second in each direction.
        case slow(bytesPerSecond: Int)
        /// Reset the connection carrying the traffic each time the total forwarded (both
        /// directions, all connections) crosses another multiple of `bytes`.
        case cutEvery(bytes: Int)
    }

    let port: Int
    private let upstreamPort: Int
    private let listener: Int32
    /// Guards the state below; stalled pumps wait on it for the mode to change.
    private let lock = NSCondition()
    private var mode: Mode
    private var stopped = false
    private var open: Set<Int32> = []
    private var forwarded = 0
    private var nextCut = 0
    private var cutCount = 0
    /// Bumped by `resetAll`: pumps of older connections drop what they still hold.
    private var epoch = 0

    init(upstreamPort: Int, mode: Mode = .pass) throws {
        self.upstreamPort = upstreamPort
        self.mode = mode
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        do {
            port = try Loopback.bind(fd)
            guard listen(fd, 64) == 0 else { throw SystemCallError("proxy listen", errno: errno) }
        } catch {
            close(fd)
            throw error
        }
        listener = fd
        if case .cutEvery(let bytes) = mode { nextCut = bytes }
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Changes the behaviour for traffic from now on, on open and new connections.
    func set(_ newMode: Mode) {
        lock.withLock {
            mode = newMode
            if case .cutEvery(let bytes) = newMode { nextCut = forwarded + bytes }
            lock.broadcast()
        }
    }

    /// Connections still open through the proxy (bytes a dead client had already handed
    /// over may still be on their way to the server until this reaches zero).
    var openConnections: Int { lock.withLock { open.count / 2 } }

    /// How many connections a `cutEvery` mode has reset so far.
    var cuts: Int { lock.withLock { cutCount } }

    /// Resets every open connection, dropping whatever bytes the proxy and the kernel still
    /// hold for it (new connections are still accepted).
    func resetAll() {
        let fds: Set<Int32> = lock.withLock {
            epoch += 1
            lock.broadcast()
            return open
        }
        for fd in fds { Self.reset(fd) }
    }

    /// Stops accepting and closes every connection.
    func stop() {
        let fds: Set<Int32> = lock.withLock {
            stopped = true
            lock.broadcast()
            defer { open = [] }
            return open
        }
        for fd in fds { Self.reset(fd) }
        shutdown(listener, Int32(SHUT_RDWR))
    }

    deinit { close(listener) }

    private var isStopped: Bool { lock.withLock { stopped } }

    private func acceptLoop() {
        while !isStopped {
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 100) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            let connected = Loopback.connect(upstream, port: upstreamPort)
            guard connected, register([client, upstream]) else {
                Self.reset(client)
                close(upstream)
                continue
            }
            let pair = Pair(client: client, upstream: upstream, epoch: lock.withLock { epoch })
            Thread.detachNewThread { [self] in pump(from: client, to: upstream, pair: pair) }
            Thread.detachNewThread { [self] in pump(from: upstream, to: client, pair: pair) }
        }
    }

    /// Both ends of one proxied connection; the second pump to finish closes them.
    private final class Pair: @unchecked Sendable {
        let client: Int32
        let upstream: Int32
        let epoch: Int
        private let lock = NSLock()
        private var finished = 0
        init(client: Int32, upstream: Int32, epoch: Int) {
            self.client = client
            self.upstream = upstream
            self.epoch = epoch
        }
        /// True for the pump that finishes second.
        func finish() -> Bool { lock.withLock { finished += 1; return finished == 2 } }
    }

    private func register(_ fds: [Int32]) -> Bool {
        lock.withLock {
            guard !stopped else { return false }
            open.formUnion(fds)
            return true
        }
    }

    private func pump(from source: Int32, to target: Int32, pair: Pair) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        loop: while true {
            var poller = pollfd(fd: source, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 100)
            if isStopped { break }
            if ready == 0 { continue }
            let n = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            var offset = 0
            while offset < n {
                switch decide(count: n - offset, epoch: pair.epoch) {
                case .wait:
                    waitWhileStalled(epoch: pair.epoch)
                case .send(let count, let pause):
                    guard Self.writeAll(target, buffer, offset, count) else { break loop }
                    offset += count
                    if pause > 0 { usleep(pause) }
                case .drop:
                    break loop
                case .cut(let count):
                    _ = Self.writeAll(target, buffer, offset, count)
                    Self.reset(pair.client)
                    Self.reset(pair.upstream)
                    break loop
                }
            }
        }
        // One side ended: let the other side see the end of the stream too.
        shutdown(target, Int32(SHUT_WR))
        if pair.finish() {
            lock.withLock {
                open.remove(pair.client)
                open.remove(pair.upstream)
            }
            close(pair.client)
            close(pair.upstream)
        }
    }

    /// Blocks a pump while the link is stalled, until the mode changes, its connection is
    /// reset, or the proxy stops; `decide` then says what to do with the bytes it holds.
    private func waitWhileStalled(epoch connectionEpoch: Int) {
        lock.withLock {
            while mode == .stall && !stopped && epoch == connectionEpoch { lock.wait() }
        }
    }

    private enum Step {
        case drop
        case wait
        case send(Int, pauseMicroseconds: UInt32)
        case cut(Int)
    }

    /// What to do with the next `count` bytes under the current mode.
    private func decide(count: Int, epoch connectionEpoch: Int) -> Step {
        lock.withLock {
            if stopped || connectionEpoch != epoch { return .drop }
            switch mode {
            case .pass:
                forwarded += count
                return .send(count, pauseMicroseconds: 0)
            case .stall:
                return .wait
            case .slow(let rate):
                // Slices of 1/50 s worth of bytes, then a pause of 1/50 s.
                let slice = max(1, min(count, rate / 50))
                forwarded += slice
                return .send(slice, pauseMicroseconds: 20_000)
            case .cutEvery(let bytes):
                if forwarded + count < nextCut {
                    forwarded += count
                    return .send(count, pauseMicroseconds: 0)
                }
                let allowed = nextCut - forwarded
                forwarded = nextCut
                nextCut += bytes
                cutCount += 1
                return .cut(allowed)
            }
        }
    }

    private static func writeAll(_ fd: Int32, _ buffer: [UInt8], _ offset: Int, _ count: Int) -> Bool {
        var done = 0
        while done < count {
            let n = buffer.withUnsafeBytes { send(fd, $0.baseAddress! + offset + done, count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    /// Closes with RST (linger 0), as a dropped link or a crashed peer looks to the other end.
    private static func reset(_ fd: Int32) {
        var hard = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, socklen_t(MemoryLayout<linger>.size))
        shutdown(fd, Int32(SHUT_RDWR))
    }
}
