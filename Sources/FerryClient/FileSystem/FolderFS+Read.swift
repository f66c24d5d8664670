import FerryCore
import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

extension FolderFS {
    /// `size` bytes of the file at `absolute` from `offset`, or nil when it is gone or shorter.
    static func readRange(_ absolute: String, offset: Int64, size: Int64) throws -> ByteBuffer? {
        var buffer = ByteBuffer()
        let (directory, name) = FolderFS.split(absolute)
        return try readRange(root: directory, path: name, offset: offset, size: size, appendingTo: &buffer) ? buffer : nil
    }

    /// Appends `size` bytes of the file at `path` in the folder `root` from `offset` to
    /// `buffer`, opened through `FolderFS`. False, with `buffer` as it was, when the file is
    /// gone, shorter, or beneath something that is no longer a directory.
    /// With `accepting`, the opened file must also pass it (checked on the descriptor, so it
    /// is the file read), or nothing is read.
    static func readRange(root: String, path: String, offset: Int64, size: Int64, appendingTo buffer: inout ByteBuffer,
                          accepting: ((LocalFile) -> Bool)? = nil) throws -> Bool {
        guard size >= 0, offset >= 0 else { return false }
        let fd: Int32
        do { fd = try FolderFS(root: root).open(path, flags: O_RDONLY) } catch let failure as SystemCallError where failure.errno == ENOENT || failure.errno == ELOOP {
            return false
        } catch is FolderFS.NotADirectory {
            return false
        }
        defer { close(fd) }
        if let accepting {
            var st = Glibc.stat()
            guard fstat(fd, &st) == 0, let opened = LocalFile(path: path, stat: st, target: nil), accepting(opened) else { return false }
        }
        let start = buffer.writerIndex
        let wanted = Int(size)
        let read = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: wanted) { raw in
            try FileIO.readFully(fd, at: offset, into: UnsafeMutableRawBufferPointer(rebasing: raw[..<wanted]), call: "read \(path)")
        }
        guard read == wanted else {
            buffer.moveWriterIndex(to: start)
            return false
        }
        return true
    }
}
