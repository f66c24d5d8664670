#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
import Foundation

/// Why a path was refused. Each case names the rule of SPEC §2 it breaks.
public enum PathError: Error, Equatable, Sendable, CustomStringConvertible {
    case empty
    case absolute
    case emptyComponent
    case dotComponent(String)
    case nulByte
    case componentTooLong(bytes: Int)
    case tooLong(bytes: Int)

    public var description: String {
        switch self {
        case .empty: "path is empty; give a relative path such as 'docs/report.txt'"
        case .absolute: "path must be relative: remove the leading '/'"
        case .emptyComponent: "path has an empty component ('//' or a trailing '/'); remove it"
        case .dotComponent(let c): "path component '\(c)' is not allowed; '.' and '..' are refused"
        case .nulByte: "path contains a NUL byte"
        case .componentTooLong(let n): "a path component is \(n) bytes; at most \(FerryPath.maxComponentBytes) are allowed"
        case .tooLong(let n): "path is \(n) bytes; at most \(FerryPath.maxPathBytes) are allowed"
        }
    }
}

/// A validated library path: relative, `/`-separated, Unicode NFC, no empty, `.` or `..`
/// components, no NUL, components ≤ 255 bytes, whole path ≤ 4096 bytes (SPEC §2).
///
/// This is the one place paths are checked; every endpoint and the client build paths through it.
public struct FerryPath: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public static let maxComponentBytes = 255
    public static let maxPathBytes = 4096

    /// The normalised (NFC) path.
    public let string: String

    /// Validates `raw` and normalises it to NFC; throws a `PathError` naming the broken rule.
    public init(_ raw: String) throws(PathError) {
        if raw.isEmpty { throw .empty }
        if raw.utf8.contains(0) { throw .nulByte }
        if raw.utf8.first == UInt8(ascii: "/") { throw .absolute }
        // ASCII is already NFC; skipping Foundation's normalisation matters when a scan
        // validates every path of a 100,000-file folder.
        let nfc = raw.utf8.allSatisfy { $0 < 0x80 } ? raw : raw.precomposedStringWithCanonicalMapping
        let bytes = nfc.utf8.count
        if bytes > Self.maxPathBytes { throw .tooLong(bytes: bytes) }
        if let problem = Self.componentProblem(nfc) { throw problem }
        self.string = nfc
    }

    /// The first component that is empty, `.` or `..`, or too long. Components are split at
    /// every `/` byte, as the file system splits them (a `/` followed by a combining mark is
    /// still a separator), in one pass and without building them.
    private static func componentProblem(_ path: String) -> PathError? {
        func check(length: Int, dotsOnly: Bool) -> PathError? {
            if length == 0 { return .emptyComponent }
            if dotsOnly && length <= 2 { return .dotComponent(length == 1 ? "." : "..") }
            if length > maxComponentBytes { return .componentTooLong(bytes: length) }
            return nil
        }
        var length = 0
        var dotsOnly = true
        for byte in path.utf8 {
            if byte == UInt8(ascii: "/") {
                if let problem = check(length: length, dotsOnly: dotsOnly) { return problem }
                length = 0
                dotsOnly = true
            } else {
                length += 1
                dotsOnly = dotsOnly && byte == UInt8(ascii: ".")
            }
        }
        return check(length: length, dotsOnly: dotsOnly)
    }

    /// The path's components, outermost first (split at `/` bytes, as validated).
    public var components: [Substring] { string.utf8.split(separator: UInt8(ascii: "/")).map { Substring($0) } }

    /// The last component.
    public var name: Substring { components.last ?? Substring(string) }

    /// The parent directory, or nil at the library root.
    public var parent: FerryPath? {
        guard let slash = string.utf8.lastIndex(of: UInt8(ascii: "/")) else { return nil }
        return FerryPath(unchecked: String(string[..<slash]))
    }

    /// Appends one component; validates the result.
    public func appending(_ component: String) throws(PathError) -> FerryPath {
        try FerryPath(string + "/" + component)
    }

    private init(unchecked: String) { self.string = unchecked }

    public var description: String { string }
    public static func < (a: FerryPath, b: FerryPath) -> Bool { a.string < b.string }

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        do { self = try FerryPath(raw) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(string)
    }
}
