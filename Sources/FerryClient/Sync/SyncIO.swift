import NIOCore
import NIOPosix

/// The threads a sync's blocking work runs on.
enum SyncIO {
    /// Hashing and file reads and writes: a hash of a large file holds a thread for seconds,
    /// so the pool is larger than the core count (NIO's default) to keep uploads flowing
    /// meanwhile. Shared by every folder of the process.
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: max(4, 2 * System.coreCount))
        pool.start()
        return pool
    }()
}
