import FerryCore

/// Why a selection was refused, naming the path as given and the rule it breaks.
public enum SelectionError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidPath(String, PathError)
    case ferrysOwn(String)

    public var description: String {
        switch self {
        case .invalidPath(let raw, let rule): "cannot select '\(raw)': \(rule)"
        case .ferrysOwn(let raw): "cannot select '\(raw)': it is Ferry's own (the .ferry marker or an unfinished download), which is never synced"
        }
    }
}

/// The subtrees of a library that one folder syncs on this device (selective sync, SPEC §10).
///
/// A path is *inside* when it is a selected path or lies below one; *above* when it is a
/// directory on the way to a selected path (made locally as downloads need it, never synced
/// itself); *outside* otherwise. Outside, nothing is downloaded, uploaded or deleted on either
/// side, as for a `.ferryignore`d path. Pure: no I/O, so the decisions are table-tested.
public struct Selection: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The selected library paths, sorted, none inside another. Empty: the whole library.
    public let paths: [FerryPath]

    /// The whole library (no selection).
    public static let everything = Selection(folded: [])

    /// Validates `raw` with the protocol's path rules (a trailing `/` is dropped), refuses
    /// Ferry's own names, and folds duplicates and paths inside another selected path into it.
    /// An empty list is the whole library.
    public init(_ raw: [String]) throws(SelectionError) {
        var checked: [FerryPath] = []
        for given in raw {
            var trimmed = Substring(given)
            while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
            let path: FerryPath
            do { path = try FerryPath(String(trimmed)) } catch { throw .invalidPath(given, error) }
            if RemoteCheck.isFerrysOwn(path.string) { throw .ferrysOwn(given) }
            checked.append(path)
        }
        var folded: [FerryPath] = []
        for path in Set(checked).sorted() where !folded.contains(where: { Self.path(path.string, isWithin: $0.string) }) {
            folded.append(path)
        }
        self.init(folded: folded)
    }

    private init(folded: [FerryPath]) { paths = folded }

    /// The whole library is synced.
    public var isEverything: Bool { paths.isEmpty }

    /// Where a library path stands with respect to the selection.
    public enum Place: Sendable, Equatable { case inside, above, outside }

    public func place(of path: String) -> Place {
        if paths.isEmpty { return .inside }
        var above = false
        for selected in paths {
            if Self.path(path, isWithin: selected.string) { return .inside }
            if Self.path(selected.string, isWithin: path) { above = true }
        }
        return above ? .above : .outside
    }

    /// `path` is synced: it is planned like any path of a folder without a selection.
    public func includes(_ path: String) -> Bool { place(of: path) == .inside }

    /// `path` is `base` or below it (compared by bytes: `docs-old` is not below `docs`).
    static func path(_ path: String, isWithin base: String) -> Bool {
        let p = path.utf8, b = base.utf8
        guard p.starts(with: b) else { return false }
        return p.count == b.count || p.dropFirst(b.count).first == UInt8(ascii: "/")
    }

    /// The index's entries split by the selection: those planned as usual, and those whose
    /// subtree left the selection, deepest first (what `FolderSync` removes where unchanged
    /// and then forgets, never a server delete).
    public func split(_ entries: [String: IndexEntry]) -> (kept: [String: IndexEntry], leaving: [IndexEntry]) {
        if isEverything { return (entries, []) }
        var kept: [String: IndexEntry] = [:]
        var leaving: [IndexEntry] = []
        for (path, entry) in entries {
            if includes(path) { kept[path] = entry } else { leaving.append(entry) }
        }
        return (kept, leaving.sorted { $0.path > $1.path })
    }

    /// The local entries outside the selection that are not directories: files and links
    /// that are not synced (`ferry status` counts them).
    public func outsideFiles(_ local: [String: LocalFile]) -> Set<String> {
        if isEverything { return [] }
        return Set(local.filter { $0.value.kind != .directory && place(of: $0.key) == .outside }.keys)
    }

    /// The directories above `removed` paths that may be empty once those are gone: outside
    /// the selection (never one on the way to it) and directories of the library, so a
    /// directory only this device made is left alone. Deepest first; a directory that still
    /// holds anything is kept by the removal itself (`rmdir`).
    public func leftBehind(by removed: [String], libraryDirectories: Set<String>) -> [String] {
        var visited = Set<String>()
        var candidates: [String] = []
        for path in removed {
            var parent = Self.parent(of: path)
            while let p = parent, visited.insert(p).inserted {
                if place(of: p) == .outside, libraryDirectories.contains(p) { candidates.append(p) }
                parent = Self.parent(of: p)
            }
        }
        return candidates.sorted(by: >)
    }

    /// The parent of a `/`-separated path, nil at the library's root.
    static func parent(of path: String) -> String? {
        path.lastIndex(of: "/").map { String(path[..<$0]) }
    }

    public var description: String { isEverything ? "the whole library" : paths.map(\.string).joined(separator: ", ") }

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode([String].self)
        do { self = try Selection(raw) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(paths.map(\.string))
    }
}
