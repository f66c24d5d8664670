@testable import FerryClient
import FerryCore
import FerryServer
import GRDB
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
// Which module owns Glibc's structs (stat, timespec) depends on the order modules were
// built in; importing each candidate keeps the file compiling whichever it is.
import CoreFoundation
import CNIOLinux
import NIOPosix
import FerryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Two or three devices against the real server on loopback, each with its own folder.
@Suite("Sync between devices", .serialized, .eachBackend)
struct SyncTests {
    @Test(.eachBlobBackend) func createModifyDeleteRenameAndMoveArriveIdentically() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("ann")
            let a = try await Device.make(cloud, user: user, name: "laptop")
            let b = try await Device.make(cloud, user: user, name: "desktop")
            defer { Task { await a.close(); await b.close() } }

            try a.write("notes.txt", "first")
            try a.write("docs/report.md", "# report")
            try a.mkdir("empty/inner")
            try FileManager.default.createSymbolicLink(atPath: a.root + "/link", withDestinationPath: "notes.txt")
            try a.write("tool.sh", "#!/bin/sh\necho hi\n")
            chmod(a.root + "/tool.sh", 0o755)
            try await a.sync()
            try await b.sync()
            #expect(b.tree() == a.tree())
            #expect(b.read("notes.txt") == "first")
            #expect(b.tree()["tool.sh"]?.hasSuffix("+x") == true)
            #expect(b.tree()["link"] == "link:notes.txt")
            let mtimeA = LocalScanner.stat(root: a.root, path: "docs/report.md")!.mtimeNs
            #expect(LocalScanner.stat(root: b.root, path: "docs/report.md")!.mtimeNs == mtimeA)

            // Modify, delete, rename a file, rename a directory, move across directories.
            try a.write("notes.txt", "second")
            try a.remove("tool.sh")
            try a.move("docs/report.md", "docs/final.md")
            try a.move("docs", "papers")
            try a.move("papers/final.md", "archive/2026/final.md")
            try a.remove("empty/inner")
            let sent = try await a.sync()
            // Renames and moves of known content send no chunk; only the edited file does.
            #expect(sent.uploadedBytes == Int64("second".utf8.count))
            let report = try await b.sync()
            #expect(b.tree() == a.tree())
            #expect(b.read("notes.txt") == "second")
            #expect(b.read("archive/2026/final.md") == "# report")
            #expect(!b.exists("docs") && !b.exists("tool.sh") && !b.exists("empty/inner") && b.exists("empty"))
            // The moved file's content was already on B: nothing of it came from the server.
            #expect(report.reusedLocalBytes >= Int64("# report".utf8.count))

