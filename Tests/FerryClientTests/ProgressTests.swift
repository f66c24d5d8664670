@testable import FerryClient
import FerryCore
import Foundation
import Logging
import Testing

/// What a sync reports of its progress: the counts a pass keeps, the line `ferry sync` draws
/// from them on a terminal (and nowhere else), and the bytes `ferry status` shows.
@Suite("Sync progress", .serialized)
struct ProgressTests {
    struct Line: Sendable, CustomTestStringConvertible {
        let snapshot: TransferProgress.Snapshot
        let elapsed: Duration
        let expected: String
        var testDescription: String { expected }

        init(hashed: Int64 = 0, planned: Int64? = nil, files: Int = 0, done: Int64 = 0, doneFiles: Int = 0, _ elapsed: Duration, _ expected: String) {
            var s = TransferProgress.Snapshot()
            s.active = true
            s.hashedBytes = hashed
            s.plannedBytes = planned
            s.plannedFiles = files
            s.doneBytes = done
            s.doneFiles = doneFiles
            snapshot = s
            self.elapsed = elapsed
            self.expected = expected
        }
    }

    static let MiB: Int64 = 1 << 20

    static let lines: [Line] = [
        Line(.milliseconds(100), "scanning: 0 B hashed"),
        Line(hashed: 12 * MiB, .seconds(3), "scanning: 12.0 MiB hashed, 4.0 MiB/s"),
        Line(hashed: 12 * MiB, done: 6 * MiB, .seconds(3), "scanning: 12.0 MiB hashed, 6.0 MiB sent, 4.0 MiB/s"),
        Line(planned: 100 * MiB, files: 7, done: 42 * MiB, doneFiles: 3, .seconds(5), "42% 42.0 MiB of 100.0 MiB, 3 of 7 files, 8.4 MiB/s, 0:07 left"),
        Line(planned: 100 * MiB, files: 7, done: 42 * MiB, doneFiles: 3, .milliseconds(300), "42% 42.0 MiB of 100.0 MiB, 3 of 7 files"),
        Line(planned: 0, .seconds(1), "100% 0 B of 0 B, 0 of 0 files, 0 B/s"),
        Line(planned: 1024, files: 1, done: 1024, doneFiles: 1, .seconds(2), "100% 1.0 KiB of 1.0 KiB, 1 of 1 files, 512 B/s"),
        Line(planned: 10 << 30, files: 1, done: MiB, .seconds(10), "0% 1.0 MiB of 10.0 GiB, 0 of 1 files, 102.4 KiB/s, 28:26:30 left"),
        Line(planned: 3 * MiB, files: 2, done: 0, .seconds(4), "0% 0 B of 3.0 MiB, 0 of 2 files, 0 B/s"),
    ]

    @Test(arguments: lines)
    func theLineSaysBytesPercentRateAndTimeLeft(_ line: Line) {
        #expect(ProgressLine.format(line.snapshot, elapsed: line.elapsed) == line.expected)
    }

    @Test func bytesAndClocksReadNaturally() {
        #expect([0, 1023, 1024, 1536, 42 * Self.MiB, 1_288_490_189].map(ProgressLine.bytes) == ["0 B", "1023 B", "1.0 KiB", "1.5 KiB", "42.0 MiB", "1.2 GiB"])
        #expect([0, 65, 3725].map(ProgressLine.clock) == ["0:00", "1:05", "1:02:05"])
    }

    @Test func aPassCountsWhatItPlannedAndWhatItMoved() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("pro")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            try a.write("one.bin", seededBytes(300_000, seed: 1))
            try a.write("two/two.bin", seededBytes(5_000, seed: 2))
            try a.write("three.txt", "3")
            try await a.sync()
            let total: Int64 = 300_000 + 5_000 + 1
            let up = a.sync.progress.snapshot
            #expect(!up.active && up.queuedBytes == 0)
            #expect(up.transferredBytes == total && up.hashedBytes == total)
            try await b.sync()
            let down = b.sync.progress.snapshot
            #expect(down.transferredBytes == total)
            try await b.sync()
            #expect(b.sync.progress.snapshot.transferredBytes == total)  // a pass with nothing to move adds nothing
        }
    }

    @Test func ferrySyncOffATerminalPrintsWhatItDidBefore() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("pip")
            let (home, folder) = try await CLITests.Home.syncing(cloud, as: user)
            try seededBytes(2 << 20, seed: 3).write(to: URL(fileURLWithPath: folder + "/big.bin"))
            let piped = try await home.ferry("sync")
            #expect(piped.status == 0, "\(piped.err)")
            #expect(piped.out.isEmpty && piped.err.isEmpty, "\(piped.out)|\(piped.err)")
            try Data("more".utf8).write(to: URL(fileURLWithPath: folder + "/more.txt"))
            let json = try await home.ferry("sync", "--json")
            #expect(json.status == 0)
            #expect(!json.out.contains("\r") && !json.out.contains("%") && json.err.isEmpty)
            #expect(json.out.contains("\"uploaded_files\" : 1"))
        }
    }

    @Test func ferryStatusShowsQueuedAndTransferredBytes() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("sta")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            let daemon = DaemonTests.daemon(b)
            let run = Task { try await daemon.run() }
            defer { run.cancel() }
            #expect(await eventually { daemon.board.snapshot.folders[0].lastSyncAt != nil })
            try a.write("report.bin", seededBytes(70_000, seed: 4))
            try await a.sync()
            #expect(await eventually { b.exists("report.bin") && daemon.board.snapshot.folders[0].transferredBytes == 70_000 })

            let answer = try ControlSocket.request(path: DaemonTests.locations(b).socketPath, .status)
            let text = String(decoding: answer, as: UTF8.self)
            #expect(text.contains("\"transferred_bytes\":70000") && text.contains("\"queued_bytes\":0"), "\(text)")
        }
    }
}
