import FerryCore

/// One step of a page's breadcrumbs; the last (the page itself) has no link.
struct Crumb {
    let name: String
    let href: String?

    /// The library, then each folder down to `path`; `link(dir)` makes a folder's address
    /// (nil: the library's root). With `linkLast` the last step is a link too.
    static func trail(library: LibraryInfo, path: FerryPath?, linkLast: Bool = false, link: (FerryPath?) -> String) -> [Crumb] {
        var crumbs = [Crumb(name: library.name, href: link(nil))]
        var parts: [String] = []
        for component in path?.string.split(separator: "/") ?? [] {
            parts.append(String(component))
            crumbs.append(Crumb(name: String(component), href: link(try? FerryPath(parts.joined(separator: "/")))))
        }
        if !linkLast { crumbs[crumbs.count - 1] = Crumb(name: crumbs[crumbs.count - 1].name, href: nil) }
        return crumbs
    }
}

/// Addresses of a library's pages.
struct LibraryLinks {
    let library: String

    var base: String { "/libraries/" + DashboardFormat.segment(library) }

    /// A folder's listing (nil: the root), from the entry after `after` on.
    func folder(_ path: FerryPath?, after: String? = nil) -> String { address("", ("path", path?.string), ("after", after)) }
    /// A file's page, its history from the version before `before` on.
    func file(_ path: FerryPath, before: Int64? = nil) -> String { address("/file", ("path", path.string), ("before", before.map(String.init))) }
    func trash(_ path: FerryPath?, after: String? = nil) -> String { address("/trash", ("path", path?.string), ("after", after)) }
    func download(_ path: FerryPath, version: Int64? = nil) -> String {
        address("/download", ("path", path.string), ("version", version.map(String.init)))
    }
    func preview(_ path: FerryPath, version: Int64) -> String { address("/preview", ("path", path.string), ("version", String(version))) }
    var restore: String { base + "/restore" }
    var delete: String { base + "/delete" }
    var upload: String { base + "/upload" }
    func events(since head: Int64) -> String { address("/events", ("since", String(head))) }

    /// `base` and `page`, then the query's present values, percent-encoded.
    private func address(_ page: String, _ query: (String, String?)...) -> String {
        let pairs = query.compactMap { name, value in value.map { name + "=" + DashboardFormat.query($0) } }
        return base + page + (pairs.isEmpty ? "" : "?" + pairs.joined(separator: "&"))
    }

    /// The folder holding `path` (nil: the root).
    static func parent(of path: FerryPath) -> FerryPath? {
        guard let slash = path.string.lastIndex(of: "/") else { return nil }
        return try? FerryPath(String(path.string[..<slash]))
    }

    static func name(of path: FerryPath) -> String {
        path.string.split(separator: "/").last.map(String.init) ?? path.string
    }
}
