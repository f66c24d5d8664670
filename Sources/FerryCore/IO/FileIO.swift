import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The blocking file I/O every part of Ferry goes through: whole reads and writes that
/// retry on `EINTR`, fsync of a file and of a directory, opens that never leak a descriptor
/// into a child process. Failures are `SystemCallError`s named by the caller's `call`, which
/// is only built when a call fails (the hot paths pass one per chunk).
///
/// Reads, writes and opens go through swift-system's `FileDescriptor`, which retries a call
/// interrupted by a signal (`retryOnInterrupt` defaults to true). swift-system has no
/// `fsync`, so `sync` calls it here, with the same retry. Descriptors stay plain `Int32`s
/// at this layer's edge because most of ours come from calls swift-system does not wrap
/// (`openat` under a directory descriptor, `O_TMPFILE`, `fdopendir`).
public enum FileIO {
    /// Opens `path` with `flags` (an access mode and options; `O_CLOEXEC` is always added)
    /// and, when `flags` has `O_CREAT`, `mode`. Returns the descriptor; the caller closes it.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0, call: @autoclosure () -> String) throws(SystemCallError) -> Int32 {
        let access = FileDescriptor.AccessMode(rawValue: flags & O_ACCMODE)
        let options = FileDescriptor.OpenOptions(rawValue: (flags & ~O_ACCMODE) | O_CLOEXEC)
        let permissions = flags & O_CREAT != 0 ? FilePermissions(rawValue: mode) : nil
        return try systemCall(call()) { try FileDescriptor.open(path, access, options: options, permissions: permissions).rawValue }
    }

    /// Reads from `fd`'s offset until `buffer` is full or the file ends; returns the bytes read.
    public static func readFully(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, call: @autoclosure () -> String) throws(SystemCallError) -> Int {
        let file = FileDescriptor(rawValue: fd)
        return try fill(buffer, call: call()) { try file.read(into: $0) }
    }

    /// Reads from `offset` on (`pread`, leaving `fd`'s offset alone) until `buffer` is full
    /// or the file ends; returns the bytes read.
    public static func readFully(_ fd: Int32, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer, call: @autoclosure () -> String) throws(SystemCallError) -> Int {
        let file = FileDescriptor(rawValue: fd)
        var done = 0
        return try fill(buffer, call: call()) { part in
            let n = try file.read(fromAbsoluteOffset: offset + Int64(done), into: part)
            done += n
            return n
        }
    }

    /// One `read` into `buffer` (retried if interrupted); 0 at the end of the file.
    public static func readSome(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, call: @autoclosure () -> String) throws(SystemCallError) -> Int {
        try systemCall(call()) { try FileDescriptor(rawValue: fd).read(into: buffer) }
    }

    /// One `write` of `bytes` (retried if interrupted); returns how many were written, which
    /// may be fewer.
    public static func writeSome(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, call: @autoclosure () -> String) throws(SystemCallError) -> Int {
        try systemCall(call()) { try FileDescriptor(rawValue: fd).write(bytes) }
    }

    /// Writes all of `bytes` at `fd`'s offset, however many calls it takes.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, call: @autoclosure () -> String) throws(SystemCallError) {
        let file = FileDescriptor(rawValue: fd)
        try drain(bytes, call: call()) { try file.write($0) }
    }

    /// `fsync`s `fd`: its data and metadata are on disk when this returns.
    public static func sync(_ fd: Int32, call: @autoclosure () -> String) throws(SystemCallError) {
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw SystemCallError(call(), errno: errno)
        }
    }

    /// fsyncs the directory at `path`, so a create or rename inside it survives a power cut.
    /// Fails as `"open directory <path>"` or `"sync directory <path>"`.
    public static func syncDirectory(_ path: String) throws(SystemCallError) {
        let fd = try open(path, O_RDONLY | O_DIRECTORY, call: "open directory \(path)")
        defer { close(fd) }
        try sync(fd, call: "sync directory \(path)")
    }

    /// Fills `buffer` by calling `readSome` on what is left of it until it is full or
    /// `readSome` returns 0; returns the bytes read. `readSome` throws an `Errno`.
    static func fill(
        _ buffer: UnsafeMutableRawBufferPointer, call: @autoclosure () -> String, _ readSome: (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws(SystemCallError) -> Int {
        var total = 0
        while total < buffer.count {
            let n = try systemCall(call()) { try readSome(UnsafeMutableRawBufferPointer(rebasing: buffer[total...])) }
            if n == 0 { break }
            total += n
        }
        return total
    }

    /// Hands what is left of `bytes` to `writeSome` until it has taken all of them.
    /// `writeSome` throws an `Errno`.
    static func drain(_ bytes: UnsafeRawBufferPointer, call: @autoclosure () -> String, _ writeSome: (UnsafeRawBufferPointer) throws -> Int) throws(SystemCallError) {
        var offset = 0
        while offset < bytes.count {
            offset += try systemCall(call()) { try writeSome(UnsafeRawBufferPointer(rebasing: bytes[offset...])) }
        }
    }

    /// Runs a swift-system call, turning the `Errno` it throws into a `SystemCallError`.
    private static func systemCall<Result>(_ call: @autoclosure () -> String, _ body: () throws -> Result) throws(SystemCallError) -> Result {
        do {
            return try body()
        } catch let error as Errno {
            throw SystemCallError(call(), errno: error.rawValue)
        } catch {
            throw SystemCallError(call(), errno: EIO)  // swift-system throws nothing but Errno
        }
    }
}
