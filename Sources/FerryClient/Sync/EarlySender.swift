import FerryCore
import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// Where a chunk's bytes are: in the file at `path` (relative to the folder root), from `offset`.
/// `content`, when set, holds the chunk's bytes as they were hashed, so they need not be
/// read again.
struct ChunkLocation: Sendable {
    let chunk: ChunkRef
    let path: String
    let offset: Int64
    var content: ArraySlice<UInt8>? = nil
}

/// Chunks go to the server in `POST /chunks/batch` requests, read back from their files.
/// Shared by the upload step and `EarlySender`.
enum ChunkUpload {
    /// Whether a group of `count` chunks and `bytes` bytes is ready to go: at the batch's
    /// chunk limit, or at half its content limit (8 MiB with this build's 16 MiB).
    static func isFull(count: Int, bytes: Int64, limits: ServerLimits) -> Bool {
        count >= limits.batchChunks || bytes >= Int64(limits.batchContentBytes / 2)
    }

    /// Whether a group holding `bytes` must go before a chunk of `size` joins it: the batch
    /// would pass the content limit. Only a server announcing less than twice the largest
    /// chunk gets here (the group would have been full first).
    static func mustGoBefore(_ size: Int64, bytes: Int64, limits: ServerLimits) -> Bool {
        bytes > 0 && bytes + size > Int64(limits.batchContentBytes)
    }

    /// `items` in batches within `limits`, in their order.
    static func groups(_ items: some Sequence<ChunkLocation>, limits: ServerLimits) -> [[ChunkLocation]] {
        var groups: [[ChunkLocation]] = [[]]
        var bytes: Int64 = 0
        for item in items {
            if mustGoBefore(item.chunk.size, bytes: bytes, limits: limits) {
                groups.append([])
                bytes = 0
            }
            groups[groups.count - 1].append(item)
            bytes += item.chunk.size
            if isFull(count: groups[groups.count - 1].count, bytes: bytes, limits: limits) {
                groups.append([])
                bytes = 0
            }
        }
        return groups.filter { !$0.isEmpty }
    }

    /// Reads `items` back and sends them as one batch. The server hashes every chunk it
    /// receives, so bytes that changed since hashing come back in `rejected` and nothing of
    /// them is stored; a file that is gone or shorter is not sent. Both kinds of path are
    /// returned in `torn`, with the chunk bytes the server stored and their hashes.
    /// `progress` is told which file each stored chunk belongs to.
    static func send(_ items: [ChunkLocation], root: String, api: ServerAPI, progress: TransferProgress? = nil) async throws
        -> (stored: Int64, present: [ContentHash], torn: [String]) {
        var (body, sent, torn) = try await SyncIO.pool.runIfActive { batchBody(items, root: root) }
        guard sent > 0 else { return (0, [], torn) }
        let answer = try await api.putChunks(body: body)
        let rejected = Set(answer.rejected)
        torn += items.filter { rejected.contains($0.chunk.sha256) }.map(\.path)
        if let progress {
            var stored = Set(answer.stored.map(\.sha256))
            for item in items where stored.remove(item.chunk.sha256) != nil { progress.sent(item.chunk.size, of: item.path) }
        }
        return (answer.stored.reduce(0) { $0 + $1.size }, answer.stored.map(\.sha256), torn)
    }

    /// The `ChunkBatchFormat` body for `items`, each chunk read from its file straight into
    /// place (no buffer per chunk, no second copy into the body). A chunk whose file is gone,
    /// shorter or unreadable is left out and its path returned in `torn`. Blocking.
    static func batchBody(_ items: [ChunkLocation], root: String) -> (body: ByteBuffer, sent: Int, torn: [String]) {
        var body = ByteBuffer()
        body.reserveCapacity(items.reduce(0) { $0 + ChunkBatchFormat.headerSize + Int($1.chunk.size) })
        var sent = 0, torn: [String] = []
        for item in items {
            let mark = body.writerIndex
            ChunkBatchFormat.withHeader(item.chunk.sha256, size: Int(item.chunk.size)) { body.writeBytes($0) }
            if let content = item.content {
                body.writeBytes(content)
                sent += 1
                continue
            }
            let read = (try? FolderFS.readRange(root: root, path: item.path, offset: item.offset, size: item.chunk.size, appendingTo: &body)) ?? false
            if read {
                sent += 1
            } else {
                body.moveWriterIndex(to: mark)
                torn.append(item.path)
            }
        }
        return (body, sent, torn)
    }
}

/// Sends chunks to the server while a pass is still hashing, so the server stores one group
/// of chunks while the client hashes the next instead of the two taking turns.
///
/// Chunks sent here are not yet part of any version: the commit comes after planning, and
/// the usual upload step skips them because the server no longer reports them missing. A
/// chunk the planner ends up not needing is collected by the server's `gc` like any other
/// unreferenced chunk. Every failure is left to that upload step, which finds the chunk
/// still missing and reports it properly. `ferry-bench throughput` uploads its files through
/// it too, so its upload rows measure the daemon's way of sending.
public final class EarlySender: Sendable {
    private let continuation: AsyncStream<ChunkLocation>.Continuation
    private let sender: Task<Int64, Never>
    private let confirmed = Confirmed()
    private let held: HeldContent

    /// Hashes remembered to skip a chunk already queued; cleared when full, it only saves
    /// asking about the same chunk twice.
    static let rememberedHashes = 65_536

