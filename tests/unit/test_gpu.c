/*
 * test_gpu.c — the CUDA backend gives the CPU backend's bytes, for every
 * recipe operation, for random inputs and for every special value.
 *
 * Each test builds recipes over an in-memory source (random bits, plus
 * every BF16 pattern, the F32/F16 specials — +-0, subnormals, NaNs with
 * payloads, +-Inf, max-finite, rounding ties — every FP8 code and every
 * MXFP4 byte under edge scales), evaluates them whole and for ranges of
 * rows with recipe_eval_cpu and recipe_eval_cuda, and compares byte for
 * byte.  The CPU side is checked against independent naive references in
 * test_recipe.c, test_dequant.c and test_dtype.c; this file pins the GPU to
 * it.
 *
 * The optimised build (build/tests/test_gpu) runs them on a real GPU, and
 * without a usable one (or in a build without nvcc) every test is a TAP
 * skip that says why.  The sanitizer build, where CUDA cannot start, runs
 * them on the fake device of gpu_fake.c instead: the backend's own code,
 * and its kernels' thread functions on the CPU, under AddressSanitizer.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dtype.h"
#include "err.h"
#include "gpu.h"
#include "gpu_fake.h"
#include "recipe.h"
#include "testlib.h"

static char why_skip[SD_ERRLEN];

/* This file's random stream (see recipe_fixture_setup). */
static uint64_t stream = 0x853C49E6748FEA9Bull;

/* Special bit patterns laid over the start of float tensors. */
static const uint32_t f32_special[] = {
	0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x00008000,
	0x00018000, 0x00800000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001,
	0x7F800001, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F7FFF, 0x7F7F8000, 0x3F808000,
	0x3F818000, 0x477FE000, 0x477FF000, 0x33000000, 0x33C00000, 0x387FC000,
};
static const uint16_t f16_special[] = {
	0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00,
	0xFC00, 0x7C01, 0x7E00, 0xFE01, 0x7FFF,
};

/* A source tensor with random bits, specials first; returns its rx_src. */
static int add_src(struct recipe_fixture *f, enum sd_dtype dt, int ndim, const uint64_t *shape)
{
	size_t i = recipe_fixture_add(f, NULL, dt, ndim, shape, MEMSRC_RANDOM);
	unsigned char *b = f->mem.bytes[i];
	uint64_t n = f->mem.tensors[i].nbytes / dtype_size(dt);

	if (dt == SD_F32)
		memcpy(b, f32_special, n * 4 < sizeof(f32_special) ? n * 4 : sizeof(f32_special));
	if (dt == SD_F16)
		memcpy(b, f16_special, n * 2 < sizeof(f16_special) ? n * 2 : sizeof(f16_special));
	if (dt == SD_BF16)              /* every pattern while there is room */
		for (uint64_t k = 0; k < n && k < 65536; k++)
			memcpy(b + 2 * k, &(uint16_t){ (uint16_t)k }, 2);
	return recipe_fixture_src(f, i);
}

/* Rows [r0, r1) of the root on both backends: the same bytes. */
static void assert_same(struct recipe_fixture *f, uint64_t r0, uint64_t r1)
{
	size_t len = (size_t)((r1 - r0) * rx_row_bytes(rx_root(&f->r)));
	unsigned char *cpu = malloc(len + 1), *gpu = malloc(len + 1);

	assert_true(cpu && gpu);
	memset(gpu, 0xA5, len);
	if (recipe_eval_cpu(&f->r, r0, r1, cpu, &f->reader, f->err) != 0)
		fail_msg("CPU: %s", f->err);
	assert_true(gpu_supports(&f->r));
	if (recipe_eval_cuda(&f->r, r0, r1, gpu, &f->reader, f->err) != 0)
		fail_msg("CUDA: %s", f->err);
	for (size_t k = 0; k < len; k++)
		if (cpu[k] != gpu[k])
			fail_msg("rows [%" PRIu64 ", %" PRIu64 "): byte %zu of %zu is %02x on the GPU, %02x on the CPU",
				 r0, r1, k, len, gpu[k], cpu[k]);
	free(cpu);
	free(gpu);
}

