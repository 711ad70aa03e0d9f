/*
 * fs.h — what the FUSE layer shares between main.c and ops.c.
 */
#ifndef SDAFS_FS_H
#define SDAFS_FS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <pthread.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include "view.h"

#define SDAFS_VERSION   "0.1.0"
#define STATS_NAME      ".sdafs-stats"

struct sdafs {
	struct view view;
	const char *src;
	const char *mountpoint;
	char *mountpoint_real;  /* resolved before mounting: stat()ing it from
				 * init would ask this very filesystem */
	bool foreground;
	bool direct_io;
	struct timespec mounted_at;
	atomic_flag readahead_raised;
	struct fuse_session *se;
	/* the source watcher (watch.c) */
	pthread_t watch_thread;
	pthread_mutex_t watch_mu;
	pthread_cond_t watch_cv;
	bool watch_stop, watching;
	/* materialized copies (copies.c) and kernel passthrough (passthrough.c) */
	const char *materialize_dir;    /* NULL: off */
	pthread_t copy_thread;
	pthread_mutex_t copy_mu;
	pthread_cond_t copy_cv;
	bool copy_stop, copying;
	enum { COPY_NONE, COPY_WANTED, COPY_DONE } *copy_state;
	size_t copy_pending;
	int devfd;              /* /dev/fuse when we mounted it ourselves, else -1 */
	bool passthrough;       /* until the kernel refuses a backing file */
	int32_t *backing_ids;   /* per layout file, -1 until registered */
	pthread_mutex_t pt_mu;
};

extern const struct fuse_lowlevel_ops sdafs_ops;

/* The inode of layout file i. */
fuse_ino_t sdafs_file_ino(size_t i);

int watch_start(struct sdafs *fs);
void watch_stop(struct sdafs *fs);

int copies_start(struct sdafs *fs, bool prefetch);
void copies_want(struct sdafs *fs, size_t file);
void copies_stop(struct sdafs *fs);

int pt_mount(struct sdafs *fs, bool allow_other);
void pt_unmount(struct sdafs *fs);
void pt_note_init(struct sdafs *fs);
/* Reply to an open with kernel passthrough to file's copy; false: cannot. */
bool pt_open(fuse_req_t req, struct sdafs *fs, size_t file, struct fuse_file_info *fi);

/* Log a line: stderr in the foreground, syslog once detached. */
void sd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sd_log_detached(void);

#endif
