/*
 * main.c — the sdafs command: parse the command line, then print help, the
 * version or the known families, or inspect, or mount (mount.c); or run
 * sdafs convert or sdafs verify (commands.c).
 */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "fs.h"
#include "inspect.h"
#include "mount.h"
#include "options.h"

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
	if (!c->src || (!c->inspect && !c->mountpoint)) {
		options_usage(stderr);
		return 1;
	}
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

	/* sdafs convert / verify: the same view, written or checked, no mount */
	if (argc > 1 && !strcmp(argv[1], "convert"))
		return convert_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "verify"))
		return verify_main(argc - 1, argv + 1);

	if (options_parse(&args, &c) < 0) {
		options_usage(stderr);
		rc = 1;
	} else {
		rc = run(&c, &args);
	}
	fuse_opt_free_args(&args);
	options_free(&c);
	return rc;
}
