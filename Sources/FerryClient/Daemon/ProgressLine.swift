import FerryCore

/// The one-line progress `ferry sync` redraws on a terminal, and the byte counts of
/// `ferry status`: pure text from a `TransferProgress.Snapshot`.
public enum ProgressLine {
    /// E.g. `42% 42.0 MiB of 100.0 MiB, 3 of 7 files, 8.4 MiB/s, 0:07 left`, or while the pass
    /// still hashes, `scanning: 12.0 MiB hashed, 6.0 MiB sent, 4.0 MiB/s` (the rate is the
    /// hashing's). `elapsed` is the time since the snapshot's phase began; under half a
    /// second gives no rate yet.
    public static func format(_ s: TransferProgress.Snapshot, elapsed: Duration) -> String {
        let seconds = elapsed.timeInterval
        guard let planned = s.plannedBytes else {
            var line = "scanning: \(bytes(s.hashedBytes)) hashed"
            if s.doneBytes > 0 { line += ", \(bytes(s.doneBytes)) sent" }
            if seconds >= 0.5 { line += ", \(bytes(Int64(Double(s.hashedBytes) / seconds)))/s" }
            return line
        }
        let done = min(s.doneBytes, planned)
        let percent = planned > 0 ? Int(done * 100 / planned) : 100
        var line = "\(percent)% \(bytes(done)) of \(bytes(planned)), \(min(s.doneFiles, s.plannedFiles)) of \(s.plannedFiles) files"
        guard seconds >= 0.5 else { return line }
        let rate = Double(done) / seconds
        line += ", \(bytes(Int64(rate)))/s"
        if rate >= 1, planned > done { line += ", \(clock(Int64((Double(planned - done) / rate).rounded(.up)))) left" }
        return line
    }

    /// Bytes in binary units: `512 B`, `1.5 KiB`, `42.0 MiB`, `1.2 GiB`.
    public static func bytes(_ n: Int64) -> String {
        let units = ["KiB", "MiB", "GiB", "TiB"]
        guard n >= 1024 else { return "\(n) B" }
        var value = Double(n) / 1024
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }

    /// A duration as `m:ss` or `h:mm:ss`.
    public static func clock(_ seconds: Int64) -> String {
        let h = seconds / 3600, m = seconds / 60 % 60, s = seconds % 60
        let ss = s < 10 ? "0\(s)" : "\(s)"
        if h > 0 { return "\(h):\(m < 10 ? "0" : "")\(m):\(ss)" }
        return "\(m):\(ss)"
    }
}
