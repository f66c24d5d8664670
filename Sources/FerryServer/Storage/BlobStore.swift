import FerryCore
import NIOCore

/// Content-addressed chunk storage. Writing happens in two steps so the metadata store can
/// make a blob visible and reference it under one lock: `stage` streams bytes to a private
/// temporary place while hashing; `publish` moves a verified blob into place durably.
public protocol BlobStore: Sendable {
    /// Starts a staged write. Nothing is visible until `publish`.
    func makeWriter() async throws -> any BlobWriter
    /// Makes a staged blob visible under its hash, durably (file and directory synced).
    /// Blocking and short; called while the metadata store holds its write lock. Returns
    /// false when the blob was already stored (deduplicated).
    func publish(_ staged: StagedBlob) throws -> Bool
    /// Stages many small blobs at once: each is hashed against its name (mismatches are
    /// returned, not staged) and all are made durable together; a backend may keep the
    /// smallest in memory and make them durable in `publishBatch`. Blocking-free for the caller.
    func stageBatch(_ items: [(hash: ContentHash, bytes: ByteBuffer)]) async throws -> (staged: [StagedBlob], mismatched: [ContentHash])
    /// `publish` for a batch, with one sync of the file system for all of them. Called under
    /// the metadata write lock. Returns, per blob, whether it was new.
    func publishBatch(_ staged: [StagedBlob]) throws -> [Bool]
    /// Removes a staged blob that will not be published.
    func discard(_ staged: StagedBlob)
    /// Reads `length` bytes of a blob starting at `offset`, in pieces.
    func read(_ hash: ContentHash, offset: Int64, length: Int64) -> BlobReadSequence
    /// Whether a blob is present.
    func exists(_ hash: ContentHash) throws -> Bool
    /// Re-hashes a blob; returns its size and whether it matches its name.
    func verify(_ hash: ContentHash) async throws -> (size: Int64, intact: Bool)
    /// Moves blobs out of place into the trash (garbage collection). Blocking; called under
    /// the metadata write lock, so a crash before that transaction commits can put them back.
    func moveToTrash(_ hashes: [ContentHash]) throws
    /// Settles the trash: blobs the metadata still knows (`isKnown`) go back into place, the
    /// rest are deleted. Returns how many were deleted.
    func emptyTrash(isKnown: (ContentHash) throws -> Bool) throws -> Int
    /// The blobs waiting in the trash.
    func trashContents() throws -> [ContentHash]
    /// Removes staged files older than `age` seconds left by a crash.
    func sweepStaging(olderThan age: Int64) throws -> Int
    /// Bytes free for new blobs on the underlying storage.
    func freeBytes() throws -> Int64
}

/// Streams the bytes of one blob into staging while hashing them.
public protocol BlobWriter: Sendable {
    /// Appends bytes; throws `BlobError.tooLarge` past the writer's limit.
    func write(_ buffer: ByteBuffer) async throws
    /// Ends the write: checks the hash against `expected` (if given), syncs the file, and
    /// returns the staged blob. On a mismatch the staged file is removed and
    /// `BlobError.hashMismatch` thrown.
    func finish(expected: ContentHash?) async throws -> StagedBlob
    /// Abandons the write and removes the staged file.
    func abort() async
}

/// A fully written, hashed and synced blob waiting in staging, or a small blob held in
/// memory until it is published.
public struct StagedBlob: Sendable {
    public let hash: ContentHash
    public let size: Int64
    /// Where the bytes wait (backend-specific); empty for a blob held in `bytes`.
    public let stagingPath: String
    /// The bytes of a small blob that never went to a staging file.
    public let bytes: ByteBuffer?

    init(hash: ContentHash, size: Int64, stagingPath: String) {
        self.hash = hash
        self.size = size
        self.stagingPath = stagingPath
        self.bytes = nil
    }

    init(hash: ContentHash, bytes: ByteBuffer) {
        self.hash = hash
        self.size = Int64(bytes.readableBytes)
        self.stagingPath = ""
        self.bytes = bytes
    }
}

/// Blob store failures that map to API errors.
public enum BlobError: Error, Equatable, Sendable {
    case hashMismatch(expected: ContentHash, actual: ContentHash)
    case tooLarge(limit: Int64)
    case outOfSpace
    case notFound(ContentHash)
    case io(String)
}

/// An async sequence of the pieces of one blob read.
public struct BlobReadSequence: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    let next: @Sendable () async throws -> ByteBuffer?

    public struct AsyncIterator: AsyncIteratorProtocol, Sendable {
        let next: @Sendable () async throws -> ByteBuffer?
        public mutating func next() async throws -> ByteBuffer? { try await next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(next: next) }
}

/// A stretch of one blob: `length` bytes from `offset`.
struct BlobSpan: Sendable {
    let hash: ContentHash
    let offset: Int64
    let length: Int64
}

extension BlobStore {
    /// Hands the spans' bytes to `write` in order, reading one piece ahead: the disk read of
    /// the next piece runs while `write` sends this one, so a download is not a strict
    /// alternation of read and send. At most two pieces are held at a time.
    func stream(_ spans: [BlobSpan], to write: (ByteBuffer) async throws -> Void) async throws {
        var step = try await PieceCursor(blobs: self, spans: spans).advanced()
        while let (piece, cursor) = step {
            async let following = cursor.advanced()
            try await write(piece)
            step = try await following
        }
    }
}

/// Where a read of consecutive spans stands: which span, and the reader inside it. Each
/// `advanced()` returns the next piece and the cursor after it, so a read can run as a child
/// task while the previous piece is still being sent.
struct PieceCursor: Sendable {
    let blobs: any BlobStore
    let spans: [BlobSpan]
    var index = 0
    var reader: BlobReadSequence.AsyncIterator?

    func advanced() async throws -> (ByteBuffer, PieceCursor)? {
        var cursor = self
        while cursor.index < spans.count {
            if cursor.reader == nil {
                let span = spans[cursor.index]
                cursor.reader = blobs.read(span.hash, offset: span.offset, length: span.length).makeAsyncIterator()
            }
            if let piece = try await cursor.reader?.next() { return (piece, cursor) }
            cursor.reader = nil
            cursor.index += 1
        }
        return nil
    }
}
