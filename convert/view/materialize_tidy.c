/*
 * materialize_tidy.c — housekeeping of a materialize_dir (see materialize.h).
 *
 * Only files of ours are touched: regular files owned by this user and
 * named as materialize.h says.  A record is the only thing that makes a
 * copy usable, so it is removed first and written last; what is left
 * without one (a copy whose record was never written, a record whose copy
 * is gone) is dead.  So is a pair whose record names a source file that no
 * longer has the identity it had: that copy can never be served again,
 * since no one can set a file's ctime back.  Temporary files are removed
 * once no writer holds their lock (a dead writer's lock goes with it,
 * whatever PID namespace it ran in).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "copy_record.h"
#include "err.h"
#include "grow.h"
#include "io.h"
#include "materialize.h"

/* A copy without a record, or a temporary file that cannot be locked, last
 * written this long ago is dead: a copy is named only once it is written
 * and synced, and its record follows within milliseconds. */
#define ORPHAN_SECONDS 600

enum entry_kind { E_COPY, E_RECORD, E_TEMP };

struct entry {
	char *name;
	uint64_t key;
	enum entry_kind kind;
	struct stat st;
	bool paired;            /* a copy with a record that speaks for it */
};

struct entries {
	struct entry *e;
	size_t n, cap;
};

static bool hex16(const char *s, uint64_t *v)
{
	char *end;

	for (int i = 0; i < 16; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	*v = strtoull(s, &end, 16);
	return end == s + 16;
}

/* Which of our names name is, if any. */
static bool classify(const char *name, uint64_t *key, enum entry_kind *kind)
{
	uint64_t r;

	if (strlen(name) < 17 || !hex16(name, key))
		return false;
	if (name[16] == '.' && name[17])
		*kind = E_COPY;
	else if (!strcmp(name + 16, "-record"))
		*kind = E_RECORD;
	else if (!strncmp(name + 16, "-tmp.", 5) && strlen(name) == 37 && hex16(name + 21, &r))
		*kind = E_TEMP;
	else
		return false;
	return true;
}

static int list_ours(int dirfd, struct entries *l, char *err)
{
	int fd = dup(dirfd);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *de;
	int rc = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return sd_err(err, -errno, "materialize_dir: cannot list it: %s", strerror(errno));
	}
	rewinddir(d);
	while (rc == 0 && (de = readdir(d))) {
		struct entry e = { 0 };
		if (!classify(de->d_name, &e.key, &e.kind) ||
		    fstatat(dirfd, de->d_name, &e.st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(e.st.st_mode) || e.st.st_uid != geteuid())
			continue;
		if ((rc = sd_grow(&l->e, &l->cap, l->n + 1, sizeof(*l->e), err)) < 0)
			break;
		if (!(e.name = strdup(de->d_name)))
			rc = sd_err(err, -ENOMEM, "out of memory");
		else
			l->e[l->n++] = e;
	}
	closedir(d);
	return rc;
}

static bool older_than(const struct timespec *t, long seconds)
{
	return time(NULL) - t->tv_sec > seconds;
}

static void remove_entry(int dirfd, struct entry *e)
{
	unlinkat(dirfd, e->name, 0);
	e->kind = E_TEMP;       /* so nothing else counts it */
	e->paired = true;
}

/* A temporary file no living writer holds. */
static bool temp_is_stale(int dirfd, const struct entry *e)
{
	int fd = openat(dirfd, e->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	bool stale;

	if (fd < 0)
		return false;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		stale = true;
	else
		stale = errno != EWOULDBLOCK && older_than(&e->st.st_mtim, ORPHAN_SECONDS);
	close(fd);
	return stale;
}

static struct entry *find_copy(struct entries *l, uint64_t key)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->e[i].kind == E_COPY && l->e[i].key == key)
			return &l->e[i];
	return NULL;
}

/* copy_record_sources' callback: 1 when the source is gone or changed. */
static int source_gone(void *arg, const char *path, const struct copy_ident *was)
{
	struct stat st;
	struct copy_ident now;

	(void)arg;
	if (stat(path, &st) < 0)
		return errno == ENOENT || errno == ENOTDIR;     /* else: cannot tell, keep it */
	copy_ident_of(&st, &now);
	return !copy_ident_equal(&now, was);
}

/* Is this record's copy one that can still be served?  Reads it with the
 * same care as an attach (no links followed, size bounded). */
static bool record_is_live(int dirfd, const struct entry *rec, const struct entry *copy)
{
	struct copy_ident says, is;
	uint64_t sum;
	size_t len = (size_t)rec->st.st_size;
	char *text = len <= COPY_RECORD_MAX ? malloc(len + 1) : NULL;
	int fd = text ? openat(dirfd, rec->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) : -1;
	bool live = fd >= 0 && sd_pread_full(fd, text, len, 0) == (ssize_t)len &&
		    copy_record_parse(text, len, NULL, &says, &sum) == 0;

	if (live) {
		copy_ident_of(&copy->st, &is);
		live = copy_ident_equal(&is, &says) &&
		       copy_record_sources(text, len, source_gone, NULL) == 0;
	}
	if (fd >= 0)
		close(fd);
	free(text);
	return live;
}

