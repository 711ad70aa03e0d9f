/* test_cache.c — the chunk cache: hits, the byte bound, LRU order, pins, single-flight. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cache.h"
#include "err.h"

/*
 * The out-of-memory test asks for SIZE_MAX / 2 bytes; let the sanitizers'
 * allocators return NULL for it as libc does instead of aborting.
 */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "allocator_may_return_null=1";
}

/* The bytes a chunk should hold: derived from its key so any mix-up shows. */
static unsigned char pattern_byte(uint64_t key, size_t i)
{
	return (unsigned char)(key * 131u + i * 7u + (i >> 8));
}

static int has_pattern(const struct cache_chunk *chunk, uint64_t key)
{
	const unsigned char *p = cache_data(chunk);

	for (size_t i = 0; i < cache_len(chunk); i++)
		if (p[i] != pattern_byte(key, i))
			return 0;
	return 1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A fill that writes the key's pattern, counts its calls, and can be told to fail or dawdle. */
struct filler {
	atomic_int calls;
	int fail_code;          /* 0: succeed */
	int fail_once;          /* only the first call fails */
	long sleep_ms;
	atomic_int *arrived;    /* if set, wait until this reaches want_arrived first */
	int want_arrived;
};

static int pattern_fill(void *arg, uint64_t key, void *buf, size_t len, char *err)
{
	struct filler *f = arg;
	int call = atomic_fetch_add(&f->calls, 1);

	if (f->arrived)
		while (atomic_load(f->arrived) < f->want_arrived)
			sleep_ms(1);
	if (f->sleep_ms)
		sleep_ms(f->sleep_ms);
	if (f->fail_code && (!f->fail_once || call == 0))
		return sd_err(err, f->fail_code, "chunk %llu: source read failed",
			      (unsigned long long)key);
	for (size_t i = 0; i < len; i++)
		((unsigned char *)buf)[i] = pattern_byte(key, i);
	return 0;
}

/* Get key (len bytes) and release it at once; fails the test on error. */
static void get_and_put(struct cache *c, uint64_t key, size_t len, struct filler *f)
{
	struct cache_chunk *chunk;
	char err[SD_ERRLEN];

	assert_int_equal(cache_get(c, key, len, pattern_fill, f, &chunk, err), 0);
	assert_true(has_pattern(chunk, key));
	cache_put(c, chunk);
}

static void test_hit_after_miss_returns_same_bytes_and_fills_once(void **state)
{
	struct cache *c = cache_new(1 << 20);
	struct filler f = { 0 };
	struct cache_chunk *first, *second;
	struct cache_stats st;
	char err[SD_ERRLEN];

	(void)state;
	assert_int_equal(cache_get(c, 7, 4096, pattern_fill, &f, &first, err), 0);
	assert_int_equal(cache_len(first), 4096);
	assert_true(has_pattern(first, 7));
	cache_put(c, first);

	assert_int_equal(cache_get(c, 7, 4096, pattern_fill, &f, &second, err), 0);
	assert_ptr_equal(cache_data(second), cache_data(first));
	assert_true(has_pattern(second, 7));
	cache_put(c, second);

	assert_int_equal(atomic_load(&f.calls), 1);
	cache_get_stats(c, &st);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.bytes, 4096);
	cache_free(c);
}

static void test_resident_bytes_stay_within_bound_and_evictions_are_counted(void **state)
{
	struct cache *c = cache_new(10000);
	struct filler f = { 0 };
	struct cache_stats st;

	(void)state;
	for (uint64_t key = 0; key < 50; key++) {
		get_and_put(c, key, 1000, &f);
		cache_get_stats(c, &st);
		assert_true(st.bytes <= 10000);
	}
	cache_get_stats(c, &st);
	assert_int_equal(st.bytes, 10000);
	assert_int_equal(st.entries, 10);
	assert_int_equal(st.evictions, 40);
	assert_int_equal(st.max_bytes, 10000);
	for (uint64_t key = 0; key < 40; key++)
		assert_false(cache_contains(c, key));
	for (uint64_t key = 40; key < 50; key++)
		assert_true(cache_contains(c, key));
	cache_free(c);
}

