import Foundation
import Synchronization

/// The folder loops a daemon runs now, one task each, started and stopped as its
/// configuration changes (`ferry folder add` or `remove`, or an edited config file), so a
/// running `ferryd` follows the folder list without a restart. Used from the daemon's run
/// loop alone, which owns every task here and cancels and awaits them before it returns.
final class FolderLoops {
    private var running: [String: (folder: FolderConfig, task: Task<Void, Never>)] = [:]

    /// The folders being synced, by path.
    var paths: [String] { running.keys.sorted() }

    /// Makes the running loops those of `wanted`: stops the loops of folders no longer
    /// listed or whose settings changed (waiting until each has ended, so nothing of theirs
    /// still writes when this returns), then starts the new ones with `start`.
    /// Returns the paths started and stopped.
    @discardableResult
    func apply(_ wanted: [FolderConfig], start: (FolderConfig) -> Task<Void, Never>) async -> (started: [String], stopped: [String]) {
        let keep = Dictionary(wanted.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        var stopped: [String] = []
        for (path, loop) in running where keep[path] != loop.folder {
            loop.task.cancel()
            await loop.task.value
            running[path] = nil
            stopped.append(path)
        }
        var started: [String] = []
        for folder in wanted where running[folder.path] == nil {
            running[folder.path] = (folder, start(folder))
            started.append(folder.path)
        }
        return (started, stopped)
    }

    /// Stops every loop and waits for each to end.
    func stopAll() async {
        await apply([]) { _ in Task {} }
    }
}

/// Tells when a file was replaced or rewritten, by its inode, size and modification time:
/// `ferry` saves the config by renaming a new file over it, and an editor may rewrite it in
/// place.
struct FileIdentity: Equatable {
    let inode: UInt64
    let size: Int64
    let mtimeNs: Int64

    /// The file's identity now; nil when it cannot be read.
    init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        mtimeNs = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
    }
}

/// The config file as the daemon last read it. A reload on the control socket reads it, so
/// the two-second watch does not read it again for the same change (`ferry folder add`
/// saves, then asks for a reload: one read, not two).
final class ConfigFileWatch: Sendable {
    let path: String
    private let read: Mutex<FileIdentity?>

    /// Starts from the file as it is now, which the daemon was started with.
    init(path: String) {
        self.path = path
        read = Mutex(FileIdentity(path: path))
    }

    /// Called just before the file is read. A change made between this and the read is
    /// seen once more by `changedSinceRead`, never missed.
    func markRead() {
        let now = FileIdentity(path: path)
        read.withLock { $0 = now }
    }

    /// Whether the file changed since it was last read; a change is reported once.
    func changedSinceRead() -> Bool {
        let now = FileIdentity(path: path)
        return read.withLock { last in
            guard now != last else { return false }
            last = now
            return true
        }
    }
}
