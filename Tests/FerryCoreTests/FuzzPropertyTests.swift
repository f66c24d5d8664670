import Foundation
import PropertyBased
import Testing

@testable import FerryCore

/// Property tests over hostile input for the parsers every request goes through: the path
/// validator (the one place paths are checked), the commit decoder, the chunk-batch framing
/// and hex hashes. Each check runs thousands of generated inputs, built from pieces that
/// are known to be trouble (separators, dots, NUL, decomposed accents, overlong runs,
/// JSON fragments); a failure prints the seed that replays it. `FERRY_FUZZ_COUNT` raises the
/// number of cases (Scripts/soak does).
/// Counts from inside a property body.
final class Tally: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}

@Suite("Hostile input (property-based)")
struct FuzzPropertyTests {
    static let count = ProcessInfo.processInfo.environment["FERRY_FUZZ_COUNT"].flatMap(Int.init) ?? 2000

    /// Pieces of paths that break naive validators.
    static let pathPieces = [
        "a", "b", "/", "//", ".", "..", "...", "\0", "e\u{301}", "é", "\u{212B}", "Å", "😀", " ", "\\", "%2e%2e", "~",
        ":", "C:", "\u{FEFF}", "\u{202E}", "\n", String(repeating: "x", count: 200), String(repeating: "é", count: 130),
    ]

    @Test func everyAcceptedPathIsNormalAndStaysInsideTheLibrary() async {
        await propertyCheck(count: Self.count, input: Gen<String?>.element(of: Self.pathPieces).array(of: 0...30)) { pieces in
            let raw = pieces.compactMap { $0 }.joined()
            let path: FerryPath
            do {
                path = try FerryPath(raw)
            } catch {
                return  // refused with a PathError (the typed throw guarantees the kind)
            }
            let s = path.string
            #expect(!s.isEmpty && !s.hasPrefix("/") && !s.utf8.contains(0))
            #expect(s == s.precomposedStringWithCanonicalMapping, "accepted paths are NFC")
            #expect(s.utf8.count <= FerryPath.maxPathBytes)
            for component in s.split(separator: "/", omittingEmptySubsequences: false) {
                #expect(!component.isEmpty && component != "." && component != "..", "\(s) has a component that escapes or is empty")
                #expect(component.utf8.count <= FerryPath.maxComponentBytes)
            }
            // Validation is idempotent, and the path survives the wire.
            #expect((try? FerryPath(s)) == path)
            let wire = try? JSONCoding.decoder.decode(FerryPath.self, from: JSONCoding.encoder.encode(path))
            #expect(wire == path)
            // Walking up always ends at the library root through valid paths.
            var current: FerryPath? = path
            var steps = 0
            while let p = current, steps <= s.utf8.count {
                #expect((try? FerryPath(p.string)) == p)
                current = p.parent
                steps += 1
            }
            #expect(current == nil)
        }
    }

    /// A valid commit, the seed the mutations start from.
    static let commitJSON = #"""
    {"operations":[{"op":"put","path":"docs/a.txt","base":3,"kind":"file","size":5,"sha256":"\#(String(repeating: "ab", count: 32))","mtime_ns":1700000000000000000,"mode":420,"chunks":[{"sha256":"\#(String(repeating: "cd", count: 32))","size":5}]},{"op":"delete","path":"old","base":1},{"op":"put","path":"l","base":null,"kind":"symlink","target":"../x"}]}
    """#

    /// Fragments a mutation splices in: JSON syntax, wrong types, hostile strings.
    static let jsonFragments = [
        "{", "}", "[", "]", ",", ":", "\"", "null", "true", "-1", "1e999", "9223372036854775808", "\"..\"", "\"/etc/passwd\"",
        "\"a\\u0000b\"", "\"\\ud800\"", "{\"op\":\"put\"}", "[[[[[[[[", "\"op\":\"rename\"", "\"kind\":\"socket\"", "0.5", " ",
    ]

    @Test func theCommitDecoderNeverCrashesAndOnlyYieldsValidPaths() async {
        let bytes = Array(Self.commitJSON.utf8)
        let mutation = Gen<Int>.int(in: 0..<bytes.count)
        let fragment = Gen<String?>.element(of: Self.jsonFragments)
        let decoded = Tally()
        await propertyCheck(count: Self.count, input: mutation.array(of: 1...4), fragment.array(of: 1...4), Gen<Int>.int(in: 0...2)) { spots, pieces, kind in
            var mutated = bytes
            for (spot, piece) in zip(spots, pieces.compactMap { $0 }) {
                let at = min(spot, mutated.count)
                switch kind {
                case 0: mutated.insert(contentsOf: Array(piece.utf8), at: at)                                           // splice
                case 1: mutated.replaceSubrange(at..<min(mutated.count, at + piece.utf8.count), with: Array(piece.utf8)) // overwrite
                default: mutated = Array(mutated.prefix(at))                                                           // truncate
                }
            }
            guard let request = try? JSONCoding.decoder.decode(CommitRequest.self, from: Data(mutated)) else { return }
            decoded.add()
            for op in request.operations {
                #expect((try? FerryPath(op.path.string)) == op.path, "a decoded operation carries an unvalidated path")
            }
            // What decodes re-encodes to something that decodes the same way.
            let again = try? JSONCoding.decoder.decode(CommitRequest.self, from: JSONCoding.encoder.encode(request))
            #expect(again?.operations.map(\.path) == request.operations.map(\.path))
        }
        // Some mutations (a space, a changed digit) still decode: the property is not vacuous.
        #expect(decoded.value > 0)
    }

    @Test func batchFramingRejectsOrBoundsEveryFrame() async {
        let hash = ContentHash.of(Array("x".utf8))
        let frame = ChunkBatchFormat.header(hash, size: 1) + Array("x".utf8)
        await propertyCheck(count: Self.count, input: Gen<UInt8>.value(in: 0...255).array(of: 0...200), Gen<Int>.int(in: 0...3)) { noise, copies in
            var body = [UInt8]()
            for _ in 0..<copies { body += frame }
            body += noise
            let parsed = try? body.withUnsafeBytes { try ChunkBatchFormat.parse($0, maxChunks: 2) }
            guard let parsed else { return }
            var end = 0
            for f in parsed {
                #expect(f.range.lowerBound >= end + ChunkBatchFormat.headerSize && f.range.upperBound <= body.count, "a frame reaches outside the body")
                end = f.range.upperBound
            }
        }
    }

    @Test func hexHashesRoundTripOrAreRefused() async {
        let hexish = Gen<Character?>.element(of: Array("0123456789abcdefABCDEFgz-"))
        await propertyCheck(count: Self.count, input: hexish.array(of: 60...68)) { chars in
            let raw = String(chars.compactMap { $0 })
            guard let hash = ContentHash(hex: raw) else { return }
            #expect(raw.count == 64)
            #expect(hash.hex == raw.lowercased())
        }
    }
}
