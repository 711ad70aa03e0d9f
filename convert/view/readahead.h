/*
 * readahead.h — converting the chunks a sequential reader will want next, on
 * worker threads, while it is still busy with the ones before (readahead.c).
 *
 * Without it a reader that has been handed chunk k waits for chunk k+1 to be
 * converted on the one thread that serves its next request, and the other
 * cores sit idle.  The read path tells the read-ahead about every read
 * (view_readahead_note); a reader whose reads follow one another, through
 * one open file or through any open file of an inode, gets the next window
 * of chunks converted into the cache ahead of it.  Work is bounded: a small
 * queue, a share of the cache for chunks converted ahead and not read yet,
 * and a window that halves whenever such a chunk is evicted unread.
 */
#ifndef SDAFS_READAHEAD_H
#define SDAFS_READAHEAD_H

#include <stddef.h>
#include <stdint.h>

struct view;

/* One sequential reader, as the read-ahead sees it.  Zeroed: nothing yet. */
struct readahead_stream {
	uint64_t pos;           /* the end of its furthest read */
	uint64_t ahead;         /* chunks up to here are converted or queued */
	uint64_t bound;         /* no read-ahead past here: the end of the tensor
				 * it started in, until it reads on past it */
	uint32_t run;           /* reads in a row that followed one another */
	uint64_t used;          /* when it last read (a tick), to replace slots */
};

/*
 * Start workers threads that convert up to window bytes ahead of each
 * sequential reader; window 0 or workers 0 starts nothing.  At most a
 * quarter of the cache holds chunks converted ahead and not read yet.
 * Start it after any fork (fuse_daemonize); view_close stops it.
 */
int view_readahead_start(struct view *v, unsigned workers, uint64_t window, char *err);
/* Drop what is queued, wait for the chunks being converted, end the
 * workers.  Safe to call twice, or when never started. */
void view_readahead_stop(struct view *v);

/*
 * A read of [off, off+len) of view file `file` is about to be served; own
 * (may be NULL) is the stream of the open file it came through.  Queues the
 * chunks ahead of it when it continues a sequential stream.  Never blocks on
 * a conversion.
 */
void view_readahead_note(struct view *v, struct readahead_stream *own, size_t file,
			 uint64_t off, size_t len);

/* The read-ahead's settings and counters, added to the statistics JSON. */
struct cJSON;
void view_readahead_stats(struct view *v, struct cJSON *into);

#endif
