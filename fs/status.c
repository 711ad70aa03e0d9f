/*
 * status.c — `sdafs status [--wait] [MOUNTPOINT...]`: the sdafs mounts of
 * this machine and the progress of their prefetching (see status.h).
 *
 * The one idea: a status command that needs no channel of its own.  The
 * kernel's mount table says where sdafs is mounted and from which source
 * (the fsname); each mount's .sdafs-stats says the rest.  So status works
 * for every daemon, of any version that writes those, started by any means
 * (sdafs, mount -t sdafs, fstab, systemd), and shows nothing that a user
 * could not read there too.
 */
#include "status.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fs.h"

#define POLL_MS 250

struct mount_row {
	char *mountpoint, *source;
	cJSON *stats;           /* NULL: .sdafs-stats could not be read */
};

struct mount_list {
	struct mount_row *rows;
	size_t n;
};

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

static void list_free(struct mount_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->rows[i].mountpoint);
		free(l->rows[i].source);
		cJSON_Delete(l->rows[i].stats);
	}
	free(l->rows);
	memset(l, 0, sizeof(*l));
}

/* One mountinfo line: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] - TYPE SOURCE SUPER". */
static int add_if_sdafs(struct mount_list *l, char *line)
{
	char *sep = strstr(line, " - "), *mnt, *type, *src, *save;
	struct mount_row *rows;

	if (!sep)
		return 0;
	*sep = '\0';
	strtok_r(line, " ", &save);
	for (int f = 0; f < 3; f++)
		strtok_r(NULL, " ", &save);
	mnt = strtok_r(NULL, " ", &save);
	type = strtok_r(sep + 3, " ", &save);
	src = strtok_r(NULL, " ", &save);
	if (!mnt || !type || !src || strcmp(type, "fuse.sdafs"))
		return 0;
	if (!(rows = realloc(l->rows, (l->n + 1) * sizeof(*rows))))
		return -ENOMEM;
	l->rows = rows;
	unescape(mnt);
	unescape(src);
	rows[l->n] = (struct mount_row){ strdup(mnt), strdup(src), NULL };
	if (!rows[l->n].mountpoint || !rows[l->n].source) {
		l->n++;
		return -ENOMEM;
	}
	l->n++;
	return 0;
}

static int read_mounts(struct mount_list *l)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;

	memset(l, 0, sizeof(*l));
	if (!f)
		return -errno;
	while (rc == 0 && getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		rc = add_if_sdafs(l, line);
	}
	free(line);
	fclose(f);
	return rc;
}

/* The statistics of one mount, read fresh (NULL when unreadable). */
static cJSON *read_stats(const char *mountpoint)
{
	char path[4200], *text = NULL;
	size_t cap = 0;
	FILE *f;
	cJSON *j = NULL;

	snprintf(path, sizeof(path), "%s/" STATS_NAME, mountpoint);
	if (!(f = fopen(path, "r")))
		return NULL;
	if (getdelim(&text, &cap, '\0', f) > 0)
		j = cJSON_Parse(text);
	free(text);
	fclose(f);
	return j;
}

static double number(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *string(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : "?";
}

static const char *human(double bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;

	while (bytes >= 1024 && u < 4) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
	return buf;
}

/* "-" with nothing to prefetch, "2/3 files, 67%", "3/3 done", "done, 1 error". */
static void prefetch_text(const cJSON *stats, char *buf, size_t len)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(stats, "prefetch");
	double total, done;

	if (!cJSON_IsObject(p)) {
		snprintf(buf, len, "-");
		return;
	}
	total = number(p, "bytes_total");
	done = number(p, "bytes_done");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "done")))
		snprintf(buf, len, "done %.0f/%.0f files, %.0f errors", number(p, "files_done"),
			 number(p, "files_total"), number(p, "errors"));
	else
		snprintf(buf, len, "%.0f/%.0f files, %.0f%%", number(p, "files_done"),
			 number(p, "files_total"), total > 0 ? 100 * done / total : 0);
}

static void print_table(const struct mount_list *l)
{
	printf("%-28s %-28s %-6s %-14s %-20s %-6s %s\n", "MOUNTPOINT", "SOURCE", "VIEW",
	       "ADAPTER", "CACHE", "ERRORS", "PREFETCH");
	for (size_t i = 0; i < l->n; i++) {
		const struct mount_row *r = &l->rows[i];
		char cache[64] = "?", a[24], b[24], pre[96] = "?";
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(r->stats, "cache");
		if (r->stats) {
			snprintf(cache, sizeof(cache), "%s/%s", human(number(c, "bytes"), a, sizeof(a)),
				 human(number(c, "max_bytes"), b, sizeof(b)));
			prefetch_text(r->stats, pre, sizeof(pre));
		}
		printf("%-28s %-28s %-6s %-14s %-20s %-6.0f %s\n", r->mountpoint, r->source,
		       r->stats ? string(r->stats, "view") : "?",
		       r->stats ? string(r->stats, "adapter") : "?", cache,
		       r->stats ? number(r->stats, "read_errors") : 0, pre);
	}
}

/* Keep only the mounts named on the command line; -1 after a message
 * when one is not an sdafs mount. */
static int select_mounts(struct mount_list *l, int argc, char **argv)
{
	bool *keep = calloc(l->n + 1, sizeof(*keep));
	int rc = 0;

	if (!keep)
		return -1;
	for (int a = 0; a < argc; a++) {
		char *real = realpath(argv[a], NULL);
		bool found = false;
		for (size_t i = 0; real && i < l->n; i++)
			if (!strcmp(real, l->rows[i].mountpoint))
				found = keep[i] = true;
		if (!found) {
			fprintf(stderr, "sdafs status: %s is not an sdafs mount\n", argv[a]);
			rc = -1;
		}
		free(real);
	}
	size_t n = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (keep[i]) {
			l->rows[n++] = l->rows[i];
			continue;
		}
		free(l->rows[i].mountpoint);
		free(l->rows[i].source);
		cJSON_Delete(l->rows[i].stats);
	}
	l->n = n;
	free(keep);
	return rc;
}

