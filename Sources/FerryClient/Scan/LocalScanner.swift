import FerryCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One local entry as `lstat` sees it. Symlinks are links (never followed).
public struct LocalFile: Sendable, Equatable {
    public var path: String
    public var kind: EntryKind
    public var size: Int64
    public var mtimeNs: Int64
    public var inode: UInt64
    /// Permission bits (`st_mode & 0o777`): setuid, setgid and sticky bits are not synced.
    public var mode: Int32
    public var target: String?
    /// The inode's change time: moved by every write and by every `utimes`, and settable by
    /// no program. It catches an edit that keeps size and mtime (`touch -r`, `cp -p`, a
    /// backup restore, an editor that preserves times), which mtime alone misses.
    public var ctimeNs: Int64 = 0

    /// Same identity as when last seen: the cheap test that decides whether to re-hash.
    public func sameStat(size: Int64, mtimeNs: Int64, inode: UInt64, ctimeNs: Int64) -> Bool {
        self.size == size && self.mtimeNs == mtimeNs && self.inode == inode && self.ctimeNs == ctimeNs
    }
}

/// A local entry with its content identity: hashed files carry their manifest.
public struct LocalState: Sendable, Equatable {
    public var file: LocalFile
    public var sha256: ContentHash?
    public var chunks: [ChunkRef]

    public var path: String { file.path }
    public var kind: EntryKind { file.kind }
}

/// What a walk of a folder found.
public struct ScanResult: Sendable {
    public var entries: [String: LocalFile] = [:]
    /// Per path: why it cannot be synced (unreadable, a name the protocol refuses…).
    public var problems: [String: String] = [:]
    /// Directories that could not be listed: their synced contents must not look deleted.
    public var unreadableDirectories: Set<String> = []
    /// Downloads an earlier pass left unfinished (kept so the next one resumes), by path,
    /// with their mtime in ns: never synced, swept once stale.
    public var partialDownloads: [String: Int64] = [:]
}

/// The full walk of a folder: `opendir`/`readdir`/`lstat`, no symlink followed, ignored
/// paths skipped (ignored directories are not entered).
public enum LocalScanner {
    /// The folder's marker and state directory (SPEC §6), never synced.
    public static let markerName = ".ferry"

