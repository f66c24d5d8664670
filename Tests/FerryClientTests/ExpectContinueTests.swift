@testable import FerryClient
import FerryCore
import Foundation
import Testing

/// `curl -T` (and any client that asks before it sends a body) gets `100 Continue` at once
/// over HTTP/1.1, plain and HTTPS, instead of waiting out its own timer. curl says which
/// happened (`-v`: "Done waiting for 100-continue" when its timer ran out), so the test reads
/// that rather than timing the upload on a busy machine. Over HTTP/2 curl may send the body
/// without waiting; that case shows the interim answer on a stream breaks nothing.
@Suite("Expect: 100-continue", .serialized)
struct ExpectContinueTests {
    static let cases: [(tls: Bool, http: String)] = [(false, "--http1.1"), (true, "--http1.1"), (true, "--http2")]

    /// Runs curl verbosely; `waitedOut` says curl gave up waiting for an answer to its
    /// `Expect` and sent the body anyway.
    static func curl(_ arguments: [String]) async throws -> (run: ToolRun, waitedOut: Bool, continued: Bool) {
        let run = try await runTool("/usr/bin/curl", ["-sS", "-v", "-k", "--expect100-timeout", "30", "-H", "Expect: 100-continue",
                                                      "-o", "/dev/null", "-w", "%{http_code}"] + arguments)
        return (run, run.err.contains("Done waiting for 100-continue"), run.err.contains("< HTTP/1.1 100 Continue"))
    }

    @Test(arguments: cases)
    func uploadsAskingToContinueAreAnsweredAtOnce(_ tls: Bool, _ http: String) async throws {
        try await Cloud.with(tls: tls) { cloud in
            let user = try await cloud.user("curly")
            let device = try await Device.make(cloud, user: user, name: "script")
            defer { Task { await device.close() } }
            let file = scratchDirectory("curl") + "/payload.bin"
            try seededBytes(256 * 1024, seed: 26).write(to: URL(fileURLWithPath: file))
            let url = "\(cloud.url)/api/v1/libraries/\(device.config.folders[0].libraryId)/files?path=payload.bin"

            let upload = try await Self.curl([http, "-H", "Authorization: Bearer \(device.config.deviceToken)", "-T", file, url])
            #expect(upload.run.out == "201", "\(upload.run.err)")
            #expect(!upload.waitedOut && (upload.continued || http == "--http2"), "\(upload.run.err)")
            let stored = try await device.api.history(library: device.config.folders[0].libraryId, path: try FerryPath("payload.bin"))
            #expect(stored.versions.first?.size == Int64(256 * 1024))

            // A refused request still gets its own status, just as quickly.
            let refused = try await Self.curl([http, "-H", "Authorization: Bearer not-a-token", "-T", file, url])
            #expect(refused.run.out == "401", "\(refused.run.err)")
            #expect(!refused.waitedOut, "\(refused.run.err)")
        }
    }
}
