import FerryCore
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One process at a time syncs a folder: an exclusive `flock` on `.ferry/lock` in the
/// folder's marker, held for a whole run of passes. Two processes syncing one folder at
/// once (`ferry sync` beside a running `ferryd`) would resume each other's partial
/// downloads and race on every rename; now the second waits for the first, and says whom
/// it is waiting for. The lock goes with the process: a killed holder holds nothing.
public final class FolderLock: Sendable {
    /// The lock file, in the folder's marker directory.
    public static let fileName = LocalScanner.markerName + "/lock"

    private let fd: Int32
    private let held = Atomic<Bool>(true)

    private init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// Who holds a folder's lock, as its holder wrote it.
    public struct Holder: Sendable, Equatable, CustomStringConvertible {
        public var program: String?
        public var pid: Int32?

        public var description: String {
            switch (program, pid) {
            case let (program?, pid?): "\(program), pid \(pid)"
            case let (nil, pid?): "pid \(pid)"
            default: "a process that has not said which"
            }
        }
    }

    /// Takes the lock of the folder at `root`, waiting up to `timeout` while another process
    /// holds it (`waiting` is told whom, once, when the wait begins). A file system without
    /// locks lets the sync go on unlocked, as before there was a lock.
    public static func acquire(root: String, timeout: Duration, waiting: @Sendable (Holder) -> Void = { _ in }) async throws -> FolderLock {
        let fd = try FolderFS(root: root).open(fileName, flags: O_RDWR | O_CREAT)
        let lock = FolderLock(fd: fd)
        let deadline = ContinuousClock.now + timeout
        var told = false
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            switch errno {
            case EINTR:
                continue
            case EWOULDBLOCK:
                let holder = lock.holder()
                if !told {
                    waiting(holder)
                    told = true
                }
                guard ContinuousClock.now < deadline else {
                    throw ClientError.folderUnavailable(
                        "folder \(root) is being synced by another ferry process (\(holder)); it did not finish within \(timeout.seconds) s. "
                            + "Try again once it has ('ferry status' shows what ferryd is doing), or wait longer with --wait")
                }
                try await Task.sleep(for: .milliseconds(50))
            default:
                return lock  // ENOLCK, EOPNOTSUPP: no locks here
            }
        }
        let me = "\(getpid()) \(ProcessInfo.processInfo.processName)\n"
        _ = ftruncate(fd, 0)
        _ = me.withCString { pwrite(fd, $0, strlen($0), 0) }
        return lock
    }

    /// Lets the next process in. Closing (or the process ending) does the same.
    public func release() {
        guard held.exchange(false, ordering: .relaxed) else { return }
        _ = ftruncate(fd, 0)
        _ = flock(fd, LOCK_UN)
    }

    /// What the holder wrote: "PID PROGRAM".
    func holder() -> Holder {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        let text = n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : ""
        let fields = text.split(separator: "\n").first?.split(separator: " ", maxSplits: 1) ?? []
        return Holder(program: fields.count > 1 ? String(fields[1]) : nil, pid: fields.first.flatMap { Int32($0) })
    }
}

extension Duration {
    /// Whole seconds, for messages.
    var seconds: Int64 { components.seconds }
}