/* Whole, each single row of the first few, and a spread of ranges. */
static void assert_backends_agree(struct recipe_fixture *f)
{
	uint64_t rows = rx_rows(rx_root(&f->r));

	assert_same(f, 0, rows);
	for (uint64_t r = 0; r < rows && r < 8; r++)
		assert_same(f, r, r + 1);
	for (uint64_t a = 0; a < rows; a += rows / 5 + 1)
		for (uint64_t b = a + 1; b <= rows; b += rows / 3 + 1)
			assert_same(f, a, b);
}

static void reset(void **state)
{
	recipe_fixture_teardown(state);
	recipe_fixture_setup(state);
}

/* ---- casts ------------------------------------------------------------------ */

static void test_casts_between_bf16_f16_f32_match_bit_for_bit(void **state)
{
	static const enum sd_dtype t[] = { SD_BF16, SD_F16, SD_F32 };

	for (size_t a = 0; a < 3; a++)
		for (size_t b = 0; b < 3; b++) {
			struct recipe_fixture *f = *state;
			if (a == b)
				continue;
			int x = add_src(f, t[a], 2, (uint64_t[]){ 512, 160 });  /* 81920 >= 65536 */
			built(rx_cast(&f->r, x, t[b], f->err), f->err);
			assert_backends_agree(f);
			reset(state);
		}
}

/* ---- layout operations ---------------------------------------------------------- */

static void test_transpose_of_1_2_4_8_byte_elements_matches(void **state)
{
	static const enum sd_dtype t[] = { SD_U8, SD_BF16, SD_F32, SD_I64 };

	for (size_t k = 0; k < 4; k++) {
		struct recipe_fixture *f = *state;
		/* ragged against the 32x32 tiles; 2-D and batched */
		int x = add_src(f, t[k], 2, (uint64_t[]){ 77, 131 });
		built(rx_transpose_last2(&f->r, x, f->err), f->err);
		assert_backends_agree(f);
		reset(state);
		f = *state;
		x = add_src(f, t[k], 3, (uint64_t[]){ 5, 45, 33 });
		built(rx_transpose_last2(&f->r, x, f->err), f->err);
		assert_backends_agree(f);
		reset(state);
	}
}

static void test_merged_experts_recipe_matches(void **state)
{
	struct recipe_fixture *f = *state;
	int kids[4];

	for (int e = 0; e < 4; e++) {    /* gated: cat(gate^T, up^T) per expert, cast */
		int g = built(rx_transpose_last2(&f->r, add_src(f, SD_F32, 2, (uint64_t[]){ 40, 24 }), f->err), f->err);
		int u = built(rx_transpose_last2(&f->r, add_src(f, SD_F32, 2, (uint64_t[]){ 40, 24 }), f->err), f->err);
		int c = built(rx_concat_last(&f->r, (int[]){ g, u }, 2, f->err), f->err);
		kids[e] = built(rx_cast(&f->r, c, SD_BF16, f->err), f->err);
	}
	built(rx_stack0(&f->r, kids, 4, f->err), f->err);
	assert_backends_agree(f);
}

static void test_index_slices_concat_and_reshape_match(void **state)
{
	struct recipe_fixture *f = *state;
	int x = add_src(f, SD_BF16, 3, (uint64_t[]){ 6, 10, 12 });

	built(rx_index0(&f->r, x, 4, f->err), f->err);
	assert_backends_agree(f);
	reset(state);
	f = *state;
	x = add_src(f, SD_F16, 3, (uint64_t[]){ 9, 4, 20 });
	x = built(rx_slice0(&f->r, x, 2, 7, f->err), f->err);
	built(rx_slice_last(&f->r, x, 3, 17, f->err), f->err);
	assert_backends_agree(f);
	reset(state);
	f = *state;
	x = add_src(f, SD_F32, 1, (uint64_t[]){ 50 });
	int y = add_src(f, SD_F32, 1, (uint64_t[]){ 30 });
	built(rx_concat_last(&f->r, (int[]){ x, y }, 2, f->err), f->err);
	assert_backends_agree(f);
	reset(state);
	f = *state;
	x = add_src(f, SD_BF16, 2, (uint64_t[]){ 6, 35 });
	x = built(rx_reshape(&f->r, x, 2, (uint64_t[]){ 15, 14 }, f->err), f->err);
	x = built(rx_transpose_last2(&f->r, x, f->err), f->err);
	built(rx_reshape(&f->r, x, 3, (uint64_t[]){ 7, 5, 6 }, f->err), f->err);
	assert_backends_agree(f);
}

