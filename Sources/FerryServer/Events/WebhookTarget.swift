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
        if let address = literalAddress { try address.check(allowPrivate: allowPrivate, hostNetworks: IPNetwork.hostNetworks()) }
    }

    /// Resolves the host and returns the first address, having checked every one.
    public func resolve(allowPrivate: Bool, allowedHosts: [String], on pool: NIOThreadPool) async throws -> IPAddress {
        try checkWithoutResolving(allowPrivate: allowPrivate, allowedHosts: allowedHosts)
        if let address = literalAddress { return address }
        let host = self.host
        let addresses = try await pool.runIfActive { try IPAddress.resolve(host) }
        guard let first = addresses.first else { throw WebhookTargetError("'\(host)' does not resolve to any address") }
        let local = IPNetwork.hostNetworks()
        for address in addresses { try address.check(allowPrivate: allowPrivate, hostNetworks: local) }
        return first
    }
}

public struct WebhookTargetError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The ranges webhooks care about (SPEC §4).
extension IPAddress {
    public enum Class: Sendable, Equatable {
        case global
        /// Loopback, private, shared (CGNAT), unique-local, and this server's own addresses
        /// and the networks its interfaces are on (a LAN with global IPv6 addresses included).
        case `private`
        /// Link-local, cloud metadata, unspecified, multicast, documentation, reserved and
        /// deprecated ranges: never a webhook target.
        case forbidden(String)
    }

    /// Ranges that are never a webhook target, checked first (most specific reasons first).
    static let forbiddenRanges: [(IPNetwork, String)] = [
        ("169.254.169.254/32", "a cloud metadata address"), ("100.100.100.200/32", "a cloud metadata address"),
        ("192.0.0.192/32", "a cloud metadata address"), ("fd00:ec2::254/128", "a cloud metadata address"),
        ("169.254.0.0/16", "a link-local address"), ("fe80::/10", "a link-local address"),
        ("0.0.0.0/8", "an unspecified address"), ("::/128", "an unspecified address"),
        ("192.0.0.0/24", "an address reserved for protocol assignments"),
        ("192.0.2.0/24", "a documentation address"), ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"), ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("224.0.0.0/3", "a multicast or reserved address"), ("ff00::/8", "a multicast address"),
        ("100::/64", "a discard-only address"), ("2001::/32", "a Teredo tunnel address"),
        ("fec0::/10", "a deprecated site-local address"),
    ].map { (IPNetwork($0.0)!, $0.1) }

    /// Ranges that reach the server's own machine or network.
    static let privateRanges: [IPNetwork] = [
        "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "198.18.0.0/15",
        "::1/128", "fc00::/7", "64:ff9b:1::/48",
    ].map { IPNetwork($0)! }

    /// IPv6 forms that carry an IPv4 address (mapped, NAT64, 6to4), which decides.
    var embeddedV4: IPAddress? {
        guard case .v6(let b) = self else { return nil }
        if let mapped = mappedV4 { return mapped }
        if b[0..<12] == [0, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0] { return .v4(Array(b[12...])) }
        if b[0] == 0x20, b[1] == 0x02 { return .v4(Array(b[2..<6])) }
        return nil
    }

    /// The address's class by the fixed ranges alone.
    public var classification: Class { classification(hostNetworks: []) }

    /// The address's class, counting `hostNetworks` (this server's own addresses and the
    /// networks of its interfaces) as private.
    public func classification(hostNetworks: [IPNetwork]) -> Class {
        if let v4 = embeddedV4 { return v4.classification(hostNetworks: hostNetworks) }
        if let (_, reason) = Self.forbiddenRanges.first(where: { $0.0.contains(self) }) { return .forbidden(reason) }
        if Self.privateRanges.contains(where: { $0.contains(self) }) { return .private }
        // `::/96`, the deprecated IPv4-compatible form (`::a.b.c.d`); `::1` was taken above.
        if case .v6(let b) = self, b[0..<12].allSatisfy({ $0 == 0 }) { return .forbidden("a deprecated IPv4-compatible address") }
        if hostNetworks.contains(where: { $0.contains(self) }) { return .private }
        return .global
    }

    func check(allowPrivate: Bool, hostNetworks: [IPNetwork]) throws(WebhookTargetError) {
        switch classification(hostNetworks: hostNetworks) {
        case .global: return
        case .private where allowPrivate: return
        case .private:
            throw WebhookTargetError("\(self) is a loopback or private address, or one of this server's own networks; the server's configuration (webhooks.allowPrivateTargets) refuses those")
        case .forbidden(let what): throw WebhookTargetError("\(self) is \(what), which is never a webhook target")
        }
    }
}
