import Foundation
import Logging
import ServiceLifecycle

/// Housekeeping a running server does by itself: at start and then every `interval`, the
/// security log loses entries past `security.logRetentionDays`.
struct UpkeepService: Service {
    let services: ServerServices
    var interval: Duration = .seconds(24 * 3600)

    func run() async throws {
        // The wait ends with a graceful shutdown, which would otherwise wait a day for it.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await runOnce()
                try await Task.sleep(for: interval)
            }
        }
    }

    /// One round; failures are logged and tried again next round.
    func runOnce(now: Date = Date()) async {
        let cutoff = now.addingTimeInterval(-services.configuration.security.logRetentionDays * 86400)
        do {
            let removed = try await services.store.pruneSecurityEvents(before: cutoff)
            if removed > 0 { services.logger.info("security log pruned", metadata: ["removed": "\(removed)"]) }
        } catch {
            services.logger.error("cannot prune the security log", metadata: ["error": "\(error)"])
        }
    }
}
