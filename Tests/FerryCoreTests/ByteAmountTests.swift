import Foundation
import Testing

@testable import FerryCore

/// `ByteAmount`: the amounts `ferry-server user quota` takes.
@Suite("Byte amounts")
struct ByteAmountTests {
    @Test(arguments: [
        ("0", 0), ("1500", 1500), ("1500B", 1500), ("1 KiB", 1024), ("4k", 4096), ("2kB", 2000),
        ("500MiB", 500 << 20), ("500M", 500 << 20), ("500MB", 500_000_000), ("10GiB", 10 << 30), ("10 gib", 10 << 30),
        ("1TB", 1_000_000_000_000), ("1TiB", 1 << 40), ("2.5GiB", 5 << 29), ("0.5K", 512), (" 3 MiB ", 3 << 20), ("1PiB", 1 << 50),
    ] as [(String, Int64)])
    func parsesPlainBytesAndUnits(_ text: String, _ bytes: Int64) throws {
        #expect(try ByteAmount.parse(text) == bytes)
    }

    @Test(arguments: [
        ("", "is not an amount of bytes"), ("lots", "is not an amount of bytes"), ("GiB", "is not an amount of bytes"),
        ("-5GiB", "is not an amount of bytes"), ("1.2.3", "is not an amount of bytes"), ("5XB", "unknown unit 'xb'"),
        ("10 GiBs", "unknown unit 'gibs'"), ("1e3", "unknown unit 'e3'"), ("9999999999EB", "unknown unit"), ("99999999PiB", "too large"),
        ("٣GiB", "is not an amount of bytes"),
    ])
    func refusesWhatIsNotAnAmount(_ text: String, _ complaint: String) {
        #expect {
            try ByteAmount.parse(text)
        } throws: { error in
            (error as? ByteAmount.Invalid)?.description.contains(complaint) == true
        }
    }
}