static void test_least_recently_used_chunk_is_evicted_first(void **state)
{
	struct cache *c = cache_new(3000);
	struct filler f = { 0 };

	(void)state;
	get_and_put(c, 1, 1000, &f);    /* A */
	get_and_put(c, 2, 1000, &f);    /* B */
	get_and_put(c, 3, 1000, &f);    /* C */
	get_and_put(c, 1, 1000, &f);    /* touch A: B is now the oldest */

	get_and_put(c, 4, 1000, &f);
	assert_false(cache_contains(c, 2));
	assert_true(cache_contains(c, 1));
	assert_true(cache_contains(c, 3));

	get_and_put(c, 5, 1000, &f);
	assert_false(cache_contains(c, 3));
	assert_true(cache_contains(c, 1));
	assert_int_equal(atomic_load(&f.calls), 5);
	cache_free(c);
}

static void test_contains_does_not_refresh_lru_order(void **state)
{
	struct cache *c = cache_new(2000);
	struct filler f = { 0 };

	(void)state;
	get_and_put(c, 1, 1000, &f);
	get_and_put(c, 2, 1000, &f);
	assert_true(cache_contains(c, 1));      /* must not count as a use */
	get_and_put(c, 3, 1000, &f);
	assert_false(cache_contains(c, 1));
	assert_true(cache_contains(c, 2));
	cache_free(c);
}

static void test_pinned_chunks_survive_eviction_until_released(void **state)
{
	struct cache *c = cache_new(2000);
	struct filler f = { 0 };
	struct cache_chunk *pinned[3];
	struct cache_stats st;
	char err[SD_ERRLEN];

	(void)state;
	for (uint64_t key = 1; key <= 3; key++)
		assert_int_equal(cache_get(c, key, 1000, pattern_fill, &f,
					   &pinned[key - 1], err), 0);
	for (uint64_t key = 4; key < 10; key++)
		get_and_put(c, key, 1000, &f);

	/* Over the bound, yet every pinned chunk is resident and intact. */
	cache_get_stats(c, &st);
	assert_int_equal(st.bytes, 3000);
	assert_int_equal(st.evictions, 6);
	for (uint64_t key = 1; key <= 3; key++) {
		assert_true(cache_contains(c, key));
		assert_true(has_pattern(pinned[key - 1], key));
	}

	for (int i = 0; i < 3; i++)
		cache_put(c, pinned[i]);
	cache_get_stats(c, &st);
	assert_true(st.bytes <= 2000);
	get_and_put(c, 10, 1000, &f);
	get_and_put(c, 11, 1000, &f);
	for (uint64_t key = 1; key <= 3; key++)
		assert_false(cache_contains(c, key));
	cache_free(c);
}

static void test_oversized_chunk_is_served_then_dropped_on_release(void **state)
{
	struct cache *c = cache_new(1000);
	struct filler f = { 0 };
	struct cache_chunk *big;
	struct cache_stats st;
	char err[SD_ERRLEN];

	(void)state;
	assert_int_equal(cache_get(c, 42, 5000, pattern_fill, &f, &big, err), 0);
	assert_int_equal(cache_len(big), 5000);
	assert_true(has_pattern(big, 42));
	assert_true(cache_contains(c, 42));

	cache_put(c, big);
	assert_false(cache_contains(c, 42));
	cache_get_stats(c, &st);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.evictions, 1);

	get_and_put(c, 42, 5000, &f);   /* served again: filled anew */
	assert_int_equal(atomic_load(&f.calls), 2);
	cache_free(c);
}

static void test_fill_error_reaches_caller_is_not_cached_and_next_get_retries(void **state)
{
	struct cache *c = cache_new(1 << 20);
	struct filler f = { .fail_code = -EIO, .fail_once = 1 };
	struct cache_chunk *chunk;
	struct cache_stats st;
	char err[SD_ERRLEN] = "";

	(void)state;
	assert_int_equal(cache_get(c, 9, 100, pattern_fill, &f, &chunk, err), -EIO);
	assert_string_equal(err, "chunk 9: source read failed");
	assert_false(cache_contains(c, 9));
	cache_get_stats(c, &st);
	assert_int_equal(st.fill_errors, 1);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);

	assert_int_equal(cache_get(c, 9, 100, pattern_fill, &f, &chunk, err), 0);
	assert_true(has_pattern(chunk, 9));
	cache_put(c, chunk);
	assert_int_equal(atomic_load(&f.calls), 2);
	cache_free(c);
}

