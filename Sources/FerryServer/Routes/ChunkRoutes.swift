import FerryCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOPosix
import CoreMetrics

/// `/chunks`: which chunks must this user upload, upload one, read one.
struct ChunkRoutes {
    let services: ServerServices

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.post("chunks/missing", use: missing)
        group.post("chunks/batch", use: batch)
        group.put("chunks/{sha256}", use: upload)
        group.get("chunks/{sha256}", use: download)
    }

    @Sendable func missing(_ request: Request, context: FerryRequestContext) async throws -> MissingChunksResponse {
        let user = try context.user()
        let body = try await services.decodeBulk(MissingChunksRequest.self, request, userId: user.userId, limit: Self.missingQueryBytes)
        guard body.chunks.count <= FerryProtocol.maxMissingQuery else {
            throw APIError.tooLarge("ask about at most \(FerryProtocol.maxMissingQuery) chunks per request")
        }
        return MissingChunksResponse(missing: try await services.store.missingChunks(userId: user.userId, among: body.chunks))
    }

    /// The largest missing-chunks query: `maxMissingQuery` hashes of 66 bytes each, with room
    /// for a separator and indentation per line.
    static let missingQueryBytes = FerryProtocol.maxMissingQuery * 96 + 4096

    @Sendable func upload(_ request: Request, context: FerryRequestContext) async throws -> EditedResponse<ChunkUploadResponse> {
        let user = try context.user()
        let hash = try Self.hash(context)
        let limit = Int64(FerryProtocol.maxChunkSize)
        let declared = request.headers[.contentLength].flatMap(Int64.init)
        if let declared, declared > limit { throw APIError.tooLarge("a chunk is at most \(limit) bytes; this one declares \(declared)") }
        try services.ensureSpace(for: declared ?? limit)
        let stored = try await Self.store(request.body, expecting: hash, for: user.userId, services: services)
        return EditedResponse(status: .created, response: ChunkUploadResponse(sha256: hash, size: stored.size))
    }

    /// Many small chunks in one request (`ChunkBatchFormat` frames): verified one by one,
    /// made durable together, recorded in one transaction. Frames that do not hash to their
    /// name are answered in `rejected` and leave nothing behind.
    @Sendable func batch(_ request: Request, context: FerryRequestContext) async throws -> EditedResponse<ChunkBatchResponse> {
        let user = try context.user()
        let limits = services.limits
        let limit = limits.batchRequestBytes
        let declared = request.headers[.contentLength].flatMap(Int.init)
        if let declared, declared > limit { throw APIError.tooLarge("a chunk batch is at most \(limit) bytes; this one declares \(declared)") }
        try services.ensureSpace(for: Int64(declared ?? limit))
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: limit) } catch is NIOTooManyBytesError {
            throw APIError.tooLarge("a chunk batch is at most \(limit) bytes")
        }
        let frames: [(hash: ContentHash, range: Range<Int>)]
        do { frames = try body.withUnsafeReadableBytes { try ChunkBatchFormat.parse($0, maxChunks: limits.batchChunks) } } catch {
            throw APIError.badRequest("\(error)", code: "invalid_batch")
        }
        guard !frames.isEmpty else { throw APIError.badRequest("the batch holds no chunks", code: "invalid_batch") }
        let items = frames.map { (hash: $0.hash, bytes: body.getSlice(at: body.readerIndex + $0.range.lowerBound, length: $0.range.count)!) }
        let epoch = try await services.blobEpoch()
        let (staged, mismatched) = try await services.blobs.stageBatch(items)
        if !staged.isEmpty { try await Self.record(staged, for: user.userId, placedSince: epoch, services: services) }
        return EditedResponse(status: .ok, response: ChunkBatchResponse(stored: staged.map { ChunkRef(sha256: $0.hash, size: $0.size) }, rejected: mismatched))
    }

    @Sendable func download(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let user = try context.user()
        let hash = try Self.hash(context)
        guard let size = try await services.store.chunkSize(userId: user.userId, hash: hash) else {
            throw APIError.notFound("chunk \(hash) not found")
        }
        return Self.serve(hash, size: size, blobs: services.blobs)
    }

    /// A chunk's bytes as a response, streamed from the blob store.
    static func serve(_ hash: ContentHash, size: Int64, blobs: any BlobStore) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "application/octet-stream", .eTag: "\"\(hash.hex)\""],
            body: ResponseBody(contentLength: Int(size)) { writer in
                try await blobs.stream([BlobSpan(hash: hash, offset: 0, length: size)]) { try await writer.write($0) }
                try await writer.finish(nil)
            })
    }

    static func hash(_ context: FerryRequestContext) throws -> ContentHash {
        let raw = try context.parameters.require("sha256")
        guard let hash = ContentHash(hex: raw) else { throw APIError.badRequest("'\(raw)' is not a SHA-256 (64 hex characters)", code: "invalid_hash") }
        return hash
    }

    /// Streams bytes into staging, verifies them, then publishes the blob and records the
    /// user's ownership under one write lock. On any failure nothing is left visible.
    static func store(
        _ body: some AsyncSequence<ByteBuffer, any Error>, expecting hash: ContentHash?, for userId: Int64, services: ServerServices
    ) async throws -> StagedBlob {
        let epoch = try await services.blobEpoch()
        let staged = try await stage(body, expecting: hash, services: services)
        try await record([staged], for: userId, placedSince: epoch, services: services)
        return staged
    }

    /// Streams bytes into staging and verifies them; nothing is visible or recorded yet.
    static func stage(_ body: some AsyncSequence<ByteBuffer, any Error>, expecting hash: ContentHash?, services: ServerServices) async throws -> StagedBlob {
        let writer = try await services.blobs.makeWriter()
        do {
            for try await buffer in body { try await writer.write(buffer) }
            return try await writer.finish(expected: hash)
        } catch {
            await writer.abort()
            throw error
        }
    }

    /// Publishes staged blobs and records the user's ownership in one transaction, refused
    /// as a whole (a quota, gc's fence); discards the staged files on failure. `epoch` is the
    /// gc epoch read before an object store placed the blobs (nil for files).
    static func record(_ staged: [StagedBlob], for userId: Int64, placedSince epoch: Int64?, services: ServerServices) async throws {
        let blobs = services.blobs
        do {
            _ = try await services.store.recordChunks(userId: userId, staged.map { ChunkRef(sha256: $0.hash, size: $0.size) }, placedSince: epoch) {
                staged.count == 1 ? [try blobs.publish(staged[0])] : try blobs.publishBatch(staged)
            }
            services.metrics.chunkUploads.increment(by: staged.count)
            services.metrics.chunkBytesReceived.increment(by: Int(staged.reduce(0) { $0 + $1.size }))
        } catch {
            for blob in staged { blobs.discard(blob) }
            throw error
        }
    }
}
