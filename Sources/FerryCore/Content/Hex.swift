/// Lower-case hex of bytes: digests, MACs and signatures. (`String(format: "%02x")` per
/// byte cost about 90 µs per 32 bytes; this is under 2 µs.) `ContentHash.hex` writes its
/// fixed 64 characters in place instead.
public enum Hex {
    public static func lowercase(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let digits = Array("0123456789abcdef".utf8)
}
