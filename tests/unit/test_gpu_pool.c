/*
 * test_gpu_pool.c — the arithmetic of the GPU backend's memory and
 * placement, which needs no GPU: pools that grow to what a chunk needs and
 * no further, are reused without freeing and freed when idle, under a
 * bound shared by threads (gpu/gpu_pool.c, run here with malloc); and the
 * device and default shares by node rank (gpu/gpu_share.c).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gpu_pool.h"
#include "gpu_share.h"

#define MiB ((size_t)1 << 20)

/* An allocator that counts, and fails on request. */
static unsigned allocs, releases;
static bool refuse;

static int count_alloc(void **p, size_t n)
{
	if (refuse)
		return 2;       /* cudaErrorMemoryAllocation */
	allocs++;
	*p = malloc(n);
	return *p ? 0 : 2;
}

static int count_release(void *p)
{
	releases++;
	free(p);
	return 0;
}

static struct gpu_pool pool_of(struct gpu_bound *b)
{
	allocs = releases = 0;
	refuse = false;
	return (struct gpu_pool){ .bound = b, .min_block = 8 * MiB, .alloc = count_alloc,
				  .release = count_release };
}

static void *get(struct gpu_pool *p, size_t n)
{
	void *out = NULL;
	int alloc_err;

	assert_int_equal(gpu_pool_get(p, n, &out, &alloc_err), 0);
	assert_non_null(out);
	return out;
}

static void test_block_sizes_are_the_request_rounded_not_a_doubling(void **state)
{
	(void)state;
	assert_int_equal(gpu_block_size(1, 8 * MiB), 8 * MiB);
	assert_int_equal(gpu_block_size(8 * MiB + 1, 8 * MiB), 10 * MiB);
	assert_int_equal(gpu_block_size(100 * MiB, 8 * MiB), 100 * MiB);
	assert_int_equal(gpu_block_size(100 * MiB + 5, 8 * MiB), 102 * MiB);
	assert_int_equal(gpu_pool_round(0), GPU_POOL_ALIGN);
	assert_int_equal(gpu_pool_round(1), GPU_POOL_ALIGN);
	assert_int_equal(gpu_pool_round(GPU_POOL_ALIGN + 1), 2 * GPU_POOL_ALIGN);
	assert_true(gpu_pool_round(SIZE_MAX) % GPU_POOL_ALIGN == 0);
}

/* A chunk's buffers: 40 MiB of output, 20 of input, a few small ones. */
static void one_chunk(struct gpu_pool *p)
{
	char *a = get(p, 40 * MiB), *b = get(p, 20 * MiB), *c = get(p, 1000), *d = get(p, 0);

	assert_true(a != b && b != c && c != d);
	assert_true(d - c == 1024);     /* 1000 bytes take whole GPU_POOL_ALIGN units */
	memset(a, 1, 40 * MiB);         /* the buffers are really that large */
	memset(b, 2, 20 * MiB);
	memset(c, 3, 1000);
}

static void test_a_pool_grows_to_need_then_allocates_nothing(void **state)
{
	struct gpu_bound bound = { 0, (uint64_t)1 << 40 };
	struct gpu_pool p = pool_of(&bound);

	(void)state;
	one_chunk(&p);
	unsigned first = allocs;
	size_t held = gpu_pool_held(&p);
	/* what it needed (60 MiB and change), not three times that */
	assert_true(held >= 60 * MiB && held <= 60 * MiB + 2 * 8 * MiB);
	assert_int_equal(gpu_bound_held(&bound), held);
	for (int i = 0; i < 10; i++) {
		gpu_pool_reset(&p);
		one_chunk(&p);
	}
	assert_int_equal(allocs, first);
	assert_int_equal(releases, 0);
	assert_int_equal(gpu_pool_held(&p), held);
	/* a smaller chunk fits too */
	gpu_pool_reset(&p);
	get(&p, 5 * MiB);
	assert_int_equal(allocs, first);
	gpu_pool_release(&p);
	assert_int_equal(releases, allocs);
	assert_int_equal(gpu_pool_held(&p), 0);
	assert_int_equal(gpu_bound_held(&bound), 0);
}

