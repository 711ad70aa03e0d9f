/*
 * cache.c — byte-bounded LRU cache of converted chunks with single-flight.
 *
 * The one idea: a missing key is inserted at once as a FILLING entry, pinned
 * by the thread that fills it, so the lock is never held during a fill and
 * every later caller for that key finds the entry and waits for its result
 * instead of converting the chunk again.
 *
 * Every chunk is a small header reachable from a chained hash table, its
 * data in memory from chunkmem.c.  Entries nobody pins sit on an LRU list (head = most recently
 * released); eviction takes the tail.  Pinned and FILLING entries are off the
 * list, so they are never evicted.  A failed fill leaves the table at once;
 * its entry lives on, holding the error, until the last waiter has read it.
 *
 * A chunk whose every byte has been handed to a reader goes to the LRU tail
 * when released: a sequential reader is done with it (the kernel's page
 * cache holds what it read), so it is the first to go, and once the cache
 * holds a quarter of its bound a fill evicts such chunks and reuses their
 * memory rather than growing into fresh pages.  On the project's VM fresh
 * pages were half of the daemon's time on a cold read (clear_page_erms:
 * zero-filling, and the host faulting in what the guest had given back).
 *
 * One mutex guards everything.  Waiters sleep on one of a few condition
 * variables picked by key hash, which keeps entries small without waking every
 * waiter in the cache each time any fill ends.  Evicted chunks are freed after
 * the mutex is released.
 */
#include "cache.h"

#include "chunkmem.h"
#include "err.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_FIRST_BUCKETS 1024
#define CACHE_WAIT_STRIPES 64           /* power of two */

enum chunk_state { CHUNK_FILLING, CHUNK_READY, CHUNK_FAILED };

struct cache_chunk {
	uint64_t key;
	size_t len;
	unsigned pins;                  /* holders, plus threads waiting on a fill */
	enum chunk_state state;
	struct cache_chunk *hash_next;  /* bucket chain; list of victims once evicted */
	struct cache_chunk *lru_prev;   /* toward the most recently released */
	struct cache_chunk *lru_next;
	int fail_code;                  /* CHUNK_FAILED only */
	char *fail_msg;                 /* CHUNK_FAILED only; NULL if strdup failed */
	bool ahead;                     /* filled ahead of any reader, not read yet */
	bool read_whole;                /* every byte was handed to a reader */
	uint64_t served;                /* bytes handed to readers so far */
	unsigned char *data;            /* chunkmem */
};

struct cache {
	pthread_mutex_t lock;
	pthread_cond_t fill_done[CACHE_WAIT_STRIPES];
	struct cache_chunk **buckets;
	size_t nbuckets;                /* power of two */
	struct cache_chunk *lru_head;
	struct cache_chunk *lru_tail;
	struct cache_stats stats;       /* bytes and entries count FILLING entries too */
	uint64_t pool_max;
	uint64_t recycle_above;         /* recycle chunks read whole rather than grow past */
	struct chunkmem *mem;           /* evicted chunks' memory, for the next fills */
};

/*
 * Chunk memory comes from chunkmem, not malloc: a freed chunk's memory goes
 * back to the system or to the next fill, so the process holds what the
 * cache holds (malloc kept evicted multi-MiB chunks in its heap, 1.5-2x the
 * bound), and fills reuse evicted pages instead of faulting in fresh ones.
 */
static struct cache_chunk *chunk_alloc(struct cache *c, size_t len)
{
	struct cache_chunk *e;

	if (len > SIZE_MAX / 2 || !(e = malloc(sizeof(*e))))
		return NULL;
	if (!(e->data = chunkmem_get(c->mem, len))) {
		free(e);
		return NULL;
	}
	return e;
}

/* An unpublished FILLING entry for key, pinned by its filler. */
static struct cache_chunk *chunk_new(struct cache *c, uint64_t key, size_t len, bool ahead)
{
	struct cache_chunk *e = chunk_alloc(c, len);

	if (e)
		*e = (struct cache_chunk){ .key = key, .len = len, .pins = 1,
					   .state = CHUNK_FILLING, .ahead = ahead,
					   .data = e->data };
	return e;
}

static void chunk_release(struct cache *c, struct cache_chunk *e)
{
	free(e->fail_msg);
	chunkmem_put(c->mem, e->data, e->len);
	free(e);
}

