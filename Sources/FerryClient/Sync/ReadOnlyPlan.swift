import FerryCore
import Foundation

/// What a folder does with a library shared with its user to read only (SPEC §10): it
/// takes the library's changes but never sends its own. A local change stays local and is
/// reported per path (so `ferry status` and `ferry sync` list it); where the library
/// changed the same file, SPEC §2's rule holds: the local edit is kept as a conflict copy
/// beside the library's version, and that copy is one more local-only file.
/// Pure: the planner's actions in, actions out.
public enum ReadOnlyPlan {
    /// The actions a read-only folder takes, and the local changes it keeps to itself with
    /// the sentence that says so.
    public static func split(_ actions: [PlannedAction]) -> (taken: [PlannedAction], localOnly: [String: String]) {
        var taken: [PlannedAction] = []
        var localOnly: [String: String] = [:]
        for action in actions {
            switch action {
            case .upload(_, let base):
                localOnly[action.path] = (base == nil ? "new here" : "changed here") + "; " + keptLocal
            case .deleteRemote:
                localOnly[action.path] = "deleted here; " + keptLocal
            default:
                taken.append(action)
            }
        }
        return (taken, localOnly)
    }

    /// The actions that put the library's content back over a read-only folder's local
    /// changes (`ferry folder revert`): a file changed here becomes a conflict copy beside
    /// the library's version, one deleted here comes back, and the library's own changes
    /// are taken as in any pass. A file only here (the library has none, or deleted it)
    /// stays: reverting never loses data.
    public static func reverting(_ actions: [PlannedAction], remote: [String: FileVersion]) -> [PlannedAction] {
        actions.compactMap { action in
            switch action {
            case .upload(let local, _):
                guard let live = remote[local.path], !live.deleted else { return nil }
                if local.kind == .directory && live.kind == .directory { return nil }
                return .conflict(local, remote: live)
            case .deleteRemote(let path, _):
                guard let live = remote[path], !live.deleted else { return nil }
                return .download(live)
            default:
                return action
            }
        }
    }

    static let keptLocal = "the library is shared with you to read only, so this stays on this device ('ferry folder revert' puts the library's version back)"
}
