/*
 * ops.c — how fast each recipe operation runs, per backend, on synthetic
 * tensors of the sizes real checkpoints have (`make bench-ops`; `make bench`
 * runs it as one section).
 *
 * Every case is a recipe over an in-memory source evaluated the way the
 * view does it: in calls of one cache chunk each (one expert of a stacked
 * tensor, else 4 MiB of rows), with the source handed over by memcpy where
 * the daemon would pread it from the page cache.  The figure is bytes of
 * output per second on one thread (the daemon converts one chunk per
 * worker), the median of the timed passes after one untimed pass that grows
 * the scratch arenas and faults in the output.  Where gpu_init() finds a
 * GPU the same calls go through recipe_eval_cuda, whose output must equal
 * the CPU's byte for byte (the run fails otherwise).
 *
 * The last section times the mount's self-check (--only selfcheck).
 *
 *   ops [--reps N] [--json FILE] [--only NAME] [--cpu-time]
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend_check.h"
#include "dtype.h"
#include "err.h"
#include "gpu.h"
#include "kernels.h"
#include "memsrc.h"
#include "recipe.h"

#define CHUNK_BYTES ((uint64_t)4 << 20)         /* plan.c's CHUNK_TARGET */

/* One case's source tensors and its recipe. */
struct bench_case {
	struct memsrc mem;
	struct rx_reader reader;
	struct recipe r;
	uint64_t chunk_rows;
	unsigned char *copy_src;        /* what the memcpy column copies */
	char err[SD_ERRLEN];
};

static void die(const char *what, const char *err)
{
	fprintf(stderr, "ops: %s: %s\n", what, err);
	exit(1);
}

/* A source tensor of random bytes; returns its rx_src node.  Random bytes
 * are fine for every dtype here: the casts and dequant tables cost the
 * same for every pattern, NaNs included. */
static int add_src(struct bench_case *c, enum sd_dtype dt, int ndim, const uint64_t *shape)
{
	int i = memsrc_add(&c->mem, NULL, dt, ndim, shape, MEMSRC_RANDOM, c->err);

	if (i < 0)
		die("add_src", c->err);
	int x = memsrc_src(&c->mem, &c->r, (uint32_t)i, c->err);
	if (x < 0)
		die("rx_src", c->err);
	return x;
}

/* A builder's result, or the end of the run with its message. */
static int ok(struct bench_case *c, int x)
{
	if (x < 0)
		die("building a recipe", c->err);
	return x;
}

/* Random bytes, as a source tensor has them. */
static void fill_bytes(struct bench_case *c, unsigned char *p, uint64_t n)
{
	for (uint64_t i = 0; i < n; i += 8) {
		uint64_t x = memsrc_random(&c->mem);
		memcpy(p + i, &x, n - i < 8 ? n - i : 8);
	}
}

static void case_free(struct bench_case *c)
{
	memsrc_free(&c->mem);
	recipe_free(&c->r);
}

/* --- the cases -------------------------------------------------------------- */

/* Expert sizes: Nemotron-3-Nano-30B-A3B-like H 2688, I 1856; the issue's
 * 512-wide Nemotron-H experts (H 1024, I 512, 64 of them); DeepSeek-V3's
 * 7168 x 2048 FP8 experts; GPT-OSS-120b's [5760, 90, 16] MXFP4 gate_up. */
enum { H = 2688, I = 1856, E = 8, H_NARROW = 1024, I_NARROW = 512, E_NARROW = 64 };

static void build_transpose_stack(struct bench_case *c)
{
	int x = add_src(c, SD_BF16, 3, (uint64_t[]){ E, H, I });

	ok(c, rx_transpose_last2(&c->r, x, c->err));
}

/* What the view does for down_projs: each expert [rows, cols] transposed,
 * stacked. */
