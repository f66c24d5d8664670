import Foundation

/// Patterns from a folder's `.ferryignore` (gitignore syntax) plus Ferry's defaults.
///
/// Semantics follow gitignore(5) for one file at the root: the last matching pattern wins,
/// `!` re-includes, a trailing `/` matches directories only, a pattern with a `/` before its
/// end is anchored at the root (otherwise it matches a name at any depth), `*` `?` `[…]`
/// never cross `/`, `**` crosses directories, and nothing inside an ignored directory can
/// be re-included.
public struct IgnoreRules: Sendable {
    /// Ferry's own files, editors' swap and lock files, and desktop metadata.
    public static let defaultPatterns = [
        ".ferry/", ".ferry-partial-*", "*.swp", "*.swo", "*.swx", "*~", ".#*", "#*#", "4913",
        ".DS_Store", "Thumbs.db", "desktop.ini", ".~lock.*#", ".directory",
    ]

    struct Rule: Sendable {
        let text: String
        let negated: Bool
        let directoryOnly: Bool
        let anchored: Bool
        /// Pattern segments split at `/`; `**` stays a segment of its own.
        let segments: [[UInt8]]
    }

    let rules: [Rule]

    /// `text` is the content of the folder's `.ferryignore` (may be empty).
    public init(userPatterns text: String, includeDefaults: Bool = true) {
        var lines = includeDefaults ? Self.defaultPatterns : []
        lines += text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
        rules = lines.compactMap(Self.parse)
    }

    /// The pattern (as written) that makes `path` ignored, or nil when it is not ignored.
    /// `path` is relative to the folder root, `/`-separated, without a leading `/`.
    public func ignoringPattern(for path: String, isDirectory: Bool) -> String? {
        let parts = path.split(separator: "/").map { Array($0.utf8) }
        guard !parts.isEmpty else { return nil }
        // An ignored ancestor directory ignores everything below it.
        for depth in 1..<parts.count {
            if let rule = decide(Array(parts[..<depth]), isDirectory: true) { return rule }
        }
        return decide(parts, isDirectory: isDirectory)
    }

    /// `isIgnored` for a walk that never enters ignored directories: the ancestors are known
    /// not to be ignored, so only the entry itself is tested.
    public func ignoresEntry(_ path: String, isDirectory: Bool) -> Bool {
        decide(path.split(separator: "/").map { Array($0.utf8) }, isDirectory: isDirectory) != nil
    }

    public func isIgnored(_ path: String, isDirectory: Bool) -> Bool {
        ignoringPattern(for: path, isDirectory: isDirectory) != nil
    }

    private func decide(_ parts: [[UInt8]], isDirectory: Bool) -> String? {
        for rule in rules.reversed() where !(rule.directoryOnly && !isDirectory) {
            if Self.matches(rule, parts) { return rule.negated ? nil : rule.text }
        }
        return nil
    }

    static func parse(_ raw: String) -> Rule? {
        var line = raw
        // Trailing spaces go unless escaped with a backslash.
        while line.hasSuffix(" ") && !line.hasSuffix("\\ ") { line.removeLast() }
        if line.hasSuffix("\\ ") { line = String(line.dropLast(2)) + " " }
        guard !line.isEmpty, !line.hasPrefix("#") else { return nil }
        var negated = false
        if line.hasPrefix("!") {
            negated = true
            line.removeFirst()
        } else if line.hasPrefix("\\!") || line.hasPrefix("\\#") {
            line.removeFirst()
        }
        var directoryOnly = false
        if line.hasSuffix("/") {
            directoryOnly = true
            while line.hasSuffix("/") { line.removeLast() }
        }
        let anchored = line.contains("/")
        while line.hasPrefix("/") { line.removeFirst() }
        guard !line.isEmpty else { return nil }
        // `**/**` matches what `**` matches: repeats collapse to one.
        var segments: [[UInt8]] = []
        for segment in line.split(separator: "/").map({ Array($0.utf8) }) where !(segment == doubleStar && segments.last == doubleStar) {
            segments.append(segment)
        }
        return Rule(text: raw.trimmingCharacters(in: .whitespaces), negated: negated, directoryOnly: directoryOnly, anchored: anchored, segments: segments)
    }

    static let doubleStar = Array("**".utf8)

    static func matches(_ rule: Rule, _ parts: [[UInt8]]) -> Bool {
        if !rule.anchored {
            // A bare name matches the last component at any depth.
            return rule.segments.count == 1 && glob(rule.segments[0], parts[parts.count - 1])
        }
        return matchSegments(rule.segments[...], parts[...])
    }

    /// Segment-wise match where `**` spans zero or more whole components (one or more when
    /// it ends the pattern: `dir/**` matches what is inside `dir`, not `dir`).
    static func matchSegments(_ pattern: ArraySlice<[UInt8]>, _ parts: ArraySlice<[UInt8]>) -> Bool {
        var steps = 0
        return matchSegments(pattern, parts, steps: &steps)
    }

