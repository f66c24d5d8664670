import FerryCore
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A request on the control socket: one JSON line.
public struct ControlRequest: Codable, Sendable {
    public var command: String
    /// The folder a command is about (`confirm-deletes`).
    public var folder: String?
    public init(command: String, folder: String? = nil) {
        self.command = command
        self.folder = folder
    }
}

/// The daemon's Unix control socket (`$XDG_RUNTIME_DIR/ferry/ferryd.sock`, mode 0600): one
/// JSON request line in, one JSON document out, then the connection closes. Served by one
/// dedicated thread; each request is small and bounded (64 KiB).
public final class ControlSocket: Sendable {
    public let path: String
    private let fd: Int32
    private let stopped = StopFlag()

    /// Binds the socket. A stale socket from a crashed daemon is replaced; a live one is
    /// refused so two daemons never share a state directory.
    public init(path: String, handler: @escaping @Sendable (ControlRequest) -> Data) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if (try? ControlSocket.request(path: path, ControlRequest(command: "ping"), timeoutSeconds: 1)) != nil {
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
                var timeout = timeval(tv_sec: 5, tv_usec: 0)
                setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                let line = ControlSocket.readLine(client, limit: 64 * 1024)
                let reply: Data
                if let line, let request = try? JSONDecoder().decode(ControlRequest.self, from: line) {
                    reply = handler(request)
                } else {
                    reply = Data(#"{"error":"send one JSON line such as {\"command\":\"status\"}"}"#.utf8)
                }
                ControlSocket.writeAll(client, reply + Data("\n".utf8))
                close(client)
            }
        }
        thread.name = "ferryd-control"
        thread.start()
    }

    /// Stops accepting and removes the socket file.
    public func stop() {
        guard !stopped.value.exchange(true, ordering: .relaxed) else { return }
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }

    /// Sends one request to a running daemon and returns its answer.
    public static func request(path: String, _ request: ControlRequest, timeoutSeconds: Int = 10) throws -> Data {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket", errno: errno) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = try address(path)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw SystemCallError("connect \(path)", errno: errno) }
        writeAll(fd, try JSONEncoder().encode(request) + Data("\n".utf8))
        guard let answer = readLine(fd, limit: 64 << 20) else { throw ClientError.io("ferryd closed the control socket without answering") }
        return answer
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

    static func readLine(_ fd: Int32, limit: Int) -> Data? {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while data.count < limit {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: buffer[..<n])
            if buffer[..<n].contains(10) { break }
        }
        guard let end = data.firstIndex(of: 10) else { return data.isEmpty ? nil : data }
        return data[..<end]
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
