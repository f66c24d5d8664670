import AsyncHTTPClient
import FerryCore
import Foundation
import NIOCore
import NIOHTTP1

/// Libraries shared between users (SPEC §10), and the names that reach them: `NAME` is
/// one of the caller's own libraries, `OWNER/NAME` one OWNER shares with them (library
/// names hold no '/', so the two never mix).
extension ServerAPI {
    /// The library a person names, created when it is the caller's own and missing.
    public func library(named name: String) async throws -> LibraryInfo {
        if let existing = try await existingLibrary(named: name) { return existing }
        guard !name.contains("/") else {
            throw ClientError.invalidInput("no library '\(name)' is shared with you; 'ferry library list' shows the libraries you can sync")
        }
        return try await createLibrary(name: name)
    }

    /// The caller's library `NAME`, or the library `OWNER/NAME` shared with them; nil when none.
    public func existingLibrary(named name: String) async throws -> LibraryInfo? {
        let all = try await libraries()
        if let slash = name.firstIndex(of: "/") {
            let owner = String(name[..<slash]), rest = String(name[name.index(after: slash)...])
            return all.first { $0.name == rest && $0.owner == owner }
        }
        // Servers from before sharing send no role: every library they list is the caller's.
        return all.first { $0.name == name && ($0.role ?? .owner) == .owner }
    }

    /// A library that must exist, with an error naming the way to see them otherwise.
    public func requireLibrary(named name: String) async throws -> LibraryInfo {
        guard let library = try await existingLibrary(named: name) else {
            throw ClientError.invalidInput("no library '\(name)'; 'ferry library list' shows yours and those shared with you (as OWNER/NAME)")
        }
        return library
    }

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
