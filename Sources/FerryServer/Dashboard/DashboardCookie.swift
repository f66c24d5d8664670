import Foundation
import HTTPTypes
import Hummingbird

/// The dashboard's cookies: always `HttpOnly`, `SameSite=Strict` and `Path=/`, and `Secure`
/// whenever the request came over TLS.
enum DashboardCookie {
    /// The signed-in session: a random token whose SHA-256 names the server-side session.
    static let session = "ferry_session"
    /// The sign-in form's nonce, which its CSRF token is bound to.
    static let signIn = "ferry_signin"
    static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")!

    /// Whether the request reached us over TLS, so cookies are marked `Secure`: always when
    /// the server speaks HTTPS itself (SPEC §8), and behind a trusted reverse proxy
    /// (`http.trustedProxies`) that says so with `X-Forwarded-Proto: https`; a client's own
    /// header is ignored. This is the one place that decides.
    static func isSecure(_ request: Request, _ context: FerryRequestContext, services: ServerServices) -> Bool {
        if services.certificate != nil { return true }
        guard let proto = request.headers[forwardedProto]?.split(separator: ",").last?.trimmingCharacters(in: .whitespaces).lowercased(),
              proto == "https", let peer = context.peerAddress.flatMap({ IPAddress($0) }) else { return false }
        return services.trustedProxies.trusts(peer)
    }

    static func make(_ name: String, value: String, maxAge: Int, secure: Bool) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/", secure: secure, httpOnly: true, sameSite: .strict)
    }

    /// Tells the browser to forget a cookie.
    static func expired(_ name: String, secure: Bool) -> Cookie {
        Cookie(name: name, value: "", expires: Date(timeIntervalSince1970: 0), maxAge: 0, path: "/", secure: secure, httpOnly: true, sameSite: .strict)
    }
}