/* ---- dequantization --------------------------------------------------------- */

static void test_fp8_block_dequant_matches_for_every_code_and_edge_scale(void **state)
{
	static const enum sd_dtype t[] = { SD_F32, SD_BF16, SD_F16 };

	for (size_t k = 0; k < 3; k++) {
		struct recipe_fixture *f = *state;
		int q = add_src(f, SD_F8_E4M3, 2, (uint64_t[]){ 300, 520 });  /* partial blocks */
		int s = add_src(f, SD_F32, 2, (uint64_t[]){ 3, 5 });    /* specials: 0, Inf, NaN... */
		for (unsigned c = 0; c < 256; c++)
			f->mem.bytes[f->mem.ntensors - 2][c] = (uint8_t)c;
		built(rx_dequant_fp8_block(&f->r, q, s, t[k], f->err), f->err);
		assert_backends_agree(f);
		reset(state);
	}
}

static void test_mxfp4_dequant_then_transpose_matches(void **state)
{
	static const enum sd_dtype t[] = { SD_F32, SD_BF16, SD_F16 };

	for (size_t k = 0; k < 3; k++) {
		struct recipe_fixture *f = *state;
		int b = add_src(f, SD_U8, 4, (uint64_t[]){ 4, 16, 4, 16 });     /* every byte */
		int s = add_src(f, SD_U8, 3, (uint64_t[]){ 4, 16, 4 });        /* every scale */
		for (unsigned c = 0; c < 256; c++) {
			f->mem.bytes[f->mem.ntensors - 2][c] = (uint8_t)c;
			f->mem.bytes[f->mem.ntensors - 1][c] = (uint8_t)(255 - c);
		}
		int x = built(rx_dequant_mxfp4(&f->r, b, s, t[k], f->err), f->err);
		built(rx_transpose_last2(&f->r, x, f->err), f->err);
		assert_backends_agree(f);
		reset(state);
	}
}

/* Many chunks through one thread's stream and arena: the arena grows and
 * is reused, and results stay right. */
static void test_repeated_chunks_of_growing_size_match(void **state)
{
	struct recipe_fixture *f = *state;
	int x = add_src(f, SD_BF16, 2, (uint64_t[]){ 1500, 700 });

	built(rx_transpose_last2(&f->r, x, f->err), f->err);
	for (uint64_t n = 1; n <= 700; n = n * 3 + 1)
		assert_same(f, 0, n);
}

#define T(name) cmocka_unit_test_prestate_setup_teardown(name, recipe_fixture_setup, \
							 recipe_fixture_teardown, &stream)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_casts_between_bf16_f16_f32_match_bit_for_bit),
		T(test_transpose_of_1_2_4_8_byte_elements_matches),
		T(test_merged_experts_recipe_matches),
		T(test_index_slices_concat_and_reshape_match),
		T(test_fp8_block_dequant_matches_for_every_code_and_edge_scale),
		T(test_mxfp4_dequant_then_transpose_matches),
		T(test_repeated_chunks_of_growing_size_match),
	};

	if (gpu_fake_install(1, 2, (size_t)1 << 30, why_skip)) {
		printf("# on the fake device (tests/unit/gpu_fake.c): kernels' threads run on the CPU\n");
		int rc = cmocka_run_group_tests(tests, NULL, NULL);
		gpu_fake_uninstall();
		return rc;
	}
	/* Without a GPU every test is a TAP skip with the reason (cmocka's own
	 * skip reads as "not ok ... # SKIP", which prove counts as failed). */
	if (gpu_init(NULL, 0, why_skip) < 0) {
		size_t n = sizeof(tests) / sizeof(tests[0]);
		printf("1..%zu\n", n);
		for (size_t i = 0; i < n; i++)
			printf("ok %zu # skip %s: %s\n", i + 1, tests[i].name, why_skip);
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
