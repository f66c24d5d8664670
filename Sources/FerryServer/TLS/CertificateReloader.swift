import Logging
import NIOPosix
import ServiceLifecycle
import UnixSignals

/// Reads the certificate and key again on every SIGHUP (SPEC §8: a renewed certificate needs
/// no restart). A pair that cannot be used is logged and the current one stays in use.
struct CertificateReloader: Service {
    let certificate: ServerCertificate
    let threadPool: NIOThreadPool
    let logger: Logger

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        for await _ in hangups.cancelOnGracefulShutdown() {
            do {
                let certificate = self.certificate
                let fingerprint = try await threadPool.runIfActive { try certificate.reload() }
                logger.notice("TLS certificate reloaded", metadata: [
                    "fingerprint": "\(fingerprint)", "certificate": "\(certificate.certificatePath)",
                ])
            } catch {
                logger.error("TLS certificate not reloaded; the previous one stays in use", metadata: ["error": "\(error)"])
            }
        }
    }
}
