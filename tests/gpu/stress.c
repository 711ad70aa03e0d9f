/*
 * stress.c — the CUDA backend on a real GPU, where it is most likely to
 * break: an error left behind by another call, processes that fork, sixteen
 * threads under a small memory bound, one chunk larger than 4 GiB (done in
 * row batches, and transposed in launch groups), recipes the GPU must
 * decline, a poisoned context, and the mount's self-check.  Every byte the
 * GPU produces is compared with the CPU evaluator's.
 *
 *   gpu_stress [--large] [--only NAME]
 *
 * Prints TAP.  Each scenario runs in a child process of its own, so CUDA
 * starts fresh in each and a fault in one cannot spoil the next; the parent
 * never starts CUDA (it asks a child whether there is a GPU, and without
 * one every scenario is a skip that says why).  --large adds the chunks of
 * more than 2^31 elements (about 25 GB of host memory, 16 GB of device
 * memory, a minute or two).  Built by the Makefile where nvcc exists;
 * scripts/gpu-check.sh runs it.
 */
#include <cuda_runtime_api.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend_check.h"
#include "err.h"
#include "gpu.h"
#include "memsrc.h"
#include "recipe.h"

#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)

int stress_poison_context(void);        /* poison.cu */

enum { PASS = 0, FAIL = 1, SKIP = 2 };

/* One scenario's recipe over in-memory tensors. */
struct scase {
	struct memsrc mem;
	struct recipe r;
	struct rx_reader rd;
	char err[SD_ERRLEN];
};

/* A message into msg (SD_ERRLEN bytes). */
static void say(char *msg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(char *msg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, SD_ERRLEN, fmt, ap);
	va_end(ap);
}

static void case_init(struct scase *c, uint64_t seed)
{
	memset(c, 0, sizeof(*c));
	memsrc_init(&c->mem, seed);
	c->rd = memsrc_reader(&c->mem);
}

static void case_free(struct scase *c)
{
	memsrc_free(&c->mem);
	recipe_free(&c->r);
}

/* A source tensor's node, or a negative errno (message in c->err). */
static int src(struct scase *c, enum sd_dtype dt, int ndim, const uint64_t *shape)
{
	int t = memsrc_add(&c->mem, NULL, dt, ndim, shape, MEMSRC_RANDOM, c->err);

	return t < 0 ? t : memsrc_src(&c->mem, &c->r, (uint32_t)t, c->err);
}

static double seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* gpu_out holds rows [r0, r1) from the GPU: are they the CPU's?  Compared
 * a slice of rows at a time, so the CPU side needs little memory. */
static int same_as_cpu(struct scase *c, uint64_t r0, uint64_t r1, const unsigned char *gpu_out,
		       char *msg)
{
	uint64_t rb = rx_row_bytes(rx_root(&c->r));
	uint64_t step = rb ? (256 * MiB + rb - 1) / rb : 1;
	unsigned char *cpu = malloc((size_t)(step * rb) + 1);

	if (!cpu)
		return say(msg, "out of host memory"), FAIL;
	for (uint64_t a = r0; a < r1; a += step) {
		uint64_t b = r1 - a < step ? r1 : a + step;
		if (recipe_eval_cpu(&c->r, a, b, cpu, &c->rd, c->err) < 0) {
			say(msg, "CPU: %s", c->err);
			free(cpu);
			return FAIL;
		}
		if (memcmp(cpu, gpu_out + (a - r0) * rb, (size_t)((b - a) * rb))) {
			say(msg, "rows %" PRIu64 "..%" PRIu64 " differ from the CPU's", a, b);
			free(cpu);
			return FAIL;
		}
	}
	free(cpu);
	return PASS;
}

/* Rows [r0, r1) on the GPU, checked against the CPU. */
static int gpu_matches(struct scase *c, uint64_t r0, uint64_t r1, char *msg)
{
	size_t len = (size_t)((r1 - r0) * rx_row_bytes(rx_root(&c->r)));
	unsigned char *out = malloc(len + 1);
	int rc;

	if (!out)
		return say(msg, "out of host memory"), FAIL;
	if ((rc = recipe_eval_cuda(&c->r, r0, r1, out, &c->rd, c->err)) < 0) {
		say(msg, "GPU (%d): %s", rc, c->err);
		free(out);
		return FAIL;
	}
	rc = same_as_cpu(c, r0, r1, out, msg);
	free(out);
	return rc;
}

