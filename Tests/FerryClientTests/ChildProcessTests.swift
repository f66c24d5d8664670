import FerryCore
import FerryHarness
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The harness every end-to-end test starts the server, daemons and CLI with.
@Suite("child processes")
struct ChildProcessTests {
    @Test func theExitCodeAndTheStreamsComeBack() throws {
        let dir = scratchDirectory("child")
        try Data("from stdin\n".utf8).write(to: URL(fileURLWithPath: dir + "/in"))
        let child = try ChildProcess("/bin/sh", ["-c", "cat; echo \"$GREETING\" >&2; exit 3"], stdin: dir + "/in", stdout: dir + "/out",
                                     stderr: dir + "/err", environment: ["GREETING": "hello"])
        #expect(try child.wait() == .exited(3))
        #expect(try child.wait() == .exited(3))  // asked again: the same answer, nothing reaped twice
        #expect(!child.isRunning)
        #expect(try String(contentsOfFile: dir + "/out", encoding: .utf8) == "from stdin\n")
        #expect(try String(contentsOfFile: dir + "/err", encoding: .utf8) == "hello\n")
    }

    @Test func aSignalEndsItAndNoneIsSentOnceItIsReaped() throws {
        let child = try ChildProcess("/bin/sleep", ["60"])
        #expect(child.isRunning)
        #expect(try child.stop(SIGKILL) == .signalled(SIGKILL))
        #expect(Child.Termination.signalled(SIGKILL).status == 137)
        #expect(!child.isRunning)
        // Reaped: the pid may be someone else's now, so this must not reach it.
        child.signal(SIGKILL)
        #expect(try child.stop() == .signalled(SIGKILL))
    }

    @Test func descriptorsOfTheTestProcessAreNotInherited() throws {
        // `dup` gives a descriptor without close-on-exec, as many libraries' are.
        let leaky = dup(STDERR_FILENO)
        #expect(leaky > 2)
        defer { close(leaky) }
        let child = try ChildProcess("/bin/sh", ["-c", "[ -e /proc/$$/fd/\(leaky) ] && exit 1; [ -e /proc/$$/fd/2 ] || exit 2; exit 0"])
        #expect(try child.wait() == .exited(0))
    }

    @Test func aProgramThatCannotStartIsAnError() throws {
        #expect(throws: SystemCallError.self) { try ChildProcess("/nonexistent/ferry-test-program") }
    }
}
