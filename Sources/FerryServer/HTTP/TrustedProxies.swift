import Foundation
import HTTPTypes

/// The reverse proxies whose `X-Forwarded-For` the server believes (`http.trustedProxies`).
/// Behind a proxy every request comes from the proxy's address, so without this the login
/// rate limit and the security log would lump every client together; believing the header
/// from anyone else would let a client pick the address it is throttled and logged under.
public struct TrustedProxies: Sendable, Equatable {
    public let networks: [IPNetwork]

    /// Parses addresses and CIDR ranges (`10.0.0.5`, `10.0.0.0/8`, `::1`, `fd00::/8`).
    public init(_ specs: [String]) throws {
        networks = try specs.map { spec in
            guard let network = IPNetwork(spec.trimmingCharacters(in: .whitespaces)) else {
                throw ConfigurationError("http.trustedProxies: '\(spec)' is not an IP address or CIDR range (e.g. 10.0.0.5 or 10.0.0.0/8)")
            }
            return network
        }
    }

    /// Believes nobody's `X-Forwarded-For`.
    public static let none = TrustedProxies(networks: [])

    private init(networks: [IPNetwork]) { self.networks = networks }

    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    func trusts(_ address: IPAddress) -> Bool { networks.contains { $0.contains(address) } }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the
    /// address that proxy was talking to, read from `X-Forwarded-For` right to left for as
    /// long as each hop is itself trusted. An entry that is not an address ends the walk.
    public func clientAddress(peer: String?, forwardedFor: [String]) -> String? {
        guard let peer, !networks.isEmpty, var client = IPAddress(peer) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() {
            guard trusts(client), let address = Self.parseHop(hop) else { break }
            client = address
        }
        return client.description
    }

    /// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`.
    static func parseHop(_ hop: String) -> IPAddress? {
        if let address = IPAddress(hop) { return address }
        if hop.hasPrefix("["), let end = hop.firstIndex(of: "]") { return IPAddress(String(hop[hop.index(after: hop.startIndex)..<end])) }
        if let colon = hop.lastIndex(of: ":"), hop.filter({ $0 == ":" }).count == 1 { return IPAddress(String(hop[..<colon])) }
        return nil
    }
}
