import FerryCore
import Foundation
import Logging

extension FolderSync {
    /// Selective sync's local step, after the plan is applied. Synced entries whose subtree
    /// left the selection are removed here only where they are still exactly what was synced
    /// (`removeLocal`: same kind, link target, or file size, mtime, inode and change time), a
    /// directory only once empty, then the library's directories above them that are left
    /// empty. Each is forgotten by the index, so nothing there is uploaded later; nothing is
    /// deleted on the server, and the mass-delete guard does not count these (they are not
    /// deletions). A file edited since it was synced is kept: it is then a local file outside
    /// the selection, logged now and counted in `outsideSelection`.
    func leaveSelection(_ inputs: PassInputs, report: inout PassReport) throws {
        let selection = folder.selection
        guard !selection.isEverything else { return }
        var outside = inputs.outsideSelection
        var removed = 0
        if !inputs.leaving.isEmpty {
            var update = IndexUpdate()
            var gone: [String] = []
            for e in inputs.leaving {
                switch downloads.removeLocal(e) {
                case .removed:
                    gone.append(e.path)
                    if outside.remove(e.path) != nil { removed += 1 }
                case .keptChanged:
                    logger.notice("kept a file changed since it was synced; it is outside the selection and is not uploaded",
                                  metadata: ["folder": "\(root)", "path": "\(e.path)"])
                case .keptNotEmpty:
                    break
                case .failed(let message):
                    report.problems[e.path] = message  // still as synced: the next pass tries again
                    continue
                }
                update.unsynced.append(e.path)
            }
            let mirror = try index.remote(folder: root)
            let directories = Set(mirror.filter { $0.value.kind == .directory && !$0.value.deleted }.keys)
            for path in selection.leftBehind(by: gone, libraryDirectories: directories) {
                guard let (directory, name) = try? FolderFS(root: root).parent(of: path) else { continue }
                if directory.remove(name, isDirectory: true) == 0 { directory.sync() }
            }
            try index.apply(folder: root, update)
        }
        scopes.record(outsideSelection: outside)
        report.outsideSelection = outside.count
        report.removedOutsideSelection = removed
    }

    /// `ferry status --why` for a path the folder's selection leaves out.
    static func outsideSelection(_ path: String, _ selection: Selection) -> String {
        "\(path) is outside this folder's selection (\(selection)): it is neither downloaded nor uploaded here, and not deleted on "
            + "either side; 'ferry folder select' changes the selection."
    }
}
