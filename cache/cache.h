/*
 * cache.h — a byte-bounded LRU cache of converted chunks with single-flight.
 *
 * Keys are opaque 64-bit numbers (the view packs tensor and chunk index).
 * cache_get() either returns a resident chunk or fills it by calling the
 * caller's fill function exactly once, however many threads ask for the same
 * missing key at the same time: the others wait for the first one's result.
 * A returned chunk stays pinned, and so is never freed or evicted, until
 * cache_put() releases it; unpinned chunks are evicted least recently used
 * first whenever the resident total exceeds the bound, chunks that readers
 * have read whole before all others (cache_put_read).  A chunk bigger than
 * the whole bound is still served (the bound is exceeded while it is pinned)
 * and dropped as soon as it is released.
 *
 * Knows nothing of FUSE, tensors or files.
 * cache/ may use only convert/base.
 */
#ifndef SDAFS_CACHE_H
#define SDAFS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkmem.h"

struct cache;
struct cache_chunk;

/*
 * Fill buf (len bytes) with the chunk's contents.  Return 0 or a negative
 * errno with a message in err (SD_ERRLEN bytes).  A failed fill is not
 * cached: every waiter gets the error, and the next cache_get tries again.
 */
typedef int (*cache_fill_fn)(void *arg, uint64_t key, void *buf, size_t len,
			     char *err);

struct cache_stats {
	uint64_t hits;          /* served from memory, including waits on a fill */
	uint64_t misses;        /* fills started */
	uint64_t fill_errors;
	uint64_t evictions;
	uint64_t recycled;      /* of those, chunks read whole evicted early for their memory */
	uint64_t bytes;         /* resident now */
	uint64_t entries;       /* resident now */
	uint64_t max_bytes;
	uint64_t ahead_fills;   /* fills by cache_fill_ahead */
	uint64_t ahead_hits;    /* of those, read afterwards */
	uint64_t ahead_wasted;  /* of those, evicted before anyone read them */
	uint64_t ahead_bytes;   /* filled (or filling) ahead and not read yet, now */
	struct chunkmem_stats mem;
};

/* How a cache treats memory; cache_new turns every saving on. */
struct cache_opts {
	struct chunkmem_opts mem;
	bool recycle;           /* reuse chunks read whole before growing (cache_put_read) */
};
#define CACHE_OPTS_DEFAULT ((struct cache_opts){ \
	.mem = { .reuse_blocks = true, .hugepages = true, .prefault = true }, .recycle = true })

struct cache *cache_new(uint64_t max_bytes);
void cache_free(struct cache *c);       /* no chunk may be pinned */
/* Change how memory is treated; only before the first fill.  -ENOMEM
 * leaves it as it was. */
int cache_configure(struct cache *c, const struct cache_opts *o);

/*
 * Return the chunk for key, filling it with fill(arg, key, buf, len, err) on
 * a miss.  On success *out is pinned and cache_data(*out) holds len bytes.
 * Errors: the fill's error, or -ENOMEM when the buffer cannot be allocated.
 * len must be the same for every call with the same key.
 */
int cache_get(struct cache *c, uint64_t key, size_t len, cache_fill_fn fill,
	      void *arg, struct cache_chunk **out, char *err);

const void *cache_data(const struct cache_chunk *chunk);
size_t cache_len(const struct cache_chunk *chunk);

/* Release a pin taken by cache_get. */
void cache_put(struct cache *c, struct cache_chunk *chunk);
/*
 * The same, after bytes_read bytes of the chunk were handed to a reader.
 * Once every byte of a chunk has been, it is evicted before any other, and
 * once the cache holds a quarter of its bound, fills recycle such chunks'
 * memory rather than grow into fresh pages.
 */
void cache_put_read(struct cache *c, struct cache_chunk *chunk, size_t bytes_read);

/*
 * Fill key before anyone asks for it (read-ahead): 1 when it is resident or
 * being filled already, 2 when the bytes filled ahead and not read yet would
 * pass ahead_max (nothing done: the reader converts it when it gets there),
 * else as cache_get, and the filled chunk is left unpinned, most recently
 * used.  Its first cache_get counts as an ahead hit; evicted unread, it
 * counts as wasted.
 */
int cache_fill_ahead(struct cache *c, uint64_t key, size_t len, cache_fill_fn fill,
		     void *arg, uint64_t ahead_max, char *err);

/* True when key is resident now (no pin, no LRU update); for read-ahead. */
int cache_contains(struct cache *c, uint64_t key);

void cache_get_stats(struct cache *c, struct cache_stats *out);

#endif
