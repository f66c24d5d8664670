import Foundation
import PropertyBased
import Testing

@testable import FerryCore

/// `JSONWriter` must write exactly what `JSONCoding.encoder` writes, so the fast bulk
/// requests and answers and the Codable ones can never drift apart: compared byte for byte over values
/// generated from a random seed (printed on failure), with the awkward cases forced in.
@Suite("Fast JSON for the bulk messages (writer and reader)")
struct JSONCodingTests {
    static let count = ProcessInfo.processInfo.environment["FERRY_FUZZ_COUNT"].flatMap(Int.init).map { $0 / 10 } ?? 300

    /// Text that needs escaping, or looks as if it might.
    static let awkward = ["plain", "with \"quotes\"", "back\\slash", "a/b/c", "tab\there", "line\nbreak", "\u{1}\u{1F}\u{7F}",
                          "é", "e\u{301}", "😀", "\u{2028}\u{2029}", "\u{8}\u{C}\r", ""]

    struct Maker {
        var rng: SeededGenerator

        mutating func pick<T>(_ values: [T]) -> T { values[Int.random(in: 0..<values.count, using: &rng)] }
        mutating func chance() -> Bool { Bool.random(using: &rng) }
        mutating func int(_ range: ClosedRange<Int64>) -> Int64 { Int64.random(in: range, using: &rng) }
        mutating func hash() -> ContentHash { ContentHash.of(randomBytes(8, seed: rng.next())) }
        mutating func text() -> String { (0..<Int.random(in: 1...3, using: &rng)).map { _ in pick(JSONCodingTests.awkward) }.joined() }
        mutating func path() -> FerryPath {
            let name = (0..<Int.random(in: 1...3, using: &rng)).map { _ in pick(["docs", "é", "a b", "x\"y", "😀.txt", "q\\r", "n\u{1}"]) }
            return (try? FerryPath(name.joined(separator: "/"))) ?? (try! FerryPath("fallback"))
        }
        mutating func chunks() -> [ChunkRef] { (0..<Int.random(in: 0...3, using: &rng)).map { _ in ChunkRef(sha256: hash(), size: int(0...Int64.max)) } }
        mutating func date() -> Date {
            // Whole and fractional seconds across a wide span (ISO 8601 keeps whole seconds).
            Date(timeIntervalSince1970: Double(int(-2_000_000_000...4_000_000_000)) + (chance() ? 0 : Double(int(0...999)) / 1000))
        }
        mutating func version() -> FileVersion {
            FileVersion(version: int(0...Int64.max), path: path(), kind: pick(EntryKind.allCases), deleted: chance(), size: int(Int64.min...Int64.max),
                        sha256: chance() ? hash() : nil, mtimeNs: int(Int64.min...Int64.max), mode: Int32(int(0...0o7777)), chunks: chunks(),
                        target: chance() ? text() : nil, deviceId: chance() ? text() : nil, committedAt: date())
        }
        mutating func operation() -> CommitOperation {
            CommitOperation(op: pick([.put, .delete]), path: path(), base: chance() ? int(0...Int64.max) : nil, kind: chance() ? pick(EntryKind.allCases) : nil,
                            size: chance() ? int(0...Int64.max) : nil, sha256: chance() ? hash() : nil, mtimeNs: chance() ? int(Int64.min...Int64.max) : nil,
                            mode: chance() ? Int32(int(0...0o7777)) : nil, chunks: chance() ? chunks() : nil, target: chance() ? text() : nil,
                            conflictOf: chance() ? ConflictOrigin(path: path(), theirs: int(0...Int64.max)) : nil)
        }
        mutating func result() -> CommitResult {
            CommitResult(status: pick([.ok, .conflict, .missingChunks, .rejected]), version: chance() ? version() : nil,
                         seq: chance() ? int(0...Int64.max) : nil, current: chance() ? version() : nil, missing: chance() ? (0..<Int.random(in: 0...2, using: &rng)).map { _ in hash() } : nil,
                         error: chance() ? ErrorBody(code: text(), message: text()) : nil)
        }
    }

