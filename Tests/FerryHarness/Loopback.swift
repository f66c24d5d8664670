import FerryCore

#if canImport(Glibc)
import Glibc
#endif

/// Loopback TCP sockets for the tests and benchmarks that go below HTTP (raw clients, fault
/// proxies, port reservations): one spelling of the `sockaddr_in` dance for all of them.
public enum Loopback {
    /// A new TCP socket (close-on-exec).
    public static func socket() throws -> Int32 {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket", errno: errno) }
        return fd
    }

    /// Connects `fd` to 127.0.0.1:`port`; false when nothing listens there (errno says why).
    public static func connect(_ fd: Int32, port: Int) -> Bool {
        var address = address(port: port)
        return withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// Binds `fd` to 127.0.0.1 on `port` (0: one the kernel picks) and returns the port.
    public static func bind(_ fd: Int32, port: Int = 0) throws -> Int {
        var address = address(port: port)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw SystemCallError("bind", errno: errno) }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// 127.0.0.1:`port` as a socket address.
    public static func address(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}
