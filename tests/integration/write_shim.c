/*
 * write_shim.c — an LD_PRELOAD library that makes the daemon's disk behave
 * badly, for the materialized-copy tests (17-copies-trust.t).
 *
 * SDAFS_SHIM holds a comma-separated list of faults:
 *   short       the first pwrite to each file moves half of what it asks
 *               (POSIX allows it; a full disk or a signal gives one)
 *   enospc      every pwrite to a regular file fails with ENOSPC
 *   notmpfile   open with O_TMPFILE fails with EOPNOTSUPP, as on a
 *               filesystem without it, so the named-temp path runs
 *   zerorandom  getrandom fills with zeros, so "random" names are known
 * SDAFS_SHIM_LOG names a file that gets one line per fault injected, so a
 * test can tell the shim did something.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FILES 4096

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct { dev_t dev; ino_t ino; } seen[MAX_FILES];
static size_t nseen;

static bool fault(const char *name)
{
	const char *list = getenv("SDAFS_SHIM");
	size_t n = strlen(name);

	for (const char *p = list; p && *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
		if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return true;
	}
	return false;
}

static void note(const char *what, int fd)
{
	const char *path = getenv("SDAFS_SHIM_LOG");
	FILE *out = path ? fopen(path, "a") : NULL;

	if (out) {
		fprintf(out, "%s fd=%d\n", what, fd);
		fclose(out);
	}
}

/* The first write to this file (by inode)? */
static bool first_write(int fd)
{
	struct stat st;
	bool first = true;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < nseen && first; i++)
		first = !(seen[i].dev == st.st_dev && seen[i].ino == st.st_ino);
	if (first && nseen < MAX_FILES) {
		seen[nseen].dev = st.st_dev;
		seen[nseen].ino = st.st_ino;
		nseen++;
	}
	pthread_mutex_unlock(&mu);
	return first;
}

static bool regular(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

static ssize_t shim_pwrite(const char *sym, int fd, const void *buf, size_t n, off_t off)
{
	ssize_t (*real)(int, const void *, size_t, off_t) =
		(ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, sym);

	if (fault("enospc") && regular(fd)) {
		note("enospc", fd);
		errno = ENOSPC;
		return -1;
	}
	if (fault("short") && n > 1 && first_write(fd)) {
		note("short", fd);
		n /= 2;
	}
	return real(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return shim_pwrite("pwrite", fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return shim_pwrite("pwrite64", fd, buf, n, off);
}

static int shim_openat(const char *sym, int dirfd, const char *path, int flags, mode_t mode)
{
	int (*real)(int, const char *, int, ...) =
		(int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, sym);

	if (fault("notmpfile") && (flags & O_TMPFILE) == O_TMPFILE) {
		note("notmpfile", dirfd);
		errno = EOPNOTSUPP;
		return -1;
	}
	return real(dirfd, path, flags, mode);
}

/* openat and openat64 (what _FILE_OFFSET_BITS=64 callers reach). */
#define OPENAT_SHIM(fn)                                                      \
	int fn(int dirfd, const char *path, int flags, ...)                  \
	{                                                                    \
		va_list ap;                                                  \
		mode_t mode = 0;                                             \
		va_start(ap, flags);                                         \
		if (flags & (O_CREAT | O_TMPFILE))                           \
			mode = (mode_t)va_arg(ap, unsigned);                 \
		va_end(ap);                                                  \
		return shim_openat(#fn, dirfd, path, flags, mode);           \
	}
OPENAT_SHIM(openat)
OPENAT_SHIM(openat64)

ssize_t getrandom(void *buf, size_t n, unsigned flags)
{
	ssize_t (*real)(void *, size_t, unsigned) =
		(ssize_t (*)(void *, size_t, unsigned))dlsym(RTLD_NEXT, "getrandom");

	if (!fault("zerorandom"))
		return real(buf, n, flags);
	note("zerorandom", -1);
	memset(buf, 0, n);
	return (ssize_t)n;
}
