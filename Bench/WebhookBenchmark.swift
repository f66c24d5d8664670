import ArgumentParser
import FerryCore
import FerryServer
import Foundation
import Hummingbird
import Logging
import NIOHTTP1
import NIOCore
import ServiceLifecycle
import Synchronization

/// `ferry-bench webhooks`: file events from commit to a loopback receiver. Every event is
/// timed from the moment its commit request was sent to the moment the receiver got it.
struct WebhookBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "webhooks", abstract: "Webhook delivery: total time and commit-to-receipt latency.")

    @OptionGroup var options: BenchOptions

    /// When each event arrived, by path.
    final class Arrivals: Sendable {
        let times = Mutex<[String: ContinuousClock.Instant]>([:])
        func record(path: String) {
            let now = ContinuousClock.now
            times.withLock { $0[path] = now }
        }
    }

    func run() async throws {
        let root = try options.makeScratch()
        defer { options.removeScratch(root) }
        let events = options.quick ? 200 : 1000
        // Each run: (name, events per commit). A stream of single-file commits is what
        // daemons send; a burst of 100-file commits is a large sync landing at once.
        let runs = [("stream", 1), ("burst", 100)]
        let arrivals = Arrivals()

        let router = Router()
        router.post("hook") { request, _ -> HTTPResponse.Status in
            let body = try await request.body.collect(upTo: 1 << 20)
            struct Envelope: Decodable { struct Data: Decodable { let path: String }; let data: Data }
            let envelope = try JSONCoding.decoder.decode(Envelope.self, from: Foundation.Data(body.readableBytesView))
            arrivals.record(path: envelope.data.path)
            return .noContent
        }
        let (ports, portReady) = AsyncStream<Int>.makeStream()
        let receiver = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                   onServerRunning: { portReady.yield($0.localAddress?.port ?? 0); portReady.finish() })
        let rows = try await withThrowingTaskGroup(of: Void.self) { group -> [BenchRow] in
            let services = ServiceGroup(configuration: .init(services: [receiver], logger: .init(label: "bench-receiver")))
            group.addTask { try await services.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw BenchError("the receiver did not start") }
            let rows = try await BenchServer.with(dataDirectory: root + "/server", configure: { $0.webhooks.allowPrivateTargets = true }) { server -> [BenchRow] in
                let _: CreatedWebhookResponse = try await server.json(
                    .POST, "/webhooks", CreateWebhookRequest(url: "http://127.0.0.1:\(port)/hook", events: try EventFilter(["file.created"])))
                var rows: [BenchRow] = []
                for (run, perCommit) in runs {
                    var sent: [String: ContinuousClock.Instant] = [:]
                    let total = try await seconds {
                        for start in stride(from: 0, to: events, by: perCommit) {
                            let ops = try (start..<min(events, start + perCommit)).map { i in
                                CommitOperation(op: .put, path: try FerryPath("\(run)/e\(i).txt"), base: nil, kind: .file, size: 0,
                                                sha256: .empty, mtimeNs: 0, mode: 0o644, chunks: [])
                            }
                            let now = ContinuousClock.now
                            for op in ops { sent[op.path.string] = now }
                            let _: CommitResponse = try await server.json(.POST, "/libraries/\(server.library)/commit", CommitRequest(operations: ops))
                        }
                        let deadline = ContinuousClock.now + .seconds(120)
                        while arrivals.times.withLock({ times in sent.keys.contains { times[$0] == nil } }) {
                            guard ContinuousClock.now < deadline else { throw BenchError("not every \(run) event arrived within 120 s") }
                            try await Task.sleep(for: .milliseconds(2))
                        }
                    }
                    let latencies = arrivals.times.withLock { times in
                        sent.compactMap { path, at in times[path].map { $0 - at } }.map { $0.timeInterval }
                    }.sorted()
                    func percentile(_ p: Int) -> Double { latencies[min(latencies.count - 1, latencies.count * p / 100)] * 1000 }
                    let shape = perCommit == 1 ? "one per commit" : "\(perCommit) per commit"
                    rows += [
                        BenchRow(name: "\(events) file events (\(shape)), first commit to last receipt", value: total, unit: "s", goal: "< 2 s"),
                        BenchRow(name: "\(run): commit-to-receipt latency, p50", value: percentile(50), unit: "ms"),
                        BenchRow(name: "\(run): commit-to-receipt latency, p99", value: percentile(99), unit: "ms", goal: "< 200 ms"),
                    ]
                }
                return rows
            }
            await services.triggerGracefulShutdown()
            try await group.waitForAll()
            return rows
        }
        try BenchReport(benchmark: "webhooks", mode: options.quick ? "quick" : "full", machine: BenchReport.machine(), rows: rows).emit(json: options.json)
    }
}
