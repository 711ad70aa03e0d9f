/*
 * copies.c — writing materialized copies in the background.
 *
 * With -o materialize_dir, a view file is copied to local disk once it has
 * been read to its end (or at mount, with -o prefetch) by one worker thread,
 * so replies never wait for it.  Later opens of the file are then served
 * from the copy: by the kernel (passthrough.c) when it can, else by a pread.
 */
#include "copies.h"

#include <pthread.h>
#include <stdlib.h>

#include "err.h"
#include "log.h"
#include "materialize.h"

struct copies {
	struct view *view;
	const char *dir;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	enum { COPY_NONE, COPY_WANTED, COPY_DONE } *state;     /* per view file */
	size_t pending;
};

static void *copy_main(void *arg)
{
	struct copies *c = arg;
	char err[SD_ERRLEN];

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
		pthread_mutex_unlock(&c->mu);
		if (materialize_write(c->view, c->dir, i, err) < 0)
			sd_log("%s", err);
		pthread_mutex_lock(&c->mu);
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
		pthread_cond_signal(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
}

struct copies *copies_start(struct view *v, const char *dir, bool prefetch)
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
	for (size_t i = 0; i < n; i++)         /* copies left by an earlier mount */
		if (v->layout.files[i].kind == VF_WEIGHTS &&
		    materialize_attach(v, dir, i, err) < 0)
			sd_log("%s", err);
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	if (pthread_create(&c->thread, NULL, copy_main, c) != 0) {
		free(c->state);
		free(c);
		return NULL;
	}
	for (size_t i = 0; prefetch && i < n; i++)
		copies_want(c, i);
	return c;
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
	free(c->state);
	free(c);
}
