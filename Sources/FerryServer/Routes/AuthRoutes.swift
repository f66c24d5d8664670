import FerryCore
import Foundation
import Hummingbird
import Logging
import NIOPosix

/// `/auth`: login, refresh with rotation and reuse detection, logout, me.
struct AuthRoutes {
    let services: ServerServices

    func addPublic(to group: RouterGroup<FerryRequestContext>) {
        group.post("auth/login", use: login)
        group.post("auth/refresh", use: refresh)
    }

    func addAuthenticated(to group: RouterGroup<FerryRequestContext>) {
        group.post("auth/logout", use: logout)
        group.get("auth/me", use: me)
    }

    @Sendable func login(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(LoginRequest.self, limit: 16 * 1024)
        let user = try await services.signIn(username: body.username, password: body.password, address: context.remoteAddress)
        let refresh = TokenService.randomToken(prefix: TokenService.refreshPrefix)
        let now = Date()
        let session = try await services.store.createSession(
            userId: user.id, refreshTokenHash: TokenService.storedHash(refresh),
            refreshExpiresAt: now.addingTimeInterval(services.tokens.refreshTokenLifetime),
            sessionExpiresAt: now.addingTimeInterval(services.configuration.auth.sessionDays * 86400))
        try await services.store.recordSecurityEvent(.init(kind: .loginSucceeded, userId: user.id, username: user.username, address: context.remoteAddress))
        return try await tokens(user: user, session: session, refresh: refresh, context: context, request: request)
    }

    @Sendable func refresh(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(RefreshRequest.self, limit: 16 * 1024)
        let replacement = TokenService.randomToken(prefix: TokenService.refreshPrefix)
        let outcome = try await services.store.rotateRefreshToken(
            presented: TokenService.storedHash(body.refreshToken), replacement: TokenService.storedHash(replacement),
            replacementExpiresAt: Date().addingTimeInterval(services.tokens.refreshTokenLifetime))
        switch outcome {
        case .invalid:
            throw APIError.unauthorized("the refresh token is invalid, expired or revoked; log in again")
        case .reused(let userId, let session):
            try await services.store.recordSecurityEvent(.init(kind: .refreshTokenReused, userId: userId, address: context.remoteAddress, detail: "session \(session) revoked"))
            context.logger.warning("refresh token reused; session revoked", metadata: ["user": "\(userId)"])
            throw APIError.unauthorized("this refresh token was already used, so the session has been ended for safety; log in again")
        case .rotated(let userId, let session):
            guard let user = try await services.store.user(id: userId) else { throw APIError.unauthorized("the user no longer exists") }
            return try await tokens(user: user, session: session, refresh: replacement, context: context, request: request)
        }
    }

    @Sendable func logout(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let user = try context.user()
        guard user.sessionId != nil else {
            throw APIError.badRequest("a device token does not log out; revoke the device with DELETE /devices/{id}")
        }
        try await services.signOut(user, address: context.remoteAddress)
        return Response(status: .noContent)
    }

    @Sendable func me(_ request: Request, context: FerryRequestContext) async throws -> MeResponse {
        let user = try context.user()
        return MeResponse(id: user.userId, username: user.username, isAdmin: user.isAdmin, deviceId: user.deviceId)
    }

    private func tokens(user: StoredUser, session: String, refresh: String, context: FerryRequestContext, request: Request) async throws -> Response {
        let access = try await services.tokens.accessToken(for: user, sessionId: session)
        let body = TokenResponse(accessToken: access, refreshToken: refresh, expiresIn: Int(services.tokens.accessTokenLifetime))
        var response = try body.response(from: request, context: context)
        response.headers[.cacheControl] = "no-store"
        return response
    }
}

extension MeResponse: ResponseEncodable {}
extension TokenResponse: ResponseEncodable {}
extension DeviceListResponse: ResponseEncodable {}
extension RegisterDeviceResponse: ResponseEncodable {}
extension LibraryInfo: ResponseEncodable {}
extension LibraryListResponse: ResponseEncodable {}
extension ChunkUploadResponse: ResponseEncodable {}
extension HistoryResponse: ResponseEncodable {}
extension ListResponse: ResponseEncodable {}
extension VersionResponse: ResponseEncodable {}

// The answers sent in bulk go through `JSONWriter` (same bytes, a fraction of the time).
extension MissingChunksResponse: ResponseGenerator {}
extension ChunkBatchResponse: ResponseGenerator {}
extension CommitResponse: ResponseGenerator {}
extension ChangesResponse: ResponseGenerator {}

extension ResponseGenerator where Self: JSONWritable {
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = jsonBytes
        return Response(
            status: .ok,
            headers: [.contentType: "application/json; charset=utf-8", .contentLength: String(body.count)],
            body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
