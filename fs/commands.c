/*
 * commands.c — sdafs convert and sdafs verify (see commands.h).
 *
 * Both open the view exactly as a mount does: the same -o options, parsed
 * and checked by options.c, the same checks of the source (view_open), the
 * same backend choice; then they hand its bytes, cut into work units, to
 * the engine in convert/view (export.c writes them, verify.c compares
 * them).  Nothing here needs /dev/fuse: of libfuse only the option parser
 * is used.
 */
#include "commands.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "export.h"
#include "mount.h"
#include "options.h"
#include "outdir.h"
#include "progress.h"
#include "ranks.h"
#include "verify.h"

#define MAX_RANKS 4096
#define SHOWN_DIFFS 20          /* differences printed without --json */

enum { VERIFY_EQUAL, VERIFY_DIFFERENT, VERIFY_ERROR };

struct tool {
	struct cmdline c;       /* the mount's options */
	unsigned jobs;
	int force, quiet, all_ranks, json;
	bool convert;           /* else verify */
	struct view v;
	bool opened;
	struct plan *plans;     /* --all-ranks: ranks 1.. (rank 0 is the view's) */
	struct layout *layouts;
	struct units_tree *trees;
	size_t ntrees;
	uint64_t budget;
};

static void usage(FILE *out, bool convert)
{
	if (convert)
		fprintf(out,
"usage: sdafs convert [-o OPTIONS] [-j N] [--force] [--all-ranks] [--quiet] SRC DST\n"
"\n"
"Write the files a mount of SRC with the same options shows into the new\n"
"directory DST, byte for byte, without mounting anything.  DST appears whole\n"
"or not at all: it is written beside it, synced, then renamed into place.\n"
"\n"
"  -o OPTIONS     the mount's: view, adapter, adapter_file, dtype, peft,\n"
"                 ep_rank, ep_size, backend, cpu, and cache_size (memory for\n"
"                 the workers' buffers; default 256M)\n"
"  -j N           worker threads (default: the number of CPUs)\n"
"  --force        replace DST when it exists and is not empty (the old one is\n"
"                 removed only once the new one is complete)\n"
"  --all-ranks    with -o ep_size=N: DST/rank-00000 ... each rank's view, the\n"
"                 source read once\n"
"  --quiet        no progress\n"
"\n"
"Exit status 0 when every file is written and synced, else 1.  See sdafs(8).\n");
	else
		fprintf(out,
"usage: sdafs verify [-o OPTIONS] [-j N] [--json] [--quiet] SRC DIR\n"
"\n"
"Compare DIR with the view a mount of SRC with the same options shows: every\n"
"file there and no other, the index, every safetensors header, every tensor's\n"
"bytes, every other file.  Prints the first differences by file, tensor and\n"
"byte offset.\n"
"\n"
"  -o OPTIONS     the mount's, as for sdafs convert\n"
"  -j N           worker threads (default: the number of CPUs)\n"
"  --json         the report as JSON on stdout\n"
"  --quiet        no progress\n"
"\n"
"Exit status 0 when DIR equals the view, 1 when it differs, 2 on an error\n"
"(a bad SRC, a DIR that cannot be read).  See sdafs(8).\n");
}

#define TOOL_OPT(t, f, v) { t, offsetof(struct tool, f), v }
static const struct fuse_opt tool_opts[] = {
	TOOL_OPT("-j %u", jobs, 0), TOOL_OPT("--jobs=%u", jobs, 0),
	TOOL_OPT("--force", force, 1), TOOL_OPT("--quiet", quiet, 1), TOOL_OPT("-q", quiet, 1),
	TOOL_OPT("--all-ranks", all_ranks, 1),
	FUSE_OPT_END
};

static int keep(void *data, const char *arg, int key, struct fuse_args *out)
{
	(void)data;
	(void)arg;
	(void)key;
	(void)out;
	return 1;       /* for options.c */
}

