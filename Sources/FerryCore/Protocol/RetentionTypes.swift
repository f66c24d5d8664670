import Foundation

/// How long a library keeps what is no longer current (SPEC §10). Each limit is optional;
/// nil keeps everything, as a library without retention does.
public struct RetentionPolicy: Codable, Sendable, Equatable, Hashable {
    /// Keep at least the newest N versions of each path (the current one included).
    public var keepVersions: Int?
    /// Keep every version that was still current at some moment of the last D days.
    public var keepDays: Int?
    /// Keep a deleted path (its tombstone and its last content) for T days after the delete.
    public var trashDays: Int?

    public init(keepVersions: Int? = nil, keepDays: Int? = nil, trashDays: Int? = nil) {
        self.keepVersions = keepVersions
        self.keepDays = keepDays
        self.trashDays = trashDays
    }

    /// Keeps every version and every deleted file forever.
    public static let keepAll = RetentionPolicy()

    public var keepsEverything: Bool { keepVersions == nil && keepDays == nil && trashDays == nil }

    /// The largest `keepVersions` accepted.
    public static let maxVersions = 1_000_000
    /// The largest number of days accepted (about 100 years).
    public static let maxDays = 36_500

    /// Why this policy cannot be stored, or nil when it can, in the API's field names.
    public var problem: String? { problem(naming: .api) }

    /// How a problem names the limits and "no limit": the API's fields, the CLI's flags,
    /// the dashboard's labels.
    public struct Naming: Sendable {
        public var keepVersions: String, keepDays: String, trashDays: String, unset: String
        public init(keepVersions: String, keepDays: String, trashDays: String, unset: String) {
            self.keepVersions = keepVersions
            self.keepDays = keepDays
            self.trashDays = trashDays
            self.unset = unset
        }
        public static let api = Naming(keepVersions: "keep_versions", keepDays: "keep_days", trashDays: "trash_days", unset: "null")
    }

    /// Why this policy cannot be stored, or nil when it can, naming the limits as `naming` does.
    public func problem(naming n: Naming) -> String? {
        if let v = keepVersions, !(1...Self.maxVersions).contains(v) {
            return "\(n.keepVersions) must be between 1 and \(Self.maxVersions) (or \(n.unset) to keep every version)"
        }
        if let d = keepDays, !(0...Self.maxDays).contains(d) {
            return "\(n.keepDays) must be between 0 and \(Self.maxDays) (or \(n.unset) to keep versions of any age)"
        }
        // At least a day: a device reading the whole listing again (after `cursor_expired`)
        // must not miss a deletion made and removed while it reads.
        if let t = trashDays, !(1...Self.maxDays).contains(t) {
            return "\(n.trashDays) must be between 1 and \(Self.maxDays) (or \(n.unset) to keep deleted files forever)"
        }
        return nil
    }

    /// One line for people: "keep the last 5 versions, versions of the last 30 days, deleted files for 7 days".
    public var summary: String {
        guard !keepsEverything else { return "keep every version and every deleted file" }
        var versions: [String] = []
        if let n = keepVersions { versions.append("the last \(n) version\(n == 1 ? "" : "s")") }
        if let d = keepDays { versions.append("versions current in the last \(d) day\(d == 1 ? "" : "s")") }
        let kept = versions.isEmpty ? "every version" : versions.joined(separator: " and ")
        let trash = trashDays.map { "deleted files for \($0) day\($0 == 1 ? "" : "s")" } ?? "deleted files forever"
        return "keep \(kept); \(trash)"
    }

    enum CodingKeys: String, CodingKey {
        case keepVersions = "keep_versions", keepDays = "keep_days", trashDays = "trash_days"
    }

    /// Any key besides the three is refused: a misspelt limit would otherwise keep everything silently.
    public init(from decoder: any Decoder) throws {
        struct AnyKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        if let unknown = try decoder.container(keyedBy: AnyKey.self).allKeys.first(where: { CodingKeys(stringValue: $0.stringValue) == nil }) {
            throw DecodingError.dataCorrupted(.init(codingPath: [unknown],
                                                    debugDescription: "unknown key '\(unknown.stringValue)'; a policy has keep_versions, keep_days and trash_days"))
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        keepVersions = try c.decodeIfPresent(Int.self, forKey: .keepVersions)
        keepDays = try c.decodeIfPresent(Int.self, forKey: .keepDays)
        trashDays = try c.decodeIfPresent(Int.self, forKey: .trashDays)
    }

    public func encode(to encoder: any Encoder) throws {
        // Nulls are written: an absent limit and "keep everything" are the same thing, and
        // a reader sees every limit named.
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(keepVersions, forKey: .keepVersions)
        try c.encode(keepDays, forKey: .keepDays)
        try c.encode(trashDays, forKey: .trashDays)
    }
}

/// `GET/PUT /libraries/{lib}/retention` answer: a library's policy and how far retention went.
public struct LibraryRetention: Codable, Sendable, Equatable {
    public var library: String
    public var policy: RetentionPolicy
    /// The highest sequence number of a deletion retention removed (0: none). A change-feed
    /// cursor below it may have missed a delete: the feed answers 410 `cursor_expired`.
    public var purgedThrough: Int64

    public init(library: String, policy: RetentionPolicy, purgedThrough: Int64) {
        self.library = library
        self.policy = policy
        self.purgedThrough = purgedThrough
    }

    enum CodingKeys: String, CodingKey {
        case library, policy
        case purgedThrough = "purged_through"
    }
}