static void test_the_bound_refuses_without_allocating_and_the_allocator_error_is_kept(void **state)
{
	struct gpu_bound bound = { 0, 30 * MiB };
	struct gpu_pool p = pool_of(&bound);
	void *out;
	int alloc_err = -1;

	(void)state;
	get(&p, 20 * MiB);
	assert_int_equal(gpu_pool_get(&p, 20 * MiB, &out, &alloc_err), -ENOMEM);
	assert_int_equal(alloc_err, 0);                 /* the bound said no */
	assert_int_equal(allocs, 1);
	assert_int_equal(gpu_bound_held(&bound), 20 * MiB);
	get(&p, 8 * MiB);                               /* what fits still does */
	refuse = true;
	gpu_pool_reset(&p);
	get(&p, 20 * MiB);                              /* from the blocks it has */
	assert_int_equal(gpu_pool_get(&p, 9 * MiB, &out, &alloc_err), -ENOMEM);
	assert_int_equal(gpu_bound_held(&bound), 28 * MiB);
	gpu_pool_release(&p);
	assert_int_equal(gpu_bound_held(&bound), 0);
	bound.limit = 100 * MiB;
	assert_int_equal(gpu_pool_get(&p, 9 * MiB, &out, &alloc_err), -ENOMEM);
	assert_int_equal(alloc_err, 2);                 /* the allocator said no */
	assert_int_equal(gpu_bound_held(&bound), 0);    /* and took nothing */
}

static void test_a_pool_is_idle_only_after_the_idle_time_and_only_when_holding(void **state)
{
	struct gpu_bound bound = { 0, (uint64_t)1 << 40 };
	struct gpu_pool p = pool_of(&bound);

	(void)state;
	assert_false(gpu_pool_idle(&p, 0, 100, 10));    /* holds nothing */
	get(&p, 1);
	assert_false(gpu_pool_idle(&p, 100, 105, 10));
	assert_true(gpu_pool_idle(&p, 100, 110, 10));
	assert_false(gpu_pool_idle(&p, 200, 100, 10));  /* a clock that went back */
	gpu_pool_release(&p);
}

struct taker {
	struct gpu_bound *b;
	unsigned got, over;
};

static void *take_and_give(void *arg)
{
	struct taker *t = arg;

	for (int i = 0; i < 100000; i++)
		if (gpu_bound_take(t->b, 3)) {
			t->got++;
			t->over += gpu_bound_held(t->b) > t->b->limit;
			gpu_bound_give(t->b, 3);
		}
	return NULL;
}

static void test_a_bound_shared_by_threads_never_passes_its_limit(void **state)
{
	struct gpu_bound b = { 0, 10 };
	struct taker t[8];
	pthread_t th[8];

	(void)state;
	assert_true(gpu_bound_take(&b, 9));
	assert_false(gpu_bound_take(&b, 2));
	assert_false(gpu_bound_take(&b, UINT64_MAX));
	gpu_bound_give(&b, 9);
	for (int i = 0; i < 8; i++) {
		t[i] = (struct taker){ &b, 0, 0 };
		pthread_create(&th[i], NULL, take_and_give, &t[i]);
	}
	unsigned got = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(t[i].over, 0);
		got += t[i].got;
	}
	assert_true(got > 0);
	assert_int_equal(gpu_bound_held(&b), 0);
}

/* ---- placement ---------------------------------------------------------------------- */

static const char *const *env_now;

static const char *fake_getenv(const char *name)
{
	for (const char *const *e = env_now; e && *e; e += 2)
		if (!strcmp(e[0], name))
			return e[1];
	return NULL;
}

static bool rank_from(const char *const *env, long *rank, long *size)
{
	env_now = env;
	return gpu_local_rank(fake_getenv, rank, size);
}

