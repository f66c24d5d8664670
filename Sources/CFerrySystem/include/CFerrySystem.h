#ifndef CFERRYSYSTEM_H
#define CFERRYSYSTEM_H

#include <spawn.h>

/// Linux calls that Glibc's Swift module does not export (they need _GNU_SOURCE).
int ferry_syncfs(int fd);
int ferry_o_direct(void);
int ferry_spawn_close_from(posix_spawn_file_actions_t *actions, int from);
int ferry_malloc_trim(void);

#endif