/* Pair each record with its copy; remove what is dead. */
static void remove_dead(int dirfd, struct entries *l, struct tidy_report *r)
{
	for (size_t i = 0; i < l->n; i++) {
		struct entry *e = &l->e[i], *copy = NULL;
		if (e->kind == E_TEMP && !e->paired && temp_is_stale(dirfd, e)) {
			remove_entry(dirfd, e);
			r->temps++;
		} else if (e->kind == E_RECORD && !(copy = find_copy(l, e->key))) {
			remove_entry(dirfd, e);
			r->orphans++;
		} else if (e->kind == E_RECORD && !record_is_live(dirfd, e, copy)) {
			remove_entry(dirfd, e);
			remove_entry(dirfd, copy);
			r->dead++;
		} else if (e->kind == E_RECORD) {
			copy->paired = true;
		}
	}
	for (size_t i = 0; i < l->n; i++)
		if (l->e[i].kind == E_COPY && !l->e[i].paired &&
		    older_than(&l->e[i].st.st_mtim, ORPHAN_SECONDS)) {
			remove_entry(dirfd, &l->e[i]);
			r->orphans++;
		}
}

/* The keys of the copies v serves files from (malloc'ed, *n of them). */
static uint64_t *keys_in_use(const struct view *v, size_t *n, char *err)
{
	uint64_t *keys = calloc(v->layout.n + 1, sizeof(*keys));
	char *desc;

	*n = 0;
	if (!keys) {
		sd_err(err, -ENOMEM, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < v->layout.n; i++)
		if (atomic_load(&v->layout.files[i].mat_fd) >= 0 &&
		    copy_describe(v, i, &desc, &keys[*n], err) == 0) {
			free(desc);
			++*n;
		}
	return keys;
}

static bool key_in(const uint64_t *keys, size_t n, uint64_t key)
{
	for (size_t i = 0; i < n; i++)
		if (keys[i] == key)
			return true;
	return false;
}

static int by_last_use(const void *a, const void *b)
{
	const struct entry *x = *(const struct entry *const *)a, *y = *(const struct entry *const *)b;

	if (x->st.st_mtim.tv_sec != y->st.st_mtim.tv_sec)
		return x->st.st_mtim.tv_sec < y->st.st_mtim.tv_sec ? -1 : 1;
	return (x->st.st_mtim.tv_nsec > y->st.st_mtim.tv_nsec) - (x->st.st_mtim.tv_nsec < y->st.st_mtim.tv_nsec);
}

/* Evict the least recently attached pairs (a record's mtime is touched at
 * each attach) until the copies left and need bytes fit in max. */
static int evict(struct view *v, int dirfd, struct entries *l, uint64_t max, uint64_t need,
		 struct tidy_report *r, char *err)
{
	struct entry **recs = calloc(l->n + 1, sizeof(*recs));
	size_t n = 0, nused;
	uint64_t total = 0, *used = keys_in_use(v, &nused, err);

	if (!recs || !used) {
		free(recs);
		free(used);
		return sd_err(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < l->n; i++)
		if (l->e[i].kind == E_RECORD) {
			recs[n++] = &l->e[i];
			total += (uint64_t)find_copy(l, l->e[i].key)->st.st_size;
		}
	qsort(recs, n, sizeof(*recs), by_last_use);
	for (size_t i = 0; i < n && total + need > max; i++) {
		struct entry *copy = find_copy(l, recs[i]->key);
		uint64_t size = (uint64_t)copy->st.st_size;
		if (key_in(used, nused, recs[i]->key))
			continue;
		remove_entry(dirfd, recs[i]);
		remove_entry(dirfd, copy);
		total -= size;
		r->evicted++;
		r->evicted_bytes += size;
	}
	free(recs);
	free(used);
	if (total + need > max)
		return sd_err(err, -ENOSPC,
			      "materialize_max=%" PRIu64 ": the copies this mount uses (%" PRIu64 " bytes) and a new one of %" PRIu64 " bytes do not fit",
			      max, total, need);
	return 0;
}

int materialize_tidy(struct view *v, int dirfd, uint64_t max_bytes, uint64_t need,
		     struct tidy_report *r, char *err)
{
	struct entries l = { 0 };
	int rc;

	memset(r, 0, sizeof(*r));
	if ((rc = list_ours(dirfd, &l, err)) == 0) {
		remove_dead(dirfd, &l, r);
		if (max_bytes)
			rc = evict(v, dirfd, &l, max_bytes, need, r, err);
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.e[i].name);
	free(l.e);
	return rc;
}
