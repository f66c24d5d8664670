import FerryCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// In front of every dashboard route: finds the signed-in session from its cookie, refuses
/// state-changing requests from other origins or without the session's CSRF token, turns
/// errors into pages, and sends the security headers (a strict CSP, no sniffing, no framing).
struct DashboardMiddleware: RouterMiddleware {
    typealias Context = FerryRequestContext
    let services: ServerServices
    /// Pages that need a session send a signed-out visitor to the sign-in page.
    let requireSession: Bool

    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!
    static let csrfHeader = HTTPField.Name(CSRFToken.header)!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
    static let frameOptions = HTTPField.Name("X-Frame-Options")!
    static let openerPolicy = HTTPField.Name("Cross-Origin-Opener-Policy")!
    /// `script-src 'self'` and no `unsafe-inline` anywhere: the pages carry no inline script or style.
    static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        + "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var request = request
        var context = context
        var response: Response
        do {
            context.identity = try await services.dashboardIdentity(request)
            let unsafe = ![HTTPRequest.Method.get, .head, .options].contains(request.method)
            if unsafe { try Self.checkSameOrigin(request) }
            if requireSession {
                guard let user = context.identity, let session = user.sessionId else { throw DashboardSignInRequired() }
                context.logger[metadataKey: "user"] = "\(user.userId)"
                if unsafe { request = try await Self.checkCSRF(request, expected: CSRFToken.forSession(session, key: services.dashboard.csrfKey)) }
            }
            response = try await next(request, context)
        } catch {
            response = errorResponse(error, request: request, context: context)
        }
        Self.addSecurityHeaders(&response.headers)
        return response
    }

    /// A request that changes something must come from a page of this server: browsers say
    /// where it came from in `Sec-Fetch-Site` and `Origin`, and a mismatch is refused.
    static func checkSameOrigin(_ request: Request) throws {
        if let site = request.headers[secFetchSite], site != "same-origin" {
            throw APIError.forbidden("this request came from another site (Sec-Fetch-Site: \(site)); use the dashboard's own forms")
        }
        guard let origin = request.headers[.origin] else { return }
        let host = (request.head.authority ?? "").lowercased()
        let originHost = origin.lowercased().split(separator: "://", maxSplits: 1).last.map(String.init) ?? ""
        guard !host.isEmpty, originHost == host else {
            throw APIError.forbidden("this request came from another origin (\(origin)); use the dashboard's own forms")
        }
    }

    /// The session's token in `X-CSRF-Token` (scripts) or in the form's `csrf` field (forms,
    /// whose body is read here and handed on unchanged).
    static func checkCSRF(_ request: Request, expected: String) async throws -> Request {
        if let header = request.headers[csrfHeader] {
            guard CSRFToken.matches(header, expected) else { throw APIError.forbidden("the page's security token is out of date; reload the page and try again") }
            return request
        }
        guard request.headers[.contentType]?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true else {
            throw APIError.forbidden("the request carries no security token; use the dashboard's own pages")
        }
        let body = try await DashboardForm.collect(request)
        guard CSRFToken.matches(DashboardForm.parse(body)[CSRFToken.field], expected) else {
            throw APIError.forbidden("the page's security token is missing or out of date; reload the page and try again")
        }
        var request = request
        request.body = RequestBody(buffer: body)
        return request
    }

    static func addSecurityHeaders(_ headers: inout HTTPFields) {
        if headers[.contentSecurityPolicy] == nil { headers[.contentSecurityPolicy] = contentSecurityPolicy }
        if headers[.cacheControl] == nil { headers[.cacheControl] = "no-store" }
        headers[.xContentTypeOptions] = "nosniff"
        headers[referrerPolicy] = "same-origin"
        headers[frameOptions] = "DENY"
        headers[openerPolicy] = "same-origin"
    }

    /// A page for a person, a sentence for a script, a redirect to sign in.
    func errorResponse(_ error: any Error, request: Request, context: Context) -> Response {
        let wantsPage = request.headers[.accept]?.contains("text/html") == true
        if error is DashboardSignInRequired {
            guard wantsPage else { return Self.plain(.unauthorized, "sign in to the dashboard first") }
            let next = request.method == .get ? request.uri.description : "/libraries"
            return seeOther("/signin?next=" + DashboardFormat.query(next))
        }
        let api: APIError
        if let known = APIError.from(error) {
            api = known
        } else {
            context.logger.error("dashboard request failed", metadata: ["error": "\(String(reflecting: error))", "path": "\(request.uri.path)"])
            api = APIError(.internalServerError, "internal", "the server failed to handle this request; it has been logged")
        }
        guard wantsPage else { return Self.plain(api.status, api.message) }
        let page = DashboardErrorView(status: api.status, message: api.message)
        var response = services.dashboard.page("error", title: page.heading, section: nil, content: page, context: context, status: api.status)
        if let retry = api.retryAfter { response.headers[.retryAfter] = String(retry) }
        return response
    }

    static func plain(_ status: HTTPResponse.Status, _ message: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: message + "\n")))
    }
}

/// A page needs a signed-in session and the request has none.
struct DashboardSignInRequired: Error {}

/// What an error page shows.
struct DashboardErrorView {
    let heading: String
    let message: String

    init(status: HTTPResponse.Status, message: String) {
        heading = switch status.code {
        case 400: "That did not work"
        case 403: "Not allowed"
        case 404: "Not found"
        case 409: "It changed meanwhile"
        case 413: "Too large"
        case 429: "Too many attempts"
        case 507: "Out of space"
        default: "Something went wrong"
        }
        // The API's messages start in lower case: they end sentences elsewhere.
        self.message = message.prefix(1).uppercased() + message.dropFirst() + (message.hasSuffix(".") ? "" : ".")
    }
}

extension ServerServices {
    /// Who the request's dashboard cookie signs in, if anyone.
    func dashboardIdentity(_ request: Request) async throws -> Identity? {
        guard let token = request.cookies[DashboardCookie.session]?.value, (1...128).contains(token.utf8.count) else { return nil }
        return try await store.dashboardIdentity(cookieHash: TokenService.storedHash(token))
    }
}
