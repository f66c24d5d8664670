#if canImport(Glibc)
import Glibc
#endif

/// Whether a host names this machine only, decided from its text alone (no DNS): the
/// server serves plain HTTP only there unless told otherwise, and `ferry login` sends a
/// password over plain HTTP only there (SPEC §8).
public enum LoopbackHost {
    /// `localhost`, an address in 127.0.0.0/8, `::1` (bracketed or not) or an IPv4-mapped
    /// loopback address. Anything else, `0.0.0.0` and `::` included, reaches a network.
    public static func contains(_ host: String) -> Bool {
        var text = host.lowercased()
        if text.hasPrefix("[") && text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        if text == "localhost" || text == "localhost." { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { $0[0] } == 127
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return false }
        let b = withUnsafeBytes(of: &v6) { Array($0) }
        if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return true }
        return b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF && b[12] == 127
    }
}