static uint64_t key_hash(uint64_t key)
{
	key ^= key >> 30;               /* splitmix64 finalizer */
	key *= 0xbf58476d1ce4e5b9ull;
	key ^= key >> 27;
	key *= 0x94d049bb133111ebull;
	return key ^ (key >> 31);
}

static pthread_cond_t *fill_done_of(struct cache *c, uint64_t key)
{
	return &c->fill_done[key_hash(key) & (CACHE_WAIT_STRIPES - 1)];
}

static struct cache_chunk **bucket_of(struct cache *c, uint64_t key)
{
	return &c->buckets[key_hash(key) & (c->nbuckets - 1)];
}

static struct cache_chunk *table_find(struct cache *c, uint64_t key)
{
	struct cache_chunk *e = *bucket_of(c, key);

	while (e && e->key != key)
		e = e->hash_next;
	return e;
}

/* Double the bucket array; on allocation failure keep the old, longer chains. */
static void table_grow(struct cache *c)
{
	size_t n = c->nbuckets * 2;
	struct cache_chunk **nb = calloc(n, sizeof(*nb));

	if (!nb)
		return;
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct cache_chunk *e = c->buckets[i];

		while (e) {
			struct cache_chunk *next = e->hash_next;
			struct cache_chunk **b = &nb[key_hash(e->key) & (n - 1)];

			e->hash_next = *b;
			*b = e;
			e = next;
		}
	}
	free(c->buckets);
	c->buckets = nb;
	c->nbuckets = n;
}

static void table_insert(struct cache *c, struct cache_chunk *e)
{
	struct cache_chunk **b;

	if (c->stats.entries >= c->nbuckets)
		table_grow(c);
	b = bucket_of(c, e->key);
	e->hash_next = *b;
	*b = e;
	c->stats.entries++;
	c->stats.bytes += e->len;
}

static void table_remove(struct cache *c, struct cache_chunk *e)
{
	struct cache_chunk **p = bucket_of(c, e->key);

	while (*p != e)
		p = &(*p)->hash_next;
	*p = e->hash_next;
	e->hash_next = NULL;
	c->stats.entries--;
	c->stats.bytes -= e->len;
}

static void lru_push_head(struct cache *c, struct cache_chunk *e)
{
	e->lru_prev = NULL;
	e->lru_next = c->lru_head;
	if (c->lru_head)
		c->lru_head->lru_prev = e;
	else
		c->lru_tail = e;
	c->lru_head = e;
}

static void lru_push_tail(struct cache *c, struct cache_chunk *e)
{
	e->lru_next = NULL;
	e->lru_prev = c->lru_tail;
	if (c->lru_tail)
		c->lru_tail->lru_next = e;
	else
		c->lru_head = e;
	c->lru_tail = e;
}

