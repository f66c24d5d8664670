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

    func folder(_ path: FerryPath?) -> String { path.map { base + "?path=" + DashboardFormat.query($0.string) } ?? base }
    func file(_ path: FerryPath) -> String { base + "/file?path=" + DashboardFormat.query(path.string) }
    func trash(_ path: FerryPath?) -> String { base + "/trash" + (path.map { "?path=" + DashboardFormat.query($0.string) } ?? "") }
    func download(_ path: FerryPath, version: Int64? = nil) -> String {
        base + "/download?path=" + DashboardFormat.query(path.string) + (version.map { "&version=\($0)" } ?? "")
    }
    func preview(_ path: FerryPath, version: Int64) -> String {
        base + "/preview?path=" + DashboardFormat.query(path.string) + "&version=\(version)"
    }
    var restore: String { base + "/restore" }
    var delete: String { base + "/delete" }
    var upload: String { base + "/upload" }
    func events(since head: Int64) -> String { base + "/events?since=\(head)" }

    /// The folder holding `path` (nil: the root).
    static func parent(of path: FerryPath) -> FerryPath? {
        guard let slash = path.string.lastIndex(of: "/") else { return nil }
        return try? FerryPath(String(path.string[..<slash]))
    }

    static func name(of path: FerryPath) -> String {
        path.string.split(separator: "/").last.map(String.init) ?? path.string
    }
}
