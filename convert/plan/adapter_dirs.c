/*
 * adapter_dirs.c — adapter tables installed as files: found by name for
 * -o adapter=NAME, and named when a checkpoint's family is not built in
 * (see adapter.h).
 *
 * The one idea: an installed table is a file NAME.json in one of the
 * directories the caller gives (the FUSE layer knows where sdafs is
 * installed; the planner does not), read by the same loader as a built-in
 * or -o adapter_file=.  Built-ins come first, so installing a table can
 * never change what an existing mount means.
 */
#include "adapter.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

/* A name that can only mean a file in the directory: no '/', no dot first. */
static bool plain_table_name(const char *name)
{
	return *name && name[0] != '.' && strlen(name) < 128 && !strchr(name, '/');
}

int adapter_find_installed(const char *const *dirs, const char *name, char *path,
			   size_t len)
{
	if (!dirs || !plain_table_name(name))
		return 0;
	for (const char *const *d = dirs; *d; d++) {
		snprintf(path, len, "%s/%s.json", *d, name);
		if (access(path, R_OK) == 0)
			return 1;
	}
	return 0;
}

void adapter_each_installed(const char *const *dirs, adapter_visit fn, void *arg)
{
	for (const char *const *d = dirs; d && *d; d++) {
		DIR *dir = opendir(*d);
		struct dirent *e;
		if (!dir)
			continue;
		while ((e = readdir(dir))) {
			char path[4096], err[SD_ERRLEN];
			struct adapter *a;
			size_t n = strlen(e->d_name);
			if (n <= 5 || strcmp(e->d_name + n - 5, ".json") || e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", *d, e->d_name);
			if (adapter_load_file(path, &a, err) < 0)
				continue;       /* not a table: adapter= NAME says so */
			bool stop = fn(arg, path, a);
			adapter_free(a);
			if (stop)
				break;
		}
		closedir(dir);
	}
}

struct for_source {
	const struct source *s;
	char *name, *path;
	size_t len, plen;
	bool found;
};

static bool note_match(void *arg, const char *path, const struct adapter *a)
{
	struct for_source *f = arg;

	if (f->found || !adapter_matches_config(a, f->s))
		return false;
	snprintf(f->name, f->len, "%s", adapter_name(a));
	snprintf(f->path, f->plen, "%s", path);
	return f->found = true;
}

bool adapter_installed_for(const char *const *dirs, const struct source *s,
			   char *name, size_t len, char *path, size_t plen)
{
	struct for_source f = { s, name, path, len, plen, false };

	adapter_each_installed(dirs, note_match, &f);
	return f.found;
}

struct names {
	char *buf;
	size_t len, used;
};

static bool add_name(void *arg, const char *path, const struct adapter *a)
{
	struct names *n = arg;

	(void)path;
	if (n->used < n->len)
		n->used += (size_t)snprintf(n->buf + n->used, n->len - n->used, "%s%s",
					    n->used ? ", " : "", adapter_name(a));
	return false;
}

void adapter_installed_names(const char *const *dirs, char *buf, size_t len)
{
	struct names n = { buf, len, 0 };

	buf[0] = '\0';
	adapter_each_installed(dirs, add_name, &n);
}
