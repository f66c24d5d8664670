import ArgumentParser
import FerryClient
import FerryCore
import FerryHarness
import FerryServer
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `ferry-bench sync`: the client end to end against the real server on loopback: initial
/// sync of many small files and of one large file, a no-op rescan, and propagation latency
/// and memory of two real `ferryd` processes.
struct SyncBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sync", abstract: "Initial sync, no-op rescan, daemon propagation latency and RSS.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Files in the large-archive phase (default 1,000,000; 5,000 with --quick; 0 leaves it out).") var archiveFiles: Int?
    @Flag(help: "Run only the large-archive phase.") var onlyArchive = false

    func run() async throws {
        let root = try options.makeScratch()
        defer { options.removeScratch(root) }
        let quick = options.quick
        let smallCount = quick ? 2000 : 20_000
        let rescanCount = quick ? 2000 : 100_000
        let largeSize = quick ? 64 << 20 : 1 << 30
        let propagationCount = quick ? 20 : 100
        let archiveCount = archiveFiles ?? (quick ? 5000 : 1_000_000)
        guard let ferryd = Self.sibling("ferryd") else { throw BenchError("ferryd is not built next to ferry-bench; run 'swift build' first") }

        var configuration = ServerConfiguration()
        configuration.dataDirectory = root + "/server"
        configuration.port = 0
        configuration.storage.reserveBytes = 0
        var logger = Logger(label: "ferry-bench")
        logger.logLevel = .error
        let services = try await FerryServerApp.makeServices(configuration, logger: logger)
        let password = "bench-\(UUID().uuidString)"
        _ = try await services.store.createUser(username: "bench", passwordHash: try services.passwords.hash(password), isAdmin: false)
        let ddRate = try ddWriteRate(root + "/dd.test", megabytes: largeSize >> 20)

        let rows = try await FerryServerApp.withRunningServer(services) { port -> [BenchRow] in
            let url = "http://127.0.0.1:\(port)"
            var rows: [BenchRow] = []
            func folder(_ name: String) async throws -> (FolderSync, ServerAPI) {
                try await Self.folder(name, serverURL: url, password: password, root: root, logger: logger)
            }
            // 5. (First when alone.) The large archive: scoped against full passes.
            func archive() async throws -> [BenchRow] {
                guard archiveCount > 0 else { return [] }
                return try await ArchiveBenchmark(url: url, password: password, root: root, ferryd: ferryd, count: archiveCount,
                                                  changes: quick ? 10 : 50, fullPassChanges: quick ? 3 : 5, logger: logger).run()
            }
            if onlyArchive { return try await archive() }

            // 1. Initial sync of many small files (1–8 KiB, 100 directories).
            let (small, smallAPI) = try await folder("small")
            let smallSeconds = try await Self.initialSync(small, smallFiles: smallCount)
            rows.append(BenchRow(name: "initial sync, \(smallCount) small files (1–8 KiB)", value: Double(smallCount) / smallSeconds, unit: "files/s",
                                 goal: "≥ 3,000 files/s"))

            // 2. No-op rescan of a synced folder.
            if rescanCount > smallCount {
                try Self.writeSmallFiles(in: small.folder.path, count: rescanCount - smallCount, from: smallCount)
                _ = try await small.syncUntilSettled()
            }
            let best = try await Self.noOpPass(small, tries: 3)
            rows.append(BenchRow(name: "no-op pass over \(rescanCount) synced files (scan + plan)", value: best, unit: "s", goal: "< 1 s"))
            await smallAPI.close()

            // 3. Initial sync of one large file, next to the disk's fsync'd write rate.
            let (large, largeAPI) = try await folder("large")
            let largeSeconds = try await Self.initialSync(large, largeFile: largeSize)
            rows.append(BenchRow(name: "initial sync, one \(largeSize >> 20) MiB file", value: Double(largeSize) / largeSeconds / 1e6, unit: "MB/s",
                                 reference: "dd bs=1M conv=fsync, same disk", referenceValue: ddRate, goal: "≥ 70 % of dd"))
            await largeAPI.close()

            // 4. Two real ferryd processes: propagation latency and memory.
            let (latencies, rss) = try await Self.propagation(ferryd: ferryd, url: url, password: password, root: root, count: propagationCount)
            let sorted = latencies.sorted()
            rows.append(BenchRow(name: "propagation between two ferryd, p50 (\(propagationCount) files)", value: sorted[sorted.count / 2] * 1000, unit: "ms",
                                 goal: "p50 < 250 ms"))
            rows.append(BenchRow(name: "propagation between two ferryd, p99", value: sorted[min(sorted.count - 1, sorted.count * 99 / 100)] * 1000, unit: "ms"))
            rows.append(BenchRow(name: "ferryd RSS after propagation (largest of two)", value: Double(rss) / 1048576, unit: "MiB", goal: "< 64 MiB"))
            return rows + (try await archive())
        }
        try BenchReport(benchmark: "sync", mode: quick ? "quick" : "full", machine: BenchReport.machine(), rows: rows).emit(json: options.json)
    }

    /// A folder of its own syncing with the server at `serverURL` (`http://HOST:PORT`): a
    /// device enrolled as "bench", the library `name`, the folder `root/name` and its index.
    static func folder(_ name: String, serverURL url: String, password: String, root: String, logger: Logger) async throws -> (FolderSync, ServerAPI) {
        let (api, _) = try await ServerAPI.enroll(serverURL: url, username: "bench", password: password, deviceName: "bench-\(name)")
        let library = try await api.library(named: name)
        let path = root + "/" + name
        try FileManager.default.createDirectory(atPath: path + "/.ferry", withIntermediateDirectories: true)
        let index = try LocalIndex(path: root + "/state-\(name)/index.sqlite")
        let sync = try FolderSync(folder: FolderConfig(path: path, libraryId: library.id, libraryName: name), index: index, api: api,
                                  deviceName: "bench-\(name)", logger: logger)
        return (sync, api)
    }

    /// Writes `count` small files (1–8 KiB, 100 directories) into an empty synced folder and
    /// times its sync until settled; seconds.
    static func initialSync(_ folder: FolderSync, smallFiles count: Int) async throws -> Double {
        try writeSmallFiles(in: folder.folder.path, count: count, from: 0)
        sync()  // the inputs on disk first, as in writeRandomFile
        var report = PassReport()
        let elapsed = try await seconds { report = try await folder.syncUntilSettled() }
        guard report.uploadedFiles == count else { throw BenchError("small-file sync uploaded \(report.uploadedFiles) of \(count)") }
        return elapsed
    }

    /// Writes one random file of `size` bytes into an empty synced folder and times its sync
    /// until settled; seconds.
    static func initialSync(_ folder: FolderSync, largeFile size: Int) async throws -> Double {
        try writeRandomFile(folder.folder.path + "/large.bin", size: size)
        return try await seconds { _ = try await folder.syncUntilSettled() }
    }

    /// The best time of `tries` passes over a synced folder that must find nothing to do; seconds.
    static func noOpPass(_ folder: FolderSync, tries: Int) async throws -> Double {
        var best = Double.infinity
        for _ in 0..<tries {
            var planned = -1
            best = min(best, try await seconds { planned = try await folder.pass().planned })
            guard planned == 0 else { throw BenchError("a no-op pass planned \(planned) actions") }
        }
        return best
    }

    /// Fills `bytes[..<count]` with file `seed`'s pseudo-random content (xorshift).
    static func fill(_ bytes: inout [UInt8], count: Int, seed: Int) {
        var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15
        for j in 0..<count {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            bytes[j] = UInt8(truncatingIfNeeded: state)
        }
    }

    static func writeSmallFiles(in folder: String, count: Int, from start: Int) throws {
        for i in start..<(start + count) {
            let dir = folder + "/d\(i % 100)"
            if i < start + 100 { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            var bytes = [UInt8](repeating: 0, count: 1024 + (i * 7919) % 7168)
            fill(&bytes, count: bytes.count, seed: i)
            guard FileManager.default.createFile(atPath: dir + "/f\(i).bin", contents: Data(bytes)) else { throw BenchError("cannot write \(dir)/f\(i).bin") }
        }
    }

    /// Starts two ferryd on two folders of one library, writes `count` files into the first
    /// one by one and times until each appears, complete, in the second.
    static func propagation(ferryd: String, url: String, password: String, root: String, count: Int) async throws -> ([Double], Int) {
        var pids: [pid_t] = []
        var folders: [String] = []
        defer {
            for pid in pids { kill(pid, SIGTERM) }
            for pid in pids { _ = try? Child.wait(for: pid) }
        }
        for name in ["pa", "pb"] {
            let (api, device) = try await ServerAPI.enroll(serverURL: url, username: "bench", password: password, deviceName: name)
            let library = try await api.library(named: "propagation")
            await api.close()
            let home = root + "/" + name
            let folder = home + "/folder"
            try FileManager.default.createDirectory(atPath: folder + "/.ferry", withIntermediateDirectories: true)
            var config = ClientConfig(serverURL: url, username: "bench", deviceId: device.device.id, deviceName: name, deviceToken: device.token,
                                      folders: [FolderConfig(path: folder, libraryId: library.id, libraryName: "propagation")])
            config.settleMilliseconds = 50
            try config.save(to: home + "/config.json")
            let pid = try Child.spawn(ferryd, ["--config", home + "/config.json", "--log-level", "warning"], stdout: home + "/out.log", stderr: home + "/err.log",
                                environment: Child.inherited(adding: ["XDG_STATE_HOME": home + "/state", "XDG_RUNTIME_DIR": home + "/run"]))
            pids.append(pid)
            folders.append(folder)
        }
        // Both daemons are up once each answers on its socket with a finished first pass.
        for name in ["pa", "pb"] {
            let socket = root + "/" + name + "/run/ferry/ferryd.sock"
            guard try await poll(timeout: .seconds(30), { Self.firstPassDone(socket) }) else { throw BenchError("ferryd \(name) did not start; see \(root)/\(name)/err.log") }
        }
        var latencies: [Double] = []
        for i in 0..<count {
            let content = Data("file \(i) \(UUID().uuidString)\n".utf8)
            let target = folders[1] + "/p\(i).txt"
            let start = ContinuousClock.now
            guard FileManager.default.createFile(atPath: folders[0] + "/p\(i).txt", contents: content) else { throw BenchError("cannot write") }
            guard try await poll(timeout: .seconds(30), { FileManager.default.contents(atPath: target) == content }) else {
                throw BenchError("file \(i) did not arrive within 30 s")
            }
            let d = ContinuousClock.now - start
            latencies.append(d.timeInterval)
        }
        let rss = pids.map { Self.residentBytes($0) }.max() ?? 0
        return (latencies, rss)
    }

    static func firstPassDone(_ socket: String) -> Bool {
        guard case .status(let status)? = try? ControlSocket.ask(path: socket, .status, timeoutSeconds: 2) else { return false }
        return status.folders.allSatisfy { $0.lastSyncAt != nil }
    }

    static func poll(timeout: Duration, _ condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(1))
        }
        return condition()
    }

    /// VmRSS (or another size `field` of /proc/PID/status) of a process, in bytes.
    static func residentBytes(_ pid: pid_t, field: String = "VmRSS") -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }),
              let kb = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kb * 1024
    }

    /// A program built next to this one.
    static func sibling(_ name: String) -> String? {
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let path = (me as NSString).deletingLastPathComponent + "/" + name
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }
}
