import Foundation

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

/// Runs a program, returning its standard output and error.
func run(_ executable: String, _ arguments: [String]) throws -> (out: String, err: String, status: Int32) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self), p.terminationStatus)
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
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}
