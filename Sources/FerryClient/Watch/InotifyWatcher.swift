import FerryCore
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What changed under a watched folder; paths are relative to the root, `/`-separated.
public enum WatchEvent: Sendable, Equatable {
    /// A file or link was created, written, closed after writing, or had its metadata changed.
    case changed(String)
    /// A directory appeared (created, or moved in from outside the root). It is now watched,
    /// and what it already contained is reported too (the mkdir/add_watch race).
    case directoryCreated(String)
    /// An entry was deleted or moved out of the root.
    case removed(String)
    /// An entry moved within the root (`IN_MOVED_FROM`/`IN_MOVED_TO` paired by cookie).
    case renamed(from: String, to: String, isDirectory: Bool)
    /// The kernel queue overflowed: events were lost and the folder must be rescanned.
    case overflow
    /// `inotify_add_watch` failed with ENOSPC here: `fs.inotify.max_user_watches` is too low.
    case watchLimitReached(String)
    /// The root itself was deleted, moved away or unmounted.
    case rootGone
}

/// A recursive watch over a folder with Linux inotify (Glibc's `inotify_init1` and
/// `inotify_add_watch`; no extra library is needed for what Ferry asks of it). One
/// dedicated thread blocks in `poll` on the inotify descriptor and an eventfd that `stop()`
/// signals; it never runs on the Swift cooperative pool or a NIO event loop.
public final class InotifyWatcher: Sendable {
    public let root: String
    public let events: AsyncStream<[WatchEvent]>
    private let continuation: AsyncStream<[WatchEvent]>.Continuation
    private let fd: Int32
    /// A self-pipe: `stop()` writes to `wakeWrite`, waking the reader's `poll` on `wake`.
    private let wake: Int32
    private let wakeWrite: Int32
    private let stopped = Atomic<Bool>(false)
    private let directories = Mutex<[Int32: String]>([:])
    /// New directories that were gone from their path before they could be watched: moved
    /// on (their ancestor's rename is then further down the queue, or about to be queued) or
    /// deleted. Retried under the paths later renames give them, each time the queue is
    /// drained, until `movePairing` after they were first missed (then they are gone).
    private let unwatched = Mutex<[String: ContinuousClock.Instant]>([:])
    private let isIgnored: @Sendable (String, Bool) -> Bool

    // <sys/inotify.h> values (not all are imported as Swift constants).
    static let inCreate: UInt32 = 0x100, inDelete: UInt32 = 0x200, inModify: UInt32 = 0x2, inCloseWrite: UInt32 = 0x8
    static let inAttrib: UInt32 = 0x4, inMovedFrom: UInt32 = 0x40, inMovedTo: UInt32 = 0x80, inDeleteSelf: UInt32 = 0x400
    static let inMoveSelf: UInt32 = 0x800, inUnmount: UInt32 = 0x2000, inQueueOverflow: UInt32 = 0x4000, inIgnored: UInt32 = 0x8000
    static let inOnlyDir: UInt32 = 0x0100_0000, inDontFollow: UInt32 = 0x0200_0000, inExclUnlink: UInt32 = 0x0400_0000
    static let inIsDir: UInt32 = 0x4000_0000
    static let mask = inCreate | inDelete | inModify | inCloseWrite | inAttrib | inMovedFrom | inMovedTo | inDeleteSelf | inMoveSelf
        | inDontFollow | inOnlyDir | inExclUnlink
    /// How long an unpaired `IN_MOVED_FROM` waits for its `IN_MOVED_TO`.
    static let movePairing = Duration.milliseconds(50)