            // And back the other way.
            try b.write("from-b.txt", "hello from b")
            try await b.sync()
            try await a.sync()
            #expect(a.read("from-b.txt") == "hello from b")
            #expect(a.tree() == b.tree())
        }
    }

    @Test(.eachBlobBackend) func largeFileEditsTransferOnlyAFewChunks() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("bob")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            var content = seededBytes(100 << 20, seed: 7)
            try a.write("big.bin", content)
            let first = try await a.sync()
            #expect(first.uploadedBytes == Int64(content.count))
            try await b.sync()
            #expect(b.tree()["big.bin"] == a.tree()["big.bin"])

            // One byte changed in the middle: at most 2 chunks (≤ 8 MiB) go up, and come down.
            content[50 << 20] ^= 0xFF
            try a.write("big.bin", content)
            let edit = try await a.sync()
            #expect(edit.uploadedFiles == 1)
            #expect(edit.uploadedBytes > 0 && edit.uploadedBytes <= 8 << 20)
            let pulled = try await b.sync()
            #expect(pulled.downloadedBytes <= 8 << 20)
            #expect(pulled.reusedLocalBytes >= 90 << 20)
            #expect(b.tree()["big.bin"] == a.tree()["big.bin"])

            // One byte inserted near the start: only the chunks around it.
            content.insert(0x42, at: 1000)
            try a.write("big.bin", content)
            let insert = try await a.sync()
            #expect(insert.uploadedBytes > 0 && insert.uploadedBytes <= 8 << 20)
            let pulledInsert = try await b.sync()
            #expect(pulledInsert.downloadedBytes <= 8 << 20)
            #expect(b.tree()["big.bin"] == a.tree()["big.bin"])
        }
    }

    @Test func concurrentEditsKeepBothAsExactlyOneConflictCopy() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("cat")
            let a = try await Device.make(cloud, user: user, name: "alpha")
            let b = try await Device.make(cloud, user: user, name: "beta")
            defer { Task { await a.close(); await b.close() } }
            try a.write("plan.txt", "v1")
            try await a.sync()
            try await b.sync()

            try a.write("plan.txt", "alpha's edit")
            try b.write("plan.txt", "beta's edit")
            try await a.sync()
            let report = try await b.sync()
            try await a.sync()
            #expect(report.conflicts == 1)
            let copies = b.tree().keys.filter { ConflictName.isConflictCopy($0) }
            #expect(copies.count == 1)
            let copy = try #require(copies.first)
            #expect(copy.hasPrefix("plan.conflict-beta-") && copy.hasSuffix(".txt"))
            #expect(b.read("plan.txt") == "alpha's edit")
            #expect(b.read(copy) == "beta's edit")
            #expect(a.tree() == b.tree())
        }
    }

    @Test func modifyBeatsDeleteInEitherOrder() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("dan")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            try a.write("x.txt", "base")
            try a.write("y.txt", "base")
            try await a.sync()
            try await b.sync()

            // x: the delete reaches the server first; y: the modification does.
            try a.remove("x.txt")
            try b.write("x.txt", "b kept working on x")
            try await a.sync()
            try await b.sync()
            try b.write("y.txt", "b kept working on y")
            try a.remove("y.txt")
            try await b.sync()
            try await a.sync()
            try await b.sync()
            #expect(a.read("x.txt") == "b kept working on x")
            #expect(a.read("y.txt") == "b kept working on y")
            #expect(a.tree() == b.tree())
        }
    }

    /// Rewrites `path` in place with `text` (same inode) and puts its mtime back as it was:
    /// what `touch -r`, `cp -p`, a backup restore or an editor that keeps times does.
    static func rewriteKeepingMtime(_ device: Device, _ path: String, _ text: String) throws {
        let absolute = device.root + "/" + path
        let before = try #require(LocalScanner.stat(root: device.root, path: path))
        let fd = open(absolute, O_WRONLY | O_TRUNC)
        #expect(fd >= 0)
        _ = text.withCString { write(fd, $0, strlen($0)) }
        let mtime = timespec(tv_sec: Int(before.mtimeNs / 1_000_000_000), tv_nsec: Int(before.mtimeNs % 1_000_000_000))
        var times = [mtime, mtime]
        #expect(futimens(fd, &times) == 0)
        close(fd)
    }

    @Test func anInPlaceEditThatKeepsSizeAndMtimeIsStillSyncedAndNeverOverwritten() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("ike")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            try a.write("budget.txt", "version one")
            try await a.sync()
            try await b.sync()

            // Same size, same mtime, same inode: only the change time tells.
            try Self.rewriteKeepingMtime(a, "budget.txt", "version two")
            try await a.sync()
            try await b.sync()
            #expect(b.read("budget.txt") == "version two")

            // The dangerous order: b's edit arrives while a's unsynced edit looks unchanged.
            try Self.rewriteKeepingMtime(a, "budget.txt", "version 3-a")
            try b.write("budget.txt", "version 3-b")
            try await b.sync()
            try await a.sync()
            try await b.sync()
            let kept = Set(a.tree().keys.filter { $0.hasPrefix("budget") }.compactMap { a.read($0) })
            #expect(kept == ["version 3-a", "version 3-b"])
            #expect(a.tree() == b.tree())
        }
    }

    @Test func aLocallyChangedFileIsNeverOverwrittenByADownload() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("eve")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            try a.write("f.txt", "one")
            try await a.sync()
            try await b.sync()
            try a.write("f.txt", "two from a")
            try await a.sync()
            // B edits between its scan and the download's final check: simulated by editing
            // before its pass; the planner must see the local change and keep it.
            try b.write("f.txt", "b's unsynced edit")
            try await b.sync()
            let kept = b.tree().keys.filter { ConflictName.isConflictCopy($0) }.compactMap { b.read($0) }
            #expect(kept == ["b's unsynced edit"])
            #expect(b.read("f.txt") == "two from a")
        }
    }

    /// A batch body holds each readable chunk's header and bytes, read straight into place;
    /// a chunk whose file is gone or too short leaves nothing in the body and is named torn.
    @Test func aBatchBodyLeavesOutChunksItCannotRead() throws {
        let root = scratchDirectory("batch-body")
        let data = seededBytes(300_000, seed: 12)
        try Data(data).write(to: URL(fileURLWithPath: root + "/a.bin"))
        func location(_ path: String, _ offset: Int, _ size: Int) -> ChunkLocation {
            let end = min(offset + size, data.count)
            return ChunkLocation(chunk: ChunkRef(sha256: ContentHash.of(data[min(offset, end)..<end]), size: Int64(size)), path: path, offset: Int64(offset))
        }
        let items = [location("a.bin", 0, 100_000), location("gone.bin", 0, 10), location("a.bin", 250_000, 100_000), location("a.bin", 100_000, 150_000)]
        let (body, sent, torn) = ChunkUpload.batchBody(items, root: root)
        #expect(sent == 2)
        #expect(torn == ["gone.bin", "a.bin"])
        let bytes = Array(body.readableBytesView)
        let frames = try bytes.withUnsafeBytes { try ChunkBatchFormat.parse($0, maxChunks: 2) }
        #expect(frames.map(\.hash) == [items[0].chunk.sha256, items[3].chunk.sha256])
        let contents: [[UInt8]] = frames.map { Array(bytes[$0.range]) }
        #expect(contents == [Array(data[0..<100_000]), Array(data[100_000..<250_000])])
    }

    /// Upload batches close at half the content limit or at the chunk limit, and never pass
    /// the content limit, even where half of it is less than the largest chunk.
    @Test func uploadBatchesStayWithinTheAgreedLimits() {
        let MiB = 1 << 20
        func chunks(_ sizes: [Int]) -> [ChunkLocation] {
            sizes.enumerated().map { i, size in
                ChunkLocation(chunk: ChunkRef(sha256: ContentHash.of(Array("chunk \(i)".utf8)), size: Int64(size)), path: "f\(i)", offset: 0)
            }
        }
        func sizes(_ groups: [[ChunkLocation]]) -> [[Int64]] { groups.map { $0.map(\.chunk.size) } }
        // This build's limits: 8 MiB groups.
        let usual = ServerLimits.current
        #expect(sizes(ChunkUpload.groups(chunks(Array(repeating: MiB, count: 20)), limits: usual)).map(\.count) == [8, 8, 4])
        // A client raises a smaller announcement to one largest chunk; a server that announced
        // 5 MiB gets groups that close before passing it.
        let tight = ServerLimits(batchChunks: 3, batchContentBytes: 1, commitOperations: 1, jsonBodyBytes: 1 << 20).agreed()
        #expect(tight.batchContentBytes == FerryProtocol.maxChunkSize)
        let announced5 = ServerLimits(batchChunks: 3, batchContentBytes: 5 * MiB, commitOperations: 1, jsonBodyBytes: 1 << 20)
        let mixed = [3 * MiB, 1 * MiB, 4 * MiB, 1, 1, 1, 1, 4 * MiB, 2 * MiB, 4 * MiB]
        let groups = ChunkUpload.groups(chunks(mixed), limits: announced5)
        let (one, two, four) = (Int64(MiB), Int64(2 * MiB), Int64(4 * MiB))
        #expect(sizes(groups) == [[3 * one], [one, four], [1, 1, 1], [1, four], [two], [four]])
        #expect(groups.joined().map(\.path) == (0..<mixed.count).map { "f\($0)" })
        for limits in [usual, tight, announced5] {
            for group in ChunkUpload.groups(chunks(mixed + Array(repeating: 4 * MiB, count: 5)), limits: limits) {
                #expect(group.count <= limits.batchChunks)
                #expect(group.reduce(0) { $0 + $1.chunk.size } <= Int64(limits.batchContentBytes))
            }
        }
    }

    /// Commits are cut by operation count and by JSON size: files of many chunks each go in
    /// fewer per commit, each commit's JSON stays within half the server's bound, and an
    /// operation larger than that still goes (alone) rather than never.
    @Test func commitsAreCutByCountAndByJSONSize() throws {
        func put(_ path: String, chunks: Int) throws -> (CommitOperation, LocalState?) {
            let refs = (0..<chunks).map { ChunkRef(sha256: ContentHash.of(Array("\(path) \($0)".utf8)), size: 1 << 20) }
            return (CommitOperation(op: .put, path: try FerryPath(path), base: nil, kind: .file, size: Int64(chunks) << 20,
                                    sha256: .empty, mtimeNs: 1, mode: 0o644, chunks: refs), nil)
        }
        let limits = ServerLimits(batchChunks: 10, batchContentBytes: 1 << 20, commitOperations: 5, jsonBodyBytes: 64 << 10)
        let small = try (0..<12).map { try put("s/\($0) \"quoted\"/é\u{1}.txt", chunks: 1) }
        #expect(CommitPipeline.commitEnd(small, from: 5, limits: limits) == 9)
        #expect(CommitPipeline.commitEnd(small, from: 10, limits: limits) == 11)
        // The first and last ones are smaller: 12 operations go as 1, 1, 2, 4, 2, 1, 1.
        var cuts: [Int] = [], at = 0
        while at < small.count {
            let end = CommitPipeline.commitEnd(small, from: at, limits: limits)
            cuts.append(end - at)
            at = end
        }
        #expect(cuts == [1, 1, 2, 4, 2, 1, 1])
        let many = ServerLimits(batchChunks: 10, batchContentBytes: 1 << 20, commitOperations: 4000, jsonBodyBytes: 32 << 20)
        var sizes: [Int] = []
        at = 0
        let files = try (0..<20_000).map { try put("f\($0)", chunks: 1) }
        while at < files.count {
            let end = CommitPipeline.commitEnd(files, from: at, limits: many)
            sizes.append(end - at)
            at = end
        }
        #expect(sizes == [500, 500, 1000, 2000, 4000, 4000, 4000, 2000, 1000, 500, 500])
        let large = try (0..<6).map { try put("big/\($0).bin", chunks: 100) }
        let end = CommitPipeline.commitEnd(large, from: 0, limits: limits)
        #expect((1..<5).contains(end))
        let json = try JSONCoding.encode(CommitRequest(operations: large[0..<end].map(\.0)))
        #expect(json.count <= limits.jsonBodyBytes / 2)
        for (op, _) in small + large { #expect(try JSONCoding.encode(op).count <= op.jsonSizeBound) }
        let huge = [try put("huge.bin", chunks: 1000)] + small
        #expect(CommitPipeline.commitEnd(huge, from: 0, limits: limits) == 1)
    }

    /// The walk hands files on in groups of at most 32, closed early at 1 MiB so that larger
    /// files still spread over the pool's threads.
    @Test func foundFilesGoInGroupsBoundedByCountAndBytes() {
        func file(_ i: Int, _ size: Int64) -> LocalFile { LocalFile(path: "f\(i)", kind: .file, size: size, mtimeNs: 1, inode: UInt64(i + 1), mode: 0o644, target: nil) }
        var group = InputGatherer.FoundGroup()
        let fills = (0..<32).map { group.add(file($0, 100)) }
        #expect(fills == Array(repeating: false, count: 31) + [true])
        let full = group.take()
        #expect(full.count == 32)
        #expect(group.files.isEmpty && group.bytes == 0)
        let first = group.add(file(0, 600 << 10)), second = group.add(file(1, 600 << 10))
        #expect(!first && second)
        let byBytes = group.take()
        #expect(byBytes.map(\.path) == ["f0", "f1"])
    }

    /// Only files of at least `journalMinimumSize` are journaled: a small one is hashed
    /// again faster than its row is written and cleared.
    @Test func onlyFilesWorthHashingOnceAreJournaled() {
        let sizes: [Int64] = [0, 4096, CommitPipeline.journalMinimumSize - 1, CommitPipeline.journalMinimumSize, 64 << 20]
        let files = sizes.enumerated().map { i, size in
            LocalState(file: LocalFile(path: "f\(i)", kind: .file, size: size, mtimeNs: 1, inode: UInt64(i + 1), mode: 0o644, target: nil),
                       sha256: .empty, chunks: [])
        }
        #expect(CommitPipeline.worthJournaling(files).map(\.path) == ["f3", "f4"])
        #expect(CommitPipeline.worthJournaling(files).map(\.size) == [CommitPipeline.journalMinimumSize, 64 << 20])
    }

    @Test func restartAfterChunksWereSentDoesNotSendThemAgain() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("fay")
            let a = try await Device.make(cloud, user: user, name: "a")
            defer { Task { await a.close() } }
            try a.write("video.bin", seededBytes(12 << 20, seed: 3))
            // The first run gets as far as uploading every chunk, then dies before committing.
            let inputs = try await a.sync.gatherInputs()
            let state = try #require(inputs.local["video.bin"])
            try a.index.recordPending(folder: a.root, [JournalEntry(path: state.path, inode: state.file.inode, size: state.file.size,
                                                                    mtimeNs: state.file.mtimeNs, ctimeNs: state.file.ctimeNs, sha256: state.sha256!, chunks: state.chunks)])
            for (i, chunk) in state.chunks.enumerated() {
                let offset = state.chunks[..<i].reduce(Int64(0)) { $0 + $1.size }
                let bytes = try #require(try FolderFS.readRange(a.root + "/video.bin", offset: offset, size: chunk.size))
                try await a.api.putChunk(chunk.sha256, bytes)
            }
            // A new process: fresh FolderSync over the same index.
            let restarted = try FolderSync(folder: a.config.folders[0], index: a.index, api: a.api, deviceName: "a", logger: .init(label: "t"))
            let report = try await restarted.syncUntilSettled()
            #expect(report.uploadedFiles == 1)
            #expect(report.uploadedBytes == 0)
            #expect(try a.index.journal(folder: a.root).isEmpty)
        }
    }

    /// A journal that cannot be written stops the pass with the error before any answer is
    /// recorded; what the server already committed is found again by the next pass, which
    /// converges without a conflict and without sending the content again.
    @Test func aJournalThatCannotBeWrittenStopsThePassAndTheNextOneConverges() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("hal")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            let big = seededBytes(Int(CommitPipeline.journalMinimumSize) * 2, seed: 5)
            try a.write("big.bin", big)
            try a.write("small.txt", "small")
            // Another connection to the index makes every journal row fail, as a full disk would.
            let other = try DatabaseQueue(path: a.stateDirectory + "/index.sqlite")
            try await other.write { try $0.execute(sql: "CREATE TRIGGER refuse BEFORE INSERT ON journal BEGIN SELECT RAISE(ABORT, 'journal refused'); END") }
            await #expect {
                try await a.sync()
            } throws: { error in
                String(describing: error).contains("journal refused")
            }
            #expect(try a.index.entries(folder: a.root).isEmpty)
            try await other.write { try $0.execute(sql: "DROP TRIGGER refuse") }
            let report = try await a.sync()
            #expect(report.conflicts == 0 && report.problems.isEmpty)
            #expect(report.uploadedBytes == 0)
            #expect(try a.index.journal(folder: a.root).isEmpty)
            #expect(try Set(a.index.entries(folder: a.root).keys) == ["big.bin", "small.txt"])
            try await b.sync()
            #expect(b.read("small.txt") == "small")
            #expect(FileManager.default.contents(atPath: b.root + "/big.bin") == big)
            #expect(try FileManager.default.contentsOfDirectory(atPath: b.root).filter { $0.contains("conflict") }.isEmpty)
        }
    }

    @Test func aNameTheServerRefusesIsReportedAndTheRestSyncs() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("gus")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            try a.write("fine.txt", "ok")
            // A name with bytes that are not UTF-8.
            let bad = Array(a.root.utf8) + Array("/bad-\u{1}".utf8).dropLast() + [0xFF, 0xFE, 0]
            let fd = bad.withUnsafeBufferPointer { p in p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: bad.count) { open($0, O_CREAT | O_WRONLY, 0o644) } }
            #expect(fd >= 0)
            close(fd)
            let report = try await a.sync()
            #expect(!report.problems.isEmpty)
            #expect(report.problems.values.contains { $0.contains("UTF-8") })
            try await b.sync()
            #expect(b.read("fine.txt") == "ok")
        }
    }

    @Test func aRevokedDeviceGetsAClearAuthenticationError() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("hal")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            try await a.api.revokeDevice(b.config.deviceId)
            try b.write("x.txt", "x")
            await #expect(throws: APIFailure.self) { try await b.sync() }
            do { try await b.sync() } catch let e as APIFailure { #expect(e.isAuthentication) }
        }
    }

    @Test func aMissingRootOrMarkerDeletesNothing() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("ivy")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            for i in 0..<5 { try a.write("f\(i).txt", "\(i)") }
            try await a.sync()
            try await b.sync()
            // The folder is renamed away and an empty directory appears in its place.
            try FileManager.default.moveItem(atPath: a.root, toPath: a.root + "-moved")
            try FileManager.default.createDirectory(atPath: a.root, withIntermediateDirectories: false)
            await #expect(throws: ClientError.self) { try await a.sync() }
            try FileManager.default.removeItem(atPath: a.root)
            await #expect(throws: ClientError.self) { try await a.sync() }
            try await b.sync()
            #expect((0..<5).allSatisfy { b.read("f\($0).txt") == "\($0)" })
            // It comes back: syncing resumes with nothing lost.
            try FileManager.default.moveItem(atPath: a.root + "-moved", toPath: a.root)
            let report = try await a.sync()
            #expect(report.deletedRemote == 0)
        }
    }

    @Test func aFileThatChangesAfterHashingIsNeverCommittedTorn() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("max")
            let a = try await Device.make(cloud, user: user, name: "a")
            defer { Task { await a.close() } }
            try a.write("log.bin", seededBytes(3 << 20, seed: 11))
            // Nothing is sent while hashing: this is about the upload step's own check.
            let inputs = try await a.sync.gatherInputs(uploadEarly: false)
            let planned = try #require(inputs.local["log.bin"])
            // Rewritten between the hash and the upload (same size, other bytes).
            try a.write("log.bin", seededBytes(3 << 20, seed: 12))
            var report = PassReport()
            try await a.sync.commits.apply([.upload(planned, base: nil)], report: &report)
            #expect(report.uploadedFiles == 0)
            #expect(report.problems["log.bin"]?.contains("changed") == true)
            let history = try await a.api.history(library: a.config.folders[0].libraryId, path: try FerryPath("log.bin"))
            #expect(history.versions.isEmpty)
            // The next pass hashes the new content and commits that.
            try await a.sync()
            let after = try await a.api.history(library: a.config.folders[0].libraryId, path: try FerryPath("log.bin"))
            #expect(after.versions.first?.sha256 == ContentHash.of(seededBytes(3 << 20, seed: 12)))
        }
    }

    @Test func ownCommitsMoveTheCursorButAnotherDevicesCommitInBetweenIsStillPulled() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("ned")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            let library = a.config.folders[0].libraryId
            for i in 0..<5 { try a.write("own/\(i).txt", "\(i)") }
            // One pass: its commits are the only changes, so the cursor reaches the head
            // without reading them back from the feed.
            _ = try await a.sync.pass()
            let head = try await a.api.changes(library: library, since: 0).head
            #expect(try a.index.cursor(folder: a.root) == head)
            #expect(try await a.sync.pullChanges() == false)

            // B commits after A's last pull; A's next commit answer shows a head past a
            // version A never saw, so the cursor must stay where the feed can deliver it.
            try b.write("from-b.txt", "b")
            try await b.sync()
            try a.write("late.txt", "late")
            let planned = try #require(try await a.sync.gatherInputs(uploadEarly: false).local["late.txt"])
            var report = PassReport()
            try await a.sync.commits.apply([.upload(planned, base: nil)], report: &report)
            #expect(report.uploadedFiles == 1)
            #expect(try a.index.cursor(folder: a.root) == head)
            #expect(try await a.sync.pullChanges() == true)
            #expect(try a.index.remote(folder: a.root)["from-b.txt"] != nil)
            try await a.sync()
            #expect(a.read("from-b.txt") == "b")
        }
    }

    @Test func moreCommitBatchesThanOneAreAppliedInAWorkableOrder() async throws {
        try await Cloud.with(configure: { $0.http.maxCommitOperations = 300 }) { cloud in
            let user = try await cloud.user("ora")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            // Over two batches of files, several of which may be in flight at once.
            let perDirectory = 300 * 3 / 4
            for d in 0..<3 {
                for i in 0..<perDirectory { try a.write("d\(d)/sub/f\(i).txt", "\(d)-\(i)") }
            }
            try await a.sync()
            try await b.sync()
            #expect(b.tree() == a.tree())
            // One pass that deletes a whole tree (files before their directories, in
            // batches of their own) and creates new directories holding new files.
            try a.remove("d0")
            for i in 0..<perDirectory { try a.write("e/new/g\(i).txt", "new-\(i)") }
            let report = try await a.sync.syncUntilSettled(allowMassDelete: true)
            #expect(report.problems.isEmpty)
            #expect(report.deferred == 0)
            try await b.sync()
            #expect(b.tree() == a.tree())
            #expect(!b.exists("d0"))
            #expect(b.read("e/new/g7.txt") == "new-7")
        }
    }

    /// A server configured for small requests announces them, and a client sends nothing
    /// larger: with 7 chunks per batch and 5 operations per commit, 60 files in 3 directories
    /// only sync if both the early sender, the upload step and the commits keep to them.
    @Test func aClientSendsNoLargerRequestsThanTheServerAnnounces() async throws {
        try await Cloud.with(configure: { $0.http.maxBatchChunks = 7; $0.http.maxCommitOperations = 5 }) { cloud in
            let user = try await cloud.user("ike")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            let limits = try await a.api.limits()
            #expect(limits == ServerLimits(batchChunks: 7, batchContentBytes: 16 << 20, commitOperations: 5, jsonBodyBytes: 32 << 20))
            for i in 0..<60 { try a.write("d\(i % 3)/f\(i).bin", seededBytes(200 + i, seed: UInt64(i))) }
            let report = try await a.sync.syncUntilSettled()
            #expect(report.problems.isEmpty)
            #expect(report.uploadedFiles == 60)
            try await b.sync()
            #expect(b.tree() == a.tree())
        }
    }

    /// A server from before `GET /protocol` answers it 404: such a server is sent requests
    /// within the sizes every server takes.
    @Test func aServerWithoutAProtocolAnswerIsSentLegacySizes() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("jo")
            let a = try await Device.make(cloud, user: user, name: "a")
            defer { Task { await a.close() } }
            #expect(try await a.api.limits() == ServerLimits.current)
            let older = ServerAPI(serverURL: cloud.url + "/before-protocol", token: a.api.token, client: a.api.client)
            #expect(try await older.limits() == ServerLimits.legacy)
            // The answer is kept for the API's lifetime, then asked again.
            func asked() -> Int { cloud.answered("GET") }
            let before = asked()
            _ = try await a.api.limits()
            #expect(asked() == before)
            let expiring = ServerAPI(serverURL: cloud.url, token: a.api.token, client: a.api.client, limitsLifetime: .zero)
            _ = try await expiring.limits()
            _ = try await expiring.limits()
            #expect(asked() == before + 2)
        }
    }

    /// A `GET /protocol` answer this build cannot read (a later server that changed its shape)
    /// is treated like no answer: requests stay within the sizes every server takes.
    @Test func anUnreadableProtocolAnswerIsSentLegacySizes() async throws {
        let router = Router()
        router.get("api/v1/protocol") { _, _ in #"{"version": 2, "limits": {"batch_chunks": "many"}}"# }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let api = ServerAPI.open(serverURL: "http://127.0.0.1:\(client.port!)", token: "")
            let limits = try? await api.limits()
            await api.close()
            #expect(limits == ServerLimits.legacy)
        }
    }

    @Test(.eachBlobBackend) func chunksOfSmallFilesReachTheServerWhileThePassIsStillHashing() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("pia")
            let a = try await Device.make(cloud, user: user, name: "a")
            defer { Task { await a.close() } }
            var expected: Int64 = 0
            for i in 0..<40 {
                let bytes = seededBytes(1000 + 97 * i, seed: UInt64(i))
                try a.write("s/\(i).bin", bytes)
                expected += Int64(bytes.count)
            }
            try a.write("s/copy.bin", seededBytes(1000, seed: 0))  // same content as s/0.bin: sent once
            let inputs = try await a.sync.gatherInputs()
            #expect(await inputs.earlyUploads() == expected)
            let hashes = inputs.local.values.flatMap(\.chunks).map(\.sha256)
            #expect(hashes.count == 41)
            #expect(try await a.api.missingChunks(hashes).isEmpty)
            // Every one was confirmed to the sender, so the upload step has nothing to ask.
            #expect(inputs.early?.confirmedPresent() == Set(hashes))
            // The pass itself then only commits.
            let report = try await a.sync()
            #expect(report.uploadedFiles == 41)
            #expect(report.uploadedBytes == 0)
        }
    }

    /// Files are hashed as the walk hands them over, so the walk must hand over exactly the
    /// entries it keeps: each once, and none it leaves out (ignored, partial downloads).
    @Test func theWalkHandsOverExactlyTheEntriesItKeeps() throws {
        let root = scratchDirectory("walk")
        defer { try? FileManager.default.removeItem(atPath: root) }
        for i in 0..<60 {
            let dir = root + "/d\(i % 4)/e\(i % 3)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Data("\(i)".utf8).write(to: URL(fileURLWithPath: dir + "/f\(i).txt"))
        }
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/d0/skip.tmp"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/d1/" + LocalScanner.partialPrefix + "f1.txt"))
        try FileManager.default.createSymbolicLink(atPath: root + "/link", withDestinationPath: "d0")
        var handed: [String] = []
        let result = LocalScanner.scan(root: root, rules: IgnoreRules(userPatterns: "*.tmp")) { handed.append($0.path) }
        #expect(handed.count == result.entries.count)
        #expect(Set(handed) == Set(result.entries.keys))
        #expect(result.entries.count == 60 + 4 + 12 + 1)
        #expect(result.entries["d0/skip.tmp"] == nil)
        #expect(result.partialDownloads.count == 1)
    }

    /// A pass that did all it planned and made nothing new is not followed by a second walk
    /// of the folder; the folder must then really be settled (a next pass plans nothing). A
    /// pass that made a conflict copy is followed by the pass that uploads it.
    @Test func aSyncStopsAfterOnePassOnlyWhenThatPassSettledTheFolder() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("ola")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            for i in 0..<30 { try a.write("d\(i % 3)/f\(i).txt", "file \(i)") }
            try a.write("big.bin", seededBytes(2 << 20, seed: 3))
            try a.mkdir("empty/inner")
            try FileManager.default.createSymbolicLink(atPath: a.root + "/link", withDestinationPath: "d0/f0.txt")
            let uploaded = try await a.sync()
            #expect(uploaded.passes == 1)
            #expect(uploaded.uploadedFiles == 31)
            // The journal, written beside the commits, is cleared by their answers all the same.
            #expect(try a.index.journal(folder: a.root).isEmpty)
            #expect(try await a.sync.pass().planned == 0)

            let downloaded = try await b.sync()
            #expect(downloaded.passes == 1)
            #expect(b.tree() == a.tree())
            #expect(try await b.sync.pass().planned == 0)

            try a.remove("d1")
            try a.write("d0/f0.txt", "edited on a")
            let changed = try await a.sync()
            #expect(changed.passes == 1)
            #expect(changed.deletedRemote == 11)
            #expect(try await a.sync.pass().planned == 0)

            // Both edit one file: B's pass keeps its edit as a conflict copy, which only a
            // second pass uploads.
            try await b.sync()
            try a.write("d2/f2.txt", "a's edit")
            try b.write("d2/f2.txt", "b's edit")
            try await a.sync()
            let conflicted = try await b.sync()
            #expect(conflicted.conflicts == 1)
            #expect(conflicted.passes >= 2)
            #expect(try await b.sync.pass().planned == 0)
            try await a.sync()
            #expect(a.tree() == b.tree())
        }
    }

    /// The upload step does not ask about chunks the early sender saw confirmed. One that is
    /// gone by the commit anyway (collected as unreferenced in between) is answered
    /// `missing_chunks`, uploaded then, and the file is committed whole.
    @Test func aConfirmedChunkThatIsGoneByTheCommitIsUploadedThen() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("rosa")
            let a = try await Device.make(cloud, user: user, name: "a")
            defer { Task { await a.close() } }
            let bytes = seededBytes(3 << 20, seed: 31)
            try a.write("kept.bin", bytes)
            let inputs = try await a.sync.gatherInputs()
            #expect(await inputs.earlyUploads() == Int64(bytes.count))
            let planned = try #require(inputs.local["kept.bin"])
            let hashes = planned.chunks.map(\.sha256)
            #expect(inputs.early?.confirmedPresent() == Set(hashes))
            // Not part of any version yet: a collection with no grace takes every chunk.
            let collected = try await Maintenance.collectGarbage(store: cloud.services.store, blobs: cloud.services.blobs, grace: -60)
            #expect(collected.removedChunks == hashes.count)
            #expect(Set(try await a.api.missingChunks(hashes)) == Set(hashes))

            var report = PassReport()
            try await a.sync.commits.apply([.upload(planned, base: nil)], waitingFor: inputs.early, report: &report)
            #expect(report.uploadedFiles == 1)
            #expect(report.problems.isEmpty)
            #expect(report.uploadedBytes == 2 * Int64(bytes.count))  // early, and again after the collection
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await b.close() } }
            try await b.sync()
            #expect(try Data(contentsOf: URL(fileURLWithPath: b.root + "/kept.bin")) == bytes)
        }
    }

    /// Chunks are read back from their files when they are sent: a file rewritten since it
    /// was hashed is refused by the server's own hash check, a removed one is not sent, and
    /// nothing of either is stored, whether the early sender or the upload step sends them.
    @Test func chunksOfAFileChangedOrRemovedSinceHashingAreNeverStored() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("quin")
            let a = try await Device.make(cloud, user: user, name: "a")
            defer { Task { await a.close() } }
            try a.write("changed.bin", seededBytes(300 << 10, seed: 21))
            try a.write("gone.bin", seededBytes(200 << 10, seed: 22))
            let changed = try ContentChunker.manifest(ofFileAt: a.root + "/changed.bin").chunks
            let gone = try ContentChunker.manifest(ofFileAt: a.root + "/gone.bin").chunks
            try a.write("changed.bin", seededBytes(300 << 10, seed: 23))
            try a.remove("gone.bin")
            let hashes = (changed + gone).map(\.sha256)

            let early = EarlySender(api: a.api, root: a.root, parallelism: 2, limits: .current)
            early.offer(changed, path: "changed.bin")
            early.offer(gone, path: "gone.bin")
            #expect(await early.finish() == 0)
            #expect(Set(try await a.api.missingChunks(hashes)) == Set(hashes))

            let locations = [ChunkLocation(chunk: changed[0], path: "changed.bin", offset: 0), ChunkLocation(chunk: gone[0], path: "gone.bin", offset: 0)]
            let sent = try await ChunkUpload.send(locations, root: a.root, api: a.api)
            #expect(sent.stored == 0)
            #expect(Set(sent.torn) == ["changed.bin", "gone.bin"])
            #expect(Set(try await a.api.missingChunks(hashes)) == Set(hashes))
        }
    }

    /// Bytes offered with their chunks are sent as they were hashed, sliced chunk by chunk,
    /// without reading the file again, while they fit the sender's bound. Past the bound, or
    /// when they are not the chunks' length, the file is read as before; here none of the
    /// files exists, so only kept bytes can arrive.
    @Test func offeredContentIsSentAsHashedWithinItsBound() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("rita")
            let a = try await Device.make(cloud, user: user, name: "a")
            defer { Task { await a.close() } }
            let kept = [UInt8](seededBytes(300 << 10, seed: 31)), over = [UInt8](seededBytes(100 << 10, seed: 32)), wrong = [UInt8](seededBytes(10 << 10, seed: 33))
            let pieces = [kept[..<1000], kept[1000..<200_000], kept[200_000...]]
            let keptChunks = pieces.map { ChunkRef(sha256: ContentHash.of($0), size: Int64($0.count)) }
            let overChunk = ChunkRef(sha256: ContentHash.of(over), size: Int64(over.count))
            let wrongChunk = ChunkRef(sha256: ContentHash.of(wrong), size: Int64(wrong.count))
            let early = EarlySender(api: a.api, root: a.root, parallelism: 2, limits: .current, heldContentLimit: 350 << 10)
            early.offer(keptChunks, path: "kept.bin", content: kept[...])
            early.offer([overChunk], path: "over.bin", content: over[...])  // 400 KiB held would pass the bound
            early.offer([wrongChunk], path: "wrong.bin", content: wrong.dropFirst())
            #expect(early.heldContentBytes == kept.count)
            #expect(await early.finish() == Int64(kept.count))
            #expect(early.heldContentBytes == 0)
            let all = keptChunks + [overChunk, wrongChunk]
            #expect(try await a.api.missingChunks(all.map(\.sha256)) == [overChunk.sha256, wrongChunk.sha256])
            for chunk in keptChunks {
                let stored = try await a.api.chunk(chunk.sha256)
                #expect(ContentHash.of(stored.readableBytesView) == chunk.sha256)
            }
        }
    }

    /// A 2 MiB tmpfs for the receiving folder.
    @Test(.enabled(if: canMount)) func aFullLocalDiskDuringDownloadLeavesNoTempFileAndSaysWhy() async throws {
        try await withTmpfs(size: "2m") { mountPoint in
            try await Cloud.with { cloud in
                let user = try await cloud.user("ned")
                let a = try await Device.make(cloud, user: user, name: "a")
                let b = try await Device.make(cloud, user: user, name: "b", root: mountPoint)
                defer { Task { await a.close(); await b.close() } }
                try a.write("small.txt", "fits")
                try a.write("big.bin", seededBytes(4 << 20, seed: 5))
                try await a.sync()
                let report = try await b.sync()
                #expect(b.read("small.txt") == "fits")
                #expect(!b.exists("big.bin"))
                #expect(report.problems["big.bin"]?.contains("disk is full") == true)
                let leftovers = try FileManager.default.contentsOfDirectory(atPath: mountPoint).filter { $0.hasPrefix(".ferry-partial-") }
                #expect(leftovers.isEmpty)
            }
        }
    }
}
