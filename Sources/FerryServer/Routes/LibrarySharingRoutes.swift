import FerryCore
import Foundation
import Hummingbird

/// `/libraries/{lib}/members` and `/libraries/{lib}/chunks/{sha256}`: sharing a library
/// with other users (SPEC §10), and reading its chunks as any of its users.
struct LibrarySharingRoutes {
    let services: ServerServices

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("libraries/{lib}/members", use: members)
        group.put("libraries/{lib}/members/{username}", use: share)
        group.delete("libraries/{lib}/members/{username}", use: unshare)
        group.get("libraries/{lib}/chunks/{sha256}", use: chunk)
    }

    /// The owner and the members; anyone the library is shared with may see who else it is.
    @Sendable func members(_ request: Request, context: FerryRequestContext) async throws -> LibraryMembersResponse {
        let library = try await services.library(context, needs: .read)
        return try await services.store.libraryMembers(libraryId: library.id)
    }

    /// Shares the library with a user, or changes their role: the owner's alone to do.
    @Sendable func share(_ request: Request, context: FerryRequestContext) async throws -> LibraryMember {
        let user = try context.user()
        let library = try await services.library(context, needs: .owner)
        let username = try context.parameters.require("username")
        let body = try await request.decodeJSON(ShareLibraryRequest.self, limit: 4096)
        let role = try Self.memberRole(body.role)
        return try await services.store.shareLibrary(ownerId: user.userId, libraryId: library.id, username: username, role: role)
    }

    /// Takes the library away from a member: their devices are refused from the next request on.
    @Sendable func unshare(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let user = try context.user()
        let library = try await services.library(context, needs: .owner)
        let username = try context.parameters.require("username")
        guard try await services.store.unshareLibrary(ownerId: user.userId, libraryId: library.id, username: username) else {
            throw SharingRules.notMember(username)
        }
        return Response(status: .noContent)
    }

    /// One chunk of the version `?version=` of `?path=` in this library. A member holds none
    /// of the owner's chunks (presence stays per user, so `GET /chunks/{sha256}` refuses
    /// them), yet must read exactly the library's: a chunk is served only when the named
    /// version lists it, so nothing outside the library can be probed this way.
    @Sendable func chunk(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let library = try await services.library(context, needs: .read)
        let hash = try ChunkRoutes.hash(context)
        let path = try FileRoutes.path(request)
        guard let seq = try request.intQuery("version", in: 1...Int64.max) else {
            throw APIError.badRequest("query parameter 'version' is required: the version whose chunk this is")
        }
        guard let size = try await services.store.chunkSize(libraryId: library.id, path: path, version: seq, hash: hash) else {
            throw APIError.notFound("chunk \(hash) is not part of version \(seq) of '\(path)'")
        }
        return ChunkRoutes.serve(hash, size: size, blobs: services.blobs)
    }

    /// A role a member may be given.
    static func memberRole(_ raw: String) throws -> LibraryRole {
        guard let role = LibraryRole(rawValue: raw), role != .owner else {
            throw APIError.badRequest("role must be 'read' or 'write', not '\(raw)'")
        }
        return role
    }
}

extension ServerServices {
    /// The user's libraries (role `owner`) followed by those shared with them.
    func visibleLibraries(for user: Identity) async throws -> [LibraryInfo] {
        let own = try await store.libraries(userId: user.userId).map { library in
            var library = library
            library.role = .owner
            library.owner = user.username
            return library
        }
        return own + (try await store.sharedLibraries(userId: user.userId))
    }
}

extension LibraryMember: ResponseEncodable {}
extension LibraryMembersResponse: ResponseEncodable {}