    func expectSameBytes<T: Encodable & JSONWritable>(_ value: T) throws {
        let expected = String(decoding: try JSONCoding.encoder.encode(value), as: UTF8.self)
        #expect(String(decoding: value.jsonBytes, as: UTF8.self) == expected)
    }

    @Test func everyBulkAnswerIsWrittenExactlyAsTheEncoderWritesIt() async {
        await propertyCheck(count: Self.count, input: Gen<UInt64>.value(in: 0...UInt64.max)) { seed in
            var make = Maker(rng: SeededGenerator(state: seed))
            let versions = (0..<Int.random(in: 0...4, using: &make.rng)).map { _ in make.version() }
            try? expectSameBytes(ChangesResponse(changes: versions, cursor: make.int(0...Int64.max), hasMore: make.chance(), head: make.int(0...Int64.max)))
            try? expectSameBytes(CommitResponse(results: (0..<Int.random(in: 0...4, using: &make.rng)).map { _ in make.result() }, head: make.int(0...Int64.max),
                                          committedAt: make.chance() ? make.date() : nil, deviceId: make.chance() ? make.text() : nil))
            try? expectSameBytes(ChunkBatchResponse(stored: make.chunks(), rejected: (0..<Int.random(in: 0...2, using: &make.rng)).map { _ in make.hash() }))
            try? expectSameBytes(MissingChunksResponse(missing: (0..<Int.random(in: 0...3, using: &make.rng)).map { _ in make.hash() }))
            try? expectSameBytes(MissingChunksRequest(chunks: (0..<Int.random(in: 0...3, using: &make.rng)).map { _ in make.hash() }))
            try? expectSameBytes(CommitRequest(operations: (0..<Int.random(in: 0...4, using: &make.rng)).map { _ in make.operation() }, brief: make.chance() ? make.chance() : nil))
        }
    }

    /// What `JSONCoding.decode` makes of `bytes` (fast reader, falling back to Foundation)
    /// must be what Foundation's decoder makes of them: the same value or an error both ways.
    func expectSameReading<T: Decodable & Equatable>(_ type: T.Type, _ bytes: [UInt8]) {
        let fast = bytes.withUnsafeBytes { try? JSONCoding.decode(type, from: $0) }
        let foundation = try? JSONCoding.decoder.decode(type, from: Data(bytes))
        #expect(fast == foundation, "\(String(decoding: bytes, as: UTF8.self))")
    }

    /// The fast reader alone (no fallback) must read everything the writer writes.
    func expectFastRead<T: JSONWritable & JSONReadable & Decodable & Equatable>(_ value: T) {
        let bytes = value.jsonBytes
        let read = bytes.withUnsafeBytes { raw -> T? in
            var reader = JSONReader(raw)
            guard let v = try? T.read(from: &reader), (try? reader.end()) != nil else { return nil }
            return v
        }
        let foundation = try? JSONCoding.decoder.decode(T.self, from: Data(bytes))
        #expect(read != nil && read == foundation, "\(String(decoding: bytes, as: UTF8.self))")
    }

