import CFerrySystem

/// Hands the memory a full pass freed back to the kernel.
///
/// A full pass holds every path of the folder in dictionaries (the index, the server's
/// mirror, the walk), and frees them when it ends. glibc keeps freed memory in its arenas
/// for the next allocation, so without this the daemon stayed resident at the high-water
/// mark of its last full pass between passes: 1,241 MiB at a million files while the
/// scoped passes in between need a small fraction of it. `malloc_trim` returns the free
/// pages of every arena (`madvise(MADV_DONTNEED)`, the top of each heap unmapped), so the
/// memory is given back, not hidden. Only after full passes: the start-up pass, the
/// periodic rescan and the rare fallbacks, where it costs a few milliseconds.
enum HeapRelease {
    static func afterFullPass() {
        _ = ferry_malloc_trim()
    }
}
