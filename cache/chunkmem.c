/*
 * chunkmem.c — the memory behind cache chunks (see chunkmem.h).
 *
 * The one idea: a chunk of CHUNKMEM_BLOCK bytes or more lives in whole
 * 2 MiB-aligned blocks, and mremap() moves pages to a new address without
 * touching them, so the kept blocks of released chunks of any size make up
 * the next chunk.  A grouped expert tensor alternates chunk sizes (a
 * gate_and_up chunk is twice a down chunk): kept only by size, as before,
 * nearly every fill after a change of size got fresh pages.  Smaller chunks
 * are mapped page-rounded and reused at the same size only.
 *
 * Kept memory is listed through a header written into its own first bytes.
 * One mutex guards the lists; system calls run outside it.
 */
#include "chunkmem.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23          /* Linux 5.14 */
#endif
#define MAX_PIECES 32                   /* kept runs one chunk is built from */

struct kept {                           /* at the start of a kept buffer */
	struct kept *next;
	size_t size;
};

struct chunkmem {
	pthread_mutex_t lock;
	struct kept *small;             /* page-rounded buffers below a block */
	struct kept *blocks;            /* runs of whole, aligned blocks */
	uint64_t keep_max;
	struct chunkmem_opts opts;
	struct chunkmem_stats stats;
};

static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

static size_t span_of(size_t len)
{
	if (len >= CHUNKMEM_BLOCK)
		return round_up(len, CHUNKMEM_BLOCK);
	return round_up(len ? len : 1, (size_t)sysconf(_SC_PAGESIZE));
}

struct chunkmem *chunkmem_new(uint64_t keep_max, const struct chunkmem_opts *o)
{
	struct chunkmem *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	pthread_mutex_init(&m->lock, NULL);
	m->keep_max = keep_max;
	m->opts = *o;
	return m;
}

static void unmap_list(struct kept *k)
{
	while (k) {
		struct kept *next = k->next;
		munmap(k, k->size);
		k = next;
	}
}

