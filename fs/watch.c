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
#include "fs.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "err.h"

#define WATCH_SECONDS 1

static void *watch_main(void *arg)
{
	struct sdafs *fs = arg;
	size_t n = fs->view.layout.n;
	bool *dropped = calloc(n + 1, sizeof(*dropped));
	char err[SD_ERRLEN];

	pthread_mutex_lock(&fs->watch_mu);
	while (!fs->watch_stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += WATCH_SECONDS;
		pthread_cond_timedwait(&fs->watch_cv, &fs->watch_mu, &until);
		if (fs->watch_stop)
			break;
		pthread_mutex_unlock(&fs->watch_mu);
		for (size_t i = 0; dropped && i < n; i++) {
			bool first;
			if (dropped[i] || view_check_sources(&fs->view, i, &first, err) == 0)
				continue;
			if (first)
				sd_log("%s", err);
			/* Only this view file's pages; -ENOENT: none cached. */
			fuse_lowlevel_notify_inval_inode(fs->se, sdafs_file_ino(i), 0, 0);
			dropped[i] = true;
		}
		pthread_mutex_lock(&fs->watch_mu);
	}
	pthread_mutex_unlock(&fs->watch_mu);
	free(dropped);
	return NULL;
}

int watch_start(struct sdafs *fs)
{
	pthread_mutex_init(&fs->watch_mu, NULL);
	pthread_cond_init(&fs->watch_cv, NULL);
	fs->watch_stop = false;
	if (pthread_create(&fs->watch_thread, NULL, watch_main, fs) != 0)
		return -errno;
	fs->watching = true;
	return 0;
}

void watch_stop(struct sdafs *fs)
{
	if (!fs->watching)
		return;
	pthread_mutex_lock(&fs->watch_mu);
	fs->watch_stop = true;
	pthread_cond_signal(&fs->watch_cv);
	pthread_mutex_unlock(&fs->watch_mu);
	pthread_join(fs->watch_thread, NULL);
	fs->watching = false;
}
