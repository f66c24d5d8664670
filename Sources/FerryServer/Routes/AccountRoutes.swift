import FerryCore
import Foundation
import Hummingbird

/// `/account/usage`: what the caller's uploads count against their quota (SPEC §10).
struct AccountRoutes {
    let services: ServerServices

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("account/usage", use: usage)
    }

    @Sendable func usage(_ request: Request, context: FerryRequestContext) async throws -> AccountUsageResponse {
        let user = try context.user()
        guard let account = try await services.store.storageAccount(userId: user.userId) else { throw APIError.notFound("user not found") }
        return AccountUsageResponse(username: user.username, usedBytes: account.usedBytes, quotaBytes: account.quotaBytes)
    }
}

extension AccountUsageResponse: ResponseEncodable {}
