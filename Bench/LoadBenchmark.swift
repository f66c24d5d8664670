import ArgumentParser
import FerryCore
import FerryHarness
import Foundation
import NIOHTTP1
import Synchronization

/// `ferry-bench load`: many concurrent clients against the real `ferry-server` process on
/// loopback: uploads, downloads, a mixed workload and a stress run. Success rate, ops/s,
/// latency percentiles, MB/s, and the server's RSS before and after each phase (flat after
/// warm-up means no leak). Every phase is bounded in count and time and stops by itself.
struct LoadBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "load", abstract: "Concurrent clients: uploads, downloads, mixed, stress.")

    @OptionGroup var options: BenchOptions

    enum Operation: CaseIterable, Sendable { case upload, download, changes, history, delete }

    struct Outcome: Sendable {
        var seconds: Double
        var bytes: Int
        var ok: Bool
        /// Why it failed, when it did.
        var failure: String? = nil
    }

    /// Paths uploaded so far, for downloads and deletes to pick from.
    final class Stored: Sendable {
        let paths = Mutex<[String]>([])
        func add(_ path: String) { paths.withLock { $0.append(path) } }
        func random(using rng: inout SeededRandom) -> String? { paths.withLock { $0.isEmpty ? nil : $0[rng.below($0.count)] } }
        func take(using rng: inout SeededRandom) -> String? {
            paths.withLock { $0.isEmpty ? nil : $0.remove(at: rng.below($0.count)) }
        }
    }

    /// One bounded phase: `clients` concurrent clients, each doing `ops` operations drawn from `mix`.
    struct Phase: Sendable {
        var name: String
        var clients: Int
        var ops: Int
        var mix: [Operation]
    }

    /// The phases of a run, shared by `load` and `scaleout`. `clientDivisor` runs fewer
    /// clients in each (`scaleout --quick`, which runs every phase three times).
    static func phases(quick: Bool, clientDivisor: Int = 1) -> [Phase] {
        func clients(_ full: Int, _ small: Int) -> Int { max(1, (quick ? small : full) / clientDivisor) }
        let transfers = clients(50, 20), mixed = clients(75, 30), stress = clients(150, 100), stressOps = quick ? 3 : 10
        return [
            Phase(name: "uploads, \(transfers) clients × 5 files of 100 KiB", clients: transfers, ops: 5, mix: [.upload]),
            Phase(name: "downloads, \(transfers) clients × 5", clients: transfers, ops: 5, mix: [.download]),
            Phase(name: "mixed, \(mixed) clients × 10 random operations", clients: mixed, ops: 10,
                  mix: [.upload, .upload, .download, .download, .download, .changes, .changes, .history, .delete]),
            Phase(name: "stress, \(stress) clients × \(stressOps) random operations", clients: stress, ops: stressOps,
                  mix: [.upload, .download, .download, .changes, .history, .delete]),
        ]
    }

    /// What one phase measured.
    struct PhaseResult: Sendable {
        var outcomes: [Outcome]
        var wall: Double

        var succeeded: [Outcome] { outcomes.filter(\.ok) }
        var successPercent: Double { 100 * Double(succeeded.count) / Double(max(1, outcomes.count)) }
        var opsPerSecond: Double { Double(succeeded.count) / wall }
        var megabytesPerSecond: Double { Double(succeeded.reduce(0) { $0 + $1.bytes }) / 1e6 / wall }
        /// A latency percentile of the successful operations, in milliseconds.
        func latency(_ p: Int) -> Double { percentile(succeeded.map { $0.seconds * 1000 }, p) }

        /// Writes how many operations failed and the first few distinct reasons to stderr,
        /// so a success rate under 100 % comes with its cause.
        func reportFailures(_ phase: String) {
            let reasons = outcomes.compactMap(\.failure)
            guard !reasons.isEmpty else { return }
            var distinct: [String] = []
            for reason in reasons where !distinct.contains(reason) && distinct.count < 3 { distinct.append(reason) }
            FileHandle.standardError.write(Data("ferry-bench: \(phase): \(reasons.count) failed, e.g. \(distinct.joined(separator: "; "))\n".utf8))
        }
    }

    func run() async throws {
        let root = try options.makeScratch()
        defer { options.removeScratch(root) }
        let quick = options.quick
        let rows = try await ServerProcess.with(root: root, metadataURL: options.metadataURL) { process, server -> [BenchRow] in
            let stored = Stored()
            var rows: [BenchRow] = []
            for (index, phase) in Self.phases(quick: quick).enumerated() {
                let before = process.residentBytes
                let result = await Self.measure(phase, index: index, server: server, stored: stored)
                result.reportFailures(phase.name)
                let after = process.residentBytes
                let name = phase.name
                rows.append(BenchRow(name: "\(name): success", value: result.successPercent, unit: "%", goal: "100 %"))
                rows.append(BenchRow(name: "\(name): throughput", value: result.opsPerSecond, unit: "ops/s"))
                rows.append(BenchRow(name: "\(name): latency p50", value: result.latency(50), unit: "ms"))
                rows.append(BenchRow(name: "\(name): latency p95", value: result.latency(95), unit: "ms"))
                rows.append(BenchRow(name: "\(name): latency p99", value: result.latency(99), unit: "ms"))
                rows.append(BenchRow(name: "\(name): data", value: result.megabytesPerSecond, unit: "MB/s"))
                rows.append(BenchRow(name: "\(name): server RSS after", value: Double(after) / Double(1 << 20), unit: "MiB",
                                     reference: "before", referenceValue: Double(before) / Double(1 << 20)))
            }
            return rows
        }
        try BenchReport(benchmark: "load", mode: quick ? "quick" : "full", machine: BenchReport.machine(), rows: rows).emit(json: options.json)
    }

    /// Runs one phase against `server`: its clients concurrently, each with its own seeded
    /// generator (`index` keeps the seeds and paths of phases apart).
    static func measure(_ phase: Phase, index: Int, server: BenchServer, stored: Stored) async -> PhaseResult {
        var outcomes: [Outcome] = []
        let wall = await seconds {
            outcomes = await withTaskGroup(of: [Outcome].self) { group in
                for client in 0..<phase.clients {
                    group.addTask {
                        var rng = SeededRandom(seed: UInt64(index * 10_000 + client))
                        var mine: [Outcome] = []
                        for n in 0..<phase.ops {
                            let op = phase.mix[rng.below(phase.mix.count)]
                            let path = "load/p\(index)/c\(client)/f\(n).bin"
                            mine.append(await Self.perform(op, path: path, seed: rng.next(), server: server, stored: stored, rng: &rng))
                        }
                        return mine
                    }
                }
                var all: [Outcome] = []
                for await part in group { all += part }
                return all
            }
        }
        return PhaseResult(outcomes: outcomes, wall: wall)
    }

    static func perform(_ op: Operation, path: String, seed: UInt64, server: BenchServer, stored: Stored, rng: inout SeededRandom) async -> Outcome {
        let started = ContinuousClock.now
        var bytes = 0
        var ok = true
        var failure: String?
        do {
            switch op {
            case .upload:
                let content = seededBytes(100 << 10, seed: seed)
                try await uploadBytes(content, as: path, to: server)
                stored.add(path)
                bytes = content.count
            case .download:
                if let path = stored.random(using: &rng) { bytes = Int(try await server.fetch(path)) }
            case .changes:
                let _: ChangesResponse = try await server.get("/libraries/\(server.library)/changes?since=0&limit=1000")
            case .history:
                if let path = stored.random(using: &rng) {
                    let _: HistoryResponse = try await server.get("/libraries/\(server.library)/history?path=\(path)&limit=10")
                }
            case .delete:
                if let path = stored.take(using: &rng) {
                    let current: HistoryResponse = try await server.get("/libraries/\(server.library)/history?path=\(path)&limit=1")
                    guard let version = current.versions.first else { break }
                    let response: CommitResponse = try await server.json(
                        .POST, "/libraries/\(server.library)/commit", CommitRequest(operations: [.delete(try FerryPath(path), base: version.version)]))
                    ok = response.results.first?.status == .ok
                    if !ok { failure = "delete of \(path): \(response.results.first.map { "\($0.status)" } ?? "no result")" }
                }
            }
        } catch {
            ok = false
            failure = "\(op) of \(path): \(error)"
        }
        let d = ContinuousClock.now - started
        return Outcome(seconds: d.timeInterval, bytes: bytes, ok: ok, failure: failure)
    }
}
