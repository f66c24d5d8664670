import CFerrySystem
import NIOPosix

/// Hands the memory a full pass freed back to the kernel.
///
/// A full pass holds every path of the folder in dictionaries (the index, the server's
/// mirror, the walk), and frees them when it ends. glibc keeps freed memory in its arenas
/// for the next allocation, so without this the daemon stayed resident at the high-water
/// mark of its last full pass between passes: 1,241 MiB at a million files, where the
/// scoped passes in between need a small fraction of it (82 MiB after this, see
/// docs/benchmarks.md). `malloc_trim` returns the free pages of every arena
/// (`madvise(MADV_DONTNEED)`, the top of each heap unmapped): the memory is given back, not
/// hidden. It runs only after full passes (the start-up pass, the periodic rescan, the rare
/// fallbacks), and on the I/O pool: on a fragmented heap of 1.4 GiB (a C model: 12 million
/// small blocks, one in 64 kept) it took 0.3 s, too long to hold a cooperative thread.
enum HeapRelease {
    static func afterFullPass() async {
        _ = try? await SyncIO.pool.runIfActive { ferry_malloc_trim() }
    }
}
