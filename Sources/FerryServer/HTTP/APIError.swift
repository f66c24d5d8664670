import FerryCore
import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import NIOCore

/// An API failure: the status of SPEC §3, a stable code, and one sentence saying what to do.
public struct APIError: Error, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var retryAfter: Int?

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, retryAfter: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    /// HTTP has no named 507 in HTTPTypes: define it once.
    public static let insufficientStorageStatus = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")

    static func badRequest(_ message: String, code: String = "invalid_request") -> APIError { .init(.badRequest, code, message) }
    static func unauthorized(_ message: String) -> APIError { .init(.unauthorized, "unauthorized", message) }
    static func forbidden(_ message: String) -> APIError { .init(.forbidden, "forbidden", message) }
    static func notFound(_ message: String) -> APIError { .init(.notFound, "not_found", message) }
    static func conflict(_ message: String) -> APIError { .init(.conflict, "conflict", message) }
    static func tooLarge(_ message: String) -> APIError { .init(.contentTooLarge, "too_large", message) }
    static func bodyTimeout(minRate: Int) -> APIError {
        .init(.requestTimeout, "request_timeout", "the request body arrived slower than \(minRate) bytes per second; nothing was stored")
    }
    static let outOfSpace = APIError(insufficientStorageStatus, "insufficient_storage", "the server is out of storage space; free space on the NAS and retry")

    /// The JSON error response.
    func response() -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        let body = (try? JSONCoding.encoder.encode(ErrorEnvelope(error: .init(code: code, message: message)))) ?? Data()
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// Maps any error to what the client sees. Unknown errors become 500 without details
    /// (they are logged by the caller).
    static func from(_ error: any Error) -> APIError? {
        switch error {
        case let e as APIError: return e
        case let e as PathError: return .badRequest(e.description, code: "invalid_path")
        case let e as QuotaExceeded: return .init(insufficientStorageStatus, "quota_exceeded", e.description)
        case let e as BlobError:
            switch e {
            case .hashMismatch(let expected, let actual):
                return .init(.unprocessableContent, "hash_mismatch", "the body hashes to \(actual), not to \(expected); nothing was stored")
            case .tooLarge(let limit): return .tooLarge("the body is larger than \(limit) bytes")
            case .outOfSpace: return .outOfSpace
            case .notFound, .io: return nil
            }
        case let e as MetadataError:
            switch e {
            case .duplicateUser(let name): return .conflict("a user named '\(name)' already exists")
            case .duplicateLibrary(let name): return .conflict("you already have a library named '\(name)'")
            case .notFound(let what): return .notFound("\(what) not found")
            case .conflict(let current):
                return .conflict(current.map { "the path changed on the server (now version \($0.version)); fetch it and retry with that base" }
                    ?? "the path does not exist on the server; retry without a base")
            case .invalid(let message): return .badRequest(message)
            case .stateConflict(let message): return .conflict(message)
            case .forbidden(let message): return .forbidden(message)
            case .collected(let message): return .init(.serviceUnavailable, "blob_collected", message, retryAfter: 1)
            }
        case let e as DecodingError: return .badRequest(JSONCoding.describe(e), code: "invalid_json")
        case let e as DatabaseError where e.resultCode == .SQLITE_FULL: return .outOfSpace
        case let e as HTTPError:
            let code = switch e.status {
            case .notFound: "not_found"
            case .methodNotAllowed: "method_not_allowed"
            case .contentTooLarge: "too_large"
            case .badRequest: "invalid_request"
            default: "http_\(e.status.code)"
            }
            let message = e.body ?? (e.status == .contentTooLarge ? "the request body is too large" : e.status.reasonPhrase.lowercased())
            return .init(e.status, code, message)
        default: return nil
        }
    }
}

extension JSONCoding {
    /// One sentence naming where the JSON went wrong.
    static func describe(_ error: DecodingError) -> String {
        func path(_ ctx: DecodingError.Context) -> String {
            let p = ctx.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return p.isEmpty ? "the body" : "'\(p.hasPrefix(".") ? String(p.dropFirst()) : p)'"
        }
        switch error {
        case .keyNotFound(let key, let ctx): return "\(path(ctx)) is missing the field '\(key.stringValue)'"
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx): return "\(path(ctx)) has the wrong type: \(ctx.debugDescription)"
        case .dataCorrupted(let ctx):
            return ctx.codingPath.isEmpty ? "the body is not valid JSON" : "\(path(ctx)) is invalid: \(ctx.debugDescription)"
        @unknown default: return "the body could not be decoded"
        }
    }
}
