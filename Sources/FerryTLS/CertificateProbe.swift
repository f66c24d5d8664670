#if canImport(Glibc)
import Glibc
#endif
import FerryCore
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// A TLS handshake made only to see the server's certificate, before anything is sent:
/// `ferry login` shows the fingerprint it finds, a device names the certificate it was
/// refused (SPEC §8), and the webhook dispatcher checks a receiver's pinned fingerprint.
/// The connection is closed as soon as the handshake ends; no application data crosses it.
public enum CertificateProbe {
    /// The chain the server at `host`:`port` presents, leaf first, whoever signed it.
    /// `serverName` goes in SNI (a literal address is never sent there).
    public static func presentedChain(
        host: String, port: Int, serverName: String? = nil, timeout: TimeAmount = .seconds(10)
    ) async throws -> [NIOSSLCertificate] {
        let seen = Mutex<[NIOSSLCertificate]>([])
        var configuration = TLSConfiguration.makeClientConfiguration()
        // A custom callback replaces BoringSSL's verdict (it is not called at all with `.none`).
        configuration.certificateVerification = .noHostnameVerification
        try await handshake(host: host, port: port, serverName: serverName, configuration: configuration, timeout: timeout) { chain, verdict in
            seen.withLock { $0 = chain }
            verdict.succeed(.certificateVerified)
        }
        let chain = seen.withLock { $0 }
        guard !chain.isEmpty else { throw CertificateProbeError("\(host):\(port) presented no certificate") }
        return chain
    }

    /// Completes a handshake that verifies the server as `configuration` says (by default
    /// as every HTTPS client does: the system's trust roots and the host name); throws the
    /// handshake's error otherwise.
    public static func verify(
        host: String, port: Int, configuration: TLSConfiguration = .makeClientConfiguration(), timeout: TimeAmount = .seconds(10)
    ) async throws {
        try await handshake(host: host, port: port, serverName: host, configuration: configuration, timeout: timeout, verify: nil)
    }

    /// The fingerprint of a chain's leaf.
    public static func fingerprint(of certificate: NIOSSLCertificate) throws -> CertificateFingerprint {
        CertificateFingerprint(der: try certificate.toDERBytes())
    }

    private static func handshake(
        host: String, port: Int, serverName: String?, configuration: TLSConfiguration, timeout: TimeAmount,
        verify: (@Sendable ([NIOSSLCertificate], EventLoopPromise<NIOSSLVerificationResult>) -> Void)?
    ) async throws {
        let context = try NIOSSLContext(configuration: configuration)
        // SNI carries names only; a literal address there is refused by NIOSSL.
        let sni = serverName.flatMap { Self.isLiteralAddress($0) ? nil : $0 }
        let group = MultiThreadedEventLoopGroup.singleton
        let done = group.next().makePromise(of: Void.self)
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try verify.map { try NIOSSLClientHandler(context: context, serverHostname: sni, customVerificationCallback: $0) }
                        ?? NIOSSLClientHandler(context: context, serverHostname: sni)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    try channel.pipeline.syncOperations.addHandler(HandshakeWatcher(done: done))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            done.fail(error)
            throw error
        }
        let deadline = channel.eventLoop.scheduleTask(in: timeout) {
            done.fail(CertificateProbeError("the TLS handshake with \(host):\(port) did not finish within \(timeout.nanoseconds / 1_000_000_000) s"))
        }
        defer {
            deadline.cancel()
            channel.close(promise: nil)
        }
        try await done.futureResult.get()
    }

    /// Whether `host` is an IPv4 or IPv6 address rather than a name.
    public static func isLiteralAddress(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}

/// Completes `done` when the handshake completes, or fails it with the error that ended it.
private final class HandshakeWatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let done: EventLoopPromise<Void>

    init(done: EventLoopPromise<Void>) { self.done = done }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { done.succeed(()) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        done.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.fail(CertificateProbeError("the server closed the connection during the TLS handshake"))
        context.fireChannelInactive()
    }
}

/// A probe that could not see a certificate, in one sentence.
public struct CertificateProbeError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
