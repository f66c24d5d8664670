import Foundation
import Testing

@testable import FerryCore

@Suite("FastCDC chunker")
struct ChunkerTests {
    static let sixteenMiB = randomBytes(16 << 20, seed: 1)

    func manifest(_ data: [UInt8], _ p: ChunkerParameters = .v1) -> ContentManifest {
        var c = ContentChunker(parameters: p)
        c.update(data)
        return c.finish()
    }

    @Test func sameContentSameCutsHoweverItIsFed() {
        let data = Self.sixteenMiB
        let whole = manifest(data)
        var split = ContentChunker()
        split.update(Array(data[0..<1]))
        split.update(Array(data[1...]))
        #expect(split.finish() == whole)
        var random = ContentChunker()
        var g = SeededGenerator(state: 99)
        var i = 0
        while i < data.count {
            let n = min(Int.random(in: 1...(3 << 20), using: &g), data.count - i)
            data.withUnsafeBytes { random.update(UnsafeRawBufferPointer(rebasing: $0[i..<(i + n)])) }
            i += n
        }
        #expect(random.finish() == whole)
    }

    /// The cut points are part of protocol v1: a faster chunker must cut exactly here, or
    /// every device re-uploads everything. Pinned from the first implementation.
    @Test func version1CutsWhereItAlwaysHas() {
        #expect(manifest(Self.sixteenMiB).chunks.map(\.size) == Self.version1Sizes)
        let small = manifest(randomBytes(1 << 20, seed: 5), ChunkerParameters(minSize: 64, avgSize: 256, maxSize: 1024))
        #expect(small.chunks.count == Self.smallCount)
        #expect(ContentHash.of(small.chunks.flatMap { withUnsafeBytes(of: $0.size.bigEndian, Array.init) }).hex == Self.smallSizesDigest)
    }

    static let version1Sizes: [Int64] = [
        1_220_058, 1_111_205, 902_155, 1_163_918, 1_111_415, 1_142_487, 1_488_461, 788_915, 1_215_393, 1_241_834, 1_261_619, 1_071_574,
        1_075_930, 1_503_568, 478_684,
    ]
    static let smallCount = 3591
    static let smallSizesDigest = "1a15b575e93fc32a4285b655f59aecf18e5c3795671958095282fbbc5f20dcd1"

