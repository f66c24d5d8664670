import FerryCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A synced folder's tree, reached one component at a time. Every directory below the root
/// is opened from its parent with `openat(O_DIRECTORY | O_NOFOLLOW)`, and every entry is
/// looked at, opened, created, renamed or removed relative to its directory's descriptor.
/// So a symbolic link (or a file) standing where a directory should be stops the walk with
/// `NotADirectory`: nothing Ferry writes, renames, unlinks or reads in the folder ever goes
/// through a link to somewhere else, whatever a server or another device put in the library.
///
/// These calls stay on Glibc rather than swift-system's `FileDescriptor`, which opens only
/// by path (no `openat`, `mkdirat`, `renameat`, `fdopendir`); reads, writes and fsyncs of
/// what they open go through `FileIO`.
public struct FolderFS: Sendable {
    /// The folder's root, absolute. It is the user's choice, so it may itself be a link.
    public let root: String

    public init(root: String) { self.root = root }

    /// An ancestor of a path that is not a real directory here.
    public struct NotADirectory: Error, CustomStringConvertible, Equatable {
        /// The ancestor, relative to the folder's root.
        public let path: String
        /// What is there instead.
        public let kind: EntryKind?

        public var description: String {
            let what = switch kind {
            case .symlink: "a symbolic link"
            case .file: "a file"
            default: "something else"
            }
            return "'\(path)' is not a directory here (it is \(what)); nothing beneath it is synced until it is one"
        }
    }

    /// The process's umask, read once. Reading it with `umask(2)` means setting it, which
    /// would race the other threads' creates, so it comes from /proc.
    public static let processUmask: mode_t = {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        if let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Umask:") }),
           let value = mode_t(line.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8) {
            return value
        }
        let mask = umask(0o022)
        umask(mask)
        return mask
    }()

    /// The permission bits an entry made from a server version gets: no setuid, setgid or
    /// sticky bit, and nothing the umask takes away.
    public static func localMode(_ mode: Int32) -> mode_t { mode_t(truncatingIfNeeded: mode) & 0o777 & ~processUmask }

    /// The directory `relative` ("" is the root). With `create`, missing directories on the
    /// way are made (0o777 less the umask); a link or file on the way is `NotADirectory`.
    public func directory(_ relative: String, create: Bool = false) throws -> Directory {
        let fd = Glibc.open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError("open \(root)", errno: errno) }
        var current = Directory(fd: fd, path: "")
        for name in relative.split(separator: "/") {
            current = try current.subdirectory(String(name), create: create)
        }
        return current
    }

    /// The directory holding `path`, and the name of `path` in it.
    public func parent(of path: String, create: Bool = false) throws -> (directory: Directory, name: String) {
        let (parent, name) = Self.split(path)
        return (try directory(parent, create: create), name)
    }

    /// Opens the file at `path` without following a link anywhere on the way. The caller closes it.
    public func open(_ path: String, flags: Int32) throws -> Int32 {
        let (directory, name) = try parent(of: path)
        return try directory.open(name, flags: flags)
    }

    /// `path`'s parent directory ("" at the root) and last component.
    public static func split(_ path: String) -> (parent: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        return (String(path[..<slash]), String(path[path.index(after: slash)...]))
    }

    /// One open directory of the folder, closed when the last reference to it goes.
    public final class Directory {
        public let fd: Int32
        /// Relative to the folder's root ("" for the root).
        public let path: String

        init(fd: Int32, path: String) {
            self.fd = fd
            self.path = path
        }

        deinit { Glibc.close(fd) }

        static let directoryFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC

        /// `name` inside this directory, relative to the folder's root.
        public func child(_ name: String) -> String { path.isEmpty ? name : path + "/" + name }

        /// The directory `name` in this one; see `FolderFS.directory`.
        public func subdirectory(_ name: String, create: Bool = false) throws -> Directory {
            var fd = openat(self.fd, name, Self.directoryFlags)
            if fd < 0, errno == ENOENT, create {
                guard mkdirat(self.fd, name, 0o777) == 0 || errno == EEXIST else { throw SystemCallError("mkdir \(child(name))", errno: errno) }
                fd = openat(self.fd, name, Self.directoryFlags)
            }
            guard fd >= 0 else {
                let code = errno
                if code == ELOOP || code == ENOTDIR { throw NotADirectory(path: child(name), kind: status(name)?.kind) }
                throw SystemCallError("open \(child(name))", errno: code)
            }
            return Directory(fd: fd, path: child(name))
        }

        /// `lstat` of `name` as a `LocalFile`, or nil (errno set) when it is gone or unreadable.
        public func status(_ name: String) -> LocalFile? {
            var st = Glibc.stat()
            guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return nil }
            var target: String?
            if st.st_mode & S_IFMT == S_IFLNK {
                var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlinkat(fd, name, &buffer, buffer.count - 1)
                guard n >= 0 else { return nil }
                target = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            guard let file = LocalFile(path: child(name), stat: st, target: target) else {
                errno = EINVAL  // sockets, FIFOs, devices: not synced
                return nil
            }
            return file
        }

        /// Opens the file `name` (never through a link); the caller closes the descriptor.
        public func open(_ name: String, flags: Int32, mode: mode_t = 0o600) throws -> Int32 {
            let fd = openat(self.fd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode)
            guard fd >= 0 else { throw SystemCallError("open \(child(name))", errno: errno) }
            return fd
        }

        public func makeDirectory(_ name: String, mode: mode_t) throws {
            guard mkdirat(fd, name, mode) == 0 else { throw SystemCallError("mkdir \(child(name))", errno: errno) }
        }

        public func makeLink(_ name: String, target: String) throws {
            guard symlinkat(target, fd, name) == 0 else { throw SystemCallError("symlink \(child(name))", errno: errno) }
        }

        /// Renames `from` to `to`, both in this directory, replacing `to` if it is there.
        public func rename(_ from: String, to: String) throws {
            guard renameat(fd, from, fd, to) == 0 else { throw SystemCallError("rename \(child(from))", errno: errno) }
        }

        /// Removes the entry `name` (an empty directory with `isDirectory`); the link itself
        /// when it is one. Returns 0 or the errno.
        @discardableResult
        public func remove(_ name: String, isDirectory: Bool = false) -> Int32 {
            unlinkat(fd, name, isDirectory ? AT_REMOVEDIR : 0) == 0 ? 0 : errno
        }

        /// Makes the creates, renames and removes in this directory durable. Best effort:
        /// some file systems refuse.
        public func sync() { _ = fsync(fd) }
    }
}

extension LocalFile {
    /// The entry `stat` describes, at `path`; nil for what is not synced (sockets, FIFOs, devices).
    init?(path: String, stat st: Glibc.stat, target: String?) {
        let kind: EntryKind
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .file
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        default: return nil
        }
        self.init(path: path, kind: kind, size: kind == .file ? Int64(st.st_size) : 0,
                  mtimeNs: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec), inode: UInt64(st.st_ino),
                  mode: Int32(st.st_mode & 0o777), target: target,
                  ctimeNs: Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec))
    }
}
