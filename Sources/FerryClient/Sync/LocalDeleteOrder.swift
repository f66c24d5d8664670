import FerryCore

/// The order in which a pass removes local entries, so that every step of
/// `Downloads.apply` finds its ancestors real directories: what must make way for a
/// download goes before the downloads, the rest after them (so moved files' chunks can still
/// be copied from where they were). Pure: the plan in, the two groups out.
enum LocalDeleteOrder {
    /// The plan's local deletes in two groups, each deepest first: those that must go before
    /// any download (a non-directory where a download needs a directory above it; anything
    /// inside a directory a download turns into a file or link), and the rest.
    static func split(_ actions: [PlannedAction]) -> (early: [IndexEntry], late: [IndexEntry]) {
        var ancestors = Set<String>()
        var becomingLeaves = Set<String>()
        for action in actions {
            let placed: FileVersion
            switch action {
            case .download(let v), .conflict(_, let v): placed = v
            default: continue
            }
            let path = placed.path.string
            if placed.kind != .directory { becomingLeaves.insert(path) }
            var slash = path.lastIndex(of: "/")
            while let s = slash {
                ancestors.insert(String(path[..<s]))
                slash = path[..<s].lastIndex(of: "/")
            }
        }
        var early: [IndexEntry] = [], late: [IndexEntry] = []
        for case .deleteLocal(let e) in actions {
            var first = e.kind != .directory && ancestors.contains(e.path)
            var slash = e.path.lastIndex(of: "/")
            while !first, let s = slash {
                first = becomingLeaves.contains(String(e.path[..<s]))
                slash = e.path[..<s].lastIndex(of: "/")
            }
            if first { early.append(e) } else { late.append(e) }
        }
        return (early.sorted { $0.path > $1.path }, late.sorted { $0.path > $1.path })
    }
}
