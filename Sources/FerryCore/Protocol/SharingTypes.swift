import Foundation

/// What a user may do with a library: its owner everything, a `write` member read and
/// commit, a `read` member only read (SPEC §10).
public enum LibraryRole: String, Codable, Sendable, Hashable, CaseIterable, Comparable {
    case read, write, owner

    /// Whether this role includes everything `other` allows.
    public func allows(_ other: LibraryRole) -> Bool { self >= other }

    public static func < (a: LibraryRole, b: LibraryRole) -> Bool { a.rank < b.rank }

    private var rank: Int {
        switch self {
        case .read: 0
        case .write: 1
        case .owner: 2
        }
    }
}

/// One user a library is shared with.
public struct LibraryMember: Codable, Sendable, Hashable {
    public var username: String
    public var role: LibraryRole
    public var addedAt: Date

    public init(username: String, role: LibraryRole, addedAt: Date) {
        self.username = username
        self.role = role
        self.addedAt = addedAt
    }

    enum CodingKeys: String, CodingKey {
        case username, role
        case addedAt = "added_at"
    }
}

/// `PUT /libraries/{lib}/members/{username}` body: the role to give (`read` or `write`).
/// A string, so a wrong value is answered with a sentence rather than a decoding error.
public struct ShareLibraryRequest: Codable, Sendable {
    public var role: String
    public init(role: String) { self.role = role }
}

/// `GET /libraries/{lib}/members` answer: the owner's name and the members by name.
public struct LibraryMembersResponse: Codable, Sendable, Equatable {
    public var owner: String
    public var members: [LibraryMember]
    public init(owner: String, members: [LibraryMember]) {
        self.owner = owner
        self.members = members
    }
}

extension LibraryInfo {
    /// How a person names the library: `NAME` when it is theirs, `OWNER/NAME` when shared.
    public var displayName: String {
        guard let role, role != .owner, let owner else { return name }
        return "\(owner)/\(name)"
    }
}