void chunkmem_free(struct chunkmem *m)
{
	if (!m)
		return;
	unmap_list(m->small);
	unmap_list(m->blocks);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* Fresh pages: the kernel zero-fills each on first touch.  Faulting them in
 * with one call (prefault) saves a trap per page, which in a VM is an exit. */
static void advise_fresh(struct chunkmem *m, char *p, size_t size)
{
	if (!size)
		return;
	if (m->opts.hugepages)
		madvise(p, size, MADV_HUGEPAGE);
	if (m->opts.prefault)
		madvise(p, size, MADV_POPULATE_WRITE);
}

/* size bytes (a multiple of the block) at a block-aligned address. */
static char *map_aligned(size_t size)
{
	size_t extra = CHUNKMEM_BLOCK;
	char *p = mmap(NULL, size + extra, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (char *)round_up((uintptr_t)p, CHUNKMEM_BLOCK);
	if (a > p)
		munmap(p, (size_t)(a - p));
	if (a + size < p + size + extra)
		munmap(a + size, (size_t)(p + size + extra - (a + size)));
	return a;
}

/* Pop a kept buffer of exactly size bytes from *list (lock held). */
static void *take_exact(struct chunkmem *m, struct kept **list, size_t size)
{
	for (struct kept **pp = list; *pp; pp = &(*pp)->next)
		if ((*pp)->size == size) {
			struct kept *k = *pp;
			*pp = k->next;
			m->stats.kept_bytes -= size;
			m->stats.reused_bytes += size;
			return k;
		}
	return NULL;
}

static void keep(struct chunkmem *m, struct kept **list, void *p, size_t size)
{
	struct kept *k = p;

	k->size = size;
	k->next = *list;
	*list = k;
	m->stats.kept_bytes += size;
}

struct piece {
	char *addr;
	size_t size;
};

/* Take up to size bytes of kept blocks, cutting the last run (lock held). */
static void take_blocks(struct chunkmem *m, size_t size, struct piece *pieces,
			size_t *npieces)
{
	size_t taken = 0;

	*npieces = 0;
	while (taken < size && m->blocks && *npieces < MAX_PIECES) {
		struct kept *k = m->blocks;
		size_t want = size - taken;
		if (k->size <= want) {
			m->blocks = k->next;
			pieces[(*npieces)++] = (struct piece){ (char *)k, k->size };
			want = k->size;
		} else {        /* the tail: the run's header stays where it is */
			k->size -= want;
			pieces[(*npieces)++] = (struct piece){ (char *)k + k->size, want };
		}
		m->stats.kept_bytes -= want;
		taken += want;
	}
}

/* A chunk of whole blocks: kept as it is, else built from kept blocks moved
 * into a new range, the rest fresh. */
static void *get_blocks(struct chunkmem *m, size_t size)
{
	struct piece pieces[MAX_PIECES];
	size_t npieces = 0, placed = 0, moved = 0;
	char *p;

	pthread_mutex_lock(&m->lock);
	p = take_exact(m, &m->blocks, size);
	if (!p && m->opts.reuse_blocks)
		take_blocks(m, size, pieces, &npieces);
	pthread_mutex_unlock(&m->lock);
	if (p)
		return p;
	if (!(p = map_aligned(size))) {
		for (size_t i = 0; i < npieces; i++)
			chunkmem_put(m, pieces[i].addr, pieces[i].size);
		return NULL;
	}
	for (size_t i = 0; i < npieces; i++) {
		/* Replaces the untouched fresh range there; on failure that part
		 * simply stays fresh. */
		if (mremap(pieces[i].addr, pieces[i].size, pieces[i].size,
			   MREMAP_MAYMOVE | MREMAP_FIXED, p + placed) == MAP_FAILED)
			munmap(pieces[i].addr, pieces[i].size);
		else
			moved += pieces[i].size;
		placed += pieces[i].size;
	}
	advise_fresh(m, p + placed, size - placed);
	pthread_mutex_lock(&m->lock);
	m->stats.moved_bytes += moved;
	m->stats.fresh_bytes += size - moved;
	pthread_mutex_unlock(&m->lock);
	return p;
}

static void *get_small(struct chunkmem *m, size_t size)
{
	void *p;

	pthread_mutex_lock(&m->lock);
	p = take_exact(m, &m->small, size);
	if (!p)
		m->stats.fresh_bytes += size;
	pthread_mutex_unlock(&m->lock);
	if (p)
		return p;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | (m->opts.prefault ? MAP_POPULATE : 0), -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void *chunkmem_get(struct chunkmem *m, size_t len)
{
	if (len > SIZE_MAX / 2)
		return NULL;
	if (len >= CHUNKMEM_BLOCK)
		return get_blocks(m, span_of(len));
	return get_small(m, span_of(len));
}

void chunkmem_put(struct chunkmem *m, void *p, size_t len)
{
	size_t size = span_of(len), kept = 0;

	if (!p)
		return;
	pthread_mutex_lock(&m->lock);
	uint64_t room = m->keep_max > m->stats.kept_bytes ? m->keep_max - m->stats.kept_bytes : 0;
	if (room >= size)
		kept = size;
	else if (len >= CHUNKMEM_BLOCK && m->opts.reuse_blocks)
		kept = (size_t)(room / CHUNKMEM_BLOCK * CHUNKMEM_BLOCK);  /* some blocks */
	if (kept)
		keep(m, len >= CHUNKMEM_BLOCK ? &m->blocks : &m->small, p, kept);
	pthread_mutex_unlock(&m->lock);
	if (kept < size)
		munmap((char *)p + kept, size - kept);
}

void chunkmem_get_stats(struct chunkmem *m, struct chunkmem_stats *out)
{
	pthread_mutex_lock(&m->lock);
	*out = m->stats;
	pthread_mutex_unlock(&m->lock);
}