static void test_empty_chunk_is_a_valid_entry(void **state)
{
	struct cache *c = cache_new(1000);
	struct filler f = { 0 };
	struct cache_chunk *chunk;
	char err[SD_ERRLEN];

	(void)state;
	assert_int_equal(cache_get(c, 5, 0, pattern_fill, &f, &chunk, err), 0);
	assert_non_null(chunk);
	assert_non_null(cache_data(chunk));
	assert_int_equal(cache_len(chunk), 0);
	cache_put(c, chunk);
	assert_true(cache_contains(c, 5));
	get_and_put(c, 5, 0, &f);
	assert_int_equal(atomic_load(&f.calls), 1);
	cache_free(c);
}

static void test_unallocatable_chunk_returns_enomem_and_inserts_nothing(void **state)
{
	struct cache *c = cache_new(1 << 20);
	struct filler f = { 0 };
	struct cache_chunk *chunk;
	struct cache_stats st;
	char err[SD_ERRLEN] = "";
	char want[SD_ERRLEN];

	(void)state;
	assert_int_equal(cache_get(c, 3, SIZE_MAX / 2, pattern_fill, &f, &chunk, err),
			 -ENOMEM);
	snprintf(want, sizeof(want),
		 "cache: cannot allocate %zu bytes for a converted chunk", SIZE_MAX / 2);
	assert_string_equal(err, want);
	/* A length whose header would wrap size_t fails the same way. */
	assert_int_equal(cache_get(c, 4, SIZE_MAX - 8, pattern_fill, &f, &chunk, err),
			 -ENOMEM);

	assert_false(cache_contains(c, 3));
	assert_int_equal(atomic_load(&f.calls), 0);
	cache_get_stats(c, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.misses, 0);
	cache_free(c);
}

static void test_many_entries_stay_reachable(void **state)
{
	enum { N = 200000 };
	struct cache *c = cache_new((uint64_t)N * 8);
	struct filler f = { 0 };
	struct cache_stats st;

	(void)state;
	for (uint64_t key = 0; key < N; key++)
		get_and_put(c, key * 0x10001u, 8, &f);
	for (uint64_t key = 0; key < N; key++)
		if (!cache_contains(c, key * 0x10001u))
			fail_msg("key %llu lost", (unsigned long long)key);
	cache_get_stats(c, &st);
	assert_int_equal(st.entries, N);
	assert_int_equal(st.evictions, 0);
	cache_free(c);
}

/* Threads that all ask for one key at the same moment. */
struct same_key_run {
	struct cache *c;
	struct filler *f;
	pthread_barrier_t start;
	atomic_int arrived;
};

struct same_key_result {
	struct same_key_run *run;
	int rc;
	char err[SD_ERRLEN];
	const void *data;
	int pattern_ok;
};

static void *get_same_key(void *arg)
{
	struct same_key_result *r = arg;
	struct cache_chunk *chunk;

	pthread_barrier_wait(&r->run->start);
	atomic_fetch_add(&r->run->arrived, 1);
	r->rc = cache_get(r->run->c, 77, 3000, pattern_fill, r->run->f, &chunk, r->err);
	if (r->rc == 0) {
		r->data = cache_data(chunk);
		r->pattern_ok = has_pattern(chunk, 77);
		cache_put(r->run->c, chunk);
	}
	return NULL;
}

/* Start n threads on one key; the fill waits until all have arrived, then sleeps 50 ms. */
static void run_same_key(struct cache *c, struct filler *f, int n,
			 struct same_key_result *results)
{
	struct same_key_run run = { .c = c, .f = f };
	pthread_t tid[64];

	assert_true(n <= 64);
	f->arrived = &run.arrived;
	f->want_arrived = n;
	f->sleep_ms = 50;
	pthread_barrier_init(&run.start, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		results[i].run = &run;
		assert_int_equal(pthread_create(&tid[i], NULL, get_same_key, &results[i]), 0);
	}
	for (int i = 0; i < n; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&run.start);
	f->arrived = NULL;
}

