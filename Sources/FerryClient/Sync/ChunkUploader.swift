import FerryCore
import Foundation

/// The upload half of the transfers stage: the chunks of planned files the server lacks,
/// read from their files and sent in batches. (What was hashed this pass mostly went
/// already, through the `EarlySender`; this sends the rest.)
struct ChunkUploader: Sendable {
    let root: String
    let api: ServerAPI
    let parallelism: Int
    let progress: TransferProgress

    /// Asks the server which chunks it lacks (all but those it already confirmed holding,
    /// `present`) and uploads those, `parallelism` at a time, reading each from its file.
    /// Files whose bytes no longer hash as planned (the server refuses them) go to `torn`.
    /// Returns bytes sent. (A confirmed chunk that is gone by the commit is answered
    /// `missing_chunks` there, and uploaded then.)
    func uploadMissing(of files: [LocalState], present: Set<ContentHash> = [], torn: inout Set<String>) async throws -> Int64 {
        var location: [ContentHash: ChunkLocation] = [:]
        for f in files {
            var offset: Int64 = 0
            for c in f.chunks {
                if location[c.sha256] == nil, !present.contains(c.sha256) { location[c.sha256] = ChunkLocation(chunk: c, path: f.path, offset: offset) }
                offset += c.size
            }
        }
        guard !location.isEmpty else { return 0 }
        let missing = try await api.missingChunks(Array(location.keys))
        let limits = try await api.limits()
        // Batches of many chunks, of many files (one request and one server-side sync
        // each), at most `parallelism` in flight.
        let jobs = ChunkUpload.groups(missing.lazy.compactMap { location[$0] }, limits: limits)

        let root = self.root, api = self.api, progress = self.progress
        var sent: Int64 = 0
        try await withThrowingTaskGroup(of: (stored: Int64, present: [ContentHash], torn: [String]).self) { group in
            var next = 0
            func launch() {
                guard next < jobs.count else { return }
                let items = jobs[next]
                next += 1
                group.addTask { try await ChunkUpload.send(items, root: root, api: api, progress: progress) }
            }
            for _ in 0..<parallelism { launch() }
            while let answer = try await group.next() {
                torn.formUnion(answer.torn)
                sent += answer.stored
                launch()
            }
        }
        return sent
    }
}
