/*
 * readahead.c — converting ahead of sequential readers (see readahead.h).
 *
 * The one idea: a read that continues a stream queues the chunks of the
 * next window that are not in the cache, and a few workers fill them with
 * cache_fill_ahead, the same single-flight fill a reader uses, so a reader
 * that gets there first simply waits for the worker's conversion instead of
 * starting its own, and nothing is ever converted twice at once.
 *
 * Streams are tracked per open file (the caller's) and per view file (a few
 * slots, matched by position), so readers sharing one open file at distant
 * offsets, and readers of one file through several opens, are both seen.
 * A read continues a stream when it starts within STREAM_SLACK of the
 * stream's end: the kernel sends the requests of one large read, or of its
 * own read-ahead, to several daemon threads at once, so they arrive a
 * little out of order.  A stream reads ahead only within the tensor it
 * started in until it has read CROSS_MARGIN past that tensor's end: a
 * loader that copies tensors out in its own order (an mmap loader) then
 * never has the next tensor in the file converted for nothing, while cat,
 * cp and dd read on and get the whole window.
 *
 * Bounds: the queue holds QUEUE_LEN chunks; the cache holds at most a
 * quarter of its size in chunks converted ahead and not read yet (the rest
 * is skipped, and converted by the reader when it gets there); when one of
 * those is evicted unread the window halves and the queue is dropped, and
 * it grows back with every sequential read.
 */
#include "readahead.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "err.h"
#include "view.h"

#define STREAM_SLACK    ((uint64_t)8 << 20)
#define CROSS_MARGIN    ((uint64_t)2 << 20)     /* past the kernel's own read-ahead */
#define SLOTS_PER_FILE  4
#define QUEUE_LEN       64
#define MAX_WORKERS     16

struct ahead_job {
	uint64_t key;           /* the cache key (tensor << 32 | chunk) */
	size_t len;
	size_t file;            /* its view file, whose sources are checked first */
};

struct readahead {
	struct view *view;
	pthread_mutex_t mu;
	pthread_cond_t work;
	bool stop;
	pthread_t threads[MAX_WORKERS];
	unsigned nthreads;
	uint64_t window;        /* as asked */
	uint64_t window_now;    /* shrunk under eviction pressure */
	uint64_t ahead_max;     /* bytes converted ahead and not read yet */
	uint64_t wasted_seen;   /* the cache's ahead_wasted when last looked at */
	struct readahead_stream *slots;         /* SLOTS_PER_FILE per view file */
	uint64_t tick;
	struct ahead_job queue[QUEUE_LEN];      /* a ring */
	unsigned head, count;
	uint64_t queued_bytes;
	/* counters */
	uint64_t queued, dropped, skipped, failed;
};

/* --- streams ---------------------------------------------------------------- */

static bool continues(const struct readahead_stream *s, uint64_t off)
{
	return s->run && off + STREAM_SLACK >= s->pos && off <= s->pos + STREAM_SLACK;
}

/* The slot of file's streams this read continues, else the one it replaces. */
static struct readahead_stream *file_slot(struct readahead *ra, size_t file, uint64_t off)
{
	struct readahead_stream *s = &ra->slots[file * SLOTS_PER_FILE], *oldest = s;

	for (int i = 0; i < SLOTS_PER_FILE; i++) {
		if (continues(&s[i], off))
			return &s[i];
		if (s[i].used < oldest->used)
			oldest = &s[i];
	}
	*oldest = (struct readahead_stream){ 0 };
	return oldest;
}

/* Where the piece of file f holding offset off ends: its header, a tensor. */
static uint64_t piece_end(const struct view *v, const struct vfile *f, uint64_t off)
{
	size_t i;

	if (off < f->mem_len)
		return f->mem_len;
	i = view_first_slot(v, f, off);
	return i < f->nslots ? f->slots[i].off + v->plan.tensors[f->slots[i].tensor].nbytes
			     : f->size;
}

/* Record the read [off, end) of f in s; true when it continued s. */
static bool stream_advance(struct readahead *ra, const struct vfile *f,
			   struct readahead_stream *s, uint64_t off, uint64_t end)
{
	bool seq = continues(s, off);

	if (!seq) {
		s->pos = s->ahead = end;
		s->bound = piece_end(ra->view, f, off);
		s->run = 0;
	}
	s->run++;
	if (end > s->pos)
		s->pos = end;
	if (s->pos > s->bound + CROSS_MARGIN)
		s->bound = UINT64_MAX;  /* it reads across tensors: the whole window */
	s->used = ra->tick;
	return seq;
}

/* What the streams a read continued allow: converted up to, and never past. */
struct ahead_plan {
	bool seq;
	uint64_t ahead, bound;
};

