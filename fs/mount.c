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
#include "copies.h"
#include "dist.h"
#include "err.h"
#include "fs.h"
#include "gpu.h"
#include "inspect.h"
#include "kernels.h"
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

/* How to serve a view, beyond the view itself. */
struct serve_opts {
	const char *mountpoint;
	bool foreground;
	bool allow_other;
	const char *materialize_dir;    /* NULL: no copies */
	bool prefetch_copies;           /* copy every file right away */
	unsigned max_threads;
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
	if (!(fs->watch = watch_start(&fs->view, fs->se)))
		sd_log("cannot start the source watcher; changed sources are still caught on read");
	if (so->materialize_dir &&
	    !(fs->copies = copies_start(&fs->view, so->materialize_dir, so->prefetch_copies)))
		sd_log("cannot start the copy writer; nothing will be materialized");
	rc = fuse_session_loop_mt(fs->se, cfg) ? 1 : 0;
	copies_stop(fs->copies);
	fs->copies = NULL;
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
	return rc;
}

static int run_mpi(struct cmdline *c, struct fuse_args *args, struct view_opts *vo,
		   uint64_t cache_bytes)
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

/* cpu=, else SDAFS_CPU, else auto: the kernel path every conversion of
 * this daemon uses (kernels.h); a path the CPU lacks stops the mount. */
static int choose_cpu(const struct cmdline *c)
{
	const char *env = getenv("SDAFS_CPU");
	const char *name = c->cpu ? c->cpu : env && *env ? env : "auto";
	char err[SD_ERRLEN];

	if (sd_kernels_choose(name, err) < 0) {
		fprintf(stderr, "sdafs: %s=%s: %s\n", c->cpu ? "cpu" : "SDAFS_CPU", name, err);
		return -1;
	}
	return 0;
}

int mount_run(struct cmdline *c, struct fuse_args *args)
{
	struct view_opts vo;
	struct sdafs fs;
	char err[SD_ERRLEN];
	uint64_t cache_bytes;
	int rc;

	if (options_view(c, &vo, &cache_bytes) < 0 || choose_cpu(c) < 0)
		return 1;
	raise_fd_limit();
	if (c->mpi)
		return run_mpi(c, args, &vo, cache_bytes);
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
		};
		fs.mountpoint_real = realpath(c->mountpoint, NULL);
		fs.direct_io = c->direct_io;
		rc = mount_and_serve(&fs, args, &so);
		free(fs.mountpoint_real);
	}
	view_close(&fs.view);
	return rc;
}
