/* test_chunkmem.c — chunk memory: kept within its bound, reused at the same
 * size, and rebuilt from the blocks of chunks of other sizes without fresh
 * pages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chunkmem.h"

#define MiB ((size_t)1 << 20)
#define ALL_ON ((struct chunkmem_opts){ .reuse_blocks = true, .hugepages = true, .prefault = true })

/* A mark in every block, past the bytes a kept buffer's header may use. */
static void mark_blocks(char *p, size_t len, char tag)
{
	for (size_t b = 0; b < len; b += CHUNKMEM_BLOCK)
		memset(p + b + 4096, tag, 64);
}

static size_t count_marked_blocks(const char *p, size_t len, char tag)
{
	size_t n = 0;

	for (size_t b = 0; b < len; b += CHUNKMEM_BLOCK) {
		size_t i = 0;
		while (i < 64 && p[b + 4096 + i] == tag)
			i++;
		n += i == 64;
	}
	return n;
}

static void test_a_chunk_of_another_size_is_built_from_kept_blocks_not_fresh_pages(void **state)
{
	struct chunkmem *m = chunkmem_new(64 * MiB, &ALL_ON);
	struct chunkmem_stats st;
	char *a = chunkmem_get(m, 4 * MiB), *b = chunkmem_get(m, 4 * MiB), *c;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	mark_blocks(a, 4 * MiB, 'A');
	mark_blocks(b, 4 * MiB, 'B');
	chunkmem_put(m, a, 4 * MiB);
	chunkmem_put(m, b, 4 * MiB);
	chunkmem_get_stats(m, &st);
	assert_int_equal(st.fresh_bytes, 8 * MiB);
	assert_int_equal(st.kept_bytes, 8 * MiB);

	c = chunkmem_get(m, 8 * MiB - 100);     /* rounds up to four blocks */
	assert_non_null(c);
	assert_int_equal((uintptr_t)c % CHUNKMEM_BLOCK, 0);
	/* The very pages written before: two blocks of each released chunk. */
	assert_int_equal(count_marked_blocks(c, 8 * MiB, 'A'), 2);
	assert_int_equal(count_marked_blocks(c, 8 * MiB, 'B'), 2);
	chunkmem_get_stats(m, &st);
	assert_int_equal(st.fresh_bytes, 8 * MiB);
	assert_int_equal(st.moved_bytes, 8 * MiB);
	assert_int_equal(st.kept_bytes, 0);
	memset(c, 0x5a, 8 * MiB - 100);         /* all of it is writable */
	chunkmem_put(m, c, 8 * MiB - 100);
	chunkmem_free(m);
}

static void test_a_larger_kept_run_is_cut_and_its_rest_kept(void **state)
{
	struct chunkmem *m = chunkmem_new(64 * MiB, &ALL_ON);
	struct chunkmem_stats st;
	char *big = chunkmem_get(m, 10 * MiB), *small;

	(void)state;
	mark_blocks(big, 10 * MiB, 'X');
	chunkmem_put(m, big, 10 * MiB);
	small = chunkmem_get(m, 4 * MiB);
	assert_int_equal(count_marked_blocks(small, 4 * MiB, 'X'), 2);
	chunkmem_get_stats(m, &st);
	assert_int_equal(st.moved_bytes, 4 * MiB);
	assert_int_equal(st.kept_bytes, 6 * MiB);
	/* the rest is still usable, as a whole */
	char *rest = chunkmem_get(m, 6 * MiB);
	assert_int_equal(count_marked_blocks(rest, 6 * MiB, 'X'), 3);
	chunkmem_get_stats(m, &st);
	assert_int_equal(st.reused_bytes, 6 * MiB);
	assert_int_equal(st.fresh_bytes, 10 * MiB);
	chunkmem_put(m, small, 4 * MiB);
	chunkmem_put(m, rest, 6 * MiB);
	chunkmem_free(m);
}

static void test_without_block_reuse_only_the_same_size_is_reused(void **state)
{
	struct chunkmem_opts o = { .reuse_blocks = false };
	struct chunkmem *m = chunkmem_new(64 * MiB, &o);
	struct chunkmem_stats st;
	char *a = chunkmem_get(m, 4 * MiB), *b = chunkmem_get(m, 4 * MiB), *c, *d;

	(void)state;
	chunkmem_put(m, a, 4 * MiB);
	chunkmem_put(m, b, 4 * MiB);
	c = chunkmem_get(m, 8 * MiB);
	d = chunkmem_get(m, 4 * MiB);
	chunkmem_get_stats(m, &st);
	assert_int_equal(st.fresh_bytes, 16 * MiB);
	assert_int_equal(st.moved_bytes, 0);
	assert_int_equal(st.reused_bytes, 4 * MiB);
	chunkmem_put(m, c, 8 * MiB);
	chunkmem_put(m, d, 4 * MiB);
	chunkmem_free(m);
}

static void test_kept_memory_stays_within_its_bound(void **state)
{
	struct chunkmem *m = chunkmem_new(6 * MiB, &ALL_ON);
	struct chunkmem_stats st;
	char *p[4];

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_non_null(p[i] = chunkmem_get(m, 4 * MiB));
	for (int i = 0; i < 4; i++) {
		chunkmem_put(m, p[i], 4 * MiB);
		chunkmem_get_stats(m, &st);
		assert_true(st.kept_bytes <= 6 * MiB);
	}
	/* one whole chunk, then the one block of the next that still fits */
	assert_int_equal(st.kept_bytes, 6 * MiB);
	chunkmem_free(m);
}

static void test_small_chunks_are_reused_at_their_size(void **state)
{
	struct chunkmem *m = chunkmem_new(1 * MiB, &ALL_ON);
	struct chunkmem_stats st;
	char *a = chunkmem_get(m, 5000), *b, *z;

	(void)state;
	memset(a, 1, 5000);
	chunkmem_put(m, a, 5000);
	b = chunkmem_get(m, 8000);      /* the same two pages */
	assert_ptr_equal(a, b);
	z = chunkmem_get(m, 0);         /* an empty chunk still has an address */
	assert_non_null(z);
	chunkmem_get_stats(m, &st);
	assert_int_equal(st.reused_bytes, 8192);
	assert_null(chunkmem_get(m, SIZE_MAX / 2 + 1));
	chunkmem_put(m, b, 8000);
	chunkmem_put(m, z, 0);
	chunkmem_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_chunk_of_another_size_is_built_from_kept_blocks_not_fresh_pages),
		cmocka_unit_test(test_a_larger_kept_run_is_cut_and_its_rest_kept),
		cmocka_unit_test(test_without_block_reuse_only_the_same_size_is_reused),
		cmocka_unit_test(test_kept_memory_stays_within_its_bound),
		cmocka_unit_test(test_small_chunks_are_reused_at_their_size),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
