/*
 * test_gpu_faults.c — the CUDA backend's life and its failures, on the
 * fake device of gpu_fake.c: how CUDA starts (device by node rank, bounds,
 * waiting threads that sleep), what each CUDA error becomes (out of memory:
 * -ENOMEM; a poisoned context: the GPU given up once, -ENODEV from then on
 * without a CUDA call; anything else: -ENOTSUP; an error an earlier call
 * left: cleared), chunks done in halves when memory runs short, pools that
 * grow to need and are given back when idle, a forked child, and sixteen
 * threads under a small bound.  Every byte the backend produces is compared
 * with the CPU evaluator's.
 *
 * The fake needs the backend's test hook (the sanitizer build); elsewhere
 * every test is a TAP skip that says so.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend_check.h"
#include "dtype.h"
#include "gpu.h"
#include "gpu_fake.h"
#include "gpu_pool.h"
#include "testlib.h"

static uint64_t stream = 0x9E3779B97F4A7C15ull;

#define MiB ((size_t)1 << 20)

static int setup(void **state)
{
	char why[SD_ERRLEN];

	if (recipe_fixture_setup(state) < 0 || !gpu_fake_install(1, 2, (size_t)1 << 30, why))
		return -1;
	return 0;
}

/* Tearing down frees every context: nothing of the fake device may be
 * left held, no stream left open. */
static int teardown(void **state)
{
	gpu_fake_uninstall();
	if (gpu_fake.device_held || gpu_fake.pinned_held || gpu_fake.streams) {
		fprintf(stderr, "left behind: %zu device bytes, %zu pinned bytes, %ld streams\n",
			gpu_fake.device_held, gpu_fake.pinned_held, gpu_fake.streams);
		return -1;
	}
	return recipe_fixture_teardown(state);
}

static size_t add(struct recipe_fixture *f, enum sd_dtype dt, int ndim, const uint64_t *shape)
{
	return recipe_fixture_add(f, NULL, dt, ndim, shape, MEMSRC_RANDOM);
}

/* cast(src [rows, cols] BF16) to F32: the recipe most tests convert. */
static void cast_recipe(struct recipe_fixture *f, uint64_t rows, uint64_t cols)
{
	size_t x = add(f, SD_BF16, 2, (uint64_t[]){ rows, cols });

	built(rx_cast(&f->r, recipe_fixture_src(f, x), SD_F32, f->err), f->err);
}

/* Rows [r0, r1) through the backend: its return code; *out the bytes. */
static int gpu_rows(struct recipe_fixture *f, uint64_t r0, uint64_t r1, unsigned char **out)
{
	size_t len = (size_t)((r1 - r0) * rx_row_bytes(rx_root(&f->r)));

	*out = malloc(len ? len : 1);
	assert_non_null(*out);
	memset(*out, 0xA5, len);
	return recipe_eval_cuda(&f->r, r0, r1, *out, &f->reader, f->err);
}

/* The backend converts rows [r0, r1) and gives the CPU's bytes. */
static void assert_gpu_matches_cpu(struct recipe_fixture *f, uint64_t r0, uint64_t r1)
{
	size_t len = (size_t)((r1 - r0) * rx_row_bytes(rx_root(&f->r)));
	unsigned char *cpu = recipe_fixture_eval(f, r0, r1), *gpu;
	int rc = gpu_rows(f, r0, r1, &gpu);

	if (rc != 0)
		fail_msg("rows %" PRIu64 "..%" PRIu64 ": %d: %s", r0, r1, rc, f->err);
	if (memcmp(cpu, gpu, len))
		fail_msg("rows %" PRIu64 "..%" PRIu64 " differ from the CPU's", r0, r1);
	free(cpu);
	free(gpu);
}

static int expect_error(struct recipe_fixture *f, uint64_t r0, uint64_t r1)
{
	unsigned char *gpu;
	int rc = gpu_rows(f, r0, r1, &gpu);

	free(gpu);
	assert_true(rc < 0);
	return rc;
}

static unsigned long all_calls(void)
{
	unsigned long n = 0;

	for (int c = 0; c < FAKE_NCALLS; c++)
		n += gpu_fake.calls[c];
	return n;
}

