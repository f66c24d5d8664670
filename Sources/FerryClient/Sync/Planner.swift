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

    /// One line of a dry run: what, where, how many bytes.
    public var summary: (kind: String, path: String, bytes: Int64) {
        switch self {
        case .upload(let l, _): ("upload", l.path, l.file.size)
        case .deleteRemote(let p, _): ("delete on server", p, 0)
        case .download(let v): ("download", v.path.string, v.size)
        case .deleteLocal(let e): ("delete here", e.path, e.size)
        case .conflict(let l, let v): ("conflict", l.path, v.size)
        case .adopt(let l, _): ("already equal", l.path, 0)
        case .forget(let p): ("gone on both sides", p, 0)
        }
    }

    /// For a local delete that follows a deletion on the server, that deletion's version
    /// (what the mass-delete guard's confirmations are recorded by); nil otherwise.
    func followedDeletion(in remote: [String: FileVersion]) -> Int64? {
        guard case .deleteLocal(let e) = self, let tombstone = remote[e.path], tombstone.deleted else { return nil }
        return tombstone.version
    }

    /// The file bytes this action moves (uploads, downloads, the download of a conflict);
    /// nil for what moves no file content.
    public var fileBytes: Int64? {
        switch self {
        case .upload(let l, _) where l.kind == .file: l.file.size
        case .download(let v) where v.kind == .file, .conflict(_, let v) where v.kind == .file: v.size
        default: nil
        }
    }

    public var path: String {
        switch self {
        case .upload(let l, _), .conflict(let l, _), .adopt(let l, _): l.path
        case .deleteRemote(let p, _), .forget(let p): p
        case .download(let v): v.path.string
        case .deleteLocal(let e): e.path
        }
    }
}

/// The safety guards of SPEC §6 that hold planned actions back.
public struct SafetyPolicy: Sendable, Equatable {
    /// A pass that would delete more than this share of the folder's synced entries…
    public var massDeleteFraction: Double
    /// …and at least this many, pauses those deletes until confirmed.
    public var massDeleteMinimum: Int
    /// Confirmed by the user (`ferry sync --allow-mass-delete`, `ferry folder confirm-deletes`).
    public var allowMassDelete: Bool
    /// Server deletions (their versions) the user already confirmed on another device or in
    /// the dashboard: a local delete that follows one is neither counted nor held.
    public var confirmedDeletions: Set<Int64> = []

    public init(massDeleteFraction: Double = 0.5, massDeleteMinimum: Int = 100, allowMassDelete: Bool = false) {
        self.massDeleteFraction = massDeleteFraction
        self.massDeleteMinimum = massDeleteMinimum
        self.allowMassDelete = allowMassDelete
    }
}

/// Deletes held back by the mass-delete guard, per direction.
public struct MassDeletePause: Sendable, Equatable, Codable {
    /// Deletes this device would send to the server (files gone locally).
    public var remoteDeletes: Int
    /// Deletes the server would make here (files gone on the server).
    public var localDeletes: Int
    /// Synced entries the folder had.
    public var entries: Int

    enum CodingKeys: String, CodingKey {
        case entries
        case remoteDeletes = "remote_deletes", localDeletes = "local_deletes"
    }

    public var description: String {
        var parts: [String] = []
        if remoteDeletes > 0 { parts.append("\(remoteDeletes) local deletions would be sent to the server") }
        if localDeletes > 0 { parts.append("\(localDeletes) files deleted on the server would be deleted here") }
        return parts.joined(separator: " and ") + " (of \(entries) synced entries); paused until confirmed with 'ferry sync --allow-mass-delete'"
    }
}

/// What a pass will do, and what the guards hold back and why.
public struct Plan: Sendable, Equatable {
    public var actions: [PlannedAction]
    /// Per path: the guard that holds it back.
    public var held: [String: String]
    public var massDelete: MassDeletePause?
    /// The deletes the mass-delete guard holds back (what confirming it lets through).
    public var heldDeletes: [PlannedAction] = []
    /// Synced paths that left the folder's selection: removed here where unchanged, never on
    /// the server (filled by a dry run; a pass applies them after the plan).
    public var leavingSelection: [String] = []
}

/// The three-way decision of SPEC §2, as a pure function of what the index last synced, what
/// is on disk now and what the server holds now. Nothing here touches disk or network, so
/// the real pass and a dry run come from the same code.
public enum Planner {
    /// The plan with the guards of SPEC §6 applied: a torn write (a file that became empty
    /// while its mtime stayed) is never uploaded over content, and a pass that would delete
    /// more than the policy allows in either direction holds those deletes back.
    public static func plan(index: [String: IndexEntry], local: [String: LocalState], remote: [String: FileVersion], policy: SafetyPolicy) -> Plan {
        plan(index: index, local: local, remote: remote, policy: policy, synced: { index.count })
    }