static int start(char *msg)
{
	char err[SD_ERRLEN];

	if (gpu_init(NULL, 0, err) < 0)
		return say(msg, "gpu_init: %s", err), FAIL;
	return PASS;
}

/* cast of BF16 [rows, cols] to F32 */
static int cast_case(struct scase *c, uint64_t rows, uint64_t cols)
{
	int x = src(c, SD_BF16, 2, (uint64_t[]){ rows, cols });

	return x < 0 ? x : rx_cast(&c->r, x, SD_F32, c->err);
}

/* --- scenarios ------------------------------------------------------------------ */

static int stale_errors(char *msg)
{
	struct scase c;
	struct gpu_stats st;
	void *p = NULL, *hog = NULL;
	size_t free_b = 0, total_b = 0;
	int rc;

	gpu_configure(&(struct gpu_config){ .device = -1, .device_bytes = 1024 * GiB });
	if ((rc = start(msg)) != PASS)
		return rc;
	case_init(&c, 1);
	if (cast_case(&c, 64, 4096) < 0)
		return say(msg, "%s", c.err), FAIL;
	if ((rc = gpu_matches(&c, 0, 64, msg)) != PASS)
		return rc;
	/* a failed allocation outside a chunk leaves its error behind */
	if (cudaMalloc(&p, (size_t)1 << 60) == cudaSuccess)
		return say(msg, "a 2^60-byte cudaMalloc succeeded?"), FAIL;
	if ((rc = gpu_matches(&c, 3, 50, msg)) != PASS)
		return rc;
	gpu_get_stats(&st);
	if (st.stale_errors < 1)
		return say(msg, "the stale error was not seen"), FAIL;
	/* the GPU nearly full (a trainer beside us): a chunk runs out of memory,
	 * is declined (-ENOMEM, not -EIO), and the next one works again */
	case_free(&c);
	case_init(&c, 2);
	if (cast_case(&c, 1, 128 * MiB) < 0)   /* one row: 256 MiB in, 512 MiB out */
		return say(msg, "%s", c.err), FAIL;
	cudaMemGetInfo(&free_b, &total_b);
	if (cudaMalloc(&hog, free_b - 200 * MiB) != cudaSuccess)
		return say(msg, "cannot take the free memory to provoke it"), FAIL;
	unsigned char *out = malloc(512 * MiB);
	rc = out ? recipe_eval_cuda(&c.r, 0, 1, out, &c.rd, c.err) : -ENOMEM;
	free(out);
	cudaFree(hog);
	if (rc != -ENOMEM)
		return say(msg, "a chunk past the free memory gave %d (%s), not -ENOMEM",
				rc, c.err), FAIL;
	if ((rc = gpu_matches(&c, 0, 1, msg)) != PASS)
		return rc;
	case_free(&c);
	gpu_get_stats(&st);
	say(msg, "stale errors cleared %" PRIu64 ", out of memory %" PRIu64,
		 st.stale_errors, st.out_of_memory);
	return PASS;
}

/* In a child: convert, report by exit status. */
static int in_child(int (*fn)(char *), char *msg)
{
	int status = 0;
	pid_t pid = fork();

	if (pid < 0)
		return say(msg, "fork: %s", strerror(errno)), FAIL;
	if (pid == 0) {
		char m[SD_ERRLEN] = "";
		alarm(60);      /* a child that hangs in CUDA must not hang the run */
		int rc = fn(m);
		if (rc != PASS)
			fprintf(stderr, "# child: %s\n", m);
		_exit(rc);
	}
	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status))
		return say(msg, "the child died of signal %d", WTERMSIG(status)), FAIL;
	return WEXITSTATUS(status);
}

