import FerryCore
import Foundation

/// One thing a pass will do for one path.
public enum PlannedAction: Sendable, Equatable {
    /// Send the local entry (a file, directory or symlink) as a new version based on `base`.
    case upload(LocalState, base: Int64?)
    /// Delete the path on the server; `base` is the version this device last saw.
    case deleteRemote(path: String, base: Int64)
    /// Create or replace the local entry with this server version.
    case download(FileVersion)
    /// Remove the local entry, which still matches what the index last saw.
    case deleteLocal(IndexEntry)
    /// Both sides changed differently: keep the local one as a conflict copy, then download.
    case conflict(LocalState, remote: FileVersion)
    /// Both sides already agree: only the index learns it.
    case adopt(LocalState, remote: FileVersion)
    /// Gone on both sides: only the index forgets it.
    case forget(path: String)

    public var path: String {
        switch self {
        case .upload(let l, _), .conflict(let l, _), .adopt(let l, _): l.path
        case .deleteRemote(let p, _), .forget(let p): p
        case .download(let v): v.path.string
        case .deleteLocal(let e): e.path
        }
    }
}

/// The three-way decision of SPEC §2, as a pure function of what the index last synced, what
/// is on disk now and what the server holds now. Nothing here touches disk or network, so
/// the real pass and a dry run come from the same code.
public enum Planner {
    public static func plan(index: [String: IndexEntry], local: [String: LocalState], remote: [String: FileVersion]) -> [PlannedAction] {
        var paths = Set(index.keys)
        paths.formUnion(local.keys)
        for (path, v) in remote where !v.deleted || index[path] != nil { paths.insert(path) }
        var actions: [PlannedAction] = []
        for path in paths.sorted() {
            if let action = decide(index: index[path], local: local[path], remote: remote[path]) { actions.append(action) }
        }
        return actions
    }

    public static func decide(index: IndexEntry?, local: LocalState?, remote: FileVersion?) -> PlannedAction? {
        let live = remote.flatMap { $0.deleted ? nil : $0 }
        let localChanged: Bool = {
            guard let index else { return local != nil }
            guard let local else { return true }
            return !sameContent(local, index)
        }()
        let remoteChanged: Bool = {
            guard let index else { return live != nil }
            // A path the mirror never heard of cannot have changed there (the mirror is the
            // whole feed); treating it as deleted could delete local data.
            guard let remote else { return false }
            return remote.version != index.version
        }()

        switch (localChanged, remoteChanged) {
        case (false, false):
            return nil
        case (true, false):
            if let local {
                return .upload(local, base: index?.version ?? remote?.version)
            }
            guard let index else { return nil }
            return live == nil ? .forget(path: index.path) : .deleteRemote(path: index.path, base: index.version)
        case (false, true):
            if let live { return .download(live) }
            if let index, local != nil { return .deleteLocal(index) }
            return index.map { .forget(path: $0.path) }
        case (true, true):
            switch (local, live) {
            case (nil, nil): return .forget(path: index?.path ?? remote?.path.string ?? "")
            case (nil, let live?): return .download(live)  // modify beats delete
            case (let local?, nil): return .upload(local, base: remote?.version)  // modify beats delete
            case (let local?, let live?):
                return sameContent(local, live) ? .adopt(local, remote: live) : .conflict(local, remote: live)
            }
        }
    }

    /// Same content as the synced entry: kind, bytes or link target, and the executable bit.
    static func sameContent(_ local: LocalState, _ index: IndexEntry) -> Bool {
        guard local.kind == index.kind else { return false }
        switch local.kind {
        case .file: return local.sha256 == index.sha256 && executable(local.file.mode) == executable(index.mode)
        case .symlink: return local.file.target == index.target
        case .directory: return true
        }
    }

    static func sameContent(_ local: LocalState, _ remote: FileVersion) -> Bool {
        guard local.kind == remote.kind else { return false }
        switch local.kind {
        case .file: return local.sha256 == remote.sha256
        case .symlink: return local.file.target == remote.target
        case .directory: return true
        }
    }

    static func executable(_ mode: Int32) -> Bool { mode & 0o100 != 0 }
}

/// `NAME.conflict-<device>-<YYYYMMDD-HHMMSS>.EXT` beside the original (SPEC §2).
public enum ConflictName {
    public static func make(for path: String, device: String, at date: Date) -> String {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        var stem = name, ext = ""
        if let dot = name.lastIndex(of: "."), dot != name.startIndex {
            stem = String(name[..<dot])
            ext = String(name[dot...])
        }
        let safeDevice = String(device.unicodeScalars.map { CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == "_" ? Character($0) : "-" })
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let stamp = String(format: "%04d%02d%02d-%02d%02d%02d", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
        return directory + stem + ".conflict-\(safeDevice.prefix(40))-\(stamp)" + ext
    }

    public static func isConflictCopy(_ path: String) -> Bool {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        return name.range(of: #"\.conflict-[A-Za-z0-9_-]*-\d{8}-\d{6}"#, options: .regularExpression) != nil
    }
}
