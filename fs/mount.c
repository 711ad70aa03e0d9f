/*
 * mount.c — opening the view, mounting it and serving it.
 *
 * Everything that can be wrong with the source is found by view_open()
 * before the mount is made and before the daemon detaches, so a bad
 * checkpoint makes `sdafs` (and `mount -t sdafs`) exit non-zero with the
 * message on stderr instead of leaving a broken mount behind.
 *
 * CUDA is the exception: it does not survive a fork, so it starts only in
 * the process that serves, after fuse_daemonize (or before mounting, with
 * -f or -o mpi, where nothing forks).  backend=cuda still fails the mount
 * on the terminal when there is no usable GPU: a throwaway child tries
 * first, before the mount is made.
 */
#include "mount.h"

#include <errno.h>
#include <fuse_opt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend_check.h"
#include "cache.h"
#include "copies.h"
#include "dist.h"
#include "err.h"
#include "fs.h"
#include "gpu.h"
#include "inspect.h"
#include "hints.h"
#include "kernels.h"
#include "log.h"
#include "mountpoint.h"
#include "passthrough.h"
#include "ranks.h"
#include "watch.h"

void raise_fd_limit(void)
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
	uint64_t materialize_max;       /* bytes of copies kept, 0: no budget */
	bool prefetch_copies;           /* copy every file right away */
	unsigned max_threads;
	uint64_t readahead;             /* bytes ahead of a sequential reader */
	struct dist *dist;              /* -o mpi: agree with the other ranks */
	const struct cmdline *backend;  /* choose the backend once detached (NULL: chosen) */
};

/* Tell the other ranks this rank could not mount (under -o mpi). */
static void mount_failed(const struct serve_opts *so)
{
	char err[SD_ERRLEN];

	if (so->dist)
		dist_agree(so->dist, false, err);
}

/* What findmnt shows: the source directory as SOURCE, fuse.sdafs as FSTYPE
 * (fsname and subtype, as sshfs and squashfuse show theirs). */
