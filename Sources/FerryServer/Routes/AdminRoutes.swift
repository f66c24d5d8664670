import FerryCore
import Foundation
import Hummingbird

/// `/admin/…`: for administrators only (403 for everyone else).
struct AdminRoutes {
    let services: ServerServices

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("admin/security-log", use: securityLog)
    }

    struct SecurityLogPage: ResponseEncodable {
        var events: [SecurityEvent]
        /// Pass as `before` for the next (older) page; absent on the last page.
        var nextBefore: Int64?
        enum CodingKeys: String, CodingKey { case events, nextBefore = "next_before" }
    }

    /// The security log, newest first: `since` (ISO 8601), `user` (a name), `before` (an id
    /// from `next_before`), `limit` (1–1000, default 100).
    @Sendable func securityLog(_ request: Request, context: FerryRequestContext) async throws -> SecurityLogPage {
        let caller = try context.user()
        guard caller.isAdmin else { throw APIError.forbidden("the security log is for administrators") }
        let limit = Int(try request.intQuery("limit", in: 1...1000, default: 100)!)
        let before = try request.intQuery("before", in: 1...Int64.max)
        var since: Date?
        if let raw = request.query("since") {
            guard let date = try? Date.ISO8601FormatStyle().parse(raw) else {
                throw APIError.badRequest("query parameter 'since' must be an ISO 8601 time such as 2026-12-01T00:00:00Z")
            }
            since = date
        }
        var userId: Int64?
        if let name = request.query("user") {
            guard let user = try await services.store.user(named: name) else { throw APIError.notFound("no user named '\(name)'") }
            userId = user.id
        }
        let rows = try await services.store.securityEvents(userId: userId, since: since, before: before, limit: limit + 1)
        let page = Array(rows.prefix(limit))
        return SecurityLogPage(events: page, nextBefore: rows.count > limit ? page.last?.id : nil)
    }
}
