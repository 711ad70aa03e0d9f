/*
 * main.c — the sdafs command: option parsing, --inspect, and mounting.
 *
 * Everything that can be wrong with the source is found by view_open()
 * before the mount is made and before the daemon detaches, so a bad
 * checkpoint makes `sdafs` (and `mount -t sdafs`) exit non-zero with the
 * message on stderr instead of leaving a broken mount behind.
 */
#include "fs.h"

#include <errno.h>
#include <fuse_opt.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_check.h"
#include "cache.h"
#include "dist.h"
#include "err.h"
#include "gpu.h"

/* The kernel page cache keeps converted pages (keep_cache); this cache only
 * stages chunks while requests are served and holds the random-access working
 * set.  A smaller cache also reuses its memory sooner: fresh pages cost a
 * kernel zero-fill each, which is a third of a cold read here. */
#define DEFAULT_CACHE   ((uint64_t)256 << 20)

struct cmdline {
	char *src, *mountpoint;
	char *view, *adapter, *adapter_file, *dtype, *cache_size, *backend, *ep_rank, *ep_size;
	char *materialize_dir;
	char *peft;
	unsigned max_threads;
	int direct_io, mpi, foreground, debug, help, version, inspect, json,
	    list_adapters, prefetch, allow_other;
};

enum { KEY_HELP, KEY_VERSION, KEY_FOREGROUND, KEY_DEBUG, KEY_ALLOW_OTHER };

#define OPT(t, p) { t, offsetof(struct cmdline, p), 1 }
static const struct fuse_opt cmd_opts[] = {
	OPT("view=%s", view), OPT("adapter=%s", adapter),
	OPT("adapter_file=%s", adapter_file), OPT("dtype=%s", dtype),
	OPT("cache_size=%s", cache_size), OPT("backend=%s", backend),
	OPT("ep_rank=%s", ep_rank), OPT("ep_size=%s", ep_size),
	OPT("max_threads=%u", max_threads), OPT("direct_io", direct_io),
	OPT("mpi", mpi), OPT("--inspect", inspect), OPT("--json", json),
	OPT("materialize_dir=%s", materialize_dir), OPT("prefetch", prefetch),
	OPT("peft=%s", peft),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	OPT("--list-adapters", list_adapters),
	FUSE_OPT_KEY("-h", KEY_HELP), FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION), FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND), FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_END
};

