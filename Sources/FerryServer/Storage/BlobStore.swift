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
    /// Whether a blob is present.
    func exists(_ hash: ContentHash) async throws -> Bool
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
    /// Every blob in place (files and rows, not the trash), listed on the store's I/O
    /// threads; `gc` lists them all.
    func storedHashes() async throws -> [ContentHash]
    /// Removes staged files older than `age` seconds left by a crash.
    func sweepStaging(olderThan age: Int64) throws -> Int
    /// Bytes free for new blobs on the underlying storage.
    func freeBytes() throws -> Int64
    /// Reads `spans`, in order, into one buffer (a download's piece). Throws
    /// `BlobError.notFound` or `.io` when a blob is gone or shorter than a span.
    func readTogether(_ spans: [BlobSpan]) async throws -> ByteBuffer
}

/// A blob store whose objects are placed at their final name before any metadata lock (an
/// object store's PUT), so gc cannot remove them under that lock: uploads read the gc epoch
/// before placing, and gc deletes after its transaction through the trash table
/// (`BlobTrashStore`, docs/architecture.md "gc on S3"). `moveToTrash` is not used for it.
public protocol FencedBlobStore: BlobStore {
    /// Deletes the objects of at most 1,000 blobs in one request; one already gone is no
    /// error. Throws when the store deleted not all of them.
    func delete(_ hashes: [ContentHash]) async throws
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
    /// Already at its final place, acknowledged by the store (an object store's PUT): its
    /// publication moves nothing.
    public let placed: Bool

    init(hash: ContentHash, size: Int64, stagingPath: String) {
        self.hash = hash
        self.size = size
        self.stagingPath = stagingPath
        self.bytes = nil
        self.placed = false
    }

    init(placed hash: ContentHash, size: Int64) {
        self.hash = hash
        self.size = size
        self.stagingPath = ""
        self.bytes = nil
        self.placed = true
    }

    init(hash: ContentHash, bytes: ByteBuffer) {
        self.hash = hash
        self.size = Int64(bytes.readableBytes)
        self.stagingPath = ""
        self.bytes = bytes
        self.placed = false
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

/// A stretch of one blob: `length` bytes from `offset`.
public struct BlobSpan: Sendable, Equatable {
    public let hash: ContentHash
    public let offset: Int64
    public let length: Int64
}

extension BlobStore {
    /// Hands the spans' bytes to `write` in order, in pieces of about `pieceBytes`, reading one
    /// piece ahead: the read of the next piece runs while `write` sends this one. A piece
    /// gathers consecutive spans (most chunks are about 1 MiB), so a download costs one trip to
    /// the blob threads per piece rather than per chunk. At most two pieces are held at a time.
    func stream(_ spans: [BlobSpan], pieceBytes: Int = streamPieceBytes, to write: (ByteBuffer) async throws -> Void) async throws {
        let pieces = Self.pieces(of: spans, bytes: pieceBytes)
        guard !pieces.isEmpty else { return }
        var current = try await readTogether(pieces[0])
        for next in pieces.dropFirst() {
            async let following = readTogether(next)
            try await write(current)
            current = try await following
        }
        try await write(current)
    }

    /// `spans` cut and grouped into pieces of `bytes` each (the last may be shorter).
    static func pieces(of spans: [BlobSpan], bytes: Int) -> [[BlobSpan]] {
        var pieces: [[BlobSpan]] = [], piece: [BlobSpan] = [], filled: Int64 = 0
        for span in spans {
            var offset = span.offset, left = span.length
            while left > 0 {
                let take = min(left, Int64(bytes) - filled)
                piece.append(BlobSpan(hash: span.hash, offset: offset, length: take))
                offset += take
                left -= take
                filled += take
                if filled == Int64(bytes) {
                    pieces.append(piece)
                    piece = []
                    filled = 0
                }
            }
        }
        if !piece.isEmpty { pieces.append(piece) }
        return pieces
    }
}

/// 1 MiB, the chunker's average chunk. curl's warm 1 GiB download on this project's VM, four
/// rounds of five against each build: 4.3–5.1 GB/s with 1 MiB pieces, 3.8–5.7 with 2 MiB
/// (twice the memory per download), 2.3–4.5 with 4 MiB, and 3.1–4.4 with the earlier reader,
/// which read each chunk on its own (a 1.3 MiB chunk was two trips, 1 MiB and 0.3 MiB).
let streamPieceBytes = 1 << 20
