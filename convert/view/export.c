/* export.c — writing a view's files into a directory (see export.h). */
#include "export.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "io.h"

/* How unchanged bytes go from source to file: the first way the kernel
 * takes, tried in this order (a way refused once is not tried again). */
enum { COPY_BY_RANGE, COPY_BY_SPLICE, COPY_BY_BUFFER };

struct export {
	struct units *us;
	int *fds;               /* per file, -1 once synced and closed */
	atomic_uint *left;      /* per file: units still to write */
	atomic_int kernel_copy; /* COPY_BY_* */
};

/* A file's subdirectory ("rank-00001" of "rank-00001/x"), made once. */
static int make_subdir(int dirfd, const char *path, const char *prev, char *err)
{
	const char *slash = strchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	char dir[64];

	if (!n || (prev && !strncmp(prev, path, n + 1)))
		return 0;
	if (n >= sizeof(dir))
		return sd_err(err, -ENAMETOOLONG, "%.*s: name too long", (int)n, path);
	memcpy(dir, path, n);
	dir[n] = '\0';
	if (mkdirat(dirfd, dir, 0777) < 0)
		return sd_err(err, -errno, "making %s: %s", dir, strerror(errno));
	return 0;
}

/* Reserve the file's blocks now: a full disk fails here, before any work. */
static int preallocate(int fd, const char *path, uint64_t size, char *err)
{
	if (!size || fallocate(fd, 0, 0, (off_t)size) == 0)
		return 0;
	if (errno == ENOSPC)
		return sd_err(err, -ENOSPC, "%s: no space left for its %" PRIu64 " bytes", path, size);
	if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
		return sd_err(err, -errno, "%s: %s", path, strerror(errno));
	if (ftruncate(fd, (off_t)size) < 0)
		return sd_err(err, -errno, "%s: %s", path, strerror(errno));
	return 0;
}

