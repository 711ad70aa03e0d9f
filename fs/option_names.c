/*
 * option_names.c — which -o names sdafs takes, and what to say about one it
 * does not (see option_names.h).
 *
 * libfuse rejects an option it does not know with a bare "unknown
 * option(s)", after the source has been scanned.  So every -o name is
 * judged while the command line is parsed: sdafs's own (from the same
 * table the parser uses, so the list cannot drift), a short list of mount
 * options libfuse takes, and anything else gets the list and the nearest
 * name by edit distance, as git does for a mistyped command.
 */
#include "option_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Mount options libfuse 3 itself takes (fuse_session_new), passed on. */
static const char *const libfuse_names[] = {
	"allow_root", "auto_unmount", "max_read=", "default_permissions", "ro", "rw",
	"atime", "noatime", "suid", "nosuid", "dev", "nodev", "exec", "noexec",
	"async", "sync", "dirsync", "context=", "fscontext=", "defcontext=", "rootcontext=",
	NULL
};

/* The length of an option's name: up to '=' (or the end). */
static size_t name_length(const char *s)
{
	return strcspn(s, "=");
}

bool options_for_libfuse(const char *arg)
{
	size_t n = name_length(arg);

	for (const char *const *p = libfuse_names; *p; p++) {
		size_t m = name_length(*p);
		bool takes_value = (*p)[m] == '=';
		if (m == n && !strncmp(*p, arg, n) && takes_value == (arg[n] == '='))
			return true;
	}
	return false;
}

/* Edit distance between a[0..n) and b[0..m), with a small bound. */
static size_t edit_distance(const char *a, size_t n, const char *b, size_t m)
{
	size_t row[64], prev, tmp;

	if (n >= 64 || m >= 64)
		return 64;
	for (size_t j = 0; j <= m; j++)
		row[j] = j;
	for (size_t i = 1; i <= n; i++) {
		prev = row[0];
		row[0] = i;
		for (size_t j = 1; j <= m; j++) {
			size_t best = prev + (a[i - 1] != b[j - 1]);
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			tmp = row[j];
			row[j] = best;
			prev = tmp;
		}
	}
	return row[m];
}

/* A -o name of sdafs's table ("view=%s" -> "view"); NULL for flags. */
static const char *table_name(const struct fuse_opt *o, size_t *len)
{
	if (!o->templ || o->templ[0] == '-')
		return NULL;
	*len = name_length(o->templ);
	return o->templ;
}

void options_unknown(const struct fuse_opt *table, const char *arg)
{
	const char *best = NULL;
	size_t best_len = 0, best_d = (size_t)-1, n = name_length(arg), len;

	if (arg[0] == '-') {
		fprintf(stderr, "sdafs: unknown argument '%s' (sdafs --help lists them)\n", arg);
		return;
	}
	for (const struct fuse_opt *o = table; o->templ; o++) {
		const char *name = table_name(o, &len);
		size_t d = name ? edit_distance(arg, n, name, len) : (size_t)-1;
		if (d < best_d) {
			best_d = d;
			best = name;
			best_len = len;
		}
	}
	fprintf(stderr, "sdafs: unknown option '%s'", arg);
	/* close enough to be a typo: at most a third of the name wrong */
	if (best && best_d <= (best_len > 6 ? best_len / 3 : 2) && best_d < n)
		fprintf(stderr, "; did you mean %.*s?", (int)best_len, best);
	fprintf(stderr, "\nsdafs: options are");
	const char *sep = " ";
	for (const struct fuse_opt *o = table; o->templ; o++) {
		const char *name = table_name(o, &len);
		if (name) {
			fprintf(stderr, "%s%.*s", sep, (int)len, name);
			sep = ", ";
		}
	}
	fprintf(stderr, "\n");
}

char *options_given(int argc, char **argv)
{
	size_t cap = 1, used = 0;
	char *out;

	for (int i = 1; i < argc; i++)
		cap += strlen(argv[i]) + 1;
	if (!(out = malloc(cap)))
		return NULL;
	out[0] = '\0';
	for (int i = 1; i < argc; i++) {
		const char *list = NULL;
		if (!strcmp(argv[i], "-o") && i + 1 < argc)
			list = argv[++i];
		else if (!strncmp(argv[i], "-o", 2) && argv[i][2])
			list = argv[i] + 2;
		if (list)
			used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? "," : "", list);
	}
	return out;
}
