import ArgumentParser
import FerryCore
import FerryServer
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// `ferry-bench core`: chunking and hashing against openssl, chunk upload over loopback
/// against the disk's fsync'd write rate, and commit throughput. References are measured
/// in the same run on the same machine and disk.
struct CoreBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "core", abstract: "Chunk+hash, chunk upload and commit throughput.")

    @OptionGroup var options: BenchOptions

    func run() async throws {
        let root = try options.makeScratch()
        defer { options.removeScratch(root) }
        let quick = options.quick
        let fileSize = quick ? 64 << 20 : 1 << 30
        let smallFiles = quick ? 1000 : 10_000
        let sizeLabel = quick ? "64 MiB" : "1 GiB"

        let file = root + "/content.bin"
        try writeRandomFile(file, size: fileSize)
        var rows: [BenchRow] = []

        // 1. Chunk + hash, warm page cache, best of three.
        var manifest: ContentManifest?
        var best = Double.infinity
        for _ in 0..<3 { best = min(best, try await seconds { manifest = try ContentChunker.manifest(ofFileAt: file) }) }
        let chunkRate = Double(fileSize) / best / 1e6
        var shaBest = Double.infinity
        for _ in 0..<3 { shaBest = min(shaBest, try await seconds { _ = try sha256OfFile(file) }) }
        let openssl = try opensslSpeedSHA256(seconds: quick ? 1 : 3)
        let opensslFile = try opensslDigestRate(file: file, size: fileSize)
        rows.append(BenchRow(name: "chunk + hash \(sizeLabel) (FastCDC + 2×SHA-256, warm cache)", value: chunkRate, unit: "MB/s",
                             reference: "openssl speed -evp sha256, 16 KiB blocks", referenceValue: openssl, goal: "≥ 90 % of openssl on one core"))
        rows.append(BenchRow(name: "one SHA-256 pass alone (swift-crypto)", value: Double(fileSize) / shaBest / 1e6, unit: "MB/s",
                             reference: "openssl speed", referenceValue: openssl))
        rows.append(BenchRow(name: "openssl dgst -sha256 over the same file", value: opensslFile, unit: "MB/s",
                             reference: "openssl speed", referenceValue: openssl))
        let m = manifest!

        // 2. Chunk upload over loopback, next to dd with fsync into the same directory.
        let ddRate = try ddWriteRate(root + "/dd.test", megabytes: fileSize >> 20)
        let serverData = root + "/server"
        let (putRate, totalRate, downRate) = try await BenchServer.with(dataDirectory: serverData) { server in
            var putSeconds = 0.0
            let total = try await seconds {
                putSeconds = try await seconds { try await uploadChunks(of: m, from: file, to: server, parallelism: 4) }
                let op = CommitOperation.putFile(try FerryPath("bench/content.bin"), base: nil, manifest: m, mtimeNs: 0, mode: 0o644)
                let result: CommitResponse = try await server.json(.POST, "/libraries/\(server.library)/commit", CommitRequest(operations: [op]))
                guard result.results.first?.status == .ok else { throw BenchError("commit failed: \(result.results)") }
            }
            var downloaded: (Int64, ContentHash) = (0, .empty)
            let down = try await seconds { downloaded = try await server.download("bench/content.bin") }
            guard downloaded.1 == m.sha256 else { throw BenchError("downloaded content does not match the upload") }
            return (Double(fileSize) / putSeconds / 1e6, Double(fileSize) / total / 1e6, Double(fileSize) / down / 1e6)
        }
        rows.append(BenchRow(name: "chunk PUT \(sizeLabel), 4 parallel, loopback", value: putRate, unit: "MB/s",
                             reference: "dd bs=1M conv=fsync, same disk", referenceValue: ddRate, goal: "≥ 80 % of dd"))
        rows.append(BenchRow(name: "upload \(sizeLabel) incl. commit", value: totalRate, unit: "MB/s", reference: "dd", referenceValue: ddRate))
        rows.append(BenchRow(name: "download \(sizeLabel) (GET files, streamed, hashed by the client)", value: downRate, unit: "MB/s"))
        try? FileManager.default.removeItem(atPath: serverData)

        // 3. Commits of many small files in batches of 1000 (chunks uploaded first).
        let (putsPerSecond, commitsPerSecond) = try await BenchServer.with(dataDirectory: root + "/server-small") { server in
            try await smallFileCommits(count: smallFiles, server: server)
        }
        rows.append(BenchRow(name: "small-file chunk PUTs (1–4 KiB, 8 parallel)", value: putsPerSecond, unit: "chunks/s"))
        rows.append(BenchRow(name: "commit \(smallFiles) small files, batches of 1000", value: commitsPerSecond, unit: "files/s",
                             goal: "≥ 5,000 files/s"))

        try BenchReport(benchmark: "core", mode: quick ? "quick" : "full", machine: BenchReport.machine(), rows: rows).emit(json: options.json)
    }
}

/// Writes `size` pseudo-random bytes (incompressible, so no layer can cheat).
func writeRandomFile(_ path: String, size: Int, seed: UInt64 = 0x5EED) throws {
    guard FileManager.default.createFile(atPath: path, contents: nil) else { throw BenchError("cannot create \(path)") }
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    var state: UInt64 = seed
    var block = [UInt8](repeating: 0, count: 1 << 20)
    var written = 0
    while written < size {
        block.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt64.self)
            for i in 0..<words.count {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                words[i] = z ^ (z >> 31)
            }
        }
        let n = min(block.count, size - written)
        try handle.write(contentsOf: block[0..<n])
        written += n
    }
    // On disk before anything is timed: the server's sync of its file system would otherwise
    // also write out this freshly made input, a cost no real sync of an older file pays.
    try handle.synchronize()
}

