#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation
import SwiftASN1
import X509

/// The certificate a server makes for itself on first start when none is configured
/// (SPEC §8): ECDSA P-256, self-signed, naming the host's names and addresses so a browser
/// or curl given `--cacert tls.crt` accepts it too. Devices do not rely on the names: they
/// pin the certificate itself.
enum SelfSignedCertificate {
    /// Twenty years, as Syncthing's device certificates: a pin breaks when the certificate
    /// changes, so it should not have to change for age.
    static let lifetime: TimeInterval = 20 * 365 * 86400

    /// A new key and a certificate for `names` (DNS names) and `addresses` (IP literals), as PEM.
    static func make(names: [String], addresses: [String], now: Date = Date()) throws -> (certificatePEM: String, keyPEM: String) {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("Ferry")
            CommonName(names.first ?? "ferry-server")
        }
        var alternatives: [GeneralName] = names.map { .dnsName($0) }
        for address in addresses {
            if let bytes = Self.addressBytes(address) { alternatives.append(.ipAddress(ASN1OctetString(contentBytes: bytes[...]))) }
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            // keyCertSign: BoringSSL accepts a certificate as its own issuer, which is how a
            // device trusts the pinned certificate alone, only if it may sign certificates.
            Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames(alternatives)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(lifetime),
            issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
            issuerPrivateKey: .init(key))
        return (try certificate.serializeAsPEM().pemString, key.pemRepresentation)
    }

    /// The names and addresses this host is reached by: its host name (and `.local`, for
    /// mDNS), `localhost`, the address it binds when that is a specific one, and the
    /// addresses of its interfaces (link-local IPv6 aside: those need a zone to be used).
    static func hostIdentities(bindHost: String) -> (names: [String], addresses: [String]) {
        var names: [String] = []
        var addresses: [String] = []
        func add(_ text: String) {
            let isAddress = addressBytes(text) != nil
            // A DNS name in a certificate is letters, digits, '-' and '.' only.
            if !isAddress && !text.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == ".") }) { return }
            if isAddress ? addresses.contains(text) : names.contains(text.lowercased()) { return }
            if isAddress { addresses.append(text) } else { names.append(text.lowercased()) }
        }
        var buffer = [CChar](repeating: 0, count: 256)
        if gethostname(&buffer, buffer.count) == 0 {
            let host = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !host.isEmpty {
                add(host)
                if !host.contains(".") { add(host + ".local") }
            }
        }
        add("localhost")
        if !["0.0.0.0", "::", "[::]"].contains(bindHost) { add(bindHost) }
        var list: UnsafeMutablePointer<ifaddrs>?
        if getifaddrs(&list) == 0 {
            defer { freeifaddrs(list) }
            var cursor = list
            while let entry = cursor {
                if let address = entry.pointee.ifa_addr, let text = Self.text(of: address) { add(text) }
                cursor = entry.pointee.ifa_next
            }
        }
        return (names, addresses)
    }

    /// An interface address as text; nil for other families and link-local IPv6.
    private static func text(of address: UnsafeMutablePointer<sockaddr>) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            var v4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            guard inet_ntop(AF_INET, &v4, &buffer, socklen_t(buffer.count)) != nil else { return nil }
        case AF_INET6:
            var v6 = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            let first = withUnsafeBytes(of: &v6) { ($0[0], $0[1]) }
            if first.0 == 0xFE && first.1 & 0xC0 == 0x80 { return nil }
            guard inet_ntop(AF_INET6, &v6, &buffer, socklen_t(buffer.count)) != nil else { return nil }
        default:
            return nil
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The 4 or 16 bytes of an address literal; nil for a name.
    static func addressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr(), v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
