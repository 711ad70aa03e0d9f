/*
 * passthrough.h — materialized view files read by the kernel itself
 * (passthrough.c).
 */
#ifndef SDAFS_PASSTHROUGH_H
#define SDAFS_PASSTHROUGH_H

#include <stdbool.h>
#include <stddef.h>

#include <fuse_lowlevel.h>

#include "view.h"

struct passthrough;

/* Mount /dev/fuse at mountpoint ourselves (root only), so that replies can
 * ask for kernel passthrough; fsname is what findmnt shows as its SOURCE
 * (the source directory).  NULL and *err (a negative errno) when the mount
 * fails. */
struct passthrough *pt_mount(struct fuse_session *se, const char *mountpoint,
			     const char *fsname, bool allow_other, struct view *v, int *err);
void pt_unmount(struct passthrough *pt);       /* NULL is fine */
/* The INIT reply about to be sent asks for passthrough. */
void pt_note_init(struct passthrough *pt);
/* Reply to an open with kernel passthrough to file's copy; false: cannot
 * (no copy, or the kernel refused), and nothing was replied. */
bool pt_open(fuse_req_t req, struct passthrough *pt, size_t file,
	     struct fuse_file_info *fi);

#endif