/* Lines stderr gets while fn runs (sd_log writes there before a detach). */
static char *stderr_of(void (*fn)(struct recipe_fixture *), struct recipe_fixture *f)
{
	FILE *tmp = tmpfile();
	int saved = dup(2);
	static char text[8192];
	size_t n;

	assert_non_null(tmp);
	fflush(stderr);
	dup2(fileno(tmp), 2);
	fn(f);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	n = fread(text, 1, sizeof(text) - 1, tmp);
	text[n] = '\0';
	fclose(tmp);
	return text;
}

static unsigned count(const char *text, const char *what)
{
	unsigned n = 0;

	for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

/* ---- starting ----------------------------------------------------------------------- */

static void test_the_fake_device_converts_like_the_cpu_and_threads_wait_asleep(void **state)
{
	struct recipe_fixture *f = *state;
	int kids[3];

	for (int e = 0; e < 3; e++) {    /* gated: cat(gate^T, up^T) per expert, cast */
		int g = built(rx_transpose_last2(&f->r, recipe_fixture_src(f, add(f, SD_F32, 2, (uint64_t[]){ 40, 70 })), f->err), f->err);
		int u = built(rx_transpose_last2(&f->r, recipe_fixture_src(f, add(f, SD_F32, 2, (uint64_t[]){ 40, 70 })), f->err), f->err);
		int c = built(rx_concat_last(&f->r, (int[]){ g, u }, 2, f->err), f->err);
		kids[e] = built(rx_cast(&f->r, c, SD_BF16, f->err), f->err);
	}
	built(rx_stack0(&f->r, kids, 3, f->err), f->err);
	assert_gpu_matches_cpu(f, 0, 3);
	assert_gpu_matches_cpu(f, 1, 2);
	assert_int_equal(gpu_fake.calls[FAKE_SET_FLAGS], 1);
	assert_int_equal(gpu_fake.flags_set, GPU_SCHEDULE_BLOCKING_SYNC);
	assert_int_equal(gpu_fake.device_set, 0);
}

static void test_the_device_follows_the_rank_on_the_node(void **state)
{
	char why[SD_ERRLEN], name[256];
	struct gpu_stats st;

	(void)state;
	assert_true(gpu_fake_install(2, 2, (size_t)1 << 30, why));
	setenv("OMPI_COMM_WORLD_LOCAL_RANK", "5", 1);
	setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "8", 1);
	int rc = gpu_init(name, sizeof(name), why);
	unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
	unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
	assert_int_equal(rc, 0);
	assert_int_equal(gpu_fake.device_set, 1);       /* 5 mod 2 */
	gpu_get_stats(&st);
	assert_int_equal(st.device, 1);
	assert_int_equal(st.devices, 2);
	assert_non_null(strstr(name, "GPU 1 of 2"));
	/* a quarter of the free memory, split among the 4 ranks on device 1 */
	assert_int_equal(st.device_bound, ((uint64_t)1 << 30) / 4 / 4);
	/* gpu_mem= and a device named outright win */
	assert_true(gpu_fake_install(3, 2, (size_t)1 << 30, why));
	gpu_configure(&(struct gpu_config){ .device = 2, .device_bytes = 100 * MiB, .pinned_bytes = 10 * MiB });
	assert_int_equal(gpu_init(NULL, 0, why), 0);
	gpu_get_stats(&st);
	assert_int_equal(gpu_fake.device_set, 2);
	assert_int_equal(st.device_bound, 100 * MiB);
	assert_int_equal(st.pinned_bound, 10 * MiB);
}

static void test_no_device_is_a_reason_not_a_crash(void **state)
{
	char why[SD_ERRLEN] = "";
	struct recipe_fixture *f = *state;

	assert_true(gpu_fake_install(0, 2, (size_t)1 << 30, why));
	assert_int_equal(gpu_init(NULL, 0, why), -ENODEV);
	assert_non_null(strstr(why, "no usable GPU"));
	assert_false(gpu_usable());
	cast_recipe(f, 4, 16);
	assert_true(gpu_declined(expect_error(f, 0, 4)));
}

/* ---- what errors become --------------------------------------------------------------- */

