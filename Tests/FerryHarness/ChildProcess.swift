import CFerrySystem
import FerryCore
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Child programs for the tests and benchmarks (the real server, daemons, the CLI, nginx,
/// `cp`), started with `posix_spawn`.
///
/// Not Foundation's `Process`: on Linux its `run()` looks for the highest open descriptor by
/// listing /proc/self/fd, and copies each entry's `d_name` whole (256 bytes) out of glibc's
/// `readdir` buffer, past the entry's end. When the last entry sits at the end of a heap
/// mapping the copy faults: a CI run of the suite died so (SIGSEGV in `memcpy` under
/// `findMaximumOpenFromProcSelfFD`, with some 1,360 descriptors open). It is the bug
/// `DirectoryEntry` keeps out of our own listings. Here glibc closes every descriptor above 2
/// in the child (`posix_spawn_file_actions_addclosefrom_np`, through CFerrySystem), and nothing lists anything.
public enum Child {
    /// Starts `executable` with its standard streams opened on the given files (output files
    /// are created or truncated), every other descriptor closed, an empty signal mask and
    /// default signal handling. `environment` is the child's whole environment.
    public static func spawn(_ executable: String, _ arguments: [String], stdin: String = "/dev/null", stdout: String = "/dev/null",
                             stderr: String = "/dev/null", environment: [String: String] = ProcessInfo.processInfo.environment) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard ferry_spawn_close_from(&actions, 3) == 0 else { throw SystemCallError("posix_spawn_file_actions_addclosefrom_np", errno: errno) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard spawned == 0 else { throw SystemCallError("posix_spawn \(executable)", errno: spawned) }
        return pid
    }

    /// This process's environment with `additions` put in.
    public static func inherited(adding additions: [String: String]) -> [String: String] {
        ProcessInfo.processInfo.environment.merging(additions) { $1 }
    }

    /// Waits for `pid` to end and says how it did.
    public static func wait(for pid: pid_t) throws -> Termination {
        // Without WNOHANG, waitpid returns the pid or fails.
        try reap(pid, options: 0)!
    }

    /// How `pid` ended, reaping it, or nil while it runs.
    public static func ended(_ pid: pid_t) throws -> Termination? {
        try reap(pid, options: WNOHANG)
    }

    private static func reap(_ pid: pid_t, options: Int32) throws -> Termination? {
        var status: Int32 = 0
        while true {
            let reaped = waitpid(pid, &status, options)
            if reaped == pid { break }
            if reaped == 0 { return nil }
            guard errno == EINTR else { throw SystemCallError("waitpid", errno: errno) }
        }
        return (status & 0x7f) == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
    }

    /// How a child ended.
    public enum Termination: Equatable, Sendable {
        case exited(Int32)
        case signalled(Int32)

        /// As a shell reports it: the exit code, or 128 + the signal.
        public var status: Int32 {
            switch self {
            case .exited(let code): code
            case .signalled(let signal): 128 + signal
            }
        }
    }
}

/// A started child that knows whether it has been reaped, so a signal never reaches another
/// process that was given its pid afterwards.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    private let ended = Mutex<Child.Termination?>(nil)

    /// Starts `executable` (see `Child.spawn`).
    public init(_ executable: String, _ arguments: [String] = [], stdin: String = "/dev/null", stdout: String = "/dev/null",
                stderr: String = "/dev/null", environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        pid = try Child.spawn(executable, arguments, stdin: stdin, stdout: stdout, stderr: stderr, environment: environment)
    }

    /// Whether it still runs (reaping it when it has ended).
    public var isRunning: Bool {
        ended.withLock { ended in
            if ended == nil { ended = try? Child.ended(pid) }
            return ended == nil
        }
    }

    /// Sends `number` unless it has been reaped.
    public func signal(_ number: Int32) {
        ended.withLock { ended in
            if ended == nil { _ = kill(pid, number) }
        }
    }

    /// SIGTERM: the program's own shutdown.
    public func terminate() { signal(SIGTERM) }

    /// Waits for it to end and says how it did. (The only other reaper is `isRunning`, under
    /// the same lock; `waitpid` fails only when something else in the process reaped it.)
    @discardableResult
    public func wait() throws -> Child.Termination {
        try ended.withLock { ended in
            if let ended { return ended }
            let termination = try Child.wait(for: pid)
            ended = termination
            return termination
        }
    }

    /// Stops it (`number`, SIGTERM by default) and waits for it, if it still runs.
    @discardableResult
    public func stop(_ number: Int32 = SIGTERM) throws -> Child.Termination {
        signal(number)
        return try wait()
    }
}
