#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
import Foundation

/// The protocol's JSON dialect: snake_case keys come from the types' CodingKeys, dates are
/// ISO 8601, slashes are not escaped.
public enum JSONCoding {
    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return e
    }()

    public static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()
}
