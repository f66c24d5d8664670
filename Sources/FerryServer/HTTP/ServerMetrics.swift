import Foundation
import CoreMetrics
import Metrics
import Prometheus
import Synchronization

/// The server's metrics, each app instance with its own Prometheus registry (no global
/// bootstrap, so tests can run several servers in one process).
public final class ServerMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory
    let bytesIn: Metrics.Counter
    let bytesOut: Metrics.Counter
    let chunkUploads: Metrics.Counter
    /// Chunk bytes received, whether or not the server already held them: a count of new
    /// or deduplicated bytes would tell an uploader whether anyone stored that content.
    let chunkBytesReceived: Metrics.Counter
    let commitLatency: Metrics.Timer
    let commitOperations: Metrics.Counter
    /// Long-polls on `/changes` parked right now (set when scraped): what idle devices hold.
    let waitingLongPolls: Metrics.Gauge
    /// Versions retention removed (SPEC §10).
    let retentionPurgedVersions: Metrics.Counter
    private let requestCounters = Mutex<[String: Metrics.Counter]>([:])

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["ferry_commit_duration_seconds"] = [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100),
            .milliseconds(500), .seconds(1), .seconds(5),
        ]
        self.factory = factory
        bytesIn = Metrics.Counter(label: "ferry_http_request_bytes_total", dimensions: [], factory: factory)
        bytesOut = Metrics.Counter(label: "ferry_http_response_bytes_total", dimensions: [], factory: factory)
        chunkUploads = Metrics.Counter(label: "ferry_chunk_uploads_total", dimensions: [], factory: factory)
        chunkBytesReceived = Metrics.Counter(label: "ferry_chunk_bytes_received_total", dimensions: [], factory: factory)
        commitLatency = Metrics.Timer(label: "ferry_commit_duration_seconds", dimensions: [], factory: factory)
        commitOperations = Metrics.Counter(label: "ferry_commit_operations_total", dimensions: [], factory: factory)
        waitingLongPolls = Metrics.Gauge(label: "ferry_changes_waiting", dimensions: [], factory: factory)
        retentionPurgedVersions = Metrics.Counter(label: "ferry_retention_purged_versions_total", dimensions: [], factory: factory)
    }

    /// Counts one answered request by method and status.
    func countRequest(method: String, status: Int) {
        let key = "\(method) \(status)"
        let counter = requestCounters.withLock { table in
            if let c = table[key] { return c }
            let c = Metrics.Counter(label: "ferry_http_requests_total", dimensions: [("method", method), ("status", String(status))], factory: factory)
            table[key] = c
            return c
        }
        counter.increment()
    }

    func recordWaitingLongPolls(_ count: Int) { waitingLongPolls.record(count) }

    /// The Prometheus text exposition.
    public func render() -> String {
        var out: [UInt8] = []
        registry.emit(into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