static void test_concurrent_gets_of_one_missing_key_fill_it_once(void **state)
{
	enum { THREADS = 16 };
	struct cache *c = cache_new(1 << 20);
	struct filler f = { 0 };
	struct same_key_result r[THREADS] = { 0 };
	struct cache_stats st;

	(void)state;
	run_same_key(c, &f, THREADS, r);
	assert_int_equal(atomic_load(&f.calls), 1);
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(r[i].rc, 0);
		assert_true(r[i].pattern_ok);
		assert_ptr_equal(r[i].data, r[0].data);
	}
	cache_get_stats(c, &st);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.hits, THREADS - 1);
	cache_free(c);
}

static void test_waiters_on_a_failing_fill_all_receive_its_error(void **state)
{
	enum { THREADS = 8 };
	struct cache *c = cache_new(1 << 20);
	struct filler f = { .fail_code = -EIO };
	struct same_key_result r[THREADS] = { 0 };
	struct cache_stats st;

	(void)state;
	run_same_key(c, &f, THREADS, r);
	assert_int_equal(atomic_load(&f.calls), 1);
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(r[i].rc, -EIO);
		assert_string_equal(r[i].err, "chunk 77: source read failed");
	}
	assert_false(cache_contains(c, 77));
	cache_get_stats(c, &st);
	assert_int_equal(st.fill_errors, 1);
	assert_int_equal(st.hits, 0);
	assert_int_equal(st.entries, 0);
	cache_free(c);
}

/* Many threads, many keys, a bound that forces constant eviction. */
enum { MIX_THREADS = 8, MIX_GETS = 20000, MIX_KEYS = 300 };

struct mix_run {
	struct cache *c;
	struct filler *f;
	unsigned seed;
	atomic_int *bad;
	atomic_int *failed_gets;
};

static size_t mix_len(uint64_t key)
{
	return (size_t)(key * 37u % 3000u);     /* includes empty chunks */
}

static void *mix_worker(void *arg)
{
	struct mix_run *m = arg;
	unsigned x = m->seed;
	char err[SD_ERRLEN];

	for (int i = 0; i < MIX_GETS; i++) {
		struct cache_chunk *chunk;

		x = x * 1103515245u + 12345u;
		uint64_t key = (x >> 8) % MIX_KEYS;
		if (cache_get(m->c, key, mix_len(key), pattern_fill, m->f, &chunk, err)) {
			atomic_fetch_add(m->failed_gets, 1);
			continue;
		}
		if (cache_len(chunk) != mix_len(key) || !has_pattern(chunk, key))
			atomic_fetch_add(m->bad, 1);
		cache_put(m->c, chunk);
	}
	return NULL;
}

static void test_random_workload_returns_right_bytes_and_stats_add_up(void **state)
{
	struct cache *c = cache_new(64 * 1024);
	struct filler f = { 0 };
	struct mix_run runs[MIX_THREADS];
	pthread_t tid[MIX_THREADS];
	atomic_int bad = 0, failed_gets = 0;
	struct cache_stats st;

	(void)state;
	for (int i = 0; i < MIX_THREADS; i++) {
		runs[i] = (struct mix_run){ c, &f, 0x9e3779b9u * (unsigned)(i + 1),
					    &bad, &failed_gets };
		assert_int_equal(pthread_create(&tid[i], NULL, mix_worker, &runs[i]), 0);
	}
	for (int i = 0; i < MIX_THREADS; i++)
		pthread_join(tid[i], NULL);

	assert_int_equal(atomic_load(&bad), 0);
	assert_int_equal(atomic_load(&failed_gets), 0);
	cache_get_stats(c, &st);
	assert_int_equal(st.hits + st.misses, (uint64_t)MIX_THREADS * MIX_GETS);
	assert_int_equal(st.misses, atomic_load(&f.calls));
	assert_true(st.evictions > 0);
	assert_int_equal(st.misses - st.evictions, st.entries);
	assert_true(st.bytes <= 64 * 1024);
	cache_free(c);
}

struct ahead_arg {
	struct cache *c;
	struct filler *f;
	int rc;
};

static void *fill_ahead_thread(void *p)
{
	struct ahead_arg *a = p;
	char err[SD_ERRLEN];

	a->rc = cache_fill_ahead(a->c, 8, 4096, pattern_fill, a->f, 1 << 20, err);
	return NULL;
}

