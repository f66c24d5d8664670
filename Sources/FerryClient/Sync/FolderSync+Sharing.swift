import FerryCore
import Foundation

/// Folders of libraries other users share with this one (SPEC §10).
extension FolderSync {
    /// Whether passes must keep local changes local: the library is shared with this user
    /// to read only. Free for the user's own library; for a shared one the server is asked
    /// once per run of passes (`settle`), dry run or revert, since its owner may change the
    /// role. A library no longer shared stops the folder with a sentence saying so, and
    /// nothing here is touched.
    func readOnlyNow() async throws -> Bool {
        guard folder.sharedRole != nil else { return false }
        guard let library = try await api.libraries().first(where: { $0.id == folder.libraryId }) else {
            throw ClientError.folderUnavailable(
                "library '\(folder.libraryName)' is no longer shared with you; the files in \(root) are kept and nothing is synced "
                + "('ferry folder remove \(root)' stops trying)")
        }
        return library.role == .read
    }

    /// Puts the library's content back over the local changes of a folder whose library is
    /// shared with this user to read only (`ReadOnlyPlan.reverting`); holds the folder's lock.
    public func revert() async throws -> PassReport {
        try checkRoot()
        let lock = try await FolderLock.acquire(root: root, timeout: lockTimeout)
        defer { lock.release() }
        guard try await readOnlyNow() else {
            throw ClientError.invalidInput("\(root) syncs a library you may change; its local changes are uploaded, so there is nothing to revert")
        }
        try await feed.pull()
        var inputs = try await gatherer.gather(uploadEarly: false)
        inputs.index = try refreshTouched(inputs)
        let plan = Planner.plan(index: inputs.index, local: inputs.local, remote: inputs.remote, policy: policy)
        let actions = ReadOnlyPlan.reverting(plan.actions, remote: inputs.remote)
        var report = PassReport()
        report.passes = 1
        report.planned = actions.count
        report.problems = inputs.problems
        try await downloads.apply(actions, index: inputs.index, report: &report)
        return report
    }
}