static void usage(FILE *out)
{
	fprintf(out,
"usage: sdafs [-f] [-d] [-o OPTIONS] SRC MOUNTPOINT\n"
"       sdafs --inspect [--json] [-o OPTIONS] SRC\n"
"       sdafs --list-adapters\n"
"\n"
"Mount the checkpoint directory SRC (config.json, *.safetensors, optional\n"
"model.safetensors.index.json) at MOUNTPOINT in the other layout: a HuggingFace\n"
"checkpoint as NeMo Automodel's native layout, a native one as HuggingFace, an\n"
"Automodel sharded training save (model/) as its consolidated HF checkpoint.\n"
"Nothing is converted until it is read; a read converts only the chunks it\n"
"touches.  Unmount with: fusermount3 -u MOUNTPOINT\n"
"\n"
"  -f                   stay in the foreground\n"
"  -d                   debug: foreground with libfuse request tracing\n"
"  --inspect            print the plan (tensors, dtypes, shapes, recipes, files)\n"
"                       and exit without mounting; --json for JSON\n"
"  --list-adapters      print the model families sdafs knows\n"
"  -h, --help           this text;  -V, --version  the version\n"
"\n"
"options (-o a,b,c):\n"
"  view=auto|native|hf  the layout to show (auto: the other one than SRC's; for\n"
"                       an Automodel sharded save, its consolidated HF checkpoint;\n"
"                       for a PEFT adapter directory, the other key layout)\n"
"  peft=v5|v4           HF view of a PEFT adapter with grouped expert LoRA:\n"
"                       ParamWrapper tensors (v5, default) or per-expert keys (v4)\n"
"  adapter=NAME         model family (default: from config.json)\n"
"  adapter_file=PATH    a model family described as a JSON rule table\n"
"  dtype=auto|bf16|fp16|fp32\n"
"                       native view: dtype of merged expert tensors (auto: config\n"
"                       torch_dtype, bfloat16 when absent); HF view: auto casts\n"
"                       nothing, a dtype casts every float tensor except those\n"
"                       Automodel keeps in F32 (Mamba A_log/dt_bias/D, router bias)\n"
"  cache_size=SIZE      bytes of converted chunks kept (K/M/G/T; default 256M)\n"
"  ep_rank=R,ep_size=N  show only expert-parallel rank R's experts\n"
"  mpi                  one daemon per MPI rank (under mpirun/srun; stays in the\n"
"                       foreground): rank 0 reads the headers for everyone, each\n"
"                       rank shows its own experts; %%r in MOUNTPOINT is the rank\n"
"  backend=auto|cpu|cuda  where chunks are converted: cuda needs a usable GPU\n"
"                       (and a build with nvcc); auto uses one when there is one\n"
"  max_threads=N        FUSE worker threads (default 16)\n"
"  direct_io            bypass the page cache (streaming readers that do not mmap)\n"
"  materialize_dir=DIR  keep converted view files in DIR (once read to the end, or\n"
"                       all at once with prefetch) and serve them from there; as\n"
"                       root on Linux >= 6.9 the kernel reads them directly\n"
"  prefetch             with materialize_dir: convert every file right away;\n"
"                       with mpi: read each shared tensor once per job and\n"
"                       broadcast it to every rank\n"
"  allow_other          let other users read the mount\n"
"\n"
"The file MOUNTPOINT/" STATS_NAME " (not listed) holds live statistics as JSON.\n"
"See sdafs(8).\n");
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *out)
{
	struct cmdline *c = data;

	(void)out;
	switch (key) {
	case KEY_HELP:
		c->help = 1;
		return 0;
	case KEY_VERSION:
		c->version = 1;
		return 0;
	case KEY_FOREGROUND:
		c->foreground = 1;
		return 0;
	case KEY_DEBUG:
		c->debug = c->foreground = 1;
		return 1;       /* libfuse traces requests with -d */
	case KEY_ALLOW_OTHER:
		c->allow_other = 1;
		return 1;       /* libfuse mounts with it */
	case FUSE_OPT_KEY_NONOPT:
		if (!c->src)
			return (c->src = strdup(arg)) ? 0 : -1;
		if (!c->mountpoint)
			return (c->mountpoint = strdup(arg)) ? 0 : -1;
		fprintf(stderr, "sdafs: unexpected argument '%s'\n", arg);
		return -1;
	default:
		return 1;       /* everything else is for libfuse */
	}
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned shift = 0;

	if (errno || end == s || *s == '-')
		return -1;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_long(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);

	if (errno || end == s || *end || v < 0)
		return -1;
	*out = v;
	return 0;
}

