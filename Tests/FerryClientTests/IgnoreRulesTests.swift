@testable import FerryClient
import Testing

@Suite("Ignore rules")
struct IgnoreRulesTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let patterns: String
        let path: String
        var isDirectory = false
        let ignoredBy: String?
        var testDescription: String { "\(patterns.split(separator: "\n").joined(separator: " | ")) on \(path)" }
    }

    static let cases: [Case] = [
        Case(patterns: "*.log", path: "a/b/c.log", ignoredBy: "*.log"),
        Case(patterns: "*.log", path: "a/b/c.txt", ignoredBy: nil),
        Case(patterns: "/build", path: "build", isDirectory: true, ignoredBy: "/build"),
        Case(patterns: "/build", path: "src/build", isDirectory: true, ignoredBy: nil),
        Case(patterns: "logs/", path: "logs", isDirectory: true, ignoredBy: "logs/"),
        Case(patterns: "logs/", path: "logs/x.txt", ignoredBy: "logs/"),
        Case(patterns: "logs/", path: "logs", isDirectory: false, ignoredBy: nil),
        Case(patterns: "*.log\n!keep.log", path: "keep.log", ignoredBy: nil),
        Case(patterns: "*.log\n!keep.log", path: "drop.log", ignoredBy: "*.log"),
        Case(patterns: "build/\n!build/keep.txt", path: "build/keep.txt", ignoredBy: "build/"),
        Case(patterns: "**/cache", path: "a/b/cache", isDirectory: true, ignoredBy: "**/cache"),
        Case(patterns: "**/cache", path: "cache", isDirectory: true, ignoredBy: "**/cache"),
        Case(patterns: "out/**", path: "out/a/b.o", ignoredBy: "out/**"),
        Case(patterns: "out/**", path: "out", isDirectory: true, ignoredBy: nil),
        Case(patterns: "a/**/b", path: "a/b", ignoredBy: "a/**/b"),
        Case(patterns: "a/**/b", path: "a/x/y/b", ignoredBy: "a/**/b"),
        Case(patterns: "a/**/b", path: "a/x/y/c", ignoredBy: nil),
        Case(patterns: "file?.txt", path: "file1.txt", ignoredBy: "file?.txt"),
        Case(patterns: "file?.txt", path: "file10.txt", ignoredBy: nil),
        Case(patterns: "[a-c].md", path: "b.md", ignoredBy: "[a-c].md"),
        Case(patterns: "[a-c].md", path: "d.md", ignoredBy: nil),
        Case(patterns: "[!a-c].md", path: "d.md", ignoredBy: "[!a-c].md"),
        Case(patterns: "\\#notes", path: "#notes", ignoredBy: "\\#notes"),
        Case(patterns: "# a comment\n\nsecret.txt   ", path: "secret.txt", ignoredBy: "secret.txt"),
        Case(patterns: "*.TXT", path: "a.txt", ignoredBy: nil),
        Case(patterns: "", path: ".ferry-partial-abc", ignoredBy: ".ferry-partial-*"),
        Case(patterns: "", path: "dir/.DS_Store", ignoredBy: ".DS_Store"),
        Case(patterns: "", path: "notes.txt.swp", ignoredBy: "*.swp"),
        Case(patterns: "", path: "x~", ignoredBy: "*~"),
        Case(patterns: "", path: ".~lock.report.odt#", ignoredBy: ".~lock.*#"),
        Case(patterns: "", path: "Thumbs.db", ignoredBy: "Thumbs.db"),
        Case(patterns: "", path: "report.odt", ignoredBy: nil),
        Case(patterns: "*.swp\n!important.swp", path: "important.swp", ignoredBy: nil),
        Case(patterns: "café/", path: "café/menu.txt", ignoredBy: "café/"),
        Case(patterns: "caf?", path: "café", ignoredBy: "caf?"),
    ]

    @Test(arguments: cases)
    func decides(_ c: Case) {
        let rules = IgnoreRules(userPatterns: c.patterns)
        #expect(rules.ignoringPattern(for: c.path, isDirectory: c.isDirectory) == c.ignoredBy)
    }

    @Test func defaultsCanBeLeftOut() {
        #expect(IgnoreRules(userPatterns: "", includeDefaults: false).isIgnored(".DS_Store", isDirectory: false) == false)
        #expect(IgnoreRules(userPatterns: "").isIgnored(".DS_Store", isDirectory: false))
    }

    @Test func pathologicalPatternsStayLinear() {
        let rules = IgnoreRules(userPatterns: "a*a*a*a*a*a*a*a*b", includeDefaults: false)
        #expect(!rules.isIgnored(String(repeating: "a", count: 200), isDirectory: false))
        #expect(rules.isIgnored(String(repeating: "a", count: 200) + "b", isDirectory: false))
    }

    /// Runs `pattern` against `path` with a step count: at most one step per pattern segment
    /// per path component, however many `**` the pattern holds.
    static func boundedMatch(_ pattern: String, _ path: String) throws -> Bool {
        let rule = try #require(IgnoreRules.parse(pattern))
        let parts = path.split(separator: "/").map { Array($0.utf8) }
        var steps = 0
        let matched = IgnoreRules.matchSegments(rule.segments[...], parts[...], steps: &steps)
        #expect(steps <= (rule.segments.count + 1) * (parts.count + 1), "\(steps) steps for \(pattern)")
        return matched
    }

    @Test func repeatedDoubleStarsOnADeepPathThatDoesNotMatchReturn() throws {
        // Matched by backtracking, each `**` tried every split of the rest: C(71, 11) ways.
        let stars = Array(repeating: "**", count: 12).joined(separator: "/") + "/a"
        #expect(try #require(IgnoreRules.parse(stars)).segments.count == 2)
        let deep = (1...60).map { "d\($0)" }.joined(separator: "/")
        #expect(try !Self.boundedMatch(stars, deep))
        #expect(try Self.boundedMatch(stars, deep + "/a"))
        let rules = IgnoreRules(userPatterns: stars, includeDefaults: false)
        #expect(!rules.isIgnored(deep, isDirectory: false))
        #expect(rules.isIgnored(deep + "/a", isDirectory: false))

        // Stars that cannot collapse, with a literal between each.
        let spaced = Array(repeating: "**/x", count: 10).joined(separator: "/") + "/b"
        let xs = Array(repeating: "x", count: 60).joined(separator: "/")
        #expect(try !Self.boundedMatch(spaced, xs + "/c"))
        #expect(try Self.boundedMatch(spaced, xs + "/b"))
        #expect(try !Self.boundedMatch(spaced, Array(repeating: "x", count: 9).joined(separator: "/") + "/b"))
        #expect(try Self.boundedMatch("out/**/**", "out/a"))
        #expect(try !Self.boundedMatch("out/**/**", "out"))
    }

    @Test func theWalkShortcutAgreesWhereNoAncestorIsIgnored() {
        let rules = IgnoreRules(userPatterns: "*.log\n!keep.log\n/build/\ncache/\na/**/b")
        for path in ["x.log", "d/keep.log", "build", "src/build", "cache", "a/q/b", "notes.txt", "d/.DS_Store"] {
            for isDirectory in [false, true] {
                #expect(rules.ignoresEntry(path, isDirectory: isDirectory) == rules.isIgnored(path, isDirectory: isDirectory), "\(path)")
            }
        }
    }
}
