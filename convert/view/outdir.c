/* outdir.c — a directory that appears whole or not at all (see outdir.h). */
#include "outdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

#define TMP_TAG ".sdafs-tmp-"
#define TMP_RANDOM 6            /* mkdtemp's XXXXXX */
#define MAX_DEPTH 128

DIR *outdir_list(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);

	if (!d && fd >= 0) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return d;
}

static int remove_at(int parent, const char *name, int depth, char *err)
{
	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return sd_err(err, -errno, "cannot remove %s: %s", name, strerror(errno));
	if (depth > MAX_DEPTH)
		return sd_err(err, -ELOOP, "cannot remove %s: more than %d directories deep",
			      name, MAX_DEPTH);
	DIR *d = outdir_list(parent, name);
	int rc = 0;

	if (!d)
		return sd_err(err, -errno, "cannot remove %s: %s", name, strerror(errno));
	/* Entries removed while reading may shift the listing: read again
	 * until a pass finds nothing left. */
	for (bool again = true; again && rc == 0;) {
		struct dirent *e;
		again = false;
		rewinddir(d);
		while (rc == 0 && (e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			rc = remove_at(dirfd(d), e->d_name, depth + 1, err);
			again = true;
		}
	}
	closedir(d);
	if (rc == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = sd_err(err, -errno, "cannot remove %s: %s", name, strerror(errno));
	return rc;
}

int outdir_remove_tree(int dirfd, const char *name, char *err)
{
	return remove_at(dirfd, name, 0, err);
}

/* name is .DST.sdafs-tmp-XXXXXX for this destination. */
static bool is_our_tmp(const struct outdir *o, const char *name)
{
	size_t n = strlen(o->name);

	return name[0] == '.' && !strncmp(name + 1, o->name, n) &&
	       !strncmp(name + 1 + n, TMP_TAG, strlen(TMP_TAG)) &&
	       strlen(name + 1 + n + strlen(TMP_TAG)) == TMP_RANDOM;
}

/* A leftover nobody holds is removed; one held belongs to a run going on. */
static int clean_leftover(struct outdir *o, const char *name, char *err)
{
	int fd = openat(o->parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	int rc = 0;

	if (fd < 0)
		return 0;       /* gone, or not a directory: not ours */
	if (fstat(fd, &st) == 0 && st.st_uid == geteuid()) {
		if (flock(fd, LOCK_EX | LOCK_NB) < 0)
			rc = sd_err(err, -EBUSY, "%s: another sdafs convert is writing it (its temporary directory %s is in use)",
				    o->dst, name);
		else
			rc = outdir_remove_tree(o->parent_fd, name, err);
	}
	close(fd);
	return rc;
}

static int clean_leftovers(struct outdir *o, char *err)
{
	DIR *d = outdir_list(o->parent_fd, ".");
	struct dirent *e;
	int rc = 0;

	if (!d)
		return sd_err(err, -errno, "%s: cannot list its parent directory: %s",
			      o->dst, strerror(errno));
	while (rc == 0 && (e = readdir(d)))
		if (is_our_tmp(o, e->d_name))
			rc = clean_leftover(o, e->d_name, err);
	closedir(d);
	return rc;
}

/* The destination: missing, an empty directory, or (replace) a directory. */
static int check_dst(struct outdir *o, char *err)
{
	struct stat st;

	if (fstatat(o->parent_fd, o->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : sd_err(err, -errno, "%s: %s", o->dst, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return sd_err(err, -EEXIST, "%s exists and is not a directory", o->dst);
	DIR *d = outdir_list(o->parent_fd, o->name);
	struct dirent *e;
	bool empty = true;

	if (!d)
		return sd_err(err, -errno, "%s: %s", o->dst, strerror(errno));
	while (empty && (e = readdir(d)))
		empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
	closedir(d);
	if (!empty && !o->replace)
		return sd_err(err, -ENOTEMPTY, "%s exists and is not empty (--force replaces it)",
			      o->dst);
	return 0;
}

/* Split dst into its parent (opened) and its name. */
static int split_dst(struct outdir *o, const char *dst, char *err)
{
	char *copy = strdup(dst);
	size_t n = copy ? strlen(copy) : 0;

	if (!copy || !(o->dst = strdup(dst))) {
		free(copy);
		return sd_err(err, -ENOMEM, "out of memory");
	}
	while (n > 1 && copy[n - 1] == '/')
		copy[--n] = '\0';
	char *slash = strrchr(copy, '/');
	const char *name = slash ? slash + 1 : copy;
	const char *parent = !slash ? "." : slash == copy ? "/" : (*slash = '\0', copy);

	if (!*name || !strcmp(name, ".") || !strcmp(name, "..")) {
		free(copy);
		return sd_err(err, -EINVAL, "%s: give the name of a directory to create", dst);
	}
	o->name = strdup(name);
	o->parent = strdup(parent);
	o->parent_fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;
	if (!o->name || !o->parent)
		rc = sd_err(err, -ENOMEM, "out of memory");
	else if (o->parent_fd < 0)
		rc = sd_err(err, -errno, "%s: its directory %s: %s", dst, parent, strerror(errno));
	free(copy);
	return rc;
}

/* A new empty directory .NAME.sdafs-tmp-XXXXXX beside the destination,
 * its name (malloc'ed) or NULL with errno set. */
static char *make_tmp_name(const struct outdir *o)
{
	char tmpl[4096];

	if ((size_t)snprintf(tmpl, sizeof(tmpl), "%s/.%s" TMP_TAG "XXXXXX", o->parent,
			     o->name) >= sizeof(tmpl)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	return mkdtemp(tmpl) ? strdup(strrchr(tmpl, '/') + 1) : NULL;
}

/* The temporary directory, locked; made again if a cleaner removed it
 * before the lock was taken. */
static int make_tmp(struct outdir *o, char *err)
{
	mode_t mask = umask(0);

	umask(mask);
	for (int tries = 0; tries < 100; tries++) {
		struct stat a, b;
		free(o->tmp);
		if (!(o->tmp = make_tmp_name(o)))
			return sd_err(err, -errno, "%s: cannot make a temporary directory beside it: %s",
				      o->dst, strerror(errno));
		o->fd = openat(o->parent_fd, o->tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (o->fd < 0)
			continue;
		if (flock(o->fd, LOCK_EX) == 0 && fstat(o->fd, &a) == 0 &&
		    fstatat(o->parent_fd, o->tmp, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		    a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
			fchmod(o->fd, 0777 & ~mask);    /* mkdtemp makes it 0700 */
			return 0;
		}
		close(o->fd);
		o->fd = -1;
	}
	return sd_err(err, -EAGAIN, "%s: cannot keep a temporary directory beside it", o->dst);
}

int outdir_begin(struct outdir *o, const char *dst, bool replace, char *err)
{
	int rc;

	memset(o, 0, sizeof(*o));
	o->parent_fd = o->fd = -1;
	o->replace = replace;
	if ((rc = split_dst(o, dst, err)) < 0 || (rc = check_dst(o, err)) < 0 ||
	    (rc = clean_leftovers(o, err)) < 0 || (rc = make_tmp(o, err)) < 0) {
		outdir_abort(o);
		return rc;
	}
	return 0;
}

/* Put the finished directory in place; *old gets the name the replaced
 * destination now has (to remove), or stays NULL. */
static int put_in_place(struct outdir *o, char **old, char *err)
{
	struct stat st;

	*old = NULL;
	if (fstatat(o->parent_fd, o->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && o->replace) {
		if (renameat2(o->parent_fd, o->tmp, o->parent_fd, o->name, RENAME_EXCHANGE) == 0) {
			*old = o->tmp;  /* the old destination, under the temporary name */
			o->tmp = NULL;
			return 0;
		}
		if (errno != EINVAL && errno != ENOSYS && errno != ENOENT)
			return sd_err(err, -errno, "%s: cannot put it in place: %s", o->dst,
				      strerror(errno));
		/* no atomic swap here: move the old one aside (under a name
		 * the next run would clean) first */
		char *aside = make_tmp_name(o);
		if (aside && renameat(o->parent_fd, o->name, o->parent_fd, aside) == 0)
			*old = aside;
		else
			free(aside);
	}
	if (renameat(o->parent_fd, o->tmp, o->parent_fd, o->name) < 0)
		return sd_err(err, -errno, "%s: cannot put it in place: %s%s", o->dst, strerror(errno),
			      errno == ENOTEMPTY || errno == EEXIST ?
			      " (it was filled while converting; --force replaces it)" : "");
	free(o->tmp);
	o->tmp = NULL;
	return 0;
}

int outdir_commit(struct outdir *o, char *err)
{
	char *old = NULL;
	int rc = 0;

	if (fsync(o->fd) < 0)
		return sd_err(err, -errno, "%s: syncing: %s", o->dst, strerror(errno));
	if ((rc = put_in_place(o, &old, err)) < 0)
		return rc;
	if (fsync(o->parent_fd) < 0)
		rc = sd_err(err, -errno, "%s: syncing its directory: %s", o->dst, strerror(errno));
	if (rc == 0 && old && (rc = outdir_remove_tree(o->parent_fd, old, err)) < 0)
		sd_err_prefix(err, "%s is in place, but the one it replaced (now %s) is not removed",
			      o->dst, old);
	free(old);
	outdir_abort(o);        /* nothing left to remove: closes */
	return rc;
}

void outdir_abort(struct outdir *o)
{
	char err[SD_ERRLEN];

	if (o->tmp && o->parent_fd >= 0)
		outdir_remove_tree(o->parent_fd, o->tmp, err);
	if (o->fd >= 0)
		close(o->fd);
	if (o->parent_fd >= 0)
		close(o->parent_fd);
	free(o->tmp);
	free(o->name);
	free(o->parent);
	free(o->dst);
	memset(o, 0, sizeof(*o));
	o->parent_fd = o->fd = -1;
}
