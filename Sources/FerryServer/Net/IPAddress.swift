#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// An IPv4 or IPv6 address, parsed and printed in its canonical spelling.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4([UInt8])
    case v6([UInt8])

    public init?(_ text: String) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self = .v4(withUnsafeBytes(of: &v4) { Array($0) })
        } else if inet_pton(AF_INET6, text, &v6) == 1 {
            self = .v6(withUnsafeBytes(of: &v6) { Array($0) })
        } else {
            return nil
        }
    }

    public var bytes: [UInt8] {
        switch self {
        case .v4(let b), .v6(let b): b
        }
    }

    public var description: String {
        switch self {
        case .v4(let b): return b.map(String.init).joined(separator: ".")
        case .v6(let b):
            var addr = in6_addr()
            withUnsafeMutableBytes(of: &addr) { $0.copyBytes(from: b) }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &addr, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// An IPv4 address carried inside an IPv6 one (`::ffff:a.b.c.d`), else nil.
    public var mappedV4: IPAddress? {
        guard case .v6(let b) = self, b[0..<10].allSatisfy({ $0 == 0 }), b[10] == 0xFF, b[11] == 0xFF else { return nil }
        return .v4(Array(b[12...]))
    }

    /// Every address `host` resolves to (blocking: run it on a thread pool).
    static func resolve(_ host: String) throws -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &result)
        guard status == 0 else { throw WebhookTargetError("cannot resolve '\(host)': \(String(cString: gai_strerror(status)))") }
        defer { freeaddrinfo(result) }
        var out: [IPAddress] = []
        var cursor = result
        while let info = cursor {
            if let address = info.pointee.ai_addr.flatMap(IPAddress.init(socketAddress:)) { out.append(address) }
            cursor = info.pointee.ai_next
        }
        return out
    }

    /// The address in a `sockaddr_in` or `sockaddr_in6`; nil for other families.
    init?(socketAddress sa: UnsafeMutablePointer<sockaddr>) {
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            self = .v4(sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in withUnsafeBytes(of: p.pointee.sin_addr) { Array($0) } })
        case AF_INET6:
            self = .v6(sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in withUnsafeBytes(of: p.pointee.sin6_addr) { Array($0) } })
        default:
            return nil
        }
    }
}

/// An address range in CIDR form (`10.0.0.0/8`, `2001:db8::/32`; a bare address is a /32 or /128).
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    public init(_ address: IPAddress, prefixLength: Int) {
        self.address = address
        self.prefixLength = min(max(prefixLength, 0), address.bytes.count * 8)
    }

    /// Parses `ADDRESS` or `ADDRESS/BITS`; nil when either part is malformed.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else { return nil }
        let width = address.bytes.count * 8
        var bits = width
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...width).contains(n), !parts[1].hasPrefix("+") else { return nil }
            bits = n
        }
        self.init(address, prefixLength: bits)
    }

    public var description: String { "\(address)/\(prefixLength)" }

    /// Whether `other` is inside this range (an IPv4-mapped IPv6 address counts as its IPv4 address).
    public func contains(_ other: IPAddress) -> Bool {
        let candidate: IPAddress
        switch (address, other) {
        case (.v4, .v6): guard let v4 = other.mappedV4 else { return false }; candidate = v4
        case (.v6, .v4): return false
        default: candidate = other
        }
        let a = address.bytes, b = candidate.bytes
        var bits = prefixLength
        var i = 0
        while bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if a[i] & mask != b[i] & mask { return false }
            bits -= 8
            i += 1
        }
        return true
    }

    /// The networks of this host's interfaces (address and netmask), loopback included:
    /// the server's own addresses and the LANs it sits on.
    public static func hostNetworks() -> [IPNetwork] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var out: [IPNetwork] = []
        var cursor = list
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let sa = entry.pointee.ifa_addr, let address = IPAddress(socketAddress: sa) else { continue }
            let mask = entry.pointee.ifa_netmask.flatMap(IPAddress.init(socketAddress:))
            let width = address.bytes.count * 8
            let bits = mask.map { $0.bytes.reduce(0) { $0 + $1.nonzeroBitCount } } ?? width
            // A netmask this wide is no LAN (a misconfigured or default-route interface): its
            // own address only, so it cannot make the whole internet "this server's network".
            out.append(IPNetwork(address, prefixLength: bits < 8 ? width : bits))
        }
        return out
    }
}
