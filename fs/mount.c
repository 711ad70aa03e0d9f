/*
 * mount.c — opening the view, mounting it and serving it.
 *
 * Everything that can be wrong with the source is found by view_open()
 * before the mount is made and before the daemon detaches, so a bad
 * checkpoint makes `sdafs` (and `mount -t sdafs`) exit non-zero with the
 * message on stderr instead of leaving a broken mount behind.
 */
#include "mount.h"

#include <errno.h>
#include <fuse_opt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "backend_check.h"
#include "cache.h"
#include "copies.h"
#include "dist.h"
#include "err.h"
#include "fs.h"
#include "gpu.h"
#include "inspect.h"
#include "log.h"
#include "passthrough.h"
#include "watch.h"

static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * SDAFS_OFF=readahead,splice,recycle,reuse,hugepages,prefault turns single
 * speed-ups off, so that the benchmark can measure what each one buys in
 * one run (docs/performance.md).  Not an option: nobody should need it
 * otherwise.
 */
static bool switched_off(const char *lever)
{
	const char *off = getenv("SDAFS_OFF");
	size_t n = strlen(lever);

	for (const char *p = off; p && *p; p += strcspn(p, ","), p += *p == ',')
		if (!strncmp(p, lever, n) && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

/* The speed-ups of the read path that SDAFS_OFF does not turn off. */
static void set_up_read_path(struct sdafs *fs)
{
	struct cache_opts co = {
		.mem = {
			.reuse_blocks = !switched_off("reuse"),
			.hugepages = !switched_off("hugepages"),
			.prefault = !switched_off("prefault"),
		},
		.recycle = !switched_off("recycle"),
	};

	cache_configure(fs->view.cache, &co);
	fs->splice = !switched_off("splice");
}

/* Read-ahead workers: one a core, after any fork. */
static void start_readahead(struct sdafs *fs, uint64_t window)
{
	char err[SD_ERRLEN];
	long cores = sysconf(_SC_NPROCESSORS_ONLN);

	if (switched_off("readahead"))
		return;
	if (view_readahead_start(&fs->view, cores > 0 ? (unsigned)cores : 1, window, err) < 0)
		sd_log("%s; reads convert only what they touch", err);
}

/* How to serve a view, beyond the view itself. */
struct serve_opts {
	const char *mountpoint;
	bool foreground;
	bool allow_other;
	const char *materialize_dir;    /* NULL: no copies */
	bool prefetch_copies;           /* copy every file right away */
	unsigned max_threads;
	uint64_t readahead;             /* bytes ahead of a sequential reader */
	struct dist *dist;              /* -o mpi: agree with the other ranks */
};

/* Tell the other ranks this rank could not mount (under -o mpi). */
static void mount_failed(const struct serve_opts *so)
{
	char err[SD_ERRLEN];

	if (so->dist)
		dist_agree(so->dist, false, err);
}

static int mount_and_serve(struct sdafs *fs, struct fuse_args *args,
			   const struct serve_opts *so)
{
	char err[SD_ERRLEN];
	bool own_mount = so->materialize_dir && geteuid() == 0 && fs->mountpoint_real;
	struct fuse_loop_config *cfg;
	unsigned max_threads = so->max_threads ? so->max_threads : 16;
	int rc = 1;

	fs->mountpoint = so->mountpoint;
	clock_gettime(CLOCK_REALTIME, &fs->mounted_at);
	pthread_mutex_init(&fs->opens_mu, NULL);
	set_up_read_path(fs);
	/* ro makes the kernel refuse writes itself; the ops say EROFS too. */
	if (fuse_opt_add_arg(args, "-oro,default_permissions,subtype=sdafs") < 0 ||
	    fuse_opt_add_arg(args, "-ofsname=sdafs") < 0)
		return 1;
	fs->se = fuse_session_new(args, &sdafs_ops, sizeof(sdafs_ops), fs);
	if (!fs->se) {
		mount_failed(so);
		return 1;       /* libfuse said why (e.g. an unknown -o option) */
	}
	if (fuse_set_signal_handlers(fs->se) < 0) {
		mount_failed(so);
		goto out;
	}
	if (own_mount) {        /* so that we can ask for kernel passthrough */
		int e;
		if (!(fs->pt = pt_mount(fs->se, fs->mountpoint_real, so->allow_other, &fs->view, &e))) {
			fprintf(stderr, "sdafs: cannot mount on %s: %s\n", fs->mountpoint, strerror(-e));
			mount_failed(so);
			goto out_signals;
		}
	} else if (fuse_session_mount(fs->se, fs->mountpoint) < 0) {
		fprintf(stderr, "sdafs: cannot mount on %s (is it an existing empty directory you may mount on?)\n",
			fs->mountpoint);
		mount_failed(so);
		goto out_signals;
	}
	if (so->dist && dist_agree(so->dist, true, err) < 0) {
		fprintf(stderr, "sdafs: %s\n", err);
		goto out_unmount;
	}
	if (fuse_daemonize(so->foreground) < 0)
		goto out_unmount;
	if (!so->foreground)
		sd_log_detached();
	cfg = fuse_loop_cfg_create();
	if (!cfg)
		goto out_unmount;
	fuse_loop_cfg_set_max_threads(cfg, max_threads);
	fuse_loop_cfg_set_idle_threads(cfg, max_threads);      /* no thread churn */
	start_readahead(fs, so->readahead);
	if (!(fs->watch = watch_start(&fs->view, fs->se)))
		sd_log("cannot start the source watcher; changed sources are still caught on read");
	if (so->materialize_dir &&
	    !(fs->copies = copies_start(&fs->view, so->materialize_dir, so->prefetch_copies)))
		sd_log("cannot start the copy writer; nothing will be materialized");
	rc = fuse_session_loop_mt(fs->se, cfg) ? 1 : 0;
	copies_stop(fs->copies);        /* its reads note the read-ahead: first */
	fs->copies = NULL;
	view_readahead_stop(&fs->view);
	watch_stop(fs->watch);
	fs->watch = NULL;
	fuse_loop_cfg_destroy(cfg);
out_unmount:
	if (fs->pt)
		pt_unmount(fs->pt);
	else
		fuse_session_unmount(fs->se);
	fs->pt = NULL;
out_signals:
	fuse_remove_signal_handlers(fs->se);
out:
	fuse_session_destroy(fs->se);
	sdafs_free_opens(fs);
	pthread_mutex_destroy(&fs->opens_mu);
	return rc;
}

static int run_mpi(struct cmdline *c, struct fuse_args *args, struct view_opts *vo,
		   uint64_t cache_bytes, uint64_t readahead)
{
	struct dist d;
	struct sdafs fs;
	char err[SD_ERRLEN] = "";
	int rc = 1;

	memset(&fs, 0, sizeof(fs));
	if (dist_init(&d, NULL, NULL, err) < 0) {
		fprintf(stderr, "sdafs: %s\n", err);
		return 1;
	}
	char *m = options_with_rank(c->mountpoint, d.rank);
	bool ok = m && dist_open_view(&d, &fs.view, c->src, vo, cache_bytes, err) == 0;
	if (!ok)
		fprintf(stderr, "sdafs: rank %d: %s\n", d.rank, err[0] ? err : "out of memory");
	if (dist_agree(&d, ok, err) < 0) {
		if (ok)
			fprintf(stderr, "sdafs: rank %d: %s\n", d.rank, err);
		goto out;
	}
	if (c->prefetch && dist_prefetch(&d, &fs.view, err) < 0) {
		fprintf(stderr, "sdafs: rank %d: %s\n", d.rank, err);
		dist_abort(&d);
	}
	struct serve_opts so = {
		.mountpoint = m,
		.foreground = true,     /* no fork after MPI_Init */
		.allow_other = c->allow_other,
		.materialize_dir = c->materialize_dir,
		.prefetch_copies = c->prefetch && c->materialize_dir,
		.max_threads = c->max_threads,
		.readahead = readahead,
		.dist = &d,
	};
	fs.mountpoint_real = realpath(m, NULL);
	fs.direct_io = c->direct_io;
	rc = mount_and_serve(&fs, args, &so);
	free(fs.mountpoint_real);
out:
	view_close(&fs.view);
	free(m);
	dist_finish(&d);
	return rc;
}

/* backend=: the GPU when asked for (a mount that cannot have it fails) or,
 * with auto, when one is usable and gives the CPU's bytes on a set of small
 * cases (backend_check); the choice is said once, at mount. */
static int choose_backend(const struct cmdline *c, bool *gpu)
{
	char name[256], err[SD_ERRLEN];
	bool want = c->backend && !strcmp(c->backend, "cuda");
	int rc;

	*gpu = false;
	if (c->backend && !strcmp(c->backend, "cpu"))
		return 0;
	rc = gpu_init(name, sizeof(name), err);
	/* A GPU whose bytes differ from the CPU's on any kind of operation (a
	 * driver, compiler or hardware fault) never converts for a view. */
	if (rc == 0)
		rc = backend_check(recipe_eval_cuda, err);
	if (rc < 0 && want) {
		fprintf(stderr, "sdafs: backend=cuda: %s; use backend=cpu or auto\n", err);
		return -1;
	}
	*gpu = rc == 0;
	if (*gpu)
		fprintf(stderr, "sdafs: converting on the GPU (%s)\n", name);
	else if (gpu_compiled_in())
		fprintf(stderr, "sdafs: converting on the CPU: %s\n", err);
	return 0;
}

int mount_run(struct cmdline *c, struct fuse_args *args)
{
	struct view_opts vo;
	struct sdafs fs;
	char err[SD_ERRLEN];
	uint64_t cache_bytes, readahead;
	int rc;

	if (options_view(c, &vo, &cache_bytes) < 0 || options_readahead(c, &readahead) < 0)
		return 1;
	raise_fd_limit();
	if (c->mpi)
		return run_mpi(c, args, &vo, cache_bytes, readahead);
	if (c->mountpoint && strstr(c->mountpoint, "%r") && !options_expand_rank(c, &vo))
		return 1;
	memset(&fs, 0, sizeof(fs));
	if (view_open(&fs.view, c->src, &vo, cache_bytes, err) < 0) {
		fprintf(stderr, "sdafs: %s\n", err);
		return 1;
	}
	if (c->inspect) {
		rc = inspect_print(&fs.view, c->json) < 0;
	} else if (choose_backend(c, &fs.view.gpu) < 0) {
		rc = 1;
	} else {
		struct serve_opts so = {
			.mountpoint = c->mountpoint,
			.foreground = c->foreground,
			.allow_other = c->allow_other,
			.materialize_dir = c->materialize_dir,
			.prefetch_copies = c->prefetch,
			.max_threads = c->max_threads,
			.readahead = readahead,
		};
		fs.mountpoint_real = realpath(c->mountpoint, NULL);
		fs.direct_io = c->direct_io;
		rc = mount_and_serve(&fs, args, &so);
		free(fs.mountpoint_real);
	}
	view_close(&fs.view);
	return rc;
}