static unsigned cpus(void)
{
	cpu_set_t set;
	long n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/* An option of mounts only, set on the command line, or NULL. */
static const char *mount_only(const struct tool *t)
{
	const struct cmdline *c = &t->c;

	return c->mpi ? "-o mpi" : c->materialize_dir ? "-o materialize_dir" :
	       c->prefetch ? "-o prefetch" : c->direct_io ? "-o direct_io" :
	       c->max_threads ? "-o max_threads" : c->allow_other ? "-o allow_other" :
	       c->debug ? "-d" : c->foreground ? "-f" :
	       c->inspect ? "--inspect" : c->list_adapters ? "--list-adapters" :
	       c->version ? "--version" : NULL;
}

/* The other command's options given to this one, or NULL. */
static const char *not_ours(const struct tool *t)
{
	if (t->convert)
		return t->c.json ? "--json" : NULL;
	return t->force ? "--force" : t->all_ranks ? "--all-ranks" : NULL;
}

/* Parse argv: 0, 1 for --help (done), -1 after a message.  Our own options
 * first; what is left goes to the mount's parser (options.c), and what
 * that leaves (options for libfuse) is not ours. */
static int parse(struct tool *t, int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	const char *verb = argv[0], *bad;
	int rc = -1;

	if (fuse_opt_parse(&args, t, tool_opts, keep) < 0 || options_parse(&args, &t->c) < 0)
		goto out;
	t->json = t->c.json;
	if (t->c.help) {
		usage(stdout, t->convert);
		rc = 1;
	} else if ((bad = mount_only(t))) {
		fprintf(stderr, "sdafs %s: %s is an option of mounts, not of sdafs %s\n", verb, bad, verb);
	} else if ((bad = not_ours(t))) {
		fprintf(stderr, "sdafs %s: %s is an option of sdafs %s\n", verb, bad,
			t->convert ? "verify" : "convert");
	} else if (args.argc > 1) {     /* "-o x" keeps x in the next argument */
		fprintf(stderr, "sdafs %s: unknown option '%s'\n", verb,
			!strcmp(args.argv[1], "-o") && args.argc > 2 ? args.argv[2] : args.argv[1]);
	} else if (!t->c.src || !t->c.mountpoint) {
		usage(stderr, t->convert);
	} else {
		rc = 0;
	}
out:
	fuse_opt_free_args(&args);
	return rc;
}

/* --- the view, for one rank or all ----------------------------------------- */

static int check_all_ranks(struct tool *t)
{
	long n;

	if (!t->c.ep_size) {
		fprintf(stderr, "sdafs convert: --all-ranks needs -o ep_size=N (how many ranks to write)\n");
		return -1;
	}
	if (t->c.ep_rank) {
		fprintf(stderr, "sdafs convert: --all-ranks writes every rank: give ep_size=N without ep_rank\n");
		return -1;
	}
	n = strtol(t->c.ep_size, NULL, 10);
	if (n > MAX_RANKS) {
		fprintf(stderr, "sdafs convert: --all-ranks with ep_size=%s: at most %d ranks\n",
			t->c.ep_size, MAX_RANKS);
		return -1;
	}
	return (t->c.ep_rank = strdup("0")) ? 0 : -1;     /* rank 0 is the view */
}

/* Ranks 1.. planned over rank 0's source: their own experts, nothing rescanned. */
static int plan_ranks(struct tool *t, struct view_opts *vo)
{
	char err[SD_ERRLEN];

	for (size_t r = 1; r < t->ntrees; r++) {
		vo->ep_rank = (long)r;
		if (plan_build(&t->v.src, vo, &t->plans[r], err) < 0 ||
		    layout_build(&t->plans[r], &t->v.src, &t->layouts[r], err) < 0) {
			fprintf(stderr, "sdafs: rank %zu: %s\n", r, err);
			return -1;
		}
		t->trees[r] = (struct units_tree){ &t->plans[r], &t->layouts[r], "" };
		snprintf(t->trees[r].dir, sizeof(t->trees[r].dir), "rank-%05zu", r);
	}
	return 0;
}

static int open_trees(struct tool *t)
{
	struct view_opts vo;
	char err[SD_ERRLEN];

	if (t->all_ranks && check_all_ranks(t) < 0)
		return -1;
	if (options_view(&t->c, &vo, &t->budget) < 0 || ranks_resolve(&t->c, &vo) < 0 ||
	    choose_cpu(&t->c) < 0)
		return -1;
	if (view_open(&t->v, t->c.src, &vo, t->budget, err) < 0) {
		fprintf(stderr, "sdafs: %s\n", err);    /* the mount's message */
		return -1;
	}
	t->opened = true;
	if (choose_backend(&t->c, &t->v) < 0)
		return -1;
	t->ntrees = t->all_ranks ? (size_t)vo.ep_size : 1;
	t->trees = calloc(t->ntrees, sizeof(*t->trees));
	t->plans = calloc(t->ntrees, sizeof(*t->plans));
	t->layouts = calloc(t->ntrees, sizeof(*t->layouts));
	if (!t->trees || !t->plans || !t->layouts) {
		fprintf(stderr, "sdafs: out of memory\n");
		return -1;
	}
	t->trees[0] = (struct units_tree){ &t->v.plan, &t->v.layout, "" };
	if (t->all_ranks)
		snprintf(t->trees[0].dir, sizeof(t->trees[0].dir), "rank-%05d", 0);
	return plan_ranks(t, &vo);
}

static void close_trees(struct tool *t)
{
	for (size_t r = 1; t->plans && r < t->ntrees; r++) {
		layout_free(&t->layouts[r]);
		plan_free(&t->plans[r]);
	}
	free(t->trees);
	free(t->plans);
	free(t->layouts);
	if (t->opened)
		view_close(&t->v);
	options_free(&t->c);
}

/* --- running ----------------------------------------------------------------- */

static struct units_progress *interrupted;

static void on_signal(int sig)
{
	(void)sig;
	if (interrupted)
		atomic_store(&interrupted->stop, true);
}

/* INT, TERM and HUP stop the workers, so that the temporary directory is
 * removed; a closed pipe is an error on write, not a death. */
static void catch_signals(struct units_progress *p)
{
	struct sigaction sa = { .sa_handler = on_signal };

	interrupted = p;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int setup(struct tool *t, int argc, char **argv, bool convert)
{
	int rc;

	memset(t, 0, sizeof(*t));
	t->convert = convert;
	if ((rc = parse(t, argc, argv)) != 0)
		return rc;
	if (!t->jobs)
		t->jobs = cpus();
	raise_fd_limit();
	/* Freed buffers and arenas go back to the system at once, so the
	 * workers' budget is what the process holds. */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	return open_trees(t);
}

/* DST must not be SRC or hold it: --force would remove the source. */
static bool holds_source(const char *src, const char *dst)
{
	char *s = realpath(src, NULL), *d = realpath(dst, NULL);
	size_t n = d ? strlen(d) : 0;
	bool holds = s && d && !strncmp(s, d, n) && (s[n] == '\0' || s[n] == '/' || n == 1);

	free(s);
	free(d);
	return holds;
}

static int write_all(struct tool *t, struct outdir *od, struct units *us,
		     struct units_progress *p)
{
	struct progress pr;
	char err[SD_ERRLEN], a[32], b[32];
	int rc;

	progress_start(&pr, "convert", p, t->quiet);
	rc = export_write(us, od->fd, t->jobs, t->budget, p, err);
	progress_stop(&pr);
	if (rc < 0) {
		fprintf(stderr, "sdafs convert: %s: %s; nothing was written there\n", od->dst, err);
		outdir_abort(od);
		return 1;
	}
	if (outdir_commit(od, err) < 0) {
		fprintf(stderr, "sdafs convert: %s\n", err);
		outdir_abort(od);
		return 1;
	}
	if (!t->quiet) {
		double secs = progress_seconds(&pr);
		progress_bytes(a, sizeof(a), (double)us->bytes);
		progress_bytes(b, sizeof(b), (double)atomic_load(&t->v.stats.source_bytes));
		fprintf(stderr, "sdafs convert: %s: %zu files, %s written and synced in %.1f s",
			t->c.mountpoint, us->nfiles, a, secs);
		progress_bytes(a, sizeof(a), secs > 0 ? us->bytes / secs : 0);
		fprintf(stderr, " (%s/s); %s of the source read\n", a, b);
	}
	return 0;
}

int convert_main(int argc, char **argv)
{
	struct tool t;
	struct outdir od;
	struct units us;
	struct units_progress p = { 0 };
	char err[SD_ERRLEN];
	int rc = setup(&t, argc, argv, true);

	if (rc != 0) {
		close_trees(&t);
		return rc > 0 ? 0 : 1;
	}
	rc = 1;
	catch_signals(&p);      /* from here on a signal removes what was made */
	if (holds_source(t.c.src, t.c.mountpoint))
		fprintf(stderr, "sdafs convert: %s holds the source %s\n", t.c.mountpoint, t.c.src);
	else if (outdir_begin(&od, t.c.mountpoint, t.force, err) < 0)
		fprintf(stderr, "sdafs convert: %s\n", err);
	else if (units_build(&us, &t.v, t.trees, t.ntrees, err) < 0) {
		fprintf(stderr, "sdafs convert: %s\n", err);
		outdir_abort(&od);
	} else {
		rc = write_all(&t, &od, &us, &p);
		units_free(&us);
	}
	interrupted = NULL;
	close_trees(&t);
	return rc;
}

/* --- verify ------------------------------------------------------------------- */

static void report(const struct tool *t, const struct verify_report *rep, double secs)
{
	char b[32];

	if (t->json) {
		char *text = verify_json(rep, t->c.src, t->c.mountpoint);
		if (text)
			printf("%s\n", text);
		free(text);
		return;
	}
	verify_print(rep, stdout, SHOWN_DIFFS);
	progress_bytes(b, sizeof(b), (double)rep->bytes_compared);
	if (rep->total)
		printf("sdafs verify: %s differs from the view of %s: %zu difference%s\n",
		       t->c.mountpoint, t->c.src, rep->total, rep->total == 1 ? "" : "s");
	else
		printf("sdafs verify: %s equals the view of %s (%zu files, %s compared in %.1f s)\n",
		       t->c.mountpoint, t->c.src, rep->files, b, secs);
}

int verify_main(int argc, char **argv)
{
	struct tool t;
	struct units us;
	struct units_progress p = { 0 };
	struct verify_report rep = { 0 };
	struct progress pr;
	char err[SD_ERRLEN];
	int rc = setup(&t, argc, argv, false), dirfd = -1;

	if (rc != 0) {
		close_trees(&t);
		return rc > 0 ? VERIFY_EQUAL : VERIFY_ERROR;
	}
	rc = VERIFY_ERROR;
	if ((dirfd = open(t.c.mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		fprintf(stderr, "sdafs verify: %s: %s\n", t.c.mountpoint, strerror(errno));
	else if (units_build(&us, &t.v, t.trees, 1, err) < 0)
		fprintf(stderr, "sdafs verify: %s\n", err);
	else {
		catch_signals(&p);
		progress_start(&pr, "verify", &p, t.quiet);
		int vr = verify_dir(&us, dirfd, t.jobs, t.budget, &p, &rep, err);
		progress_stop(&pr);
		if (vr < 0) {
			fprintf(stderr, "sdafs verify: %s: %s\n", t.c.mountpoint, err);
		} else {
			report(&t, &rep, progress_seconds(&pr));
			rc = rep.total ? VERIFY_DIFFERENT : VERIFY_EQUAL;
		}
		verify_report_free(&rep);
		units_free(&us);
		interrupted = NULL;
	}
	if (dirfd >= 0)
		close(dirfd);
	close_trees(&t);
	return rc;
}
