/// Why a one-shot sync ends unsuccessfully; each case is the sentence the user sees.
public enum SyncVerdictError: ClientAppError, Equatable {
    /// A folder could not be synced at all.
    case failed(String, message: String)
    /// The mass-delete guard held back a folder's deletes.
    case paused(String, MassDeletePause)
    /// This many folders still have work left or files that could not be synced.
    case unsettled(Int)

    public var description: String {
        switch self {
        case .failed(let path, let message): "\(path): \(message)"
        case .paused(let path, let pause): "\(path): \(pause.description)"
        case .unsettled(let count): "\(count) folder(s) are not fully in sync; see the messages above"
        }
    }
}

/// Whether `ferry sync` succeeded: every folder synced and settled, and which failure it
/// reports when not.
public enum SyncVerdict {
    /// A folder's pass left nothing undone: no deferred action, no problem file, no held deletes. Pure.
    public static func isSettled(_ report: PassReport) -> Bool {
        report.deferred == 0 && report.problems.isEmpty && report.massDelete == nil
    }

    /// The folders, by path, whose pass did not settle. Pure.
    public static func unsettled(_ results: [String: PassReport]) -> [(path: String, report: PassReport)] {
        results.filter { !isSettled($0.value) }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Refuses the outcome of a sync: the first folder (by path) that failed, else the first
    /// paused by the mass-delete guard, else how many did not settle. Pure.
    /// - Parameters:
    ///   - results: each synced folder's report, by path.
    ///   - failures: each folder that could not be synced, by path, with why.
    public static func check(results: [String: PassReport], failures: [String: String]) throws(SyncVerdictError) {
        if let (path, message) = failures.min(by: { $0.key < $1.key }) { throw .failed(path, message: message) }
        if let (path, pause) = results.compactMap({ entry in entry.value.massDelete.map { (entry.key, $0) } }).min(by: { $0.0 < $1.0 }) {
            throw .paused(path, pause)
        }
        let unsettled = unsettled(results)
        if !unsettled.isEmpty { throw .unsettled(unsettled.count) }
    }
}
