import FerryCore
import Foundation
import Hummingbird
import Logging

/// `/libraries/{lib}/retention`: a library's retention policy (SPEC §10), read and set by
/// its owner.
struct RetentionRoutes {
    let services: ServerServices

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("libraries/{lib}/retention", use: show)
        group.put("libraries/{lib}/retention", use: set)
    }

    @Sendable func show(_ request: Request, context: FerryRequestContext) async throws -> LibraryRetention {
        let library = try await services.retentionLibrary(context)
        return try await services.retention(of: library, for: try context.user())
    }

    /// Replaces the policy with the body's (every limit named; null keeps everything).
    @Sendable func set(_ request: Request, context: FerryRequestContext) async throws -> LibraryRetention {
        let library = try await services.retentionLibrary(context)
        let policy = try await request.decodeJSON(RetentionPolicy.self, limit: 4 * 1024)
        return try await services.setRetention(policy, of: library, by: try context.user())
    }
}

extension LibraryRetention: ResponseEncodable {}

extension ServerServices {
    /// The library whose retention the caller may see and change: their own (only the owner
    /// decides what a library forgets): 403 for a member of a shared library, 404 otherwise.
    func retentionLibrary(_ context: FerryRequestContext) async throws -> LibraryInfo {
        try await library(context, needs: .owner)
    }

    func retention(of library: LibraryInfo, for user: Identity) async throws -> LibraryRetention {
        guard let retention = try await store.retention(userId: user.userId, libraryId: library.id) else {
            throw APIError.notFound("library '\(library.id)' not found")
        }
        return retention
    }

    /// Validates and stores a policy; the purge applies it at the next upkeep round.
    func setRetention(_ policy: RetentionPolicy, of library: LibraryInfo, by user: Identity) async throws -> LibraryRetention {
        if let problem = policy.problem { throw APIError.badRequest(problem) }
        guard let retention = try await store.setRetention(userId: user.userId, libraryId: library.id, policy: policy) else {
            throw APIError.notFound("library '\(library.id)' not found")
        }
        logger.info("retention set", metadata: ["library": "\(library.id)", "policy": "\(policy.summary)"])
        return retention
    }
}

extension FileRoutes {
    /// Refuses a change-feed cursor below the highest deletion retention removed: the
    /// device may have missed that delete and must compare the whole listing (410
    /// `cursor_expired`; `since=0` always works).
    static func checkCursorKept(_ since: Int64, _ read: FeedRead) throws {
        guard since > 0, since < read.purgedThrough else { return }
        throw APIError(.gone, "cursor_expired",
                       "retention removed deletions up to version \(read.purgedThrough), past the cursor \(since); read the feed again from 0 and compare the whole listing")
    }
}