static void test_out_of_memory_is_enomem_and_leaves_nothing_for_the_next_chunk(void **state)
{
	struct recipe_fixture *f = *state;
	struct gpu_stats st;

	cast_recipe(f, 1, 4096);        /* one row: nothing to split */
	gpu_fake_fail(FAKE_MALLOC_DEVICE, 1, GPU_ERR_OUT_OF_MEMORY);
	assert_int_equal(expect_error(f, 0, 1), -ENOMEM);
	assert_non_null(strstr(f->err, "out of GPU memory"));
	/* the launch of the next chunk must not meet the failed allocation's error */
	assert_gpu_matches_cpu(f, 0, 1);
	gpu_test_trim_now();    /* empty pools: the next chunk allocates again */
	gpu_fake_fail(FAKE_MALLOC_PINNED, 1, GPU_ERR_OUT_OF_MEMORY);
	assert_int_equal(expect_error(f, 0, 1), -ENOMEM);
	assert_gpu_matches_cpu(f, 0, 1);
	gpu_get_stats(&st);
	assert_int_equal(st.out_of_memory, 2);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.stale_errors, 0);
	assert_false(st.dead);
	assert_true(gpu_usable());
}

static void test_an_error_an_earlier_call_left_is_cleared_not_returned(void **state)
{
	struct recipe_fixture *f = *state;
	struct gpu_stats st;

	cast_recipe(f, 8, 300);
	assert_gpu_matches_cpu(f, 0, 8);
	gpu_fake_leave_error(GPU_ERR_OUT_OF_MEMORY);    /* a cudaMalloc outside a chunk */
	assert_gpu_matches_cpu(f, 2, 7);
	gpu_get_stats(&st);
	assert_int_equal(st.stale_errors, 1);
	assert_false(st.dead);
}

static void test_a_failed_launch_sends_one_chunk_to_the_cpu(void **state)
{
	struct recipe_fixture *f = *state;
	struct gpu_stats st;

	cast_recipe(f, 8, 300);
	gpu_fake_fail(FAKE_CAST, 1, 701);       /* too many resources requested: not sticky */
	assert_int_equal(expect_error(f, 0, 8), -ENOTSUP);
	assert_non_null(strstr(f->err, "cast kernel"));
	assert_true(gpu_usable());
	assert_gpu_matches_cpu(f, 0, 8);
	gpu_get_stats(&st);
	assert_int_equal(st.errors, 1);
}

static void convert_twice_after_a_fault(struct recipe_fixture *f)
{
	gpu_fake_fail(FAKE_STREAM_SYNC, 1, GPU_ERR_ILLEGAL_ADDRESS);
	assert_int_equal(expect_error(f, 0, 8), -ENODEV);
	assert_int_equal(expect_error(f, 0, 8), -ENODEV);
}

static void test_a_sticky_fault_gives_the_gpu_up_once_and_cuda_is_not_called_again(void **state)
{
	struct recipe_fixture *f = *state;
	struct gpu_stats st;

	cast_recipe(f, 8, 300);
	assert_gpu_matches_cpu(f, 0, 8);
	char *log = stderr_of(convert_twice_after_a_fault, f);
	assert_int_equal(count(log, "it is given up"), 1);
	assert_non_null(strstr(log, "illegal memory access"));
	assert_false(gpu_usable());
	gpu_get_stats(&st);
	assert_true(st.dead);
	assert_non_null(strstr(st.dead_reason, "illegal memory access"));
	unsigned long before = all_calls();
	assert_int_equal(expect_error(f, 3, 5), -ENODEV);
	assert_non_null(strstr(f->err, "given up"));
	assert_true(all_calls() == before);
	assert_true(gpu_declined(-ENODEV));
}

static void test_a_sticky_error_found_on_entry_gives_the_gpu_up(void **state)
{
	struct recipe_fixture *f = *state;

	cast_recipe(f, 8, 300);
	assert_gpu_matches_cpu(f, 0, 8);
	gpu_fake_leave_error(GPU_ERR_ECC_UNCORRECTABLE);
	assert_int_equal(expect_error(f, 0, 8), -ENODEV);
	assert_false(gpu_usable());
}

