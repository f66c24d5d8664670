import FerryCore
import Foundation
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// What one pass over a folder did and what it left undone.
public struct PassReport: Sendable, Codable, Equatable {
    /// Passes run (a sync runs passes until the folder is settled). Not in the JSON, which
    /// older `ferry status` must keep reading.
    public var passes = 0
    /// Of those, passes over the paths the watcher and the feed named (`PassScope`); not in the JSON.
    public var scopedPasses = 0
    public var planned = 0
    public var uploadedFiles = 0
    /// Chunk bytes sent to the server (chunks it already had are not sent).
    public var uploadedBytes: Int64 = 0
    public var downloadedFiles = 0
    /// Chunk bytes fetched from the server.
    public var downloadedBytes: Int64 = 0
    /// Chunk bytes copied from other local files instead of downloaded.
    public var reusedLocalBytes: Int64 = 0
    public var deletedRemote = 0
    public var deletedLocal = 0
    public var conflicts = 0
    /// Actions that did not complete this pass (retried by the next one).
    public var deferred = 0
    /// Per path: why it is not in sync.
    public var problems: [String: String] = [:]
    /// Deletes held back by the mass-delete guard, if any.
    public var massDelete: MassDeletePause?
    /// Local files and links outside the folder's selection, not synced (nil without a selection).
    public var outsideSelection: Int?
    /// Synced files removed here, unchanged, because their subtree left the selection.
    public var removedOutsideSelection: Int?
    /// The versions this pass's deletions got on the server (not in the JSON).
    public var remoteDeleteVersions: [Int64] = []

    public init() {}

    /// Something changed on either side.
    public var didWork: Bool { uploadedFiles + downloadedFiles + deletedRemote + deletedLocal + conflicts > 0 }

    /// Everything planned was done, and nothing was made that a next pass must sync.
    public var finishedEverything: Bool { deferred == 0 && problems.isEmpty && conflicts == 0 && massDelete == nil }

    enum CodingKeys: String, CodingKey {
        case planned, conflicts, deferred, problems
        case massDelete = "mass_delete"
        case uploadedFiles = "uploaded_files", uploadedBytes = "uploaded_bytes", downloadedFiles = "downloaded_files"
        case downloadedBytes = "downloaded_bytes", reusedLocalBytes = "reused_local_bytes"
        case deletedRemote = "deleted_remote", deletedLocal = "deleted_local"
        case outsideSelection = "outside_selection", removedOutsideSelection = "removed_outside_selection"
    }
}

/// Syncs one folder with its library: pull the change feed, scan, hash what changed, plan
/// (the pure `Planner`), then apply the plan on disk and on the server.
public final class FolderSync: Sendable {
    public let folder: FolderConfig
    let index: LocalIndex
    let api: ServerAPI
    let deviceName: String
    let parallelism: Int
    let logger: Logger

    /// The guards' settings; `allowMassDelete` is set for one confirmed run.
    public let policy: SafetyPolicy
    /// How long a run waits for another process that is syncing this folder (`FolderLock`).
    public let lockTimeout: Duration
    /// What the passes count as they go, for a progress line or `ferry status` to read.
    public let progress: TransferProgress
    /// What the next pass looks at: told by the daemon's watcher, by the feed and by passes.
    public let scopes = ScopeTracker()

    public init(folder: FolderConfig, index: LocalIndex, api: ServerAPI, deviceName: String, parallelism: Int = 4,
                policy: SafetyPolicy = SafetyPolicy(), lockTimeout: Duration = .seconds(120), progress: TransferProgress = TransferProgress(),
                logger: Logger) throws {
        self.folder = folder
        self.policy = policy
        self.lockTimeout = lockTimeout
        self.progress = progress
        self.index = index
        self.api = api
        self.deviceName = deviceName
        self.parallelism = max(1, parallelism)
        self.logger = logger
        try index.attach(folder: folder.path, library: folder.libraryId)
    }

    /// One of `config`'s folders, synced as this device with its settings (device name,
    /// upload parallelism, the folder's guard): what `ferryd` and every `ferry` command use.
    public convenience init(folder: FolderConfig, of config: ClientConfig, index: LocalIndex, api: ServerAPI, lockTimeout: Duration = .seconds(120),
                            progress: TransferProgress = TransferProgress(), logger: Logger) throws {
        try self.init(folder: folder, index: index, api: api, deviceName: config.deviceName, parallelism: config.uploadParallelism,
                      policy: folder.policy, lockTimeout: lockTimeout, progress: progress, logger: logger)
    }

    var root: String { folder.path }

