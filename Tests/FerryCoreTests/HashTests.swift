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

    @Test func jsonRoundTripAndValidation() throws {
        let h = ContentHash.of(Array("abc".utf8))
        let data = try JSONEncoder().encode([h])
        #expect(String(decoding: data, as: UTF8.self) == #"["\#(h.hex)"]"#)
        #expect(try JSONDecoder().decode([ContentHash].self, from: data) == [h])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([ContentHash].self, from: Data(#"["xyz"]"#.utf8)) }
    }
}
