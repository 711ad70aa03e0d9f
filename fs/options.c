/*
 * options.c — the sdafs command line (see options.h).
 *
 * libfuse's option parser reads -o lists; what it does not know is passed on
 * to libfuse.  Every value is checked here, with a message naming the
 * option, before the source is scanned.
 */
#include "options.h"

#include <errno.h>
#include <fuse_opt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datadir.h"
#include "dist.h"
#include "err.h"
#include "fs.h"
#include "materialize.h"
#include "option_names.h"

/* The kernel page cache keeps converted pages (keep_cache); this cache only
 * stages chunks while requests are served and holds the random-access working
 * set.  A smaller cache also reuses its memory sooner: fresh pages cost a
 * kernel zero-fill each, which is a third of a cold read here. */
#define DEFAULT_CACHE   ((uint64_t)256 << 20)
/* A few chunks ahead of each sequential reader keeps every core converting
 * (an expert is 1-16 MiB); what is converted ahead and not read yet is
 * bounded by a quarter of the cache besides. */
#define DEFAULT_READAHEAD ((uint64_t)32 << 20)

enum { KEY_HELP, KEY_VERSION, KEY_FOREGROUND, KEY_DEBUG, KEY_ALLOW_OTHER, KEY_VERBOSE };

#define OPT(t, p) { t, offsetof(struct cmdline, p), 1 }
static const struct fuse_opt cmd_opts[] = {
	OPT("view=%s", view), OPT("adapter=%s", adapter),
	OPT("adapter_file=%s", adapter_file), OPT("dtype=%s", dtype),
	OPT("cache_size=%s", cache_size), OPT("backend=%s", backend),
	OPT("ep_rank=%s", ep_rank), OPT("ep_size=%s", ep_size),
	OPT("max_threads=%u", max_threads), OPT("direct_io", direct_io),
	OPT("mpi", mpi), OPT("--inspect", inspect), OPT("--json", json),
	OPT("materialize_dir=%s", materialize_dir), OPT("prefetch", prefetch),
	OPT("materialize_max=%s", materialize_max), OPT("--verify-copies", verify_copies),
	OPT("peft=%s", peft), OPT("log=%s", log_file),
	OPT("gpu_mem=%s", gpu_mem), OPT("gpu_pinned=%s", gpu_pinned),
	OPT("readahead=%s", readahead),
	OPT("cpu=%s", cpu),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	OPT("--list-adapters", list_adapters),
	FUSE_OPT_KEY("-h", KEY_HELP), FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION), FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND), FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("-v", KEY_VERBOSE), FUSE_OPT_KEY("--verbose", KEY_VERBOSE),
	FUSE_OPT_END
};