static int fresh_child_converts(char *msg)
{
	struct scase c;
	int rc;

	if ((rc = start(msg)) != PASS)
		return rc;
	case_init(&c, 3);
	if (cast_case(&c, 32, 1000) < 0)
		return FAIL;
	rc = gpu_matches(&c, 0, 32, msg);
	case_free(&c);
	return rc;
}

static int inherited_child_is_declined(char *msg)
{
	struct scase c;
	unsigned char out[4 * 1000 * 4];

	case_init(&c, 4);
	if (cast_case(&c, 4, 1000) < 0)
		return FAIL;
	int rc = recipe_eval_cuda(&c.r, 0, 4, out, &c.rd, c.err);
	case_free(&c);
	if (rc != -ENODEV || gpu_usable())
		return say(msg, "a child of a CUDA process got %d: %s", rc, c.err), FAIL;
	return PASS;
}

static int forks(char *msg)
{
	struct scase c;
	int rc;

	if ((rc = in_child(fresh_child_converts, msg)) != PASS)
		return rc == SKIP ? FAIL : rc;
	if ((rc = start(msg)) != PASS)
		return rc;
	case_init(&c, 5);
	if (cast_case(&c, 16, 1000) < 0 || gpu_matches(&c, 0, 16, msg) != PASS)
		return FAIL;
	if ((rc = in_child(inherited_child_is_declined, msg)) != PASS)
		return rc;
	rc = gpu_matches(&c, 0, 16, msg);      /* the parent is untouched */
	case_free(&c);
	return rc;
}

struct worker {
	struct scase *c;
	const unsigned char *want;
	unsigned seed;
	unsigned on_gpu, on_cpu, bad;
	char msg[SD_ERRLEN];
};

/* As view.c's fill_chunk: each chunk on the GPU, or the CPU where it declines. */
static void *worker_run(void *arg)
{
	struct worker *w = arg;
	const struct recipe *r = &w->c->r;
	uint64_t rows = rx_rows(rx_root(r)), rb = rx_row_bytes(rx_root(r));
	unsigned char *out = malloc((size_t)rb);
	char err[SD_ERRLEN];

	for (uint64_t k = 0; out && k < 4 * rows; k++) {
		uint64_t e = (k * 7 + w->seed) % rows;
		int rc = recipe_eval_cuda(r, e, e + 1, out, &w->c->rd, err);
		if (rc == 0)
			w->on_gpu++;
		else if (gpu_declined(rc) && (rc = recipe_eval_cpu(r, e, e + 1, out, &w->c->rd, err)) == 0)
			w->on_cpu++;
		if (rc || memcmp(out, w->want + e * rb, (size_t)rb)) {
			if (!w->bad++)
				say(w->msg, "chunk %" PRIu64 ": %d %s", e, rc, rc ? err : "differs");
		}
	}
	free(out);
	return NULL;
}