    /// Past this many bytes of offered content held, chunks are read back from their files
    /// when sent. An initial sync of 20,000 small files (90 MB) hashed ahead of the upload
    /// stays inside it.
    public static let heldContentLimit = 64 << 20

    /// `limits`: the batch sizes agreed with the server (`ServerAPI.limits()`). `progress` is
    /// told of the chunks stored, file by file.
    public init(api: ServerAPI, root: String, parallelism: Int, limits: ServerLimits, heldContentLimit: Int = EarlySender.heldContentLimit,
                progress: TransferProgress? = nil) {
        held = HeldContent(limit: heldContentLimit)
        let (items, continuation) = AsyncStream<ChunkLocation>.makeStream()
        self.continuation = continuation
        let confirmed = self.confirmed, held = self.held
        sender = Task {
            await withTaskGroup(of: Int64.self) { tasks in
                var inFlight = 0, sent: Int64 = 0
                // Each group is one missing-chunks question and one batch upload, with
                // `parallelism` groups in flight.
                var group: [ChunkLocation] = [], bytes: Int64 = 0
                var queued = Set<ContentHash>()
                func launch() async {
                    let members = group
                    group = []
                    bytes = 0
                    if inFlight == parallelism, let n = await tasks.next() {
                        sent += n
                        inFlight -= 1
                    }
                    inFlight += 1
                    tasks.addTask {
                        defer { held.release(members) }
                        return await Self.send(members, root: root, api: api, confirmed: confirmed, progress: progress)
                    }
                }
                for await item in items {
                    if queued.count == Self.rememberedHashes { queued.removeAll(keepingCapacity: true) }
                    guard queued.insert(item.chunk.sha256).inserted else {
                        held.release([item])
                        continue
                    }
                    if ChunkUpload.mustGoBefore(item.chunk.size, bytes: bytes, limits: limits) { await launch() }
                    group.append(item)
                    bytes += item.chunk.size
                    if ChunkUpload.isFull(count: group.count, bytes: bytes, limits: limits) { await launch() }
                }
                if !group.isEmpty { await launch() }
                while let n = await tasks.next() { sent += n }
                return sent
            }
        }
    }

    /// Queues `chunks`, which follow each other in the file at `path` from byte `start`.
    /// `content`, the bytes of all of them as hashed, is kept and sent as it is while
    /// `heldContentLimit` allows; otherwise the chunks are read back from the file.
    public func offer(_ chunks: [ChunkRef], path: String, at start: Int64 = 0, content: ArraySlice<UInt8>? = nil) {
        var offset = start
        var content = content
        if let bytes = content, bytes.count != chunks.reduce(0, { $0 + Int($1.size) }) || !held.reserve(bytes.count) { content = nil }
        for chunk in chunks {
            var location = ChunkLocation(chunk: chunk, path: path, offset: offset)
            if let bytes = content {
                let from = bytes.startIndex + Int(offset - start)
                location.content = bytes[from..<from + Int(chunk.size)]
            }
            continuation.yield(location)
            offset += chunk.size
        }
    }

    /// Bytes of offered content not yet sent, within a bound.
    final class HeldContent: Sendable {
        let limit: Int
        let bytes = Atomic<Int>(0)

        init(limit: Int) { self.limit = limit }

        func reserve(_ n: Int) -> Bool {
            if bytes.add(n, ordering: .relaxed).newValue <= limit { return true }
            bytes.subtract(n, ordering: .relaxed)
            return false
        }

        func release(_ members: [ChunkLocation]) {
            let n = members.reduce(0) { $0 + ($1.content?.count ?? 0) }
            if n > 0 { bytes.subtract(n, ordering: .relaxed) }
        }
    }

    /// Nothing more will be offered: what is queued is still sent.
    public func close() {
        continuation.finish()
    }

    /// Sends what is still queued and waits until it is stored; returns the chunk bytes the
    /// server stored. May be called again; each call returns the same total.
    public func finish() async -> Int64 {
        continuation.finish()
        return await sender.value
    }

    /// Bytes of offered content not yet sent.
    var heldContentBytes: Int { held.bytes.load(ordering: .relaxed) }

    /// Chunks the server has said it holds for this user, in answers to this sender: the
    /// upload step need not ask about them again. A copy; once `finish` returned, complete.
    public func confirmedPresent() -> Set<ContentHash> { confirmed.hashes.withLock { $0 } }

    /// Hashes the server confirmed, up to `limit` (past it the upload step asks as usual).
    final class Confirmed: Sendable {
        static let limit = 1 << 18
        let hashes = Mutex(Set<ContentHash>())

        func add(_ more: some Sequence<ContentHash>) {
            hashes.withLock { set in
                for hash in more where set.count < Self.limit { set.insert(hash) }
            }
        }
    }

    /// Sends the members the server lacks; returns the chunk bytes it stored.
    static func send(_ members: [ChunkLocation], root: String, api: ServerAPI, confirmed: Confirmed, progress: TransferProgress?) async -> Int64 {
        guard let missing = try? await api.missingChunks(members.map(\.chunk.sha256)) else { return 0 }
        let wanted = Set(missing)
        confirmed.add(members.lazy.map(\.chunk.sha256).filter { !wanted.contains($0) })
        guard !wanted.isEmpty,
              let sent = try? await ChunkUpload.send(members.filter { wanted.contains($0.chunk.sha256) }, root: root, api: api, progress: progress)
        else { return 0 }
        confirmed.add(sent.present)
        return sent.stored
    }
}

extension Result where Failure == any Error {
    /// `Result(catching:)` for async work.
    init(awaiting body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