void options_usage(FILE *out)
{
	fprintf(out,
"usage: sdafs [-f] [-d] [-v] [-o OPTIONS] SRC MOUNTPOINT\n"
"       sdafs convert [-o OPTIONS] [-j N] [--force] [--all-ranks] [--quiet] SRC DST\n"
"       sdafs verify [-o OPTIONS] [-j N] [--json] [--quiet] SRC DIR\n"
"       sdafs --inspect [--json] [-o OPTIONS] SRC\n"
"       sdafs --verify-copies -o materialize_dir=DIR[,OPTIONS] SRC\n"
"       sdafs --list-adapters\n"
"       sdafs status [--wait] [MOUNTPOINT...]\n"
"\n"
"Mount the checkpoint directory SRC (config.json, *.safetensors, optional\n"
"model.safetensors.index.json) at MOUNTPOINT in the other layout: a HuggingFace\n"
"checkpoint as NeMo Automodel's native layout, a native one as HuggingFace, an\n"
"Automodel sharded training save (model/) as its consolidated HF checkpoint.\n"
"Nothing is converted until it is read; a read converts only the chunks it\n"
"touches.  Unmount with: fusermount3 -u MOUNTPOINT\n"
"\n"
"Where nothing can be mounted: sdafs convert writes the files the mount would\n"
"show into the new directory DST (whole or not at all), and sdafs verify\n"
"compares a directory with them, file by file and tensor by tensor; both take\n"
"the view options below (sdafs convert --help, sdafs verify --help).\n"
"\n"
"  -f                   stay in the foreground\n"
"  -d, -o debug         debug: foreground with libfuse request tracing\n"
"  -v, --verbose        say more at mount (e.g. why conversion runs on the CPU)\n"
"  --inspect            print the plan (tensors, dtypes, shapes, recipes, files)\n"
"                       and exit without mounting\n"
"  --json               with --inspect: the plan as JSON\n"
"  --verify-copies      read every copy materialize_dir holds for this view\n"
"                       against the checksum written with it, and exit\n"
"  --list-adapters      print the model families sdafs knows\n"
"  -h, --help           this text\n"
"  -V, --version        the version\n"
"\n"
"options (-o a,b,c):\n"
"  view=auto|native|hf  the layout to show (auto: the other one than SRC's; for\n"
"                       an Automodel sharded save, its consolidated HF checkpoint;\n"
"                       for a PEFT adapter directory, the other key layout)\n"
"  peft=v5|v4           HF view of a PEFT adapter with grouped expert LoRA:\n"
"                       ParamWrapper tensors (v5, default) or per-expert keys (v4)\n"
"  adapter=NAME         model family (default: from config.json; a PEFT adapter\n"
"                       without one: from its key names, if they tell): a\n"
"                       built-in, or a table NAME.json installed in\n"
"                       PREFIX/share/sdafs/adapters\n"
"  adapter_file=PATH    a model family described as a JSON rule table\n"
"  dtype=auto|bf16|fp16|fp32\n"
"                       native view: dtype of merged expert tensors (auto: config\n"
"                       torch_dtype, bfloat16 when absent); HF view: auto casts\n"
"                       nothing, a dtype casts every float tensor except those\n"
"                       Automodel keeps in F32 (Mamba A_log/dt_bias/D, router bias)\n"
"  cache_size=SIZE      bytes of converted chunks kept (K/M/G/T; default 256M)\n"
"  readahead=SIZE       convert up to SIZE ahead of a sequential reader, on\n"
"                       worker threads (default 32M; 0: convert only what is read)\n"
"  ep_rank=R,ep_size=N  show only expert-parallel rank R's experts; without\n"
"                       ep_rank the rank is the launcher's (OMPI_COMM_WORLD_RANK,\n"
"                       PMI_RANK, SLURM_PROCID); ep_size=auto (or %%r in\n"
"                       MOUNTPOINT) takes the launcher's size too\n"
"  mpi                  one daemon per MPI rank (under mpirun/srun; stays in the\n"
"                       foreground): rank 0 reads the headers for everyone, each\n"
"                       rank shows its own experts\n"
"  backend=auto|cpu|cuda  where chunks are converted: cuda needs a usable GPU\n"
"                       (and a build with nvcc); auto uses one when there is one\n"
"  gpu_mem=SIZE         GPU memory the conversions may hold (default: a quarter\n"
"                       of what is free at mount, split among the node's ranks\n"
"                       that share the GPU)\n"
"  gpu_pinned=SIZE      pinned host memory they may hold (default: an eighth of\n"
"                       RAM, split among the node's ranks)\n"
"  cpu=auto|scalar|sse2|avx2|avx512\n"
"                       the CPU's conversion kernels (auto: the widest this CPU\n"
"                       has; every one gives the same bytes); default: the\n"
"                       environment variable SDAFS_CPU, else auto\n"
"  max_threads=N        FUSE worker threads (default 16)\n"
"  direct_io            bypass the page cache (streaming readers that do not mmap)\n"
"  materialize_dir=DIR  keep converted view files in DIR (once read to the end, or\n"
"                       all at once with prefetch) and serve them from there; as\n"
"                       root on Linux >= 6.9 the kernel reads them directly.\n"
"                       A copy is used only if this user wrote it for these\n"
"                       very source files and it is unchanged since; DIR\n"
"                       must not be writable by others unless sticky (+t)\n"
"  materialize_max=SIZE with materialize_dir: keep the copies in DIR under\n"
"                       SIZE bytes (K/M/G/T), removing least recently used ones\n"
"  prefetch             with materialize_dir: convert every file right away;\n"
"                       with mpi: read each shared tensor once per job and\n"
"                       broadcast it to every rank\n"
"  allow_other          let other users read the mount: each file shows the\n"
"                       owner, group and read bits of the source files it is\n"
"                       made from (a link's target's) and the kernel enforces\n"
"                       them, so no one reads more than the source lets them\n"
"  log=FILE             append the daemon's log to FILE, with timestamps (%%r:\n"
"                       the rank under mpi); without it, after detaching, to\n"
"                       syslog when a syslog socket answers\n"
"  libfuse's own mount options are passed on: allow_root, auto_unmount,\n"
"  max_read=N, default_permissions, ro, rw, atime, noatime, suid, nosuid,\n"
"  dev, nodev, exec, noexec, async, sync, dirsync, context=, fscontext=,\n"
"  defcontext=, rootcontext=\n"
"\n"
"%%r in MOUNTPOINT is the rank (MPI's, or the launcher's); a per-rank mount point\n"
"that is missing is made, and removed again at unmount.\n"
"The file MOUNTPOINT/" STATS_NAME " (not listed) holds live statistics as JSON,\n"
"with the last 20 lines of the log; sdafs status lists the mounts and, with\n"
"--wait, shows prefetch progress.  See sdafs(8).\n");
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
	case KEY_VERBOSE:
		c->verbose = 1;
		return 0;
	case FUSE_OPT_KEY_OPT:
		return options_for_libfuse(arg) ? 1 : (options_unknown(cmd_opts, arg), -1);
	case FUSE_OPT_KEY_NONOPT:
		if (!c->src)
			return (c->src = strdup(arg)) ? 0 : -1;
		if (!c->mountpoint)
			return (c->mountpoint = strdup(arg)) ? 0 : -1;
		fprintf(stderr, "sdafs: unexpected argument '%s': give SRC and MOUNTPOINT only\n", arg);
		return -1;
	default:
		return 1;
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

/* A size option: NAME=VALUE into *out (untouched without one); 0 only where
 * zero_ok.  -1 after a message giving an example. */
static int size_option(const char *name, const char *value, bool zero_ok,
		       const char *example, uint64_t *out)
{
	if (!value)
		return 0;
	if (parse_size(value, out) < 0 || (!zero_ok && *out == 0)) {
		fprintf(stderr, "sdafs: %s=%s: expected a size such as %s\n", name, value, example);
		return -1;
	}
	return 0;
}

int options_view(const struct cmdline *c, struct view_opts *o, uint64_t *cache)
{
	memset(o, 0, sizeof(*o));
	o->dtype = SD_DTYPE_INVALID;
	o->adapter = c->adapter;
	o->adapter_file = c->adapter_file;
	o->adapter_dirs = datadir_adapter_dirs();
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
	if (size_option("cache_size", c->cache_size, false, "512M or 4G", cache) < 0)
		return -1;
	if (c->backend && strcmp(c->backend, "auto") && strcmp(c->backend, "cpu") &&
	    strcmp(c->backend, "cuda")) {
		fprintf(stderr, "sdafs: backend=%s: expected auto, cpu or cuda\n", c->backend);
		return -1;
	}
	if (c->prefetch && !c->materialize_dir && !c->mpi) {
		fprintf(stderr, "sdafs: prefetch needs materialize_dir=DIR (where the converted files go) or mpi\n");
		return -1;
	}
	if (c->mpi && !dist_available()) {
		fprintf(stderr, "sdafs: -o mpi: this sdafs was built without MPI (install libopenmpi-dev and rebuild); or give each rank ep_rank=R,ep_size=N\n");
		return -1;
	}
	return 0;
}

int options_copies(const struct cmdline *c, uint64_t *max_bytes)
{
	char err[SD_ERRLEN];
	int dirfd;

	*max_bytes = 0;
	if ((c->materialize_max || c->verify_copies) && !c->materialize_dir) {
		fprintf(stderr, "sdafs: %s needs materialize_dir=DIR (where the copies are)\n",
			c->verify_copies ? "--verify-copies" : "materialize_max");
		return -1;
	}
	if (size_option("materialize_max", c->materialize_max, false, "20G", max_bytes) < 0)
		return -1;
	if (c->materialize_dir) {
		if (materialize_dir_open(c->materialize_dir, &dirfd, err) < 0) {
			fprintf(stderr, "sdafs: %s\n", err);
			return -1;
		}
		close(dirfd);
	}
	return 0;
}

int options_gpu(const struct cmdline *c, struct gpu_config *g)
{
	const struct { const char *name, *value; uint64_t *out; } sizes[] = {
		{ "gpu_mem", c->gpu_mem, &g->device_bytes },
		{ "gpu_pinned", c->gpu_pinned, &g->pinned_bytes },
	};

	memset(g, 0, sizeof(*g));
	g->device = -1;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		if (size_option(sizes[i].name, sizes[i].value, false, "512M or 4G", sizes[i].out) < 0)
			return -1;
	return 0;
}

int options_readahead(const struct cmdline *c, uint64_t *window)
{
	*window = DEFAULT_READAHEAD;
	return size_option("readahead", c->readahead, true, "32M, or 0 for none", window);
}

void options_free(struct cmdline *c)
{
	char **strings[] = { &c->src, &c->mountpoint, &c->view, &c->adapter, &c->materialize_dir,
			     &c->materialize_max, &c->adapter_file, &c->dtype, &c->peft, &c->log_file,
			     &c->gpu_mem, &c->gpu_pinned, &c->options_text, &c->readahead,
			     &c->cache_size, &c->backend, &c->ep_rank, &c->ep_size, &c->cpu };

	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		free(*strings[i]);
		*strings[i] = NULL;
	}
}


/* MOUNTPOINT with every %r replaced by the rank. */
char *options_with_rank(const char *mnt, long rank)
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

int options_parse(struct fuse_args *args, struct cmdline *c)
{
	if (!(c->options_text = options_given(args->argc, args->argv)))
		return -1;
	return fuse_opt_parse(args, c, cmd_opts, opt_proc);
}
