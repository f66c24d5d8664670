import Crypto
import FerryCore
import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// Blobs as objects of an S3 bucket, under `PREFIX/blobs/ab/<sha256>`. A blob is content-
/// addressed, so it goes to its final key while it is staged: the writer hashes the bytes,
/// and only bytes that match their name are sent, with their SHA-256 and MD5 declared so the
/// store checks them again (`S3Client.put`). `publish` is then free of I/O (it runs under the metadata store's write
/// lock): the row that references a blob is written only after the store acknowledged its PUT
/// (SPEC §9). An object whose row never comes (a failed record, a crash) is an orphan that no
/// row names; it is never deleted by the upload itself, since another upload of the same
/// bytes may already reference it.
///
/// gc deletes objects after its transaction, fenced against uploads by the metadata store's
/// trash table and epoch (`FencedBlobStore`, docs/architecture.md "gc on S3").
public final class S3BlobStore: FencedBlobStore {
    public let client: S3Client
    /// Hashing of batches and of whole blobs (`verify`) runs here, off the event loops.
    let threadPool: NIOThreadPool
    let maxBlobSize: Int64
    /// Blobs larger than this go up as multipart uploads of `partSize` parts.
    let multipartThreshold: Int
    let partSize: Int
    /// At most this many PUTs of one batch in flight at a time.
    static let parallelPuts = 8

    public init(client: S3Client, threadPool: NIOThreadPool, maxBlobSize: Int64 = Int64(FerryProtocol.maxChunkSize), multipartThreshold: Int = 16 << 20,
                partSize: Int = 8 << 20) {
        self.client = client
        self.threadPool = threadPool
        self.maxBlobSize = maxBlobSize
        self.multipartThreshold = multipartThreshold
        self.partSize = partSize
    }

    /// The object key of a blob; the two-character level spreads keys over 256 prefixes.
    public func key(of hash: ContentHash) -> String {
        let hex = hash.hex
        return "\(client.location.prefix)blobs/\(hex.prefix(2))/\(hex)"
    }

    /// Puts verified bytes at their final key: one PUT with `md5`, their `Content-MD5` taken
    /// with their SHA-256, or parts above the threshold (each part declares its own SHA-256).
    func place(_ bytes: ByteBuffer, hash: ContentHash, md5: String) async throws {
        do {
            if bytes.readableBytes > multipartThreshold {
                try await client.putMultipart(key: key(of: hash), body: bytes, partSize: partSize)
            } else {
                try await client.put(key: key(of: hash), body: bytes, sha256: hash, md5: md5)
            }
        } catch let failure as S3Client.Failure {
            throw BlobError.io("store blob \(hash.hex) in S3: \(failure)")
        }
    }

    public func makeWriter() async throws -> any BlobWriter {
        S3BlobWriter(store: self, limit: maxBlobSize)
    }

    public func publish(_ staged: StagedBlob) throws -> Bool {
        // Already acknowledged by the store while it was staged; nothing to move.
        precondition(staged.placed, "an S3 blob is published only after its PUT")
        return true
    }

    /// Checks each blob against its name and takes its `Content-MD5`, in one trip to the blob
    /// threads, then PUTs the good ones, up to `parallelPuts` at a time.
    public func stageBatch(_ items: [(hash: ContentHash, bytes: ByteBuffer)]) async throws -> (staged: [StagedBlob], mismatched: [ContentHash]) {
        let (good, mismatched) = try await threadPool.runIfActive {
            var good: [(hash: ContentHash, bytes: ByteBuffer, md5: String)] = []
            var mismatched: [ContentHash] = []
            for item in items {
                guard ContentHash.of(item.bytes.readableBytesView) == item.hash else {
                    mismatched.append(item.hash)
                    continue
                }
                good.append((item.hash, item.bytes, S3Client.md5(item.bytes)))
            }
            return (good, mismatched)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (n, item) in good.enumerated() {
                if n >= Self.parallelPuts { try await group.next() }
                group.addTask { try await self.place(item.bytes, hash: item.hash, md5: item.md5) }
            }
            try await group.waitForAll()
        }
        return (good.map { StagedBlob(placed: $0.hash, size: Int64($0.bytes.readableBytes)) }, mismatched)
    }

    public func publishBatch(_ staged: [StagedBlob]) throws -> [Bool] {
        try staged.map { try publish($0) }
    }

    /// Nothing to remove: the object may be another upload's, already referenced.
    public func discard(_ staged: StagedBlob) {}

