#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
import Foundation

/// `GET /account/usage` answer: what the caller's uploads count against their quota.
public struct AccountUsageResponse: Codable, Sendable, Equatable {
    public var username: String
    /// Bytes of the chunks this user holds, each counted once (SPEC §10).
    public var usedBytes: Int64
    /// The most the user may hold; nil: no quota.
    public var quotaBytes: Int64?

    public init(username: String, usedBytes: Int64, quotaBytes: Int64?) {
        self.username = username
        self.usedBytes = usedBytes
        self.quotaBytes = quotaBytes
    }

    enum CodingKeys: String, CodingKey {
        case username
        case usedBytes = "used_bytes", quotaBytes = "quota_bytes"
    }

    /// Always present in the JSON (null for no quota), so clients need not guess.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(username, forKey: .username)
        try c.encode(usedBytes, forKey: .usedBytes)
        try c.encode(quotaBytes, forKey: .quotaBytes)
    }
}

/// An amount of bytes as people write it: `1500`, `500MiB`, `10 GiB`, `1TB`, `2.5G`.
/// Binary units (KiB, MiB, GiB, TiB, PiB) are powers of 1024, decimal ones (kB, MB, GB, TB,
/// PB) powers of 1000; a bare `K`, `M`, `G`, `T` or `P` means the binary unit.
public enum ByteAmount {
    /// Why an amount was refused.
    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    static let units: [String: Double] = [
        "": 1, "b": 1,
        "k": 0x1p10, "kib": 0x1p10, "kb": 1e3,
        "m": 0x1p20, "mib": 0x1p20, "mb": 1e6,
        "g": 0x1p30, "gib": 0x1p30, "gb": 1e9,
        "t": 0x1p40, "tib": 0x1p40, "tb": 1e12,
        "p": 0x1p50, "pib": 0x1p50, "pb": 1e15,
    ]

    /// Parses `text` into whole bytes (a fraction of a unit is rounded down).
    public static func parse(_ text: String) throws -> Int64 {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let number = trimmed.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        let unit = trimmed.dropFirst(number.count).trimmingCharacters(in: .whitespaces).lowercased()
        guard !number.isEmpty, let value = Double(number), value.isFinite else {
            throw Invalid(description: "'\(text)' is not an amount of bytes; write e.g. 1073741824, 500MiB, 10GiB or 1TB")
        }
        guard let scale = units[unit] else {
            throw Invalid(description: "'\(text)' has an unknown unit '\(unit)'; use B, KiB, MiB, GiB, TiB, PiB, kB, MB, GB, TB or PB")
        }
        let bytes = (value * scale).rounded(.down)
        guard bytes < 0x1p63 else { throw Invalid(description: "'\(text)' is too large (at most 8 EiB)") }
        return Int64(bytes)
    }
}
