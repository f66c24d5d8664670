import Foundation
import Testing

@testable import FerryCore

#if canImport(Glibc)
import Glibc
#endif

@Suite("Directory entries")
struct DirectoryEntryTests {
    /// A short record that ends right before an unreadable page, as the last record of a full
    /// `readdir` buffer at the end of a heap mapping: copying `d_name` whole would fault.
    @Test func readsANameEndingAtAnUnreadablePageInPlace() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let base = try #require(mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        #expect(base != MAP_FAILED)
        defer { munmap(base, 2 * page) }
        #expect(mprotect(base + page, page, PROT_NONE) == 0)

        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        let name = Array("1358".utf8) + [0]
        let record = base + page - (nameOffset + name.count)
        name.withUnsafeBytes { (record + nameOffset).copyMemory(from: $0.baseAddress!, byteCount: name.count) }

        let entry = record.assumingMemoryBound(to: dirent.self)
        #expect(DirectoryEntry.name(of: entry) == "1358")
        #expect(DirectoryEntry.lossyName(of: entry) == "1358")
    }

    @Test func invalidUTF8IsNilOrReplaced() throws {
        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        var storage = [UInt8](repeating: 0, count: MemoryLayout<dirent>.size)
        storage.replaceSubrange(nameOffset..<(nameOffset + 3), with: [0x61, 0xFF, 0x62])
        storage.withUnsafeBytes { raw in
            let entry = raw.baseAddress!.assumingMemoryBound(to: dirent.self)
            #expect(DirectoryEntry.name(of: entry) == nil)
            #expect(DirectoryEntry.lossyName(of: entry) == "a\u{FFFD}b")
        }
    }

    @Test func listsARealDirectory() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-dirent-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let expected = Set((0..<2000).map { String($0) })
        for name in expected { #expect(FileManager.default.createFile(atPath: dir + "/" + name, contents: nil)) }
        let stream = try #require(opendir(dir))
        defer { closedir(stream) }
        var seen = Set<String>()
        while let entry = readdir(stream) {
            let name = DirectoryEntry.lossyName(of: entry)
            if name != "." && name != ".." { seen.insert(name) }
        }
        #expect(seen == expected)
    }
}