static int build_opts(const struct cmdline *c, struct view_opts *o, uint64_t *cache)
{
	memset(o, 0, sizeof(*o));
	o->dtype = SD_DTYPE_INVALID;
	o->adapter = c->adapter;
	o->adapter_file = c->adapter_file;
	if (c->adapter && c->adapter_file) {
		fprintf(stderr, "sdafs: give adapter= or adapter_file=, not both\n");
		return -1;
	}
	*cache = DEFAULT_CACHE;
	if (c->view) {
		if (!strcmp(c->view, "auto"))
			o->view = VIEW_AUTO;
		else if (!strcmp(c->view, "native"))
			o->view = VIEW_NATIVE;
		else if (!strcmp(c->view, "hf"))
			o->view = VIEW_HF;
		else {
			fprintf(stderr, "sdafs: view=%s: expected auto, native or hf\n", c->view);
			return -1;
		}
	}
	if (c->dtype && strcmp(c->dtype, "auto")) {
		static const struct { const char *n; enum sd_dtype t; } names[] = {
			{ "bf16", SD_BF16 }, { "bfloat16", SD_BF16 }, { "fp16", SD_F16 },
			{ "float16", SD_F16 }, { "fp32", SD_F32 }, { "float32", SD_F32 },
		};
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!strcmp(c->dtype, names[i].n))
				o->dtype = names[i].t;
		if (o->dtype == SD_DTYPE_INVALID) {
			fprintf(stderr, "sdafs: dtype=%s: expected auto, bf16, fp16 or fp32\n", c->dtype);
			return -1;
		}
	}
	if (c->peft && strcmp(c->peft, "v5") && strcmp(c->peft, "v4")) {
		fprintf(stderr, "sdafs: peft=%s: expected v5 (ParamWrapper) or v4 (per-expert keys)\n",
			c->peft);
		return -1;
	}
	o->peft_v4 = c->peft && !strcmp(c->peft, "v4");
	if (c->cache_size && (parse_size(c->cache_size, cache) < 0 || *cache == 0)) {
		fprintf(stderr, "sdafs: cache_size=%s: expected a size such as 512M or 4G\n",
			c->cache_size);
		return -1;
	}
	if (c->backend && strcmp(c->backend, "auto") && strcmp(c->backend, "cpu") &&
	    strcmp(c->backend, "cuda")) {
		fprintf(stderr, "sdafs: backend=%s: expected auto, cpu or cuda\n", c->backend);
		return -1;
	}
	if (c->prefetch && !c->materialize_dir && !c->mpi) {
		fprintf(stderr, "sdafs: prefetch needs materialize_dir=DIR (where the converted files go) or mpi\n");
		return -1;
	}
	if (c->materialize_dir) {
		struct stat st;
		if (stat(c->materialize_dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
		    access(c->materialize_dir, W_OK) < 0) {
			fprintf(stderr, "sdafs: materialize_dir=%s: not a directory this user can write to\n",
				c->materialize_dir);
			return -1;
		}
	}
	if (c->mpi && !dist_available()) {
		fprintf(stderr, "sdafs: -o mpi: this sdafs was built without MPI (install libopenmpi-dev and rebuild); or give each rank ep_rank=R,ep_size=N\n");
		return -1;
	}
	if (!!c->ep_rank != !!c->ep_size) {
		fprintf(stderr, "sdafs: ep_rank and ep_size go together\n");
		return -1;
	}
	if (c->ep_size && (parse_long(c->ep_size, &o->ep_size) < 0 || o->ep_size < 1 ||
			   parse_long(c->ep_rank, &o->ep_rank) < 0 ||
			   o->ep_rank >= o->ep_size)) {
		fprintf(stderr, "sdafs: ep_rank=%s,ep_size=%s: need 0 <= ep_rank < ep_size\n",
			c->ep_rank, c->ep_size);
		return -1;
	}
	return 0;
}

static void list_adapters(void)
{
	char err[SD_ERRLEN], arch[512];

	/* two lines each: the architectures lists are too long for one column */
	printf("%-16s %s\n", "NAME", "DESCRIPTION / architectures in config.json");
	for (size_t i = 0; i < adapter_builtin_count(); i++) {
		struct adapter *a;
		if (adapter_builtin(i, &a, err) < 0) {
			fprintf(stderr, "sdafs: %s\n", err);
			continue;
		}
		adapter_architectures(a, arch, sizeof(arch));
		printf("%-16s %s\n%-16s %s\n", adapter_name(a), adapter_description(a), "", arch);
		adapter_free(a);
	}
}

/* --- --inspect ------------------------------------------------------------ */

static char *recipe_text(const struct view *v, const struct plan_tensor *t, bool full)
{
	char *buf;
	size_t n;

	if (!t->recipe) {
		const char *name = v->src.tensors[t->src].name;
		n = strlen(name) + 8;
		if ((buf = malloc(n)))
			snprintf(buf, n, "src(\"%s\")", name);
		return buf;
	}
	n = recipe_format(t->recipe, &v->src, full, NULL, 0) + 1;
	if ((buf = malloc(n)))
		recipe_format(t->recipe, &v->src, full, buf, n);
	return buf;
}

static const char *kind_name(enum vfile_kind k)
{
	return k == VF_WEIGHTS ? "weights" : k == VF_MEMORY ? "index" : "passthrough";
}

