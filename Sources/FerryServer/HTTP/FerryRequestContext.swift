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
    /// The peer's IP address, for rate limiting and the security log.
    public let remoteAddress: String?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress?.ipAddress
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
    func decodeJSON<T: Decodable>(_ type: T.Type, limit: Int) async throws -> T {
        if let length = headers[.contentLength].flatMap(Int.init), length > limit {
            throw APIError.tooLarge("the JSON body is \(length) bytes; at most \(limit) are accepted")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: limit)
        } catch let e as NIOTooManyBytesError {
            _ = e
            throw APIError.tooLarge("the JSON body is larger than \(limit) bytes")
        }
        guard buffer.readableBytes > 0 else { throw APIError.badRequest("the request needs a JSON body", code: "invalid_json") }
        return try buffer.withUnsafeReadableBytes { try JSONCoding.decode(T.self, from: $0) }
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