static void test_the_node_rank_comes_from_any_launcher(void **state)
{
	static const char *const launchers[][5] = {
		{ "OMPI_COMM_WORLD_LOCAL_RANK", "3", "OMPI_COMM_WORLD_LOCAL_SIZE", "8", NULL },
		{ "MPI_LOCALRANKID", "3", "MPI_LOCALNRANKS", "8", NULL },
		{ "MV2_COMM_WORLD_LOCAL_RANK", "3", "MV2_COMM_WORLD_LOCAL_SIZE", "8", NULL },
		{ "PALS_LOCAL_RANKID", "3", "PALS_LOCAL_SIZE", "8", NULL },
		{ "SLURM_LOCALID", "3", "SLURM_NTASKS_PER_NODE", "8", NULL },
		{ "LOCAL_RANK", "3", "LOCAL_WORLD_SIZE", "8", NULL },
	};
	long rank, size;

	(void)state;
	for (size_t i = 0; i < sizeof(launchers) / sizeof(launchers[0]); i++) {
		rank = size = -7;
		assert_true(rank_from(launchers[i], &rank, &size));
		assert_int_equal(rank, 3);
		assert_int_equal(size, 8);
	}
	assert_false(rank_from((const char *const[]){ NULL }, &rank, &size));
	/* a rank without a count; a count the rank does not fit; junk */
	assert_true(rank_from((const char *const[]){ "SLURM_LOCALID", "2", NULL }, &rank, &size));
	assert_int_equal(rank, 2);
	assert_int_equal(size, 0);
	assert_true(rank_from((const char *const[]){ "LOCAL_RANK", "5", "LOCAL_WORLD_SIZE", "4", NULL },
			      &rank, &size));
	assert_int_equal(size, 0);
	assert_false(rank_from((const char *const[]){ "OMPI_COMM_WORLD_LOCAL_RANK", "1x", NULL },
			       &rank, &size));
	assert_false(rank_from((const char *const[]){ "OMPI_COMM_WORLD_LOCAL_RANK", "-1", NULL },
			       &rank, &size));
	/* OpenMPI's word wins over torchrun's */
	assert_true(rank_from((const char *const[]){ "LOCAL_RANK", "1", "OMPI_COMM_WORLD_LOCAL_RANK", "6",
						     NULL }, &rank, &size));
	assert_int_equal(rank, 6);
}

static void test_ranks_take_devices_round_robin_and_share_their_memory(void **state)
{
	(void)state;
	assert_int_equal(gpu_device_for_rank(0, 8), 0);
	assert_int_equal(gpu_device_for_rank(11, 8), 3);
	assert_int_equal(gpu_device_for_rank(-1, 8), 0);
	assert_int_equal(gpu_device_for_rank(3, 0), 0);
	/* 8 ranks on 8 GPUs: one each; 16 on 8: two each; 10 on 4: 3,3,2,2 */
	assert_int_equal(gpu_ranks_on_device(5, 8, 8), 1);
	assert_int_equal(gpu_ranks_on_device(5, 16, 8), 2);
	assert_int_equal(gpu_ranks_on_device(0, 10, 4), 3);
	assert_int_equal(gpu_ranks_on_device(1, 10, 4), 3);
	assert_int_equal(gpu_ranks_on_device(2, 10, 4), 2);
	assert_int_equal(gpu_ranks_on_device(7, 10, 4), 2);
	assert_int_equal(gpu_ranks_on_device(0, 0, 4), 1);      /* count unknown */
	/* a quarter of the free memory, split; an eighth of RAM, split */
	assert_int_equal(gpu_default_device_bound(80ull << 30, 1), 20ull << 30);
	assert_int_equal(gpu_default_device_bound(80ull << 30, 2), 10ull << 30);
	assert_int_equal(gpu_default_device_bound(80ull << 30, 0), 20ull << 30);
	assert_int_equal(gpu_default_pinned_bound(2048ull << 30, 8), 32ull << 30);
	assert_int_equal(gpu_default_pinned_bound(128ull << 30, 0), 16ull << 30);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block_sizes_are_the_request_rounded_not_a_doubling),
		cmocka_unit_test(test_a_pool_grows_to_need_then_allocates_nothing),
		cmocka_unit_test(test_the_bound_refuses_without_allocating_and_the_allocator_error_is_kept),
		cmocka_unit_test(test_a_pool_is_idle_only_after_the_idle_time_and_only_when_holding),
		cmocka_unit_test(test_a_bound_shared_by_threads_never_passes_its_limit),
		cmocka_unit_test(test_the_node_rank_comes_from_any_launcher),
		cmocka_unit_test(test_ranks_take_devices_round_robin_and_share_their_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
