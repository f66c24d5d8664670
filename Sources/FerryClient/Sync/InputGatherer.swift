import FerryCore
import Foundation
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Everything the planner needs, gathered without changing anything.
public struct PassInputs: Sendable {
    public var index: [String: IndexEntry]
    public var local: [String: LocalState]
    public var remote: [String: FileVersion]
    public var problems: [String: String]
    /// Sends the chunks of what was hashed; it may still be sending its last groups.
    public var early: EarlySender?
    /// Synced entries whose subtree left the folder's selection, deepest first.
    public var leaving: [IndexEntry] = []
    /// Local files and links outside the selection, which are not synced.
    public var outsideSelection: Set<String> = []
    /// What the walk and the index reads covered.
    public var scope: PassScope = .everything

    /// Waits for the chunks sent while hashing; returns the bytes the server stored.
    public func earlyUploads() async -> Int64 { await early?.finish() ?? 0 }
}

/// The first stage of a pass: the walk of the folder (or of the paths a scoped pass looks
/// at) and the hash pipeline behind it, with the early sender taking each hashed file's
/// chunks on to the server, and the index's rows for the same paths. Its product is the
/// planner's input; it changes nothing but the stale partial downloads it sweeps.
struct InputGatherer: Sendable {
    let folder: FolderConfig
    let index: LocalIndex
    let api: ServerAPI
    let parallelism: Int
    let progress: TransferProgress
    let scopes: ScopeTracker

    var root: String { folder.path }

