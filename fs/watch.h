/*
 * watch.h — noticing source files that change under a mount (watch.c).
 */
#ifndef SDAFS_WATCH_H
#define SDAFS_WATCH_H

#include <fuse_lowlevel.h>

#include "view.h"

struct watch;

/* Re-check every view file's sources once a second; a changed one is
 * logged and its cached pages dropped (through se), so the next read
 * fails with EIO.  NULL when the thread cannot start. */
struct watch *watch_start(struct view *v, struct fuse_session *se);
void watch_stop(struct watch *w);       /* NULL is fine */

#endif