static int add_mount_options(struct fuse_args *args, const char *source)
{
	char *opts = NULL, *fsname = NULL;
	int rc = -1;

	if (asprintf(&fsname, "fsname=%s", source) >= 0 &&
	    fuse_opt_add_opt(&opts, "ro,default_permissions,subtype=sdafs") == 0 &&
	    fuse_opt_add_opt_escaped(&opts, fsname) == 0 &&
	    fuse_opt_add_arg(args, "-o") == 0 && fuse_opt_add_arg(args, opts) == 0)
		rc = 0;
	free(fsname);
	free(opts);
	return rc;
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
	if (add_mount_options(args, fs->source) < 0)
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
		if (!(fs->pt = pt_mount(fs->se, fs->mountpoint_real, fs->source, so->allow_other,
					&fs->view, &e))) {
			fprintf(stderr, "sdafs: cannot mount on %s: %s\n", fs->mountpoint, strerror(-e));
			mount_failed(so);
			goto out_signals;
		}
	} else if (fuse_session_mount(fs->se, fs->mountpoint) < 0) {
		mountpoint_explain(fs->mountpoint);
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
	/* This process serves: CUDA may start now.  Failing after the detach
	 * leaves the CPU converting, with the reason in the log and in
	 * .sdafs-stats (backend=cuda was probed before the mount). */
	if (so->backend && choose_backend(so->backend, &fs->view) < 0)
		sd_log("backend=cuda: converting on the CPU instead");
	cfg = fuse_loop_cfg_create();
	if (!cfg)
		goto out_unmount;
	fuse_loop_cfg_set_max_threads(cfg, max_threads);
	fuse_loop_cfg_set_idle_threads(cfg, max_threads);      /* no thread churn */
	start_readahead(fs, so->readahead);
	if (!(fs->watch = watch_start(&fs->view, fs->se)))
		sd_log("cannot start the source watcher; changed sources are still caught on read");
	if (so->materialize_dir &&
	    !(fs->copies = copies_start(&fs->view, so->materialize_dir, so->materialize_max,
					    so->prefetch_copies)))
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

/* log=FILE, opened before anything is mounted or detached: a FILE that
 * cannot be opened fails the mount.  %r is the rank under -o mpi. */
static int open_log(const struct cmdline *c, long rank, char *err)
{
	char *path;
	int rc;

	if (!c->log_file)
		return 0;
	if (!(path = rank >= 0 ? options_with_rank(c->log_file, rank) : strdup(c->log_file)))
		return sd_err(err, -ENOMEM, "out of memory");
	rc = sd_log_to_file(path, err);
	free(path);
	return rc;
}

/* What .sdafs-stats and findmnt say the mount is; the root directory
 * follows the source directory's mode and times. */
static void describe_mount(struct sdafs *fs, const struct cmdline *c)
{
	fs->source = realpath(c->src, NULL);
	fs->options = c->options_text;
	if (stat(fs->source ? fs->source : c->src, &fs->source_dir) < 0)
		memset(&fs->source_dir, 0, sizeof(fs->source_dir));
}

static int run_mpi(struct cmdline *c, struct fuse_args *args, struct view_opts *vo,
		   uint64_t cache_bytes, uint64_t materialize_max, uint64_t readahead)
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
	struct made_dirs made = { 0 };
	/* every rank takes part in the same collectives, whatever fails */
	bool ok = m && open_log(c, d.rank, err) == 0 &&
		  dist_open_view(&d, &fs.view, c->src, vo, cache_bytes, err) == 0;
	if (!ok)
		fprintf(stderr, "sdafs: rank %d: %s\n", d.rank, err[0] ? err : "out of memory");
	else if (!(ok = (strstr(c->mountpoint, "%r") ? mountpoint_make(m, &made) :
			 mountpoint_check(m)) == 0))
		fprintf(stderr, "sdafs: rank %d cannot mount on %s\n", d.rank, m);
	/* each rank on the GPU of its rank on the node (no fork under MPI) */
	else if (choose_backend(c, &fs.view) < 0)
		ok = false;
	if (dist_agree(&d, ok, err) < 0) {
		if (ok)
			fprintf(stderr, "sdafs: rank %d: %s\n", d.rank, err);
		goto out;
	}
	if (c->prefetch && dist_prefetch(&d, &fs.view, err) < 0) {
		fprintf(stderr, "sdafs: rank %d: %s\n", d.rank, err);
		dist_abort(&d);
	}
	fs.prefetch_broadcast = c->prefetch;
	describe_mount(&fs, c);
	struct serve_opts so = {
		.mountpoint = m,
		.foreground = true,     /* no fork after MPI_Init */
		.allow_other = c->allow_other,
		.materialize_dir = c->materialize_dir,
		.materialize_max = materialize_max,
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
	mountpoint_unmake(&made);
	free(m);
	free(fs.source);
	dist_finish(&d);
	return rc;
}

/* A GPU for this process: started, and giving the CPU's bytes on the
 * self-check's cases (whole and in row batches).  A GPU whose bytes differ
 * on any kind of operation (a driver, compiler or hardware fault) never
 * converts for a view. */
static int start_gpu(char *name, size_t len, char *err)
{
	int rc = gpu_init(name, len, err);

	return rc < 0 ? rc : backend_check(recipe_eval_cuda, recipe_eval_cuda_batched, err);
}

static bool wants_cuda(const struct cmdline *c)
{
	return c->backend && !strcmp(c->backend, "cuda");
}

/* backend=: the GPU when asked for (-1 when it cannot be had) or, with
 * auto, when one is usable; the choice is logged once, and why the CPU
 * converts is kept for .sdafs-stats.  In the process that serves only. */
int choose_backend(const struct cmdline *c, struct view *v)
{
	char name[256], err[SD_ERRLEN];
	struct gpu_stats st;

	v->gpu = false;
	if (c->backend && !strcmp(c->backend, "cpu")) {
		snprintf(v->backend_note, sizeof(v->backend_note), "backend=cpu");
		return 0;
	}
	if (start_gpu(name, sizeof(name), err) < 0) {
		snprintf(v->backend_note, sizeof(v->backend_note), "%s", err);
		if (wants_cuda(c)) {
			sd_log("backend=cuda: %s; use backend=cpu or auto", err);
			return -1;
		}
		/* Only a GPU in use is news; why there is none is for -v
		 * and .sdafs-stats. */
		if (c->verbose)
			sd_log("converting on the CPU: %s", err);
		return 0;
	}
	v->gpu = true;
	gpu_get_stats(&st);
	sd_log("converting on the GPU (%s; at most %llu MiB of its memory and %llu MiB of pinned memory)",
	       name, (unsigned long long)(st.device_bound >> 20),
	       (unsigned long long)(st.pinned_bound >> 20));
	return 0;
}

/*
 * backend=cuda without -f: can this machine convert on the GPU?  Asked in a
 * throwaway child, since CUDA started here would be unusable in the daemon
 * fuse_daemonize forks; 0, or -1 after the child's reason on stderr.
 */
static int probe_gpu(void)
{
	char msg[SD_ERRLEN] = "";
	size_t got = 0;
	int fds[2], status = 0;
	ssize_t n;
	pid_t pid;

	if (pipe(fds) < 0 || (pid = fork()) < 0) {
		fprintf(stderr, "sdafs: backend=cuda: cannot start the GPU probe: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		int rc = start_gpu(NULL, 0, msg);
		if (rc < 0 && write(fds[1], msg, strlen(msg)) < 0)
			rc = -EIO;
		_exit(rc < 0 ? 1 : 0);
	}
	close(fds[1]);
	while (got < sizeof(msg) - 1 && (n = read(fds[0], msg + got, sizeof(msg) - 1 - got)) > 0)
		got += (size_t)n;
	msg[got] = '\0';
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (!msg[0])
		snprintf(msg, sizeof(msg), "the GPU probe ended abnormally (status %d)", status);
	fprintf(stderr, "sdafs: backend=cuda: %s; use backend=cpu or auto\n", msg);
	return -1;
}

/* cpu=, else SDAFS_CPU, else auto: the kernel path every conversion of
 * this daemon uses (kernels.h); a path the CPU lacks stops the mount. */
int choose_cpu(const struct cmdline *c)
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
	bool per_rank = c->mountpoint && strstr(c->mountpoint, "%r");
	struct made_dirs made = { 0 };
	struct view_opts vo;
	struct gpu_config gc;
	struct sdafs fs;
	char err[SD_ERRLEN];
	uint64_t cache_bytes, materialize_max, readahead;
	int rc;

	if (options_view(c, &vo, &cache_bytes) < 0 || ranks_resolve(c, &vo) < 0 ||
	    options_copies(c, &materialize_max) < 0 || options_gpu(c, &gc) < 0 ||
	    options_readahead(c, &readahead) < 0 || choose_cpu(c) < 0)
		return 1;
	gpu_configure(&gc);
	raise_fd_limit();
	if (c->mpi)
		return run_mpi(c, args, &vo, cache_bytes, materialize_max, readahead);
	/* A per-rank mount point is made when missing (as mount --mkdir does);
	 * any other must exist.  Either way before the source is scanned. */
	if (!c->inspect && !c->verify_copies &&
	    (per_rank ? mountpoint_make(c->mountpoint, &made) : mountpoint_check(c->mountpoint)) < 0)
		return 1;
	memset(&fs, 0, sizeof(fs));
	if (!c->inspect && open_log(c, -1, err) < 0) {
		fprintf(stderr, "sdafs: %s\n", err);
		mountpoint_unmake(&made);
		return 1;
	}
	if (view_open(&fs.view, c->src, &vo, cache_bytes, err) < 0) {
		fprintf(stderr, "sdafs: %s\n", err);
		hint_source(c->src);
		mountpoint_unmake(&made);
		return 1;
	}
	if (c->inspect) {
		rc = inspect_print(&fs.view, c->json) < 0;
	} else if (c->verify_copies) {
		rc = copies_verify(&fs.view, c->materialize_dir, stdout);
	} else if (c->foreground ? choose_backend(c, &fs.view) < 0 :
		   wants_cuda(c) && probe_gpu() < 0) {
		rc = 1;
	} else {
		struct serve_opts so = {
			.mountpoint = c->mountpoint,
			.foreground = c->foreground,
			.allow_other = c->allow_other,
			.materialize_dir = c->materialize_dir,
			.materialize_max = materialize_max,
			.prefetch_copies = c->prefetch,
			.max_threads = c->max_threads,
			.backend = c->foreground ? NULL : c,
			.readahead = readahead,
		};
		describe_mount(&fs, c);
		fs.mountpoint_real = realpath(c->mountpoint, NULL);
		fs.direct_io = c->direct_io;
		rc = mount_and_serve(&fs, args, &so);
		free(fs.mountpoint_real);
		free(fs.source);
	}
	view_close(&fs.view);
	mountpoint_unmake(&made);
	return rc;
}
