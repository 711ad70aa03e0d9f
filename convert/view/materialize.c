/* materialize.c — converted view files kept on disk, trusted only when they
 * prove themselves (see materialize.h). */
#include "materialize.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy_record.h"
#include "err.h"
#include "io.h"

#define WRITE_STEP ((size_t)4 << 20)
#define TMP_TRIES 4

/* The names of a copy and of its record. */
struct copy_names {
	char copy[NAME_MAX + 1];
	char record[NAME_MAX + 1];
};

static int copy_names(const struct vfile *f, uint64_t key, struct copy_names *n, char *err)
{
	snprintf(n->record, sizeof(n->record), "%016" PRIx64 "-record", key);
	if (snprintf(n->copy, sizeof(n->copy), "%016" PRIx64 ".%s", key, f->name) >=
	    (int)sizeof(n->copy))
		return sd_err(err, -ENAMETOOLONG, "materialize_dir: the name %s is too long for a copy's name",
			      f->name);
	return 0;
}

int materialize_dir_open(const char *path, int *fd, char *err)
{
	struct stat st;
	int d = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (d < 0)
		return sd_err(err, -errno, "materialize_dir=%s: not a directory this user can write to (%s)",
			      path, strerror(errno));
	if (fstat(d, &st) < 0 || faccessat(d, ".", W_OK, AT_EACCESS) < 0) {
		int e = errno;
		close(d);
		return sd_err(err, -e, "materialize_dir=%s: not a directory this user can write to (%s)",
			      path, strerror(e));
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
		close(d);
		return sd_err(err, -EPERM,
			      "materialize_dir=%s: other users can write to it (mode %04o) and it is not sticky, so they could swap copies in it; use a directory only you can write to (chmod go-w) or a sticky one (chmod +t)",
			      path, (unsigned)(st.st_mode & 07777));
	}
	*fd = d;
	return 0;
}

/* ---- proving a copy ---------------------------------------------------------------- */

/* Open name in dirfd if it is a file of ours: a regular file (not a link:
 * O_NOFOLLOW) owned by this user and writable by no one else.  1 and *fd;
 * 0 when there is no such name (err "") or it is refused (err says why). */
static int open_ours(int dirfd, const char *name, int *fd, struct stat *st, char *err)
{
	int d = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	err[0] = '\0';
	if (d < 0) {
		if (errno == ENOENT)
			return 0;
		sd_err(err, 0, "%s %s", name, errno == ELOOP ? "is a symbolic link" : strerror(errno));
		return 0;
	}
	if (fstat(d, st) < 0)
		sd_err(err, 0, "%s: %s", name, strerror(errno));
	else if (!S_ISREG(st->st_mode))
		sd_err(err, 0, "%s is not a regular file", name);
	else if (st->st_uid != geteuid())
		sd_err(err, 0, "%s is owned by uid %u, not by this daemon's uid %u", name,
		       (unsigned)st->st_uid, (unsigned)geteuid());
	else if (st->st_mode & (S_IWGRP | S_IWOTH))
		sd_err(err, 0, "%s is writable by other users (mode %04o)", name,
		       (unsigned)(st->st_mode & 07777));
	if (err[0]) {
		close(d);
		return 0;
	}
	*fd = d;
	return 1;
}

/* The record of a copy, if it is ours, says it describes desc, and is
 * well-formed: 1 and what it says of the copy; 0 and why not. */
static int read_record(int dirfd, const char *name, const char *desc,
		       struct copy_ident *copy, uint64_t *sum, char *err)
{
	struct stat st;
	int fd, rc = open_ours(dirfd, name, &fd, &st, err);
	char *text;

	if (rc <= 0)
		return rc;
	if ((uint64_t)st.st_size > COPY_RECORD_MAX || !(text = malloc((size_t)st.st_size + 1))) {
		close(fd);
		return sd_err(err, 0, "%s is too large for a record", name), 0;
	}
	ssize_t n = sd_pread_full(fd, text, (size_t)st.st_size, 0);
	rc = n == st.st_size ? copy_record_parse(text, (size_t)n, desc, copy, sum) : -EBADMSG;
	if (rc == 0)
		futimens(fd, NULL);     /* when it was last used: materialize_tidy's LRU */
	close(fd);
	free(text);
	if (rc == -ESTALE)
		sd_err(err, 0, "%s describes other sources or another conversion", name);
	else if (rc < 0)
		sd_err(err, 0, "%s is not a whole record", name);
	return rc == 0;
}

/* 1 and a read-only descriptor of file's copy, and its checksum, when the
 * copy proves itself; 0 and why not (err "" when there is no copy). */