    /// Hashing and file reads and writes: a hash of a large file holds a thread for seconds,
    /// so the pool is larger than the core count (NIO's default) to keep uploads flowing
    /// meanwhile. Shared by every folder of the process.
    static let ioPool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: max(4, 2 * System.coreCount))
        pool.start()
        return pool
    }()

    // MARK: the pass

    /// The folder's root and its `.ferry/` marker must both be there; otherwise nothing is
    /// done at all (an unmounted disk must not look like a folder whose files were deleted).
    public func checkRoot() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ClientError.folderUnavailable("folder \(root) is missing (renamed, deleted or on a disk that is not mounted); nothing was synced or deleted")
        }
        guard FileManager.default.fileExists(atPath: root + "/" + LocalScanner.markerName, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ClientError.folderUnavailable("folder \(root) has lost its .ferry marker (is this the right disk?); nothing was synced or deleted — restore it or run 'ferry folder add' again")
        }
    }

    /// Reads the change feed from the stored cursor to the head into the index's mirror.
    /// Returns whether anything new arrived.
    @discardableResult
    public func pullChanges(wait: Int = 0) async throws -> Bool {
        var any = false
        do {
            try await readFeed(since: try index.cursor(folder: root), wait: wait, storingCursor: true) { any = any || !$0.changes.isEmpty }
            return any
        } catch let refusal as APIFailure where refusal.code == "cursor_expired" {
            // Retention removed deletions this device has not seen: compare the whole listing.
            // What it lacks is gone from the server (`LocalIndex.dropMissingRemote`); the
            // cursor moves only then, to the head the last page was read at.
            var listed = Set<String>()
            let last = try await readFeed(since: 0, storingCursor: false) { listed.formUnion($0.changes.lazy.map(\.path.string)) }
            try index.dropMissingRemote(folder: root, listed: listed, cursor: max(last.cursor, last.head))
            scopes.requireFull()
            return true
        } catch let refusal as APIFailure where refusal.code == "cursor_ahead" {
            // The server forgot changes this device saw. Guessing which side is right
            // could overwrite or delete; stop and say how to compare by content instead.
            throw ClientError.folderUnavailable(
                "the server's copy of library '\(folder.libraryName)' is older than this folder's record of it (it was probably "
                    + "restored from a backup); nothing was changed here. To sync again, run 'ferry folder remove \(root)' and "
                    + "'ferry folder add \(root) --library \(folder.libraryName)': files are then compared by content, and any that differ "
                    + "are kept as conflict copies")
        }
    }

    /// Reads the feed's pages from `since` to the head into the mirror, each seen by `page`
    /// once stored; only the first waits up to `wait` seconds for a change. With
    /// `storingCursor`, each page's cursor is stored with its changes. Returns the last page.
    @discardableResult
    func readFeed(since start: Int64, wait: Int = 0, storingCursor: Bool, _ page: (ChangesResponse) -> Void) async throws -> ChangesResponse {
        var since = start
        var wait = wait
        while true {
            let read = try await api.changes(library: folder.libraryId, since: since, limit: 1000, wait: wait)
            wait = 0
            var update = IndexUpdate()
            update.remote = read.changes
            if storingCursor { update.cursor = read.cursor }
            try index.apply(folder: root, update)
            if storingCursor { scopes.pulled(read.changes.lazy.map(\.path.string), since: since, cursor: read.cursor) }
            page(read)
            since = read.cursor
            if !read.hasMore { return read }
        }
    }

    /// Everything the planner needs, gathered without changing anything.
    public struct Inputs: Sendable {
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

    /// `newer`: server versions read but not stored (a dry run), laid over the mirror.
    /// `uploadEarly`: chunks start uploading as files are hashed (never in a dry run).
    /// `scope`: the paths the walk and the index reads cover (a scoped pass walks only them).
    public func gatherInputs(newer: [FileVersion] = [], uploadEarly: Bool = true, scope: PassScope = .everything) async throws -> Inputs {
        try checkRoot()
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
            return try await FolderSync.ioPool.runIfActive {
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
        async let stored = FolderSync.ioPool.runIfActive {
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
                        return try await FolderSync.ioPool.runIfActive {
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
        sweepStalePartials(scan.partialDownloads)
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
        remote = remote.filter { path, v in
            if outOfScope(path, isDirectory: v.kind == .directory) || !selection.includes(path) { return false }
            if let problem = RemoteCheck.problem(with: v) { invalid[path] = problem }
            return true
        }
        entries = entries.filter { !outOfScope($0.key, isDirectory: $0.value.kind == .directory) }
        let leaving: [IndexEntry]
        (entries, leaving) = selection.split(entries)
        // A large file is hashed by several threads already; they go one at a time.
        for file in large {
            let outcome = await Result(awaiting: {
                try await FolderSync.ioPool.runIfActive {
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
        entries = entries.filter { !isSkipped($0.key) }
        remote = remote.filter { !isSkipped($0.key) }
        local = local.filter { !isSkipped($0.key) }
        let outside = selection.isEverything ? [] : scopes.outsideSelection(after: scope, found: selection.outsideFiles(scan.entries))
        return Inputs(index: entries, local: local, remote: remote, problems: problems, early: sender, leaving: leaving,
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
    /// Commit batches of plain files in flight at once: enough that the server's writer
    /// always has the next batch decoded while this side records the last answer (with two,
    /// a timeline of 26 batches showed it idle for up to 27 ms between them).
    static let commitWindow = 4

    /// One pass: pull, scan, plan, apply. Errors that concern single paths are reported in
    /// `problems`; errors that stop the whole folder are thrown.
    public func pass(allowMassDelete: Bool = false) async throws -> PassReport {
        try await pass(allowMassDelete: allowMassDelete, readOnly: try await readOnlyNow())
    }

    /// A pass that keeps local changes local when `readOnly` (`readOnlyNow`, asked once per
    /// run of passes, not per pass).
    func pass(allowMassDelete: Bool, readOnly: Bool) async throws -> PassReport {
        progress.beginPass()
        defer { progress.endPass() }
        do {
            let report = try await scopedPass(allowMassDelete: allowMassDelete, readOnly: readOnly)
            scopes.finished(report)
            return report
        } catch {
            scopes.requireFull()  // what it had taken is looked at again, with everything else
            throw error
        }
    }

    /// A pass over what `scopes` says may have changed: the whole folder, or the paths the
    /// watcher and the feed named since the last pass.
    private func scopedPass(allowMassDelete: Bool, readOnly: Bool) async throws -> PassReport {
        try await pullChanges()
        let scope = scopes.take(storedCursor: try index.cursor(folder: root))
        var inputs = try await gatherInputs(uploadEarly: !readOnly, scope: scope)
        inputs.index = try refreshTouched(inputs)
        var policy = self.policy
        policy.allowMassDelete = policy.allowMassDelete || allowMassDelete
        let gate = MassDeleteGate(api: api, library: folder.libraryId, logger: logger)
        let (index, root) = (self.index, self.root)
        let decision = try await gate.decide(index: inputs.index, local: inputs.local, remote: inputs.remote, policy: policy,
                                             synced: scope == .everything ? nil : { try index.entryCount(folder: root) })
        let plan = decision.plan
        await gate.record(decision.confirmedTombstones)
        let (actions, localOnly) = readOnly ? ReadOnlyPlan.split(plan.actions) : (plan.actions, [:])
        let moved = actions.compactMap(\.fileBytes)
        progress.plan(bytes: moved.reduce(0, +), files: moved.count)
        var report = PassReport()
        report.passes = 1
        report.scopedPasses = scope == .everything ? 0 : 1
        report.planned = actions.count
        report.problems = inputs.problems.merging(plan.held) { a, _ in a }.merging(localOnly) { a, _ in a }
        report.massDelete = plan.massDelete
        if actions.isEmpty {
            report.uploadedBytes = await inputs.earlyUploads()
        } else {
            logger.debug("pass planned", metadata: ["folder": "\(root)", "actions": "\(actions.count)"])
            do {
                try await applyLocal(actions, index: inputs.index, report: &report)
                try await applyRemote(actions, waitingFor: inputs.early, report: &report)
                if decision.confirmsRemoteDeletes { await gate.record(report.remoteDeleteVersions) }
            } catch {
                _ = await inputs.earlyUploads()  // no sending left behind a failed pass
                throw error
            }
        }
        try leaveSelection(inputs, report: &report)
        try index.recordProblems(folder: root, report.problems)
        return report
    }

    /// Files whose bytes are still what was synced but whose mtime or inode moved (touched,
    /// rewritten with the same content) get the new stat recorded. Otherwise every later
    /// download or local delete of them would find them "changed since the index saw them"
    /// and wait forever, while the planner, seeing the same content, kept asking again.
    func refreshTouched(_ inputs: Inputs) throws -> [String: IndexEntry] {
        var entries = inputs.index
        var update = IndexUpdate()
        for (path, local) in inputs.local where local.kind == .file {
            guard var entry = entries[path], entry.kind == .file, local.sha256 == entry.sha256, local.file.size == entry.size,
                  !local.file.sameStat(size: entry.size, mtimeNs: entry.mtimeNs, inode: entry.inode, ctimeNs: entry.ctimeNs)
            else { continue }
            entry.mtimeNs = local.file.mtimeNs
            entry.inode = local.file.inode
            entry.ctimeNs = local.file.ctimeNs
            entries[path] = entry
            update.synced.append(entry)
        }
        if !update.synced.isEmpty { try index.apply(folder: root, update) }
        return entries
    }

    /// The plan a pass would run now, computed from the same inputs and the same planner,
    /// without changing anything: the feed is read but not stored, nothing is uploaded,
    /// downloaded, deleted or journaled.
    public func dryRun(allowMassDelete: Bool = false) async throws -> Plan {
        let readOnly = try await readOnlyNow()  // first, as in a pass: a library no longer shared is said so
        var newer: [FileVersion] = []
        var since = try index.cursor(folder: root)
        while true {
            let page = try await api.changes(library: folder.libraryId, since: since, limit: 1000)
            newer += page.changes
            since = page.cursor
            if !page.hasMore { break }
        }
        let inputs = try await gatherInputs(newer: newer, uploadEarly: false)
        var policy = self.policy
        policy.allowMassDelete = policy.allowMassDelete || allowMassDelete
        var plan = try await MassDeleteGate(api: api, library: folder.libraryId, logger: logger)
            .decide(index: inputs.index, local: inputs.local, remote: inputs.remote, policy: policy).plan
        plan.held.merge(inputs.problems) { a, _ in a }
        plan.leavingSelection = inputs.leaving.map(\.path)
        if readOnly {
            let (taken, localOnly) = ReadOnlyPlan.split(plan.actions)
            plan.actions = taken
            plan.held.merge(localOnly) { a, _ in a }
        }
        return plan
    }

    /// One or two sentences on why `path` is or is not in sync, from the planner's inputs:
    /// the ignore pattern that excludes it, the guard or problem that holds it, the action a
    /// pass would take, or the version both sides agree on.
    public func explain(_ path: String) async throws -> String {
        let rules = IgnoreRules(userPatterns: (try? String(contentsOfFile: root + "/.ferryignore", encoding: .utf8)) ?? "")
        let isDirectory = LocalScanner.stat(root: root, path: path)?.kind == .directory
        if path == LocalScanner.markerName || path.hasPrefix(LocalScanner.markerName + "/") {
            return "\(path) is Ferry's own folder marker and state; it is never synced."
        }
        if let pattern = rules.ignoringPattern(for: path, isDirectory: isDirectory) {
            let source = IgnoreRules.defaultPatterns.contains(pattern) ? "Ferry's default ignore list" : ".ferryignore"
            return "\(path) is ignored by the pattern '\(pattern)' in \(source)."
        }
        if !folder.selection.includes(path) { return Self.outsideSelection(path, folder.selection) }
        let plan = try await dryRun()
        if let reason = plan.held[path] { return "\(path) is not synced: \(reason)." }
        if let problem = try index.problem(folder: root, path: path), plan.actions.contains(where: { $0.path == path }) {
            let when = problem.at.formatted(date: .omitted, time: .standard)
            return "The last pass (at \(when)) could not sync \(path): \(problem.message); the next pass tries again."
        }
        if let action = plan.actions.first(where: { $0.path == path }) {
            switch action {
            case .upload(_, let base):
                return "\(path) changed here" + (base.map { " since version \($0)" } ?? " and is new to the server") + "; the next pass uploads it."
            case .deleteRemote(_, let base): return "\(path) was deleted here; the next pass deletes version \(base) on the server."
            case .download(let v): return "The server has a newer version (\(v.version), from device \(v.deviceId ?? "unknown")); the next pass downloads it."
            case .deleteLocal: return "\(path) was deleted on the server; the next pass deletes it here."
            case .conflict(_, let v):
                return "\(path) changed both here and on the server (version \(v.version) from device \(v.deviceId ?? "unknown")); the next pass keeps yours as a conflict copy and downloads theirs."
            case .adopt(_, let v): return "\(path) already matches the server's version \(v.version); the next pass only records it."
            case .forget: return "\(path) was deleted on both sides; nothing to do."
            }
        }
        if plan.massDelete != nil, let pause = plan.massDelete { return "\(path) waits with other deletes: \(pause.description)." }
        if let e = try index.entries(folder: root)[path] {
            return "\(path) is in sync with server version \(e.version)" + (e.sha256.map { " (SHA-256 \($0.hex.prefix(12))…)" } ?? "") + "."
        }
        return "\(path) exists neither here nor on the server."
    }

    /// How many conflicts the server holds open in this folder's library (up to 1,000).
    public func openConflicts() async throws -> Int {
        try await api.conflicts(library: folder.libraryId, state: "open", limit: 1000).count
    }

    /// Passes until the folder is settled (or `limit` passes): what `ferry sync` and the
    /// daemon run. Settled is a pass that planned nothing, or one that finished everything it
    /// planned, made nothing new to sync (no conflict copies) and after which the server's
    /// change feed holds nothing from anyone else. A second pass would then only walk and
    /// hash-check the folder again to find what it just recorded. What changes in the folder
    /// while a pass runs is the next pass's, as for any sync started a moment later: the
    /// daemon's watcher starts it.
    ///
    /// The run holds the folder's `FolderLock`: another process syncing the folder is
    /// waited for, up to `lockTimeout` (`waiting` is told who it is).
    public func syncUntilSettled(limit: Int = 6, allowMassDelete: Bool = false,
                                 waiting: @Sendable (FolderLock.Holder) -> Void = { _ in }) async throws -> PassReport {
        try checkRoot()
        let lock = try await FolderLock.acquire(root: root, timeout: lockTimeout, waiting: waiting)
        defer { lock.release() }
        return try await settle(limit: limit, allowMassDelete: allowMassDelete)
    }

    func settle(limit: Int, allowMassDelete: Bool) async throws -> PassReport {
        // A role the owner changes meanwhile is taken up by the next run; until then the
        // server itself refuses what a read member sends.
        let readOnly = try await readOnlyNow()
        var total = PassReport()
        for _ in 0..<limit {
            let report = try await pass(allowMassDelete: allowMassDelete, readOnly: readOnly)
            total.merge(report)
            total.problems = report.problems
            if report.planned == 0 { return total }
            if report.finishedEverything, !(try await pullChanges()) { return total }
        }
        let last = try await pass(allowMassDelete: allowMassDelete, readOnly: readOnly)
        total.merge(last)
        total.problems = last.problems
        return total
    }

    // MARK: local side: conflicts, downloads, deletes

    /// Applies the local half of a plan. Every step goes through `FolderFS`, so none follows
    /// a link out of the folder, and the order keeps each step's ancestors real directories:
    /// deletes that must make way (a link or file being deleted where a download needs a
    /// directory, the entries of a directory that becomes a file) come first, deepest first;
    /// then conflicts, downloads and records in path order (an ancestor before what is in
    /// it); then the remaining deletes, last so that moved files' chunks can still be copied
    /// from where they were.
    func applyLocal(_ actions: [PlannedAction], index entries: [String: IndexEntry], report: inout PassReport) async throws {
        var update = IndexUpdate()
        let sources = LocalChunkSources(root: root, entries: entries)
        let (early, late) = LocalDeleteOrder.split(actions)
        removeAll(early, report: &report, update: &update)
        var files: [FileVersion] = []
        for action in actions {
            do {
                switch action {
                case .download(let remote) where remote.kind == .file:
                    files.append(remote)  // below, several at a time, once the directories are in place
                case .conflict(let local, let remote):
                    try keepAsConflictCopy(local, theirs: remote, known: entries, report: &report)
                    if try await materialize(remote, expected: nil, sources: sources, report: &report, update: &update) {
                        report.downloadedFiles += 1
                        if remote.kind == .file { progress.finishedFile() }
                    }
                case .download(let remote):
                    if try await materialize(remote, expected: entries[remote.path.string], sources: sources, report: &report, update: &update) {
                        report.downloadedFiles += 1
                        if remote.kind == .file { progress.finishedFile() }
                    } else {
                        report.deferred += 1
                    }
                case .adopt(let local, let remote):
                    update.synced.append(entry(local, version: remote.version))
                    update.journalDone.append(local.path)
                case .forget(let path):
                    update.unsynced.append(path)
                    update.journalDone.append(path)
                default:
                    continue
                }
            } catch {
                report.problems[action.path] = Self.describe(error)
                report.deferred += 1
            }
        }
        await download(files, index: entries, sources: sources, report: &report, update: &update)
        removeAll(late, report: &report, update: &update)
        try index.apply(folder: root, update)
    }

    /// Plain files to download, `downloadWindow` at a time: a small file's download is
    /// mostly waiting, on the server and on two fsyncs, and one at a time a second device
    /// fetched an archive of small files at a few hundred files a second.
    func download(_ files: [FileVersion], index entries: [String: IndexEntry], sources: LocalChunkSources,
                  report: inout PassReport, update: inout IndexUpdate) async {
        typealias Outcome = (path: String, placed: Bool, report: PassReport, update: IndexUpdate, error: (any Error)?)
        await withTaskGroup(of: Outcome.self) { group in
            func record(_ o: Outcome) {
                if let error = o.error {
                    report.problems[o.path] = Self.describe(error)
                    report.deferred += 1
                } else if o.placed {
                    report.downloadedFiles += 1
                    progress.finishedFile()
                } else {
                    report.deferred += 1
                }
                report.downloadedBytes += o.report.downloadedBytes
                report.reusedLocalBytes += o.report.reusedLocalBytes
                update.synced += o.update.synced
            }
            var inFlight = 0
            for remote in files {
                if inFlight == Self.downloadWindow, let done = await group.next() {
                    record(done)
                    inFlight -= 1
                }
                inFlight += 1
                group.addTask {
                    var one = PassReport(), change = IndexUpdate()
                    do {
                        let placed = try await self.materialize(remote, expected: entries[remote.path.string], sources: sources, report: &one, update: &change)
                        return (remote.path.string, placed, one, change, nil)
                    } catch {
                        return (remote.path.string, false, one, change, error)
                    }
                }
            }
            while let done = await group.next() { record(done) }
        }
    }

    /// Files downloaded at once (`download`).
    static let downloadWindow = 8

    /// Removes `deletes` (already deepest first) and records what happened.
    func removeAll(_ deletes: [IndexEntry], report: inout PassReport, update: inout IndexUpdate) {
        for e in deletes {
            switch removeLocal(e) {
            case .removed:
                report.deletedLocal += 1
                update.unsynced.append(e.path)
            case .keptChanged:
                report.deferred += 1
            case .keptNotEmpty:
                // Unsynced or ignored files remain inside: keep the directory and forget it,
                // so the next pass offers it again rather than losing what is in it.
                update.unsynced.append(e.path)
            case .failed(let message):
                report.problems[e.path] = message
                report.deferred += 1
            }
        }
    }

    /// Moves the local side of a conflict aside, to a conflict copy beside it, and records it.
    func keepAsConflictCopy(_ local: LocalState, theirs remote: FileVersion, known entries: [String: IndexEntry], report: inout PassReport) throws {
        let (directory, name) = try FolderFS(root: root).parent(of: local.path)
        // Never rename over an existing entry: a second conflict on the same file in
        // the same second would otherwise replace the first copy.
        let now = Date()
        var attempt = 1
        var copy = ConflictName.make(for: local.path, device: deviceName, at: now)
        while directory.status(FolderFS.split(copy).name) != nil || entries[copy] != nil {
            attempt += 1
            copy = ConflictName.make(for: local.path, device: deviceName, at: now, attempt: attempt)
        }
        try directory.rename(name, to: FolderFS.split(copy).name)
        directory.sync()
        try index.recordConflictCopy(folder: root, copy: copy, origin: ConflictOrigin(path: remote.path, theirs: remote.version))
        report.conflicts += 1
        logger.notice("conflict: kept the local version as a copy", metadata: ["path": "\(local.path)", "copy": "\(copy)"])
    }

    enum RemovalOutcome { case removed, keptChanged, keptNotEmpty, failed(String) }

    /// Removes a local entry only if it is still exactly what the index last saw. An entry
    /// whose ancestor is no longer a directory is no longer in the folder: nothing to remove.
    func removeLocal(_ e: IndexEntry) -> RemovalOutcome {
        let directory: FolderFS.Directory, name: String
        do {
            (directory, name) = try FolderFS(root: root).parent(of: e.path)
        } catch is FolderFS.NotADirectory {
            return .removed
        } catch let failure as SystemCallError where failure.errno == ENOENT {
            return .removed
        } catch {
            return .failed("cannot remove: \(Self.describe(error))")
        }
        guard let now = directory.status(name) else { return .removed }
        guard Self.unchanged(now, since: e) else { return .keptChanged }
        let failure = directory.remove(name, isDirectory: e.kind == .directory)
        if failure != 0 {
            if e.kind == .directory && (failure == ENOTEMPTY || failure == EEXIST) { return .keptNotEmpty }
            return .failed("cannot remove\(e.kind == .directory ? " directory" : ""): \(String(cString: strerror(failure)))")
        }
        directory.sync()
        return .removed
    }

    /// Whether a local entry is still what the index saw: same kind, and for a link the same
    /// target, for a file the same identity. A directory is itself whatever happened inside.
    static func unchanged(_ now: LocalFile, since e: IndexEntry) -> Bool {
        guard now.kind == e.kind else { return false }
        switch e.kind {
        case .directory: return true
        case .symlink: return now.target == e.target
        case .file: return now.sameStat(size: e.size, mtimeNs: e.mtimeNs, inode: e.inode, ctimeNs: e.ctimeNs)
        }
    }

    /// Brings one server version onto disk. Returns false when the local entry changed since
    /// the index saw it (the next pass turns that into an upload or a conflict).
    ///
    /// Throws `FolderFS.NotADirectory` when an ancestor of the path is a link or a file here:
    /// nothing is written until it is a directory again.
    func materialize(_ v: FileVersion, expected: IndexEntry?, sources: LocalChunkSources, report: inout PassReport, update: inout IndexUpdate) async throws -> Bool {
        let path = v.path.string
        let (directory, name) = try FolderFS(root: root).parent(of: path, create: true)
        let current = directory.status(name)

        if v.kind == .directory {
            if let current, current.kind != .directory {
                // The link or file the index saw becomes a directory: it goes first. One that
                // changed since stays, and the next pass makes it a conflict.
                guard let expected, Self.unchanged(current, since: expected) else { return false }
                let failure = directory.remove(name)
                guard failure == 0 || failure == ENOENT else { throw SystemCallError("remove \(path)", errno: failure) }
            }
            if current?.kind != .directory {
                do {
                    try directory.makeDirectory(name, mode: FolderFS.localMode(v.mode & 0o777 == 0 ? 0o755 : v.mode))
                } catch let failure as SystemCallError where failure.errno == EEXIST {}
            }
            guard let made = directory.status(name), made.kind == .directory else { return false }
            directory.sync()
            update.synced.append(IndexEntry(path: path, kind: .directory, size: 0, mtimeNs: made.mtimeNs, inode: made.inode, ctimeNs: made.ctimeNs,
                                            mode: made.mode, sha256: nil, chunks: [], target: nil, version: v.version))
            return true
        }

        let temp: String
        if v.kind == .symlink {
            temp = LocalScanner.partialPrefix + UUID().uuidString
            try directory.makeLink(temp, target: v.target ?? "")
        } else {
            // A download cut short keeps its temp file (one per target name), and the next
            // attempt resumes after its verified chunks: a link that drops every few MiB
            // still brings a large file in.
            temp = Self.partialName(for: name)
            let fetched = try await writeContent(of: v, in: directory, temp: temp, sources: sources)
            report.downloadedBytes += fetched.remote
            report.reusedLocalBytes += fetched.local
        }
        var keep = false
        defer { if !keep { directory.remove(temp) } }
        // The last check before replacing: the target is still what the index last saw
        // (or still absent). A file edited meanwhile is never overwritten.
        let now = directory.status(name)
        switch (expected, now) {
        case (nil, nil): break
        case (let e?, let n?) where Self.unchanged(n, since: e): break
        case (let e?, nil) where e.kind != .directory: break  // deleted locally meanwhile: modify beats delete
        default:
            return false
        }
        if let now, now.kind == .directory {
            // A synced directory becomes a file or link: what was in it was deleted first.
            // One that still holds something (unsynced or ignored files) stays as it is.
            guard directory.remove(name, isDirectory: true) == 0 else { return false }
        }
        try directory.rename(temp, to: name)
        keep = true
        directory.sync()
        guard let placed = directory.status(name) else { return false }
        update.synced.append(IndexEntry(path: path, kind: v.kind, size: placed.size, mtimeNs: placed.mtimeNs, inode: placed.inode, ctimeNs: placed.ctimeNs,
                                        mode: placed.mode, sha256: v.sha256, chunks: v.chunks, target: v.target, version: v.version))
        return true
    }

    /// Writes a version's content to `temp` in `directory`, chunk by chunk, from local copies
    /// where the index knows one (verified by hash) and from the server otherwise; checks the
    /// whole file's SHA-256, sets mode (`FolderFS.localMode`) and mtime, fsyncs. Returns bytes
    /// fetched and reused.
    ///
    /// An unfinished `temp` from an earlier attempt is resumed: its leading chunks that still
    /// match this version (size and hash, re-read) are kept, the rest is cut off. On a full
    /// disk or a final hash mismatch `temp` is removed; on any other failure it is kept for
    /// the next attempt.
    func writeContent(of v: FileVersion, in directory: FolderFS.Directory, temp: String, sources: LocalChunkSources) async throws -> (remote: Int64, local: Int64) {
        // Never through a link: something else by that name is replaced, not followed.
        var fd = openat(directory.fd, temp, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd < 0 && errno == ELOOP {
            directory.remove(temp)
            fd = openat(directory.fd, temp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        }
        let shown = directory.child(temp)
        guard fd >= 0 else { throw SystemCallError("create \(shown)", errno: errno) }
        defer { close(fd) }
        var hasher = StreamingHasher()
        var fetched: Int64 = 0, reused: Int64 = 0
        let resumed = Self.verifiedPrefix(fd: fd, chunks: v.chunks, hasher: &hasher)
        guard ftruncate(fd, off_t(resumed.bytes)) == 0, lseek(fd, off_t(resumed.bytes), SEEK_SET) == off_t(resumed.bytes) else {
            throw SystemCallError("resume \(shown)", errno: errno)
        }
        reused += resumed.bytes
        progress.received(resumed.bytes)
        do {
            try await appendChunks(v.chunks[resumed.chunks...], of: v, fd: fd, temp: shown, sources: sources, hasher: &hasher,
                                   fetched: &fetched, reused: &reused)
            guard hasher.count == v.size, hasher.finalize() == (v.sha256 ?? .empty) else {
                throw ClientError.io("\(v.path) did not match its SHA-256 after download; nothing was replaced")
            }
            _ = fchmod(fd, FolderFS.localMode(v.mode))
            var times = [timespec(tv_sec: 0, tv_nsec: Int(utimeOmit)),
                         timespec(tv_sec: Int(v.mtimeNs / 1_000_000_000), tv_nsec: Int(v.mtimeNs % 1_000_000_000))]
            if v.mtimeNs < 0 { times[1] = timespec(tv_sec: 0, tv_nsec: Int(utimeOmit)) }
            _ = futimens(fd, &times)
            try Self.writing(v) { try FileIO.sync(fd, call: "fsync \(shown)") }
        } catch let error as ClientError {
            directory.remove(temp)  // a full disk needs the space back; a wrong whole-file hash is not worth resuming
            throw error
        }
        return (fetched, reused)
    }

    /// Runs a write or fsync of `v`'s download, reporting a full disk as the `ClientError`
    /// that has its temp file removed to give the space back.
    static func writing(_ v: FileVersion, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as SystemCallError where error.isOutOfSpace {
            throw ClientError.io("the local disk is full; free space to download \(v.path) (nothing was replaced)")
        }
    }

    /// The temp name a download of `target` (a path or a name) uses: fixed per target, so a
    /// later attempt finds it; hashed, so any name fits and two targets never share one.
    static func partialName(for target: String) -> String {
        let name = target.split(separator: "/").last.map(String.init) ?? target
        return LocalScanner.partialPrefix + String(ContentHash.of(Data(name.utf8)).hex.prefix(32))
    }

    /// How many leading chunks of an unfinished download in `fd` are this version's, by
    /// re-reading and hashing them; feeds them to `hasher`.
    static func verifiedPrefix(fd: Int32, chunks: [ChunkRef], hasher: inout StreamingHasher) -> (chunks: Int, bytes: Int64) {
        var info = Glibc.stat()
        guard fstat(fd, &info) == 0, info.st_size > 0 else { return (0, 0) }
        var count = 0, offset: Int64 = 0
        var buffer = [UInt8]()
        for chunk in chunks {
            guard chunk.size > 0, offset + chunk.size <= Int64(info.st_size) else { break }
            buffer = [UInt8](repeating: 0, count: Int(chunk.size))
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
            guard n == Int(chunk.size), ContentHash.of(buffer) == chunk.sha256 else { break }
            buffer.withUnsafeBytes { hasher.update($0) }
            count += 1
            offset += chunk.size
        }
        return (count, offset)
    }

    /// Removes unfinished downloads nobody resumed for a day (their file was deleted or
    /// replaced meanwhile), as Syncthing drops old temporaries during its scan.
    func sweepStalePartials(_ partials: [String: Int64]) {
        let cutoff = (Int64(Date().timeIntervalSince1970) - 86_400) * 1_000_000_000
        let fs = FolderFS(root: root)
        for (path, mtimeNs) in partials where mtimeNs < cutoff {
            guard let (directory, name) = try? fs.parent(of: path), directory.status(name)?.kind == .file else { continue }
            directory.remove(name)
        }
    }

    func appendChunks(
        _ chunks: ArraySlice<ChunkRef>, of v: FileVersion, fd: Int32, temp: String, sources: LocalChunkSources,
        hasher: inout StreamingHasher, fetched: inout Int64, reused: inout Int64
    ) async throws {
        for chunk in chunks {
            var bytes: ByteBuffer
            if let local = sources.read(chunk) {
                bytes = local
                reused += chunk.size
            } else {
                bytes = try await api.chunk(chunk.sha256, library: folder.libraryId, of: v)
                guard bytes.readableBytes == Int(chunk.size), ContentHash.of(bytes.readableBytesView) == chunk.sha256 else {
                    throw ClientError.io("chunk \(chunk.sha256) of \(v.path) arrived damaged; will retry")
                }
                fetched += chunk.size
            }
            progress.received(chunk.size)
            try bytes.withUnsafeReadableBytes { raw in
                hasher.update(raw)
                try Self.writing(v) { try FileIO.writeAll(fd, raw, call: "write \(temp)") }
            }
            bytes.moveReaderIndex(to: bytes.writerIndex)
        }
    }

    // MARK: server side: uploads and deletes

    /// `early` (the pass's early uploads) is waited for before the upload step, which would
    /// otherwise find the chunks it is still sending missing and send them again.
    func applyRemote(_ actions: [PlannedAction], waitingFor early: EarlySender? = nil, report: inout PassReport) async throws {
        var puts: [(LocalState, Int64?)] = []
        var deletes: [(String, Int64)] = []
        for action in actions {
            switch action {
            case .upload(let l, let base): puts.append((l, base))
            case .deleteRemote(let path, let base): deletes.append((path, base))
            default: continue
            }
        }
        let files = puts.filter { $0.0.kind == .file }.map(\.0)
        // The journal is a cache of hashes for a pass cut short (a file whose stat matches it
        // is not hashed again); no decision reads it. So it is written while the upload step
        // runs and the first commits are built and sent, and every answer is recorded only
        // after it, so no row is cleared before it was written. (For 20,000 small files it
        // took 60 ms during which the server had nothing to do.)
        let index = self.index, root = self.root
        let pending = Self.worthJournaling(files)
        async let journaled: Void = FolderSync.ioPool.runIfActive { try index.recordPending(folder: root, pending) }
        report.uploadedBytes += await early?.finish() ?? 0
        guard !puts.isEmpty || !deletes.isEmpty else { return }
        var torn = Set<String>()
        report.uploadedBytes += try await uploadMissingChunks(of: files, present: early?.confirmedPresent() ?? [], torn: &torn)
        for path in torn { report.problems[path] = "the file changed while it was uploaded; it will be synced once it settles" }

        // Directories shallow-first, then files and links, then deletes deepest-first.
        var operations: [(CommitOperation, LocalState?)] = []
        let ordered = puts.filter { !torn.contains($0.0.path) }.sorted { a, b in
            (a.0.kind == .directory ? 0 : 1, a.0.path) < (b.0.kind == .directory ? 0 : 1, b.0.path)
        }
        let conflictCopies = try index.conflictCopies(folder: root)
        for (l, base) in ordered {
            guard let path = try? FerryPath(l.path) else { continue }
            operations.append((CommitOperation(op: .put, path: path, base: base, kind: l.kind, size: l.kind == .file ? l.file.size : nil,
                                               sha256: l.sha256, mtimeNs: l.file.mtimeNs, mode: l.file.mode,
                                               chunks: l.kind == .file ? l.chunks : nil, target: l.file.target,
                                               conflictOf: base == nil ? conflictCopies[l.path] : nil), l))
        }
        for (path, base) in deletes.sorted(by: { $0.0 > $1.0 }) {
            guard let p = try? FerryPath(path) else { continue }
            operations.append((.delete(p, base: base), nil))
        }

        // Batches of plain file and link puts do not depend on each other, so up to
        // `commitWindow` of them are in flight at once: the server applies one while this side
        // records the last answer. A batch holding directories or deletes waits for all before
        // it and goes alone, because a directory must exist before what is inside it and be
        // empty before it is deleted.
        typealias Batch = [(CommitOperation, LocalState?)]
        func independent(_ batch: Batch) -> Bool { batch.allSatisfy { $0.0.op == .put && $0.0.kind != .directory } }
        var start = 0
        var retried = Set<String>()
        var inFlight: [(batch: Batch, independent: Bool, answer: Task<CommitResponse, any Error>)] = []
        defer { for commit in inFlight { commit.answer.cancel() } }
        let api = self.api, library = folder.libraryId
        let limits = try await api.limits()
        // Sequence numbers above the cursor whose versions the index now holds.
        var cursor = try index.cursor(folder: root)
        var handed = Set<Int64>()
        var head = cursor
        while start < operations.count || !inFlight.isEmpty {
            while start < operations.count, inFlight.count < Self.commitWindow {
                let end = Self.commitEnd(operations, from: start, limits: limits)
                let batch = Array(operations[start..<end])
                let alone = !independent(batch)
                // In flight is either one batch that goes alone or only independent ones.
                if !inFlight.isEmpty, alone || !inFlight[0].independent { break }
                start = end
                let sent = batch.map(\.0)
                // Brief answers: this side knows what it sent, so an answer of 20,000 versions
                // with their chunk lists would only be read back and thrown away.
                inFlight.append((batch, !alone, Task { try await api.commit(library: library, sent, brief: true) }))
            }
            let (batch, _, answer) = inFlight.removeFirst()
            let response = try await answer.value
            try await journaled
            var update = IndexUpdate()
            var again: [(CommitOperation, LocalState?)] = []
            let versions = response.versions(of: batch.map(\.0))
            for (((op, local), result), answered) in zip(zip(batch, response.results), versions) {
                let path = op.path.string
                switch result.status {
                case .ok:
                    guard let version = answered else { continue }
                    update.remote.append(version)
                    update.journalDone.append(path)
                    if op.conflictOf != nil { update.conflictCopiesReported.append(path) }
                    if let local {
                        update.synced.append(entry(local, version: version.version))
                        if local.kind == .file {
                            report.uploadedFiles += 1
                            progress.uploaded(local.path, size: local.file.size)
                        }
                    } else {
                        update.unsynced.append(path)
                        report.deletedRemote += 1
                        report.remoteDeleteVersions.append(version.version)
                    }
                case .conflict:
                    // Someone else changed it first: the next pass sees their version and decides.
                    if let current = result.current { update.remote.append(current) }
                    report.deferred += 1
                case .missingChunks:
                    if let local, !retried.contains(path) {
                        retried.insert(path)
                        var tornAgain = Set<String>()
                        report.uploadedBytes += try await uploadMissingChunks(of: [local], torn: &tornAgain)
                        if tornAgain.isEmpty { again.append((op, local)) } else { report.deferred += 1 }
                    } else {
                        report.problems[path] = "the server still misses chunks of this file after re-upload"
                        report.deferred += 1
                    }
                case .rejected:
                    report.problems[path] = "the server refused it: \(result.error?.message ?? "no reason given")"
                    report.deferred += 1
                    // A conflict record the server cannot make must not block the copy itself.
                    if op.conflictOf != nil { update.conflictCopiesReported.append(path) }
                }
            }
            // When every sequence number from the cursor to the head is a version these
            // answers handed over, nobody else committed in between: the change feed would
            // only repeat them, so the cursor moves past them, in the same transaction that
            // records the last of them. (Each handed version is above the cursor and at most
            // its answer's head, so counting them is enough.)
            handed.formUnion(update.remote.lazy.map(\.version).filter { $0 > cursor })
            head = max(head, response.head)
            let movedFrom = cursor
            if head > cursor, Int64(handed.count) == head - cursor {
                update.cursor = head
                cursor = head
                handed.removeAll()
            }
            try index.apply(folder: root, update)
            // This process stored that cursor, past versions it recorded itself.
            if let moved = update.cursor { scopes.pulled([], since: movedFrom, cursor: moved) }
            operations.append(contentsOf: again)
        }
        try await journaled  // also when every file was torn and nothing was committed
    }

    /// Files below this size are not journaled: hashing one again after a pass cut short
    /// (one read, in one piece) costs about what writing and clearing its row costs every
    /// time. For 20,000 small files those rows were 3 % of the client's CPU.
    static let journalMinimumSize: Int64 = 1 << 20

    /// The journal rows for `files`: those whose hash is worth keeping.
    static func worthJournaling(_ files: [LocalState]) -> [JournalEntry] {
        files.filter { $0.file.size >= journalMinimumSize }.map {
            JournalEntry(path: $0.path, inode: $0.file.inode, size: $0.file.size, mtimeNs: $0.file.mtimeNs, ctimeNs: $0.file.ctimeNs,
                         sha256: $0.sha256 ?? .empty, chunks: $0.chunks)
        }
    }

    /// Where the commit from `start` ends: after at most `commitOperations`, and before its
    /// JSON would pass half the server's body limit (a commit of files of very many chunks
    /// each would otherwise be refused as too large, pass after pass). An operation larger
    /// than that goes alone.
    ///
    /// The first and last commits of many are smaller (from an eighth of the limit): the
    /// server starts on the first while this side still encodes the next, and this side
    /// records each answer while the server applies the next, so only the last answer is
    /// recorded with the server idle. The first grow with what went before them, the last
    /// are about half of what is left.
    static func commitEnd(_ operations: [(CommitOperation, LocalState?)], from start: Int, limits: ServerLimits) -> Int {
        let budget = limits.jsonBodyBytes / 2
        let limit = limits.commitOperations, floor = max(1, limit / 8)
        let left = operations.count - start
        let rampUp = max(floor, start), rampDown = left > 2 * limit ? limit : max(floor, (left + 1) / 2)
        let most = min(limit, rampUp, rampDown)
        var end = start, bytes = 0
        while end < operations.count, end - start < most {
            bytes += operations[end].0.jsonSizeBound
            if bytes > budget, end > start { break }
            end += 1
        }
        return end
    }

    /// Asks the server which chunks it lacks (all but those it already confirmed holding,
    /// `present`) and uploads those, `parallelism` at a time, reading each from its file.
    /// Files whose bytes no longer hash as planned (the server refuses them) go to `torn`.
    /// Returns bytes sent. (A confirmed chunk that is gone by the commit is answered
    /// `missing_chunks` there, and uploaded then.)
    func uploadMissingChunks(of files: [LocalState], present: Set<ContentHash> = [], torn: inout Set<String>) async throws -> Int64 {
        var location: [ContentHash: ChunkLocation] = [:]
        for f in files {
            var offset: Int64 = 0
            for c in f.chunks {
                if location[c.sha256] == nil, !present.contains(c.sha256) { location[c.sha256] = ChunkLocation(chunk: c, path: f.path, offset: offset) }
                offset += c.size
            }
        }
        guard !location.isEmpty else { return 0 }
        let missing = try await api.missingChunks(Array(location.keys))
        let limits = try await api.limits()
        // Batches of many chunks, of many files (one request and one server-side sync
        // each), at most `parallelism` in flight.
        let jobs = ChunkUpload.groups(missing.lazy.compactMap { location[$0] }, limits: limits)

        let root = self.root
        let api = self.api, progress = self.progress
        var sent: Int64 = 0
        try await withThrowingTaskGroup(of: (stored: Int64, present: [ContentHash], torn: [String]).self) { group in
            var next = 0
            func launch() {
                guard next < jobs.count else { return }
                let items = jobs[next]
                next += 1
                group.addTask { try await ChunkUpload.send(items, root: root, api: api, progress: progress) }
            }
            for _ in 0..<parallelism { launch() }
            while let answer = try await group.next() {
                torn.formUnion(answer.torn)
                sent += answer.stored
                launch()
            }
        }
        return sent
    }

    /// `size` bytes of the file at `absolute` from `offset`, or nil when it is gone or shorter.
    static func readRange(_ absolute: String, offset: Int64, size: Int64) throws -> ByteBuffer? {
        var buffer = ByteBuffer()
        let (directory, name) = FolderFS.split(absolute)
        return try readRange(root: directory, path: name, offset: offset, size: size, appendingTo: &buffer) ? buffer : nil
    }

    /// Appends `size` bytes of the file at `path` in the folder `root` from `offset` to
    /// `buffer`, opened through `FolderFS`. False, with `buffer` as it was, when the file is
    /// gone, shorter, or beneath something that is no longer a directory.
    /// With `accepting`, the opened file must also pass it (checked on the descriptor, so it
    /// is the file read), or nothing is read.
    static func readRange(root: String, path: String, offset: Int64, size: Int64, appendingTo buffer: inout ByteBuffer,
                          accepting: ((LocalFile) -> Bool)? = nil) throws -> Bool {
        guard size >= 0, offset >= 0 else { return false }
        let fd: Int32
        do { fd = try FolderFS(root: root).open(path, flags: O_RDONLY) } catch let failure as SystemCallError where failure.errno == ENOENT || failure.errno == ELOOP {
            return false
        } catch is FolderFS.NotADirectory {
            return false
        }
        defer { close(fd) }
        if let accepting {
            var st = Glibc.stat()
            guard fstat(fd, &st) == 0, let opened = LocalFile(path: path, stat: st, target: nil), accepting(opened) else { return false }
        }
        let start = buffer.writerIndex
        let wanted = Int(size)
        let read = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: wanted) { raw in
            try FileIO.readFully(fd, at: offset, into: UnsafeMutableRawBufferPointer(rebasing: raw[..<wanted]), call: "read \(path)")
        }
        guard read == wanted else {
            buffer.moveWriterIndex(to: start)
            return false
        }
        return true
    }

    // MARK: helpers

    func entry(_ l: LocalState, version: Int64) -> IndexEntry {
        IndexEntry(path: l.path, kind: l.kind, size: l.file.size, mtimeNs: l.file.mtimeNs, inode: l.file.inode, ctimeNs: l.file.ctimeNs, mode: l.file.mode,
                   sha256: l.sha256, chunks: l.chunks, target: l.file.target, version: version)
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case let e as ClientError: e.description
        case let e as APIFailure: e.description
        case let e as SystemCallError: e.description
        case let e as ServerUnreachable: e.description
        default: "\(error)"
        }
    }
}

extension PassReport {
    mutating func merge(_ other: PassReport) {
        passes += other.passes
        scopedPasses += other.scopedPasses
        planned += other.planned
        uploadedFiles += other.uploadedFiles
        uploadedBytes += other.uploadedBytes
        downloadedFiles += other.downloadedFiles
        downloadedBytes += other.downloadedBytes
        reusedLocalBytes += other.reusedLocalBytes
        deletedRemote += other.deletedRemote
        deletedLocal += other.deletedLocal
        conflicts += other.conflicts
        if let n = other.removedOutsideSelection { removedOutsideSelection = (removedOutsideSelection ?? 0) + n }
        outsideSelection = other.outsideSelection
        deferred = other.deferred
        massDelete = other.massDelete
    }
}

/// `UTIME_OMIT` from <sys/stat.h>, which Glibc's module does not export.
private let utimeOmit = (1 << 30) - 2

/// Chunks already on local disk: where the index says a synced file holds each one. A read
/// is trusted only if the file is unchanged since indexed and the bytes hash right.
struct LocalChunkSources: Sendable {
    let root: String
    private let locations: [ContentHash: [(IndexEntry, Int64)]]

    init(root: String, entries: [String: IndexEntry]) {
        self.root = root
        var map: [ContentHash: [(IndexEntry, Int64)]] = [:]
        for e in entries.values where e.kind == .file {
            var offset: Int64 = 0
            for c in e.chunks {
                map[c.sha256, default: []].append((e, offset))
                offset += c.size
            }
        }
        locations = map
    }

    /// The chunk's bytes from a local file the index says holds them, if one still is what
    /// the index saw (checked on the opened file: one walk of the path, not a stat and then
    /// an open) and the bytes still hash right.
    func read(_ chunk: ChunkRef) -> ByteBuffer? {
        for (e, offset) in locations[chunk.sha256] ?? [] {
            var bytes = ByteBuffer()
            let unchanged = { (now: LocalFile) in now.sameStat(size: e.size, mtimeNs: e.mtimeNs, inode: e.inode, ctimeNs: e.ctimeNs) }
            guard (try? FolderSync.readRange(root: root, path: e.path, offset: offset, size: chunk.size, appendingTo: &bytes, accepting: unchanged)) == true,
                  ContentHash.of(bytes.readableBytesView) == chunk.sha256
            else { continue }
            return bytes
        }
        return nil
    }
}

extension CommitOperation {
    /// At least the bytes of this operation's JSON: text counted as if every byte were
    /// escaped (`\u00XX`), each chunk as its hash, size and punctuation.
    var jsonSizeBound: Int {
        let text = path.string.utf8.count + (target?.utf8.count ?? 0) + (conflictOf?.path.string.utf8.count ?? 0)
        return 512 + 6 * text + 112 * (chunks?.count ?? 0)
    }
}
