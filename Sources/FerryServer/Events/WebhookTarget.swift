#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOPosix

/// Where a webhook may be sent (SPEC §4): link-local and cloud-metadata addresses never;
/// loopback and private ranges only when the server's configuration allows them. Checked
/// on the addresses a name resolves to, and the connection then goes to the checked
/// address, so a name cannot be re-pointed between check and connect (DNS rebinding).
public struct WebhookTarget: Sendable, Equatable {
    public let url: URL
    public let host: String
    public let isHTTPS: Bool

    /// Parses and checks a URL's shape: http or https, a host, no credentials, ≤ 2048 bytes.
    public init(_ string: String) throws(WebhookTargetError) {
        guard string.utf8.count <= 2048 else { throw WebhookTargetError("the URL is longer than 2048 bytes") }
        guard let components = URLComponents(string: string), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let url = components.url
        else { throw WebhookTargetError("the URL must be an absolute http:// or https:// URL") }
        guard let host = components.host, !host.isEmpty else { throw WebhookTargetError("the URL has no host") }
        guard components.user == nil, components.password == nil else {
            throw WebhookTargetError("the URL must not carry credentials; the signature authenticates the server")
        }
        self.url = url
        self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        self.isHTTPS = scheme == "https"
    }

    /// The host as a literal address, when it is one.
    public var literalAddress: IPAddress? {
        // An IPv6 zone ("fe80::1%eth0") does not change which range the address is in.
        IPAddress(String(host.prefix { $0 != "%" }))
    }

    /// Refuses a host outside the allow-list (when there is one) and a literal address in a
    /// refused range at once; names are resolved and checked at delivery.
    public func checkWithoutResolving(allowPrivate: Bool, allowedHosts: [String]) throws(WebhookTargetError) {
        if !allowedHosts.isEmpty && !allowedHosts.contains(where: { $0.lowercased() == host.lowercased() }) {
            throw WebhookTargetError("'\(host)' is not one of the hosts the server's configuration (webhooks.allowedHosts) allows")
        }
        if let address = literalAddress { try address.check(allowPrivate: allowPrivate) }
    }

    /// Resolves the host and returns the first address, having checked every one.
    public func resolve(allowPrivate: Bool, allowedHosts: [String], on pool: NIOThreadPool) async throws -> IPAddress {
        try checkWithoutResolving(allowPrivate: allowPrivate, allowedHosts: allowedHosts)
        if let address = literalAddress { return address }
        let host = self.host
        let addresses = try await pool.runIfActive { try IPAddress.resolve(host) }
        guard let first = addresses.first else { throw WebhookTargetError("'\(host)' does not resolve to any address") }
        for address in addresses { try address.check(allowPrivate: allowPrivate) }
        return first
    }
}

public struct WebhookTargetError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// An IPv4 or IPv6 address and the ranges webhooks care about.
public enum IPAddress: Sendable, Equatable, CustomStringConvertible {
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

    public enum Class: Sendable, Equatable {
        case global
        /// Loopback, private, shared (CGNAT) and unique-local ranges.
        case `private`
        /// Link-local, cloud metadata, unspecified, multicast, reserved: never a webhook target.
        case forbidden(String)
    }

    public var classification: Class {
        switch self {
        case .v4(let b):
            if b == [169, 254, 169, 254] || b == [100, 100, 100, 200] || b == [192, 0, 0, 192] { return .forbidden("a cloud metadata address") }
            if b[0] == 169 && b[1] == 254 { return .forbidden("a link-local address") }
            if b[0] == 0 { return .forbidden("an unspecified address") }
            if b[0] >= 224 { return .forbidden("a multicast or reserved address") }
            if b[0] == 127 || b[0] == 10 || (b[0] == 172 && b[1] & 0xF0 == 16) || (b[0] == 192 && b[1] == 168)
                || (b[0] == 100 && b[1] & 0xC0 == 64) || (b[0] == 198 && b[1] & 0xFE == 18) {
                return .private
            }
            return .global
        case .v6(let b):
            if b.allSatisfy({ $0 == 0 }) { return .forbidden("an unspecified address") }
            if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF { return IPAddress.v4(Array(b[12...])).classification }
            if b[0..<12] == [0, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0] { return IPAddress.v4(Array(b[12...])).classification }
            if b == [0xFD, 0, 0x0E, 0xC2] + [UInt8](repeating: 0, count: 10) + [0x02, 0x54] { return .forbidden("a cloud metadata address") }
            if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return .forbidden("a link-local address") }
            if b[0] == 0xFF { return .forbidden("a multicast address") }
            if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return .private }
            if b[0] & 0xFE == 0xFC { return .private }
            return .global
        }
    }

    func check(allowPrivate: Bool) throws(WebhookTargetError) {
        switch classification {
        case .global: return
        case .private where allowPrivate: return
        case .private:
            throw WebhookTargetError("\(self) is a loopback or private address; the server's configuration (webhooks.allowPrivateTargets) refuses those")
        case .forbidden(let what): throw WebhookTargetError("\(self) is \(what), which is never a webhook target")
        }
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
            if info.pointee.ai_family == AF_INET, let sa = info.pointee.ai_addr {
                let bytes = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in withUnsafeBytes(of: p.pointee.sin_addr) { Array($0) } }
                out.append(.v4(bytes))
            } else if info.pointee.ai_family == AF_INET6, let sa = info.pointee.ai_addr {
                let bytes = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in withUnsafeBytes(of: p.pointee.sin6_addr) { Array($0) } }
                out.append(.v6(bytes))
            }
            cursor = info.pointee.ai_next
        }
        return out
    }
}
