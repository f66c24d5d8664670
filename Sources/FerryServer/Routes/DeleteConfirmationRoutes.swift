import FerryCore
import Foundation
import Hummingbird

/// `/libraries/{lib}/confirmed-deletes`: deletions the user let through the mass-delete
/// guard on one device, so the user's other devices do not ask again (`DeleteConfirmationStore`).
struct DeleteConfirmationRoutes {
    let services: ServerServices

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.post("libraries/{lib}/confirmed-deletes", use: confirm)
        group.post("libraries/{lib}/confirmed-deletes/lookup", use: lookup)
    }

    /// Records deletion versions as confirmed by the caller's device; answers those recorded.
    @Sendable func confirm(_ request: Request, context: FerryRequestContext) async throws -> ConfirmedDeletions {
        let user = try context.user()
        let library = try await services.library(context, needs: .write)
        let versions = try await Self.versions(request)
        return ConfirmedDeletions(versions: try await services.store.confirmDeletions(
            userId: user.userId, libraryId: library.id, versions: versions, deviceId: user.deviceId))
    }

    /// Of the versions asked about, those confirmed.
    @Sendable func lookup(_ request: Request, context: FerryRequestContext) async throws -> ConfirmedDeletions {
        let user = try context.user()
        let library = try await services.library(context, needs: .read)
        let versions = try await Self.versions(request)
        return ConfirmedDeletions(versions: try await services.store.confirmedDeletions(userId: user.userId, libraryId: library.id, among: versions))
    }

    static func versions(_ request: Request) async throws -> [Int64] {
        let body = try await request.decodeJSON(ConfirmedDeletions.self, limit: 24 * ConfirmedDeletions.maxCount + 64)
        guard body.versions.count <= ConfirmedDeletions.maxCount else {
            throw APIError.badRequest("versions: at most \(ConfirmedDeletions.maxCount) per request")
        }
        guard body.versions.allSatisfy({ $0 > 0 }) else { throw APIError.badRequest("versions: each is a positive version number") }
        return body.versions
    }
}

extension ConfirmedDeletions: ResponseEncodable {}
