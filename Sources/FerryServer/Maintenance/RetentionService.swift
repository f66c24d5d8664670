import CoreMetrics
import Foundation
import Logging
import ServiceLifecycle

/// Applies every library's retention policy (SPEC §10) at start and then every
/// `storage.retentionIntervalSeconds`, beside `UpkeepService`. A purge deletes versions and
/// expired deletions in bounded transactions; `gc` then frees the chunks no version names.
struct RetentionService: Service {
    let services: ServerServices

    func run() async throws {
        let interval = Duration.seconds(services.configuration.storage.retentionIntervalSeconds)
        // The wait ends with a graceful shutdown, which would otherwise wait for it.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await runOnce()
                try await Task.sleep(for: interval)
            }
        }
    }

    /// One round; a failure is logged and tried again next round.
    func runOnce(now: Date = Date()) async {
        do {
            let report = try await services.store.purgeAll(now: now)
            services.metrics.retentionPurgedVersions.increment(by: report.purgedVersions)
            if report.purgedVersions > 0 {
                services.logger.info("retention purged", metadata: [
                    "libraries": "\(report.libraries)", "versions": "\(report.purgedVersions)", "deleted_paths": "\(report.removedPaths)",
                ])
            }
        } catch is CancellationError {
            return
        } catch {
            services.logger.error("cannot apply retention", metadata: ["error": "\(error)"])
        }
    }
}