static int inspect_json(const struct view *v)
{
	cJSON *root = cJSON_CreateObject(), *files = cJSON_CreateArray();

	cJSON_AddStringToObject(root, "source", v->src.dir);
	cJSON_AddStringToObject(root, "adapter", v->plan.adapter);
	cJSON_AddStringToObject(root, "direction", v->plan.direction);
	cJSON_AddStringToObject(root, "dtype", dtype_name(v->plan.dtype));
	cJSON_AddNumberToObject(root, "experts", (double)v->plan.experts);
	cJSON_AddItemToObject(root, "files", files);
	for (size_t i = 0; i < v->layout.n; i++) {
		const struct vfile *f = &v->layout.files[i];
		cJSON *jf = cJSON_CreateObject(), *ts = cJSON_CreateArray();
		cJSON_AddItemToArray(files, jf);
		cJSON_AddStringToObject(jf, "name", f->name);
		cJSON_AddStringToObject(jf, "kind", kind_name(f->kind));
		cJSON_AddNumberToObject(jf, "size", (double)f->size);
		cJSON_AddItemToObject(jf, "tensors", ts);
		for (size_t k = 0; k < f->nslots; k++) {
			const struct plan_tensor *t = &v->plan.tensors[f->slots[k].tensor];
			cJSON *jt = cJSON_CreateObject(), *shape = cJSON_CreateArray();
			char *r = recipe_text(v, t, true);
			for (int d = 0; d < t->ndim; d++)
				cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
			cJSON_AddStringToObject(jt, "name", t->name);
			cJSON_AddStringToObject(jt, "dtype", dtype_name(t->dtype));
			cJSON_AddItemToObject(jt, "shape", shape);
			cJSON_AddNumberToObject(jt, "offset", (double)f->slots[k].off);
			cJSON_AddNumberToObject(jt, "bytes", (double)t->nbytes);
			cJSON_AddStringToObject(jt, "recipe", r ? r : "");
			cJSON_AddBoolToObject(jt, "converted", t->recipe != NULL);
			cJSON_AddItemToArray(ts, jt);
			free(r);
		}
	}
	char *text = cJSON_Print(root);
	cJSON_Delete(root);
	if (!text)
		return -1;
	puts(text);
	free(text);
	return 0;
}

static void inspect_text(const struct view *v)
{
	printf("source %s: adapter %s, %s", v->src.dir, v->plan.adapter, v->plan.direction);
	if (v->plan.experts)
		printf(", expert dtype %s, %" PRIu64 " routed experts",
		       dtype_name(v->plan.dtype), v->plan.experts);
	else
		printf(", no routed experts");
	if (v->plan.experts && v->plan.ep_end - v->plan.ep_start != v->plan.experts)
		printf(" (this view: %" PRIu64 "..%" PRIu64 ")", v->plan.ep_start,
		       v->plan.ep_end - 1);
	printf("\n");
	for (size_t i = 0; i < v->layout.n; i++) {
		const struct vfile *f = &v->layout.files[i];
		printf("\n%s  %" PRIu64 " bytes  %s\n", f->name, f->size, kind_name(f->kind));
		for (size_t k = 0; k < f->nslots; k++) {
			const struct plan_tensor *t = &v->plan.tensors[f->slots[k].tensor];
			char shape[160], *r = recipe_text(v, t, false);
			size_t o = 0;
			shape[0] = '\0';
			for (int d = 0; d < t->ndim && o < sizeof(shape); d++)
				o += (size_t)snprintf(shape + o, sizeof(shape) - o, d ? ",%" PRIu64 : "%" PRIu64,
						      t->shape[d]);
			printf("  %-60s %-5s [%s]  %s\n", t->name, dtype_name(t->dtype), shape,
			       r ? r : "");
			free(r);
		}
	}
}

/* --- mounting ------------------------------------------------------------- */

static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int mount_and_serve(struct sdafs *fs, struct fuse_args *args,
			   unsigned max_threads, bool allow_other, bool prefetch,
			   struct dist *d)
{
	char err[SD_ERRLEN];
	bool own_mount = fs->materialize_dir && geteuid() == 0 && fs->mountpoint_real;
	struct fuse_loop_config *cfg;
	int rc = 1;

