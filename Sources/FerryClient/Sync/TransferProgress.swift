import Foundation
import Synchronization

/// How far a folder's sync has come, in bytes and files. A pass only counts here (hashed,
/// planned, done); `ferry sync`'s progress line and `ferry status` read it and do the
/// drawing, so the sync's logic knows nothing of terminals.
public final class TransferProgress: Sendable {
    /// The counts at one moment.
    public struct Snapshot: Sendable, Equatable {
        /// Whether a pass is running.
        public var active = false
        /// Bytes of changed local files hashed so far in this pass, before its plan.
        public var hashedBytes: Int64 = 0
        /// What this pass's plan moves: file bytes and files to upload and download; nil
        /// until it is made.
        public var plannedBytes: Int64?
        public var plannedFiles = 0
        /// How much of that is done.
        public var doneBytes: Int64 = 0
        public var doneFiles = 0
        /// File content sent or written since this progress began, over all passes (chunks
        /// the server already held are done without being sent).
        public var transferredBytes: Int64 = 0
        /// When the current phase began: the pass (while hashing) or its plan (after).
        public var phaseStarted: ContinuousClock.Instant?

        public init() {}

        /// Bytes the running pass has still to move.
        public var queuedBytes: Int64 { active ? max(0, (plannedBytes ?? 0) - doneBytes) : 0 }
        /// Files the running pass has still to move.
        public var queuedFiles: Int { active ? max(0, plannedFiles - doneFiles) : 0 }
    }

    private struct State {
        var counts = Snapshot()
        /// Chunk bytes sent this pass, per file, so its commit adds only the rest.
        var sentOf: [String: Int64] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public var snapshot: Snapshot { state.withLock { $0.counts } }

    /// A pass starts: its counts start from nothing.
    func beginPass() {
        state.withLock { s in
            var counts = Snapshot()
            counts.transferredBytes = s.counts.transferredBytes
            counts.active = true
            counts.phaseStarted = .now
            s = State(counts: counts)
        }
    }

    /// Bytes of changed files were hashed.
    func hashed(_ bytes: Int64) {
        state.withLock { $0.counts.hashedBytes += bytes }
    }

    /// The pass's plan moves `bytes` in `files`.
    func plan(bytes: Int64, files: Int) {
        state.withLock { s in
            s.counts.plannedBytes = bytes
            s.counts.plannedFiles = files
            s.counts.phaseStarted = .now
        }
    }

    /// `bytes` of a download were written (fetched, or copied from a local file).
    func received(_ bytes: Int64) {
        state.withLock { s in
            s.counts.doneBytes += bytes
            s.counts.transferredBytes += bytes
        }
    }

    /// A download (or an upload's commit, `uploaded`) finished a file.
    func finishedFile() {
        state.withLock { $0.counts.doneFiles += 1 }
    }

    /// The server stored `bytes` of chunks of the file at `path`.
    func sent(_ bytes: Int64, of path: String) {
        state.withLock { s in
            s.counts.doneBytes += bytes
            s.counts.transferredBytes += bytes
            s.sentOf[path, default: 0] += bytes
        }
    }

    /// The file at `path`, of `size` bytes, was committed: what was not sent of it (chunks
    /// the server held already) is done too.
    func uploaded(_ path: String, size: Int64) {
        state.withLock { s in
            s.counts.doneBytes += max(0, size - (s.sentOf.removeValue(forKey: path) ?? 0))
            s.counts.doneFiles += 1
        }
    }

    /// The pass is over: nothing is queued until the next.
    func endPass() {
        state.withLock { $0.counts.active = false }
    }
}
