/*
 * copies.c — writing materialized copies in the background.
 *
 * With -o materialize_dir, a view file is copied to local disk once it has
 * been read to its end (or at mount, with -o prefetch) by one worker thread,
 * so replies never wait for it.  Later opens of the file are then served
 * from the copy: by the kernel (passthrough.c) when it can, else by a pread.
 * The same thread keeps the directory tidy (materialize_tidy): at mount,
 * and before each copy when -o materialize_max sets a budget.
 * The writer keeps count of what it was asked for and what it has done, so
 * .sdafs-stats and `sdafs status --wait` can show progress.
 */
#include "copies.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "materialize.h"

struct copies {
	struct view *view;
	const char *dir;
	int dirfd;
	uint64_t max_bytes;             /* -o materialize_max, 0: none */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	enum { COPY_NONE, COPY_WANTED, COPY_DONE } *state;     /* per view file */
	size_t pending;
	/* progress, under mu */
	struct copy_progress prog;      /* bytes_done: of finished files */
	long writing;                   /* the file being written, or -1 */
	uint64_t written_before;        /* copy_bytes_written when it began */
	bool wanted_any;
	struct timespec first_want, last_done;
};

static void log_tidy(const struct copies *c, const struct tidy_report *r)
{
	if (r->temps + r->orphans + r->dead + r->evicted)
		sd_log("materialize_dir %s: removed %u temporary files of writers that died, %u copies or records without the other, %u copies of sources that changed or are gone, %u least recently used copies (%" PRIu64 " bytes) past materialize_max",
		       c->dir, r->temps, r->orphans, r->dead, r->evicted, r->evicted_bytes);
}

/* Copy file i, making room for it first under a budget; false: not copied. */
static bool copy_one(struct copies *c, size_t i)
{
	const struct vfile *f = &c->view->layout.files[i];
	struct tidy_report r;
	char err[SD_ERRLEN];

	if (c->max_bytes) {
		int rc = materialize_tidy(c->view, c->dirfd, c->max_bytes, f->size, &r, err);
		log_tidy(c, &r);
		if (rc < 0) {
			sd_log("%s: %s is not copied", err, f->name);
			return false;
		}
	}
	if (materialize_write(c->view, c->dirfd, i, err) < 0) {
		sd_log("%s", err);
		return false;
	}
	return true;
}

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) * 1e-9;
}

/* Under mu: file i is finished, copied (ok) or not. */
static void note_done(struct copies *c, size_t i, bool ok)
{
	if (ok) {
		c->prog.files_done++;
		c->prog.bytes_done += c->view->layout.files[i].size;
	} else {
		c->prog.errors++;
	}
	c->writing = -1;
	clock_gettime(CLOCK_MONOTONIC, &c->last_done);
}

static void *copy_main(void *arg)
{
	struct copies *c = arg;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		size_t i, n = c->view->layout.n;
		while (!c->stop && c->pending == 0)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->stop)
			break;
		for (i = 0; i < n && c->state[i] != COPY_WANTED; i++)
			;
		if (i == n) {
			c->pending = 0;
			continue;
		}
		c->state[i] = COPY_DONE;
		c->pending--;
		c->writing = (long)i;
		c->written_before = atomic_load(&c->view->stats.copy_bytes_written);
		pthread_mutex_unlock(&c->mu);
		bool ok = copy_one(c, i);
		pthread_mutex_lock(&c->mu);
		note_done(c, i, ok);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

