import Crypto
import FerryCore
import Foundation
import JWTKit

/// The claims of a user access token.
struct AccessClaims: JWTPayload {
    var sub: SubjectClaim
    var sid: String
    var name: String
    var adm: Bool
    var exp: ExpirationClaim
    var iat: IssuedAtClaim

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }
}

/// Issues and checks tokens: JWT access tokens (HS256 with the server's signing key) and
/// opaque random refresh and device tokens, which are stored only as SHA-256.
public struct TokenService: Sendable {
    let keys: JWTKeyCollection
    public let accessTokenLifetime: TimeInterval
    public let refreshTokenLifetime: TimeInterval

    public init(signingKey: [UInt8], accessTokenLifetime: TimeInterval = 3600, refreshTokenLifetime: TimeInterval = 24 * 3600) async {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(key: SymmetricKey(data: signingKey)), digestAlgorithm: .sha256)
        self.keys = keys
        self.accessTokenLifetime = accessTokenLifetime
        self.refreshTokenLifetime = refreshTokenLifetime
    }

    func accessToken(for user: StoredUser, sessionId: String, now: Date = Date()) async throws -> String {
        let claims = AccessClaims(
            sub: .init(value: String(user.id)), sid: sessionId, name: user.username, adm: user.isAdmin,
            exp: .init(value: now.addingTimeInterval(accessTokenLifetime)), iat: .init(value: now))
        return try await keys.sign(claims)
    }

    /// The identity an access token names, if its signature and expiry hold. The caller
    /// still checks the session is live.
    func verifyAccessToken(_ token: String) async -> Identity? {
        guard let claims = try? await keys.verify(token, as: AccessClaims.self), let id = Int64(claims.sub.value) else { return nil }
        return Identity(userId: id, username: claims.name, isAdmin: claims.adm, deviceId: nil, sessionId: claims.sid)
    }

    /// A new opaque token: a prefix saying what it is, then 256 random bits, base64url.
    static func randomToken(prefix: String) -> String {
        let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        return prefix + Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// What is stored for an opaque token.
    static func storedHash(_ token: String) -> [UInt8] { Array(SHA256.hash(data: Array(token.utf8))) }

    static let devicePrefix = "fdt_"
    static let refreshPrefix = "frt_"
}
