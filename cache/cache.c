/*
 * cache.c — byte-bounded LRU cache of converted chunks with single-flight.
 *
 * The one idea: a missing key is inserted at once as a FILLING entry, pinned
 * by the thread that fills it, so the lock is never held during a fill and
 * every later caller for that key finds the entry and waits for its result
 * instead of converting the chunk again.
 *
 * Every chunk is one allocation (header, then data) reachable from a chained
 * hash table.  Entries nobody pins sit on an LRU list (head = most recently
 * released); eviction takes the tail.  Pinned and FILLING entries are off the
 * list, so they are never evicted.  A failed fill leaves the table at once;
 * its entry lives on, holding the error, until the last waiter has read it.
 *
 * One mutex guards everything.  Waiters sleep on one of a few condition
 * variables picked by key hash, which keeps entries small without waking every
 * waiter in the cache each time any fill ends.  Evicted chunks are freed after
 * the mutex is released.
 */
#include "cache.h"

#include "err.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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
	_Alignas(max_align_t) unsigned char data[];
};

struct cache {
	pthread_mutex_t lock;
	pthread_cond_t fill_done[CACHE_WAIT_STRIPES];
	struct cache_chunk **buckets;
	size_t nbuckets;                /* power of two */
	struct cache_chunk *lru_head;
	struct cache_chunk *lru_tail;
	struct cache_stats stats;       /* bytes and entries count FILLING entries too */
	/* Buffers of evicted chunks, kept for the next fills (chunk_alloc). */
	pthread_mutex_t pool_lock;
	struct cache_chunk *pool;
	uint64_t pool_bytes, pool_max;
};

/*
 * Chunk memory is mapped, not malloc'ed: a freed chunk goes back to the
 * system at once, so the process holds what the cache holds (malloc kept
 * evicted multi-MiB chunks in its heap, 1.5-2x the bound).  Evicted buffers
 * of the same size are reused before mapping new ones, because a fresh page
 * costs a kernel zero-fill that, on these machines, is a third of a
 * conversion.
 */
static size_t chunk_span(size_t len)
{
	return sizeof(struct cache_chunk) + len;
}

static struct cache_chunk *chunk_alloc(struct cache *c, size_t len)
{
	struct cache_chunk *e = NULL, **pp;

	if (len > SIZE_MAX / 2)
		return NULL;
	pthread_mutex_lock(&c->pool_lock);
	for (pp = &c->pool; *pp; pp = &(*pp)->hash_next)
		if ((*pp)->len == len) {
			e = *pp;
			*pp = e->hash_next;
			c->pool_bytes -= len;
			break;
		}
	pthread_mutex_unlock(&c->pool_lock);
	if (e)
		return e;
	e = mmap(NULL, chunk_span(len), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return e == MAP_FAILED ? NULL : e;
}

static void chunk_release(struct cache *c, struct cache_chunk *e)
{
	free(e->fail_msg);
	e->fail_msg = NULL;
	pthread_mutex_lock(&c->pool_lock);
	if (c->pool_bytes + e->len <= c->pool_max) {
		e->hash_next = c->pool;
		c->pool = e;
		c->pool_bytes += e->len;
		e = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (e)
		munmap(e, chunk_span(e->len));
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

/*
 * Evict from the LRU tail while over the bound.  Victims are chained on
 * *victims through hash_next so the caller frees them without the lock.
 */
static void evict_over_bound(struct cache *c, struct cache_chunk **victims)
{
	while (c->stats.bytes > c->stats.max_bytes && c->lru_tail) {
		struct cache_chunk *e = c->lru_tail;

		lru_unlink(c, e);
		table_remove(c, e);
		c->stats.evictions++;
		e->hash_next = *victims;
		*victims = e;
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
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->pool_lock, NULL);
	for (int i = 0; i < CACHE_WAIT_STRIPES; i++)
		pthread_cond_init(&c->fill_done[i], NULL);
	c->stats.max_bytes = max_bytes;
	/* A few chunks' worth: enough that each fill reuses what the last
	 * fill's eviction gave back. */
	c->pool_max = max_bytes / 8 < ((uint64_t)32 << 20) ? max_bytes / 8 : (uint64_t)32 << 20;
	return c;
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
	c->pool_max = 0;        /* from here on, released chunks are unmapped */
	while (c->pool) {
		struct cache_chunk *e = c->pool;
		c->pool = e->hash_next;
		munmap(e, chunk_span(e->len));
	}
	for (int i = 0; i < CACHE_WAIT_STRIPES; i++)
		pthread_cond_destroy(&c->fill_done[i]);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->pool_lock);
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
	struct cache_chunk *e, *fresh;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&c->lock);
	e = table_find(c, key);
	if (e) {
		assert(e->len == len);
		return chunk_join_unlock(c, e, NULL, out, err);
	}
	pthread_mutex_unlock(&c->lock);

	fresh = chunk_alloc(c, len);
	if (!fresh)
		return sd_err(err, -ENOMEM,
			      "cache: cannot allocate %zu bytes for a converted chunk", len);
	*fresh = (struct cache_chunk){ .key = key, .len = len, .pins = 1,
				       .state = CHUNK_FILLING };

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

void cache_put(struct cache *c, struct cache_chunk *chunk)
{
	struct cache_chunk *victims = NULL;

	if (!chunk)
		return;
	pthread_mutex_lock(&c->lock);
	assert(chunk->pins > 0 && chunk->state == CHUNK_READY);
	if (--chunk->pins == 0) {
		/* A chunk bigger than the bound is evicted right here. */
		lru_push_head(c, chunk);
		evict_over_bound(c, &victims);
	}
	pthread_mutex_unlock(&c->lock);
	free_chunks(c, victims);
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
}
