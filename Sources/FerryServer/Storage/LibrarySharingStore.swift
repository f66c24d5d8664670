import FerryCore
import Foundation

/// Libraries shared with other users (SPEC §10): the owner gives a user `read` or `write`
/// access; the library then answers that user as it answers its owner, within the role.
/// Everything else about the owner (other libraries, chunks held) stays invisible.
public protocol LibrarySharingStore: Sendable {
    /// The library as `userId` may see it, with `role` and `owner` set; nil when it is
    /// neither theirs nor shared with them (its existence is not revealed).
    func libraryAccess(userId: Int64, id: String) async throws -> LibraryInfo?
    /// The libraries shared with `userId`, by owner then name, with `role` and `owner` set.
    func sharedLibraries(userId: Int64) async throws -> [LibraryInfo]
    /// Gives `username` `role` (read or write) on the owner's library, or changes it.
    func shareLibrary(ownerId: Int64, libraryId: String, username: String, role: LibraryRole) async throws -> LibraryMember
    /// Takes the library away from `username`; false when they were not a member.
    func unshareLibrary(ownerId: Int64, libraryId: String, username: String) async throws -> Bool
    /// The library's owner and members (the caller's access is checked by the route).
    func libraryMembers(libraryId: String) async throws -> LibraryMembersResponse
    /// The size of chunk `hash` when the live version `seq` of `path` lists it, else nil:
    /// what a user of the library may read of it. Asked once per chunk a download fetches,
    /// so the packed list is searched in place, never decoded.
    func chunkSize(libraryId: String, path: FerryPath, version seq: Int64, hash: ContentHash) async throws -> Int64?
}

/// The rules of sharing that need no storage, the same on every backend.
enum SharingRules {
    static func noSuchUser(_ name: String) -> MetadataError { .invalid("there is no user named '\(name)'") }
    static let shareWithOwner = MetadataError.invalid("you own this library; share it with another user")
    static func notMember(_ name: String) -> MetadataError { .notFound("'\(name)' is not a member of this library") }
    static let readOnly = MetadataError.forbidden("this library is shared with you to read only; its owner can give you write access")

    /// A stored role, which the schema's CHECK keeps to the known names.
    static func role(_ raw: String) throws -> LibraryRole {
        guard let role = LibraryRole(rawValue: raw) else { throw MetadataError.invalid("unknown library role '\(raw)' in database") }
        return role
    }
}
