import FerryCore
import Foundation
import Hummingbird

/// `/libraries/{lib}/retention`: the library's retention policy, shown and set by its owner
/// with a form (CSRF-checked like every dashboard form; a bad value is an error page naming it).
struct RetentionPages {
    let services: ServerServices

    struct RetentionView {
        let heading: String
        let crumbs: [Crumb]
        let action: String
        let summary: String
        let keepVersions: String
        let keepDays: String
        let trashDays: String
        let saved: Bool
    }

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("libraries/{lib}/retention", use: show)
        group.post("libraries/{lib}/retention", use: save)
    }

    @Sendable func show(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let library = try await services.retentionLibrary(context)
        let retention = try await services.retention(of: library, for: try context.user())
        let links = LibraryLinks(library: library.id)
        let p = retention.policy
        let view = RetentionView(
            heading: "Retention of \(library.name)",
            crumbs: Crumb.trail(library: library, path: nil, linkLast: true) { links.folder($0) } + [Crumb(name: "Retention", href: nil)],
            action: links.base + "/retention", summary: p.summary,
            keepVersions: p.keepVersions.map(String.init) ?? "", keepDays: p.keepDays.map(String.init) ?? "",
            trashDays: p.trashDays.map(String.init) ?? "", saved: request.query("saved") != nil)
        return services.dashboard.page("retention", title: view.heading, section: .libraries, content: view, context: context)
    }

    @Sendable func save(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let library = try await services.retentionLibrary(context)
        let form = try await DashboardForm.read(request)
        let policy = RetentionPolicy(keepVersions: try Self.limit(form, "keep_versions", label: "Keep versions"),
                                     keepDays: try Self.limit(form, "keep_days", label: "Keep days"),
                                     trashDays: try Self.limit(form, "trash_days", label: "Trash days"))
        if let problem = policy.problem(naming: .init(keepVersions: "Keep versions", keepDays: "Keep days", trashDays: "Trash days", unset: "blank")) {
            throw APIError.badRequest(problem)
        }
        _ = try await services.setRetention(policy, of: library, by: try context.user())
        return seeOther(LibraryLinks(library: library.id).base + "/retention?saved=1")
    }

    /// A limit field: blank keeps everything for it; otherwise a whole number (checked
    /// against the policy's ranges by `setRetention`).
    static func limit(_ form: DashboardForm, _ name: String, label: String) throws -> Int? {
        guard let text = form.optional(name) else { return nil }
        guard let n = Int(text) else { throw APIError.badRequest("\(label) must be a whole number, or blank to keep everything") }
        return n
    }
}

/// The retention page's template.
enum RetentionTemplates {
    static let all: [(String, String)] = [("retention", retention)]

    static let retention = #"""
    {{<layout}}{{$body}}{{#content}}
    {{> crumbs}}
    <h1>{{heading}}</h1>
    {{#saved}}<p class="notice" role="status">Saved. The server applies it within the hour; <code>ferry-server gc</code> then frees the space.</p>{{/saved}}
    <p>Now: {{summary}}.</p>
    <p class="meta">The current version of a file, a version attached to a task and both sides of an open conflict are always kept. Leave a field blank to keep everything for it.</p>
    <form method="post" action="{{action}}">
    {{> csrf}}
    <p><label for="keep-versions">Keep the newest versions of each file</label>
    <input id="keep-versions" name="keep_versions" inputmode="numeric" pattern="[0-9]*" value="{{keepVersions}}"></p>
    <p><label for="keep-days">Keep versions current in the last days</label>
    <input id="keep-days" name="keep_days" inputmode="numeric" pattern="[0-9]*" value="{{keepDays}}"></p>
    <p><label for="trash-days">Keep deleted files for days</label>
    <input id="trash-days" name="trash_days" inputmode="numeric" pattern="[0-9]*" value="{{trashDays}}"></p>
    <button type="submit">Save retention</button>
    </form>
    {{/content}}{{/body}}{{/layout}}
    """#
}
