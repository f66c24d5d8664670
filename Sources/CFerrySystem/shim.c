#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <spawn.h>
#include <unistd.h>
#include "CFerrySystem.h"

/// Flushes every dirty file and directory of the file system holding `fd`: one call makes
/// a whole batch of staged blobs, and then their renames, durable.
int ferry_syncfs(int fd) {
    return syncfs(fd);
}

/// The O_DIRECT open flag, which Glibc's Swift module leaves out.
int ferry_o_direct(void) {
    return O_DIRECT;
}

/// A spawn action closing every descriptor from `from` up in the child (glibc 2.34 and
/// later), without listing /proc/self/fd in the parent.
int ferry_spawn_close_from(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

/// Gives the heap's free pages back to the kernel, in every arena (see `malloc_trim(3)`).
int ferry_malloc_trim(void) {
    return malloc_trim(0);
}
