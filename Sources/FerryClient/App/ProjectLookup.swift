import FerryCore

/// Why a project argument names no single project; each case is the sentence the user sees.
public enum ProjectLookupError: ClientAppError, Equatable {
    /// No project of the caller's has that id or name.
    case unknown(String)
    /// Several of the caller's projects have that name (their ids follow).
    case ambiguous(String, ids: [String])

    public var description: String {
        switch self {
        case .unknown(let name): "no project '\(name)'; 'ferry project list' shows yours"
        case .ambiguous(let name, let ids): "several projects are named '\(name)'; give its id: " + ids.joined(separator: ", ")
        }
    }
}

/// Finds the project a command-line argument names.
public enum ProjectLookup {
    /// The id of the project `nameOrId` names among `projects`: one with that id, else the
    /// only one with that name. Pure.
    public static func id(for nameOrId: String, among projects: [ProjectInfo]) throws(ProjectLookupError) -> String {
        if projects.contains(where: { $0.id == nameOrId }) { return nameOrId }
        let named = projects.filter { $0.name == nameOrId }
        guard let first = named.first else { throw .unknown(nameOrId) }
        guard named.count == 1 else { throw .ambiguous(nameOrId, ids: named.map(\.id)) }
        return first.id
    }

    /// The id of the project `nameOrId` names among those the caller owns or belongs to.
    public static func id(for nameOrId: String, api: ServerAPI) async throws -> String {
        try id(for: nameOrId, among: try await api.projects())
    }
}
