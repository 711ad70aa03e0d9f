/*
 * workers.c — running work units on threads under one memory budget (see
 * units.h).
 *
 * Each worker takes the next unit in order and holds, against the budget,
 * what its buffers and its CPU evaluator's arena take.  A worker that needs
 * more than is left first gives back everything it holds (so two workers
 * can never wait on each other) and then waits until the others' releases
 * leave room, or until it is alone: a unit bigger than the whole budget
 * still runs, by itself.  Buffers are mapped and unmapped directly, so
 * memory given back is gone from the process at once.
 */
#include "units.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "err.h"
#include "recipe.h"

/* Converting a chunk takes temporaries beside its output (source rows before
 * a transpose or a cast).  Until a conversion has shown what they take, in
 * thousandths of the output, they are counted as twice the output. */
#define ARENA_GUESS_PERMILLE 2000

struct units_pool {
	struct units *us;
	unit_fn fn;
	void *arg;
	struct units_progress *p;
	_Atomic size_t next;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t budget, used;
	_Atomic uint64_t arena_permille;        /* the most temporaries seen per output byte */
	atomic_int rc;          /* the first error */
	char err[SD_ERRLEN];
};

static bool stopping(struct units_pool *pool)
{
	return atomic_load(&pool->p->stop) || atomic_load(&pool->rc);
}

static void unmap_buffers(struct unit_worker *w)
{
	for (int k = 0; k < 2; k++) {
		if (w->buf[k])
			munmap(w->buf[k], w->cap[k]);
		w->buf[k] = NULL;
		w->cap[k] = 0;
	}
}

static uint64_t footprint(const struct unit_worker *w)
{
	return w->cap[0] + w->cap[1] + recipe_cpu_arena_bytes();
}

/* Hold `want` bytes of the budget: at once when they fit, else after giving
 * back everything (buffers and arena) and waiting for room. */
static void hold(struct unit_worker *w, uint64_t want)
{
	struct units_pool *pool = w->pool;

	pthread_mutex_lock(&pool->mu);
	if (pool->used - w->held + want > pool->budget && pool->used > w->held) {
		pool->used -= w->held;
		w->held = 0;
		pthread_cond_broadcast(&pool->cv);
		pthread_mutex_unlock(&pool->mu);
		unmap_buffers(w);
		recipe_cpu_arena_release();
		pthread_mutex_lock(&pool->mu);
		while (pool->used + want > pool->budget && pool->used > 0 && !stopping(pool))
			pthread_cond_wait(&pool->cv, &pool->mu);
	}
	pool->used = pool->used - w->held + want;
	w->held = want;
	pthread_mutex_unlock(&pool->mu);
}

/* After a unit: hold what the worker really has (the arena may have grown
 * past the guess, or stayed under it). */
static void hold_actual(struct unit_worker *w)
{
	struct units_pool *pool = w->pool;
	uint64_t have = footprint(w);

	pthread_mutex_lock(&pool->mu);
	pool->used = pool->used - w->held + have;
	w->held = have;
	pthread_cond_broadcast(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
}

/* Buffers of 2 MiB and more are asked for huge pages: every byte of one is
 * written by an evaluator and read again by a write into the page cache,
 * and on a VM a 4 KiB page's TLB miss costs a two-level walk (a third less
 * system time measured for the writes alone). */
#define HUGE_PAGE ((size_t)2 << 20)

static int map_buffer(struct unit_worker *w, int k, size_t len, char *err)
{
	size_t page = len >= HUGE_PAGE ? HUGE_PAGE : 4096, cap = (len + page - 1) & ~(page - 1);

	if (w->cap[k] >= len)
		return 0;
	if (w->buf[k])
		munmap(w->buf[k], w->cap[k]);
	w->buf[k] = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w->buf[k] == MAP_FAILED) {
		w->buf[k] = NULL;
		w->cap[k] = 0;
		return sd_err(err, -ENOMEM, "cannot allocate a buffer of %zu bytes", len);
	}
	if (page == HUGE_PAGE)
		madvise(w->buf[k], cap, MADV_HUGEPAGE);         /* a hint: ignored where not had */
	w->cap[k] = cap;
	return 0;
}

int unit_reserve(struct unit_worker *w, size_t len0, size_t len1, bool converts,
		 char *err)
{
	size_t c0 = len0 > w->cap[0] ? len0 : w->cap[0];
	size_t c1 = len1 > w->cap[1] ? len1 : w->cap[1];
	uint64_t arena = recipe_cpu_arena_bytes(), seen = atomic_load(&w->pool->arena_permille);
	uint64_t guess = converts ? (uint64_t)len0 * (seen ? seen : ARENA_GUESS_PERMILLE) / 1000 : 0;
	int rc;

	hold(w, c0 + c1 + (arena > guess ? arena : guess));
	if (stopping(w->pool))
		return sd_err(err, -EINTR, "interrupted");
	/* Map what is held, not only what is asked for: hold() may have given
	 * every buffer back, and a caller that reserves again within one unit
	 * (verify: both buffers, then unit_bytes the first) still uses the
	 * other one. */
	if ((rc = map_buffer(w, 0, c0, err)) < 0 || (rc = map_buffer(w, 1, c1, err)) < 0)
		return rc;
	return 0;
}