    /// Starts watching `root` recursively. `isIgnored(path, isDirectory)` filters events
    /// and keeps ignored directories unwatched.
    public init(root: String, isIgnored: @escaping @Sendable (String, Bool) -> Bool = { _, _ in false }) throws {
        self.root = root
        self.isIgnored = isIgnored
        (events, continuation) = AsyncStream.makeStream(of: [WatchEvent].self, bufferingPolicy: .bufferingNewest(4096))
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw SystemCallError("inotify_init1", errno: errno) }
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else {
            let e = errno
            close(fd)
            throw SystemCallError("pipe", errno: e)
        }
        for end in pipeEnds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        wake = pipeEnds[0]
        wakeWrite = pipeEnds[1]
        let rootWatch = inotify_add_watch(fd, root, Self.mask)
        guard rootWatch >= 0 else {
            let e = errno
            close(fd)
            close(wake)
            close(wakeWrite)
            throw SystemCallError("inotify_add_watch \(root)", errno: e)
        }
        directories.withLock { $0[rootWatch] = "" }
        var initial: [WatchEvent] = []
        watchTree(below: "", report: false, into: &initial)
        if !initial.isEmpty { continuation.yield(initial) }
        continuation.onTermination = { [weak self] _ in self?.stop() }
        let thread = Thread { [self] in self.readLoop() }
        thread.name = "ferry-inotify"
        thread.start()
    }

    deinit {
        // The reader thread holds `self` until it exits, so reaching here means it is gone.
        close(fd)
        close(wake)
        close(wakeWrite)
    }

    /// Number of directories watched now.
    public var watchedDirectoryCount: Int { directories.withLock { $0.count } }

    /// Stops the reader thread; the event stream then finishes. Idempotent.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)
    }

    // MARK: reader thread

    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var pendingMoves: [UInt32: (path: String, isDirectory: Bool, at: ContinuousClock.Instant)] = [:]
        while !stopped.load(ordering: .acquiring) {
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            let timeout: Int32 = pendingMoves.isEmpty && unwatched.withLock({ $0.isEmpty }) ? -1 : 20
            let ready = poll(&fds, 2, timeout)
            if ready < 0 && errno != EINTR { break }
            if fds[1].revents != 0 { break }
            var batch: [WatchEvent] = []
            if fds[0].revents != 0 {
                while true {
                    let n = read(fd, &buffer, buffer.count)
                    if n <= 0 { break }
                    parse(buffer[..<n], pendingMoves: &pendingMoves, into: &batch)
                }
            }
            // A move whose partner never came went out of the root: it is a removal.
            let now = ContinuousClock.now
            for (cookie, move) in pendingMoves where now - move.at >= Self.movePairing {
                pendingMoves[cookie] = nil
                if move.isDirectory { forgetTree(move.path) }
                batch.append(.removed(move.path))
            }
            // The renames made before a watch failed are read by now (the queue is drained),
            // but for one whose rename is still under way: it is tried again shortly.
            let due = unwatched.withLock { paths in defer { paths = [:] }; return paths }
            for (path, since) in due.sorted(by: { $0.key < $1.key }) {
                if !watchTree(at: path, retrying: true, into: &batch), now - since < Self.movePairing {
                    unwatched.withLock { $0[path] = since }
                }
            }
            if !batch.isEmpty { deliver(batch) }
        }
        continuation.finish()
    }

    private func deliver(_ batch: [WatchEvent]) {
        if case .dropped = continuation.yield(batch) {
            // The consumer fell behind: whatever was dropped is covered by a rescan.
            _ = continuation.yield([.overflow])
        }
    }

    private func parse(_ bytes: ArraySlice<UInt8>, pendingMoves: inout [UInt32: (path: String, isDirectory: Bool, at: ContinuousClock.Instant)],
                       into batch: inout [WatchEvent]) {
        var offset = bytes.startIndex
        var seen = Set<String>()
        func changed(_ path: String) {
            if seen.insert(path).inserted { batch.append(.changed(path)) }
        }
        bytes.withUnsafeBytes { raw in
            var at = 0
            while at + 16 <= raw.count {
                let wd = raw.loadUnaligned(fromByteOffset: at, as: Int32.self)
                let mask = raw.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self)
                let cookie = raw.loadUnaligned(fromByteOffset: at + 8, as: UInt32.self)
                let length = Int(raw.loadUnaligned(fromByteOffset: at + 12, as: UInt32.self))
                let nameBytes = UnsafeRawBufferPointer(rebasing: raw[(at + 16)..<min(raw.count, at + 16 + length)])
                at += 16 + length
                let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)

                if mask & Self.inQueueOverflow != 0 {
                    batch.append(.overflow)
                    continue
                }
                guard let directory = directories.withLock({ $0[wd] }) else { continue }
                if mask & Self.inIgnored != 0 {
                    _ = directories.withLock { $0.removeValue(forKey: wd) }
                    continue
                }
                if name.isEmpty {
                    if directory.isEmpty, mask & (Self.inDeleteSelf | Self.inMoveSelf | Self.inUnmount) != 0 { batch.append(.rootGone) }
                    continue
                }
                let path = directory.isEmpty ? name : directory + "/" + name
                let isDirectory = mask & Self.inIsDir != 0
                if isIgnored(path, isDirectory) { continue }

                if mask & Self.inMovedFrom != 0 {
                    pendingMoves[cookie] = (path, isDirectory, .now)
                } else if mask & Self.inMovedTo != 0 {
                    if let from = pendingMoves.removeValue(forKey: cookie) {
                        if isDirectory { renameTree(from.path, to: path) }
                        batch.append(.renamed(from: from.path, to: path, isDirectory: isDirectory))
                    } else if isDirectory {
                        batch.append(.directoryCreated(path))
                        watchTree(at: path, into: &batch)
                    } else {
                        changed(path)
                    }
                } else if mask & Self.inCreate != 0 {
                    if isDirectory {
                        batch.append(.directoryCreated(path))
                        watchTree(at: path, into: &batch)
                    } else {
                        changed(path)
                    }
                } else if mask & Self.inDelete != 0 {
                    batch.append(.removed(path))
                } else if !isDirectory, mask & (Self.inModify | Self.inCloseWrite | Self.inAttrib) != 0 {
                    changed(path)
                }
            }
        }
        _ = offset
        offset = bytes.endIndex
    }

    // MARK: the watch tree

    /// Watches a new directory and everything below it, reporting what is already inside.
    /// A directory that is no longer at `path` is retried after the queue is drained
    /// (`unwatched`); a retry returns whether it found it.
    @discardableResult
    private func watchTree(at path: String, retrying: Bool = false, into batch: inout [WatchEvent]) -> Bool {
        let wd = inotify_add_watch(fd, root + "/" + path, Self.mask)
        if wd < 0 {
            if errno == ENOSPC { batch.append(.watchLimitReached(path)) }
            if errno == ENOENT && !retrying { missed(path) }
            return false
        }
        directories.withLock { $0[wd] = path }
        if !watchTree(below: path, report: true, into: &batch) {
            // Watched, but moved before it was listed: what is inside is listed under its new path.
            if !retrying { missed(path) }
            return false
        }
        return true
    }

    private func missed(_ path: String) {
        let now = ContinuousClock.now
        unwatched.withLock { $0[path] = $0[path] ?? now }
    }

    /// Adds watches for every subdirectory of `path` (which is watched already). Returns
    /// false when `path` could not be listed.
    @discardableResult
    private func watchTree(below path: String, report: Bool, into batch: inout [WatchEvent]) -> Bool {
        let absolute = path.isEmpty ? root : root + "/" + path
        guard let dir = opendir(absolute) else { return false }
        var subdirectories: [String] = []
        while let item = readdir(dir) {
            let name = DirectoryEntry.lossyName(of: item)
            if name == "." || name == ".." { continue }
            let child = path.isEmpty ? name : path + "/" + name
            // Relative to the open directory: a rename of it or above meanwhile changes nothing here.
            var st = Glibc.stat()
            guard fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let isDirectory = st.st_mode & S_IFMT == S_IFDIR
            if isIgnored(child, isDirectory) { continue }
            if isDirectory {
                subdirectories.append(child)
            } else if report {
                batch.append(.changed(child))
            }
        }
        closedir(dir)
        for child in subdirectories {
            if report { batch.append(.directoryCreated(child)) }
            let wd = inotify_add_watch(fd, root + "/" + child, Self.mask)
            if wd < 0 {
                if errno == ENOSPC { batch.append(.watchLimitReached(child)) }
                if errno == ENOENT { missed(child) }
                continue
            }
            directories.withLock { $0[wd] = child }
            if !watchTree(below: child, report: report, into: &batch) { missed(child) }
        }
        return true
    }

    /// A directory moved within the root: its watches stay, their paths change.
    private func renameTree(_ from: String, to: String) {
        directories.withLock { map in
            for (wd, path) in map where path == from || path.hasPrefix(from + "/") {
                map[wd] = to + path.dropFirst(from.count)
            }
        }
        unwatched.withLock { paths in
            for (path, since) in paths where path == from || path.hasPrefix(from + "/") {
                paths[path] = nil
                paths[to + path.dropFirst(from.count)] = since
            }
        }
    }

    /// A directory left the root: stop watching it and everything below.
    private func forgetTree(_ path: String) {
        let gone = directories.withLock { map in
            map.filter { $0.value == path || $0.value.hasPrefix(path + "/") }.map(\.key)
        }
        for wd in gone {
            inotify_rm_watch(fd, wd)
            _ = directories.withLock { $0.removeValue(forKey: wd) }
        }
        unwatched.withLock { $0 = $0.filter { $0.key != path && !$0.key.hasPrefix(path + "/") } }
    }
}