static int open_files(struct export *ex, int dirfd, char *err)
{
	const struct units *us = ex->us;

	for (size_t i = 0; i < us->nfiles; i++) {
		const struct units_file *f = &us->files[i];
		int rc = make_subdir(dirfd, f->path, i ? us->files[i - 1].path : NULL, err);
		if (rc < 0)
			return rc;
		ex->fds[i] = openat(dirfd, f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (ex->fds[i] < 0)
			return sd_err(err, -errno, "creating %s: %s", f->path, strerror(errno));
		if ((rc = preallocate(ex->fds[i], f->path, f->size, err)) < 0)
			return rc;
		atomic_init(&ex->left[i], f->nunits);
	}
	return 0;
}

static int sync_file(struct export *ex, size_t file, char *err)
{
	int fd = ex->fds[file];

	ex->fds[file] = -1;
	if (fsync(fd) < 0) {
		int e = errno;
		close(fd);
		return sd_err(err, -e, "syncing %s: %s", ex->us->files[file].path, strerror(e));
	}
	if (close(fd) < 0)
		return sd_err(err, -errno, "closing %s: %s", ex->us->files[file].path, strerror(errno));
	return 0;
}

/* Bytes written at a place: start their writeback now, so that the disk
 * works while the next units convert, and sync the file after its last. */
static int placed(struct export *ex, const struct unit_place *pl, uint64_t len, char *err)
{
	sync_file_range(ex->fds[pl->file], (off_t)pl->off, (off_t)len, SYNC_FILE_RANGE_WRITE);
	if (atomic_fetch_sub(&ex->left[pl->file], 1) == 1)
		return sync_file(ex, pl->file, err);
	return 0;
}

/* The source ended before the unit did: it changed after the scan. */
static int ended_early(const struct source *s, uint32_t f, loff_t at, char *err)
{
	return sd_err(err, -EIO, "source file %s/%s: ends early at offset %lld; the file changed while converting",
		      s->dir, s->files[f].name, (long long)at);
}

/* copy_file_range: within one filesystem, a copy in the page cache (or a
 * reflink); -errno as the kernel says when it will not. */
static int copy_range(int in, loff_t *a, int out, loff_t *b, uint64_t left)
{
	while (left) {
		ssize_t n = copy_file_range(in, a, out, b, left, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ENODATA;
		left -= (uint64_t)n;
	}
	return 0;
}

/* Across filesystems: the source's pages spliced into the worker's pipe and
 * from it into the file, one copy as copy_file_range makes.  A pipe left
 * holding bytes by an error is closed, never used again. */
static int splice_range(struct unit_worker *w, int in, loff_t *a, int out, loff_t *b,
			uint64_t left)
{
	int rc = 0;

	if (w->pipe[0] < 0) {
		if (pipe2(w->pipe, O_CLOEXEC) < 0)
			return -errno;
		fcntl(w->pipe[1], F_SETPIPE_SZ, 1 << 20);       /* fewer round trips */
	}
	while (left && rc == 0) {
		ssize_t n = splice(in, a, w->pipe[1], NULL, left, SPLICE_F_MOVE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -ENODATA;
			break;
		}
		left -= (uint64_t)n;
		while (n > 0 && rc == 0) {
			ssize_t m = splice(w->pipe[0], NULL, out, b, (size_t)n, SPLICE_F_MOVE);
			if (m < 0 && errno == EINTR)
				continue;
			rc = m > 0 ? 0 : m < 0 ? -errno : -EIO;
			n -= m > 0 ? m : 0;
		}
	}
	if (rc < 0) {
		close(w->pipe[0]);
		close(w->pipe[1]);
		w->pipe[0] = w->pipe[1] = -1;
	}
	return rc;
}

static bool refused(int rc)
{
	return rc == -EXDEV || rc == -EINVAL || rc == -ENOSYS || rc == -EOPNOTSUPP;
}

/* An unchanged source range to its one place without passing through user
 * memory: copy_file_range, else splice.  -ENOTSUP when neither can be had
 * here (the caller reads and writes instead); other errors with a message. */
static int copy_in_kernel(struct export *ex, struct unit_worker *w, const struct unit *u,
			  const struct unit_place *pl, char *err)
{
	const struct source *s = &ex->us->view->src;
	int in = s->files[u->src_file].fd, out = ex->fds[pl->file];
	int way = atomic_load(&ex->kernel_copy), rc = -ENOTSUP;

	for (; way < COPY_BY_BUFFER; way++) {
		loff_t a = (loff_t)u->src_off, b = (loff_t)pl->off;
		rc = way == COPY_BY_RANGE ? copy_range(in, &a, out, &b, u->len) :
		     splice_range(w, in, &a, out, &b, u->len);
		if (rc == -ENODATA)
			return ended_early(s, u->src_file, a, err);
		if (!refused(rc) || a != (loff_t)u->src_off)
			break;          /* done, or failed after bytes moved */
		atomic_store(&ex->kernel_copy, way + 1);        /* and for every later unit */
	}
	if (way == COPY_BY_BUFFER)
		return -ENOTSUP;
	if (rc < 0)
		return sd_err(err, rc, "writing %s: %s", ex->us->files[pl->file].path, strerror(-rc));
	atomic_fetch_add(&ex->us->view->stats.source_bytes, u->len);
	return 0;
}

static int export_unit(struct unit_worker *w, size_t i, void *arg, char *err)
{
	struct export *ex = arg;
	const struct unit *u = &ex->us->u[i];
	const struct unit_place *places = ex->us->places;
	const char *bytes;
	int rc = -ENOTSUP;

	if (u->kind == UNIT_SOURCE && u->nplaces == 1)
		rc = copy_in_kernel(ex, w, u, &places[u->first], err);
	if (rc == -ENOTSUP) {
		if ((rc = unit_bytes(w, i, &bytes, err)) < 0)
			return rc;
		for (uint32_t p = u->first; p != UNIT_NO_PLACE; p = places[p].next)
			if ((rc = sd_pwrite_full(ex->fds[places[p].file], bytes, (size_t)u->len,
						 places[p].off)) < 0)
				return sd_err(err, rc, "writing %s: %s",
					      ex->us->files[places[p].file].path, strerror(-rc));
	}
	if (rc < 0)
		return rc;
	for (uint32_t p = u->first; p != UNIT_NO_PLACE; p = places[p].next)
		if ((rc = placed(ex, &places[p], u->len, err)) < 0)
			return rc;
	return 0;
}

/* The trees' subdirectories hold their files' names: sync them too. */
static int sync_subdirs(const struct units *us, int dirfd, char *err)
{
	for (size_t i = 0; i < us->nfiles; i++) {
		const char *path = us->files[i].path, *slash = strchr(path, '/');
		if (!slash || (i + 1 < us->nfiles &&
			       !strncmp(us->files[i + 1].path, path, (size_t)(slash - path) + 1)))
			continue;       /* not in one, or not the last file of it */
		char dir[64];
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
		int fd = openat(dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0) {
			int e = errno;
			if (fd >= 0)
				close(fd);
			return sd_err(err, -e, "syncing %s: %s", dir, strerror(e));
		}
		close(fd);
	}
	return 0;
}

/* The source must not have changed while it was read. */
static int check_sources(struct view *v, char *err)
{
	for (uint32_t f = 0; f < v->src.nfiles; f++) {
		int rc = source_check(&v->src, f, NULL, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int export_write(struct units *us, int dirfd, unsigned jobs, uint64_t budget,
		 struct units_progress *p, char *err)
{
	struct export ex = { .us = us };
	int rc;

	ex.fds = malloc((us->nfiles + 1) * sizeof(*ex.fds));
	ex.left = malloc((us->nfiles + 1) * sizeof(*ex.left));
	if (!ex.fds || !ex.left) {
		free(ex.fds);
		free(ex.left);
		return sd_err(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < us->nfiles; i++)
		ex.fds[i] = -1;
	if ((rc = open_files(&ex, dirfd, err)) == 0)
		rc = units_run(us, jobs, budget, export_unit, &ex, p, err);
	for (size_t i = 0; i < us->nfiles; i++) {
		if (ex.fds[i] < 0)
			continue;
		if (rc == 0 && atomic_load(&ex.left[i]) == 0)
			rc = sync_file(&ex, i, err);    /* an empty file */
		else
			close(ex.fds[i]);
	}
	if (rc == 0)
		rc = sync_subdirs(us, dirfd, err);
	if (rc == 0)
		rc = check_sources(us->view, err);
	free(ex.fds);
	free(ex.left);
	return rc;
}