    /// `newer`: server versions read but not stored (a dry run), laid over the mirror.
    /// `uploadEarly`: chunks start uploading as files are hashed (never in a dry run).
    /// `scope`: the paths the walk and the index reads cover (a scoped pass walks only them).
    func gather(newer: [FileVersion] = [], uploadEarly: Bool = true, scope: PassScope = .everything) async throws -> PassInputs {
        try LocalScanner.checkRoot(root)
        let rules = IgnoreRules(userPatterns: (try? String(contentsOfFile: root + "/.ferryignore", encoding: .utf8)) ?? "")
        let root = self.root
        let selection = folder.selection
        // The walk and the index reads are independent: run them on two threads at once.
        // Files are hashed as the walk finds them, so hashing (and the server's storing)
        // starts with the first directory instead of after the last.
        let index = self.index
        // Found files travel in groups (`FoundGroup`): one task switch per group, not per file.
        let (found, foundSink) = AsyncStream<[LocalFile]>.makeStream()
        let roots: [String]? = if case .paths(let paths) = scope { PassScope.roots(paths) } else { nil }
        async let walked: ScanResult = {
            defer { foundSink.finish() }  // also when the pool refuses the walk
            return try await SyncIO.pool.runIfActive {
                var group = FoundGroup()
                let found: (LocalFile) -> Void = { file in
                    if file.kind == .file, selection.includes(file.path), group.add(file) { foundSink.yield(group.take()) }
                }
                let result = roots.map { LocalScanner.scan(root: root, rules: rules, paths: $0, found: found) }
                    ?? LocalScanner.scan(root: root, rules: rules, found: found)
                if !group.files.isEmpty { foundSink.yield(group.take()) }
                return result
            }
        }()
        async let stored = SyncIO.pool.runIfActive {
            if let roots { return try index.rows(folder: root, under: roots) }
            return (try index.entries(folder: root), try index.remote(folder: root), try index.journal(folder: root))
        }
        var (entries, remote, journal) = try await stored
        for v in newer where (remote[v.path.string]?.version ?? 0) < v.version { remote[v.path.string] = v }
        var local: [String: LocalState] = [:]
        var skip = Set<String>()
        var failed: [String: String] = [:]
        var large: [LocalFile] = []
        // Chunks of what is hashed here start on their way to the server at once, so the
        // server stores while the client hashes instead of the two taking turns.
        let progress = self.progress
        let sender = uploadEarly ? EarlySender(api: api, root: root, parallelism: parallelism, limits: try await api.limits(), progress: progress) : nil
        func record(_ file: LocalFile, _ outcome: Result<LocalState?, any Error>) {
            switch outcome {
            case .success(let state?):
                local[file.path] = state
                if file.size < Self.largeFileSize { progress.hashed(file.size) }  // large ones count chunk by chunk
            case .success(nil):
                failed[file.path] = "the file is changing; it will be synced once it settles"
                skip.insert(file.path)
            case .failure(let error):
                failed[file.path] = "cannot read: \(error)"
                skip.insert(file.path)
            }
        }
        // Small files are hashed in groups, `hashWindow` groups at a time (the I/O pool runs
        // as many as it has threads): each file is mostly a wait on the disk, and one trip to
        // the pool per group instead of per file took the client's task switches for 20,000
        // files from 24,000 to 3,700. Files whose stat matches the index or the journal are
        // not read at all.
        await withTaskGroup(of: [(LocalFile, Result<LocalState?, any Error>)].self) { group in
            var inFlight = 0
            for await files in found {
                var toHash: [LocalFile] = []
                for file in files {
                    let path = file.path
                    if let e = entries[path], e.kind == .file, let sha = e.sha256, file.sameStat(size: e.size, mtimeNs: e.mtimeNs, inode: e.inode, ctimeNs: e.ctimeNs) {
                        local[path] = LocalState(file: file, sha256: sha, chunks: e.chunks)
                    } else if let j = journal[path], file.sameStat(size: j.size, mtimeNs: j.mtimeNs, inode: j.inode, ctimeNs: j.ctimeNs) {
                        local[path] = LocalState(file: file, sha256: j.sha256, chunks: j.chunks)
                    } else if file.size >= Self.largeFileSize {
                        large.append(file)
                    } else {
                        toHash.append(file)
                    }
                }
                guard !toHash.isEmpty else { continue }
                if inFlight == Self.hashWindow, let done = await group.next() {
                    for (file, outcome) in done { record(file, outcome) }
                    inFlight -= 1
                }
                inFlight += 1
                let batch = toHash
                group.addTask {
                    do {
                        return try await SyncIO.pool.runIfActive {
                            batch.map { file in
                                let outcome = Result { try LocalScanner.hashKeepingContent(root: root, file: file) }
                                // The bytes just hashed go to the sender: read once, not again to upload.
                                if case .success(let hashed?) = outcome { sender?.offer(hashed.state.chunks, path: file.path, content: hashed.content) }
                                return (file, outcome.map { $0?.state })
                            }
                        }
                    } catch {
                        return batch.map { ($0, .failure(error)) }
                    }
                }
            }
            while let done = await group.next() {
                for (file, outcome) in done { record(file, outcome) }
            }
        }
        let scan: ScanResult
        do { scan = try await walked } catch {
            sender?.close()  // its queue ends; what was offered is still sent
            throw error
        }
        Downloads.sweepStalePartials(root: root, scan.partialDownloads)
        for (path, file) in scan.entries where file.kind != .file && selection.includes(path) {
            local[path] = LocalState(file: file, sha256: nil, chunks: [])
        }
        // Ferry's own names and what `.ferryignore` ignores are out of the plan on the other
        // two sides too (the walk left them out of this one): never received, and never
        // deleted here or on the server. A server version that breaks the protocol's rules
        // is a problem of its path. (What the walk found is known not to be ignored.)
        func outOfScope(_ path: String, isDirectory: Bool) -> Bool {
            scan.entries[path] == nil && (RemoteCheck.isFerrysOwn(path) || rules.isIgnored(path, isDirectory: isDirectory))
        }
        var invalid: [String: String] = [:]
        // Outside the selection (`Selection`) the same holds; the mirror keeps those versions,
        // so a subtree that joins the selection later is downloaded from it.
        // (In place: `filter` would build and hash a new dictionary of a million kept paths.)
        remote.removeAll { path, v in
            if outOfScope(path, isDirectory: v.kind == .directory) || !selection.includes(path) { return true }
            if let problem = RemoteCheck.problem(with: v) { invalid[path] = problem }
            return false
        }
        entries.removeAll { path, e in outOfScope(path, isDirectory: e.kind == .directory) }
        let leaving: [IndexEntry]
        (entries, leaving) = selection.split(entries)
        // A large file is hashed by several threads already; they go one at a time.
        for file in large {
            let outcome = await Result(awaiting: {
                try await SyncIO.pool.runIfActive {
                    try LocalScanner.hash(root: root, file: file) { chunk, offset in
                        progress.hashed(chunk.size)
                        sender?.offer([chunk], path: file.path, at: offset)
                    }
                }
            })
            record(file, outcome)
        }
        let problems = scan.problems.filter { selection.place(of: $0.key) != .outside }.merging(failed) { a, _ in a }.merging(invalid) { a, _ in a }
        // Not waited for here: planning and the journal go on while the last groups are stored.
        sender?.close()
        // A path that could not be read, or sits in a directory that could not be listed,
        // is left out of the plan entirely: absence must never read as deletion.
        for path in problems.keys { skip.insert(path) }
        let blocked = scan.unreadableDirectories
        func isSkipped(_ path: String) -> Bool {
            if skip.contains(path) { return true }
            return blocked.contains { path.hasPrefix($0 + "/") }
        }
        if !skip.isEmpty || !blocked.isEmpty {
            entries.removeAll { path, _ in isSkipped(path) }
            remote.removeAll { path, _ in isSkipped(path) }
            local.removeAll { path, _ in isSkipped(path) }
        }
        let outside = selection.isEverything ? [] : scopes.outsideSelection(after: scope, found: selection.outsideFiles(scan.entries))
        return PassInputs(index: entries, local: local, remote: remote, problems: problems, early: sender, leaving: leaving,
                      outsideSelection: outside, scope: scope)
    }

    /// Files the walk found, handed on together: up to `maxFiles`, or fewer once they hold
    /// `maxBytes`, so a group of larger files still spreads over the pool's threads.
    struct FoundGroup {
        static let maxFiles = 32
        static let maxBytes: Int64 = 1 << 20
        var files: [LocalFile] = []
        var bytes: Int64 = 0

        /// Adds `file`; true when the group is full.
        mutating func add(_ file: LocalFile) -> Bool {
            files.append(file)
            bytes += file.size
            return files.count == Self.maxFiles || bytes >= Self.maxBytes
        }

        mutating func take() -> [LocalFile] {
            defer { self = FoundGroup() }
            return files
        }
    }

    /// Files at least this large are hashed one at a time (their hash already keeps several
    /// threads busy); smaller ones in groups, `hashWindow` groups at a time.
    static let largeFileSize: Int64 = 32 << 20
    static let hashWindow = 8
}

extension Dictionary {
    /// Removes the entries `shouldBeRemoved` picks, in place: `filter` builds (and hashes) a
    /// new dictionary of everything kept, this costs only the removals.
    mutating func removeAll(where shouldBeRemoved: (Key, Value) throws -> Bool) rethrows {
        var doomed: [Key] = []
        for (key, value) in self where try shouldBeRemoved(key, value) { doomed.append(key) }
        for key in doomed { removeValue(forKey: key) }
    }
}
