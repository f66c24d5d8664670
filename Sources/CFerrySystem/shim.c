#define _GNU_SOURCE
#include <fcntl.h>
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
