#if canImport(Glibc)
import Glibc
#endif
import FerryCore
import Foundation
import NIOCore
import NIOSSL
import Synchronization

/// The certificate and key the server presents (SPEC §8): the configured files
/// (`tls.certificateFile`, `tls.keyFile`), or the self-signed pair it made in the data
/// directory (`tls.crt`, `tls.key`). `reload()` reads the files again (on SIGHUP): every
/// handshake after it presents the new certificate; connections already open keep theirs.
public final class ServerCertificate: Sendable {
    public let certificatePath: String
    public let keyPath: String
    private let current: Mutex<Identity>

    /// One loaded pair.
    struct Identity: Sendable {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        let fingerprint: CertificateFingerprint
        let leafDER: [UInt8]
        let notValidAfter: Date
    }

    private init(certificatePath: String, keyPath: String, identity: Identity) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.current = Mutex(identity)
    }

    /// The SHA-256 of the certificate presented now.
    public var fingerprint: CertificateFingerprint { current.withLock { $0.fingerprint } }
    /// The certificate presented now, as DER (what a device pins).
    public var leafDER: [UInt8] { current.withLock { $0.leafDER } }
    /// When the certificate presented now expires.
    public var notValidAfter: Date { current.withLock { $0.notValidAfter } }

    /// The files the configuration names, or the data directory's pair.
    static func paths(_ configuration: ServerConfiguration, _ data: DataDirectory) -> (certificate: String, key: String) {
        if let certificate = configuration.tls.certificateFile, let key = configuration.tls.keyFile { return (certificate, key) }
        return (data.tlsCertificatePath, data.tlsKeyPath)
    }

    /// Loads the pair `serve` presents, first making a self-signed one in the data directory
    /// when no files are configured and it has none yet. `created` says whether it did.
    public static func prepare(_ configuration: ServerConfiguration, data: DataDirectory) throws -> (certificate: ServerCertificate, created: Bool) {
        let (certificatePath, keyPath) = paths(configuration, data)
        var created = false
        if configuration.tls.certificateFile == nil, !FileManager.default.fileExists(atPath: certificatePath) {
            let host = SelfSignedCertificate.hostIdentities(bindHost: configuration.host)
            let pair = try SelfSignedCertificate.make(names: host.names, addresses: host.addresses)
            // The key first: a certificate on disk always has its key beside it, so a crash
            // between the two writes leaves no certificate and the next start makes both again.
            try writeDurably(Array(pair.keyPEM.utf8), to: keyPath, mode: 0o600)
            try writeDurably(Array(pair.certificatePEM.utf8), to: certificatePath, mode: 0o644)
            try Posix.syncDirectory(data.path)
            created = true
        }
        return (ServerCertificate(certificatePath: certificatePath, keyPath: keyPath, identity: try load(certificatePath, keyPath)), created)
    }

    /// Loads the pair a configuration names without making one (`ferry-server tls fingerprint`).
    public static func existing(_ configuration: ServerConfiguration, data: DataDirectory) throws -> ServerCertificate {
        let (certificatePath, keyPath) = paths(configuration, data)
        guard FileManager.default.fileExists(atPath: certificatePath) else {
            throw ServerCertificateError(
                "there is no certificate at '\(certificatePath)' yet; 'ferry-server serve' makes it on its first start with TLS (a non-loopback --host, or --tls)")
        }
        return ServerCertificate(certificatePath: certificatePath, keyPath: keyPath, identity: try load(certificatePath, keyPath))
    }

    /// Reads the files again and presents them from the next handshake on. On any error the
    /// current pair stays in use and the error says what is wrong with the files.
    @discardableResult
    public func reload() throws -> CertificateFingerprint {
        let identity = try Self.load(certificatePath, keyPath)
        current.withLock { $0 = identity }
        return identity.fingerprint
    }

    /// TLS 1.2 or later, with the current pair chosen for each handshake.
    public func serverConfiguration() -> TLSConfiguration {
        let identity = current.withLock { $0 }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: identity.chain.map { .certificate($0) }, privateKey: .privateKey(identity.key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.sslContextCallback = { [self] _, promise in
            let identity = current.withLock { $0 }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = identity.chain.map { .certificate($0) }
            override.privateKey = .privateKey(identity.key)
            promise.succeed(override)
        }
        return configuration
    }

    /// Reads and checks a pair: a PEM certificate chain and the PEM private key of its first
    /// certificate (blocking file reads: run it where that is allowed).
    static func load(_ certificatePath: String, _ keyPath: String) throws -> Identity {
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(certificatePath) } catch {
            throw ServerCertificateError("cannot read the TLS certificate '\(certificatePath)' (\(error)); it must be a PEM file, leaf certificate first")
        }
        guard let leaf = chain.first else {
            throw ServerCertificateError("'\(certificatePath)' holds no PEM certificate; it must start with '-----BEGIN CERTIFICATE-----'")
        }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: keyPath, format: .pem) } catch {
            throw ServerCertificateError("cannot read the TLS private key '\(keyPath)' (\(error)); it must be an unencrypted PEM key")
        }
        // BoringSSL refuses a key that does not match the leaf when both are loaded together.
        do {
            _ = try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)))
        } catch {
            throw ServerCertificateError("the TLS private key '\(keyPath)' does not belong to the certificate '\(certificatePath)'")
        }
        let der = try leaf.toDERBytes()
        return Identity(chain: chain, key: key, fingerprint: CertificateFingerprint(der: der), leafDER: der,
                        notValidAfter: Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter)))
    }

    /// Writes a whole file under a temporary name with `mode`, syncs it and renames it into place.
    private static func writeDurably(_ bytes: [UInt8], to path: String, mode: mode_t) throws {
        let temp = path + ".partial"
        unlink(temp)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw ServerCertificateError("cannot create '\(temp)': \(String(cString: strerror(errno)))") }
        do {
            try bytes.withUnsafeBytes { try Posix.writeAll(fd, $0) }
            guard fsync(fd) == 0 else { throw ServerCertificateError("cannot sync '\(temp)': \(String(cString: strerror(errno)))") }
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
        close(fd)
        guard rename(temp, path) == 0 else { throw ServerCertificateError("cannot rename '\(temp)' to '\(path)': \(String(cString: strerror(errno)))") }
    }
}

/// A certificate or key file that cannot be used, in one sentence.
public struct ServerCertificateError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