static void stack_transposed(struct bench_case *c, enum sd_dtype dt, int experts,
			     uint64_t rows, uint64_t cols)
{
	int xs[E_NARROW];

	for (int e = 0; e < experts; e++) {
		int x = add_src(c, dt, 2, (uint64_t[]){ rows, cols });
		xs[e] = ok(c, rx_transpose_last2(&c->r, x, c->err));
	}
	ok(c, rx_stack0(&c->r, xs, (uint32_t)experts, c->err));
}

static void build_stack_transposed(struct bench_case *c)
{
	stack_transposed(c, SD_BF16, E, H, I);
}

static void build_stack_transposed_narrow(struct bench_case *c)
{
	stack_transposed(c, SD_BF16, E_NARROW, H_NARROW, I_NARROW);
}

static void build_stack_transposed_f32(struct bench_case *c)
{
	stack_transposed(c, SD_F32, E, H, I / 2);
}

static void build_stack_copy(struct bench_case *c)
{
	int xs[E];

	for (int e = 0; e < E; e++)
		xs[e] = add_src(c, SD_BF16, 2, (uint64_t[]){ H, I });
	ok(c, rx_stack0(&c->r, xs, E, c->err));
}

/* gate_and_up_projs: [gate_e^T | up_e^T] per expert, stacked. */
static void gate_and_up(struct bench_case *c, int experts, uint64_t inter, uint64_t hidden)
{
	int xs[E_NARROW];

	for (int e = 0; e < experts; e++) {
		int gu[2];
		for (int k = 0; k < 2; k++)
			gu[k] = ok(c, rx_transpose_last2(&c->r, add_src(c, SD_BF16, 2,
					(uint64_t[]){ inter, hidden }), c->err));
		xs[e] = ok(c, rx_concat_last(&c->r, gu, 2, c->err));
	}
	ok(c, rx_stack0(&c->r, xs, (uint32_t)experts, c->err));
}

static void build_gate_and_up(struct bench_case *c)
{
	gate_and_up(c, E, I, H);
}

static void build_gate_and_up_narrow(struct bench_case *c)
{
	gate_and_up(c, E_NARROW, I_NARROW, H_NARROW);
}

static void build_concat_last(struct bench_case *c)
{
	int xs[2];

	for (int k = 0; k < 2; k++)
		xs[k] = add_src(c, SD_BF16, 2, (uint64_t[]){ E * H, I });
	ok(c, rx_concat_last(&c->r, xs, 2, c->err));
}

static void cast(struct bench_case *c, enum sd_dtype from, enum sd_dtype to)
{
	int x = add_src(c, from, 2, (uint64_t[]){ E * H, I });

	ok(c, rx_cast(&c->r, x, to, c->err));
}

static void build_cast_bf16_f32(struct bench_case *c)
{
	cast(c, SD_BF16, SD_F32);
}

static void build_cast_f32_bf16(struct bench_case *c)
{
	cast(c, SD_F32, SD_BF16);
}

static void build_cast_f16_f32(struct bench_case *c)
{
	cast(c, SD_F16, SD_F32);
}

static void build_cast_f32_f16(struct bench_case *c)
{
	cast(c, SD_F32, SD_F16);
}

/* Scales drawn from a range real weight_scale_inv values have. */
static void build_dequant_fp8(struct bench_case *c, enum sd_dtype to)
{
	const uint64_t out = 7168, in = 2048;
	int q = add_src(c, SD_F8_E4M3, 2, (uint64_t[]){ out, in });
	int s = add_src(c, SD_F32, 2, (uint64_t[]){ out / 128, in / 128 });
	float *sb = (float *)c->mem.bytes[c->mem.ntensors - 1];

	for (uint64_t k = 0; k < (out / 128) * (in / 128); k++)
		sb[k] = (float)(memsrc_random(&c->mem) % 1000 + 1) * 1e-6f;
	ok(c, rx_dequant_fp8_block(&c->r, q, s, to, c->err));
}

static void build_dequant_fp8_bf16(struct bench_case *c)
{
	build_dequant_fp8(c, SD_BF16);
}

static void build_dequant_fp8_f32(struct bench_case *c)
{
	build_dequant_fp8(c, SD_F32);
}

