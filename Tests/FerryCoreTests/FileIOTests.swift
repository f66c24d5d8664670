import Dispatch
import Foundation
import Synchronization
import SystemPackage
import Testing

@testable import FerryCore

#if canImport(Glibc)
import Glibc
#endif

/// Signals the interrupt test's handler has taken.
private let signalsHandled = Atomic<Int>(0)

@Suite("File I/O")
struct FileIOTests {
    /// A read blocked on an empty pipe is interrupted by a signal whose handler is installed
    /// without `SA_RESTART`, so the kernel returns `EINTR` instead of restarting it; the read
    /// must go on and return the bytes written afterwards.
    @Test func aReadInterruptedByASignalIsRetried() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }

        var action = sigaction(), previous = sigaction()
        action.__sigaction_handler.sa_handler = { _ in signalsHandled.add(1, ordering: .sequentiallyConsistent) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART: the blocked read fails with EINTR
        #expect(sigaction(SIGUSR2, &action, &previous) == 0)
        defer { sigaction(SIGUSR2, &previous, nil) }
        let before = signalsHandled.load(ordering: .sequentiallyConsistent)

        let reader = Reader()
        let readEnd = fds[0]
        Thread {
            // A thread the test runner started may block signals; this one must take it.
            var unblock = sigset_t()
            sigemptyset(&unblock)
            sigaddset(&unblock, SIGUSR2)
            pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
            // "<pid>/task/<tid>": where the kernel shows what this thread is blocked in.
            let task = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")) ?? "self"
            reader.thread.withLock { $0 = (task, pthread_self()) }
            var buffer = [UInt8](repeating: 0, count: 8)
            let result = Result { () throws -> [UInt8] in
                let n = try buffer.withUnsafeMutableBytes { try FileIO.readFully(readEnd, into: $0, call: "read") }
                return Array(buffer[..<n])
            }
            reader.outcome.withLock { $0 = result }
            reader.finished.signal()
        }.start()

        // Wait until the reader is blocked in read(2), as the kernel reports it.
        try poll("the reader to block in read") {
            guard let task = reader.thread.withLock({ $0?.task }),
                  let line = try? String(contentsOfFile: "/proc/\(task)/syscall", encoding: .utf8) else { return false }
            return line.hasPrefix("\(Self.readSyscall) ")
        }
        let thread = try #require(reader.thread.withLock { $0?.pthread })
        #expect(pthread_kill(thread, SIGUSR2) == 0)
        // The handler runs once the read has returned EINTR; only then is there data.
        try poll("the signal to be handled") { signalsHandled.load(ordering: .sequentiallyConsistent) > before }
        let sent: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
        try sent.withUnsafeBytes { try FileIO.writeAll(fds[1], $0, call: "write") }

        #expect(reader.finished.wait(timeout: .now() + 10) == .success)
        #expect(try reader.outcome.withLock { $0 }?.get() == sent)
    }

    /// read(2)'s number, as /proc/<task>/syscall shows it.
    #if arch(arm64)
    private static let readSyscall = 63
    #else
    private static let readSyscall = 0
    #endif

    /// What the interrupt test's reader thread shares with the test.
    private final class Reader: Sendable {
        let thread = Mutex<(task: String, pthread: pthread_t)?>(nil)
        let outcome = Mutex<Result<[UInt8], any Error>?>(nil)
        let finished = DispatchSemaphore(value: 0)
    }

    @Test func shortWritesAreContinuedUntilEverythingIsWritten() throws {
        let bytes = randomBytes(1000, seed: 7)
        var written: [UInt8] = []
        try bytes.withUnsafeBytes { raw in
            try FileIO.drain(raw, call: "write") { part in
                let n = min(part.count, 3)
                written.append(contentsOf: part[..<n])
                return n
            }
        }
        #expect(written == bytes)
    }

    @Test func aFullDiskFailsTheWriteWithItsErrno() {
        var calls = 0
        let bytes = [UInt8](repeating: 1, count: 100)
        let failure = #expect(throws: SystemCallError.self) {
            try bytes.withUnsafeBytes { raw in
                try FileIO.drain(raw, call: "write /data/file") { part in
                    calls += 1
                    if calls > 1 { throw Errno.noSpace }
                    return part.count / 2
                }
            }
        }
        #expect(failure == SystemCallError("write /data/file", errno: ENOSPC))
        #expect(failure?.description == "write /data/file failed: No space left on device")
        #expect(calls == 2)
    }

    @Test func shortReadsAreContinuedUntilTheBufferIsFullOrTheFileEnds() throws {
        let source = randomBytes(10, seed: 3)
        var position = 0
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = try buffer.withUnsafeMutableBytes { raw in
            try FileIO.fill(raw, call: "read") { part in
                let n = min(part.count, 3, source.count - position)
                source.withUnsafeBytes { part.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[position..<position + n])) }
                position += n
                return n
            }
        }
        #expect(n == 10)
        #expect(Array(buffer[..<n]) == source)
    }

    @Test func aFailedReadKeepsItsCallAndErrno() {
        var buffer = [UInt8](repeating: 0, count: 4)
        let failure = #expect(throws: SystemCallError.self) {
            try buffer.withUnsafeMutableBytes { raw in try FileIO.fill(raw, call: "read") { _ in throw Errno.ioError } }
        }
        #expect(failure == SystemCallError("read", errno: EIO))
    }

    @Test func readsAtAnOffsetLeaveTheFileOffsetAlone() throws {
        let path = NSTemporaryDirectory() + "ferry-fileio-\(UUID().uuidString)"
        defer { unlink(path) }
        let bytes = randomBytes(5000, seed: 11)
        let fd = try FileIO.open(path, O_RDWR | O_CREAT | O_EXCL, mode: 0o600, call: "open")
        defer { close(fd) }
        #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
        try bytes.withUnsafeBytes { try FileIO.writeAll(fd, $0, call: "write") }
        try FileIO.sync(fd, call: "fsync")
        #expect(lseek(fd, 0, SEEK_SET) == 0)

        var middle = [UInt8](repeating: 0, count: 100)
        #expect(try middle.withUnsafeMutableBytes { try FileIO.readFully(fd, at: 4000, into: $0, call: "read") } == 100)
        #expect(middle == Array(bytes[4000..<4100]))
        var tail = [UInt8](repeating: 0, count: 100)
        #expect(try tail.withUnsafeMutableBytes { try FileIO.readFully(fd, at: 4950, into: $0, call: "read") } == 50)
        var all = [UInt8](repeating: 0, count: 6000)
        #expect(try all.withUnsafeMutableBytes { try FileIO.readFully(fd, into: $0, call: "read") } == 5000)
        #expect(Array(all[..<5000]) == bytes)
    }

    @Test func syncingAMissingDirectoryNamesTheOpen() {
        let path = NSTemporaryDirectory() + "ferry-missing-\(UUID().uuidString)"
        let failure = #expect(throws: SystemCallError.self) { try FileIO.syncDirectory(path) }
        #expect(failure == SystemCallError("open directory \(path)", errno: ENOENT))
    }

    @Test func openingAMissingFileNamesTheCall() {
        let failure = #expect(throws: SystemCallError.self) { try FileIO.open("/nonexistent/ferry", O_RDONLY, call: "open") }
        #expect(failure == SystemCallError("open", errno: ENOENT))
    }

    /// Polls `condition` until it holds, failing after 10 seconds.
    private func poll(_ what: String, _ condition: () -> Bool) throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw PollTimeout(what: what) }
            sched_yield()
        }
    }

    private struct PollTimeout: Error { let what: String }
}
