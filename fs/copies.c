/*
 * copies.c — writing materialized copies in the background.
 *
 * With -o materialize_dir, a view file is copied to local disk once it has
 * been read to its end (or at mount, with -o prefetch) by one worker thread,
 * so replies never wait for it.  Later opens of the file are then served
 * from the copy: by the kernel (passthrough.c) when it can, else by a pread.
 */
#include "fs.h"

#include <stdlib.h>

#include "err.h"
#include "materialize.h"

static void *copy_main(void *arg)
{
	struct sdafs *fs = arg;
	char err[SD_ERRLEN];

	pthread_mutex_lock(&fs->copy_mu);
	for (;;) {
		size_t i, n = fs->view.layout.n;
		while (!fs->copy_stop && fs->copy_pending == 0)
			pthread_cond_wait(&fs->copy_cv, &fs->copy_mu);
		if (fs->copy_stop)
			break;
		for (i = 0; i < n && fs->copy_state[i] != COPY_WANTED; i++)
			;
		if (i == n) {
			fs->copy_pending = 0;
			continue;
		}
		fs->copy_state[i] = COPY_DONE;
		fs->copy_pending--;
		pthread_mutex_unlock(&fs->copy_mu);
		if (materialize_write(&fs->view, fs->materialize_dir, i, err) < 0)
			sd_log("%s", err);
		pthread_mutex_lock(&fs->copy_mu);
	}
	pthread_mutex_unlock(&fs->copy_mu);
	return NULL;
}

void copies_want(struct sdafs *fs, size_t file)
{
	if (!fs->copying || atomic_load(&fs->view.layout.files[file].mat_fd) >= 0 ||
	    fs->view.layout.files[file].kind != VF_WEIGHTS)
		return;
	pthread_mutex_lock(&fs->copy_mu);
	if (fs->copy_state[file] == COPY_NONE) {
		fs->copy_state[file] = COPY_WANTED;
		fs->copy_pending++;
		pthread_cond_signal(&fs->copy_cv);
	}
	pthread_mutex_unlock(&fs->copy_mu);
}

int copies_start(struct sdafs *fs, bool prefetch)
{
	char err[SD_ERRLEN];
	size_t n = fs->view.layout.n;

	if (!(fs->copy_state = calloc(n + 1, sizeof(*fs->copy_state))))
		return -1;
	for (size_t i = 0; i < n; i++)         /* copies left by an earlier mount */
		if (fs->view.layout.files[i].kind == VF_WEIGHTS &&
		    materialize_attach(&fs->view, fs->materialize_dir, i, err) < 0)
			sd_log("%s", err);
	pthread_mutex_init(&fs->copy_mu, NULL);
	pthread_cond_init(&fs->copy_cv, NULL);
	if (pthread_create(&fs->copy_thread, NULL, copy_main, fs) != 0)
		return -1;
	fs->copying = true;
	for (size_t i = 0; prefetch && i < n; i++)
		copies_want(fs, i);
	return 0;
}

void copies_stop(struct sdafs *fs)
{
	if (fs->copying) {
		pthread_mutex_lock(&fs->copy_mu);
		fs->copy_stop = true;
		pthread_cond_signal(&fs->copy_cv);
		pthread_mutex_unlock(&fs->copy_mu);
		pthread_join(fs->copy_thread, NULL);
		fs->copying = false;
	}
	free(fs->copy_state);
	fs->copy_state = NULL;
}