static void lru_unlink(struct cache *c, struct cache_chunk *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		c->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		c->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

/* Take the LRU tail out, chaining it on *victims through hash_next. */
static void evict_tail(struct cache *c, struct cache_chunk **victims)
{
	struct cache_chunk *e = c->lru_tail;

	lru_unlink(c, e);
	table_remove(c, e);
	c->stats.evictions++;
	if (e->ahead) {         /* converted for nothing */
		c->stats.ahead_wasted++;
		c->stats.ahead_bytes -= e->len;
	}
	e->hash_next = *victims;
	*victims = e;
}

/*
 * Evict from the LRU tail while over the bound.  Victims are chained on
 * *victims so the caller frees them without the lock.
 */
static void evict_over_bound(struct cache *c, struct cache_chunk **victims)
{
	while (c->stats.bytes > c->stats.max_bytes && c->lru_tail)
		evict_tail(c, victims);
}

/* Before a fill of len bytes: evict chunks read whole (they sit at the tail)
 * rather than grow past recycle_above; their memory is the fill's. */
static void recycle_read_chunks(struct cache *c, size_t len, struct cache_chunk **victims)
{
	while (c->recycle_above != UINT64_MAX && c->stats.bytes + len > c->recycle_above &&
	       c->lru_tail && c->lru_tail->read_whole) {
		c->stats.recycled++;
		evict_tail(c, victims);
	}
}

static void free_chunks(struct cache *c, struct cache_chunk *e)
{
	while (e) {
		struct cache_chunk *next = e->hash_next;

		chunk_release(c, e);
		e = next;
	}
}

/*
 * Pin e, wait while it fills, unlock, and report how it ended.  Called with
 * the lock held.  On a failed fill the pin is dropped again and the fill's
 * error is copied to err; the last waiter out frees the failed entry.
 * spare (may be NULL) is an unpublished chunk to free once unlocked.
 */
static int chunk_join_unlock(struct cache *c, struct cache_chunk *e,
			     struct cache_chunk *spare, struct cache_chunk **out,
			     char *err)
{
	struct cache_chunk *orphan = NULL;
	int rc = 0;

	if (e->pins++ == 0)
		lru_unlink(c, e);
	while (e->state == CHUNK_FILLING)
		pthread_cond_wait(fill_done_of(c, e->key), &c->lock);
	if (e->state == CHUNK_READY) {
		c->stats.hits++;
		if (e->ahead) {         /* read-ahead paid off */
			e->ahead = false;
			c->stats.ahead_hits++;
			c->stats.ahead_bytes -= e->len;
		}
		*out = e;
	} else {
		rc = sd_err(err, e->fail_code, "%s", e->fail_msg ? e->fail_msg
			    : "cache: converting this chunk failed (message lost: out of memory)");
		if (--e->pins == 0)
			orphan = e;
	}
	pthread_mutex_unlock(&c->lock);
	free_chunks(c, orphan);
	free_chunks(c, spare);
	return rc;
}

struct cache *cache_new(uint64_t max_bytes)
{
	struct cache *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->nbuckets = CACHE_FIRST_BUCKETS;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	/* A few chunks' worth: enough that each fill reuses what the last
	 * fill's eviction gave back. */
	c->pool_max = max_bytes / 8 < ((uint64_t)32 << 20) ? max_bytes / 8 : (uint64_t)32 << 20;
	if (!(c->mem = chunkmem_new(c->pool_max, &CACHE_OPTS_DEFAULT.mem))) {
		free(c->buckets);
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	for (int i = 0; i < CACHE_WAIT_STRIPES; i++)
		pthread_cond_init(&c->fill_done[i], NULL);
	c->stats.max_bytes = max_bytes;
	c->recycle_above = max_bytes / 4;
	return c;
}

int cache_configure(struct cache *c, const struct cache_opts *o)
{
	struct chunkmem *m = chunkmem_new(c->pool_max, &o->mem);

	if (!m)
		return -ENOMEM;
	chunkmem_free(c->mem);
	c->mem = m;
	c->recycle_above = o->recycle ? c->stats.max_bytes / 4 : UINT64_MAX;
	return 0;
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nbuckets; i++) {
		for (struct cache_chunk *e = c->buckets[i]; e; e = e->hash_next)
			assert(e->pins == 0 && "cache_free with a chunk still pinned");
		free_chunks(c, c->buckets[i]);
	}
	free(c->buckets);
	chunkmem_free(c->mem);
	for (int i = 0; i < CACHE_WAIT_STRIPES; i++)
		pthread_cond_destroy(&c->fill_done[i]);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/*
 * Called with the lock held: insert fresh as FILLING, unlock, run the fill,
 * then publish READY or withdraw the entry and hand its error to the waiters.
 */
static int chunk_fill_unlock(struct cache *c, struct cache_chunk *fresh,
			     cache_fill_fn fill, void *arg, char *err)
{
	struct cache_chunk *victims = NULL;
	pthread_cond_t *done = fill_done_of(c, fresh->key);
	char own_err[SD_ERRLEN];
	char *fill_err = err ? err : own_err;
	char *msg;
	int rc;

	c->stats.misses++;
	table_insert(c, fresh);
	evict_over_bound(c, &victims);
	pthread_mutex_unlock(&c->lock);
	free_chunks(c, victims);

	fill_err[0] = '\0';
	rc = fill(arg, fresh->key, fresh->data, fresh->len, fill_err);
	msg = rc ? strdup(fill_err) : NULL;

	pthread_mutex_lock(&c->lock);
	if (fresh->pins > 1)
		pthread_cond_broadcast(done);   /* waiters wake once we unlock */
	if (rc == 0) {
		fresh->state = CHUNK_READY;
	} else {
		table_remove(c, fresh);
		c->stats.fill_errors++;
		if (fresh->ahead)
			c->stats.ahead_bytes -= fresh->len;
		fresh->ahead = false;
		fresh->state = CHUNK_FAILED;
		fresh->fail_code = rc;
		fresh->fail_msg = msg;
		if (--fresh->pins > 0)
			fresh = NULL;   /* the last waiter frees it */
	}
	pthread_mutex_unlock(&c->lock);
	if (rc != 0)
		free_chunks(c, fresh);
	return rc;
}

int cache_get(struct cache *c, uint64_t key, size_t len, cache_fill_fn fill,
	      void *arg, struct cache_chunk **out, char *err)
{
	struct cache_chunk *e, *fresh, *victims = NULL;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&c->lock);
	e = table_find(c, key);
	if (e) {
		assert(e->len == len);
		return chunk_join_unlock(c, e, NULL, out, err);
	}
	recycle_read_chunks(c, len, &victims);
	pthread_mutex_unlock(&c->lock);
	free_chunks(c, victims);        /* their memory goes to this fill */

	if (!(fresh = chunk_new(c, key, len, false)))
		return sd_err(err, -ENOMEM,
			      "cache: cannot allocate %zu bytes for a converted chunk", len);

	pthread_mutex_lock(&c->lock);
	e = table_find(c, key);
	if (e) {
		/* Another thread started this chunk while we allocated ours. */
		return chunk_join_unlock(c, e, fresh, out, err);
	}
	rc = chunk_fill_unlock(c, fresh, fill, arg, err);
	if (rc == 0)
		*out = fresh;
	return rc;
}

const void *cache_data(const struct cache_chunk *chunk)
{
	return chunk->data;
}

size_t cache_len(const struct cache_chunk *chunk)
{
	return chunk->len;
}

void cache_put_read(struct cache *c, struct cache_chunk *chunk, size_t bytes_read)
{
	struct cache_chunk *victims = NULL;

	if (!chunk)
		return;
	pthread_mutex_lock(&c->lock);
	assert(chunk->pins > 0 && chunk->state == CHUNK_READY);
	chunk->served += bytes_read;
	if (chunk->served >= chunk->len && bytes_read)
		chunk->read_whole = true;
	if (--chunk->pins == 0) {
		/* A chunk bigger than the bound is evicted right here. */
		if (chunk->read_whole)
			lru_push_tail(c, chunk);
		else
			lru_push_head(c, chunk);
		evict_over_bound(c, &victims);
	}
	pthread_mutex_unlock(&c->lock);
	free_chunks(c, victims);
}

void cache_put(struct cache *c, struct cache_chunk *chunk)
{
	cache_put_read(c, chunk, 0);
}

int cache_fill_ahead(struct cache *c, uint64_t key, size_t len, cache_fill_fn fill,
		     void *arg, uint64_t ahead_max, char *err)
{
	struct cache_chunk *fresh, *victims = NULL;
	int rc;

	pthread_mutex_lock(&c->lock);
	if (table_find(c, key)) {
		pthread_mutex_unlock(&c->lock);
		return 1;
	}
	if (c->stats.ahead_bytes + len > ahead_max) {
		pthread_mutex_unlock(&c->lock);
		return 2;
	}
	c->stats.ahead_bytes += len;    /* held for us while we allocate */
	recycle_read_chunks(c, len, &victims);
	pthread_mutex_unlock(&c->lock);
	free_chunks(c, victims);

	fresh = chunk_new(c, key, len, true);
	pthread_mutex_lock(&c->lock);
	if (!fresh || table_find(c, key)) {
		c->stats.ahead_bytes -= len;
		pthread_mutex_unlock(&c->lock);
		if (fresh)
			free_chunks(c, fresh);
		return fresh ? 1 : sd_err(err, -ENOMEM,
					  "cache: cannot allocate %zu bytes for a converted chunk", len);
	}
	c->stats.ahead_fills++;
	rc = chunk_fill_unlock(c, fresh, fill, arg, err);
	if (rc == 0)
		cache_put(c, fresh);
	return rc;
}

/* FILLING entries count as resident: read-ahead need not start them again. */
int cache_contains(struct cache *c, uint64_t key)
{
	int found;

	pthread_mutex_lock(&c->lock);
	found = table_find(c, key) != NULL;
	pthread_mutex_unlock(&c->lock);
	return found;
}

void cache_get_stats(struct cache *c, struct cache_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	pthread_mutex_unlock(&c->lock);
	chunkmem_get_stats(c->mem, &out->mem);
}