    public func exists(_ hash: ContentHash) async throws -> Bool {
        try await s3 { try await client.head(key: key(of: hash)) != nil }
    }

    public func verify(_ hash: ContentHash) async throws -> (size: Int64, intact: Bool) {
        guard let bytes = try await s3({ try await client.get(key: key(of: hash)) }) else { throw BlobError.notFound(hash) }
        let actual = try await threadPool.runIfActive { bytes.withUnsafeReadableBytes { ContentHash.of($0) } }
        return (Int64(bytes.readableBytes), actual == hash)
    }

    /// Objects are not moved under a lock: gc deletes them after its transaction (`delete`).
    public func moveToTrash(_ hashes: [ContentHash]) throws {
        throw BlobError.io("objects in S3 are deleted through gc's trash table, not moved")
    }

    /// The trash is a table of the metadata store (`BlobTrashStore`), settled by the next gc.
    public func emptyTrash(isKnown: (ContentHash) throws -> Bool) throws -> Int { 0 }

    public func trashContents() throws -> [ContentHash] { [] }

    public func delete(_ hashes: [ContentHash]) async throws {
        try await s3 { try await client.delete(keys: hashes.map(key(of:))) }
    }

    public func storedHashes() async throws -> [ContentHash] {
        let prefix = client.location.prefix + "blobs/"
        var hashes: [ContentHash] = []
        var token: String?
        repeat {
            let page = try await s3 { try await client.list(prefix: prefix, continuation: token) }
            hashes += page.objects.compactMap { object in
                object.key.hasPrefix(prefix) ? ContentHash(hex: object.key.split(separator: "/").last ?? "") : nil
            }
            token = page.next
        } while token != nil
        return hashes
    }

    /// Nothing is staged on this machine.
    public func sweepStaging(olderThan age: Int64) throws -> Int { 0 }

    /// A bucket has no free-space figure; quotas, not the disk, bound it.
    public func freeBytes() throws -> Int64 { .max }

    public func readTogether(_ spans: [BlobSpan]) async throws -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: spans.reduce(0) { $0 + Int($1.length) })
        for span in spans where span.length > 0 {
            let range = span.offset..<(span.offset + span.length)
            guard var bytes = try await s3({ try await client.get(key: key(of: span.hash), range: range) }) else {
                throw BlobError.notFound(span.hash)
            }
            buffer.writeBuffer(&bytes)
        }
        return buffer
    }

    /// Runs an S3 call; the store's refusals become `BlobError.io` (a range past the end of a
    /// blob is a blob shorter than its recorded size).
    func s3<T>(_ call: () async throws -> T) async throws -> T {
        do { return try await call() } catch let failure as S3Client.Failure {
            throw BlobError.io("S3: \(failure)")
        }
    }
}

/// Hashes a blob's bytes into memory (at most `limit`, a chunk's 4 MiB), then places them at
/// their final key once they are known to match their name.
final class S3BlobWriter: BlobWriter {
    private struct State {
        var hasher = StreamingHasher()
        /// The `Content-MD5` of the PUT, taken as the bytes arrive, with the SHA-256.
        var md5 = Insecure.MD5()
        var bytes = ByteBuffer()
        var size: Int64 = 0
    }
    private let state = Mutex(State())
    let store: S3BlobStore
    let limit: Int64

    init(store: S3BlobStore, limit: Int64) {
        self.store = store
        self.limit = limit
    }

    func write(_ buffer: ByteBuffer) async throws {
        try state.withLock { s in
            s.size += Int64(buffer.readableBytes)
            if s.size > limit { throw BlobError.tooLarge(limit: limit) }
            buffer.withUnsafeReadableBytes {
                s.hasher.update($0)
                s.md5.update(bufferPointer: $0)
            }
            var copy = buffer
            s.bytes.writeBuffer(&copy)
        }
    }

    func finish(expected: ContentHash?) async throws -> StagedBlob {
        let (bytes, hasher, md5) = state.withLock { s in
            defer { s.bytes = ByteBuffer() }
            return (s.bytes, s.hasher, s.md5)
        }
        let actual = hasher.finalize()
        if let expected, expected != actual { throw BlobError.hashMismatch(expected: expected, actual: actual) }
        try await store.place(bytes, hash: actual, md5: Data(md5.finalize()).base64EncodedString())
        return StagedBlob(placed: actual, size: Int64(bytes.readableBytes))
    }

    func abort() async {
        state.withLock { $0.bytes = ByteBuffer() }
    }
}
