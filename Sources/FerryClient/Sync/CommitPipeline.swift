import FerryCore
import Foundation
import NIOPosix

/// The server half of a plan, as the last stages of a pass: the journal of what is being
/// uploaded, the chunks the server lacks (`ChunkUploader`), then the commits, in batches
/// several at a time, each answer recorded in the index through the `FeedCursor`, which
/// alone moves the cursor.
struct CommitPipeline: Sendable {
    let folder: FolderConfig
    let index: LocalIndex
    let api: ServerAPI
    let uploader: ChunkUploader
    let feed: FeedCursor
    let progress: TransferProgress

    var root: String { folder.path }

    /// Commit batches of plain files in flight at once: enough that the server's writer
    /// always has the next batch decoded while this side records the last answer (with two,
    /// a timeline of 26 batches showed it idle for up to 27 ms between them).
    static let commitWindow = 4

    /// `early` (the pass's early uploads) is waited for before the upload step, which would
    /// otherwise find the chunks it is still sending missing and send them again.
    func apply(_ actions: [PlannedAction], waitingFor early: EarlySender? = nil, report: inout PassReport) async throws {
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
        async let journaled: Void = SyncIO.pool.runIfActive { try index.recordPending(folder: root, pending) }
        report.uploadedBytes += await early?.finish() ?? 0
        guard !puts.isEmpty || !deletes.isEmpty else { return }
        var torn = Set<String>()
        report.uploadedBytes += try await uploader.uploadMissing(of: files, present: early?.confirmedPresent() ?? [], torn: &torn)
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
        var run = try feed.beginCommits()
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
                        update.synced.append(IndexEntry(local, version: version.version))
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
                        report.uploadedBytes += try await uploader.uploadMissing(of: [local], torn: &tornAgain)
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
            try feed.record(update, head: response.head, in: &run)
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
}

extension CommitOperation {
    /// At least the bytes of this operation's JSON: text counted as if every byte were
    /// escaped (`\u00XX`), each chunk as its hash, size and punctuation.
    var jsonSizeBound: Int {
        let text = path.string.utf8.count + (target?.utf8.count ?? 0) + (conflictOf?.path.string.utf8.count ?? 0)
        return 512 + 6 * text + 112 * (chunks?.count ?? 0)
    }
}
