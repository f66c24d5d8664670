import Foundation
import Testing

@testable import FerryCore

@Suite("Wire types")
struct WireTypesTests {
    @Test func snakeCaseKeysAndRoundTrips() throws {
        let path = try FerryPath("a/b.txt")
        let v = FileVersion(version: 7, path: path, kind: .file, deleted: false, size: 3, sha256: ContentHash.of([1, 2, 3]),
                            mtimeNs: 1_700_000_000_000_000_001, mode: 0o644, chunks: [ChunkRef(sha256: ContentHash.of([1, 2, 3]), size: 3)],
                            target: nil, deviceId: "dev", committedAt: Date(timeIntervalSince1970: 1_700_000_000))
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let json = String(decoding: try encoder.encode(v), as: UTF8.self)
        for key in ["\"mtime_ns\":1700000000000000001", "\"device_id\":\"dev\"", "\"committed_at\"", "\"version\":7"] {
            #expect(json.contains(key), "\(key) missing from \(json)")
        }
        #expect(try decoder.decode(FileVersion.self, from: Data(json.utf8)) == v)

        let changes = ChangesResponse(changes: [v], cursor: 7, hasMore: true, head: 9)
        let cj = String(decoding: try encoder.encode(changes), as: UTF8.self)
        #expect(cj.contains("\"has_more\":true"))

        let op = CommitOperation.delete(path, base: 7)
        let oj = String(decoding: try JSONEncoder().encode(op), as: UTF8.self)
        #expect(oj.contains("\"op\":\"delete\""))
        #expect(try JSONDecoder().decode(CommitOperation.self, from: Data(oj.utf8)) == op)
        let put = try JSONDecoder().decode(CommitOperation.self, from: Data(#"{"op":"put","path":"x","base":null,"kind":"directory","mtime_ns":5}"#.utf8))
        #expect(put.mtimeNs == 5)
        #expect(put.base == nil)
    }

    /// A batch frame's header is the 32 digest bytes and the size as 8 big-endian bytes, and
    /// the parser reads back what it wrote, for sizes that fill every byte of the field.
    @Test func chunkBatchHeadersAreTheDigestThenTheBigEndianSize() throws {
        for (i, size) in [0, 1, 255, 256, 65_535, 1 << 20, FerryProtocol.maxChunkSize].enumerated() {
            let hash = ContentHash.of(Array("chunk \(i)".utf8))
            let header = ChunkBatchFormat.header(hash, size: size)
            let sizeBytes = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(size) >> (8 * (7 - $0))) }
            #expect(header == hash.bytes + sizeBytes)
            let body = header + [UInt8](repeating: 7, count: size)
            let frames = try body.withUnsafeBytes { try ChunkBatchFormat.parse($0, maxChunks: 1) }
            #expect(frames.count == 1)
            #expect(frames.first?.hash == hash)
            #expect(frames.first?.range == 40..<(40 + size))
        }
    }

    /// A client keeps to the smaller of each announced limit and its own, and to at least one
    /// (for batch content: one largest chunk), whatever a server says.
    @Test func agreedLimitsStayWithinBothSidesAndAboveZero() {
        let own = ServerLimits.current
        let generous = ServerLimits(batchChunks: 1 << 30, batchContentBytes: 1 << 40, commitOperations: 1 << 30, jsonBodyBytes: 1 << 40)
        #expect(generous.agreed(with: own) == own)
        let small = ServerLimits(batchChunks: 7, batchContentBytes: 5 << 20, commitOperations: 5, jsonBodyBytes: 4096)
        #expect(small.agreed(with: own) == small)
        let broken = ServerLimits(batchChunks: 0, batchContentBytes: -1, commitOperations: -5, jsonBodyBytes: 0)
        #expect(broken.agreed(with: own) == ServerLimits(batchChunks: 1, batchContentBytes: FerryProtocol.maxChunkSize, commitOperations: 1, jsonBodyBytes: 1))
        let belowOneChunk = ServerLimits(batchChunks: 7, batchContentBytes: 1 << 20, commitOperations: 5, jsonBodyBytes: 4096)
        #expect(belowOneChunk.agreed(with: own).batchContentBytes == FerryProtocol.maxChunkSize)
        let wire = String(decoding: try! JSONEncoder().encode(ProtocolResponse(limits: own)), as: UTF8.self)
        for key in ["batch_chunks", "batch_content_bytes", "commit_operations", "json_body_bytes", "version"] { #expect(wire.contains(key)) }
    }

    @Test func commitResultStatusesUseTheirWireNames() throws {
        let r = CommitResult(status: .missingChunks, missing: [.empty])
        #expect(String(decoding: try JSONEncoder().encode(r), as: UTF8.self).contains("\"missing_chunks\""))
    }
}
