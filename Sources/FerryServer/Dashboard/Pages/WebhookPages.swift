import FerryCore
import Foundation
import Hummingbird

/// `/webhooks`: the caller's endpoints with their delivery log, and managing them from the
/// signed-in session (add, test, enable, remove, redeliver), under the API's rules.
struct WebhookPages {
    let services: ServerServices
    /// Deliveries shown per endpoint on the overview; an endpoint's own page pages through all.
    static let recentDeliveries = 5
    static let deliveriesPerPage = 50

    struct View {
        struct Endpoint {
            struct Delivery {
                let event: String
                let state: String
                let attempts: Int
                let status: String
                let latency: String
                let time: Stamp
                let redeliverHref: String
            }
            let id: String
            let url: String
            let events: String
            let active: Bool
            let reason: String?
            let deliveries: [Delivery]
            let moreHref: String?
            let olderHref: String?
            let testHref: String
            let enableHref: String
            let removeHref: String
        }
        let webhooks: [Endpoint]
        /// The secret of an endpoint just added: shown this once.
        let secret: String?
        let showForm: Bool
    }

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("webhooks", use: list)
        group.post("webhooks", use: create)
        group.get("webhooks/{id}", use: show)
        group.post("webhooks/{id}/test", use: test)
        group.post("webhooks/{id}/enable", use: enable)
        group.post("webhooks/{id}/remove", use: remove)
        group.post("deliveries/{id}/redeliver", use: redeliver)
    }

    @Sendable func list(_ request: Request, context: FerryRequestContext) async throws -> Response {
        try await overview(context: context, secret: nil)
    }

    private func overview(context: FerryRequestContext, secret: String?) async throws -> Response {
        let user = try context.user()
        var endpoints: [View.Endpoint] = []
        for webhook in try await services.store.webhooks(userId: user.userId) {
            let log = try await services.store.deliveries(userId: user.userId, webhookId: webhook.id, before: nil, limit: Self.recentDeliveries)
            endpoints.append(endpoint(webhook, log, more: log.nextBefore != nil, olderHref: nil))
        }
        let view = View(webhooks: endpoints, secret: secret, showForm: true)
        return services.dashboard.page("webhooks", title: "Webhooks", section: .webhooks, content: view, context: context, status: secret == nil ? .ok : .created)
    }

    @Sendable func show(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let user = try context.user()
        let id = try context.parameters.require("id")
        let webhook = try await self.webhook(id, of: user)
        let before = try request.intQuery("before", in: 1...Int64.max)
        let log = try await services.store.deliveries(userId: user.userId, webhookId: id, before: before, limit: Self.deliveriesPerPage)
        let older = log.nextBefore.map { "/webhooks/\(DashboardFormat.segment(id))?before=\($0)" }
        let view = View(webhooks: [endpoint(webhook, log, more: false, olderHref: older)], secret: nil, showForm: false)
        return services.dashboard.page("webhooks", title: "Webhook \(webhook.url)", section: .webhooks, content: view, context: context)
    }

    @Sendable func create(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let (user, session) = try WebhookRoutes.session(context)
        let form = try await DashboardForm.read(request)
        let patterns = try form.required("events", label: "Events").split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
        let events: EventFilter
        do { events = try EventFilter(patterns) } catch { throw APIError.badRequest(error.message) }
        let created = try await services.createWebhook(CreateWebhookRequest(url: try form.required("url", label: "the URL"), events: events), by: user, session: session)
        return try await overview(context: context, secret: created.secret)
    }

    @Sendable func test(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        _ = try await services.store.queuePing(userId: try WebhookRoutes.session(context).user.userId, webhookId: id)
        return seeOther("/webhooks")
    }

    @Sendable func enable(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        _ = try await services.store.updateWebhook(userId: try WebhookRoutes.session(context).user.userId, id: id, UpdateWebhookRequest(active: true))
        return seeOther("/webhooks")
    }

    @Sendable func remove(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let user = try WebhookRoutes.session(context).user
        let id = try context.parameters.require("id")
        guard try await DashboardForm.read(request).isConfirmed else {
            let webhook = try await self.webhook(id, of: user)
            let view = ConfirmView(heading: "Remove the webhook to \(webhook.url)?", message: "Its delivery log goes with it; events stop being sent there.",
                                   action: "/webhooks/\(DashboardFormat.segment(id))/remove", fields: [], button: "Remove", cancelHref: "/webhooks")
            return services.dashboard.page("confirm", title: "Remove webhook", section: .webhooks, content: view, context: context)
        }
        guard try await services.store.deleteWebhook(userId: user.userId, id: id) else { throw APIError.notFound("webhook '\(id)' not found") }
        return seeOther("/webhooks")
    }

    @Sendable func redeliver(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let delivery = try await services.store.redeliver(userId: try WebhookRoutes.session(context).user.userId, deliveryId: try WebhookRoutes.deliveryId(context))
        return seeOther("/webhooks/\(DashboardFormat.segment(delivery.webhookId))")
    }

    /// One of the caller's endpoints (the store lists them; there are few).
    private func webhook(_ id: String, of user: Identity) async throws -> WebhookInfo {
        guard let webhook = try await services.store.webhooks(userId: user.userId).first(where: { $0.id == id }) else {
            throw APIError.notFound("webhook '\(id)' not found")
        }
        return webhook
    }

    private func endpoint(_ webhook: WebhookInfo, _ log: DeliveryListResponse, more: Bool, olderHref: String?) -> View.Endpoint {
        let base = "/webhooks/\(DashboardFormat.segment(webhook.id))"
        let deliveries = log.deliveries.map { delivery in
            let last = delivery.attempts.last
            return View.Endpoint.Delivery(
                event: delivery.eventType, state: delivery.state.rawValue, attempts: delivery.attempts.count,
                status: last.map { $0.status.map(String.init) ?? ($0.error ?? "no answer") } ?? "—",
                latency: last.map { "\($0.latencyMs) ms" } ?? "—", time: Stamp(delivery.createdAt),
                redeliverHref: "/deliveries/\(delivery.id)/redeliver")
        }
        return View.Endpoint(id: webhook.id, url: webhook.url, events: webhook.events.patterns.joined(separator: ", "), active: webhook.active,
                             reason: webhook.disabledReason, deliveries: deliveries, moreHref: more ? base : nil, olderHref: olderHref,
                             testHref: base + "/test", enableHref: base + "/enable", removeHref: base + "/remove")
    }
}
