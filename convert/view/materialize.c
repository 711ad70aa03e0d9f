/* materialize.c — converted view files kept on disk (see materialize.h). */
#include "materialize.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

#define COPY_FORMAT 1           /* bump when a copy's bytes would change */
#define WRITE_STEP ((size_t)4 << 20)

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	return h;
}

static uint64_t copy_key(const struct view *v, size_t file)
{
	const struct vfile *f = &v->layout.files[file];
	uint64_t h = 1469598103934665603ull;
	char params[256];

	snprintf(params, sizeof(params), "%d|%s|%s|%d|%" PRIu64 "|%" PRIu64 "|%s|%" PRIu64,
		 COPY_FORMAT, v->plan.adapter, v->plan.direction, (int)v->plan.dtype,
		 v->plan.ep_start, v->plan.ep_end, f->name, f->size);
	h = fnv(h, params, strlen(params));
	h = fnv(h, v->src.dir, strlen(v->src.dir));
	for (size_t i = 0; i < f->nsrcs; i++) {
		const struct src_file *s = &v->src.files[f->srcs[i]];
		h = fnv(h, s->name, strlen(s->name));
		h = fnv(h, &s->size, sizeof(s->size));
		h = fnv(h, &s->mtime, sizeof(s->mtime));
		h = fnv(h, &s->ino, sizeof(s->ino));
		h = fnv(h, &s->dev, sizeof(s->dev));
	}
	if (f->kind == VF_MEMORY)
		h = fnv(h, f->mem, f->mem_len);
	return h;
}

void materialize_path(const struct view *v, const char *dir, size_t file,
		      char *buf, size_t len)
{
	snprintf(buf, len, "%s/%016" PRIx64 ".%s", dir, copy_key(v, file),
		 v->layout.files[file].name);
}

int materialize_attach(struct view *v, const char *dir, size_t file, char *err)
{
	struct vfile *f = &v->layout.files[file];
	char path[4096];
	struct stat st;

	if (atomic_load(&f->mat_fd) >= 0)
		return 1;
	materialize_path(v, dir, file, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : sd_err(err, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != f->size) {
		close(fd);      /* not ours, or damaged: ignore it */
		return 0;
	}
	atomic_store(&f->mat_fd, fd);
	return 1;
}

int materialize_write(struct view *v, const char *dir, size_t file, char *err)
{
	const struct vfile *f = &v->layout.files[file];
	struct view_io io = { 0 };
	struct readahead_stream stream = { 0 };         /* one sequential reader */
	char path[4096], tmp[4200];
	char *buf = malloc(WRITE_STEP);
	int rc = 0, fd;

	if (!buf)
		return sd_err(err, -ENOMEM, "out of memory");
	materialize_path(v, dir, file, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		free(buf);
		return sd_err(err, -errno, "materialize: %s: %s", tmp, strerror(errno));
	}
	for (uint64_t off = 0; off < f->size && rc == 0; off += WRITE_STEP) {
		size_t n = f->size - off < WRITE_STEP ? (size_t)(f->size - off) : WRITE_STEP;
		view_readahead_note(v, &stream, file, off, n);
		if ((rc = view_read(v, file, off, n, &io, err)) == 0 &&
		    (rc = view_io_gather(v, &io, buf, err)) == 0 &&
		    pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			rc = sd_err(err, -errno, "materialize: writing %s: %s", tmp, strerror(errno));
		view_io_release(v, &io);
	}
	/* The sources must not have changed while we copied them. */
	if (rc == 0)
		rc = view_check_sources(v, file, NULL, err);
	if (close(fd) < 0 && rc == 0)
		rc = sd_err(err, -errno, "materialize: %s: %s", tmp, strerror(errno));
	if (rc == 0 && rename(tmp, path) < 0)
		rc = sd_err(err, -errno, "materialize: %s: %s", path, strerror(errno));
	if (rc < 0)
		unlink(tmp);
	view_io_free(&io);
	free(buf);
	if (rc == 0)
		atomic_fetch_add(&v->stats.copies_written, 1);
	return rc < 0 ? rc : materialize_attach(v, dir, file, err) < 0 ? -EIO : 0;
}