    /// `matchSegments`, counting in `steps` each pattern position tried against a component.
    ///
    /// The pattern runs as a set of positions, one component at a time, as a regular
    /// expression runs as an automaton: at most (segments + 1) × components steps, where
    /// trying each `**` at every split backtracks exponentially (12 of them against a
    /// 60-component path never returned).
    static func matchSegments(_ pattern: ArraySlice<[UInt8]>, _ parts: ArraySlice<[UInt8]>, steps: inout Int) -> Bool {
        let segments = Array(pattern)
        let end = segments.count
        let trailingStar = segments.last == doubleStar
        // Positions reached; `end` is a full match. A `**` also stands for no component at
        // all (its position reaches the next), except at the end of the pattern.
        var current = [Bool](repeating: false, count: end + 1)
        var next = current
        func reach(_ position: Int, in set: inout [Bool]) {
            var p = position
            while p <= end, !set[p] {
                set[p] = true
                guard p < end, segments[p] == doubleStar, !(trailingStar && p == end - 1) else { return }
                p += 1
            }
        }
        reach(0, in: &current)
        for part in parts {
            for i in next.indices { next[i] = false }
            var any = false
            for p in 0..<end where current[p] {
                steps += 1
                if segments[p] == doubleStar {
                    reach(p, in: &next)  // one more component inside the `**`
                    if trailingStar && p == end - 1 { next[end] = true }
                    any = true
                } else if glob(segments[p], part) {
                    reach(p + 1, in: &next)
                    any = true
                }
            }
            guard any else { return false }
            swap(&current, &next)
        }
        return current[end]
    }

    /// Glob of one component: `*`, `?`, `[...]`, `[!...]`, `\x`. Linear-time star
    /// backtracking (no exponential blow-up on `a*a*a*…`).
    static func glob(_ p: [UInt8], _ s: [UInt8]) -> Bool {
        var pi = 0, si = 0
        var starP = -1, starS = 0
        while si < s.count {
            if pi < p.count {
                let c = p[pi]
                if c == UInt8(ascii: "*") {
                    while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
                    starP = pi
                    starS = si
                    continue
                }
                if c == UInt8(ascii: "?") {
                    pi += 1; si += 1
                    skipContinuation(s, &si)
                    continue
                }
                if c == UInt8(ascii: "["), let (matched, next) = matchClass(p, pi, s, si) {
                    if matched.matched {
                        pi = next
                        si = matched.next
                        continue
                    }
                } else {
                    var literal = c
                    var next = pi + 1
                    if c == UInt8(ascii: "\\"), pi + 1 < p.count {
                        literal = p[pi + 1]
                        next = pi + 2
                    }
                    if literal == s[si] {
                        pi = next
                        si += 1
                        continue
                    }
                }
            }
            guard starP >= 0 else { return false }
            starS += 1
            skipContinuation(s, &starS)
            si = starS
            pi = starP
        }
        while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }

    /// `?` and classes match one character: step over UTF-8 continuation bytes.
    static func skipContinuation(_ s: [UInt8], _ i: inout Int) {
        while i < s.count && s[i] & 0xC0 == 0x80 { i += 1 }
    }

    /// Matches a `[...]` class at `p[pi]` against the character at `s[si]`. Returns nil when
    /// the class is unterminated (then `[` is a literal).
    static func matchClass(_ p: [UInt8], _ pi: Int, _ s: [UInt8], _ si: Int) -> ((matched: Bool, next: Int), Int)? {
        var i = pi + 1
        var negate = false
        if i < p.count && (p[i] == UInt8(ascii: "!") || p[i] == UInt8(ascii: "^")) {
            negate = true
            i += 1
        }
        // The character at s[si] as a scalar value.
        var end = si + 1
        skipContinuation(s, &end)
        let ch = String(decoding: s[si..<end], as: UTF8.self).unicodeScalars.first.map { $0.value } ?? UInt32(s[si])
        var found = false
        var first = true
        while i < p.count && (p[i] != UInt8(ascii: "]") || first) {
            first = false
            var lowEnd = i + 1
            skipContinuation(p, &lowEnd)
            let low = String(decoding: p[i..<lowEnd], as: UTF8.self).unicodeScalars.first.map { $0.value } ?? UInt32(p[i])
            if lowEnd + 1 < p.count && p[lowEnd] == UInt8(ascii: "-") && p[lowEnd + 1] != UInt8(ascii: "]") {
                var highEnd = lowEnd + 2
                skipContinuation(p, &highEnd)
                let high = String(decoding: p[(lowEnd + 1)..<highEnd], as: UTF8.self).unicodeScalars.first.map { $0.value } ?? UInt32(p[lowEnd + 1])
                if low <= ch && ch <= high { found = true }
                i = highEnd
            } else {
                if low == ch { found = true }
                i = lowEnd
            }
        }
        guard i < p.count else { return nil }
        return ((found != negate, end), i + 1)
    }
}
