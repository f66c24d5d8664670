import ArgumentParser
import FerryCore
import FerryHarness
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One measured row: Ferry's number beside a reference measured in the same run.
struct BenchRow: Encodable {
    var name: String
    var value: Double
    var unit: String
    var reference: String?
    var referenceValue: Double?
    var goal: String?

    var ratio: Double? { referenceValue.map { value / $0 } }

    enum CodingKeys: String, CodingKey { case name, value, unit, reference, referenceValue = "reference_value", goal, ratio }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(value, forKey: .value)
        try c.encode(unit, forKey: .unit)
        try c.encodeIfPresent(reference, forKey: .reference)
        try c.encodeIfPresent(referenceValue, forKey: .referenceValue)
        try c.encodeIfPresent(goal, forKey: .goal)
        try c.encodeIfPresent(ratio, forKey: .ratio)
    }
}

/// A benchmark's results with the machine they were measured on.
struct BenchReport: Encodable {
    var benchmark: String
    var mode: String
    var machine: [String: String]
    var rows: [BenchRow]

    /// The Markdown table printed to stdout.
    var markdown: String {
        var out = "| measurement | Ferry | reference | ratio | goal |\n|---|---|---|---|---|\n"
        for r in rows {
            let ref = r.referenceValue.map { "\(Self.format($0)) \(r.unit) (\(r.reference ?? ""))" } ?? (r.reference ?? "")
            let ratio = r.ratio.map { String(format: "%.0f %%", $0 * 100) } ?? ""
            out += "| \(r.name) | \(Self.format(r.value)) \(r.unit) | \(ref) | \(ratio) | \(r.goal ?? "") |\n"
        }
        return out
    }

    static func format(_ v: Double) -> String {
        v >= 100 ? String(format: "%.0f", v) : String(format: "%.2f", v)
    }

    /// Prints the Markdown table and writes the JSON file if one was asked for.
    func emit(json: String?) throws {
        print(markdown)
        guard let json else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(self).write(to: URL(fileURLWithPath: json))
    }

    static func machine() -> [String: String] {
        var m: [String: String] = ["cores": String(ProcessInfo.processInfo.activeProcessorCount),
                                   "memory_gib": String(ProcessInfo.processInfo.physicalMemory >> 30)]
        if let cpu = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
            .split(separator: "\n").first(where: { $0.hasPrefix("model name") })?.split(separator: ":").last {
            m["cpu"] = cpu.trimmingCharacters(in: .whitespaces)
        }
        return m
    }
}

/// Runs a program, returning its standard output and error. The child starts with an empty
/// signal mask and default signal handling: it must not inherit the signals this process
/// blocks for its own threads (`openssl speed` times itself with SIGALRM and never stops
/// when that signal arrives blocked).
func run(_ executable: String, _ arguments: [String]) throws -> (out: String, err: String, status: Int32) {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-bench-run-\(UUID().uuidString)").path
    let outPath = scratch + ".out", errPath = scratch + ".err"
    defer {
        try? FileManager.default.removeItem(atPath: outPath)
        try? FileManager.default.removeItem(atPath: errPath)
    }
    let exit = try Child.wait(for: try Child.spawn(executable, arguments, stdout: outPath, stderr: errPath)).status
    let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    return (out, err, exit)
}

/// Finds a program on PATH.
func which(_ name: String) -> String? {
    (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        .map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// Wall time of `body` in seconds, on a monotonic clock.
func seconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    let d = ContinuousClock.now - start
    return d.timeInterval
}

/// Options every benchmark takes.
struct BenchOptions: ParsableArguments {
    @Flag(help: "Small sizes (finishes in well under a minute).") var quick = false
    @Option(help: "Directory under which a scratch directory for test files and server data is made (default: the system temporary directory).") var dataRoot: String?
    @Option(help: "Also write the results as JSON to this file.") var json: String?
    @Flag(help: "Keep the generated files.") var keep = false
    @Option(help: "Keep the server's metadata in this PostgreSQL database (an empty one) instead of SQLite; for the benchmarks that start the server binary.")
    var metadataURL: String?

    /// A fresh directory of the benchmark's own, so removing it afterwards never touches
    /// anything the caller keeps under --data-root.
    func makeScratch() throws -> String {
        let root = (dataRoot ?? FileManager.default.temporaryDirectory.path) + "/ferry-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        return root
    }

    func removeScratch(_ root: String) {
        if !keep { try? FileManager.default.removeItem(atPath: root) }
    }
}
