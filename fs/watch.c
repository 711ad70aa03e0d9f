/*
 * watch.c — noticing source files that change under a mount.
 *
 * Reads check their source files themselves, but a view file whose pages
 * sit in the kernel's page cache (keep_cache) is served without asking us.
 * So once a second a thread re-checks every view file's sources; when one
 * has changed it logs it once and tells the kernel to drop that view file's
 * cached pages, so the next read comes here and fails with EIO instead of
 * serving bytes of a source that is gone.
 */
#include "watch.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "err.h"
#include "fs.h"
#include "log.h"

#define WATCH_SECONDS 1

struct watch {
	struct view *view;
	struct fuse_session *se;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	bool *dropped;          /* per view file: its pages were dropped */
};

static void *watch_main(void *arg)
{
	struct watch *w = arg;
	size_t n = w->view->layout.n;
	char err[SD_ERRLEN];

	pthread_mutex_lock(&w->mu);
	while (!w->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += WATCH_SECONDS;
		pthread_cond_timedwait(&w->cv, &w->mu, &until);
		if (w->stop)
			break;
		pthread_mutex_unlock(&w->mu);
		for (size_t i = 0; i < n; i++) {
			bool first;
			if (w->dropped[i] || view_check_sources(w->view, i, &first, err) == 0)
				continue;
			if (first)
				sd_log("%s", err);
			/* Only this view file's pages; -ENOENT: none cached. */
			fuse_lowlevel_notify_inval_inode(w->se, sdafs_file_ino(i), 0, 0);
			w->dropped[i] = true;
		}
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

struct watch *watch_start(struct view *v, struct fuse_session *se)
{
	struct watch *w = calloc(1, sizeof(*w));

	if (!w || !(w->dropped = calloc(v->layout.n + 1, sizeof(*w->dropped)))) {
		free(w);
		return NULL;
	}
	w->view = v;
	w->se = se;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
		free(w->dropped);
		free(w);
		return NULL;
	}
	return w;
}

void watch_stop(struct watch *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w->dropped);
	free(w);
}