    @Test func manifestInvariants() {
        let data = Self.sixteenMiB
        let m = manifest(data)
        let p = ChunkerParameters.v1
        #expect(m.size == Int64(data.count))
        #expect(m.sha256 == ContentHash.of(data))
        #expect(m.chunks.reduce(0) { $0 + $1.size } == m.size)
        for c in m.chunks.dropLast() { #expect((Int64(p.minSize)...Int64(p.maxSize)).contains(c.size)) }
        var offset = 0
        for c in m.chunks {
            #expect(c.sha256 == ContentHash.of(data[offset..<(offset + Int(c.size))]))
            offset += Int(c.size)
        }
    }

    @Test func sinkPiecesTileTheInputAndCompleteEachChunk() {
        let data = randomBytes(5 << 20, seed: 2)
        var c = ContentChunker()
        var all: [UInt8] = []
        var current: [UInt8] = []
        var completed: [ChunkRef] = []
        let feed = { (piece: ChunkPiece) in
            all += piece.bytes
            current += piece.bytes
            if let ref = piece.completes {
                #expect(ContentHash.of(current) == ref.sha256)
                #expect(Int64(current.count) == ref.size)
                completed.append(ref)
                current = []
            }
        }
        for start in stride(from: 0, to: data.count, by: 700_000) {
            c.update(Array(data[start..<min(start + 700_000, data.count)]), feed)
        }
        let m = c.finish(feed)
        #expect(all == data)
        #expect(completed == m.chunks)
        #expect(current.isEmpty)
    }

    @Test func oneByteInsertedEarlyIn64MiBChangesAtMostThreeChunks() {
        let original = randomBytes(64 << 20, seed: 3)
        var edited = original
        edited.insert(0x5A, at: 1000)
        let before = Set(manifest(original).chunks.map(\.sha256))
        let after = manifest(edited).chunks
        #expect(after.filter { !before.contains($0.sha256) }.count <= 3)
        #expect(after.count > 30)

        var overwritten = original
        overwritten[32 << 20] ^= 0xFF
        #expect(manifest(overwritten).chunks.filter { !before.contains($0.sha256) }.count <= 2)
    }

    @Test func averageChunkSizeIsNearTheTarget() {
        let m = manifest(Self.sixteenMiB)
        let mean = Double(m.size) / Double(m.chunks.count)
        #expect(mean > 0.6 * 1048576 && mean < 2.0 * 1048576, "mean chunk \(mean)")
    }

    @Test func edgeCases() {
        let empty = manifest([])
        #expect(empty.chunks.isEmpty)
        #expect(empty.sha256 == .empty)
        #expect(empty.size == 0)

        let small = randomBytes(1000, seed: 4)
        let one = manifest(small)
        #expect(one.chunks == [ChunkRef(sha256: ContentHash.of(small), size: 1000)])
        #expect(one.sha256 == one.chunks[0].sha256)

        // No content-defined cut in a run of zeros: forced cuts at maxSize.
        let zeros = manifest([UInt8](repeating: 0, count: 9 << 20))
        #expect(zeros.chunks.map(\.size) == [4 << 20, 4 << 20, 1 << 20])
        #expect(zeros.chunks[0].sha256 == zeros.chunks[1].sha256)
    }

    @Test func smallParametersKeepEveryInteriorChunkInBounds() {
        let p = ChunkerParameters(minSize: 64, avgSize: 256, maxSize: 1024)
        let m = manifest(randomBytes(1 << 20, seed: 5), p)
        #expect(m.chunks.count > 1000)
        for c in m.chunks.dropLast() { #expect((64...1024).contains(c.size)) }
        let mean = Double(m.size) / Double(m.chunks.count)
        #expect(mean > 150 && mean < 600)
    }

    /// Empty, tiny, just under and over the chunker's minimum, and just under, at and over
    /// one read block: the small-file path and the streaming path agree with the in-memory one.
    @Test(arguments: [0, 1, 4096, (256 << 10) - 1, 256 << 10, (256 << 10) + 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1])
    func fileManifestMatchesTheInMemoryOneAtEverySize(_ size: Int) throws {
        let data = randomBytes(size, seed: UInt64(size) + 1)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-chunk-\(UUID().uuidString)")
        try Data(data).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        var reported: [(ChunkRef, Int64)] = []
        let found = try ContentChunker.manifest(ofFileAt: url.path) { reported.append(($0, $1)) }
        #expect(found == manifest(data))
        #expect(reported.map(\.0) == found.chunks)
        #expect(reported.map(\.1) == found.chunks.indices.map { i in found.chunks[..<i].reduce(0) { $0 + $1.size } })
    }

    @Test func fileManifestMatchesTheInMemoryOne() throws {
        let data = randomBytes(3 << 20 + 12345, seed: 6)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-chunk-\(UUID().uuidString)")
        try Data(data).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let expected = manifest(data)
        #expect(try ContentChunker.manifest(ofFileAt: url.path) == expected)
        #expect(try ContentChunker.manifest(ofFileAt: url.path, bufferSize: 4099) == expected)
        #expect(throws: SystemCallError("open", errno: ENOENT)) { try ContentChunker.manifest(ofFileAt: url.path + ".missing") }
    }
}

@Suite("Packed chunk list")
struct PackedChunkListTests {
    /// `size(of:in:)` finds every record's size, and nothing for hashes the list does not
    /// hold, including one that only a misaligned read would see.
    @Test func sizeFindsExactlyTheListedRecords() throws {
        let refs = (0..<5).map { n in ChunkRef(sha256: ContentHash.of(Array("chunk \(n)".utf8)), size: Int64(n) << 33 | 7) }
        let packed = PackedChunkList.encode(refs)
        // 32 bytes starting inside the first record (its last 8 hash bytes, its size and the
        // next hash's first 16): present in the bytes, yet no record's hash.
        let straddling = try #require(ContentHash(bytes: Array(packed[24..<56])))
        packed.withUnsafeBytes { bytes in
            for ref in refs { #expect(PackedChunkList.size(of: ref.sha256, in: bytes) == ref.size) }
            #expect(PackedChunkList.size(of: ContentHash.of(Array("absent".utf8)), in: bytes) == nil)
            #expect(PackedChunkList.size(of: straddling, in: bytes) == nil)
            #expect(PackedChunkList.size(of: refs[0].sha256, in: UnsafeRawBufferPointer(rebasing: bytes[0..<39])) == nil)
        }
        #expect([UInt8]().withUnsafeBytes { PackedChunkList.size(of: refs[0].sha256, in: $0) } == nil)
    }
}
