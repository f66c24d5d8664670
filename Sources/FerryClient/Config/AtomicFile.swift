import FerryCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Whole-file replacement that never leaves a torn file: write a temp file beside the
/// target, fsync it, rename it over the target, fsync the directory.
///
/// The client's alone: the server's blob store stages streamed uploads and makes a batch of
/// renames durable with one `syncfs`, a different shape from this one-shot replacement.
public enum AtomicFile {
    /// Replaces the file at `path` with `data`, created with permissions `mode`; creates the
    /// directory (0700) if missing.
    public static func write(_ data: Data, to path: String, mode: mode_t) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let temp = directory + "/.ferry-partial-\(UUID().uuidString)"
        let fd = try FileIO.open(temp, O_WRONLY | O_CREAT | O_EXCL, mode: mode, call: "open \(temp)")
        var ok = false
        defer { if !ok { unlink(temp) } }
        do {
            try data.withUnsafeBytes { try FileIO.writeAll(fd, $0, call: "write \(temp)") }
            guard fchmod(fd, mode) == 0 else { throw SystemCallError("fsync \(temp)", errno: errno) }
            try FileIO.sync(fd, call: "fsync \(temp)")
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        guard rename(temp, path) == 0 else { throw SystemCallError("rename \(temp)", errno: errno) }
        ok = true
        fsyncDirectory(directory)
    }

    /// Makes a rename or create in `directory` durable. Best effort: some file systems refuse.
    public static func fsyncDirectory(_ directory: String) {
        try? FileIO.syncDirectory(directory)
    }
}
