import FerryCore

/// Why a path names no single open conflict; each case is the sentence the user sees.
public enum ConflictLookupError: ClientAppError, Equatable {
    /// No open conflict is on the path or has it as its conflict copy.
    case none(FerryPath)
    /// Several open conflicts are on the path; their conflict copies name each one.
    case ambiguous(FerryPath, copies: [FerryPath])

    public var description: String {
        switch self {
        case .none(let path): "\(path) has no open conflict; 'ferry conflicts' lists them"
        case .ambiguous(let path, let copies):
            "\(path) has \(copies.count) open conflicts; name the conflict copy instead: " + copies.map(\.string).joined(separator: ", ")
        }
    }
}

/// Finds the conflict `ferry conflicts resolve` settles.
public enum ConflictLookup {
    /// The open conflict `path` names among `open`: the one whose conflict copy it is, else
    /// the only one on that path. Pure.
    public static func conflict(for path: FerryPath, among open: [ConflictInfo]) throws(ConflictLookupError) -> ConflictInfo {
        let matches = open.filter { $0.mine.path == path } + open.filter { $0.path == path }
        guard let conflict = matches.first else { throw .none(path) }
        guard matches.count == 1 || conflict.mine.path == path else { throw .ambiguous(path, copies: matches.map(\.mine.path)) }
        return conflict
    }
}
