/*
 * main.c — the sdafs command: parse the command line, then print help, the
 * version or the known families, or inspect, verify copies or mount
 * (mount.c); or run a subcommand: sdafs status (status.c), sdafs convert or
 * sdafs verify (commands.c).
 */
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "fs.h"
#include "inspect.h"
#include "mount.h"
#include "options.h"
#include "status.h"

/* A command line that cannot mean anything: one line saying what is
 * wrong (the whole usage would bury it). */
static bool usage_error(const struct cmdline *c)
{
	const char *msg = NULL;

	if (c->json && !c->inspect)
		msg = "--json goes with --inspect (sdafs --inspect --json SRC)";
	else if (!c->src)
		msg = c->inspect ? "--inspect needs SRC, the checkpoint directory" :
		      "missing SRC and MOUNTPOINT: sdafs [-o OPTIONS] SRC MOUNTPOINT";
	else if (c->inspect && c->mountpoint) {
		fprintf(stderr, "sdafs: --inspect takes only SRC; '%s' is one argument too many (--inspect does not mount)\n",
			c->mountpoint);
		return true;
	} else if (c->verify_copies && c->mountpoint) {
		fprintf(stderr, "sdafs: --verify-copies takes only SRC; '%s' is one argument too many (it does not mount)\n",
			c->mountpoint);
		return true;
	} else if (!c->inspect && !c->verify_copies && !c->mountpoint)
		msg = "missing MOUNTPOINT: sdafs [-o OPTIONS] SRC MOUNTPOINT";
	if (msg)
		fprintf(stderr, "sdafs: %s (sdafs --help for more)\n", msg);
	return msg != NULL;
}

#if defined(__SANITIZE_ADDRESS__)
/* The sanitizer build (make asan) on a GPU machine: CUDA's driver maps
 * memory in the range AddressSanitizer keeps unmapped between its shadow
 * regions, so CUDA would not start; and the driver keeps allocations for
 * the life of the process, which LeakSanitizer would report.  (The tests of
 * the GPU itself run from the optimised build; see docs/design.md.) */
const char *__asan_default_options(void);
const char *__lsan_default_suppressions(void);

const char *__asan_default_options(void)
{
	return "protect_shadow_gap=0";
}

const char *__lsan_default_suppressions(void)
{
	return "leak:libcuda.so\nleak:libnvidia-\nleak:cudart::\n";
}
#endif

static int run(struct cmdline *c, struct fuse_args *args)
{
	if (c->help) {
		options_usage(stdout);
		return 0;
	}
	if (c->version) {
		printf("sdafs %s (libfuse %s)\n", SDAFS_VERSION, fuse_pkgversion());
		return 0;
	}
	if (c->list_adapters) {
		inspect_list_adapters();
		return 0;
	}
	if (usage_error(c))
		return 1;
	return mount_run(c, args);
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct cmdline c = { 0 };
	int rc;

	/* glibc gives each of the 16 worker threads its own arena and keeps what
	 * conversions freed there: over 100 MiB beyond the cache on a 2 GiB view.
	 * Two arenas keep the daemon near its cache size, and are faster here. */
	mallopt(M_ARENA_MAX, 2);

	if (argc > 1 && !strcmp(argv[1], "status"))
		return status_main(argc - 1, argv + 1);
	/* sdafs convert / verify: the same view, written or checked, no mount */
	if (argc > 1 && !strcmp(argv[1], "convert"))
		return convert_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "verify"))
		return verify_main(argc - 1, argv + 1);

	if (options_parse(&args, &c) < 0) {
		fprintf(stderr, "sdafs: see sdafs --help\n");
		rc = 1;
	} else {
		rc = run(&c, &args);
	}
	fuse_opt_free_args(&args);
	options_free(&c);
	return rc;
}