static int prove(struct view *v, int dirfd, size_t file, int *fd_out, uint64_t *sum,
		 char *err)
{
	const struct vfile *f = &v->layout.files[file];
	struct copy_names names;
	struct copy_ident want, got;
	struct stat st;
	char *desc;
	uint64_t key;
	int fd, rc;

	if ((rc = copy_describe(v, file, &desc, &key, err)) < 0)
		return rc;
	if ((rc = copy_names(f, key, &names, err)) == 0 &&
	    (rc = read_record(dirfd, names.record, desc, &want, sum, err)) == 1) {
		rc = open_ours(dirfd, names.copy, &fd, &st, err);
		if (rc == 1) {
			copy_ident_of(&st, &got);
			if (!copy_ident_equal(&got, &want) || got.size != f->size) {
				sd_err(err, 0, "%s was changed after it was written (its inode, size, mtime or ctime are not those its record holds)",
				       names.copy);
				close(fd);
				rc = 0;
			}
		} else if (!err[0]) {
			sd_err(err, 0, "%s has a record but no copy", names.copy);
		}
	}
	free(desc);
	if (rc == 1) {
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		*fd_out = fd;
	} else if (rc == 0 && err[0]) {
		sd_err_prefix(err, "materialize_dir: the copy of %s is not used", f->name);
	}
	return rc;
}

int materialize_attach(struct view *v, int dirfd, size_t file, char *err)
{
	struct vfile *f = &v->layout.files[file];
	uint64_t sum;
	int fd, none = -1, rc;

	err[0] = '\0';
	if (atomic_load(&f->mat_fd) >= 0)
		return 1;
	if ((rc = prove(v, dirfd, file, &fd, &sum, err)) == 1 &&
	    !atomic_compare_exchange_strong(&f->mat_fd, &none, fd))
		close(fd);
	return rc;
}

int materialize_verify(struct view *v, int dirfd, size_t file, char *err)
{
	const struct vfile *f = &v->layout.files[file];
	struct copy_sum sum;
	uint64_t want;
	char *buf;
	int fd, rc = prove(v, dirfd, file, &fd, &want, err);

	if (rc <= 0)
		return rc;
	if (!(buf = malloc(WRITE_STEP))) {
		close(fd);
		return sd_err(err, -ENOMEM, "out of memory");
	}
	copy_sum_init(&sum);
	for (uint64_t off = 0; off < f->size && rc == 1; off += WRITE_STEP) {
		size_t n = f->size - off < WRITE_STEP ? (size_t)(f->size - off) : WRITE_STEP;
		ssize_t got = sd_pread_full(fd, buf, n, off);
		if (got != (ssize_t)n)
			rc = sd_err(err, got < 0 ? (int)got : -EIO, "materialize_dir: reading the copy of %s: %s",
				    f->name, got < 0 ? strerror((int)-got) : "it ends early");
		else
			copy_sum_add(&sum, buf, n);
	}
	if (rc == 1 && copy_sum_final(&sum) != want)
		rc = sd_err(err, -EIO, "materialize_dir: the copy of %s holds other bytes than were written (checksum %016" PRIx64 ", its record says %016" PRIx64 "); remove it and the next mount writes it again",
			    f->name, copy_sum_final(&sum), want);
	free(buf);
	close(fd);
	return rc;
}

/* ---- writing a copy -------------------------------------------------------------- */

/* A new file in dirfd with no name (O_TMPFILE) or, where the filesystem
 * cannot make one, under a random name created exclusively (so no planted
 * file or link is ever opened) and locked while its writer lives; tmp gets
 * that name, "" when there is none.  The descriptor, or a negative errno. */
static int create_file(int dirfd, uint64_t key, char *tmp, size_t len, char *err)
{
	int fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	tmp[0] = '\0';
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		for (int i = 0; i < TMP_TRIES && fd < 0; i++) {
			uint64_t r = 0;
			if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
				break;
			snprintf(tmp, len, "%016" PRIx64 "-tmp.%016" PRIx64, key, r);
			fd = openat(dirfd, tmp, O_CREAT | O_EXCL | O_NOFOLLOW | O_RDWR | O_CLOEXEC, 0600);
			if (fd < 0 && errno != EEXIST)
				break;
		}
		if (fd >= 0)
			flock(fd, LOCK_EX | LOCK_NB);   /* materialize_tidy: a writer lives */
	}
	if (fd < 0 || fchmod(fd, 0600) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		if (tmp[0])
			unlinkat(dirfd, tmp, 0);
		return sd_err(err, -e, "materialize_dir: cannot create a file: %s", strerror(e));
	}
	return fd;
}

/* Give an unnamed file a name; linking by descriptor needs a capability,
 * linking through /proc does not. */
