import FerryCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import CoreMetrics
import Metrics

/// `/libraries/{lib}/…`: commit, files, changes, history, list, trash, restore.
struct FileRoutes {
    let services: ServerServices

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.post("libraries/{lib}/commit", use: commit)
        group.get("libraries/{lib}/files", use: download)
        group.put("libraries/{lib}/files", use: upload)
        group.get("libraries/{lib}/changes", use: changes)
        group.get("libraries/{lib}/history", use: history)
        group.get("libraries/{lib}/list", use: list)
        group.post("libraries/{lib}/restore", use: restore)
        group.get("libraries/{lib}/trash", use: trash)
    }

    @Sendable func commit(_ request: Request, context: FerryRequestContext) async throws -> CommitResponse {
        let user = try context.user()
        let library = try await services.library(context, needs: .write)
        let body = try await services.decodeBulk(CommitRequest.self, request, userId: user.userId, limit: services.configuration.http.maxJSONBodyBytes)
        let most = services.limits.commitOperations
        guard (1...most).contains(body.operations.count) else {
            throw APIError.badRequest("a commit carries 1 to \(most) operations")
        }
        let response = try await services.commit(body.operations, by: user, to: library)
        return body.brief == true ? response.brief(for: body.operations) : response
    }

    @Sendable func download(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let library = try await services.library(context, needs: .read)
        let path = try Self.path(request)
        let version: FileVersion?
        if let seq = try request.intQuery("version", in: 1...Int64.max) {
            version = try await services.store.version(libraryId: library.id, path: path, seq: seq)
        } else {
            version = try await services.store.current(libraryId: library.id, path: path)
        }
        guard let version, !version.deleted else { throw APIError.notFound("'\(path)' not found") }
        return try serveContent(of: version, request: request)
    }

    /// A file version's bytes, with ETag (its SHA-256), `If-None-Match` and single ranges.
    func serveContent(of version: FileVersion, request: Request) throws -> Response {
        let path = version.path
        guard version.kind == .file, let sha = version.sha256 else {
            throw APIError.badRequest("'\(path)' is a \(version.kind.rawValue), not a file", code: "not_a_file")
        }
        let etag = "\"\(sha.hex)\""
        var headers: HTTPFields = [.eTag: etag, .acceptRanges: "bytes", .contentType: "application/octet-stream"]
        if let match = request.headers[.ifNoneMatch], match.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == etag || $0 == "*" }) {
            return Response(status: .notModified, headers: headers)
        }
        var range = 0..<version.size
        var status = HTTPResponse.Status.ok
        if let header = request.headers[.range] {
            switch ByteRange.parse(header, size: version.size) {
            case .whole: break
            case .range(let r):
                range = r
                status = .partialContent
                headers[.contentRange] = "bytes \(r.lowerBound)-\(r.upperBound - 1)/\(version.size)"
            case .unsatisfiable:
                return APIError(.rangeNotSatisfiable, "range_not_satisfiable", "the range is outside the file's \(version.size) bytes")
                    .response().withHeader(.contentRange, "bytes */\(version.size)")
            }
        }
        let spans = Self.spans(of: version, range: range)
        let blobs = services.blobs
        return Response(status: status, headers: headers, body: ResponseBody(contentLength: Int(range.count)) { [spans] writer in
            try await blobs.stream(spans) { try await writer.write($0) }
            try await writer.finish(nil)
        })
    }

    /// The pieces of the version's chunks that hold the bytes in `range`.
    static func spans(of version: FileVersion, range: Range<Int64>) -> [BlobSpan] {
        var spans: [BlobSpan] = []
        var offset: Int64 = 0
        for chunk in version.chunks {
            let start = max(range.lowerBound, offset), end = min(range.upperBound, offset + chunk.size)
            if start < end { spans.append(BlobSpan(hash: chunk.sha256, offset: start - offset, length: end - start)) }
            offset += chunk.size
            if offset >= range.upperBound { break }
        }
        return spans
    }

    /// A plain streamed upload: the server chunks the body, so `curl -T` works for any size.
    /// Memory stays bounded by one chunk.
    @Sendable func upload(_ request: Request, context: FerryRequestContext) async throws -> EditedResponse<VersionResponse> {
        let user = try context.user()
        let library = try await services.library(context, needs: .write)
        let path = try Self.path(request)
        let base = try request.intQuery("base", in: 1...Int64.max)
        let mtime = try request.intQuery("mtime_ns", in: Int64.min...Int64.max)
        let mode = try request.intQuery("mode", in: 0...0o777).map { Int32($0) }
        let version = try await storeUpload(request, user: user, library: library, path: path, base: base, mtimeNs: mtime, mode: mode)
        return EditedResponse(status: .created, response: VersionResponse(version: version))
    }

    /// Chunks and stores a streamed body, then commits it at `path`. Without a base the
    /// upload replaces whatever is current (the old content stays in history).
    func storeUpload(_ request: Request, user: Identity, library: LibraryInfo, path: FerryPath, base: Int64?, mtimeNs mtime: Int64?, mode: Int32?) async throws -> FileVersion {
        // A body of unknown length (chunked, `curl -T -`) is checked per chunk as it is stored.
        try services.ensureSpace(for: request.headers[.contentLength].flatMap(Int64.init) ?? Int64(FerryProtocol.maxChunkSize))

        // Every chunk is staged first and all are recorded in one transaction at the end, so
        // an upload refused there (a quota) leaves nothing recorded.
        var chunker = ContentChunker()
        var pending = ByteBuffer()
        var completed: [ByteBuffer] = []
        var staged: [StagedBlob] = []
        let epoch = try await services.blobEpoch()
        let manifest: ContentManifest
        do {
            for try await buffer in request.body {
                buffer.withUnsafeReadableBytes { bytes in
                    chunker.update(bytes) { piece in
                        pending.writeBytes(piece.bytes)
                        if piece.completes != nil {
                            completed.append(pending)
                            pending = ByteBuffer()
                        }
                    }
                }
                for chunk in completed { staged.append(try await stageChunk(chunk)) }
                completed.removeAll()
            }
            manifest = chunker.finish { _ in completed.append(pending) }
            for chunk in completed { staged.append(try await stageChunk(chunk)) }
        } catch {
            for blob in staged { services.blobs.discard(blob) }
            throw error
        }
        try await ChunkRoutes.record(staged, for: user.userId, placedSince: epoch, services: services)

        let put = { (base: Int64?) in
            CommitOperation.putFile(path, base: base, manifest: manifest, mtimeNs: mtime ?? CommitRules.nanoseconds(Date()), mode: mode ?? 0o644)
        }
        var attempts = 0
        while true {
            attempts += 1
            var effectiveBase = base
            if effectiveBase == nil { effectiveBase = try await services.store.current(libraryId: library.id, path: path)?.version }
            let result = try await services.commit([put(effectiveBase)], by: user, to: library).results[0]
            switch result.status {
            case .ok: return result.version!
            case .conflict where base == nil && attempts < 5: continue
            case .conflict: throw MetadataError.conflict(current: result.current)
            case .missingChunks: throw APIError(.internalServerError, "internal", "uploaded chunks vanished before the commit; retry")
            case .rejected: throw APIError.badRequest(result.error?.message ?? "upload refused", code: result.error?.code ?? "invalid_request")
            }
        }
    }

    private func stageChunk(_ chunk: ByteBuffer) async throws -> StagedBlob {
        try services.ensureSpace(for: Int64(chunk.readableBytes))
        struct One: AsyncSequence, Sendable {
            let buffer: ByteBuffer
            struct AsyncIterator: AsyncIteratorProtocol {
                var buffer: ByteBuffer?
                mutating func next() async throws -> ByteBuffer? { defer { buffer = nil }; return buffer }
            }
            func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: buffer) }
        }
        return try await ChunkRoutes.stage(One(buffer: chunk), expecting: nil, services: services)
    }

    @Sendable func changes(_ request: Request, context: FerryRequestContext) async throws -> ChangesResponse {
        let library = try await services.library(context, needs: .read)
        let since = try request.intQuery("since", in: 0...Int64.max, default: 0)!
        let limit = Int(try request.intQuery("limit", in: 1...Int64(FerryProtocol.maxChangesLimit), default: 1000)!)
        let wait = try request.intQuery("wait", in: 0...Int64(FerryProtocol.maxWaitSeconds), default: 0)!
        let first = try await services.store.changes(libraryId: library.id, since: since, limit: limit)
        // A cursor past the head was read from a newer state of this library than the
        // server now has: it was restored from a backup. Waiting would silently skip every
        // change between the head and that cursor; the client has to start over instead.
        guard since <= first.page.head else {
            throw APIError(.conflict, "cursor_ahead",
                           "the cursor \(since) is past this library's head \(first.page.head): the server was restored from an older backup; start over from 0")
        }
        // Checked on each read, with the mark that read saw: a purge that ran before it is
        // seen (docs/architecture.md, "Retention").
        try FileRoutes.checkCursorKept(since, first)
        guard first.page.changes.isEmpty, wait > 0 else { return first.page }
        let head = await services.notifier.wait(library: library.id, after: max(since, first.page.head), timeout: .seconds(wait))
        let store = services.store
        let woken = try await services.wokenReads.value(for: .init(library: library.id, since: since, limit: limit, head: head)) {
            try await store.changes(libraryId: library.id, since: since, limit: limit)
        }
        try FileRoutes.checkCursorKept(since, woken)
        return woken.page
    }

    @Sendable func history(_ request: Request, context: FerryRequestContext) async throws -> HistoryResponse {
        let library = try await services.library(context, needs: .read)
        let path = try Self.path(request)
        let limit = Int(try request.intQuery("limit", in: 1...1000, default: 100)!)
        let before = try request.intQuery("before", in: 1...Int64.max)
        return try await services.store.history(libraryId: library.id, path: path, before: before, limit: limit)
    }

    /// The live entries directly inside `?path=` (the root when absent), paged by name.
    @Sendable func list(_ request: Request, context: FerryRequestContext) async throws -> ListResponse {
        let library = try await services.library(context, needs: .read)
        let directory = try Self.directory(request)
        let limit = Int(try request.intQuery("limit", in: 1...5000, default: 1000)!)
        return try await services.store.list(libraryId: library.id, directory: directory, after: request.query("after"), limit: limit)
    }

    /// Deleted entries at and beneath `?path=` (the whole library when absent), paged by path.
    @Sendable func trash(_ request: Request, context: FerryRequestContext) async throws -> TrashResponse {
        let library = try await services.library(context, needs: .read)
        let directory = try Self.directory(request)
        let limit = Int(try request.intQuery("limit", in: 1...5000, default: 1000)!)
        return try await services.store.trash(libraryId: library.id, directory: directory, after: request.query("after"), limit: limit)
    }

    @Sendable func restore(_ request: Request, context: FerryRequestContext) async throws -> EditedResponse<VersionResponse> {
        let user = try context.user()
        let library = try await services.library(context, needs: .write)
        let body = try await request.decodeJSON(RestoreRequest.self, limit: 64 * 1024)
        let outcome = try await services.restore(body, by: user, in: library)
        return EditedResponse(status: .created, response: VersionResponse(
            version: outcome.version, restoredEntries: outcome.version.kind == .directory ? outcome.restoredEntries : nil))
    }

    /// `?path=` as a directory: absent or empty for the library's root.
    static func directory(_ request: Request) throws -> FerryPath? {
        guard let raw = request.query("path"), !raw.isEmpty else { return nil }
        return try FerryPath(raw)
    }

    static func path(_ request: Request) throws -> FerryPath {
        guard let raw = request.query("path") else { throw APIError.badRequest("query parameter 'path' is required", code: "invalid_path") }
        return try FerryPath(raw)
    }
}

extension TrashResponse: ResponseEncodable {}

/// A single `Range: bytes=…` request; multiple ranges are answered with the whole body.
enum ByteRange: Equatable {
    case whole
    case range(Range<Int64>)
    case unsatisfiable

    static func parse(_ header: String, size: Int64) -> ByteRange {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return .whole }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return .whole }
        if parts[0].isEmpty {
            guard let n = Int64(parts[1]), n > 0 else { return .unsatisfiable }
            return size == 0 ? .unsatisfiable : .range(max(0, size - n)..<size)
        }
        guard let start = Int64(parts[0]), start >= 0 else { return .whole }
        guard start < size else { return .unsatisfiable }
        if parts[1].isEmpty { return .range(start..<size) }
        guard let end = Int64(parts[1]), end >= start else { return .whole }
        return .range(start..<(min(end, size - 1) + 1))
    }
}

extension Response {
    func withHeader(_ name: HTTPField.Name, _ value: String) -> Response {
        var copy = self
        copy.headers[name] = value
        return copy
    }
}
