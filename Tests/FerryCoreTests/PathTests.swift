import Foundation
import Testing

@testable import FerryCore

@Suite("Paths (SPEC §2)")
struct PathTests {
    @Test(arguments: [
        "a", "a/b/c.txt", ".hidden", "a..b", "...", "dir/.git/config", "with space/tab\there", "日本語/ファイル.txt",
        "emoji 😀.png", "back\\slash", String(repeating: "x", count: 255), "trailing.dot.",
    ])
    func acceptsValidPaths(_ raw: String) throws {
        #expect(try FerryPath(raw).string == raw)
    }

    @Test(arguments: [
        ("", PathError.empty),
        ("/abs", .absolute),
        ("/", .absolute),
        ("a//b", .emptyComponent),
        ("a/", .emptyComponent),
        ("./a", .dotComponent(".")),
        ("a/./b", .dotComponent(".")),
        ("a/..", .dotComponent("..")),
        ("..", .dotComponent("..")),
        ("../etc/passwd", .dotComponent("..")),
        ("a\u{0}b", .nulByte),
        (String(repeating: "x", count: 256), .componentTooLong(bytes: 256)),
        // 128 two-byte characters: 128 characters but 256 bytes.
        (String(repeating: "é", count: 128), .componentTooLong(bytes: 256)),
    ])
    func rejectsHostilePaths(_ raw: String, _ expected: PathError) {
        #expect(throws: expected) { try FerryPath(raw) }
    }

    @Test func limitsAreCountedInBytesOfTheNFCForm() throws {
        // 20 components of 200 bytes, 20 slashes, and a last one of 76: exactly 4096 bytes.
        let exact = Array(repeating: String(repeating: "y", count: 200), count: 20).joined(separator: "/") + "/" + String(repeating: "z", count: 76)
        #expect(exact.utf8.count == 4096)
        #expect(try FerryPath(String(exact)).string.utf8.count == 4096)
        #expect(throws: PathError.tooLong(bytes: 4097)) { try FerryPath(String(exact) + "z") }
        // NFD "e" + combining acute is 3 bytes; NFC "é" is 2: 128 of them fit after normalising.
        let nfd = String(repeating: "e\u{301}", count: 127)
        #expect(try FerryPath(nfd).string.utf8.count == 254)
    }

    @Test func nfdInputIsNormalisedToNFC() throws {
        let nfd = try FerryPath("cafe\u{301}/re\u{301}sume\u{301}.txt")
        let nfc = try FerryPath("caf\u{e9}/r\u{e9}sum\u{e9}.txt")
        #expect(nfd == nfc)
        #expect(Array(nfd.string.unicodeScalars) == Array(nfc.string.unicodeScalars))
        #expect(nfd.string.unicodeScalars.count == 15)
    }

    @Test func componentsParentAndAppending() throws {
        let p = try FerryPath("a/b/c.txt")
        #expect(p.components == ["a", "b", "c.txt"])
        #expect(p.name == "c.txt")
        #expect(p.parent == (try FerryPath("a/b")))
        #expect(p.parent?.parent?.parent == nil)
        #expect(try FerryPath("a").appending("b") == (try FerryPath("a/b")))
        #expect(throws: PathError.dotComponent("..")) { try FerryPath("a").appending("..") }
        #expect(throws: PathError.emptyComponent) { try FerryPath("a").appending("") }
    }

    /// A `/` followed by a combining mark is one character but still two things to the file
    /// system: a separator and the start of a name. Validation, components and parent all
    /// split there.
    @Test func aSlashBeforeACombiningMarkStillSeparates() throws {
        let p = try FerryPath("a/\u{301}b")
        #expect(p.components.count == 2)
        #expect(p.parent == (try FerryPath("a")))
        #expect(p.name.unicodeScalars.first == "\u{301}")
        #expect(throws: PathError.emptyComponent) { try FerryPath("a//\u{301}") }
        #expect(throws: PathError.dotComponent("..")) { try FerryPath("../\u{301}x") }
        #expect(throws: PathError.absolute) { try FerryPath("/\u{301}x") }
    }

    @Test func errorsNameTheRule() {
        #expect(PathError.absolute.description.contains("relative"))
        #expect(PathError.dotComponent("..").description.contains("'..'"))
        #expect(PathError.componentTooLong(bytes: 300).description.contains("255"))
        #expect(PathError.tooLong(bytes: 5000).description.contains("4096"))
    }

    @Test func jsonDecodingValidatesAndEncodingRoundTrips() throws {
        struct Box: Codable, Equatable { var path: FerryPath }
        let good = try JSONDecoder().decode(Box.self, from: Data(#"{"path":"a/b"}"#.utf8))
        #expect(good.path.string == "a/b")
        #expect(try JSONDecoder().decode(Box.self, from: JSONEncoder().encode(good)) == good)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Box.self, from: Data(#"{"path":"../x"}"#.utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Box.self, from: Data(#"{"path":""}"#.utf8)) }
    }
}
