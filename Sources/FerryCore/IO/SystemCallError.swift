#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An error from a system call, with the call's name and `errno`.
public struct SystemCallError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What was being done, as the message shows it (`"read"`, `"write /path/to/file"`).
    public let call: String
    /// The `errno` the call set.
    public let errno: Int32

    /// An error for `call` failing with `errno`.
    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// Whether the call failed for want of space (`ENOSPC`, or `EDQUOT` past a quota).
    public var isOutOfSpace: Bool { errno == ENOSPC || errno == EDQUOT }

    /// `"<call> failed: <strerror(errno)>"`.
    public var description: String { "\(call) failed: \(String(cString: strerror(errno)))" }
}