func sha256OfFile(_ path: String) throws -> ContentHash {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SystemCallError("open", errno: errno) }
    defer { close(fd) }
    var hasher = StreamingHasher()
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
    defer { buffer.deallocate() }
    while true {
        let n = read(fd, buffer.baseAddress, buffer.count)
        if n <= 0 { break }
        hasher.update(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
    }
    return hasher.finalize()
}

/// `openssl speed -evp sha256`, 16 KiB column, in MB/s.
/// `openssl speed -evp sha256`: the 16 KiB-block rate in MB/s, the reference.
func opensslSpeedSHA256(seconds: Int) throws -> Double {
    guard let openssl = which("openssl") else { throw BenchError("openssl is not installed (apt-get install openssl)") }
    let result = try run(openssl, ["speed", "-seconds", String(seconds), "-evp", "sha256"])
    guard result.status == 0, let line = result.out.split(separator: "\n").last(where: { $0.hasPrefix("sha256") || $0.hasPrefix("SHA256") }),
          let last = line.split(separator: " ").last, let kilo = Double(last.dropLast())
    else { throw BenchError("could not read openssl's output: \(result.out.suffix(200)) \(result.err.suffix(200))") }
    return kilo * 1000 / 1e6
}

/// `openssl dgst -sha256` over the same warm file, best of three, in MB/s.
func opensslDigestRate(file: String, size: Int) throws -> Double {
    guard let openssl = which("openssl") else { throw BenchError("openssl is not installed (apt-get install openssl)") }
    var best = Double.infinity
    for _ in 0..<3 {
        let start = ContinuousClock.now
        let result = try run(openssl, ["dgst", "-sha256", file])
        let d = ContinuousClock.now - start
        guard result.status == 0 else { throw BenchError("openssl dgst failed: \(result.err)") }
        best = min(best, d.timeInterval)
    }
    return Double(size) / best / 1e6
}

/// The disk's fsync'd sequential write rate: `dd if=/dev/zero bs=1M conv=fsync`, timed here.
func ddWriteRate(_ path: String, megabytes: Int) throws -> Double {
    guard let dd = which("dd") else { throw BenchError("dd is not installed (apt-get install coreutils)") }
    let start = ContinuousClock.now
    let result = try run(dd, ["if=/dev/zero", "of=\(path)", "bs=1M", "count=\(megabytes)", "conv=fsync"])
    let d = ContinuousClock.now - start
    try? FileManager.default.removeItem(atPath: path)
    guard result.status == 0 else { throw BenchError("dd failed: \(result.err)") }
    return Double(megabytes << 20) / (d.timeInterval) / 1e6
}

/// PUTs every chunk of `manifest`, reading each from `file` at its offset, `parallelism` at a time.
func uploadChunks(of manifest: ContentManifest, from file: String, to server: BenchServer, parallelism: Int) async throws {
    let fd = open(file, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SystemCallError("open", errno: errno) }
    defer { close(fd) }
    var offsets: [Int64] = []
    var offset: Int64 = 0
    for c in manifest.chunks { offsets.append(offset); offset += c.size }
    try await withThrowingTaskGroup(of: Void.self) { group in
        for (n, chunk) in manifest.chunks.enumerated() {
            if n >= parallelism { try await group.next() }
            let at = offsets[n]
            group.addTask {
                let bytes = try await NIOThreadPool.singleton.runIfActive { () throws -> ByteBuffer in
                    var buffer = ByteBuffer()
                    let size = Int(chunk.size)
                    let got = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { ptr in
                        let r = pread(fd, ptr.baseAddress, size, off_t(at))
                        guard r == size else { throw SystemCallError("pread", errno: errno) }
                        return r
                    }
                    precondition(got == size)
                    return buffer
                }
                try await server.putChunk(chunk.sha256, bytes)
            }
        }
        try await group.waitForAll()
    }
}

/// Uploads `count` small files' chunks (8 in parallel), then commits them 1000 at a time.
/// Returns (chunk PUTs per second, committed files per second; commits only).
func smallFileCommits(count: Int, server: BenchServer) async throws -> (Double, Double) {
    let files: [(FerryPath, [UInt8])] = (0..<count).map { i in
        let size = 1024 + (i * 7919) % 3072
        var state = UInt64(i) &* 0x9E37_79B9_7F4A_7C15 | 1
        let bytes = (0..<size).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
        return (try! FerryPath("small/d\(i % 100)/f\(i).bin"), bytes)
    }
    let putSeconds = try await seconds {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (n, file) in files.enumerated() {
                if n >= 8 { try await group.next() }
                group.addTask { try await server.putChunk(ContentHash.of(file.1), ByteBuffer(bytes: file.1)) }
            }
            try await group.waitForAll()
        }
    }
    let ops = files.map { path, bytes in
        CommitOperation.putFile(path, base: nil, manifest: ContentManifest(size: Int64(bytes.count), sha256: ContentHash.of(bytes),
                                chunks: [ChunkRef(sha256: ContentHash.of(bytes), size: Int64(bytes.count))]), mtimeNs: 1, mode: 0o644)
    }
    let commitSeconds = try await seconds {
        for batch in stride(from: 0, to: ops.count, by: 1000) {
            let response: CommitResponse = try await server.json(.POST, "/libraries/\(server.library)/commit",
                                                                 CommitRequest(operations: Array(ops[batch..<min(batch + 1000, ops.count)])))
            guard response.results.allSatisfy({ $0.status == .ok }) else { throw BenchError("a small-file commit failed") }
        }
    }
    return (Double(count) / putSeconds, Double(count) / commitSeconds)
}