static void test_a_chunk_is_refused_before_any_read_when_the_gpu_cannot_take_it(void **state)
{
	struct recipe_fixture *f = *state;
	/* input rows of more 32-row tiles than a grid holds (65535) */
	size_t x = add(f, SD_U8, 2, (uint64_t[]){ 65535 * 32 + 1, 1 });

	built(rx_transpose_last2(&f->r, recipe_fixture_src(f, x), f->err), f->err);
	assert_int_equal(expect_error(f, 0, 1), -ENOTSUP);
	assert_int_equal(f->reads[x], 0);
	assert_int_equal(gpu_fake.calls[FAKE_COPY], 0);
	recipe_free(&f->r);
	/* F64 casts stay on the CPU: not even CUDA is asked */
	x = add(f, SD_F32, 2, (uint64_t[]){ 4, 4 });
	built(rx_cast(&f->r, recipe_fixture_src(f, x), SD_F64, f->err), f->err);
	unsigned long before = all_calls();
	assert_int_equal(expect_error(f, 0, 4), -ENOTSUP);
	assert_true(all_calls() == before);
}

/* ---- memory ------------------------------------------------------------------------- */

static void test_a_chunk_past_the_bound_is_done_in_halves(void **state)
{
	struct recipe_fixture *f = *state;
	struct gpu_stats st;

	/* whole: 32 MiB of F32 out + 16 MiB of BF16 in; half: 16 + 8 */
	gpu_configure(&(struct gpu_config){ .device = -1, .device_bytes = 24 * MiB });
	cast_recipe(f, 64, 131072);
	assert_gpu_matches_cpu(f, 0, 64);
	gpu_get_stats(&st);
	assert_true(st.row_splits >= 1);
	assert_true(gpu_fake.device_peak <= 24 * MiB);
	recipe_free(&f->r);
	/* one row larger than the bound: declined, for the CPU */
	cast_recipe(f, 1, 8 << 20);
	assert_int_equal(expect_error(f, 0, 1), -ENOMEM);
	assert_non_null(strstr(f->err, "gpu_mem="));
}

static void test_pools_grow_to_need_are_reused_and_freed_only_when_idle(void **state)
{
	struct recipe_fixture *f = *state;
	struct gpu_stats st;
	size_t need = 16 * MiB + 8 * MiB;       /* F32 out, BF16 in */

	cast_recipe(f, 16, 262144);
	assert_gpu_matches_cpu(f, 0, 16);
	unsigned long mallocs = gpu_fake.calls[FAKE_MALLOC_DEVICE];
	size_t held = gpu_fake.device_held;
	assert_true(held >= need && held < need + GPU_POOL_GRAIN);      /* not doubled */
	for (int i = 0; i < 4; i++)
		assert_gpu_matches_cpu(f, 0, 16);
	assert_int_equal(gpu_fake.calls[FAKE_MALLOC_DEVICE], mallocs);
	assert_int_equal(gpu_fake.calls[FAKE_FREE_DEVICE], 0);          /* no cudaFree per chunk */
	assert_gpu_matches_cpu(f, 3, 9);        /* smaller chunks fit what is there */
	assert_int_equal(gpu_fake.calls[FAKE_MALLOC_DEVICE], mallocs);
	gpu_test_trim_now();
	assert_int_equal(gpu_fake.device_held, 0);
	assert_int_equal(gpu_fake.pinned_held, 0);
	gpu_get_stats(&st);
	assert_int_equal(st.trims, 1);
	assert_int_equal(st.device_held, 0);
	assert_gpu_matches_cpu(f, 0, 16);
}

static void test_the_trimmer_gives_idle_memory_back_by_itself(void **state)
{
	struct recipe_fixture *f = *state;
	char why[SD_ERRLEN];

	setenv("SDAFS_GPU_IDLE_MS", "20", 1);
	assert_true(gpu_fake_install(1, 2, (size_t)1 << 30, why));
	cast_recipe(f, 4, 4096);
	assert_gpu_matches_cpu(f, 0, 4);
	unsetenv("SDAFS_GPU_IDLE_MS");
	assert_true(gpu_fake.device_held > 0);
	/* wait for it (a condition, not a timing: up to a minute on a busy machine) */
	for (int i = 0; i < 6000 && gpu_fake.device_held; i++)
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	assert_int_equal(gpu_fake.device_held, 0);
}

/* ---- processes and threads ----------------------------------------------------------- */

