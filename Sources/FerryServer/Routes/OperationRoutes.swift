import FerryCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `/health` and `/protocol` (unauthenticated, aggregate only: no user data) and `/metrics`
/// (administrators and the scrape token).
struct OperationRoutes {
    let services: ServerServices

    struct Health: ResponseEncodable {
        struct Disk: Codable {
            var freeBytes: Int64
            var reserveBytes: Int64
            var ok: Bool
            enum CodingKeys: String, CodingKey { case ok, freeBytes = "free_bytes", reserveBytes = "reserve_bytes" }
        }
        var status: String
        var database: String
        var disk: Disk
        /// `running`, or `stopped` when the webhook dispatcher is not delivering.
        var dispatcher: String
    }

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("health", use: health)
        group.get("metrics", use: metrics)
        group.get("protocol", use: announce)
    }

    /// The protocol version and the request sizes this server takes, so a client sizes its
    /// batches by them (and keeps to `ServerLimits.legacy` with a server that has no answer).
    @Sendable func announce(_ request: Request, context: FerryRequestContext) async throws -> ProtocolResponse {
        ProtocolResponse(limits: services.limits)
    }

    @Sendable func health(_ request: Request, context: FerryRequestContext) async throws -> EditedResponse<Health> {
        let health = await services.health()
        return EditedResponse(status: health.status == "ok" ? .ok : .serviceUnavailable, response: health)
    }

    /// Prometheus text for an administrator or the configured scrape token. Aggregates only,
    /// and none that moves with what one user stores: a dedup counter, for one, told anyone
    /// whether somebody already had the bytes they just uploaded.
    @Sendable func metrics(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let scrape = services.configuration.metrics.scrapeToken
        let presented = ServerServices.bearerToken(request)
        if let scrape, let presented, ConstantTime.equal(Array(TokenService.storedHash(presented)), Array(TokenService.storedHash(scrape))) {
            // The scrape token.
        } else {
            guard try await services.authenticate(request).isAdmin else {
                throw APIError.forbidden("/metrics is for administrators or the configured scrape token (metrics.scrapeToken)")
            }
        }
        services.metrics.recordWaitingLongPolls(services.notifier.waiterCount)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                 body: .init(byteBuffer: ByteBuffer(string: services.metrics.render())))
    }
}
extension ServerServices {
    /// The database, the disk's free space against the reserve, and the webhook dispatcher:
    /// what `GET /health` answers and the dashboard's admin page shows.
    func health() async -> OperationRoutes.Health {
        var database = "ok"
        do { _ = try await store.user(id: 0) } catch { database = "error: \(error)" }
        let free = (try? blobs.freeBytes()) ?? -1
        let reserve = configuration.storage.reserveBytes
        let diskOK = free >= reserve
        let healthy = database == "ok" && diskOK
        return OperationRoutes.Health(status: healthy ? "ok" : "degraded", database: database,
                                      disk: .init(freeBytes: free, reserveBytes: reserve, ok: diskOK),
                                      dispatcher: await dispatcher.isRunning ? "running" : "stopped")
    }
}

extension ProtocolResponse: ResponseEncodable {}
