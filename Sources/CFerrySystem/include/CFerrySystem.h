#ifndef CFERRYSYSTEM_H
#define CFERRYSYSTEM_H

/// Linux calls that Glibc's Swift module does not export (they need _GNU_SOURCE).
int ferry_syncfs(int fd);
int ferry_o_direct(void);

#endif
