import FerryClient
import FerryCore
import FerryHarness
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `ferry-bench sync`'s large-archive phase (issue 25): a folder of many small files (1–4
/// KiB, 100 to a directory) synced in-process, a no-op full pass over it, then two real
/// `ferryd` on it (the second downloads it all), one change at a time propagated from the
/// first to the second, with both daemons' CPU per change and RSS: first as the daemons run
/// by default (passes scoped by the watcher), then with `full_passes` (every pass walks the
/// whole folder, as every pass did before) as the reference.
struct ArchiveBenchmark {
    let url: String
    let password: String
    let root: String
    let ferryd: String
    let count: Int
    let changes: Int
    let fullPassChanges: Int
    let logger: Logger

    /// Archives larger than this reach the second device as a copy, not a download.
    static let downloadLimit = 100_000

    func run() async throws -> [BenchRow] {
        var rows: [BenchRow] = []
        let label = count.formatted()
        let a = try await Device(name: "arc-a", benchmark: self)
        let b = try await Device(name: "arc-b", benchmark: self)

        // The archive, written and synced in-process with the index ferryd "arc-a" will use.
        try Self.writeArchive(in: a.folder, count: count)
        Glibc.sync()
        let index = try LocalIndex(path: a.stateHome + "/ferry/index.sqlite")
        let folderSync = try FolderSync(folder: a.folderConfig, index: index, api: a.api, deviceName: a.name, logger: logger)
        var report = PassReport()
        let initial = try await seconds { report = try await folderSync.syncUntilSettled() }
        guard report.uploadedFiles == count else { throw BenchError("the archive's sync uploaded \(report.uploadedFiles) of \(count)") }
        rows.append(BenchRow(name: "archive: initial sync, \(label) files (1–4 KiB)", value: Double(count) / initial, unit: "files/s", goal: "≥ 15,000 files/s"))
        let best = try await SyncBenchmark.noOpPass(folderSync, tries: 2)
        rows.append(BenchRow(name: "archive: no-op full pass over \(label) files", value: best, unit: "s", goal: "< 6 s"))
        try index.close()
        await a.api.close()
        await b.api.close()

        // Two daemons: the second downloads the whole archive (or, above `downloadLimit`
        // files, starts from a copy of it and only hashes it), then changes flow one by one.
        let copied = count > Self.downloadLimit
        if copied {
            guard try Child.wait(for: try Child.spawn("/bin/cp", ["-a", a.folder + "/.", b.folder + "/"], stdout: "/dev/null", stderr: b.home + "/cp.log")) == .exited(0)
            else { throw BenchError("cannot copy the archive; see \(b.home)/cp.log") }
        }
        var scoped = try await Daemons(a: a, b: b, fullPasses: false, benchmark: self)
        rows.append(BenchRow(name: copied ? "archive: a second ferryd starting from a copy (hash, compare, record)" : "archive: download to a second ferryd",
                             value: Double(count) / scoped.secondReady, unit: "files/s"))
        let fast = try await scoped.propagate(changes, tag: "scoped")
        let rss = scoped.residentBytes()
        let peak = scoped.residentBytes(field: "VmHWM")
        scoped.stop()
        var full = try await Daemons(a: a, b: b, fullPasses: true, benchmark: self)
        let slow = try await full.propagate(fullPassChanges, tag: "full")
        full.stop()

        let before = "every pass full (full_passes, as before)"
        rows.append(BenchRow(name: "archive: one change propagated, p50 (\(changes) changes)", value: fast.p50 * 1000, unit: "ms",
                             reference: before, referenceValue: slow.p50 * 1000, goal: "p50 < 250 ms"))
        rows.append(BenchRow(name: "archive: one change propagated, p99", value: fast.p99 * 1000, unit: "ms",
                             reference: before + ", max", referenceValue: slow.p99 * 1000, goal: "p99 < 1 s"))
        rows.append(BenchRow(name: "archive: CPU per change, sending ferryd", value: fast.cpuA * 1000, unit: "ms",
                             reference: before, referenceValue: slow.cpuA * 1000, goal: "< 50 ms"))
        rows.append(BenchRow(name: "archive: CPU per change, receiving ferryd", value: fast.cpuB * 1000, unit: "ms",
                             reference: before, referenceValue: slow.cpuB * 1000, goal: "< 50 ms"))
        rows.append(BenchRow(name: "archive: ferryd RSS watching \(label) files (largest of two)", value: Double(rss) / 1048576, unit: "MiB", goal: "< 300 MiB"))
        rows.append(BenchRow(name: "archive: ferryd peak RSS (VmHWM, largest of two: its full passes)", value: Double(peak) / 1048576, unit: "MiB"))
        return rows
    }

    /// One device of the benchmark user with its folder, state and runtime directories.
    struct Device {
        let name: String
        let home: String
        let api: ServerAPI
        let enrolled: RegisterDeviceResponse
        let folderConfig: FolderConfig

        var folder: String { home + "/folder" }
        var stateHome: String { home + "/state" }
        var socket: String { home + "/run/ferry/ferryd.sock" }

        init(name: String, benchmark: ArchiveBenchmark) async throws {
            self.name = name
            home = benchmark.root + "/" + name
            (api, enrolled) = try await ServerAPI.enroll(serverURL: benchmark.url, username: "bench", password: benchmark.password, deviceName: name)
            let library = try await api.library(named: "archive")
            folderConfig = FolderConfig(path: home + "/folder", libraryId: library.id, libraryName: "archive")
            try FileManager.default.createDirectory(atPath: home + "/folder/.ferry", withIntermediateDirectories: true)
        }