/* An arena that grew for a chunk holds what that chunk needed: remember the
 * largest such need per output byte, for the next reservations.  Only
 * chunks of at least the arena's first block (1 MiB) teach anything: that
 * block is taken whole by a chunk of 256 bytes too. */
#define LEARN_FROM ((uint64_t)1 << 20)

static void learn_arena(struct units_pool *pool, uint64_t before, uint64_t len)
{
	uint64_t after = recipe_cpu_arena_bytes();
	uint64_t permille = len ? after * 1000 / len + 1 : 0;
	uint64_t seen = atomic_load(&pool->arena_permille);

	while (len >= LEARN_FROM && after > before && permille > seen &&
	       !atomic_compare_exchange_weak(&pool->arena_permille, &seen, permille))
		;
}

int unit_bytes(struct unit_worker *w, size_t i, const char **out, char *err)
{
	const struct unit *u = &w->us->u[i];
	struct view *v = w->us->view;
	int rc;

	if (u->kind == UNIT_MEM) {
		*out = u->mem;
		return 0;
	}
	if ((rc = unit_reserve(w, (size_t)u->len, 0, u->kind == UNIT_ROWS, err)) < 0)
		return rc;
	if (u->kind == UNIT_SOURCE) {
		rc = source_pread(&v->src, u->src_file, u->src_off, w->buf[0], (size_t)u->len, err);
		if (rc == 0)
			atomic_fetch_add(&v->stats.source_bytes, u->len);
	} else {
		uint64_t before = recipe_cpu_arena_bytes();
		rc = view_convert(v, u->tensor, u->r0, u->r1, w->buf[0], err);
		learn_arena(w->pool, before, u->len);
		hold_actual(w);
	}
	*out = w->buf[0];
	return rc;
}

static void fail(struct units_pool *pool, int rc, const char *err)
{
	pthread_mutex_lock(&pool->mu);
	if (!atomic_load(&pool->rc)) {
		atomic_store(&pool->rc, rc);
		snprintf(pool->err, sizeof(pool->err), "%s", err);
	}
	pthread_cond_broadcast(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
}

static void *work(void *arg)
{
	struct unit_worker w = { .pool = arg, .pipe = { -1, -1 } };
	struct units_pool *pool = w.pool;
	char err[SD_ERRLEN];

	w.us = pool->us;
	while (!stopping(pool)) {
		size_t i = atomic_fetch_add(&pool->next, 1);
		if (i >= pool->us->n)
			break;
		const struct unit *u = &pool->us->u[i];
		atomic_store(&pool->p->current, pool->us->files[pool->us->places[u->first].file].path);
		int rc = pool->fn(&w, i, pool->arg, err);
		if (rc < 0) {
			fail(pool, rc, err);
			break;
		}
		atomic_fetch_add(&pool->p->done, u->len * u->nplaces);
	}
	unmap_buffers(&w);
	recipe_cpu_arena_release();
	for (int k = 0; k < 2; k++)
		if (w.pipe[k] >= 0)
			close(w.pipe[k]);
	pthread_mutex_lock(&pool->mu);
	pool->used -= w.held;
	pthread_cond_broadcast(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
	return NULL;
}

int units_run(struct units *us, unsigned jobs, uint64_t budget, unit_fn fn,
	      void *arg, struct units_progress *p, char *err)
{
	struct units_pool pool = { .us = us, .fn = fn, .arg = arg, .p = p, .budget = budget };
	pthread_t *threads = calloc(jobs ? jobs : 1, sizeof(*threads));
	unsigned started = 0;

	if (!threads)
		return sd_err(err, -ENOMEM, "out of memory");
	p->total = us->bytes;
	pthread_mutex_init(&pool.mu, NULL);
	pthread_cond_init(&pool.cv, NULL);
	/* Each worker is a thread of its own, even alone, so its evaluator's
	 * per-thread memory goes when it ends. */
	for (; started < (jobs ? jobs : 1); started++)
		if (pthread_create(&threads[started], NULL, work, &pool) != 0)
			break;
	if (!started)
		fail(&pool, -EAGAIN, "cannot start a worker thread");
	for (unsigned k = 0; k < started; k++)
		pthread_join(threads[k], NULL);
	free(threads);
	pthread_mutex_destroy(&pool.mu);
	pthread_cond_destroy(&pool.cv);
	if (atomic_load(&pool.rc))
		return sd_err(err, atomic_load(&pool.rc), "%s", pool.err);
	if (atomic_load(&p->stop))
		return sd_err(err, -EINTR, "interrupted");
	return 0;
}
