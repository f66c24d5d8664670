import ArgumentParser
import FerryClient
import FerryServer
import Foundation
import Logging

/// `ferry-bench scaleout`: the workloads of `ferry-bench load` against three configurations
/// of the real `ferry-server` binary on loopback (SPEC §9, docs/scaling.md): one instance on
/// SQLite and file blobs (the reference), one instance on PostgreSQL and an S3 store, and two
/// instances over one PostgreSQL database and one bucket behind nginx. Each configuration
/// gets a new database and a new bucket, removed afterwards; the rows give each cluster
/// configuration's number beside the one-box number from the same run. Then the initial
/// sync of many small files and of one large file, by the real client code (`FolderSync`).
/// `--quick` runs a quarter of `load --quick`'s clients, 200 small files and 16 MiB.
struct ScaleOutBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scaleout",
        abstract: "The load workloads on SQLite + files, on PostgreSQL + S3, and on two instances over them behind nginx.")

    @OptionGroup var options: BenchOptions
    @Option(help: "PostgreSQL URL of a role that may create databases (default: FERRY_TEST_POSTGRES_URL); each configuration gets a new database, dropped afterwards.")
    var postgresURL: String?
    @Option(help: "S3 endpoint, http://HOST:PORT (default: FERRY_TEST_S3_ENDPOINT); each configuration gets a new bucket, deleted afterwards.")
    var s3Endpoint: String?
    @Option(help: "S3 access key (default: FERRY_TEST_S3_ACCESS_KEY).") var s3AccessKey: String?
    @Option(help: "S3 secret key (default: FERRY_TEST_S3_SECRET_KEY).") var s3SecretKey: String?

    /// The configurations measured, the first the reference; the raw value names the
    /// configuration's scratch directory.
    enum Setup: String, CaseIterable {
        case oneBox = "one-box", oneInstance = "one-instance", twoInstances = "two-instances"

        var label: String {
            switch self {
            case .oneBox: "SQLite + files"
            case .oneInstance: "PostgreSQL + S3"
            case .twoInstances: "2 instances behind nginx, PostgreSQL + S3"
            }
        }
    }

    /// One number a configuration measured.
    struct Metric {
        var name: String
        var value: Double
        var unit: String
        /// Success rates: listed for every configuration with a goal, not as a ratio.
        var goal: String?
    }

    func validate() throws {
        if options.metadataURL != nil {
            throw ValidationError("scaleout makes its own databases from --postgres-url; --metadata-url is for the single-server benchmarks")
        }
    }

    func run() async throws {
        let engines = try ScaleOutEngines.resolve(postgresURL: postgresURL, s3Endpoint: s3Endpoint, s3AccessKey: s3AccessKey, s3SecretKey: s3SecretKey)
        let root = try options.makeScratch()
        defer { options.removeScratch(root) }
        var measured: [[Metric]] = []
        for setup in Setup.allCases {
            measured.append(try await Self.measure(setup, engines: engines, root: root + "/" + setup.rawValue, quick: options.quick))
        }
        let rows = Self.rows(measured)
        try BenchReport(benchmark: "scaleout", mode: options.quick ? "quick" : "full", machine: BenchReport.machine(), rows: rows)
            .emit(json: options.json)
    }

    /// Starts `setup` on fresh stores, runs the workloads through it and stops it again.
    static func measure(_ setup: Setup, engines: ScaleOutEngines, root: String, quick: Bool) async throws -> [Metric] {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        switch setup {
        case .oneBox:
            return try await ServerProcess.with(root: root) { process, server in
                try await workloads(server, url: "http://127.0.0.1:\(process.port)", root: root, quick: quick)
            }
        case .oneInstance:
            return try await engines.withFreshStores { stores in
                try await ServerProcess.with(root: root, configure: stores.apply) { process, server in
                    try await workloads(server, url: "http://127.0.0.1:\(process.port)", root: root, quick: quick)
                }
            }
        case .twoInstances:
            return try await engines.withFreshStores { stores in
                let configure = { (settings: inout ServerConfiguration) in
                    stores.apply(to: &settings)
                    settings.http.trustedProxies = ["127.0.0.1"]
                }
                let first = try await ServerProcess.start(root: root, name: "instance-1", configure: configure)
                defer { first.stop() }
                let second = try await ServerProcess.start(root: root, name: "instance-2", addUser: false, configure: configure)
                defer { second.stop() }
                let nginx = try await Nginx.start(directory: root + "/nginx", upstreams: [first.port, second.port])
                defer { nginx.stop() }
                return try await BenchServer.connect(port: nginx.port) { server in
                    try await workloads(server, url: "http://127.0.0.1:\(nginx.port)", root: root, quick: quick)
                }
            }
        }
    }

    /// `ferry-bench load`'s phases one after the other, then the initial syncs of
    /// `ferry-bench sync` (many small files, one large file), against the configuration at `url`.
    static func workloads(_ server: BenchServer, url: String, root: String, quick: Bool) async throws -> [Metric] {
        let stored = LoadBenchmark.Stored()
        var metrics: [Metric] = []
        for (index, phase) in LoadBenchmark.phases(quick: quick, clientDivisor: quick ? 4 : 1).enumerated() {
            let result = await LoadBenchmark.measure(phase, index: index, server: server, stored: stored)
            result.reportFailures(phase.name)
            metrics += [
                Metric(name: "\(phase.name): success", value: result.successPercent, unit: "%", goal: "100 %"),
                Metric(name: "\(phase.name): throughput", value: result.opsPerSecond, unit: "ops/s"),
                Metric(name: "\(phase.name): latency p50", value: result.latency(50), unit: "ms"),
                Metric(name: "\(phase.name): latency p95", value: result.latency(95), unit: "ms"),
                Metric(name: "\(phase.name): latency p99", value: result.latency(99), unit: "ms"),
            ]
        }
        let smallCount = quick ? 200 : 20_000
        let largeSize = quick ? 16 << 20 : 1 << 30
        var logger = Logger(label: "ferry-bench")
        logger.logLevel = .error
        let clients = root + "/clients"
        let (small, smallAPI) = try await SyncBenchmark.folder("small", serverURL: url, password: BenchServer.password, root: clients, logger: logger)
        let smallSeconds = try await SyncBenchmark.initialSync(small, smallFiles: smallCount)
        await smallAPI.close()
        try? FileManager.default.removeItem(atPath: small.folder.path)
        let (large, largeAPI) = try await SyncBenchmark.folder("large", serverURL: url, password: BenchServer.password, root: clients, logger: logger)
        let largeSeconds = try await SyncBenchmark.initialSync(large, largeFile: largeSize)
        await largeAPI.close()
        try? FileManager.default.removeItem(atPath: large.folder.path)
        metrics += [
            Metric(name: "initial sync, \(smallCount) small files (1–8 KiB)", value: Double(smallCount) / smallSeconds, unit: "files/s"),
            Metric(name: "initial sync, one \(largeSize >> 20) MiB file", value: Double(largeSize) / largeSeconds / 1e6, unit: "MB/s"),
        ]
        return metrics
    }

    /// The table: each success rate for every configuration; every other number for the
    /// cluster configurations, beside the reference's.
    static func rows(_ measured: [[Metric]]) -> [BenchRow] {
        let setups = Setup.allCases
        var rows: [BenchRow] = []
        for (index, reference) in measured[0].enumerated() {
            if reference.goal != nil {
                for (setup, metrics) in zip(setups, measured) {
                    rows.append(BenchRow(name: "\(reference.name), \(setup.label)", value: metrics[index].value, unit: reference.unit, goal: reference.goal))
                }
                continue
            }
            for (setup, metrics) in zip(setups, measured).dropFirst() {
                rows.append(BenchRow(name: "\(reference.name), \(setup.label)", value: metrics[index].value, unit: reference.unit,
                                     reference: setups[0].label, referenceValue: reference.value))
            }
        }
        return rows
    }
}
