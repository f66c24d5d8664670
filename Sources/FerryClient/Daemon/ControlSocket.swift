import FerryCore
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's Unix control socket (`$XDG_RUNTIME_DIR/ferry/ferryd.sock`, mode 0600): one
/// JSON request line in, one JSON document out, then the connection closes. Served by one
/// dedicated thread; each request is small and bounded (64 KiB).
public final class ControlSocket: Sendable {
    public let path: String
    private let fd: Int32
    private let stopped = StopFlag()

    /// Binds the socket. A stale socket from a crashed daemon is replaced; a live one is
    /// refused so two daemons never share a state directory. A client gets `idleTimeout` to
    /// send its line; past it, it is told so and the connection closes.
    public init(path: String, idleTimeout: Duration = .seconds(5),
                handler: @escaping @Sendable (ControlRequest) -> ControlAnswer) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if (try? ControlSocket.request(path: path, .ping, timeoutSeconds: 1)) != nil {
            throw ClientError.invalidInput("another ferryd is already running (socket \(path))")
        }
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket", errno: errno) }
        var address = try ControlSocket.address(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, chmod(path, 0o600) == 0, listen(fd, 16) == 0 else {
            let e = errno
            close(fd)
            throw SystemCallError("bind \(path)", errno: e)
        }
        self.fd = fd
        let thread = Thread { [fd, stopped] in
            while !stopped.value.load(ordering: .relaxed) {
                let client = accept(fd, nil, nil)
                if client < 0 { if errno == EINTR || errno == ECONNABORTED { continue } else { break } }
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                ControlSocket.setTimeout(client, idleTimeout)
                let answer: ControlAnswer = switch ControlSocket.readRequest(client, idleTimeout: idleTimeout) {
                case .success(let request): handler(request)
                case .failure(let problem): .refused(problem.description)
                }
                ControlSocket.writeAll(client, answer.json + Data("\n".utf8))
                close(client)
            }
        }
        thread.name = "ferryd-control"
        thread.start()
    }

    /// The largest request line the socket reads.
    static let requestLimit = 64 * 1024

    /// Reads one request from a client, or says what was wrong with what it sent.
    static func readRequest(_ client: Int32, idleTimeout: Duration) -> Result<ControlRequest, ControlProtocolError> {
        switch readLine(client, limit: requestLimit) {
        case .line(let line):
            do { return .success(try JSONDecoder().decode(ControlRequest.self, from: line)) } catch let e as ControlProtocolError {
                return .failure(e)
            } catch {
                return .failure(.notARequest)
            }
        case .tooLong: return .failure(.requestTooLong(limit: requestLimit))
        case .nothing: return .failure(.noRequest(seconds: idleTimeout.timeInterval))
        }
    }

    /// Stops accepting and removes the socket file.
    public func stop() {
        guard !stopped.value.exchange(true, ordering: .relaxed) else { return }
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }

    /// Sends one request to a running daemon and returns its answer as sent (what `ferry
    /// status --json` prints).
    public static func request(path: String, _ request: ControlRequest, timeoutSeconds: Int = 10) throws -> Data {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket", errno: errno) }
        defer { close(fd) }
        setTimeout(fd, .seconds(timeoutSeconds), sending: false)
        var address = try address(path)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw SystemCallError("connect \(path)", errno: errno) }
        writeAll(fd, try JSONEncoder().encode(request) + Data("\n".utf8))
        guard case .line(let answer) = readLine(fd, limit: 64 << 20) else {
            throw ClientError.io("ferryd closed the control socket without answering")
        }
        return answer
    }

    /// Sends one request to a running daemon and reads its answer. Throws `SystemCallError`
    /// when no daemon listens, `ClientError` when one connected but did not answer, and
    /// `ControlProtocolError.unreadableAnswer` when the answer cannot be read.
    public static func ask(path: String, _ request: ControlRequest, timeoutSeconds: Int = 10) throws -> ControlAnswer {
        try ControlAnswer(json: self.request(path: path, request, timeoutSeconds: timeoutSeconds), answering: request)
    }

    static func setTimeout(_ fd: Int32, _ duration: Duration, sending: Bool = true) {
        let (seconds, attoseconds) = duration.components
        var timeout = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        if sending { setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) }
    }

    static func address(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { throw ClientError.invalidInput("socket path \(path) is longer than \(capacity - 1) bytes") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    /// What came in up to the first newline.
    enum LineRead: Equatable {
        /// A line (or, at end of input, what came before it).
        case line(Data)
        /// More than the limit without a newline.
        case tooLong
        /// Nothing before end of input or the receive timeout.
        case nothing
    }

    static func readLine(_ fd: Int32, limit: Int) -> LineRead {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .nothing }  // the timeout: a half-sent line is no request either
            if n == 0 { return data.isEmpty ? .nothing : .line(data) }
            if let newline = buffer[..<n].firstIndex(of: 10) {
                data.append(contentsOf: buffer[..<newline])
                return data.count <= limit ? .line(data) : .tooLong
            }
            data.append(contentsOf: buffer[..<n])
            if data.count > limit { return .tooLong }
        }
    }

    static func writeAll(_ fd: Int32, _ data: Data) {
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 { if errno == EINTR { continue }; return }
                offset += n
            }
        }
    }
}

/// A stop flag the accept thread and `stop()` share.
final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
}
