import FerryCore
import NIOSSL

/// Trust in exactly one certificate, the way a device trusts its NAS once its owner has
/// compared the fingerprint (SPEC §8) and the webhook dispatcher trusts a receiver pinned by
/// `tls_fingerprint`. The certificate is the only trust root, so BoringSSL accepts a peer
/// only if it proves it holds that certificate's key; the host name is not checked, since
/// the certificate itself, not a name, is what was confirmed (a NAS is reached by address,
/// by `nas.local` and by a VPN name alike). Only a self-signed certificate can be pinned
/// this way: a trust root that is not self-signed ends no chain (a certificate from a
/// private authority is trusted by adding that authority to the system's store instead).
public enum PinnedTrust {
    /// A client configuration that accepts the pinned certificate and nothing else.
    public static func clientConfiguration(trusting certificate: NIOSSLCertificate) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([certificate])
        configuration.certificateVerification = .noHostnameVerification
        return configuration
    }
}