	/* ro makes the kernel refuse writes itself; the ops say EROFS too. */
	if (fuse_opt_add_arg(args, "-oro,default_permissions,subtype=sdafs") < 0 ||
	    fuse_opt_add_arg(args, "-ofsname=sdafs") < 0)
		return 1;
	fs->se = fuse_session_new(args, &sdafs_ops, sizeof(sdafs_ops), fs);
	if (!fs->se) {
		if (d)
			dist_agree(d, false, err);
		return 1;       /* libfuse said why (e.g. an unknown -o option) */
	}
	if (fuse_set_signal_handlers(fs->se) < 0) {
		if (d)
			dist_agree(d, false, err);
		goto out;
	}
	if (own_mount) {        /* so that we can ask for kernel passthrough */
		size_t n = fs->view.layout.n;
		int e = pt_mount(fs, allow_other);
		if (e < 0) {
			fprintf(stderr, "sdafs: cannot mount on %s: %s\n", fs->mountpoint, strerror(-e));
			if (d)
				dist_agree(d, false, err);
			goto out_signals;
		}
		fs->passthrough = true;
		pthread_mutex_init(&fs->pt_mu, NULL);
		if ((fs->backing_ids = malloc((n + 1) * sizeof(*fs->backing_ids))))
			for (size_t i = 0; i < n; i++)
				fs->backing_ids[i] = -1;
	} else if (fuse_session_mount(fs->se, fs->mountpoint) < 0) {
		fprintf(stderr, "sdafs: cannot mount on %s (is it an existing empty directory you may mount on?)\n",
			fs->mountpoint);
		if (d)
			dist_agree(d, false, err);
		goto out_signals;
	}
	if (d && dist_agree(d, true, err) < 0) {
		fprintf(stderr, "sdafs: %s\n", err);
		goto out_unmount;
	}
	if (fuse_daemonize(fs->foreground) < 0)
		goto out_unmount;
	if (!fs->foreground)
		sd_log_detached();
	cfg = fuse_loop_cfg_create();
	if (!cfg)
		goto out_unmount;
	max_threads = max_threads ? max_threads : 16;
	fuse_loop_cfg_set_max_threads(cfg, max_threads);
	fuse_loop_cfg_set_idle_threads(cfg, max_threads);      /* no thread churn */
	if (watch_start(fs) < 0)
		sd_log("cannot start the source watcher; changed sources are still caught on read");
	if (fs->materialize_dir && copies_start(fs, prefetch) < 0)
		sd_log("cannot start the copy writer; nothing will be materialized");
	rc = fuse_session_loop_mt(fs->se, cfg) ? 1 : 0;
	copies_stop(fs);
	watch_stop(fs);
	fuse_loop_cfg_destroy(cfg);
out_unmount:
	if (own_mount)
		pt_unmount(fs);
	else
		fuse_session_unmount(fs->se);
out_signals:
	fuse_remove_signal_handlers(fs->se);
out:
	fuse_session_destroy(fs->se);
	free(fs->backing_ids);
	return rc;
}

static void free_cmdline(struct cmdline *c)
{
	char **strings[] = { &c->src, &c->mountpoint, &c->view, &c->adapter, &c->materialize_dir,
			     &c->adapter_file, &c->dtype, &c->peft,
			     &c->cache_size, &c->backend, &c->ep_rank, &c->ep_size };

	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		free(*strings[i]);
		*strings[i] = NULL;
	}
}

/* MOUNTPOINT with every %r replaced by the rank. */
static char *with_rank(const char *mnt, long rank)
{
	size_t n = strlen(mnt) + 64, o = 0;
	char *out = malloc(n);

	for (const char *p = mnt; out && *p; p++) {
		if (p[0] == '%' && p[1] == 'r') {
			o += (size_t)snprintf(out + o, n - o, "%ld", rank);
			p++;
		} else if (o + 1 < n) {
			out[o++] = *p;
		}
	}
	if (out)
		out[o] = '\0';
	return out;
}

/* %r without -o mpi: the rank comes from the launcher's environment, and so
 * does the EP slice unless one was given. */
