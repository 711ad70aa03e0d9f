/*
 * stats.h — the text of MOUNTPOINT/.sdafs-stats: what the mount is, the
 * view's counters and the progress of prefetching (stats.c).
 */
#ifndef SDAFS_STATS_H
#define SDAFS_STATS_H

#include "fs.h"

/* A JSON snapshot for one open of the statistics file (caller frees);
 * NULL when out of memory. */
char *fs_stats_json(struct sdafs *fs);

#endif