static void test_a_chunk_filled_ahead_counts_as_a_hit_when_read(void **state)
{
	struct cache *c = cache_new(1 << 20);
	struct filler f = { 0 };
	struct cache_chunk *chunk;
	struct cache_stats st;
	char err[SD_ERRLEN];

	(void)state;
	assert_int_equal(cache_fill_ahead(c, 9, 4096, pattern_fill, &f, 1 << 20, err), 0);
	cache_get_stats(c, &st);
	assert_int_equal(st.ahead_fills, 1);
	assert_int_equal(st.ahead_bytes, 4096);
	assert_true(cache_contains(c, 9));
	/* resident: nothing to do */
	assert_int_equal(cache_fill_ahead(c, 9, 4096, pattern_fill, &f, 1 << 20, err), 1);

	assert_int_equal(cache_get(c, 9, 4096, pattern_fill, &f, &chunk, err), 0);
	assert_true(has_pattern(chunk, 9));
	cache_put(c, chunk);
	get_and_put(c, 9, 4096, &f);
	assert_int_equal(atomic_load(&f.calls), 1);
	cache_get_stats(c, &st);
	assert_int_equal(st.ahead_hits, 1);     /* the first read only */
	assert_int_equal(st.ahead_bytes, 0);
	assert_int_equal(st.ahead_wasted, 0);
	cache_free(c);
}

static void test_filling_ahead_stops_at_its_share_and_unread_evictions_count_as_waste(void **state)
{
	struct cache *c = cache_new(3000);
	struct filler f = { 0 };
	struct cache_stats st;
	char err[SD_ERRLEN];

	(void)state;
	assert_int_equal(cache_fill_ahead(c, 1, 1000, pattern_fill, &f, 2000, err), 0);
	assert_int_equal(cache_fill_ahead(c, 2, 1000, pattern_fill, &f, 2000, err), 0);
	/* a third would pass the 2000 bytes allowed ahead and unread */
	assert_int_equal(cache_fill_ahead(c, 3, 1000, pattern_fill, &f, 2000, err), 2);
	assert_false(cache_contains(c, 3));
	assert_int_equal(atomic_load(&f.calls), 2);
	/* readers fill the cache past its bound: the oldest unread chunk goes */
	get_and_put(c, 4, 1000, &f);
	get_and_put(c, 5, 1000, &f);
	assert_false(cache_contains(c, 1));
	cache_get_stats(c, &st);
	assert_int_equal(st.ahead_wasted, 1);
	assert_int_equal(st.ahead_bytes, 1000);
	assert_int_equal(st.ahead_hits, 0);
	cache_free(c);
}

static void test_a_failed_fill_ahead_leaves_nothing_behind(void **state)
{
	struct cache *c = cache_new(1 << 20);
	struct filler f = { .fail_code = -EIO, .fail_once = 1 };
	struct cache_stats st;
	char err[SD_ERRLEN];

	(void)state;
	assert_int_equal(cache_fill_ahead(c, 6, 4096, pattern_fill, &f, 1 << 20, err), -EIO);
	assert_string_equal(err, "chunk 6: source read failed");
	assert_false(cache_contains(c, 6));
	cache_get_stats(c, &st);
	assert_int_equal(st.ahead_bytes, 0);
	get_and_put(c, 6, 4096, &f);    /* a reader tries again */
	cache_free(c);
}

static void test_a_reader_waits_for_the_fill_ahead_instead_of_converting_again(void **state)
{
	struct cache *c = cache_new(1 << 20);
	struct filler f = { .sleep_ms = 100 };
	struct ahead_arg a = { c, &f, 0 };
	struct cache_chunk *chunk;
	pthread_t th;
	char err[SD_ERRLEN];

	(void)state;
	pthread_create(&th, NULL, fill_ahead_thread, &a);
	while (!cache_contains(c, 8))
		sleep_ms(1);
	assert_int_equal(cache_get(c, 8, 4096, pattern_fill, &f, &chunk, err), 0);
	assert_true(has_pattern(chunk, 8));
	cache_put(c, chunk);
	pthread_join(th, NULL);
	assert_int_equal(a.rc, 0);
	assert_int_equal(atomic_load(&f.calls), 1);
	cache_free(c);
}

