import FerryCore
import Foundation
import Logging

/// Syncs one folder with its library. A pass runs its stages in one direction, each the
/// only owner of its part:
///
///     FeedCursor.pull       the change feed into the index's mirror (the cursor's one owner)
///     InputGatherer.gather  the walk and the hash pipeline (chunks go on early), index rows
///     MassDeleteGate        the pure `Planner`, and the mass-delete guard around it
///     Downloads.apply       conflict copies, downloads, local deletes; their index rows
///     CommitPipeline.apply  the journal, the missing chunks (`ChunkUploader`), the commits,
///                           each answer stored through the `FeedCursor`
///
/// No stage calls back into this type; it only decides what runs (a pass, a dry run, a run
/// of passes until settled) and with which scope.
public final class FolderSync: Sendable {
    public let folder: FolderConfig
    let index: LocalIndex
    let api: ServerAPI
    let logger: Logger

    /// The guards' settings; `allowMassDelete` is set for one confirmed run.
    public let policy: SafetyPolicy
    /// How long a run waits for another process that is syncing this folder (`FolderLock`).
    public let lockTimeout: Duration
    /// What the passes count as they go, for a progress line or `ferry status` to read.
    public let progress: TransferProgress
    /// What the next pass looks at: told by the daemon's watcher, by the feed and by passes.
    public let scopes: ScopeTracker

    let feed: FeedCursor
    let gatherer: InputGatherer
    let downloads: Downloads
    let commits: CommitPipeline

    public init(folder: FolderConfig, index: LocalIndex, api: ServerAPI, deviceName: String, parallelism: Int = 4,
                policy: SafetyPolicy = SafetyPolicy(), lockTimeout: Duration = .seconds(120), progress: TransferProgress = TransferProgress(),
                logger: Logger) throws {
        self.folder = folder
        self.policy = policy
        self.lockTimeout = lockTimeout
        self.progress = progress
        self.index = index
        self.api = api
        let parallelism = max(1, parallelism)
        self.logger = logger
        let scopes = ScopeTracker()
        self.scopes = scopes
        feed = FeedCursor(folder: folder, index: index, api: api, scopes: scopes)
        gatherer = InputGatherer(folder: folder, index: index, api: api, parallelism: parallelism, progress: progress, scopes: scopes)
        downloads = Downloads(folder: folder, index: index, api: api, deviceName: deviceName, progress: progress, scopes: scopes, logger: logger)
        commits = CommitPipeline(folder: folder, index: index, api: api,
                                 uploader: ChunkUploader(root: folder.path, api: api, parallelism: parallelism, progress: progress),
                                 feed: feed, progress: progress)
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

    // MARK: the pass

    /// The folder's root and its `.ferry/` marker must both be there; otherwise nothing is
    /// done at all (an unmounted disk must not look like a folder whose files were deleted).
    public func checkRoot() throws { try LocalScanner.checkRoot(root) }

    /// Reads the change feed from the stored cursor to the head into the index's mirror
    /// (`FeedCursor.pull`). Returns whether anything new arrived.
    @discardableResult
    public func pullChanges(wait: Int = 0) async throws -> Bool { try await feed.pull(wait: wait) }

    /// The planner's inputs now (`InputGatherer.gather`), without changing anything.
    /// `newer`: server versions read but not stored (a dry run), laid over the mirror.
    /// `uploadEarly`: chunks start uploading as files are hashed (never in a dry run).
    /// `scope`: the paths the walk and the index reads cover (a scoped pass walks only them).
    public func gatherInputs(newer: [FileVersion] = [], uploadEarly: Bool = true, scope: PassScope = .everything) async throws -> PassInputs {
        try await gatherer.gather(newer: newer, uploadEarly: uploadEarly, scope: scope)
    }

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
        try await feed.pull()
        let root = self.root
        let scope = scopes.take(storedCursor: try index.cursor(folder: root)) { OnDisk.look(root: root, path: $0) }
        var inputs = try await gatherer.gather(uploadEarly: !readOnly, scope: scope)
        inputs.index = try refreshTouched(inputs)
        var policy = self.policy
        policy.allowMassDelete = policy.allowMassDelete || allowMassDelete
        let gate = MassDeleteGate(api: api, library: folder.libraryId, logger: logger)
        let index = self.index
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
                try await downloads.apply(actions, index: inputs.index, report: &report)
                try await commits.apply(actions, waitingFor: inputs.early, report: &report)
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
    func refreshTouched(_ inputs: PassInputs) throws -> [String: IndexEntry] {
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
        let inputs = try await gatherer.gather(newer: try await feed.unread(), uploadEarly: false)
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
            if report.finishedEverything, !(try await feed.pull()) { return total }
        }
        let last = try await pass(allowMassDelete: allowMassDelete, readOnly: readOnly)
        total.merge(last)
        total.problems = last.problems
        return total
    }
}
