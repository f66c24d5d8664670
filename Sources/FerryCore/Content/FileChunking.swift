#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An error from a system call, with the call's name and `errno`.
public struct SystemCallError: Error, Sendable, CustomStringConvertible, Equatable {
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call) failed: \(String(cString: strerror(errno)))" }
}

extension ContentChunker {
    /// Chunks and hashes a whole file in one sequential read with one reusable buffer.
    /// Blocking: call it from a thread pool, never an event loop.
    public static func manifest(
        ofFileAt path: String,
        parameters: ChunkerParameters = .v1,
        bufferSize: Int = 1 << 20
    ) throws -> ContentManifest {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError("open", errno: errno) }
        defer { close(fd) }
        var chunker = ContentChunker(parameters: parameters)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress, bufferSize)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemCallError("read", errno: errno)
            }
            if n == 0 { break }
            chunker.update(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
        }
        return chunker.finish()
    }
}
