import FerryCore
import FerryTLS
import Foundation
import NIOSSL

/// What `ferry login` decides about a server before it sends a password (SPEC §8): plain
/// HTTP only to this machine unless allowed, and over HTTPS either the system's trust roots
/// or a certificate whose fingerprint the user confirmed.
public enum ServerTrust {
    /// A server URL taken apart: scheme, host (brackets removed) and port.
    public struct Address: Sendable, Equatable {
        public let isHTTPS: Bool
        public let host: String
        public let port: Int

        /// Parses an `http://` or `https://` URL with a host; one sentence otherwise.
        public init(_ url: String) throws(ClientError) {
            guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
                  scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
            else { throw .invalidInput("'\(url)' is not an http(s) URL such as https://nas.local:8720") }
            guard components.user == nil, components.password == nil else {
                throw .invalidInput("'\(url)' carries credentials; give the user name with --user")
            }
            isHTTPS = scheme == "https"
            self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            port = components.port ?? (isHTTPS ? 443 : 80)
        }

        /// Plain HTTP that would cross a network: refused before any connection or lookup
        /// unless the user allowed it, since the password would be readable on the way.
        public func checkPlainHTTP(allowed: Bool) throws(ClientError) {
            guard !isHTTPS, !allowed, !LoopbackHost.contains(host) else { return }
            throw .invalidInput("""
                refusing to send your password to \(host) over plain http://, where anyone on the network can read it; \
                use https://\(host):\(port) (ferry-server serves HTTPS on every address but loopback), or add --insecure-http \
                if you accept that risk on this network
                """)
        }
    }

    /// How an HTTPS server's certificate can be trusted.
    public enum Verdict: Sendable {
        /// The system's trust roots vouch for it, for this host name: nothing to pin.
        case systemTrusted
        /// Self-signed (what ferry-server makes): trusted alone once its fingerprint is confirmed.
        case needsConfirmation(NIOSSLCertificate, CertificateFingerprint)
    }

    /// Looks at the certificate the server presents, sending nothing (a few handshakes). With `expected` (from
    /// `--fingerprint`), a different certificate is refused at once.
    public static func examine(_ address: Address, expected: CertificateFingerprint?) async throws -> Verdict {
        let chain: [NIOSSLCertificate]
        do { chain = try await CertificateProbe.presentedChain(host: address.host, port: address.port, serverName: address.host) } catch {
            throw ClientError.io("cannot complete a TLS handshake with \(address.host):\(address.port) (\(error)); is the server running with HTTPS there?")
        }
        let presented = try CertificateProbe.fingerprint(of: chain[0])
        if let expected, expected != presented {
            throw ClientError.invalidInput("""
                the server at \(address.host):\(address.port) presented certificate \(presented), not the \(expected) you gave, \
                so nothing was sent; check the fingerprint with 'ferry-server tls fingerprint' on the server
                """)
        }
        let systemTrusted = (try? await CertificateProbe.verify(host: address.host, port: address.port)) != nil
        // A fingerprint the user gave is pinned even where the system also vouches for it.
        if systemTrusted && expected == nil { return .systemTrusted }
        // Pinnable if a connection that trusts this certificate alone goes through, exactly as every later one will.
        do {
            try await CertificateProbe.verify(host: address.host, port: address.port, configuration: PinnedTrust.clientConfiguration(trusting: chain[0]))
            return .needsConfirmation(chain[0], presented)
        } catch {
            if systemTrusted { return .systemTrusted }
            throw ClientError.invalidInput("""
                the certificate of \(address.host) (\(presented)) cannot be pinned (\(error)): only a valid self-signed one can; \
                one from an authority this system does not trust is trusted by adding that authority to the system's store \
                (update-ca-certificates)
                """)
        }
    }
}