    /// The folder's root and its `.ferry/` marker must both be there; otherwise nothing is
    /// done at all (an unmounted disk must not look like a folder whose files were deleted).
    static func checkRoot(_ root: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ClientError.folderUnavailable("folder \(root) is missing (renamed, deleted or on a disk that is not mounted); nothing was synced or deleted")
        }
        guard FileManager.default.fileExists(atPath: root + "/" + markerName, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ClientError.folderUnavailable("folder \(root) has lost its .ferry marker (is this the right disk?); nothing was synced or deleted — restore it or run 'ferry folder add' again")
        }
    }
    /// Downloads are written beside their target under this prefix, then renamed.
    public static let partialPrefix = ".ferry-partial-"

    /// `found` is called with each entry as it is taken into the result (on the walking
    /// thread), so work on it can start before the walk ends.
    ///
    /// Each directory is opened through `FolderFS` (never through a link) from its parent's
    /// descriptor, not walked to from the root again, and its entries are looked at relative
    /// to its own. A directory waiting to be listed keeps its parent open: depth-first, that
    /// is the current directory's ancestors, so the descriptors held stay bounded by depth.
    public static func scan(root: String, rules: IgnoreRules, found: (LocalFile) -> Void = { _ in }) -> ScanResult {
        var result = ScanResult()
        walk(FolderFS(root: root), from: [(nil, "")], rules: rules, into: &result, found: found)
        return result
    }

    /// The walk of a scoped pass (`PassScope`): each of `paths` (none beneath another) as
    /// the full walk would find it, and a directory's subtree. A path that is gone, or
    /// beneath something that is not a directory, is simply not found; one beneath a
    /// directory that cannot be opened marks that directory unreadable, as the full walk does.
    public static func scan(root: String, rules: IgnoreRules, paths: [String], found: (LocalFile) -> Void = { _ in }) -> ScanResult {
        var result = ScanResult()
        let fs = FolderFS(root: root)
        var pending: [(parent: FolderFS.Directory?, name: String)] = []
        for path in paths {
            if path.isEmpty {
                pending.append((nil, ""))
                continue
            }
            if path == markerName || path.hasPrefix(markerName + "/") { continue }
            let (parentPath, _) = FolderFS.split(path)
            // An ignored directory above: the full walk never enters it.
            if !parentPath.isEmpty, rules.isIgnored(parentPath, isDirectory: true) { continue }
            let directory: FolderFS.Directory, name: String
            do {
                (directory, name) = try fs.parent(of: path)
            } catch let failure as SystemCallError where failure.errno != ENOENT {
                result.unreadableDirectories.insert(parentPath)
                result.problems[parentPath] = "cannot list this directory: \(String(cString: strerror(failure.errno)))"
                continue
            } catch {
                continue  // gone, or beneath a file or link
            }
            guard let file = admit(name, in: directory, rules: rules, into: &result) else { continue }
            found(file)
            if file.kind == .directory { pending.append((directory, name)) }
        }
        walk(fs, from: pending, rules: rules, into: &result, found: found)
        return result
    }

    /// Lists the pending directories and everything beneath them, depth-first.
    private static func walk(_ fs: FolderFS, from start: [(parent: FolderFS.Directory?, name: String)], rules: IgnoreRules,
                             into result: inout ScanResult, found: (LocalFile) -> Void) {
        var pending = start
        while let (parent, name) = pending.popLast() {
            let relative = parent?.child(name) ?? ""
            let directory: FolderFS.Directory
            let listing: OpaquePointer?
            do {
                directory = try parent?.subdirectory(name) ?? fs.directory("")
                listing = fdopendir(dup(directory.fd))
                if listing == nil { throw SystemCallError("list \(relative)", errno: errno) }
            } catch {
                if !relative.isEmpty {
                    result.unreadableDirectories.insert(relative)
                    let reason = (error as? SystemCallError).map { String(cString: strerror($0.errno)) } ?? "\(error)"
                    result.problems[relative] = "cannot list this directory: \(reason)"
                }
                continue
            }
            guard let dir = listing else { continue }
            defer { closedir(dir) }
            while let item = readdir(dir) {
                let name = DirectoryEntry.name(of: item)
                guard let name else {
                    result.problems[relative.isEmpty ? "?" : relative + "/?"] = "a name in this directory is not valid UTF-8; rename it to sync it"
                    continue
                }
                if name == "." || name == ".." { continue }
                if relative.isEmpty && name == markerName { continue }
                guard let file = admit(name, in: directory, rules: rules, into: &result) else { continue }
                found(file)
                if file.kind == .directory { pending.append((directory, name)) }
            }
        }
    }

    /// `name` in `directory` as a walk takes it: recorded in `result` and returned, or nil
    /// when it is not synced (gone, a partial download, ignored, or a name the server
    /// refuses, which is reported).
    private static func admit(_ name: String, in directory: FolderFS.Directory, rules: IgnoreRules, into result: inout ScanResult) -> LocalFile? {
        let path = directory.child(name)
        guard let file = directory.status(name) else {
            if errno != ENOENT { result.problems[path] = "cannot read: \(String(cString: strerror(errno)))" }
            return nil
        }
        if file.kind == .file && name.hasPrefix(partialPrefix) {
            result.partialDownloads[path] = file.mtimeNs
            return nil
        }
        if rules.ignoresEntry(path, isDirectory: file.kind == .directory) { return nil }
        do {
            let checked = try FerryPath(path)
            guard checked.string == path else {
                result.problems[path] = "the name is not in Unicode NFC form; rename it to sync it"
                return nil
            }
        } catch {
            result.problems[path] = "the server refuses this name: \(error)"
            return nil
        }
        result.entries[path] = file
        return file
    }

    /// `lstat` of `root/path` as a `LocalFile`, or nil (errno set) when it is gone, unreadable
    /// or beneath something that is not a directory (no link on the way is followed).
    public static func stat(root: String, path: String) -> LocalFile? {
        do {
            if path.isEmpty {
                var st = Glibc.stat()
                guard lstat(root, &st) == 0 else { return nil }
                return LocalFile(path: "", stat: st, target: nil)
            }
            let (directory, name) = try FolderFS(root: root).parent(of: path)
            return directory.status(name)
        } catch let failure as SystemCallError {
            errno = failure.errno
        } catch {
            errno = ENOTDIR
        }
        return nil
    }

    /// Hashes a file and checks it did not change while being read (same size, mtime, inode
    /// and change time after as before): a file being written is never committed torn.
    public static func hash(root: String, file: LocalFile, onChunk: ((ChunkRef, Int64) -> Void)? = nil) throws -> LocalState? {
        try hashKeepingContent(root: root, file: file, onChunk: onChunk)?.state
    }

    /// `hash`, and the bytes it hashed when the file was small enough to be read in one
    /// piece (see `ContentChunker.manifest`): they are the file's content as the returned
    /// state describes it, checked unchanged like the hash.
    ///
    /// The file is opened through `FolderFS` and checked on the open descriptor before and
    /// after reading: what is read is the file the walk found, never one a link leads to.
    public static func hashKeepingContent(root: String, file: LocalFile, onChunk: ((ChunkRef, Int64) -> Void)? = nil) throws
        -> (state: LocalState, content: ArraySlice<UInt8>?)? {
        let fd: Int32
        do {
            fd = try FolderFS(root: root).open(file.path, flags: O_RDONLY)
        } catch let failure as SystemCallError where failure.errno == ELOOP {
            return nil  // it became a link since the walk: the next one sees it
        } catch is FolderFS.NotADirectory {
            return nil
        }
        defer { close(fd) }
        func unchanged() -> Bool {
            var st = Glibc.stat()
            guard fstat(fd, &st) == 0, let now = LocalFile(path: file.path, stat: st, target: nil) else { return false }
            return now.sameStat(size: file.size, mtimeNs: file.mtimeNs, inode: file.inode, ctimeNs: file.ctimeNs)
        }
        guard unchanged() else { return nil }
        var content: ArraySlice<UInt8>?
        let manifest = try ContentChunker.manifest(ofFileDescriptor: fd, onChunk: onChunk) { content = $0 }
        guard unchanged(), manifest.size == file.size else { return nil }
        return (LocalState(file: file, sha256: manifest.sha256, chunks: manifest.chunks), content)
    }
}
