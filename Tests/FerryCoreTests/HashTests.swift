import Foundation
import Testing

@testable import FerryCore

@Suite("SHA-256")
struct HashTests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func knownVectors(_ input: String, _ hex: String) {
        #expect(ContentHash.of(Array(input.utf8)).hex == hex)
        // In place (contiguous bytes, a slice of them) and by copy (a lazy sequence) agree.
        let padded = Array(("<" + input + ">").utf8)
        #expect(ContentHash.of(padded[1..<(padded.count - 1)]).hex == hex)
        #expect(ContentHash.of(Data(input.utf8)).hex == hex)
        #expect(ContentHash.of(input.utf8.lazy.map { $0 }).hex == hex)
        var h = StreamingHasher()
        h.update(Array(input.utf8))
        #expect(h.finalize().hex == hex)
    }

    @Test func oneMillionAsInIrregularPieces() {
        let data = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        var h = StreamingHasher()
        var g = SeededGenerator(state: 1)
        var i = 0
        while i < data.count {
            let n = min(Int.random(in: 1...9000, using: &g), data.count - i)
            h.update(Array(data[i..<(i + n)]))
            i += n
        }
        #expect(h.count == 1_000_000)
        #expect(h.finalize().hex == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func hexParsing() {
        let hex = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        #expect(ContentHash(hex: hex) == ContentHash.of(Array("abc".utf8)))
        #expect(ContentHash(hex: String(hex.dropLast())) == nil)
        #expect(ContentHash(hex: hex + "0") == nil)
        #expect(ContentHash(hex: String(hex.dropLast()) + "g") == nil)
        #expect(ContentHash(bytes: [1, 2, 3]) == nil)
        #expect(ContentHash.empty.hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    /// The hash is stored as four words: every view of it must still be the 32 bytes, in
    /// order, and it must sort, compare and hash as those bytes do.
    @Test func everyViewOfAHashIsItsThirtyTwoBytesInOrder() throws {
        var g = SeededGenerator(state: 7)
        var hashes: [ContentHash] = []
        var byteArrays: [[UInt8]] = []
        for i in 0..<500 {
            // Random bytes, plus digests that differ only in their last or first byte.
            var bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) }
            if i % 5 == 1 { bytes = byteArrays[i - 1]; bytes[31] &+= 1 }
            if i % 5 == 2 { bytes = byteArrays[i - 2]; bytes[0] ^= 0x80 }
            let hash = try #require(ContentHash(bytes: bytes))
            #expect(hash.bytes == bytes)
            #expect(hash.data == Data(bytes))
            #expect(hash.withUnsafeBytes { Array($0) } == bytes)
            let hex = bytes.map { String(format: "%02x", $0) }.joined()
            #expect(hash.hex == hex)
            #expect(ContentHash(hex: hex) == hash)
            #expect(ContentHash(hex: hex.uppercased()) == hash)
            #expect(ContentHash(bytes: Data(bytes)) == hash)
            hashes.append(hash)
            byteArrays.append(bytes)
        }
        for _ in 0..<2000 {
            let (a, b) = (Int.random(in: 0..<500, using: &g), Int.random(in: 0..<500, using: &g))
            #expect((hashes[a] < hashes[b]) == byteArrays[a].lexicographicallyPrecedes(byteArrays[b]))
            #expect((hashes[a] == hashes[b]) == (byteArrays[a] == byteArrays[b]))
        }
        #expect(Set(hashes).count == Set(byteArrays).count)
        #expect(hashes.sorted().map(\.bytes) == byteArrays.sorted { $0.lexicographicallyPrecedes($1) })
    }

    @Test func jsonRoundTripAndValidation() throws {
        let h = ContentHash.of(Array("abc".utf8))
        let data = try JSONEncoder().encode([h])
        #expect(String(decoding: data, as: UTF8.self) == #"["\#(h.hex)"]"#)
        #expect(try JSONDecoder().decode([ContentHash].self, from: data) == [h])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([ContentHash].self, from: Data(#"["xyz"]"#.utf8)) }
    }

    @Test func hexIsLowercaseTwoDigitsPerByte() {
        let every = (0...255).map { UInt8($0) }
        #expect(Hex.lowercase(every) == every.map { String(format: "%02x", $0) }.joined())
        #expect(Hex.lowercase([UInt8]()) == "")
        let digest = ContentHash.of(Array("abc".utf8))
        digest.withUnsafeBytes { #expect(Hex.lowercase($0) == digest.hex) }
    }
}
