import FerryCore
import Foundation
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The local half of a plan, as a stage of the pass: conflict copies, downloads (with
/// chunks reused from local files and resumed partial downloads), local deletes, and the
/// index rows for what it did. Every step goes through `FolderFS`.
struct Downloads: Sendable {
    let folder: FolderConfig
    let index: LocalIndex
    let api: ServerAPI
    let deviceName: String
    let progress: TransferProgress
    /// Told what this stage left on disk, so the watcher's report of it is no change.
    let scopes: ScopeTracker
    let logger: Logger

    var root: String { folder.path }

    /// Applies the local half of a plan. Every step goes through `FolderFS`, so none follows
    /// a link out of the folder, and the order keeps each step's ancestors real directories:
    /// deletes that must make way (a link or file being deleted where a download needs a
    /// directory, the entries of a directory that becomes a file) come first, deepest first;
    /// then conflicts, downloads and records in path order (an ancestor before what is in
    /// it); then the remaining deletes, last so that moved files' chunks can still be copied
    /// from where they were.
    func apply(_ actions: [PlannedAction], index entries: [String: IndexEntry], report: inout PassReport) async throws {
        var update = IndexUpdate()
        var recordedOnly = Set<String>()
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
                    update.synced.append(IndexEntry(local, version: remote.version))
                    update.journalDone.append(local.path)
                    recordedOnly.insert(local.path)
                case .forget(let path):
                    update.unsynced.append(path)
                    recordedOnly.insert(path)
                    update.journalDone.append(path)
                default:
                    continue
                }
            } catch {
                report.problems[action.path] = ClientError.describe(error)
                report.deferred += 1
            }
        }
        await download(files, index: entries, sources: sources, report: &report, update: &update)
        removeAll(late, report: &report, update: &update)
        try index.apply(folder: root, update)
        scopes.left(update, recordedOnly: recordedOnly)
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
                    report.problems[o.path] = ClientError.describe(error)
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
            return .failed("cannot remove: \(ClientError.describe(error))")
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
    static func sweepStalePartials(root: String, _ partials: [String: Int64]) {
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
            guard (try? FolderFS.readRange(root: root, path: e.path, offset: offset, size: chunk.size, appendingTo: &bytes, accepting: unchanged)) == true,
                  ContentHash.of(bytes.readableBytesView) == chunk.sha256
            else { continue }
            return bytes
        }
        return nil
    }
}
