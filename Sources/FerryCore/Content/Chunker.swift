import Foundation

/// FastCDC parameters. They are part of the wire protocol: two peers must cut the same
/// content at the same places, so changing them is a protocol version change.
public struct ChunkerParameters: Sendable, Equatable {
    /// No cut before this many bytes into a chunk (cut-point skipping).
    public let minSize: Int
    /// The target size; normalised chunking makes cuts harder before it and easier after.
    public let avgSize: Int
    /// A chunk is cut here whatever the content.
    public let maxSize: Int

    /// Protocol v1: 256 KiB / 1 MiB / 4 MiB, normalisation level 2 (see docs/protocol.md).
    public static let v1 = ChunkerParameters(minSize: 256 * 1024, avgSize: 1024 * 1024, maxSize: 4 * 1024 * 1024)

    public init(minSize: Int, avgSize: Int, maxSize: Int) {
        precondition(0 < minSize && minSize <= avgSize && avgSize <= maxSize, "chunker sizes must satisfy 0 < min ≤ avg ≤ max")
        precondition(avgSize & (avgSize - 1) == 0, "chunker average size must be a power of two")
        self.minSize = minSize
        self.avgSize = avgSize
        self.maxSize = maxSize
        let bits = avgSize.trailingZeroBitCount
        // Gear hashing shifts left, so the high bits carry the most recent 64 bytes: test those.
        self.maskSmall = ~UInt64(0) << UInt64(64 - (bits + 2))
        self.maskLarge = ~UInt64(0) << UInt64(64 - max(bits - 2, 1))
    }

    let maskSmall: UInt64
    let maskLarge: UInt64
}

/// A chunk of content: its SHA-256 and length.
public struct ChunkRef: Hashable, Sendable, Codable {
    public var sha256: ContentHash
    public var size: Int64

    public init(sha256: ContentHash, size: Int64) {
        self.sha256 = sha256
        self.size = size
    }
}

/// What the chunker learned from a whole stream: size, whole-file SHA-256 and chunk list.
public struct ContentManifest: Hashable, Sendable, Codable {
    public var size: Int64
    public var sha256: ContentHash
    public var chunks: [ChunkRef]

    public init(size: Int64, sha256: ContentHash, chunks: [ChunkRef]) {
        self.size = size
        self.sha256 = sha256
        self.chunks = chunks
    }
}

/// A consecutive run of input bytes handed to a chunker's sink. Pieces tile the input in
/// order; the piece that ends a chunk carries that chunk's reference.
public struct ChunkPiece {
    public let bytes: UnsafeRawBufferPointer
    public let completes: ChunkRef?
}

/// Streams bytes through FastCDC (gear hash, cut-point skipping, normalised chunking) and
/// SHA-256, producing the chunk list and the whole-content hash in one pass with memory
/// bounded by the caller's buffer.
public struct ContentChunker: Sendable {
    public let parameters: ChunkerParameters
    /// False when the caller hashes the whole content itself (e.g. on another core).
    let hashesWholeContent: Bool
    private var fileHasher = StreamingHasher()
    private var consumed: Int64 = 0
    private var chunkHasher = StreamingHasher()
    private var chunkLength = 0
    private var gear: UInt64 = 0
    private(set) var chunks: [ChunkRef] = []

    public init(parameters: ChunkerParameters = .v1) {
        self.init(parameters: parameters, hashesWholeContent: true)
    }

    init(parameters: ChunkerParameters, hashesWholeContent: Bool) {
        self.parameters = parameters
        self.hashesWholeContent = hashesWholeContent
    }