void copies_want(struct copies *c, size_t file)
{
	if (!c || atomic_load(&c->view->layout.files[file].mat_fd) >= 0 ||
	    c->view->layout.files[file].kind != VF_WEIGHTS)
		return;
	pthread_mutex_lock(&c->mu);
	if (c->state[file] == COPY_NONE) {
		c->state[file] = COPY_WANTED;
		c->pending++;
		c->prog.files_total++;
		if (!c->wanted_any) {   /* the rate counts from the first file asked for */
			c->wanted_any = true;
			clock_gettime(CLOCK_MONOTONIC, &c->first_want);
		}
		c->prog.bytes_total += c->view->layout.files[file].size;
		pthread_cond_signal(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
}

/* Serve what copies the directory already holds, then tidy it. */
static void attach_and_tidy(struct copies *c)
{
	struct view *v = c->view;
	struct tidy_report r;
	char err[SD_ERRLEN];

	for (size_t i = 0; i < v->layout.n; i++) {
		int rc = v->layout.files[i].kind != VF_WEIGHTS ? 0 :
			 materialize_attach(v, c->dirfd, i, err);
		if (rc < 0 || (rc == 0 && err[0]))
			sd_log("%s", err);
		if (rc == 1) {  /* done before we began: counted as done */
			c->prog.files_total++;
			c->prog.files_done++;
			c->prog.bytes_total += v->layout.files[i].size;
			c->prog.bytes_done += v->layout.files[i].size;
			c->prog.bytes_attached += v->layout.files[i].size;
		}
	}
	if (materialize_tidy(v, c->dirfd, c->max_bytes, 0, &r, err) < 0)
		sd_log("%s", err);
	log_tidy(c, &r);
}

struct copies *copies_start(struct view *v, const char *dir, uint64_t max_bytes, bool prefetch)
{
	char err[SD_ERRLEN];
	size_t n = v->layout.n;
	struct copies *c = calloc(1, sizeof(*c));

	if (!c || !(c->state = calloc(n + 1, sizeof(*c->state)))) {
		free(c);
		return NULL;
	}
	c->view = v;
	c->dir = dir;
	c->max_bytes = max_bytes;
	if (materialize_dir_open(dir, &c->dirfd, err) < 0) {
		sd_log("%s", err);
		free(c->state);
		free(c);
		return NULL;
	}
	attach_and_tidy(c);
	c->writing = -1;
	clock_gettime(CLOCK_MONOTONIC, &c->first_want);
	c->last_done = c->first_want;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	if (pthread_create(&c->thread, NULL, copy_main, c) != 0) {
		close(c->dirfd);
		free(c->state);
		free(c);
		return NULL;
	}
	for (size_t i = 0; prefetch && i < n; i++)
		copies_want(c, i);
	return c;
}

int copies_verify(struct view *v, const char *dir, FILE *out)
{
	char err[SD_ERRLEN];
	int dirfd, bad = 0;

	if (materialize_dir_open(dir, &dirfd, err) < 0) {
		fprintf(stderr, "sdafs: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < v->layout.n; i++) {
		const char *name = v->layout.files[i].name;
		if (v->layout.files[i].kind != VF_WEIGHTS)
			continue;
		int rc = materialize_verify(v, dirfd, i, err);
		if (rc == 1)
			fprintf(out, "ok       %s\n", name);
		else if (rc == 0 && !err[0])
			fprintf(out, "missing  %s\n", name);
		else
			fprintf(out, "%s %s\n", rc == 0 ? "refused " : "damaged ", err);
		bad |= rc < 0 || (rc == 0 && err[0]);
	}
	close(dirfd);
	return bad;
}

void copies_progress(struct copies *c, struct copy_progress *out)
{
	struct timespec now;

	pthread_mutex_lock(&c->mu);
	*out = c->prog;
	out->done = c->pending == 0 && c->writing < 0;
	if (c->writing >= 0) {  /* the file being written, as far as it got */
		uint64_t n = atomic_load(&c->view->stats.copy_bytes_written) - c->written_before;
		uint64_t size = c->view->layout.files[c->writing].size;
		out->bytes_done += n < size ? n : size;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	double secs = seconds_between(&c->first_want, out->done ? &c->last_done : &now);
	out->bytes_per_second = secs > 0 ? (double)(out->bytes_done - out->bytes_attached) / secs : 0;
	pthread_mutex_unlock(&c->mu);
}

void copies_stop(struct copies *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	close(c->dirfd);
	free(c->state);
	free(c);
}
