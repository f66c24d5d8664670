#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CFerrySystem
import FerryCore

/// The blob store's file-system helpers: `FileIO`'s calls and a few more, failing as
/// `BlobError`s (a full disk as `.outOfSpace`, so the API answers 507).
enum Posix {
    static func blobError(_ what: String, _ code: Int32) -> BlobError {
        if code == ENOSPC || code == EDQUOT { return .outOfSpace }
        return .io("\(what): \(String(cString: strerror(code)))")
    }

    /// Runs `FileIO` calls, reporting a `SystemCallError` as `blobError` does.
    static func blob<Result>(_ body: () throws -> Result) throws -> Result {
        do {
            return try body()
        } catch let error as SystemCallError {
            throw blobError(error.call, error.errno)
        }
    }

    /// Writes all of `bytes` at `fd`'s offset.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        try blob { try FileIO.writeAll(fd, bytes, call: "write") }
    }

    /// fsyncs a directory so a rename or create inside it survives a power cut.
    static func syncDirectory(_ path: String) throws {
        try blob { try FileIO.syncDirectory(path) }
    }

    /// Flushes the whole file system holding `path` (data and metadata): one call instead of
    /// an fsync per file and directory of a batch.
    static func syncFileSystem(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw blobError("open directory \(path)", errno) }
        defer { close(fd) }
        guard ferry_syncfs(fd) == 0 else { throw blobError("sync file system of \(path)", errno) }
    }

    /// Creates a directory if missing; with `durable`, syncs its parent after creating it.
    static func makeDirectory(_ path: String, durable: Bool) throws {
        if mkdir(path, 0o700) == 0 {
            if durable, let slash = path.lastIndex(of: "/") {
                try syncDirectory(slash == path.startIndex ? "/" : String(path[..<slash]))
            }
        } else if errno != EEXIST {
            throw blobError("create directory \(path)", errno)
        }
    }

    static func listDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw blobError("open directory \(path)", errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = DirectoryEntry.lossyName(of: entry)
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func freeBytes(at path: String) throws -> Int64 {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { throw blobError("statvfs \(path)", errno) }
        return Int64(s.f_bavail) * Int64(s.f_frsize)
    }

    /// 128 random bits as hex, for unguessable temporary names.
    static func randomToken() -> String {
        var g = SystemRandomNumberGenerator()
        return String(g.next() as UInt64, radix: 16) + String(g.next() as UInt64, radix: 16)
    }
}
