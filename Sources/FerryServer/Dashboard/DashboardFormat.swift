#if canImport(Glibc)
import Glibc
#endif
import FerryCore
import Foundation

/// A moment as a page shows it: UTC to the minute for readers without JavaScript, and the
/// ISO form for `<time datetime>`, from which the script rewrites it in the reader's time
/// zone. Templates show one with the `time` partial.
struct Stamp {
    let shown: String
    let iso: String

    init(_ date: Date) {
        shown = DashboardFormat.time(date)
        iso = DashboardFormat.iso(date)
    }
}

/// How the dashboard writes sizes, times and query strings.
enum DashboardFormat {
    /// `512 B`, `1.5 KiB`, `20 MiB`, …
    static func size(_ bytes: Int64) -> String {
        guard bytes >= 1024 else { return "\(bytes) B" }
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes) / 1024
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return value < 10 ? String(format: "%.1f %@", value, units[unit]) : String(format: "%.0f %@", value, units[unit])
    }

    /// A time as the page shows it without JavaScript (UTC, to the minute); the script
    /// rewrites it in the reader's time zone from the `datetime` attribute (`iso`).
    static func time(_ date: Date) -> String {
        let t = utc(date)
        return String(format: "%04d-%02d-%02d %02d:%02d UTC", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min)
    }

    /// `2026-11-20T14:03:09Z`, for `<time datetime>`.
    static func iso(_ date: Date) -> String {
        let t = utc(date)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)
    }

    private static func utc(_ date: Date) -> tm {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return parts
    }

    static func date(nanoseconds: Int64) -> Date { Date(timeIntervalSince1970: Double(nanoseconds) / 1e9) }

    /// Percent-encodes a query value (a path may hold `&`, `+`, `#` or spaces).
    static func query(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: queryAllowed) ?? ""
    }

    private static let queryAllowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~/"))

    /// A URL path segment (an id from the store).
    static func segment(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? ""
    }
}