static bool expand_rank(struct cmdline *c, struct view_opts *vo)
{
	long rank, size;
	char *m;

	if (!dist_env_rank(&rank, &size)) {
		fprintf(stderr, "sdafs: %%r in %s needs -o mpi or a launcher that sets OMPI_COMM_WORLD_RANK, PMI_RANK or SLURM_PROCID\n",
			c->mountpoint);
		return false;
	}
	if (!(m = with_rank(c->mountpoint, rank)))
		return false;
	free(c->mountpoint);
	c->mountpoint = m;
	if (!vo->ep_size) {
		vo->ep_rank = rank;
		vo->ep_size = size;
		vo->ep_from_rank = true;
	}
	return true;
}

static int run_mpi(struct cmdline *c, struct fuse_args *args, struct view_opts *vo,
		   uint64_t cache_bytes)
{
	struct dist d;
	struct sdafs fs;
	char err[SD_ERRLEN] = "";
	int rc = 1;

	memset(&fs, 0, sizeof(fs));
	fs.devfd = -1;
	if (dist_init(&d, NULL, NULL, err) < 0) {
		fprintf(stderr, "sdafs: %s\n", err);
		return 1;
	}
	char *m = with_rank(c->mountpoint, d.rank);
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
	fs.src = c->src;
	fs.mountpoint = m;
	fs.mountpoint_real = realpath(m, NULL);
	fs.foreground = true;   /* no fork after MPI_Init */
	fs.direct_io = c->direct_io;
	fs.materialize_dir = c->materialize_dir;
	clock_gettime(CLOCK_REALTIME, &fs.mounted_at);
	rc = mount_and_serve(&fs, args, c->max_threads, c->allow_other,
			     c->prefetch && c->materialize_dir, &d);
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

static int run(struct cmdline *c, struct fuse_args *args)
{
	struct view_opts vo;
	struct sdafs fs;
	char err[SD_ERRLEN];
	uint64_t cache_bytes;
	int rc;

	if (c->help) {
		usage(stdout);
		return 0;
	}
	if (c->version) {
		printf("sdafs %s (libfuse %s)\n", SDAFS_VERSION, fuse_pkgversion());
		return 0;
	}
	if (c->list_adapters) {
		list_adapters();
		return 0;
	}
	if (!c->src || (!c->inspect && !c->mountpoint)) {
		usage(stderr);
		return 1;
	}
	if (build_opts(c, &vo, &cache_bytes) < 0)
		return 1;
	raise_fd_limit();
	memset(&fs, 0, sizeof(fs));
	fs.devfd = -1;
	if (c->mpi)
		return run_mpi(c, args, &vo, cache_bytes);
	if (c->mountpoint && strstr(c->mountpoint, "%r") && !expand_rank(c, &vo))
		return 1;
	if (view_open(&fs.view, c->src, &vo, cache_bytes, err) < 0) {
		fprintf(stderr, "sdafs: %s\n", err);
		return 1;
	}
	if (!c->inspect && choose_backend(c, &fs.view.gpu) < 0) {
		view_close(&fs.view);
		return 1;
	}
	if (c->inspect && c->json) {
		rc = inspect_json(&fs.view) < 0;
	} else if (c->inspect) {
		inspect_text(&fs.view);
		rc = 0;
	} else {
		fs.src = c->src;
		fs.mountpoint = c->mountpoint;
		fs.mountpoint_real = realpath(c->mountpoint, NULL);
		fs.foreground = c->foreground;
		fs.direct_io = c->direct_io;
		fs.materialize_dir = c->materialize_dir;
		clock_gettime(CLOCK_REALTIME, &fs.mounted_at);
		rc = mount_and_serve(&fs, args, c->max_threads, c->allow_other, c->prefetch, NULL);
		free(fs.mountpoint_real);
	}
	view_close(&fs.view);
	return rc;
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

	if (fuse_opt_parse(&args, &c, cmd_opts, opt_proc) < 0) {
		usage(stderr);
		rc = 1;
	} else {
		rc = run(&c, &args);
	}
	fuse_opt_free_args(&args);
	free_cmdline(&c);
	return rc;
}
