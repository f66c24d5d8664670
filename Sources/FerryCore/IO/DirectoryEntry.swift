#if canImport(Glibc)
import Glibc
#endif

/// Reading the names `readdir` returns without reading past them.
///
/// `entry.pointee.d_name` copies the field's whole 256 bytes, but glibc packs the records
/// into one buffer and a record is only as long as its name. For the last record of a full
/// buffer the copy reads past the buffer's end, and when that end is the end of a heap
/// mapping the process dies in `memmove` (a CI run did, listing a folder of numbered files).
/// These read the name in place, up to its terminating zero.
public enum DirectoryEntry {
    /// The byte offset of `d_name` inside a `dirent` record.
    private static let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!

    /// Calls `body` with the bytes of the record's name (without its terminating zero).
    public static func withName<Result>(
        of entry: UnsafePointer<dirent>, _ body: (UnsafeBufferPointer<UInt8>) throws -> Result
    ) rethrows -> Result {
        let start = UnsafeRawPointer(entry).advanced(by: nameOffset).assumingMemoryBound(to: UInt8.self)
        return try body(UnsafeBufferPointer(start: start, count: strlen(start)))
    }

    /// The record's name, or nil when it is not valid UTF-8.
    public static func name(of entry: UnsafePointer<dirent>) -> String? {
        withName(of: entry) { String(validating: $0, as: UTF8.self) }
    }

    /// The record's name, invalid UTF-8 replaced (for listings that only compare or skip names).
    public static func lossyName(of entry: UnsafePointer<dirent>) -> String {
        withName(of: entry) { String(decoding: $0, as: UTF8.self) }
    }
}
