import AsyncHTTPClient
import FerryCore
import Foundation
import NIOCore
import NIOHTTP1

/// Libraries shared between users (SPEC §10); `LibraryLookup` finds one by name.
extension ServerAPI {
    public func libraryMembers(library: String) async throws -> LibraryMembersResponse {
        try await json(.GET, "/libraries/\(Self.escape(library))/members", Optional<Int>.none)
    }

    /// Shares the caller's library with `username` as `role` (or changes their role).
    public func shareLibrary(_ library: String, with username: String, role: LibraryRole) async throws -> LibraryMember {
        try await json(.PUT, "/libraries/\(Self.escape(library))/members/\(Self.escape(username))", ShareLibraryRequest(role: role.rawValue))
    }

    public func unshareLibrary(_ library: String, from username: String) async throws {
        try await send(.DELETE, "/libraries/\(Self.escape(library))/members/\(Self.escape(username))")
    }

    /// One chunk of a version in a library: what any of the library's users may read,
    /// whether or not they uploaded the chunk themselves.
    public func chunk(_ hash: ContentHash, library: String, of version: FileVersion) async throws -> ByteBuffer {
        let path = "/libraries/\(Self.escape(library))/chunks/\(hash.hex)?path=\(Self.escape(version.path.string))&version=\(version.version)"
        let response = try await execute(request(.GET, path), timeout: .seconds(300))
        try await Self.check(response)
        return try await response.body.collect(upTo: FerryProtocol.maxChunkSize + 1)
    }
}