/* Fill key (len bytes), hand `read` of its bytes to a reader, release it. */
static void get_and_read(struct cache *c, uint64_t key, size_t len, size_t read, struct filler *f)
{
	struct cache_chunk *chunk;
	char err[SD_ERRLEN];

	assert_int_equal(cache_get(c, key, len, pattern_fill, f, &chunk, err), 0);
	cache_put_read(c, chunk, read);
}

static void test_chunks_read_whole_are_evicted_before_all_others(void **state)
{
	struct cache *c = cache_new(3000);
	struct filler f = { 0 };

	(void)state;
	get_and_read(c, 1, 1000, 0, &f);        /* the least recently used */
	get_and_read(c, 2, 1000, 600, &f);
	get_and_read(c, 2, 1000, 400, &f);      /* read whole in two reads */
	get_and_read(c, 3, 1000, 999, &f);      /* not quite */
	get_and_read(c, 4, 1000, 0, &f);
	assert_true(cache_contains(c, 1));
	assert_false(cache_contains(c, 2));
	assert_true(cache_contains(c, 3));
	cache_free(c);
}

static void test_past_a_quarter_of_the_bound_fills_reuse_chunks_read_whole(void **state)
{
	struct cache *c = cache_new(8000);      /* recycles above 2000 bytes */
	struct filler f = { 0 };
	struct cache_stats st;

	(void)state;
	get_and_read(c, 1, 1000, 1000, &f);
	get_and_read(c, 2, 1000, 1000, &f);
	get_and_read(c, 3, 1000, 1000, &f);     /* recycles 1: 2000 bytes held */
	cache_get_stats(c, &st);
	assert_int_equal(st.recycled, 1);
	assert_int_equal(st.bytes, 2000);
	assert_int_equal(cache_contains(c, 1) + cache_contains(c, 2), 1);
	/* chunks not read whole are kept: once those read whole are gone, the
	 * cache grows up to its bound, then evicts as always */
	for (uint64_t k = 10; k < 16; k++)
		get_and_read(c, k, 1000, 10, &f);
	cache_get_stats(c, &st);
	assert_int_equal(st.recycled, 3);
	assert_int_equal(st.bytes, 6000);
	get_and_read(c, 16, 1000, 10, &f);
	get_and_read(c, 17, 1000, 10, &f);
	get_and_read(c, 18, 1000, 10, &f);
	cache_get_stats(c, &st);
	assert_int_equal(st.bytes, 8000);
	assert_int_equal(st.recycled, 3);
	assert_false(cache_contains(c, 10));    /* the least recently used */
	assert_true(cache_contains(c, 11));
	cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_after_miss_returns_same_bytes_and_fills_once),
		cmocka_unit_test(test_resident_bytes_stay_within_bound_and_evictions_are_counted),
		cmocka_unit_test(test_least_recently_used_chunk_is_evicted_first),
		cmocka_unit_test(test_contains_does_not_refresh_lru_order),
		cmocka_unit_test(test_pinned_chunks_survive_eviction_until_released),
		cmocka_unit_test(test_oversized_chunk_is_served_then_dropped_on_release),
		cmocka_unit_test(test_fill_error_reaches_caller_is_not_cached_and_next_get_retries),
		cmocka_unit_test(test_empty_chunk_is_a_valid_entry),
		cmocka_unit_test(test_unallocatable_chunk_returns_enomem_and_inserts_nothing),
		cmocka_unit_test(test_many_entries_stay_reachable),
		cmocka_unit_test(test_concurrent_gets_of_one_missing_key_fill_it_once),
		cmocka_unit_test(test_waiters_on_a_failing_fill_all_receive_its_error),
		cmocka_unit_test(test_random_workload_returns_right_bytes_and_stats_add_up),
		cmocka_unit_test(test_a_chunk_filled_ahead_counts_as_a_hit_when_read),
		cmocka_unit_test(test_filling_ahead_stops_at_its_share_and_unread_evictions_count_as_waste),
		cmocka_unit_test(test_a_failed_fill_ahead_leaves_nothing_behind),
		cmocka_unit_test(test_a_reader_waits_for_the_fill_ahead_instead_of_converting_again),
		cmocka_unit_test(test_chunks_read_whole_are_evicted_before_all_others),
		cmocka_unit_test(test_past_a_quarter_of_the_bound_fills_reuse_chunks_read_whole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
