import Crypto
import Foundation

/// A SHA-256 digest, written on the wire as 64 lowercase hex characters.
///
/// The 32 bytes are held inline as four big-endian words, not in an array: a sync handles
/// hundreds of thousands of hashes (chunk lists, sets, dictionary keys, JSON), and an array
/// per hash was an allocation each and a retain/release on every copy.
public struct ContentHash: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    private let w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    /// SHA-256 of no bytes: the hash of every empty file.
    public static let empty = ContentHash(SHA256.hash(data: [UInt8]()))

    public init(_ digest: SHA256Digest) {
        self = digest.withUnsafeBytes { ContentHash(words: $0) }
    }

    /// Wraps 32 raw bytes; nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        if let hash = bytes.withContiguousStorageIfAvailable({ ContentHash(words: UnsafeRawBufferPointer($0)) }) {
            self = hash
        } else {
            self = Array(bytes).withUnsafeBytes { ContentHash(words: $0) }
        }
    }

    /// Reads 32 bytes (the caller checked the count) as four big-endian words.
    private init(words raw: UnsafeRawBufferPointer) {
        w0 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        w1 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        w2 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        w3 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    private init(_ w0: UInt64, _ w1: UInt64, _ w2: UInt64, _ w3: UInt64) {
        (self.w0, self.w1, self.w2, self.w3) = (w0, w1, w2, w3)
    }

    /// Parses 64 hex characters (either case); nil for anything else.
    public init?(hex: some StringProtocol) {
        var text = String(hex)
        guard let parsed = text.withUTF8({ Self.parse(hex: UnsafeRawBufferPointer($0)) }) else { return nil }
        self = parsed
    }

    /// Parses 64 hex characters from raw UTF-8 bytes (either case); nil for anything else.
    public static func parse(hex utf8: UnsafeRawBufferPointer) -> ContentHash? {
        guard utf8.count == 64 else { return nil }
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        for w in 0..<4 {
            var word: UInt64 = 0
            for i in 0..<16 {
                guard let nibble = Self.nibble(utf8[16 * w + i]) else { return nil }
                word = word << 4 | UInt64(nibble)
            }
            switch w {
            case 0: words.0 = word
            case 1: words.1 = word
            case 2: words.2 = word
            default: words.3 = word
            }
        }
        return ContentHash(words.0, words.1, words.2, words.3)
    }

    /// The 32 digest bytes, in order.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The 32 digest bytes as `Data`: how the databases store a hash.
    public var data: Data { withUnsafeBytes { Data($0) } }

    /// Calls `body` with the 32 digest bytes, in order.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var words = (w0.bigEndian, w1.bigEndian, w2.bigEndian, w3.bigEndian)
        return try Swift.withUnsafeBytes(of: &words) { try body($0) }
    }

    /// 64 lowercase hex characters, as `sha256sum` prints.
    public var hex: String {
        String(unsafeUninitializedCapacity: 64) { out in
            writeHex(into: UnsafeMutableRawBufferPointer(out))
            return 64
        }
    }

    /// Writes the 64 lowercase hex characters into the first 64 bytes of `out`.
    public func writeHex(into out: UnsafeMutableRawBufferPointer) {
        withUnsafeBytes { digest in
            for (i, byte) in digest.enumerated() {
                out[2 * i] = Self.hexDigit(byte >> 4)
                out[2 * i + 1] = Self.hexDigit(byte & 0xF)
            }
        }
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }

    /// Hashes a whole buffer at once, in place when its bytes are contiguous (a byte
    /// buffer's view, an array, a slice): copying 1 GiB of uploaded chunks into arrays first
    /// cost the server about 3 % of its time.
    public static func of(_ data: some Sequence<UInt8>) -> ContentHash {
        if let hash = data.withContiguousStorageIfAvailable({ ContentHash(SHA256.hash(data: UnsafeRawBufferPointer($0))) }) {
            return hash
        }
        return ContentHash(SHA256.hash(data: Array(data)))
    }

    public var description: String { hex }
    public static func < (a: ContentHash, b: ContentHash) -> Bool { (a.w0, a.w1, a.w2, a.w3) < (b.w0, b.w1, b.w2, b.w3) }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let h = ContentHash(hex: s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected a SHA-256 as 64 hex characters")
        }
        self = h
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(hex)
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// Incremental SHA-256 over data that arrives in pieces.
public struct StreamingHasher: Sendable {
    private var state = SHA256()
    /// Bytes hashed so far.
    public private(set) var count: Int64 = 0

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        state.update(bufferPointer: bytes)
        count += Int64(bytes.count)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest of everything hashed; the hasher must not be used afterwards.
    public func finalize() -> ContentHash { ContentHash(state.finalize()) }
}
