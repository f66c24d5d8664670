import FerryCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization
import CoreMetrics

/// Turns every error into the JSON envelope of SPEC §3, counts requests and bytes, and
/// holds every request body to its time allowance (`BodyAllowance`).
struct ErrorAndMetricsMiddleware: RouterMiddleware {
    typealias Context = FerryRequestContext
    let services: ServerServices

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var request = request
        var context = context
        context.remoteAddress = services.trustedProxies.clientAddress(
            peer: context.peerAddress, forwardedFor: request.headers[values: TrustedProxies.forwardedFor])
        let metrics = services.metrics
        let http = services.configuration.http
        let allowance = BodyAllowance(seconds: http.requestBodyTimeoutSeconds, minRate: http.requestBodyMinRate)
        request.body = RequestBody(asyncSequence: request.body.map { buffer in
            // Checked as each piece arrives; a body that stops arriving altogether is the
            // idle timeout's to end.
            guard allowance.admit(buffer.readableBytes) else { throw APIError.bodyTimeout(minRate: http.requestBodyMinRate) }
            metrics.bytesIn.increment(by: buffer.readableBytes)
            return buffer
        })
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            if let api = APIError.from(error) {
                response = api.response()
            } else {
                context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))", "path": "\(request.uri.path)"])
                response = APIError(.internalServerError, "internal", "the server failed to handle this request; it has been logged").response()
            }
        }
        metrics.countRequest(method: request.method.rawValue, status: response.status.code)
        response.body = response.body.map { buffer in
            metrics.bytesOut.increment(by: buffer.readableBytes)
            return buffer
        }
        return response
    }
}

/// The time a request body has left: `seconds` from the start, plus one second per
/// `minRate` bytes received (mod_reqtimeout's rule). Bytes that arrive after it ran out
/// are refused.
final class BodyAllowance: Sendable {
    private let deadline: Mutex<ContinuousClock.Instant>
    private let perByte: Duration

    init(seconds: Int64, minRate: Int) {
        deadline = Mutex(ContinuousClock.now + .seconds(seconds))
        perByte = .seconds(1) / minRate
    }

    func admit(_ bytes: Int) -> Bool {
        deadline.withLock { deadline in
            guard ContinuousClock.now <= deadline else { return false }
            deadline += perByte * bytes
            return true
        }
    }
}

/// Accepts a device token (`fdt_…`) or a user access token (JWT whose session is still
/// live) and puts the identity in the context; anything else is 401.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = FerryRequestContext
    let services: ServerServices

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let identity = try await services.authenticate(request)
        context.identity = identity
        context.logger[metadataKey: "user"] = "\(identity.userId)"
        return try await next(request, context)
    }
}

extension ServerServices {
    /// The bearer token in `Authorization`, if there is one.
    static func bearerToken(_ request: Request) -> String? {
        guard let header = request.headers[.authorization], header.count > 7, header.prefix(7).lowercased() == "bearer " else { return nil }
        return String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
    }

    /// Who the request's bearer token belongs to: a live device token or a user access token
    /// whose session is still live; anything else is 401.
    func authenticate(_ request: Request) async throws -> Identity {
        guard let token = Self.bearerToken(request) else {
            throw APIError.unauthorized("sign in first: send 'Authorization: Bearer <token>'")
        }
        if token.hasPrefix(TokenService.devicePrefix) {
            guard let identity = try await store.identity(deviceTokenHash: TokenService.storedHash(token)) else {
                throw APIError.unauthorized("this device token is unknown or revoked; run 'ferry login' again")
            }
            return identity
        }
        guard let identity = await tokens.verifyAccessToken(token), let session = identity.sessionId,
              try await store.isSessionActive(id: session, userId: identity.userId)
        else { throw APIError.unauthorized("the access token is invalid, expired or revoked; refresh it or log in again") }
        return identity
    }
}
