/*
 * mountpoint.h — the mount point: checked before the source is scanned,
 * made for per-rank mounts (as util-linux `mount --mkdir` does) and removed
 * again at unmount, and the real cause named when mounting fails
 * (mountpoint.c).
 */
#ifndef SDAFS_MOUNTPOINT_H
#define SDAFS_MOUNTPOINT_H

#include <stddef.h>

/* The directories mountpoint_make created: path[0..top) and below. */
struct made_dirs {
	char *path;
	size_t top;     /* 0: none was made */
};

/* An existing directory?  0, or -1 after a message saying what is wrong. */
int mountpoint_check(const char *path);
/* Create path and any missing parents (mode 0755), remembering which were
 * made; 0, or -1 after a message. */
int mountpoint_make(const char *path, struct made_dirs *m);
/* Remove what mountpoint_make made, deepest first, as far as the
 * directories are empty; fine when nothing was made. */
void mountpoint_unmake(struct made_dirs *m);
/* After a failed mount on path: say why, as far as it can be seen. */
void mountpoint_explain(const char *path);

#endif