    /// The same, for a pass over part of the folder (`PassScope`): `index` holds only the
    /// entries it looks at, and `synced` tells how many the folder has in all, the measure
    /// of a mass delete (asked only when a direction has at least the guard's minimum).
    public static func plan(index: [String: IndexEntry], local: [String: LocalState], remote: [String: FileVersion], policy: SafetyPolicy,
                            synced: () throws -> Int) rethrows -> Plan {
        var held: [String: String] = [:]
        var actions: [PlannedAction] = []
        for action in plan(index: index, local: local, remote: remote) {
            if let reason = tornWrite(action, index: index) {
                held[action.path] = reason
            } else {
                actions.append(action)
            }
        }
        /// A local delete that follows a server deletion the user confirmed elsewhere.
        func confirmed(_ action: PlannedAction) -> Bool {
            action.followedDeletion(in: remote).map(policy.confirmedDeletions.contains) ?? false
        }
        let remoteDeletes = actions.filter { if case .deleteRemote = $0 { true } else { false } }
        let localDeletes = actions.filter { if case .deleteLocal = $0 { !confirmed($0) } else { false } }
        let total = max(remoteDeletes.count, localDeletes.count) >= policy.massDeleteMinimum ? try synced() : index.count
        func excessive(_ n: Int) -> Bool {
            n >= policy.massDeleteMinimum && Double(n) > policy.massDeleteFraction * Double(total)
        }
        let holdRemote = excessive(remoteDeletes.count), holdLocal = excessive(localDeletes.count)
        guard !policy.allowMassDelete, holdRemote || holdLocal else { return Plan(actions: actions, held: held, massDelete: nil) }
        let pause = MassDeletePause(remoteDeletes: holdRemote ? remoteDeletes.count : 0, localDeletes: holdLocal ? localDeletes.count : 0, entries: total)
        func holds(_ action: PlannedAction) -> Bool {
            switch action {
            case .deleteRemote: holdRemote
            case .deleteLocal: holdLocal && !confirmed(action)
            default: false
            }
        }
        let heldDeletes = actions.filter(holds)
        actions.removeAll(where: holds)
        return Plan(actions: actions, held: held, massDelete: pause, heldDeletes: heldDeletes)
    }

    /// A file that became 0 bytes while its mtime did not move is what a power cut leaves
    /// behind a torn write; it is reported, not uploaded over non-empty content, until its
    /// mtime moves.
    static func tornWrite(_ action: PlannedAction, index: [String: IndexEntry]) -> String? {
        let local: LocalState
        switch action {
        case .upload(let l, _), .conflict(let l, _): local = l
        default: return nil
        }
        guard local.kind == .file, local.file.size == 0, let e = index[local.path], e.kind == .file, e.size > 0, e.mtimeNs == local.file.mtimeNs else {
            return nil
        }
        return "the file became empty but its modification time did not change (a torn write?); it is not uploaded until it is written again"
    }

    public static func plan(index: [String: IndexEntry], local: [String: LocalState], remote: [String: FileVersion]) -> [PlannedAction] {
        // Every path of the three sides once: the index's, then those only here, then those
        // only on the server (a deletion of something never synced here is nothing to do).
        // Only the actions are sorted, not every path: a million paths sorted as strings
        // were a fifth of a no-op full pass.
        var actions: [PlannedAction] = []
        for (path, e) in index {
            if let action = decide(index: e, local: local[path], remote: remote[path]) { actions.append(action) }
        }
        for (path, l) in local where index[path] == nil {
            if let action = decide(index: nil, local: l, remote: remote[path]) { actions.append(action) }
        }
        for (path, v) in remote where !v.deleted && index[path] == nil && local[path] == nil {
            if let action = decide(index: nil, local: nil, remote: v) { actions.append(action) }
        }
        actions.sort { $0.path < $1.path }
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
                return .upload(local, base: index?.version ?? base(remote))
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
            case (let local?, nil): return .upload(local, base: base(remote))  // modify beats delete
            case (let local?, let live?):
                return sameContent(local, live) ? .adopt(local, remote: live) : .conflict(local, remote: live)
            }
        }
    }

    /// The server version an upload is based on: none for a path the server no longer has
    /// at all (`LocalIndex.removedByServer`), which is created anew.
    static func base(_ remote: FileVersion?) -> Int64? {
        remote.flatMap { $0.version == LocalIndex.removedByServer ? nil : $0.version }
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

/// `NAME.conflict-<device>-<YYYYMMDD-HHMMSS>.EXT` beside the original (SPEC §2); a second
/// copy of the same file in the same second gets `-2`, `-3`, … after the time.
public enum ConflictName {
    public static func make(for path: String, device: String, at date: Date, attempt: Int = 1) -> String {
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
        return directory + stem + ".conflict-\(safeDevice.prefix(40))-\(stamp)" + (attempt > 1 ? "-\(attempt)" : "") + ext
    }

    public static func isConflictCopy(_ path: String) -> Bool {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        return name.range(of: #"\.conflict-[A-Za-z0-9_-]*-\d{8}-\d{6}"#, options: .regularExpression) != nil
    }
}