static int threads(char *msg)
{
	struct scase c;
	struct worker w[16];
	pthread_t t[16];
	struct gpu_stats st;
	unsigned gpu_chunks = 0, cpu_chunks = 0;
	int kids[16], rc;

	setenv("SDAFS_GPU_IDLE_MS", "300", 1);
	gpu_configure(&(struct gpu_config){ .device = -1, .device_bytes = 64 * MiB });
	if ((rc = start(msg)) != PASS)
		return rc;
	case_init(&c, 6);
	/* 16 experts' gate_and_up: cat(gate^T, up^T), 8 MiB of BF16 each */
	for (int e = 0; e < 16; e++) {
		int g = src(&c, SD_BF16, 2, (uint64_t[]){ 1024, 2048 });
		int u = src(&c, SD_BF16, 2, (uint64_t[]){ 1024, 2048 });
		if (g < 0 || u < 0 || (g = rx_transpose_last2(&c.r, g, c.err)) < 0 ||
		    (u = rx_transpose_last2(&c.r, u, c.err)) < 0 ||
		    (kids[e] = rx_concat_last(&c.r, (int[]){ g, u }, 2, c.err)) < 0)
			return say(msg, "%s", c.err), FAIL;
	}
	if (rx_stack0(&c.r, kids, 16, c.err) < 0)
		return FAIL;
	uint64_t rb = rx_row_bytes(rx_root(&c.r));
	unsigned char *want = malloc((size_t)(16 * rb));
	if (!want || recipe_eval_cpu(&c.r, 0, 16, want, &c.rd, c.err) < 0)
		return say(msg, "CPU: %s", c.err), FAIL;
	for (int i = 0; i < 16; i++) {
		w[i] = (struct worker){ .c = &c, .want = want, .seed = (unsigned)i };
		pthread_create(&t[i], NULL, worker_run, &w[i]);
	}
	for (int i = 0; i < 16; i++) {
		pthread_join(t[i], NULL);
		if (w[i].bad)
			return say(msg, "thread %d: %u bad chunks (%s)", i, w[i].bad, w[i].msg), FAIL;
		gpu_chunks += w[i].on_gpu;
		cpu_chunks += w[i].on_cpu;
	}
	gpu_get_stats(&st);
	if (!gpu_chunks || st.device_held > 64 * MiB)
		return say(msg, "%u chunks on the GPU, %" PRIu64 " bytes held",
				gpu_chunks, st.device_held), FAIL;
	/* idle: the pools are given back */
	for (int i = 0; i < 100 && (gpu_get_stats(&st), st.device_held); i++)
		usleep(100000);
	if (st.device_held)
		return say(msg, "%" PRIu64 " bytes still held after 10 s idle",
				st.device_held), FAIL;
	say(msg, "%u chunks on the GPU, %u declined to the CPU, %" PRIu64
		 " row splits, %" PRIu64 " idle trims", gpu_chunks, cpu_chunks, st.row_splits, st.trims);
	free(want);
	case_free(&c);
	return PASS;
}

/* A chunk larger than 4 GiB and 2^31 elements, checked against the CPU. */
static int large_chunk(struct scase *c, const char *what, char *msg)
{
	struct gpu_stats st;
	uint64_t rows = rx_rows(rx_root(&c->r)), len = rows * rx_row_bytes(rx_root(&c->r));
	unsigned char *out = malloc((size_t)len);
	double t0 = seconds();
	int rc;

	if (!out)
		return say(msg, "cannot allocate %" PRIu64 " bytes of host memory", len), SKIP;
	if ((rc = recipe_eval_cuda(&c->r, 0, rows, out, &c->rd, c->err)) < 0) {
		say(msg, "%s: GPU (%d): %s", what, rc, c->err);
		free(out);
		return FAIL;
	}
	double t1 = seconds();
	rc = same_as_cpu(c, 0, rows, out, msg);
	free(out);
	gpu_get_stats(&st);
	if (rc == PASS)
		say(msg, "%s: %.1f GB out in %.2f s on the GPU, %" PRIu64 " row splits",
			 what, (double)len / 1e9, t1 - t0, st.row_splits);
	return rc;
}

static int large_cast_in_batches(char *msg)
{
	struct scase c;
	struct gpu_stats st;
	int rc;

	/* 2^31 + 2^24 elements: 4.03 GiB in, 8.06 GiB out, a 2 GiB device bound */
	gpu_configure(&(struct gpu_config){ .device = -1, .device_bytes = 2 * GiB,
					    .pinned_bytes = 4 * GiB });
	if ((rc = start(msg)) != PASS)
		return rc;
	case_init(&c, 7);
	if (cast_case(&c, ((1ull << 31) + (1ull << 24)) / 8192, 8192) < 0)
		return say(msg, "%s", c.err), SKIP;
	rc = large_chunk(&c, "cast of 2^31 + 2^24 BF16", msg);
	gpu_get_stats(&st);
	if (rc == PASS && st.row_splits == 0)
		rc = FAIL, say(msg, "no row batches under a 2 GiB bound");
	case_free(&c);
	return rc;
}

