import FerryCore
import Foundation
import Hummingbird

/// `/libraries/{lib}/members`: who a library is shared with; its owner shares and unshares
/// here (CSRF-checked forms, as every dashboard form). The rules are the API's.
struct MemberPages {
    let services: ServerServices

    struct MembersView {
        struct Row {
            let username: String
            let role: String
        }
        let heading: String
        let crumbs: [Crumb]
        let owner: String
        let members: [Row]
        let isOwner: Bool
        let shareHref: String
        let removeHref: String
    }

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("libraries/{lib}/members", use: members)
        group.post("libraries/{lib}/members", use: share)
        group.post("libraries/{lib}/members/remove", use: unshare)
    }

    @Sendable func members(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let library = try await services.library(context, needs: .read)
        let answer = try await services.store.libraryMembers(libraryId: library.id)
        let links = LibraryLinks(library: library.id)
        let view = MembersView(
            heading: "Members of \(library.displayName)", crumbs: Crumb.trail(library: library, path: nil, linkLast: true) { links.folder($0) }
                + [Crumb(name: "Members", href: nil)],
            owner: answer.owner, members: answer.members.map { MembersView.Row(username: $0.username, role: $0.role.rawValue) },
            isOwner: library.role == .owner, shareHref: links.members, removeHref: links.members + "/remove")
        return services.dashboard.page("members", title: view.heading, section: .libraries, content: view, context: context)
    }

    @Sendable func share(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let user = try context.user()
        let library = try await services.library(context, needs: .owner)
        let form = try await DashboardForm.read(request)
        let username = try form.required("username", label: "the user's name")
        let role = try LibrarySharingRoutes.memberRole(try form.required("role", label: "the role"))
        _ = try await services.store.shareLibrary(ownerId: user.userId, libraryId: library.id, username: username, role: role)
        return seeOther(LibraryLinks(library: library.id).members)
    }

    @Sendable func unshare(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let user = try context.user()
        let library = try await services.library(context, needs: .owner)
        let username = try await DashboardForm.read(request).required("username", label: "the member's name")
        guard try await services.store.unshareLibrary(ownerId: user.userId, libraryId: library.id, username: username) else {
            throw SharingRules.notMember(username)
        }
        return seeOther(LibraryLinks(library: library.id).members)
    }
}

extension LibraryLinks {
    var members: String { base + "/members" }
}

/// The members page's template.
enum MemberTemplates {
    static let all: [(String, String)] = [("members", members)]

    static let members = #"""
    {{<layout}}{{$body}}{{#content}}
    {{> crumbs}}
    <h1>{{heading}}</h1>
    <div class="table-wrap">
    <table>
    <caption class="visually-hidden">Members</caption>
    <thead><tr><th scope="col">User</th><th scope="col">Role</th>{{#isOwner}}<th scope="col"><span class="visually-hidden">Actions</span></th>{{/isOwner}}</tr></thead>
    <tbody>
    <tr><td>{{owner}}</td><td>owner</td>{{#isOwner}}<td></td>{{/isOwner}}</tr>
    {{#members}}<tr><td>{{username}}</td><td>{{role}}</td>{{#isOwner}}<td><form method="post" action="{{removeHref}}">{{> csrf}}<input type="hidden" name="username" value="{{username}}"><button type="submit" aria-label="Unshare with {{username}}">Unshare</button></form></td>{{/isOwner}}</tr>
    {{/members}}
    </tbody>
    </table>
    </div>
    {{#isOwner}}
    <form class="row" method="post" action="{{shareHref}}">
    {{> csrf}}
    <label for="share-user">User</label>
    <input id="share-user" name="username" required maxlength="64">
    <label for="share-role">Role</label>
    <select id="share-role" name="role"><option value="read">read</option><option value="write">write</option></select>
    <button type="submit">Share</button>
    </form>
    {{/isOwner}}
    {{/content}}{{/body}}{{/layout}}
    """#
}
