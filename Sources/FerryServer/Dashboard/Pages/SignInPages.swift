import FerryCore
import Foundation
import HTTPTypes
import Hummingbird

/// `/signin` and `/signout`: the same accounts, rate limits and security log as the API's
/// login (`ServerServices.signIn`); the session lives server-side and the browser holds only
/// a random token in an `HttpOnly`, `SameSite=Strict` cookie that ends with it.
struct SignInPages {
    let services: ServerServices

    struct View {
        let next: String
        let typedName: String
        let error: String?
    }

    func addOpen(to group: RouterGroup<FerryRequestContext>) {
        group.get("signin", use: show)
        group.post("signin", use: signIn)
    }

    func addSignedIn(to group: RouterGroup<FerryRequestContext>) {
        group.get("/", use: home)
        group.post("signout", use: signOut)
    }

    @Sendable func home(_ request: Request, context: FerryRequestContext) async throws -> Response {
        seeOther("/libraries")
    }

    @Sendable func show(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let next = Self.localPath(request.query("next"))
        if context.identity != nil { return seeOther(next) }
        return form(View(next: next, typedName: "", error: nil), status: .ok, request: request, context: context)
    }

    @Sendable func signIn(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let form = try await DashboardForm.read(request)
        let next = Self.localPath(form.fields["next"])
        let name = form.fields["username"] ?? ""
        let nonce = request.cookies[DashboardCookie.signIn]?.value ?? ""
        guard !nonce.isEmpty, CSRFToken.matches(form.fields[CSRFToken.field], CSRFToken.forSignIn(nonce, key: services.dashboard.csrfKey)) else {
            return self.form(View(next: next, typedName: name, error: "The sign-in form had expired. Please sign in again."),
                             status: .forbidden, request: request, context: context)
        }
        let user: StoredUser
        do {
            user = try await services.signIn(username: name, password: form.fields["password"] ?? "", address: context.remoteAddress)
        } catch let error as APIError {
            let message = switch error.status {
            case .tooManyRequests: "Too many failed sign-ins. Try again in \(error.retryAfter ?? 1) seconds."
            case .serviceUnavailable: "The server is busy checking other sign-ins. Try again in a second."
            default: "Invalid user name or password."
            }
            var response = self.form(View(next: next, typedName: name, error: message), status: error.status, request: request, context: context)
            if let retry = error.retryAfter { response.headers[.retryAfter] = String(retry) }
            return response
        }
        let token = TokenService.randomToken(prefix: "fds_")
        let lifetime = services.configuration.auth.dashboardSessionHours * 3600
        _ = try await services.store.createDashboardSession(userId: user.id, cookieHash: TokenService.storedHash(token),
                                                            expiresAt: Date().addingTimeInterval(lifetime))
        try await services.store.recordSecurityEvent(.init(kind: .loginSucceeded, userId: user.id, username: user.username,
                                                           address: context.remoteAddress, detail: "dashboard"))
        let secure = DashboardCookie.isSecure(request, context, services: services)
        var response = seeOther(next)
        response.setCookie(DashboardCookie.make(DashboardCookie.session, value: token, maxAge: Int(lifetime), secure: secure))
        response.setCookie(DashboardCookie.expired(DashboardCookie.signIn, secure: secure))
        return response
    }

    @Sendable func signOut(_ request: Request, context: FerryRequestContext) async throws -> Response {
        try await services.signOut(try context.user(), address: context.remoteAddress)
        var response = seeOther("/signin")
        response.setCookie(DashboardCookie.expired(DashboardCookie.session, secure: DashboardCookie.isSecure(request, context, services: services)))
        return response
    }

    /// The sign-in page with a fresh form nonce (cookie) and the token bound to it.
    private func form(_ view: View, status: HTTPResponse.Status, request: Request, context: FerryRequestContext) -> Response {
        let nonce = TokenService.randomToken(prefix: "")
        let page = DashboardPage(title: "Sign in", section: nil, content: view, context: context, state: services.dashboard,
                                 csrf: CSRFToken.forSignIn(nonce, key: services.dashboard.csrfKey))
        var response = services.dashboard.render("signin", page, status: status)
        let secure = DashboardCookie.isSecure(request, context, services: services)
        response.setCookie(DashboardCookie.make(DashboardCookie.signIn, value: nonce, maxAge: 3600, secure: secure))
        return response
    }

    /// Where to go after signing in: a path on this server, never another site.
    static func localPath(_ raw: String?) -> String {
        guard let raw, raw.hasPrefix("/"), !raw.hasPrefix("//"), !raw.hasPrefix("/\\"),
              !raw.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return "/libraries" }
        return raw
    }
}