static void plan_from(struct ahead_plan *p, const struct readahead_stream *s, bool seq)
{
	if (!seq)
		return;
	p->seq = true;
	if (s->ahead > p->ahead)
		p->ahead = s->ahead;
	if (s->bound > p->bound)
		p->bound = s->bound;
}

/* --- the queue (ra->mu held) ------------------------------------------------ */

static bool queued_already(const struct readahead *ra, uint64_t key)
{
	for (unsigned i = 0; i < ra->count; i++)
		if (ra->queue[(ra->head + i) % QUEUE_LEN].key == key)
			return true;
	return false;
}

/* Queue one chunk unless it is resident or queued; false when full. */
static bool queue_chunk(struct readahead *ra, size_t file, uint64_t key, size_t len)
{
	if (queued_already(ra, key) || cache_contains(ra->view->cache, key))
		return true;
	if (ra->count == QUEUE_LEN || ra->queued_bytes + len > ra->ahead_max)
		return false;
	ra->queue[(ra->head + ra->count) % QUEUE_LEN] = (struct ahead_job){ key, len, file };
	ra->count++;
	ra->queued_bytes += len;
	ra->queued++;
	pthread_cond_signal(&ra->work);
	return true;
}

/*
 * Queue the converted chunks of bytes [from, to) of view file `file`.
 * Returns how far it got: to, or where the queue filled up.
 */
static uint64_t queue_range(struct readahead *ra, size_t file, uint64_t from, uint64_t to)
{
	struct view *v = ra->view;
	const struct vfile *f = &v->layout.files[file];

	for (size_t i = view_first_slot(v, f, from); i < f->nslots; i++) {
		const struct vslot *sl = &f->slots[i];
		const struct plan_tensor *t = &v->plan.tensors[sl->tensor];
		if (sl->off >= to)
			break;
		if (!t->recipe || t->preload || !t->nbytes)
			continue;       /* nothing to convert */
		uint64_t cb = plan_chunk_bytes(t);
		uint64_t a = from > sl->off ? from - sl->off : 0;
		uint64_t b = to - sl->off < t->nbytes ? to - sl->off : t->nbytes;
		for (uint64_t c = a / cb; c * cb < b; c++) {
			uint64_t c0 = c * cb, c1 = c0 + cb < t->nbytes ? c0 + cb : t->nbytes;
			if (!queue_chunk(ra, file, ((uint64_t)sl->tensor << 32) | c, (size_t)(c1 - c0)))
				return sl->off + c0 > from ? sl->off + c0 : from;
		}
	}
	return to;
}

static void drop_queue(struct readahead *ra)
{
	ra->dropped += ra->count;
	ra->count = 0;
	ra->queued_bytes = 0;
}

/* Halve the window when a chunk converted ahead was evicted unread: the
 * cache cannot hold what the readers are not reading yet. */
static void watch_pressure(struct readahead *ra)
{
	struct cache_stats cs;

	cache_get_stats(ra->view->cache, &cs);
	if (cs.ahead_wasted > ra->wasted_seen) {
		ra->wasted_seen = cs.ahead_wasted;
		ra->window_now /= 2;
		drop_queue(ra);
	} else if (ra->window_now < ra->window) {
		ra->window_now += ra->window / 64 + 1;
		if (ra->window_now > ra->window)
			ra->window_now = ra->window;
	}
}

void view_readahead_note(struct view *v, struct readahead_stream *own, size_t file,
			 uint64_t off, size_t len)
{
	struct readahead *ra = v->ra;
	const struct vfile *f = &v->layout.files[file];
	uint64_t end = off + len;

	if (!ra || f->kind != VF_WEIGHTS || atomic_load(&f->mat_fd) >= 0 || off >= f->size)
		return;
	if (end > f->size || end < off)
		end = f->size;
	pthread_mutex_lock(&ra->mu);
	ra->tick++;
	struct readahead_stream *slot = file_slot(ra, file, off);
	struct ahead_plan p = { false, end, 0 };
	plan_from(&p, slot, stream_advance(ra, f, slot, off, end));
	if (own)
		plan_from(&p, own, stream_advance(ra, f, own, off, end));
	if (p.seq) {
		watch_pressure(ra);
		uint64_t to = end + ra->window_now;
		if (to > p.bound)
			to = p.bound;
		if (to > f->size)
			to = f->size;
		/* in steps of a quarter window, not a chunk per read */
		if (to > p.ahead && (to - p.ahead >= ra->window_now / 4 || to == p.bound ||
				     to == f->size))
			p.ahead = queue_range(ra, file, p.ahead, to);
		slot->ahead = p.ahead;
		if (own)
			own->ahead = p.ahead;
	}
	pthread_mutex_unlock(&ra->mu);
}