static int large_transpose_in_groups(char *msg)
{
	struct scase c;
	int rc, x;

	/* 70000 x 128 x 256 BF16: 2.29e9 elements, 4.6 GB, in one chunk */
	gpu_configure(&(struct gpu_config){ .device = -1, .device_bytes = 16 * GiB,
					    .pinned_bytes = 16 * GiB });
	if ((rc = start(msg)) != PASS)
		return rc;
	case_init(&c, 8);
	if ((x = src(&c, SD_BF16, 3, (uint64_t[]){ 70000, 128, 256 })) < 0 ||
	    rx_transpose_last2(&c.r, x, c.err) < 0)
		return say(msg, "%s", c.err), SKIP;
	rc = large_chunk(&c, "transpose of 70000 x 128 x 256 BF16", msg);
	case_free(&c);
	return rc;
}

static int declined(char *msg)
{
	struct scase c;
	unsigned char out[64];
	int rc, x;

	if ((rc = start(msg)) != PASS)
		return rc;
	case_init(&c, 9);
	if ((x = src(&c, SD_F32, 2, (uint64_t[]){ 2, 4 })) < 0 || rx_cast(&c.r, x, SD_F64, c.err) < 0)
		return FAIL;
	if ((rc = recipe_eval_cuda(&c.r, 0, 2, out, &c.rd, c.err)) != -ENOTSUP)
		return say(msg, "an F64 cast gave %d, not -ENOTSUP", rc), FAIL;
	case_free(&c);
	case_init(&c, 10);
	/* input rows of more 32-row tiles than a grid holds */
	if ((x = src(&c, SD_U8, 2, (uint64_t[]){ 65535 * 32 + 1, 1 })) < 0 ||
	    rx_transpose_last2(&c.r, x, c.err) < 0)
		return FAIL;
	if ((rc = recipe_eval_cuda(&c.r, 0, 1, out, &c.rd, c.err)) != -ENOTSUP)
		return say(msg, "a too tall transpose gave %d, not -ENOTSUP", rc), FAIL;
	case_free(&c);
	return gpu_usable() ? PASS : (say(msg, "declining made the GPU unusable"), FAIL);
}

static int sticky_fault(char *msg)
{
	struct scase c;
	struct gpu_stats st;
	unsigned char out[8 * 1000 * 4];
	int rc;

	if ((rc = start(msg)) != PASS)
		return rc;
	case_init(&c, 11);
	if (cast_case(&c, 8, 1000) < 0 || (rc = gpu_matches(&c, 0, 8, msg)) != PASS)
		return FAIL;
	int e = stress_poison_context();
	if ((rc = recipe_eval_cuda(&c.r, 0, 8, out, &c.rd, c.err)) != -ENODEV)
		return say(msg, "after CUDA error %d the chunk gave %d (%s), not -ENODEV",
				e, rc, c.err), FAIL;
	double t0 = seconds();
	rc = recipe_eval_cuda(&c.r, 0, 8, out, &c.rd, c.err);
	gpu_get_stats(&st);
	if (rc != -ENODEV || gpu_usable() || !st.dead)
		return say(msg, "the GPU was not given up (%d)", rc), FAIL;
	say(msg, "CUDA error %d; later chunks declined in %.0f us: %s", e,
		 (seconds() - t0) * 1e6, st.dead_reason);
	case_free(&c);
	return PASS;
}

static int self_check(char *msg)
{
	char err[SD_ERRLEN];
	int rc;

	if ((rc = start(msg)) != PASS)
		return rc;
	double t0 = seconds();
	if (backend_check(recipe_eval_cuda, recipe_eval_cuda_batched, err) < 0)
		return say(msg, "%s", err), FAIL;
	double t1 = seconds();
	if (backend_check(recipe_eval_cpu, NULL, err) < 0)
		return say(msg, "CPU: %s", err), FAIL;
	say(msg, "GPU vs CPU %.1f ms; CPU vs CPU %.1f ms", (t1 - t0) * 1e3,
		 (seconds() - t1) * 1e3);
	return PASS;
}

