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
        if raw.hasPrefix("/") { throw .absolute }
        // ASCII is already NFC; skipping Foundation's normalisation matters when a scan
        // validates every path of a 100,000-file folder.
        let nfc = raw.utf8.allSatisfy { $0 < 0x80 } ? raw : raw.precomposedStringWithCanonicalMapping
        let bytes = nfc.utf8.count
        if bytes > Self.maxPathBytes { throw .tooLong(bytes: bytes) }
        for component in nfc.split(separator: "/", omittingEmptySubsequences: false) {
            if component.isEmpty { throw .emptyComponent }
            if component == "." || component == ".." { throw .dotComponent(String(component)) }
            let n = component.utf8.count
            if n > Self.maxComponentBytes { throw .componentTooLong(bytes: n) }
        }
        self.string = nfc
    }

    /// The path's components, outermost first.
    public var components: [Substring] { string.split(separator: "/") }

    /// The last component.
    public var name: Substring { components.last ?? Substring(string) }

    /// The parent directory, or nil at the library root.
    public var parent: FerryPath? {
        guard let slash = string.lastIndex(of: "/") else { return nil }
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