static void test_a_forked_child_gets_enodev_without_calling_cuda(void **state)
{
	struct recipe_fixture *f = *state;
	int status = 0;

	cast_recipe(f, 8, 300);
	assert_gpu_matches_cpu(f, 0, 8);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		unsigned long before = all_calls();
		unsigned char out[8 * 300 * 4];
		int rc = recipe_eval_cuda(&f->r, 0, 8, out, &f->reader, f->err);
		_exit(rc == -ENODEV && all_calls() == before && !gpu_usable() ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_gpu_matches_cpu(f, 0, 8);        /* the parent is untouched */
}

struct worker {
	struct recipe_fixture *f;
	const unsigned char *want;
	struct rx_reader rd;
	int bad;
};

/* As view.c's fill_chunk: the GPU, or the CPU when the GPU declines. */
static void *convert_chunks(void *arg)
{
	struct worker *w = arg;
	const struct recipe *r = &w->f->r;
	uint64_t rows = rx_rows(rx_root(r)), rb = rx_row_bytes(rx_root(r));
	unsigned char *out = malloc((size_t)(rows * rb));
	char err[SD_ERRLEN];

	for (uint64_t r0 = 0; out && r0 < rows; r0 += 8) {
		int rc = recipe_eval_cuda(r, r0, r0 + 8, out, &w->rd, err);
		if (gpu_declined(rc))
			rc = recipe_eval_cpu(r, r0, r0 + 8, out, &w->rd, err);
		if (rc || memcmp(out, w->want + r0 * rb, (size_t)(8 * rb)))
			w->bad++;
	}
	free(out);
	return NULL;
}

static void test_sixteen_threads_under_a_small_bound_all_get_the_cpus_bytes(void **state)
{
	struct recipe_fixture *f = *state;
	struct worker w[16];
	pthread_t t[16];
	struct gpu_stats st;

	/* each 8-row chunk: 4 MiB of F32 out + 2 MiB in; 16 at once would need 96 */
	gpu_configure(&(struct gpu_config){ .device = -1, .device_bytes = 32 * MiB });
	cast_recipe(f, 64, 131072);
	unsigned char *want = recipe_fixture_eval(f, 0, 64);
	for (int i = 0; i < 16; i++) {
		w[i] = (struct worker){ f, want, memsrc_reader(&f->mem), 0 };
		assert_int_equal(pthread_create(&t[i], NULL, convert_chunks, &w[i]), 0);
	}
	for (int i = 0; i < 16; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].bad, 0);
	}
	gpu_get_stats(&st);
	assert_true(gpu_fake.device_peak <= 32 * MiB);
	assert_true(st.device_held <= 32 * MiB);
	assert_false(st.dead);
	free(want);
}

static void test_the_mount_self_check_passes_on_the_fake_device(void **state)
{
	char err[SD_ERRLEN] = "";

	(void)state;
	if (backend_check(recipe_eval_cuda, recipe_eval_cuda_batched, err) != 0)
		fail_msg("%s", err);
}

#define T(name) cmocka_unit_test_prestate_setup_teardown(name, setup, teardown, &stream)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_the_fake_device_converts_like_the_cpu_and_threads_wait_asleep),
		T(test_the_device_follows_the_rank_on_the_node),
		T(test_no_device_is_a_reason_not_a_crash),
		T(test_out_of_memory_is_enomem_and_leaves_nothing_for_the_next_chunk),
		T(test_an_error_an_earlier_call_left_is_cleared_not_returned),
		T(test_a_failed_launch_sends_one_chunk_to_the_cpu),
		T(test_a_sticky_fault_gives_the_gpu_up_once_and_cuda_is_not_called_again),
		T(test_a_sticky_error_found_on_entry_gives_the_gpu_up),
		T(test_a_chunk_is_refused_before_any_read_when_the_gpu_cannot_take_it),
		T(test_a_chunk_past_the_bound_is_done_in_halves),
		T(test_pools_grow_to_need_are_reused_and_freed_only_when_idle),
		T(test_the_trimmer_gives_idle_memory_back_by_itself),
		T(test_a_forked_child_gets_enodev_without_calling_cuda),
		T(test_sixteen_threads_under_a_small_bound_all_get_the_cpus_bytes),
		T(test_the_mount_self_check_passes_on_the_fake_device),
	};
	size_t n = sizeof(tests) / sizeof(tests[0]);
	char why[SD_ERRLEN];

	if (!gpu_fake_install(1, 2, (size_t)1 << 30, why)) {
		printf("1..%zu\n", n);
		for (size_t i = 0; i < n; i++)
			printf("ok %zu # skip %s: %s\n", i + 1, tests[i].name, why);
		return 0;
	}
	gpu_fake_uninstall();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