static const struct scenario {
	const char *name, *what;
	int (*fn)(char *msg);
	bool large;
} scenarios[] = {
	{ "stale", "an error a failed call left, and out of memory, decline one chunk only", stale_errors, false },
	{ "fork", "a child forked before CUDA converts; one forked after is declined at once", forks, false },
	{ "threads", "16 threads under a 64 MiB bound get the CPU's bytes; idle pools are freed", threads, false },
	{ "declined", "F64 and a transpose too tall for a grid are declined (-ENOTSUP)", declined, false },
	{ "sticky", "a poisoned context gives the GPU up: -ENODEV from then on", sticky_fault, false },
	{ "selfcheck", "the mount's self-check passes, whole and in row batches", self_check, false },
	{ "large_cast", "a cast of 2^31 + 2^24 elements in row batches under a 2 GiB bound", large_cast_in_batches, true },
	{ "large_transpose", "a transpose of 70000 matrices (4.6 GB) in launch groups", large_transpose_in_groups, true },
};
#define NSCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

/* Is there a GPU?  Asked in a child, so this process never starts CUDA. */
static bool have_gpu(char *why)
{
	int fds[2], status = 0;
	ssize_t n = 0;

	if (pipe(fds) < 0)
		return snprintf(why, SD_ERRLEN, "pipe: %s", strerror(errno)), false;
	pid_t pid = fork();
	if (pid == 0) {
		char err[SD_ERRLEN] = "";
		int rc = gpu_init(NULL, 0, err);
		if (rc < 0 && write(fds[1], err, strlen(err)) < 0)
			rc = -EIO;
		_exit(rc < 0);
	}
	close(fds[1]);
	if (pid > 0) {
		n = read(fds[0], why, SD_ERRLEN - 1);
		waitpid(pid, &status, 0);
	}
	close(fds[0]);
	why[n > 0 ? n : 0] = '\0';
	return pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Run one scenario in a child; its verdict and message. */
static int run(const struct scenario *s, char *msg)
{
	int fds[2], status = 0;
	ssize_t n = 0;

	if (pipe(fds) < 0)
		return say(msg, "pipe: %s", strerror(errno)), FAIL;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		char m[SD_ERRLEN] = "";
		close(fds[0]);
		alarm(s->large ? 600 : 180);
		int rc = s->fn(m);
		if (write(fds[1], m, strlen(m)) < 0)
			rc = FAIL;
		_exit(rc);
	}
	close(fds[1]);
	if (pid > 0) {
		size_t got = 0;
		while (got < SD_ERRLEN - 1 && (n = read(fds[0], msg + got, SD_ERRLEN - 1 - got)) > 0)
			got += (size_t)n;
		msg[got] = '\0';
		waitpid(pid, &status, 0);
	}
	close(fds[0]);
	if (pid < 0)
		return say(msg, "fork: %s", strerror(errno)), FAIL;
	if (WIFSIGNALED(status)) {
		size_t l = strlen(msg);
		snprintf(msg + l, SD_ERRLEN - l, " (killed by signal %d%s)", WTERMSIG(status),
			 WTERMSIG(status) == SIGALRM ? ": it hung" : "");
		return FAIL;
	}
	return WEXITSTATUS(status);
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	bool large = false;
	char why[SD_ERRLEN], msg[SD_ERRLEN];
	int failed = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--large"))
			large = true;
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else {
			fprintf(stderr, "usage: gpu_stress [--large] [--only NAME]\n");
			return 2;
		}
	}
	bool gpu = have_gpu(why);
	printf("1..%zu\n", NSCENARIOS);
	for (size_t i = 0; i < NSCENARIOS; i++) {
		const struct scenario *s = &scenarios[i];
		if (!gpu) {
			printf("ok %zu # skip %s: %s\n", i + 1, s->name, why);
			continue;
		}
		if ((only && strcmp(only, s->name)) || (s->large && !large)) {
			printf("ok %zu # skip %s: %s\n", i + 1, s->name,
			       only && strcmp(only, s->name) ? "not chosen (--only)" : "run with --large");
			continue;
		}
		double t0 = seconds();
		int rc = run(s, msg);
		if (rc == SKIP)
			printf("ok %zu # skip %s: %s\n", i + 1, s->name, msg);
		else
			printf("%s %zu - %s: %s\n# %.1f s%s%s\n", rc == PASS ? "ok" : "not ok", i + 1,
			       s->name, s->what, seconds() - t0, msg[0] ? ": " : "", msg);
		failed += rc != PASS && rc != SKIP;
	}
	return failed ? 1 : 0;
}
