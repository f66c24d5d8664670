import FerryCore
import Foundation
import Hummingbird

/// `/admin`, for administrators: users, the server's health (what `GET /health` says) and
/// storage use. Anyone else is told the page does not exist.
struct AdminPages {
    let services: ServerServices

    struct View {
        struct User {
            let name: String
            let admin: Bool
            let created: Stamp
            let stored: String
            let chunks: Int
            /// "4.0 GiB", or "none".
            let quota: String
        }
        let status: String
        let healthy: Bool
        let database: String
        let diskFree: String
        let diskReserve: String
        let diskOK: Bool
        let dispatcher: String
        let stored: String
        let chunks: Int
        let users: [User]
    }

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("admin", use: show)
    }

    @Sendable func show(_ request: Request, context: FerryRequestContext) async throws -> Response {
        guard try context.user().isAdmin else { throw APIError.notFound("this page is for administrators") }
        let health = await services.health()
        let use = try await services.store.storageUse()
        let stored = Dictionary(use.users.map { ($0.username, $0) }, uniquingKeysWith: { a, _ in a })
        let accounts = try await services.store.storageAccounts()
        let users = try await services.store.users().map { user in
            View.User(name: user.username, admin: user.isAdmin, created: Stamp(user.createdAt),
                      stored: DashboardFormat.size(stored[user.username]?.bytes ?? 0), chunks: stored[user.username]?.chunks ?? 0,
                      quota: accounts[user.username]?.quotaBytes.map(DashboardFormat.size) ?? "none")
        }
        let view = View(status: health.status, healthy: health.status == "ok", database: health.database,
                        diskFree: health.disk.freeBytes < 0 ? "unknown" : DashboardFormat.size(health.disk.freeBytes),
                        diskReserve: DashboardFormat.size(health.disk.reserveBytes), diskOK: health.disk.ok, dispatcher: health.dispatcher,
                        stored: DashboardFormat.size(use.bytes), chunks: use.chunks, users: users)
        return services.dashboard.page("admin", title: "Server", section: .admin, content: view, context: context)
    }
}
