@testable import FerryClient
import FerryCore
import Foundation
import Testing

/// `curl -T` (and any client that asks before it sends a body) gets `100 Continue` at once
/// over HTTP/1.1, plain and HTTPS, instead of waiting out its own timer: curl's is set to
/// 30 s here, so a server that does not answer fails the time limit by far. Over HTTP/2 curl
/// sends the body without waiting; that case shows the interim answer on a stream breaks
/// nothing.
@Suite("Expect: 100-continue", .serialized)
struct ExpectContinueTests {
    static let cases: [(tls: Bool, http: String)] = [(false, "--http1.1"), (true, "--http1.1"), (true, "--http2")]

    static func curl(_ arguments: [String]) async throws -> (run: ToolRun, took: Duration) {
        let started = ContinuousClock.now
        let run = try await runTool("/usr/bin/curl", ["-sS", "-k", "--expect100-timeout", "30", "-H", "Expect: 100-continue", "-o", "/dev/null",
                                                      "-w", "%{http_code}"] + arguments)
        return (run, ContinuousClock.now - started)
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
            #expect(upload.took < .seconds(10), "took \(upload.took)")
            let stored = try await device.api.history(library: device.config.folders[0].libraryId, path: try FerryPath("payload.bin"))
            #expect(stored.versions.first?.size == Int64(256 * 1024))

            // A refused request still gets its own status, just as quickly.
            let refused = try await Self.curl([http, "-H", "Authorization: Bearer not-a-token", "-T", file, url])
            #expect(refused.run.out == "401", "\(refused.run.err)")
            #expect(refused.took < .seconds(10), "took \(refused.took)")
        }
    }
}
