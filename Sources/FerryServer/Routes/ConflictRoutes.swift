import FerryCore
import Foundation
import Hummingbird

/// `/conflicts`: the conflict records of the caller's libraries and those shared with them.
struct ConflictRoutes {
    let services: ServerServices

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("conflicts", use: list)
        group.post("conflicts/{id}/resolve", use: resolve)
    }

    @Sendable func list(_ request: Request, context: FerryRequestContext) async throws -> ConflictListResponse {
        let user = try context.user()
        let stateName = request.query("state") ?? "open"
        guard let state = ConflictState(rawValue: stateName) else {
            throw APIError.badRequest("state must be one of: \(ConflictState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let library = request.query("library")
        if let library, try await services.store.libraryAccess(userId: user.userId, id: library) == nil {
            throw APIError.notFound("library '\(library)' not found")
        }
        let limit = Int(try request.intQuery("limit", in: 1...1000, default: 200)!)
        return ConflictListResponse(conflicts: try await services.store.conflicts(userId: user.userId, libraryId: library, state: state, limit: limit))
    }

    @Sendable func resolve(_ request: Request, context: FerryRequestContext) async throws -> ConflictInfo {
        let user = try context.user()
        let id = try context.parameters.require("id")
        let body = try await request.decodeJSON(ResolveConflictRequest.self, limit: 4096)
        return try await services.resolveConflict(id, keep: body.keep, by: user)
    }
}