/* Two experts of GPT-OSS-120b's gate_up_proj; E8M0 scales near 2^-8. */
static void build_dequant_mxfp4(struct bench_case *c)
{
	int b = add_src(c, SD_U8, 4, (uint64_t[]){ 2, 5760, 90, 16 });
	int s = add_src(c, SD_U8, 3, (uint64_t[]){ 2, 5760, 90 });
	unsigned char *sb = c->mem.bytes[c->mem.ntensors - 1];

	for (uint64_t k = 0; k < 2 * 5760 * 90; k++)
		sb[k] = (unsigned char)(112 + memsrc_random(&c->mem) % 16);
	ok(c, rx_dequant_mxfp4(&c->r, b, s, SD_BF16, c->err));
}

static const struct {
	const char *name, *what;
	void (*build)(struct bench_case *c);
	bool per_row;           /* one row of dim 0 (an expert) per call */
} cases[] = {
	{ "transpose_last2", "BF16 [8, 2688, 1856] -> [8, 1856, 2688]", build_transpose_stack, true },
	{ "stack0_transpose", "8 x transpose_last2(BF16 [2688, 1856]), stacked", build_stack_transposed, true },
	{ "stack0_transpose_512", "64 x transpose_last2(BF16 [1024, 512]), stacked", build_stack_transposed_narrow, true },
	{ "stack0_transpose_f32", "8 x transpose_last2(F32 [2688, 928]), stacked", build_stack_transposed_f32, true },
	{ "stack0_copy", "8 x BF16 [2688, 1856], stacked", build_stack_copy, true },
	{ "gate_and_up", "8 x concat_last(gate^T, up^T), BF16 [1856, 2688] each", build_gate_and_up, true },
	{ "gate_and_up_512", "64 x concat_last(gate^T, up^T), BF16 [512, 1024] each", build_gate_and_up_narrow, true },
	{ "concat_last", "concat_last of 2 x BF16 [21504, 1856]", build_concat_last, false },
	{ "cast_bf16_f32", "BF16 -> F32, [21504, 1856]", build_cast_bf16_f32, false },
	{ "cast_f32_bf16", "F32 -> BF16, [21504, 1856]", build_cast_f32_bf16, false },
	{ "cast_f16_f32", "F16 -> F32, [21504, 1856]", build_cast_f16_f32, false },
	{ "cast_f32_f16", "F32 -> F16, [21504, 1856]", build_cast_f32_f16, false },
	{ "dequant_fp8_bf16", "F8_E4M3 [7168, 2048] x F32 block scales -> BF16", build_dequant_fp8_bf16, false },
	{ "dequant_fp8_f32", "F8_E4M3 [7168, 2048] x F32 block scales -> F32", build_dequant_fp8_f32, false },
	{ "dequant_mxfp4", "MXFP4 [2, 5760, 90, 16] x E8M0 -> BF16 [2, 5760, 2880]", build_dequant_mxfp4, true },
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* --- timing ----------------------------------------------------------------- */

typedef int (*eval_fn)(const struct recipe *r, uint64_t r0, uint64_t r1, void *dst,
		       const struct rx_reader *rd, char *err);

/* What a column of the table times: memcpy of as many bytes (the
 * ceiling), the CPU evaluator on one kernel path, or the CUDA backend. */
enum column_kind { COL_MEMCPY, COL_CPU, COL_CUDA };

struct column {
	const char *name;
	enum column_kind kind;
	enum sd_cpu_path path;
};

/* CLOCK_MONOTONIC, or with --cpu-time this thread's CPU time: on a shared
 * machine that leaves out the time spent waiting for a core (memory stalls
 * still count). */
static clockid_t timer = CLOCK_MONOTONIC;

static double now(void)
{
	struct timespec ts;

	clock_gettime(timer, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The whole root, chunk by chunk, into out, by column col; seconds, or < 0
 * on failure.  The memcpy column copies c->copy_src, in calls as big as
 * the chunks. */
static double one_pass(struct bench_case *c, const struct column *col, unsigned char *out)
{
	const struct rx_node *root = rx_root(&c->r);
	uint64_t rows = rx_rows(root), rb = rx_row_bytes(root);
	eval_fn eval = col->kind == COL_CUDA ? recipe_eval_cuda : recipe_eval_cpu;

	if (col->kind == COL_CPU && sd_kernels_choose(col->name, c->err) < 0)
		return -1;
	double t0 = now();
	for (uint64_t r0 = 0; r0 < rows; r0 += c->chunk_rows) {
		uint64_t r1 = r0 + c->chunk_rows < rows ? r0 + c->chunk_rows : rows;
		if (col->kind == COL_MEMCPY)
			memcpy(out + r0 * rb, c->copy_src + r0 * rb, (r1 - r0) * rb);
		else if (eval(&c->r, r0, r1, out + r0 * rb, &c->reader, c->err) < 0)
			return -1;
	}
	return now() - t0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *t, int n)
{
	qsort(t, (size_t)n, sizeof(t[0]), cmp_double);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

#define MAX_COLUMNS (SD_CPU_NPATHS + 2)

/*
 * Median seconds of each column over reps rounds; in each round every
 * column runs once, starting at a different column each round, so a drift
 * of the (shared) machine hits all alike.  Each column first runs once
 * untimed; every evaluating column's output must equal the first one's.
 * Returns 0, or the column that failed (its note says why) + 1.
 */
static int time_columns(struct bench_case *c, const struct column *cols, int ncols,
			unsigned char *ref, unsigned char *out, uint64_t bytes, int reps,
			double *secs, const char **note)
{
	double t[MAX_COLUMNS][64];

	for (int j = 0; j < ncols; j++) {
		bool first = j == 1;    /* column 0 is the memcpy */
		if (one_pass(c, &cols[j], first ? ref : out) < 0) {
			*note = c->err;
			return j + 1;
		}
		if (j > 1 && memcmp(ref, out, bytes)) {
			*note = "output differs from the first column's";
			return j + 1;
		}
	}
	for (int r = 0; r < reps; r++)
		for (int i = 0; i < ncols; i++) {
			int j = (r + i) % ncols;
			if ((t[j][r] = one_pass(c, &cols[j], out)) < 0) {
				*note = c->err;
				return j + 1;
			}
		}
	for (int j = 0; j < ncols; j++)
		secs[j] = median(t[j], reps);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: ops [--reps N (1..64, default 5)] [--json FILE] [--only NAME] [--cpu-time]\n");
	exit(2);
}

/*
 * The mount's self-check (backend_check.c), its CPU side: the CPU evaluator
 * against itself is an upper bound of what a GPU mount spends on the CPU
 * (it runs the CPU evaluation twice where a GPU mount runs it once), the
 * median of reps runs.  With a GPU, the whole check as a mount runs it.
 */
static void time_self_check(cJSON *doc, bool gpu, int reps)
{
	double t[64], g = 0;
	char err[SD_ERRLEN];

	for (int i = 0; i < reps; i++) {
		double t0 = now();
		if (backend_check(recipe_eval_cpu, NULL, err) < 0)
			die("self-check", err);
		t[i] = now() - t0;
	}
	qsort(t, (size_t)reps, sizeof(t[0]), cmp_double);
	printf("\nmount self-check, CPU against itself: %.1f ms (median of %d)\n", t[reps / 2] * 1e3, reps);
	cJSON_AddNumberToObject(doc, "self_check_cpu_ms", t[reps / 2] * 1e3);
	if (!gpu)
		return;
	double t0 = now();
	if (backend_check(recipe_eval_cuda, recipe_eval_cuda_batched, err) < 0)
		die("self-check on the GPU", err);
	g = now() - t0;
	printf("mount self-check, GPU against CPU: %.1f ms (first run: pools grow)\n", g * 1e3);
	cJSON_AddNumberToObject(doc, "self_check_gpu_ms", g * 1e3);
}

/* The memcpy column, then every kernel path this CPU has, narrowest first;
 * returns how many. */
static int cpu_columns(struct column *cols)
{
	int n = 0;

	cols[n++] = (struct column){ "memcpy", COL_MEMCPY, SD_CPU_SCALAR };
	for (int p = 0; p < SD_CPU_NPATHS; p++)
		if (sd_kernels_path((enum sd_cpu_path)p))
			cols[n++] = (struct column){ sd_cpu_path_name((enum sd_cpu_path)p), COL_CPU,
						     (enum sd_cpu_path)p };
	return n;
}

static void print_header(void)
{
	printf("\n%-20s %8s %7s", "op", "MB out", "memcpy");
	for (int p = 0; p < SD_CPU_NPATHS; p++)
		printf(" %7s", sd_cpu_path_name((enum sd_cpu_path)p));
	printf(" %7s %8s  %s\n", "CUDA", "CUDA/CPU", "what");
}

/* One row of the table and its JSON. */
static void report(cJSON *rows, size_t k, const struct bench_case *c, const struct column *cols,
		   int ncpu, int ncols, const double *secs, uint64_t bytes, const char *note)
{
	cJSON *row = cJSON_CreateObject(), *paths = cJSON_CreateObject();
	double gbs[MAX_COLUMNS];

	for (int j = 0; j < ncols; j++)
		gbs[j] = (double)bytes / secs[j] * 1e-9;
	cJSON_AddStringToObject(row, "op", cases[k].name);
	cJSON_AddStringToObject(row, "what", cases[k].what);
	cJSON_AddNumberToObject(row, "bytes_out", (double)bytes);
	cJSON_AddNumberToObject(row, "chunk_rows", (double)c->chunk_rows);
	cJSON_AddNumberToObject(row, "memcpy_gb_s", gbs[0]);
	printf("%-20s %8.1f %7.2f", cases[k].name, (double)bytes / 1e6, gbs[0]);
	for (int p = 0, j = 1; p < SD_CPU_NPATHS; p++) {
		if (j < ncpu && cols[j].path == (enum sd_cpu_path)p) {
			cJSON_AddNumberToObject(paths, cols[j].name, gbs[j]);
			printf(" %7.2f", gbs[j++]);
		} else {
			printf(" %7s", "-");
		}
	}
	cJSON_AddItemToObject(row, "paths", paths);
	cJSON_AddNumberToObject(row, "cpu_s", secs[ncpu - 1]);
	cJSON_AddNumberToObject(row, "cpu_gb_s", gbs[ncpu - 1]);
	cJSON_AddStringToObject(row, "cpu_path", cols[ncpu - 1].name);
	char gcol[16] = "-", ratio[16] = "-";
	if (ncols > ncpu) {
		cJSON_AddNumberToObject(row, "cuda_s", secs[ncpu]);
		cJSON_AddNumberToObject(row, "cuda_gb_s", gbs[ncpu]);
		cJSON_AddNumberToObject(row, "cuda_over_cpu", gbs[ncpu] / gbs[ncpu - 1]);
		snprintf(gcol, sizeof(gcol), "%.2f", gbs[ncpu]);
		snprintf(ratio, sizeof(ratio), "%.2f", gbs[ncpu] / gbs[ncpu - 1]);
	} else if (note) {
		cJSON_AddStringToObject(row, "cuda_note", note);
	}
	cJSON_AddItemToArray(rows, row);
	printf(" %7s %8s  %s\n", gcol, ratio, cases[k].what);
	if (note)
		printf("%-20s CUDA: %s\n", "", note);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *json_path = NULL, *only = NULL;
	int reps = 5;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--json") && i + 1 < argc)
			json_path = argv[++i];
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else if (!strcmp(argv[i], "--cpu-time"))
			timer = CLOCK_THREAD_CPUTIME_ID;
		else
			usage();
	}
	if (reps < 1 || reps > 64)
		usage();

	char gpu_name[256] = "", why[SD_ERRLEN] = "";
	bool gpu = gpu_init(gpu_name, sizeof(gpu_name), why) == 0;
	cJSON *doc = cJSON_CreateObject(), *rows = cJSON_AddArrayToObject(doc, "ops");
	struct column cols[MAX_COLUMNS];
	int ncpu = cpu_columns(cols);           /* memcpy and the CPU paths */
	const char *best = cols[ncpu - 1].name;

	cJSON_AddNumberToObject(doc, "reps", reps);
	cJSON_AddStringToObject(doc, "unit", "GB/s of output (1e9 bytes), one thread, median");
	cJSON_AddStringToObject(doc, "clock", timer == CLOCK_MONOTONIC ? "wall" : "thread CPU time");
	cJSON_AddStringToObject(doc, "cpu_path", best);
	cJSON_AddBoolToObject(doc, "cuda_compiled_in", gpu_compiled_in());
	if (gpu)
		cJSON_AddStringToObject(doc, "cuda_device", gpu_name);
	else
		cJSON_AddStringToObject(doc, "cuda_skipped", why);

	printf("recipe operations, one thread, GB/s of output (median of %d interleaved passes, %s)\n",
	       reps, timer == CLOCK_MONOTONIC ? "wall clock" : "thread CPU time");
	printf("memcpy: as many bytes in calls of one chunk, the ceiling; then one column per CPU\n"
	       "kernel path (- where this CPU lacks it); CUDA/CPU is against %s\n", best);
	if (!gpu)
		printf("CUDA column skipped: %s\n", why);
	else
		printf("CUDA: %s\n", gpu_name);
	print_header();

	int failed = 0;
	for (size_t k = 0; k < NCASES; k++) {
		if (only && strcmp(only, cases[k].name))
			continue;
		struct bench_case *c = calloc(1, sizeof(*c));
		if (!c)
			die("main", "out of memory");
		memsrc_init(&c->mem, 0x2545F4914F6CDD1Dull);
		c->reader = memsrc_reader(&c->mem);

		cases[k].build(c);
		const struct rx_node *root = rx_root(&c->r);
		uint64_t rb = rx_row_bytes(root), bytes = rx_rows(root) * rb;
		uint64_t alloc = (bytes + 63) & ~(uint64_t)63;
		int ncols = ncpu;
		double secs[MAX_COLUMNS];
		const char *note = NULL;
		c->chunk_rows = cases[k].per_row || rb >= CHUNK_BYTES ? 1 : CHUNK_BYTES / rb;
		if (gpu && gpu_supports(&c->r))
			cols[ncols++] = (struct column){ "cuda", COL_CUDA, SD_CPU_SCALAR };
		else if (gpu)
			note = "not supported by the CUDA backend";
		/* aligned as the daemon's cache chunks are (cache.c) */
		unsigned char *ref = aligned_alloc(64, alloc), *out = aligned_alloc(64, alloc);
		if (!ref || !out || !(c->copy_src = aligned_alloc(64, alloc)))
			die("main", "out of memory");
		fill_bytes(c, c->copy_src, bytes);
		int bad = time_columns(c, cols, ncols, ref, out, bytes, reps, secs, &note);
		if (bad) {
			failed = 1;
			printf("%-20s %s: %s\n", cases[k].name, cols[bad - 1].name, note);
		} else {
			report(rows, k, c, cols, ncpu, ncols, secs, bytes, note);
		}
		free(ref);
		free(out);
		free(c->copy_src);
		case_free(c);
		free(c);
	}

	if (!only || !strcmp(only, "selfcheck"))
		time_self_check(doc, gpu, reps);
	if (json_path) {
		char *text = cJSON_Print(doc);
		FILE *f = fopen(json_path, "w");
		if (!text || !f || fputs(text, f) < 0 || fclose(f) != 0) {
			fprintf(stderr, "ops: cannot write %s: %s\n", json_path, strerror(errno));
			return 1;
		}
		free(text);
	}
	cJSON_Delete(doc);
	return failed;
}
