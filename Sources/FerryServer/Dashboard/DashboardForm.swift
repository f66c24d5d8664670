import FerryCore
import Foundation
import Hummingbird
import NIOCore

/// A submitted `application/x-www-form-urlencoded` form, read whole (forms are small) and
/// checked field by field with messages that name the field.
struct DashboardForm: Sendable {
    let fields: [String: String]

    /// The largest form taken: a task's 64 KiB description, percent-encoded, and the rest.
    static let limit = 256 * 1024

    static func read(_ request: Request) async throws -> DashboardForm {
        DashboardForm(fields: parse(try await collect(request)))
    }

    /// The body's bytes, refused when too large or not a url-encoded form.
    static func collect(_ request: Request) async throws -> ByteBuffer {
        let type = request.headers[.contentType]?.lowercased() ?? ""
        guard type.hasPrefix("application/x-www-form-urlencoded") else {
            throw APIError.badRequest("forms are sent as application/x-www-form-urlencoded")
        }
        do {
            return try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError.tooLarge("the form is larger than \(limit / 1024) KiB")
        }
    }

    /// `a=1&b=x+y` into fields; a repeated name keeps its last value.
    static func parse(_ buffer: ByteBuffer) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in String(buffer: buffer).split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(parts[0]) else { continue }
            fields[name] = parts.count > 1 ? decode(parts[1]) ?? "" : ""
        }
        return fields
    }

    private static func decode(_ raw: Substring) -> String? {
        raw.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    /// A field that must be present and not blank, trimmed.
    func required(_ name: String, label: String) throws -> String {
        guard let value = optional(name) else { throw APIError.badRequest("\(label) is required") }
        return value
    }

    /// A field's trimmed value, or nil when it is missing or blank.
    func optional(_ name: String) -> String? {
        guard let raw = fields[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !raw.isEmpty else { return nil }
        return raw
    }

    /// A positive integer field (a version, an id).
    func positive(_ name: String, label: String) throws -> Int64 {
        guard let n = Int64(try required(name, label: label)), n > 0 else { throw APIError.badRequest("\(label) must be a positive whole number") }
        return n
    }

    /// A library path, checked by the rules of SPEC §2.
    func path(_ name: String = "path") throws -> FerryPath {
        try FerryPath(try required(name, label: "the path"))
    }

    /// Whether the person already confirmed a destructive action (a dialog, or the
    /// confirmation page that forms without JavaScript lead to).
    var isConfirmed: Bool { fields["confirmed"] == "yes" }
}
