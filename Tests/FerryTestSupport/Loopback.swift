import FerryCore

#if canImport(Glibc)
import Glibc
#endif

/// 127.0.0.1:`port` as a socket address, for the tests that go below HTTP (raw clients,
/// fault proxies, port reservations).
public func loopbackAddress(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
}

/// Binds `fd` to 127.0.0.1 on `port` (0: one the kernel picks) and returns the port.
public func bindLoopback(_ fd: Int32, port: Int = 0) throws -> Int {
    var address = loopbackAddress(port: port)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw SystemCallError("bind", errno: errno) }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Connects `fd` to 127.0.0.1:`port`; false when nothing listens there (errno says why).
public func connectLoopback(_ fd: Int32, port: Int) -> Bool {
    var address = loopbackAddress(port: port)
    return withUnsafePointer(to: &address) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}
