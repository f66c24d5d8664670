import FerryCore
import Foundation
import Hummingbird
import Logging
import NIOCore

/// Per-request state: the authenticated identity and the client's address.
public struct FerryRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by `AuthMiddleware` on authenticated routes.
    public var identity: Identity?
    /// The TCP peer's IP address (a reverse proxy's, behind one).
    public let peerAddress: String?
    /// The client's IP address, for rate limiting and the security log: the peer's, or what
    /// a trusted proxy says (`TrustedProxies`), set by `ErrorAndMetricsMiddleware`.
    public var remoteAddress: String?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.peerAddress = source.channel.remoteAddress?.ipAddress
        self.remoteAddress = peerAddress
    }

    public var responseEncoder: JSONEncoder { JSONCoding.encoder }
    public var requestDecoder: JSONDecoder { JSONCoding.decoder }

    /// The caller's identity; only nil on routes outside `AuthMiddleware`.
    func user() throws -> Identity {
        guard let identity else { throw APIError.unauthorized("sign in first: send 'Authorization: Bearer <token>'") }
        return identity
    }
}

extension Request {
    /// Decodes a JSON body of at most `limit` bytes, mapping every failure to a 400/413.
    /// Bodies above `JSONBodies.smallLimit` are for bulk types only: see `ServerServices.decodeBulk`.
    func decodeJSON<T: Decodable>(_ type: T.Type, limit: Int) async throws -> T {
        if let length = headers[.contentLength].flatMap(Int.init), length > limit {
            throw APIError.tooLarge("the JSON body is \(length) bytes; at most \(limit) are accepted")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError.tooLarge("the JSON body is larger than \(limit) bytes")
        }
        guard buffer.readableBytes > 0 else { throw APIError.badRequest("the request needs a JSON body", code: "invalid_json") }
        do {
            return try buffer.withUnsafeReadableBytes { try JSONCoding.decode(T.self, from: $0, foundationLimit: JSONBodies.smallLimit) }
        } catch let e as JSONCoding.NotPlainJSON {
            throw APIError.badRequest(e.description, code: "invalid_json")
        }
    }

    /// A query parameter, percent-decoded.
    func query(_ name: String) -> String? {
        uri.queryParameters.get(name)
    }

    /// An optional integer query parameter within `range`.
    func intQuery(_ name: String, in range: ClosedRange<Int64>, default value: Int64? = nil) throws -> Int64? {
        guard let raw = query(name) else { return value }
        guard let n = Int64(raw), range.contains(n) else {
            throw APIError.badRequest("query parameter '\(name)' must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }
}

/// How the server reads JSON bodies of different sizes.
enum JSONBodies {
    /// Bodies up to this size may be decoded by Foundation (a few tens of MB at most); larger
    /// ones only by `JSONReader`, and only under `ServerServices.largeBodies`.
    static let smallLimit = 1 << 20
}

extension ServerServices {
    /// Reads a bulk JSON body (a commit, a missing-chunks query) of at most `limit` bytes.
    /// One larger than `JSONBodies.smallLimit` (or of unknown length) is read and decoded
    /// only while holding a `largeBodies` slot for its user, so concurrent large bodies cost
    /// bounded memory; past the queue the answer is 503 with `Retry-After`.
    func decodeBulk<T: Decodable & JSONReadable & Sendable>(_ type: T.Type, _ request: Request, userId: Int64, limit: Int) async throws -> T {
        let length = request.headers[.contentLength].flatMap(Int.init)
        guard length.map({ $0 > JSONBodies.smallLimit }) ?? true, limit > JSONBodies.smallLimit else {
            return try await request.decodeJSON(T.self, limit: limit)
        }
        do {
            return try await largeBodies.run(key: String(userId)) { try await request.decodeJSON(T.self, limit: limit) }
        } catch is ConcurrencyGate.Busy {
            throw APIError(.serviceUnavailable, "busy", "the server is reading other large requests; retry in a second", retryAfter: 1)
        }
    }
}