/* --- --wait ----------------------------------------------------------------- */

struct totals {
	double files_total, files_done, bytes_total, bytes_done, rate, errors;
	size_t waiting;         /* mounts whose prefetch has not ended */
	size_t gone;            /* mounts whose statistics cannot be read */
};

static void add_up(const struct mount_list *l, struct totals *t)
{
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < l->n; i++) {
		const cJSON *s = l->rows[i].stats;
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(s, "prefetch");
		if (!s) {
			t->gone++;
			continue;
		}
		if (!cJSON_IsObject(p))
			continue;
		t->files_total += number(p, "files_total");
		t->files_done += number(p, "files_done");
		t->bytes_total += number(p, "bytes_total");
		t->bytes_done += number(p, "bytes_done");
		t->rate += number(p, "bytes_per_second");
		t->errors += number(p, "errors");
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "done")))
			t->waiting++;
	}
}

static void refresh(struct mount_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		cJSON_Delete(l->rows[i].stats);
		l->rows[i].stats = read_stats(l->rows[i].mountpoint);
	}
}

static void show_progress(const struct totals *t, size_t mounts, bool tty, bool final)
{
	char done[24], total[24], rate[24], bar[33];
	double frac = t->bytes_total > 0 ? t->bytes_done / t->bytes_total : 1;
	int fill = (int)(frac * 30 + 0.5);

	human(t->bytes_done, done, sizeof(done));
	human(t->bytes_total, total, sizeof(total));
	human(t->rate, rate, sizeof(rate));
	if (tty) {
		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '-';
		bar[30] = '\0';
		printf("\r\033[K[%s] %3.0f%%  %s / %s  %s/s  files %.0f/%.0f  %zu mount%s%s",
		       bar, frac * 100, done, total, rate, t->files_done, t->files_total, mounts,
		       mounts == 1 ? "" : "s", final ? "\n" : "");
	} else {
		printf("prefetch: %.0f/%.0f files, %s / %s (%.0f%%), %s/s, %.0f errors%s\n",
		       t->files_done, t->files_total, done, total, frac * 100, rate, t->errors,
		       final ? ", done" : "");
	}
	fflush(stdout);
}

/* Until every prefetch has ended: 0 when all ended without error. */
static int wait_for_prefetch(struct mount_list *l)
{
	bool tty = isatty(STDOUT_FILENO);
	struct totals t, last = { -1, -1, -1, -1, 0, -1, 0, 0 };
	struct timespec pause = { 0, POLL_MS * 1000000L };

	for (;;) {
		refresh(l);
		add_up(l, &t);
		bool final = t.waiting == 0 || t.gone;
		/* plain lines only when something moved, so a log stays short */
		if (tty || final || t.files_done != last.files_done ||
		    (int)(10 * t.bytes_done / (t.bytes_total + 1)) !=
		    (int)(10 * last.bytes_done / (last.bytes_total + 1)))
			show_progress(&t, l->n, tty, final);
		last = t;
		if (t.gone) {
			fprintf(stderr, "sdafs status: a mount went away while waiting (its statistics cannot be read)\n");
			return 1;
		}
		if (final)
			break;
		nanosleep(&pause, NULL);
	}
	if (t.errors)
		fprintf(stderr, "sdafs status: %.0f file%s could not be copied (see the daemon's log)\n",
			t.errors, t.errors == 1 ? "" : "s");
	return t.errors ? 1 : 0;
}

static void status_usage(FILE *out)
{
	fprintf(out,
"usage: sdafs status [--wait] [MOUNTPOINT...]\n"
"List the sdafs mounts (all, or those named): mount point, source, view,\n"
"adapter, cache use, read errors and prefetch progress, from /proc/self/mountinfo\n"
"and each mount's " STATS_NAME ".\n"
"  -w, --wait  then show prefetch progress (a bar on a terminal, lines\n"
"              otherwise) until every prefetch has ended; exit 0 when all ended\n"
"              without error\n"
"  -h, --help  this text\n"
"Exit status: 0 fine, 1 a copy failed, a mount went away or MOUNTPOINT is not\n"
"an sdafs mount, 2 bad arguments.\n");
}

int status_main(int argc, char **argv)
{
	struct mount_list l;
	bool wait = false;
	int first = 1, rc = 0;

	for (; first < argc && argv[first][0] == '-'; first++) {
		if (!strcmp(argv[first], "--wait") || !strcmp(argv[first], "-w"))
			wait = true;
		else if (!strcmp(argv[first], "--help") || !strcmp(argv[first], "-h")) {
			status_usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "sdafs status: unknown option '%s' (sdafs status --help)\n",
				argv[first]);
			return 2;
		}
	}
	if (read_mounts(&l) < 0) {
		fprintf(stderr, "sdafs status: cannot read /proc/self/mountinfo: %s\n", strerror(errno));
		return 1;
	}
	if (first < argc && select_mounts(&l, argc - first, argv + first) < 0)
		rc = 1;
	refresh(&l);
	if (l.n == 0 && first == argc)
		printf("no sdafs mounts\n");
	else if (l.n)
		print_table(&l);
	if (wait && l.n && wait_for_prefetch(&l))
		rc = 1;
	list_free(&l);
	return rc;
}
