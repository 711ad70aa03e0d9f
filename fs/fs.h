/*
 * fs.h — the FUSE layer: what the ops, the mount and the background
 * helpers share.
 *
 * fs/ translates FUSE requests onto a view (convert/view) and owns the
 * sdafs command itself: option parsing (options.c), --inspect (inspect.c),
 * sdafs convert and verify (commands.c, progress.c: no FUSE in them),
 * mounting and serving (mount.c), the ops (ops.c), spliced replies
 * (splice.c) and three helpers with state of their own: the source watcher
 * (watch.c), the writer of materialized copies (copies.c) and kernel
 * passthrough of those copies (passthrough.c).  It may use everything
 * below it.
 */
#ifndef SDAFS_FS_H
#define SDAFS_FS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include "view.h"

#define SDAFS_VERSION   "0.1.0"
#define STATS_NAME      ".sdafs-stats"

struct watch;
struct copies;
struct passthrough;
struct open_file;

/* One mounted view, as the ops see it (fuse_req_userdata). */
struct sdafs {
	struct view view;
	const char *mountpoint;
	char *mountpoint_real;  /* resolved before mounting: stat()ing it from
				 * init would ask this very filesystem */
	char *source;           /* the source directory, absolute (the fsname) */
	const char *options;    /* the -o options as given, for .sdafs-stats */
	struct stat source_dir; /* the root's mode and times follow it */
	bool prefetch_broadcast;        /* -o mpi,prefetch: shared tensors held */
	bool direct_io;
	bool splice;            /* reply with source bytes spliced, not copied */
	unsigned request_max;   /* the largest read request (set in init) */
	struct timespec mounted_at;
	atomic_flag readahead_raised;
	struct fuse_session *se;
	struct copies *copies;          /* NULL: no materialize_dir */
	struct passthrough *pt;         /* NULL: libfuse mounted, no passthrough */
	struct watch *watch;
	pthread_mutex_t opens_mu;
	struct open_file *opens;        /* every open file's state (ops.c) */
};

extern const struct fuse_lowlevel_ops sdafs_ops;

/* The inode of layout file i. */
fuse_ino_t sdafs_file_ino(size_t i);
/* Free the state of files still open when the session ended. */
void sdafs_free_opens(struct sdafs *fs);

#endif