        /// Starts ferryd for this device; its config asks for full passes or not.
        func start(ferryd: String, url: String, fullPasses: Bool) throws -> pid_t {
            var config = ClientConfig(serverURL: url, username: "bench", deviceId: enrolled.device.id, deviceName: name, deviceToken: enrolled.token,
                                      folders: [folderConfig])
            config.settleMilliseconds = 50
            config.fullPasses = fullPasses
            try config.save(to: home + "/config.json")
            return try Child.spawn(ferryd, ["--config", home + "/config.json", "--log-level", "warning"], stdout: home + "/out.log", stderr: home + "/err.log",
                             environment: Child.inherited(adding: ["XDG_STATE_HOME": stateHome, "XDG_RUNTIME_DIR": home + "/run"]))
        }
    }

    /// Both daemons running, each past its first pass.
    struct Daemons {
        let a: Device, b: Device
        var pids: [pid_t]
        /// Seconds until the second daemon's first pass was done (the whole download, the first time).
        let secondReady: Double
        let root: String

        init(a: Device, b: Device, fullPasses: Bool, benchmark: ArchiveBenchmark) async throws {
            self.a = a
            self.b = b
            root = benchmark.root
            let start = ContinuousClock.now
            pids = [try a.start(ferryd: benchmark.ferryd, url: benchmark.url, fullPasses: fullPasses),
                    try b.start(ferryd: benchmark.ferryd, url: benchmark.url, fullPasses: fullPasses)]
            let limit = Duration.seconds(max(120, benchmark.count / 50))
            var ready: [Double] = []
            for device in [b, a] {
                guard try await SyncBenchmark.poll(timeout: limit, { SyncBenchmark.firstPassDone(device.socket) }) else {
                    throw BenchError("ferryd \(device.name) did not finish its first pass; see \(device.home)/err.log")
                }
                ready.append((ContinuousClock.now - start).timeInterval)
            }
            secondReady = ready[0]
        }

        struct Result {
            var p50: Double
            var p99: Double
            /// CPU seconds per change of each daemon.
            var cpuA: Double
            var cpuB: Double
        }

        /// Writes `count` new files into the first folder, one at a time, in directories
        /// across the archive, each timed until it is complete in the second.
        func propagate(_ count: Int, tag: String) async throws -> Result {
            let directories = max(1, try FileManager.default.contentsOfDirectory(atPath: a.folder).filter { $0.hasPrefix("d") }.count)
            let cpuBefore = pids.map(Self.cpuSeconds)
            var latencies: [Double] = []
            for i in 0..<count {
                let path = "d\((i * 7919) % directories)/\(tag)-\(i).txt"
                let content = Data("change \(i) \(UUID().uuidString)\n".utf8)
                let start = ContinuousClock.now
                guard FileManager.default.createFile(atPath: a.folder + "/" + path, contents: content) else { throw BenchError("cannot write \(path)") }
                guard try await SyncBenchmark.poll(timeout: .seconds(300), { FileManager.default.contents(atPath: b.folder + "/" + path) == content }) else {
                    throw BenchError("\(path) did not arrive within 300 s")
                }
                latencies.append((ContinuousClock.now - start).timeInterval)
            }
            // Both daemons settle (the sender's feed brings its own commit back) before the CPU is read.
            try await Task.sleep(for: .seconds(1))
            let cpu = zip(pids.map(Self.cpuSeconds), cpuBefore).map { ($0 - $1) / Double(count) }
            FileHandle.standardError.write(Data("\(tag) latencies (ms): \(latencies.map { Int($0 * 1000) })\n".utf8))
            let sorted = latencies.sorted()
            return Result(p50: sorted[sorted.count / 2], p99: sorted[min(sorted.count - 1, sorted.count * 99 / 100)], cpuA: cpu[0], cpuB: cpu[1])
        }

        func residentBytes(field: String = "VmRSS") -> Int { pids.map { SyncBenchmark.residentBytes($0, field: field) }.max() ?? 0 }

        mutating func stop() {
            for pid in pids { kill(pid, SIGTERM) }
            for pid in pids { _ = try? Child.wait(for: pid) }
            pids = []
        }

        /// User plus system CPU time of a process so far, in seconds.
        static func cpuSeconds(_ pid: pid_t) -> Double {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return 0 }
            // Fields after the command name: state is field 3, utime 14, stime 15.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
            return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
        }
    }

    /// `count` files of 1–4 KiB, 100 to a directory.
    static func writeArchive(in folder: String, count: Int) throws {
        var bytes = [UInt8](repeating: 0, count: 4096)
        for i in 0..<count {
            let dir = folder + "/d\(i / 100)"
            if i % 100 == 0 { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            let size = 1024 + (i &* 7919) % 3072
            SyncBenchmark.fill(&bytes, count: size, seed: i + 1)
            let fd = open(dir + "/f\(i).bin", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw BenchError("cannot write \(dir)/f\(i).bin") }
            defer { close(fd) }
            guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, size) }) == size else { throw BenchError("cannot write \(dir)/f\(i).bin") }
        }
    }
}