static int link_unnamed(int fd, int dirfd, const char *name)
{
	char proc[64];

	if (linkat(fd, "", dirfd, name, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != ENOENT && errno != EPERM)
		return -1;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return linkat(AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW);
}

/* Name the new file fd (unnamed, or called tmp) name, in place of whatever
 * is there: that is removed, never followed. */
static int place(int dirfd, int fd, const char *tmp, const char *name, char *err)
{
	for (int tries = 0; tries < 2; tries++) {
		if ((tmp[0] ? renameat(dirfd, tmp, dirfd, name) : link_unnamed(fd, dirfd, name)) == 0)
			return 0;
		if (errno != EEXIST || (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT))
			break;
	}
	return sd_err(err, -errno, "materialize_dir: cannot put %s in place: %s", name, strerror(errno));
}

/* What a new file holds: fill writes it into fd. */
struct filler {
	int (*fill)(int fd, void *arg, char *err);
	void *arg;
};

/* Make dirfd/name a file holding what fill writes: created unnamed, filled,
 * synced, named, and the directory synced.  *placed gets the file's
 * identity under its name (naming moves a file's ctime). */
static int write_named(int dirfd, uint64_t key, const char *name, const struct filler *how,
		       struct copy_ident *placed, char *err)
{
	char tmp[NAME_MAX + 1];
	struct stat st;
	bool named = false;
	int rc, fd = create_file(dirfd, key, tmp, sizeof(tmp), err);

	if (fd < 0)
		return fd;
	if ((rc = how->fill(fd, how->arg, err)) == 0 && fsync(fd) < 0)
		rc = sd_err(err, -errno, "materialize_dir: syncing %s: %s", name, strerror(errno));
	if (rc == 0 && (rc = place(dirfd, fd, tmp, name, err)) == 0)
		named = true;
	if (rc == 0 && fstat(fd, &st) < 0)
		rc = sd_err(err, -errno, "materialize_dir: %s: %s", name, strerror(errno));
	if (rc == 0 && fsync(dirfd) < 0)
		rc = sd_err(err, -errno, "materialize_dir: syncing the directory: %s", strerror(errno));
	if (rc == 0)
		copy_ident_of(&st, placed);
	else if (named || tmp[0])
		unlinkat(dirfd, named ? name : tmp, 0);
	close(fd);
	return rc;
}

struct copy_job {
	struct view *view;
	size_t file;
	struct copy_sum sum;
};

/* Every byte of the view file, converted, into fd: a short write is
 * continued, a failed one fails the copy. */
static int fill_copy(int fd, void *arg, char *err)
{
	struct copy_job *job = arg;
	struct view *v = job->view;
	const struct vfile *f = &v->layout.files[job->file];
	struct view_io io = { 0 };
	struct readahead_stream stream = { 0 };         /* one sequential reader */
	char *buf = malloc(WRITE_STEP);
	int rc = buf ? 0 : sd_err(err, -ENOMEM, "out of memory");

	copy_sum_init(&job->sum);
	for (uint64_t off = 0; off < f->size && rc == 0; off += WRITE_STEP) {
		size_t n = f->size - off < WRITE_STEP ? (size_t)(f->size - off) : WRITE_STEP;
		view_readahead_note(v, &stream, job->file, off, n);
		if ((rc = view_read(v, job->file, off, n, &io, err)) == 0 &&
		    (rc = view_io_gather(v, &io, buf, err)) == 0 &&
		    (rc = sd_pwrite_full(fd, buf, n, off)) < 0)
			sd_err(err, rc, "materialize_dir: writing the copy of %s: %s", f->name,
			       strerror(-rc));
		if (rc == 0)
			copy_sum_add(&job->sum, buf, n);
		if (rc == 0)    /* progress, for .sdafs-stats */
			atomic_fetch_add(&v->stats.copy_bytes_written, n);
		view_io_release(v, &io);
	}
	/* The sources must not have changed while we copied them. */
	if (rc == 0)
		rc = view_check_sources(v, job->file, NULL, err);
	view_io_free(&io);
	free(buf);
	return rc;
}

static int fill_text(int fd, void *arg, char *err)
{
	const char *text = arg;
	int rc = sd_pwrite_full(fd, text, strlen(text), 0);

	return rc < 0 ? sd_err(err, rc, "materialize_dir: writing a record: %s", strerror(-rc)) : 0;
}

int materialize_write(struct view *v, int dirfd, size_t file, char *err)
{
	const struct vfile *f = &v->layout.files[file];
	struct copy_job job = { .view = v, .file = file };
	const struct filler copy = { fill_copy, &job };
	struct copy_names names;
	struct copy_ident placed, unused;
	char *desc, *text = NULL;
	uint64_t key;
	int rc;

	if ((rc = copy_describe(v, file, &desc, &key, err)) < 0)
		return rc;
	if ((rc = copy_names(f, key, &names, err)) < 0)
		goto out;
	/* No record may speak for the copy while it is being replaced. */
	unlinkat(dirfd, names.record, 0);
	if ((rc = write_named(dirfd, key, names.copy, &copy, &placed, err)) < 0)
		goto out;
	if (!(text = copy_record_text(desc, &placed, copy_sum_final(&job.sum)))) {
		rc = sd_err(err, -ENOMEM, "out of memory");
	} else {
		const struct filler record = { fill_text, text };
		rc = write_named(dirfd, key, names.record, &record, &unused, err);
	}
	if (rc < 0) {
		unlinkat(dirfd, names.copy, 0);
		goto out;
	}
	atomic_fetch_add(&v->stats.copies_written, 1);
	if ((rc = materialize_attach(v, dirfd, file, err)) == 0)
		rc = -EIO;      /* err says why it did not pass its own check */
	rc = rc < 0 ? rc : 0;
out:
	free(text);
	free(desc);
	return rc;
}