    /// Feeds the next bytes; `sink` sees them again as pieces cut at chunk boundaries.
    public mutating func update(_ bytes: UnsafeRawBufferPointer, _ sink: (ChunkPiece) throws -> Void) rethrows {
        if hashesWholeContent { fileHasher.update(bytes) }
        consumed += Int64(bytes.count)
        var start = 0
        while start < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[start...])
            if let cut = findCut(in: rest) {
                let piece = UnsafeRawBufferPointer(rebasing: rest[..<cut])
                chunkHasher.update(piece)
                let ref = ChunkRef(sha256: chunkHasher.finalize(), size: chunkHasher.count)
                chunks.append(ref)
                chunkHasher = StreamingHasher()
                chunkLength = 0
                gear = 0
                try sink(ChunkPiece(bytes: piece, completes: ref))
                start += cut
            } else {
                chunkHasher.update(rest)
                chunkLength += rest.count
                try sink(ChunkPiece(bytes: rest, completes: nil))
                start = bytes.count
            }
        }
    }

    /// Feeds bytes held in an array.
    public mutating func update(_ bytes: [UInt8], _ sink: (ChunkPiece) throws -> Void) rethrows {
        try bytes.withUnsafeBytes { try update($0, sink) }
    }

    /// Ends the stream: cuts the last chunk (if any bytes remain) and returns the manifest.
    public mutating func finish(_ sink: (ChunkPiece) throws -> Void) rethrows -> ContentManifest {
        if chunkLength > 0 {
            let ref = ChunkRef(sha256: chunkHasher.finalize(), size: chunkHasher.count)
            chunks.append(ref)
            chunkHasher = StreamingHasher()
            chunkLength = 0
            gear = 0
            try sink(ChunkPiece(bytes: UnsafeRawBufferPointer(start: nil, count: 0), completes: ref))
        }
        return ContentManifest(size: consumed, sha256: fileHasher.finalize(), chunks: chunks)
    }

    /// Feeds bytes when only the manifest is wanted.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) { update(bytes) { _ in } }

    /// Feeds bytes held in an array when only the manifest is wanted.
    public mutating func update(_ bytes: [UInt8]) { update(bytes) { _ in } }

    /// Ends the stream when only the manifest is wanted.
    public mutating func finish() -> ContentManifest { finish { _ in } }

    /// Returns how many bytes of `data` belong to the current chunk if it ends inside `data`,
    /// advancing the rolling hash either way. Byte `i` of `data` sits at `chunkLength + i`.
    private mutating func findCut(in data: UnsafeRawBufferPointer) -> Int? {
        let p = parameters
        let n = data.count
        let base = chunkLength
        // Cut-point skipping: nothing before minSize can be a boundary, so do not roll there.
        var i = min(max(p.minSize - base, 0), n)
        var hash = gear
        defer { gear = hash }
        return GearTable.values.withUnsafeBufferPointer { table -> Int? in
            // Two bytes per step: the hash after both is (hash << 2) + (g0 << 1) + g1, so the
            // chain from one hash to the next is one shift and one add per two bytes instead
            // of per byte; the hash after the first byte is only checked, off that chain.
            // Same hashes, same cuts (the pinned v1 cut test holds this).
            func roll(to end: Int, mask: UInt64) -> Int? {
                while i + 1 < end {
                    let g0 = table[Int(data[i])], g1 = table[Int(data[i + 1])]
                    let first = (hash &<< 1) &+ g0
                    if first & mask == 0 {
                        hash = first
                        i += 1
                        return i
                    }
                    hash = (hash &<< 2) &+ ((g0 &<< 1) &+ g1)
                    i += 2
                    if hash & mask == 0 { return i }
                }
                if i < end {
                    hash = (hash &<< 1) &+ table[Int(data[i])]
                    i += 1
                    if hash & mask == 0 { return i }
                }
                return nil
            }
            // Normalised chunking: a harder mask before avgSize, an easier one after it.
            if let cut = roll(to: min(n, max(p.avgSize - base, 0)), mask: p.maskSmall) { return cut }
            if let cut = roll(to: min(n, p.maxSize - base), mask: p.maskLarge) { return cut }
            return base + i >= p.maxSize ? i : nil
        }
    }
}

/// The gear table: 256 pseudo-random 64-bit values from SplitMix64 seeded with a fixed
/// constant. Part of protocol v1.
enum GearTable {
    static let values: [UInt64] = {
        var state: UInt64 = 0x4665_7272_7956_3031  // "FerryV01"
        return (0..<256).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }()
}

/// A chunk list packed for storage: 32 bytes of SHA-256 and an 8-byte big-endian size per
/// chunk. Used by the server's database and the client's index.
public enum PackedChunkList {
    public static func encode(_ chunks: [ChunkRef]) -> Data {
        var out = Data(capacity: chunks.count * 40)
        for c in chunks {
            c.sha256.withUnsafeBytes { out.append(contentsOf: $0) }
            // Bit for bit: a size a server should never send (a negative one) round-trips for
            // the client to refuse, instead of trapping here.
            withUnsafeBytes(of: UInt64(bitPattern: c.size).bigEndian) { out.append(contentsOf: $0) }
        }
        return out
    }

    /// The chunks, or nil when `data` is not a whole number of 40-byte records.
    public static func decode(_ data: Data) -> [ChunkRef]? {
        guard data.count % 40 == 0 else { return nil }
        return data.withUnsafeBytes { bytes in
            stride(from: 0, to: bytes.count, by: 40).compactMap { i in
                let size = bytes[(i + 32)..<(i + 40)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                return ContentHash(bytes: UnsafeRawBufferPointer(rebasing: bytes[i..<(i + 32)])).map { ChunkRef(sha256: $0, size: Int64(bitPattern: size)) }
            }
        }
    }

    /// The size `hash` has in the packed list `bytes`, nil when no record holds it (or
    /// `bytes` is not a whole number of records). Compares the records in place: asking
    /// once per chunk of a large file costs no decoded list each time.
    public static func size(of hash: ContentHash, in bytes: UnsafeRawBufferPointer) -> Int64? {
        guard bytes.count % 40 == 0 else { return nil }
        for i in stride(from: 0, to: bytes.count, by: 40) where ContentHash(bytes: UnsafeRawBufferPointer(rebasing: bytes[i..<(i + 32)])) == hash {
            return Int64(bitPattern: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: i + 32, as: UInt64.self)))
        }
        return nil
    }
}
