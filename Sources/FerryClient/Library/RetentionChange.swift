import FerryCore
import Foundation

/// What `ferry library retention NAME [--keep-versions N] [--keep-days D] [--trash-days T]
/// [--keep-all]` asks for: each limit given replaces that limit ("off" removes it), the
/// others stay as they are; `--keep-all` removes every limit.
public struct RetentionChange: Sendable, Equatable {
    public var keepVersions: Limit?
    public var keepDays: Limit?
    public var trashDays: Limit?
    public var keepAll: Bool

    /// One limit as given: a number, or off (keep everything for that limit).
    public enum Limit: Sendable, Equatable {
        case value(Int)
        case off

        var number: Int? { if case .value(let n) = self { n } else { nil } }
    }

    /// Parses the flags' text; a problem is one sentence naming the flag.
    public init(keepVersions: String?, keepDays: String?, trashDays: String?, keepAll: Bool) throws {
        self.keepVersions = try keepVersions.map { try Self.limit($0, flag: "--keep-versions") }
        self.keepDays = try keepDays.map { try Self.limit($0, flag: "--keep-days") }
        self.trashDays = try trashDays.map { try Self.limit($0, flag: "--trash-days") }
        self.keepAll = keepAll
        if keepAll, self.keepVersions != nil || self.keepDays != nil || self.trashDays != nil {
            throw ClientError.invalidInput("--keep-all removes every limit; give it alone, or give only the limits to change")
        }
    }

    /// Whether anything is to change (no flags: only show the policy).
    public var isEmpty: Bool { !keepAll && keepVersions == nil && keepDays == nil && trashDays == nil }

    static func limit(_ text: String, flag: String) throws -> Limit {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if trimmed == "off" { return .off }
        guard let n = Int(trimmed), n >= 0 else {
            throw ClientError.invalidInput("\(flag) takes a whole number of \(flag == "--keep-versions" ? "versions" : "days") or 'off', not '\(text)'")
        }
        return .value(n)
    }

    /// The policy after this change, checked as the server checks it.
    public func applied(to current: RetentionPolicy) throws -> RetentionPolicy {
        guard !keepAll else { return .keepAll }
        var policy = current
        if let keepVersions { policy.keepVersions = keepVersions.number }
        if let keepDays { policy.keepDays = keepDays.number }
        if let trashDays { policy.trashDays = trashDays.number }
        if let problem = policy.problem(naming: .init(keepVersions: "--keep-versions", keepDays: "--keep-days", trashDays: "--trash-days", unset: "'off'")) {
            throw ClientError.invalidInput(problem)
        }
        return policy
    }
}
