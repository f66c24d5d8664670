import FerryCore

/// Why there is no version to restore; each case is the sentence the user sees.
public enum RestoreChoiceError: ClientAppError, Equatable {
    /// The server has no version of the path at all.
    case noHistory(FerryPath)
    /// The version asked for is not one of the path's; `argument` is the path as the user gave it.
    case noSuchVersion(FerryPath, version: Int64, argument: String)
    /// No version before the current one is there to go back to (or only deletions are).
    case noEarlierVersion(FerryPath)

    public var description: String {
        switch self {
        case .noHistory(let path): "\(path) has no history on the server"
        case .noSuchVersion(let path, let version, let argument): "\(path) has no version \(version); 'ferry history \(argument)' lists its versions"
        case .noEarlierVersion(let path): "\(path) has no earlier version to restore"
        }
    }
}

/// Which version `ferry restore` makes current again.
public enum RestoreChoice {
    /// How many of a path's versions, newest first, are read to choose from.
    public static let historyLimit = 1000

    /// The version to restore of `path`, and the current one it is based on, from `history`
    /// (newest first, at most `historyLimit` versions): `wanted` when given, else the newest
    /// earlier version that is not a deletion. Pure. A wanted version older than a full page
    /// of history is left to the server to check.
    /// - Parameter argument: the path as the user gave it, for the error's hint.
    public static func choose(
        _ wanted: Int64?, of path: FerryPath, argument: String, history: [FileVersion]
    ) throws(RestoreChoiceError) -> (version: Int64, base: Int64) {
        guard let current = history.first else { throw .noHistory(path) }
        if let wanted {
            guard history.count >= historyLimit || history.contains(where: { $0.version == wanted }) else {
                throw .noSuchVersion(path, version: wanted, argument: argument)
            }
            return (wanted, current.version)
        }
        guard let previous = history.dropFirst().first(where: { !$0.deleted }) else { throw .noEarlierVersion(path) }
        return (previous.version, current.version)
    }
}
