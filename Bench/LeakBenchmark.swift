import ArgumentParser
import FerryCore
import FerryHarness
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `ferry-bench leak`: a sustained, bounded run of concurrent clients (uploads, downloads,
/// change feeds, history, deletes) against the real `ferry-server` process, sampling its
/// resident memory and open file descriptors. After a warm-up (the first quarter of the
/// run) memory must stay within 10 % of where it stood, and descriptors must not grow.
struct LeakBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leak", abstract: "Sustained load with the server's memory and descriptors sampled: flat after warm-up, or a leak.")

    @OptionGroup var options: BenchOptions
    @Option(help: "How long the load runs (default: 10; --quick: 0.3).") var minutes: Double?
    @Option(help: "Concurrent clients (default: 50; --quick: 20).") var clients: Int?
    @Flag(help: "Exit with status 1 when memory grows more than 10 % after warm-up or descriptors grow.") var assertFlat = false

    /// Successes and failures across every client.
    final class Outcomes: Sendable {
        let counts = Mutex<(ok: Int, failed: Int)>((0, 0))
        func record(_ ok: Bool) { counts.withLock { ok ? ($0.ok += 1) : ($0.failed += 1) } }
    }

    struct Sample: Sendable {
        var seconds: Double
        var rss: Int
        var fds: Int
    }

    func run() async throws {
        let root = try options.makeScratch()
        defer { options.removeScratch(root) }
        let duration = (minutes ?? (options.quick ? 0.3 : 10)) * 60
        let clientCount = clients ?? (options.quick ? 20 : 50)
        let interval = max(0.5, duration / 60)
        let (rows, flat) = try await ServerProcess.with(root: root) { process, server -> ([BenchRow], Bool) in
            let stored = LoadBenchmark.Stored()
            let outcomes = Outcomes()
            let started = ContinuousClock.now
            let deadline = started + .seconds(duration)
            func elapsed() -> Double {
                let d = ContinuousClock.now - started
                return d.timeInterval
            }
            let samples = await withTaskGroup(of: [Sample].self) { group in
                group.addTask {
                    var samples: [Sample] = []
                    while ContinuousClock.now < deadline {
                        samples.append(Sample(seconds: elapsed(), rss: process.residentBytes, fds: Self.openDescriptors(process.pid)))
                        try? await Task.sleep(for: .seconds(interval))
                    }
                    samples.append(Sample(seconds: elapsed(), rss: process.residentBytes, fds: Self.openDescriptors(process.pid)))
                    return samples
                }
                for client in 0..<clientCount {
                    group.addTask {
                        var rng = SeededRandom(seed: UInt64(client) &* 7919)
                        let mix: [LoadBenchmark.Operation] = [.upload, .download, .download, .changes, .history, .delete]
                        var n = 0
                        while ContinuousClock.now < deadline {
                            let op = mix[rng.below(mix.count)]
                            let outcome = await LoadBenchmark.perform(op, path: "leak/c\(client)/f\(n).bin", seed: rng.next(), server: server,
                                                                      stored: stored, rng: &rng)
                            outcomes.record(outcome.ok)
                            n += 1
                        }
                        return []
                    }
                }
                var all: [Sample] = []
                for await part in group { all += part }
                return all.sorted { $0.seconds < $1.seconds }
            }
            let counts = outcomes.counts.withLock { $0 }
            let warm = samples.filter { $0.seconds >= duration / 4 }
            guard let baseline = warm.first, let last = warm.last else { throw BenchError("too few samples; run longer") }
            let peakRSS = warm.map(\.rss).max() ?? baseline.rss
            let peakFDs = warm.map(\.fds).max() ?? baseline.fds
            let growth = 100 * Double(peakRSS - baseline.rss) / Double(max(1, baseline.rss))
            // Descriptors follow the connections open at the moment of sampling; a leak shows
            // as a climb, so compare the last sample with the first after warm-up.
            let fdGrowth = last.fds - baseline.fds
            let mib = { (bytes: Int) in Double(bytes) / Double(1 << 20) }
            var rows: [BenchRow] = [
                BenchRow(name: "operations (\(clientCount) clients, \(String(format: "%.1f", duration / 60)) min)", value: Double(counts.ok + counts.failed), unit: "ops"),
                BenchRow(name: "throughput", value: Double(counts.ok) / duration, unit: "ops/s"),
                BenchRow(name: "success", value: 100 * Double(counts.ok) / Double(max(1, counts.ok + counts.failed)), unit: "%", goal: "100 %"),
                BenchRow(name: "server RSS at the end of warm-up", value: mib(baseline.rss), unit: "MiB"),
                BenchRow(name: "server RSS peak after warm-up", value: mib(peakRSS), unit: "MiB", reference: "end of warm-up", referenceValue: mib(baseline.rss)),
                BenchRow(name: "server RSS growth after warm-up", value: growth, unit: "%", goal: "≤ 10 %"),
                BenchRow(name: "server descriptors at the end of warm-up", value: Double(baseline.fds), unit: "fds"),
                BenchRow(name: "server descriptors peak after warm-up", value: Double(peakFDs), unit: "fds"),
                BenchRow(name: "server descriptors, last sample minus end of warm-up", value: Double(fdGrowth), unit: "fds", goal: "≤ 0 (no climb)"),
            ]
            // A dozen samples across the run, for the curve.
            let step = max(1, samples.count / 12)
            for sample in stride(from: 0, to: samples.count, by: step).map({ samples[$0] }) {
                rows.append(BenchRow(name: String(format: "sample at %.0f s: RSS", sample.seconds), value: mib(sample.rss), unit: "MiB"))
            }
            return (rows, growth <= 10 && fdGrowth <= 0)
        }
        try BenchReport(benchmark: "leak", mode: options.quick ? "quick" : "full", machine: BenchReport.machine(), rows: rows).emit(json: options.json)
        if assertFlat && !flat { throw ExitCode(1) }
    }

    /// Open descriptors of a process (entries of /proc/PID/fd).
    static func openDescriptors(_ pid: pid_t) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
    }
}
