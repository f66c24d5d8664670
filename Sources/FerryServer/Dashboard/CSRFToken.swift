import Crypto
import Foundation

/// The dashboard's anti-forgery tokens: an HMAC of the session id (or, before sign-in, of
/// the sign-in form's cookie) with the server's dashboard key. A page on another site can
/// neither read the cookie nor compute the token, so it cannot forge a form the server takes.
enum CSRFToken {
    /// Carried by every state-changing form as `csrf`, and by `fetch` as `X-CSRF-Token`.
    static let field = "csrf"
    static let header = "X-CSRF-Token"

    static func forSession(_ sessionId: String, key: SymmetricKey) -> String {
        mac("session\u{0}" + sessionId, key: key)
    }

    /// For the sign-in form, bound to its short-lived `ferry_signin` cookie.
    static func forSignIn(_ nonce: String, key: SymmetricKey) -> String {
        mac("signin\u{0}" + nonce, key: key)
    }

    /// Whether `presented` is `expected`, compared in constant time.
    static func matches(_ presented: String?, _ expected: String) -> Bool {
        guard let presented else { return false }
        return ConstantTime.equal(Array(presented.utf8), Array(expected.utf8))
    }

    private static func mac(_ message: String, key: SymmetricKey) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Array(message.utf8), using: key)
        return Data(code).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