    @Test func bulkAnswersReadBackAsFoundationReadsThemEvenWhenMangled() async {
        let fragments = ["null", "\"x\"", "1.5", "1e3", "-0", "99999999999999999999", "[]", "{}", ",", "\"\\ud83d\\ude00\"", "\"\\u00e9\"",
                         "\"a\\/b\"", "true", " ", "\"sha256\":\"00\"", "\"head\":1,\"head\":2", "\u{FF}", "\"\\q\""]
        await propertyCheck(count: Self.count, input: Gen<UInt64>.value(in: 0...UInt64.max), Gen<Int>.int(in: 0...2)) { seed, how in
            var make = Maker(rng: SeededGenerator(state: seed))
            let changes = ChangesResponse(changes: (0..<Int.random(in: 0...3, using: &make.rng)).map { _ in make.version() },
                                          cursor: make.int(0...Int64.max), hasMore: make.chance(), head: make.int(0...Int64.max))
            let commit = CommitResponse(results: (0..<Int.random(in: 0...3, using: &make.rng)).map { _ in make.result() }, head: make.int(0...Int64.max),
                                        committedAt: make.chance() ? make.date() : nil, deviceId: make.chance() ? make.text() : nil)
            let batch = ChunkBatchResponse(stored: make.chunks(), rejected: [make.hash()])
            let missing = MissingChunksResponse(missing: (0..<Int.random(in: 0...3, using: &make.rng)).map { _ in make.hash() })
            let request = CommitRequest(operations: (0..<Int.random(in: 0...3, using: &make.rng)).map { _ in make.operation() }, brief: make.chance() ? make.chance() : nil)
            let question = MissingChunksRequest(chunks: (0..<Int.random(in: 0...3, using: &make.rng)).map { _ in make.hash() })
            expectFastRead(request)
            expectFastRead(question)
            expectFastRead(changes)
            expectFastRead(commit)
            expectFastRead(batch)
            expectFastRead(missing)
            // The same JSON with characters inside strings written as escapes (`\/`, `\u0061`):
            // another spelling of the same values.
            for bytes in [changes.jsonBytes, commit.jsonBytes, batch.jsonBytes, request.jsonBytes] {
                var spelled: [UInt8] = []
                var inString = false, escaped = false
                for b in bytes {
                    if inString && !escaped && b != UInt8(ascii: "\\") && b != UInt8(ascii: "\"") && b < 0x80 && make.chance() {
                        spelled += b == UInt8(ascii: "/") ? Array("\\/".utf8) : Array(String(format: "\\u%04x", b).utf8)
                        continue
                    }
                    spelled.append(b)
                    if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = inString } else if b == UInt8(ascii: "\"") { inString.toggle() }
                }
                expectSameReading(ChangesResponse.self, spelled)
                expectSameReading(CommitResponse.self, spelled)
                expectSameReading(ChunkBatchResponse.self, spelled)
                expectSameReading(CommitRequest.self, spelled)
            }
            // Mangled: a fragment spliced in, a stretch overwritten, or the end cut off.
            for var bytes in [changes.jsonBytes, commit.jsonBytes, batch.jsonBytes, missing.jsonBytes, request.jsonBytes, question.jsonBytes] {
                let spot = Int.random(in: 0...bytes.count, using: &make.rng)
                let piece = Array(make.pick(fragments).utf8)
                switch how {
                case 0: bytes.insert(contentsOf: piece, at: spot)
                case 1: bytes.replaceSubrange(spot..<min(bytes.count, spot + piece.count), with: piece)
                default: bytes = Array(bytes[..<spot])
                }
                expectSameReading(ChangesResponse.self, bytes)
                expectSameReading(CommitResponse.self, bytes)
                expectSameReading(ChunkBatchResponse.self, bytes)
                expectSameReading(MissingChunksResponse.self, bytes)
                expectSameReading(CommitRequest.self, bytes)
                expectSameReading(MissingChunksRequest.self, bytes)
            }
        }
    }

    @Test func emptyAnswersAndOneCommitTimeShownTwice() throws {
        try expectSameBytes(ChangesResponse(changes: [], cursor: 0, hasMore: false, head: 0))
        try expectSameBytes(ChunkBatchResponse(stored: [], rejected: []))
        try expectSameBytes(MissingChunksResponse(missing: []))
        // The writer formats a repeated commit time once; the repeat must not differ.
        let at = Date(timeIntervalSince1970: 1_795_000_000.25)
        let v = FileVersion(version: 1, path: try FerryPath("a"), kind: .file, deleted: false, size: 0, sha256: nil, mtimeNs: 0, mode: 0o644,
                            chunks: [], target: nil, deviceId: nil, committedAt: at)
        var w = v
        w.version = 2
        w.committedAt = at.addingTimeInterval(1)
        try expectSameBytes(ChangesResponse(changes: [v, v, w, v], cursor: 2, hasMore: true, head: 9))
    }
}
