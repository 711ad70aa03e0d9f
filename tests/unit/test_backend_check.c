/*
 * test_backend_check.c — the check a mount runs before it lets a second
 * backend convert (convert/recipe/backend_check.c): the CPU passes it against
 * itself, and evaluators that are wrong in small ways are caught, named.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend_check.h"
#include "dtype.h"
#include "err.h"

static enum rx_op flip_op;

/* The CPU's bytes with one byte flipped when the root is flip_op. */
static int flips_one_byte(const struct recipe *r, uint64_t r0, uint64_t r1, void *dst,
			  const struct rx_reader *rd, char *err)
{
	int rc = recipe_eval_cpu(r, r0, r1, dst, rd, err);

	if (rc == 0 && rx_root(r)->op == flip_op && r1 > r0)
		((unsigned char *)dst)[(r1 - r0) * rx_row_bytes(rx_root(r)) / 2] ^= 0x01;
	return rc;
}

/* Ignores where the rows start: right from row 0, wrong from any other. */
static int ignores_r0(const struct recipe *r, uint64_t r0, uint64_t r1, void *dst,
		      const struct rx_reader *rd, char *err)
{
	unsigned char *all = malloc((size_t)(r1 * rx_row_bytes(rx_root(r))) + 1);
	int rc = recipe_eval_cpu(r, 0, r1, all, rd, err);

	(void)r0;
	if (rc == 0)
		memcpy(dst, all, (size_t)((r1 - r0) * rx_row_bytes(rx_root(r))));
	free(all);
	return rc;
}

static int fails(const struct recipe *r, uint64_t r0, uint64_t r1, void *dst,
		 const struct rx_reader *rd, char *err)
{
	(void)r; (void)r0; (void)r1; (void)dst; (void)rd;
	return sd_err(err, -EIO, "CUDA: an illegal memory access was encountered");
}

/* Right except past the first 270336 elements (one wave of an H100's
 * threads: 132 multiprocessors x 2048), as a grid-stride loop that never
 * goes round would be; casts only. */
static int wrong_past_one_wave(const struct recipe *r, uint64_t r0, uint64_t r1, void *dst,
			       const struct rx_reader *rd, char *err)
{
	int rc = recipe_eval_cpu(r, r0, r1, dst, rd, err);
	uint64_t bytes = (r1 - r0) * rx_row_bytes(rx_root(r));
	uint64_t past = 270336 * dtype_size(rx_root(r)->dtype);

	if (rc == 0 && rx_root(r)->op == RX_CAST && bytes > past)
		((unsigned char *)dst)[past] ^= 0x80;
	return rc;
}

/* Right except for matrices past the first 65535 of a batched transpose,
 * as a launch that ignores grid.z's limit would be. */
static int wrong_past_one_grid(const struct recipe *r, uint64_t r0, uint64_t r1, void *dst,
			       const struct rx_reader *rd, char *err)
{
	int rc = recipe_eval_cpu(r, r0, r1, dst, rd, err);
	const struct rx_node *n = rx_root(r);

	if (rc == 0 && n->op == RX_TRANSPOSE_LAST2 && n->ndim == 3 && r1 - r0 > 65535)
		((unsigned char *)dst)[65535 * rx_row_bytes(n)] ^= 0x01;
	return rc;
}

/* The batched path of a backend that is right whole and wrong in batches. */
static int batched_but_wrong(const struct recipe *r, uint64_t r0, uint64_t r1, void *dst,
			     const struct rx_reader *rd, char *err)
{
	int rc = recipe_eval_cpu(r, r0, r1, dst, rd, err);

	if (rc == 0 && r1 > r0)
		((unsigned char *)dst)[0] ^= 0x01;
	return rc;
}

static void test_the_cpu_passes_against_itself(void **state)
{
	char err[SD_ERRLEN] = "";

	(void)state;
	assert_int_equal(backend_check(recipe_eval_cpu, NULL, err), 0);
}

static void test_one_wrong_byte_of_any_operation_is_caught_and_named(void **state)
{
	static const struct { enum rx_op op; const char *name; } ops[] = {
		{ RX_TRANSPOSE_LAST2, "transpose_last2" }, { RX_CAST, "cast" },
		{ RX_STACK0, "gate_and_up" }, { RX_SLICE0, "slice0" },
		{ RX_DEQUANT_FP8, "dequant_fp8_block" }, { RX_DEQUANT_MXFP4, "dequant_mxfp4" },
	};
	char err[SD_ERRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		flip_op = ops[i].op;
		err[0] = '\0';
		assert_int_equal(backend_check(flips_one_byte, NULL, err), -EIO);
		if (!strstr(err, ops[i].name) || !strstr(err, "differs from the CPU"))
			fail_msg("%s: %s", ops[i].name, err);
	}
}

static void test_rows_from_the_wrong_place_are_caught(void **state)
{
	char err[SD_ERRLEN] = "";

	(void)state;
	assert_int_equal(backend_check(ignores_r0, NULL, err), -EIO);
	assert_non_null(strstr(err, "(rows 1.."));
}

static void test_an_evaluator_error_is_passed_on_with_the_case(void **state)
{
	char err[SD_ERRLEN] = "";

	(void)state;
	assert_int_equal(backend_check(fails, NULL, err), -EIO);
	assert_non_null(strstr(err, "backend check, transpose_last2"));
	assert_non_null(strstr(err, "illegal memory access"));
}

static void test_paths_only_large_inputs_take_are_checked(void **state)
{
	char err[SD_ERRLEN] = "";

	(void)state;
	assert_int_equal(backend_check(wrong_past_one_wave, NULL, err), -EIO);
	if (!strstr(err, "grid-stride") || !strstr(err, "cast"))
		fail_msg("%s", err);
	err[0] = '\0';
	assert_int_equal(backend_check(wrong_past_one_grid, NULL, err), -EIO);
	if (!strstr(err, "groups of 65535"))
		fail_msg("%s", err);
}

static void test_the_batched_path_is_checked_from_row_1(void **state)
{
	char err[SD_ERRLEN] = "";

	(void)state;
	assert_int_equal(backend_check(recipe_eval_cpu, recipe_eval_cpu, err), 0);
	assert_int_equal(backend_check(recipe_eval_cpu, batched_but_wrong, err), -EIO);
	if (!strstr(err, "(rows 1..") || !strstr(err, "in row batches"))
		fail_msg("%s", err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_cpu_passes_against_itself),
		cmocka_unit_test(test_one_wrong_byte_of_any_operation_is_caught_and_named),
		cmocka_unit_test(test_rows_from_the_wrong_place_are_caught),
		cmocka_unit_test(test_an_evaluator_error_is_passed_on_with_the_case),
		cmocka_unit_test(test_paths_only_large_inputs_take_are_checked),
		cmocka_unit_test(test_the_batched_path_is_checked_from_row_1),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
