import FerryCore
import Foundation
import Hummingbird

/// `/webhooks` and `/deliveries`: the caller's endpoints and their delivery log.
struct WebhookRoutes {
    let services: ServerServices

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.post("webhooks", use: create)
        group.get("webhooks", use: list)
        group.patch("webhooks/{id}", use: update)
        group.delete("webhooks/{id}", use: remove)
        group.get("webhooks/{id}/deliveries", use: deliveries)
        group.post("webhooks/{id}/test", use: test)
        group.post("deliveries/{id}/redeliver", use: redeliver)
    }

    @Sendable func create(_ request: Request, context: FerryRequestContext) async throws -> EditedResponse<CreatedWebhookResponse> {
        let (user, session) = try Self.session(context)
        let body = try await request.decodeJSON(CreateWebhookRequest.self, limit: 16 * 1024)
        let created = try await services.createWebhook(body, by: user, session: session)
        return EditedResponse(status: .created, headers: [.cacheControl: "no-store"], response: created)
    }

    @Sendable func list(_ request: Request, context: FerryRequestContext) async throws -> WebhookListResponse {
        WebhookListResponse(webhooks: try await services.store.webhooks(userId: try context.user().userId))
    }

    @Sendable func update(_ request: Request, context: FerryRequestContext) async throws -> WebhookInfo {
        let (user, _) = try Self.session(context)
        var body = try await request.decodeJSON(UpdateWebhookRequest.self, limit: 16 * 1024)
        if let url = body.url { body.url = try services.checkedWebhookURL(url) }
        if let pin = body.tlsFingerprint, !pin.isEmpty { body.tlsFingerprint = try services.checkedWebhookFingerprint(pin).description }
        return try await services.store.updateWebhook(userId: user.userId, id: try context.parameters.require("id"), body)
    }

    @Sendable func remove(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        guard try await services.store.deleteWebhook(userId: try Self.session(context).user.userId, id: id) else {
            throw APIError.notFound("webhook '\(id)' not found")
        }
        return Response(status: .noContent)
    }

    @Sendable func deliveries(_ request: Request, context: FerryRequestContext) async throws -> DeliveryListResponse {
        let limit = Int(try request.intQuery("limit", in: 1...500, default: 50)!)
        let before = try request.intQuery("before", in: 1...Int64.max)
        return try await services.store.deliveries(userId: try context.user().userId, webhookId: try context.parameters.require("id"),
                                                   before: before, limit: limit)
    }

    @Sendable func test(_ request: Request, context: FerryRequestContext) async throws -> EditedResponse<DeliveryInfo> {
        let delivery = try await services.store.queuePing(userId: try Self.session(context).user.userId, webhookId: try context.parameters.require("id"))
        return EditedResponse(status: .accepted, response: delivery)
    }

    @Sendable func redeliver(_ request: Request, context: FerryRequestContext) async throws -> EditedResponse<DeliveryInfo> {
        let id = try Self.deliveryId(context)
        return EditedResponse(status: .accepted, response: try await services.store.redeliver(userId: try Self.session(context).user.userId, deliveryId: id))
    }

    /// A delivery's `{id}`: a positive integer.
    static func deliveryId(_ context: FerryRequestContext) throws -> Int64 {
        guard let id = Int64(try context.parameters.require("id")), id > 0 else { throw APIError.badRequest("a delivery id is a positive integer") }
        return id
    }

    /// Endpoints are managed from a signed-in session only. A device token lives on disk for
    /// years; one copied off a laptop must not be able to set up a receiver of every future
    /// event that outlives the device's revocation. Reading the list and the log needs no session.
    static func session(_ context: FerryRequestContext) throws -> (user: Identity, session: String) {
        let user = try context.user()
        guard let session = user.sessionId else {
            throw APIError.forbidden("webhooks are managed from a signed-in session, not with a device token; 'ferry webhook' asks for your password")
        }
        return (user, session)
    }
}

extension ConflictListResponse: ResponseEncodable {}
extension ConflictInfo: ResponseEncodable {}
extension CreatedWebhookResponse: ResponseEncodable {}
extension WebhookListResponse: ResponseEncodable {}
extension WebhookInfo: ResponseEncodable {}
extension DeliveryListResponse: ResponseEncodable {}
extension DeliveryInfo: ResponseEncodable {}
