import FerryCore
import Foundation
import Hummingbird

/// `/conflicts`: the open conflicts of the caller's libraries, each settled with Keep mine,
/// Keep theirs or Keep both.
struct ConflictPages {
    let services: ServerServices

    struct View {
        struct Row {
            let path: String
            let library: String
            let fileHref: String
            let copyPath: String
            let copyHref: String
            let mineSize: String
            let mineDevice: String
            let theirsVersion: Int64
            let theirsSize: String
            let theirsDevice: String
            let detected: Stamp
            let resolveHref: String
        }
        let conflicts: [Row]
    }

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("conflicts", use: list)
        group.post("conflicts/{id}/resolve", use: resolve)
    }

    @Sendable func list(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let user = try context.user()
        let conflicts = try await services.store.conflicts(userId: user.userId, libraryId: nil, state: .open, limit: 500)
        // The conflicts include those of libraries shared with the caller: named OWNER/NAME.
        let libraries = Dictionary(try await services.visibleLibraries(for: user).map { ($0.id, $0.displayName) }, uniquingKeysWith: { a, _ in a })
        let devices = try await services.deviceNames(userId: user.userId)
        let rows = conflicts.map { conflict in
            let links = LibraryLinks(library: conflict.library)
            return View.Row(path: conflict.path.string, library: libraries[conflict.library] ?? conflict.library, fileHref: links.file(conflict.path),
                            copyPath: conflict.mine.path.string, copyHref: links.file(conflict.mine.path),
                            mineSize: DashboardFormat.size(conflict.mine.size), mineDevice: devices.name(conflict.mine.deviceId),
                            theirsVersion: conflict.theirs.version, theirsSize: DashboardFormat.size(conflict.theirs.size),
                            theirsDevice: devices.name(conflict.theirs.deviceId), detected: Stamp(conflict.detectedAt),
                            resolveHref: "/conflicts/\(DashboardFormat.segment(conflict.id))/resolve")
        }
        return services.dashboard.page("conflicts", title: "Conflicts", section: .conflicts, content: View(conflicts: rows), context: context)
    }

    @Sendable func resolve(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let form = try await DashboardForm.read(request)
        guard let keep = form.optional("keep").flatMap(ConflictKeep.init(rawValue:)) else {
            throw APIError.badRequest("choose Keep mine, Keep theirs or Keep both")
        }
        _ = try await services.resolveConflict(try context.parameters.require("id"), keep: keep, by: try context.user())
        return seeOther("/conflicts")
    }
}