/* --- workers ---------------------------------------------------------------- */

static void run_job(struct readahead *ra, const struct ahead_job *job)
{
	struct view *v = ra->view;
	char err[SD_ERRLEN];
	int rc;

	/* A changed source: its reads fail anyway; convert nothing from it. */
	if (view_check_sources(v, job->file, NULL, err) < 0)
		rc = -EIO;
	else
		rc = cache_fill_ahead(v->cache, job->key, job->len, view_fill_chunk, v,
				      ra->ahead_max, err);
	pthread_mutex_lock(&ra->mu);
	if (rc < 0)
		ra->failed++;   /* the reader will meet the error itself */
	else if (rc == 2)
		ra->skipped++;
	pthread_mutex_unlock(&ra->mu);
}

static void *worker_main(void *arg)
{
	struct readahead *ra = arg;

	pthread_mutex_lock(&ra->mu);
	for (;;) {
		while (!ra->stop && ra->count == 0)
			pthread_cond_wait(&ra->work, &ra->mu);
		if (ra->stop)
			break;
		struct ahead_job job = ra->queue[ra->head];
		ra->head = (ra->head + 1) % QUEUE_LEN;
		ra->count--;
		ra->queued_bytes -= job.len;
		pthread_mutex_unlock(&ra->mu);
		run_job(ra, &job);
		pthread_mutex_lock(&ra->mu);
	}
	pthread_mutex_unlock(&ra->mu);
	return NULL;
}

int view_readahead_start(struct view *v, unsigned workers, uint64_t window, char *err)
{
	struct readahead *ra;
	struct cache_stats cs;

	if (v->ra || !workers || !window)
		return 0;
	if (!(ra = calloc(1, sizeof(*ra))) ||
	    !(ra->slots = calloc(v->layout.n * SLOTS_PER_FILE + 1, sizeof(*ra->slots)))) {
		free(ra);
		return sd_err(err, -ENOMEM, "read-ahead: out of memory");
	}
	cache_get_stats(v->cache, &cs);
	ra->view = v;
	ra->window = ra->window_now = window;
	ra->ahead_max = cs.max_bytes / 4;
	ra->wasted_seen = cs.ahead_wasted;
	pthread_mutex_init(&ra->mu, NULL);
	pthread_cond_init(&ra->work, NULL);
	if (workers > MAX_WORKERS)
		workers = MAX_WORKERS;
	for (; ra->nthreads < workers; ra->nthreads++)
		if (pthread_create(&ra->threads[ra->nthreads], NULL, worker_main, ra) != 0)
			break;
	if (!ra->nthreads) {
		pthread_mutex_destroy(&ra->mu);
		pthread_cond_destroy(&ra->work);
		free(ra->slots);
		free(ra);
		return sd_err(err, -EAGAIN, "read-ahead: cannot start a worker thread");
	}
	v->ra = ra;
	return 0;
}

void view_readahead_stop(struct view *v)
{
	struct readahead *ra = v->ra;

	if (!ra)
		return;
	pthread_mutex_lock(&ra->mu);
	ra->stop = true;
	drop_queue(ra);
	pthread_cond_broadcast(&ra->work);
	pthread_mutex_unlock(&ra->mu);
	for (unsigned i = 0; i < ra->nthreads; i++)
		pthread_join(ra->threads[i], NULL);
	v->ra = NULL;
	pthread_mutex_destroy(&ra->mu);
	pthread_cond_destroy(&ra->work);
	free(ra->slots);
	free(ra);
}

void view_readahead_stats(struct view *v, cJSON *into)
{
	struct readahead *ra = v->ra;
	cJSON *j = cJSON_AddObjectToObject(into, "readahead");

	if (!j)
		return;
	cJSON_AddBoolToObject(j, "on", ra != NULL);
	if (!ra)
		return;
	pthread_mutex_lock(&ra->mu);
	cJSON_AddNumberToObject(j, "workers", ra->nthreads);
	cJSON_AddNumberToObject(j, "window", (double)ra->window);
	cJSON_AddNumberToObject(j, "window_now", (double)ra->window_now);
	cJSON_AddNumberToObject(j, "max_bytes_ahead", (double)ra->ahead_max);
	cJSON_AddNumberToObject(j, "chunks_queued", (double)ra->queued);
	cJSON_AddNumberToObject(j, "chunks_dropped", (double)ra->dropped);
	cJSON_AddNumberToObject(j, "chunks_skipped", (double)ra->skipped);
	cJSON_AddNumberToObject(j, "fills_failed", (double)ra->failed);
	pthread_mutex_unlock(&ra->mu);
}
