import FerryCore
import Foundation
import NIOPosix

/// Sends chunks to the server while a pass is still hashing, so the server stores one group
/// of chunks while the client hashes the next instead of the two taking turns.
///
/// Chunks sent here are not yet part of any version: the commit comes after planning, and
/// the usual upload step skips them because the server no longer reports them missing. A
/// chunk the planner ends up not needing is collected by the server's `gc` like any other
/// unreferenced chunk. Every failure is left to that upload step, which finds the chunk
/// still missing and reports it properly.
final class EarlySender: Sendable {
    struct Item: Sendable {
        let chunk: ChunkRef
        let path: String
        let offset: Int64
    }

    private let continuation: AsyncStream<Item>.Continuation
    private let sender: Task<Int64, Never>

    /// Content bytes per group (half the batch limit); each group is one missing-chunks
    /// question and one batch upload, with `parallelism` groups in flight.
    static let groupBytes = Int64(ChunkBatchFormat.maxContentBytes / 2)
    /// Hashes remembered to skip a chunk already queued; cleared when full, it only saves
    /// asking about the same chunk twice.
    static let rememberedHashes = 65_536

    init(api: ServerAPI, root: String, parallelism: Int) {
        let (items, continuation) = AsyncStream<Item>.makeStream()
        self.continuation = continuation
        sender = Task {
            await withTaskGroup(of: Int64.self) { tasks in
                var inFlight = 0, sent: Int64 = 0
                var group: [Item] = [], bytes: Int64 = 0
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
                    tasks.addTask { await Self.send(members, root: root, api: api) }
                }
                for await item in items {
                    if queued.count == Self.rememberedHashes { queued.removeAll(keepingCapacity: true) }
                    guard queued.insert(item.chunk.sha256).inserted else { continue }
                    group.append(item)
                    bytes += item.chunk.size
                    if bytes >= Self.groupBytes || group.count == ChunkBatchFormat.maxChunks { await launch() }
                }
                if !group.isEmpty { await launch() }
                while let n = await tasks.next() { sent += n }
                return sent
            }
        }
    }

    /// Queues `chunks`, which follow each other in the file at `path` from byte `start`.
    func offer(_ chunks: [ChunkRef], path: String, at start: Int64 = 0) {
        var offset = start
        for chunk in chunks {
            continuation.yield(Item(chunk: chunk, path: path, offset: offset))
            offset += chunk.size
        }
    }

    /// Sends what is still queued; returns the chunk bytes the server stored.
    func finish() async -> Int64 {
        continuation.finish()
        return await sender.value
    }

    /// Sends the members the server lacks as one batch, reading each from its file again.
    /// The server hashes what it receives, so bytes that changed since hashing are refused.
    static func send(_ members: [Item], root: String, api: ServerAPI) async -> Int64 {
        guard let missing = try? await api.missingChunks(members.map(\.chunk.sha256)), !missing.isEmpty else { return 0 }
        let wanted = Set(missing)
        let chosen = members.filter { wanted.contains($0.chunk.sha256) }
        guard let read = try? await FolderSync.ioPool.runIfActive({
            try chosen.map { item in (hash: item.chunk.sha256, bytes: try FolderSync.readRange(root + "/" + item.path, offset: item.offset, size: item.chunk.size)) }
        }) else { return 0 }
        let present = read.compactMap { item in item.bytes.map { (hash: item.hash, bytes: $0) } }
        guard !present.isEmpty, let answer = try? await api.putChunks(present) else { return 0 }
        return answer.stored.reduce(0) { $0 + $1.size }
    }
}

extension Result where Failure == any Error {
    /// `Result(catching:)` for async work.
    init(awaiting body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
