import ArgumentParser
import FerryCore
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

    enum Operation: CaseIterable { case upload, download, changes, history, delete }

    struct Outcome: Sendable {
        var seconds: Double
        var bytes: Int
        var ok: Bool
    }

    /// Paths uploaded so far, for downloads and deletes to pick from.
    final class Stored: Sendable {
        let paths = Mutex<[String]>([])
        func add(_ path: String) { paths.withLock { $0.append(path) } }
        func random(using rng: inout SplitMix) -> String? { paths.withLock { $0.isEmpty ? nil : $0[Int(rng.next() % UInt64($0.count))] } }
        func take(using rng: inout SplitMix) -> String? {
            paths.withLock { $0.isEmpty ? nil : $0.remove(at: Int(rng.next() % UInt64($0.count))) }
        }
    }

    func run() async throws {
        let root = try options.makeScratch()
        defer { options.removeScratch(root) }
        let quick = options.quick
        let phases: [(name: String, clients: Int, ops: Int, mix: [Operation])] = [
            ("uploads, \(quick ? 20 : 50) clients × 5 files of 100 KiB", quick ? 20 : 50, 5, [.upload]),
            ("downloads, \(quick ? 20 : 50) clients × 5", quick ? 20 : 50, 5, [.download]),
            ("mixed, \(quick ? 30 : 75) clients × 10 random operations", quick ? 30 : 75, 10, [.upload, .upload, .download, .download, .download, .changes, .changes, .history, .delete]),
            ("stress, \(quick ? 100 : 150) clients × \(quick ? 3 : 10) random operations", quick ? 100 : 150, quick ? 3 : 10,
             [.upload, .download, .download, .changes, .history, .delete]),
        ]
        let rows = try await ServerProcess.with(root: root, metadataURL: options.metadataURL) { process, server -> [BenchRow] in
            let stored = Stored()
            var rows: [BenchRow] = []
            for (index, phase) in phases.enumerated() {
                let before = process.residentBytes
                var outcomes: [Outcome] = []
                let wall = await seconds {
                    outcomes = await withTaskGroup(of: [Outcome].self) { group in
                        for client in 0..<phase.clients {
                            group.addTask {
                                var rng = SplitMix(seed: UInt64(index * 10_000 + client))
                                var mine: [Outcome] = []
                                for n in 0..<phase.ops {
                                    let op = phase.mix[Int(rng.next() % UInt64(phase.mix.count))]
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
                let after = process.residentBytes
                let ok = outcomes.filter(\.ok)
                let latencies = ok.map { $0.seconds * 1000 }
                let megabytes = Double(ok.reduce(0) { $0 + $1.bytes }) / 1e6
                let name = phase.name
                rows.append(BenchRow(name: "\(name): success", value: 100 * Double(ok.count) / Double(max(1, outcomes.count)), unit: "%", goal: "100 %"))
                rows.append(BenchRow(name: "\(name): throughput", value: Double(ok.count) / wall, unit: "ops/s"))
                rows.append(BenchRow(name: "\(name): latency p50", value: percentile(latencies, 50), unit: "ms"))
                rows.append(BenchRow(name: "\(name): latency p95", value: percentile(latencies, 95), unit: "ms"))
                rows.append(BenchRow(name: "\(name): latency p99", value: percentile(latencies, 99), unit: "ms"))
                rows.append(BenchRow(name: "\(name): data", value: megabytes / wall, unit: "MB/s"))
                rows.append(BenchRow(name: "\(name): server RSS after", value: Double(after) / Double(1 << 20), unit: "MiB",
                                     reference: "before", referenceValue: Double(before) / Double(1 << 20)))
            }
            return rows
        }
        try BenchReport(benchmark: "load", mode: quick ? "quick" : "full", machine: BenchReport.machine(), rows: rows).emit(json: options.json)
    }

    static func perform(_ op: Operation, path: String, seed: UInt64, server: BenchServer, stored: Stored, rng: inout SplitMix) async -> Outcome {
        let started = ContinuousClock.now
        var bytes = 0
        var ok = true
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
                }
            }
        } catch {
            ok = false
        }
        let d = ContinuousClock.now - started
        return Outcome(seconds: d.timeInterval, bytes: bytes, ok: ok)
    }
}

/// A small seeded generator, so a run's operation mix is reproducible.
struct SplitMix: Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
