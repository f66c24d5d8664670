import FerryCore
import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore

/// What every page's layout reads: the title, the assets, and for a signed-in person the
/// navigation, their name and the CSRF token every form carries. The page's own data is
/// `content`, which its template opens with `{{#content}}`.
struct DashboardPage {
    /// The navigation's sections (SPEC §7 names their links).
    enum Section: String, CaseIterable {
        case libraries = "Libraries", devices = "Devices", tasks = "Tasks", webhooks = "Webhooks", conflicts = "Conflicts", admin = "Server"

        var href: String {
            switch self {
            case .libraries: "/libraries"
            case .devices: "/devices"
            case .tasks: "/tasks"
            case .webhooks: "/webhooks"
            case .conflicts: "/conflicts"
            case .admin: "/admin"
            }
        }
    }

    struct NavLink {
        let label: String
        let href: String
        let current: Bool
    }

    let title: String
    let css = DashboardAssets.styleURL
    let js = DashboardAssets.scriptURL
    let csrf: String?
    let username: String?
    let nav: [NavLink]
    let content: Any

    /// A page for the signed-in person in `context` (or the signed-out layout without one).
    init(title: String, section: Section?, content: Any, context: FerryRequestContext, state: DashboardState, csrf: String? = nil) {
        self.title = title
        self.content = content
        if let user = context.identity, let session = user.sessionId {
            username = user.username
            self.csrf = CSRFToken.forSession(session, key: state.csrfKey)
            nav = Section.allCases.filter { $0 != .admin || user.isAdmin }.map { NavLink(label: $0.rawValue, href: $0.href, current: $0 == section) }
        } else {
            username = nil
            self.csrf = csrf
            nav = []
        }
    }
}

extension DashboardState {
    /// Renders `template` as an HTML response.
    func render(_ template: String, _ page: DashboardPage, status: HTTPResponse.Status = .ok) -> Response {
        let html = templates.render(page, withTemplate: template) ?? ""
        return Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// Renders a page for the person in `context`.
    func page(_ template: String, title: String, section: DashboardPage.Section?, content: Any, context: FerryRequestContext,
              status: HTTPResponse.Status = .ok) -> Response {
        render(template, DashboardPage(title: title, section: section, content: content, context: context, state: self), status: status)
    }
}

/// A `303 See Other` to a page of the dashboard, after a form did its work.
func seeOther(_ location: String) -> Response {
    Response(status: .seeOther, headers: [.location: location])
}
