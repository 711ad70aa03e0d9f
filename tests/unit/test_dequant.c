/*
 * test_dequant.c — the two dequantizing recipe operations compute what the
 * checkpoints' own code computes, bit for bit, for every code and every
 * awkward scale.
 *
 * dequant_fp8_block is DeepSeek-V3's W[i,j] = float(Q[i,j]) * S[i/128, j/128]
 * in F32, cast to the output dtype; dequant_mxfp4 is GPT-OSS's
 * LUT[nibble] * 2^(scale-127), low nibble to the even column.  The
 * references here decode FP8 with ldexp on the fields (not with quant.h's
 * bit patterns), take FP4 values from the table in the spec, multiply in
 * double (exact for two floats) and round once to F32, and cast with
 * dtype.h's scalar casts (which test_dtype checks).  NaN results follow the
 * rule quant.h documents (PyTorch on x86): a NaN weight is kept, quieted,
 * then a NaN scale, and 0 * Inf is 0xFFC00000.
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
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
#include "recipe.h"
#include "testlib.h"

/* ---- the fixture (testlib.h) ------------------------------------------------- */

/* This file's random stream (see recipe_fixture_setup). */
static uint64_t stream = 0x9E3779B97F4A7C15ull;

/* A source tensor with random bytes; returns its bytes for the test to set.
 * *node is its rx_src. */
static unsigned char *add_src(struct recipe_fixture *f, const char *name, enum sd_dtype dt,
			      int ndim, const uint64_t *shape, int *node)
{
	size_t i = recipe_fixture_add(f, name, dt, ndim, shape, MEMSRC_RANDOM);

	*node = recipe_fixture_src(f, i);
	return f->mem.bytes[i];
}

/* ---- the references ------------------------------------------------------------ */

static uint32_t bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

static float from_bits(uint32_t u)
{
	float f;

	memcpy(&f, &u, 4);
	return f;
}

/* E4M3 "fn": bias 7, subnormals m * 2^-9, S.1111.111 is NaN, no infinity.
 * c10 widens the NaN codes to sign|0x7FF00000. */
static float ref_fp8(uint8_t c)
{
	int sign = c >> 7, e = (c >> 3) & 15, m = c & 7;
	double v;

	if (e == 15 && m == 7)
		return from_bits((sign ? 0x80000000u : 0) | 0x7FF00000u);
	v = e == 0 ? ldexp(m, -9) : ldexp(1.0 + m / 8.0, e - 7);
	return (float)(sign ? -v : v);
}

/* The spec's table, low code first. */
static const float fp4_table[16] = {
	0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
	-0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f,
};

static float ref_e8m0(uint8_t s)
{
	return (float)ldexp(1.0, (int)s - 127);        /* 2^128 rounds to +Inf */
}

static float ref_mul(float a, float b)
{
	if (isnan(a))
		return from_bits(bits(a) | 0x00400000u);
	if (isnan(b))
		return from_bits(bits(b) | 0x00400000u);
	double p = (double)a * (double)b;
	if (isnan(p))
		return from_bits(0xFFC00000u);
	return (float)p;
}

static void store(enum sd_dtype t, float v, unsigned char *p)
{
	uint16_t h;

	switch (t) {
	case SD_BF16:
		h = f32_to_bf16(v);
		memcpy(p, &h, 2);
		return;
	case SD_F16:
		h = f32_to_f16(v);
		memcpy(p, &h, 2);
		return;
	case SD_F32:
		memcpy(p, &v, 4);
		return;
	case SD_F64: {
		double d = v;
		memcpy(p, &d, 8);
		return;
	}
	default:
		fail_msg("reference does not write %s", dtype_name(t));
	}
}

/* out[i][j] = Q[i][j] * S[i/128][j/128] */
static unsigned char *ref_fp8_block(const uint8_t *q, const float *s, uint64_t rows,
				    uint64_t cols, enum sd_dtype to)
{
	size_t es = dtype_size(to);
	uint64_t bcols = (cols + 127) / 128;
	unsigned char *out = malloc(rows * cols * es + 1);

	assert_non_null(out);
	for (uint64_t i = 0; i < rows; i++)
		for (uint64_t j = 0; j < cols; j++)
			store(to, ref_mul(ref_fp8(q[i * cols + j]), s[(i / 128) * bcols + j / 128]),
			      out + (i * cols + j) * es);
	return out;
}

/* out[g][2k] = LUT[b[g][k] & 15], out[g][2k+1] = LUT[b[g][k] >> 4], times
 * 2^(scale[g]-127), for groups g of nbytes bytes. */
static unsigned char *ref_mxfp4(const uint8_t *b, const uint8_t *s, uint64_t groups,
				uint64_t nbytes, enum sd_dtype to)
{
	size_t es = dtype_size(to);
	unsigned char *out = malloc(groups * nbytes * 2 * es + 1);

	assert_non_null(out);
	for (uint64_t g = 0; g < groups; g++)
		for (uint64_t k = 0; k < nbytes; k++) {
			uint8_t byte = b[g * nbytes + k];
			uint64_t o = g * nbytes * 2 + 2 * k;
			store(to, ref_mul(fp4_table[byte & 15], ref_e8m0(s[g])), out + o * es);
			store(to, ref_mul(fp4_table[byte >> 4], ref_e8m0(s[g])), out + (o + 1) * es);
		}
	return out;
}

/* ---- the check ----------------------------------------------------------------- */

static void assert_rows(struct recipe_fixture *f, const unsigned char *want, uint64_t r0,
			uint64_t r1)
{
	uint64_t rb = rx_row_bytes(rx_root(&f->r));
	size_t len = (size_t)((r1 - r0) * rb);
	unsigned char *got = recipe_fixture_eval(f, r0, r1);

	for (size_t k = 0; k < len; k++)
		if (got[k] != want[r0 * rb + k])
			fail_msg("rows [%" PRIu64 ", %" PRIu64 "): byte %zu of %zu is %02x, "
				 "the reference has %02x (element %" PRIu64 ")", r0, r1, k, len,
				 got[k], want[r0 * rb + k], (r0 * rb + k) / dtype_size(rx_root(&f->r)->dtype));
	free(got);
}

/* Whole, every single row, and ranges that start or end inside a 128-row
 * scale block or cross one. */
static void assert_computes(struct recipe_fixture *f, const unsigned char *want)
{
	uint64_t rows = rx_rows(rx_root(&f->r));
	static const uint64_t cuts[] = { 0, 1, 63, 127, 128, 129, 200, 255, 256, 257, 299 };

	assert_rows(f, want, 0, rows);
	for (uint64_t r = 0; r < rows; r++)
		assert_rows(f, want, r, r + 1);
	for (size_t a = 0; a < sizeof(cuts) / sizeof(cuts[0]); a++)
		for (size_t b = a + 1; b < sizeof(cuts) / sizeof(cuts[0]); b++)
			if (cuts[b] <= rows)
				assert_rows(f, want, cuts[a], cuts[b]);
}

static const enum sd_dtype out_types[] = { SD_F32, SD_BF16, SD_F16 };

/* ---- FP8 block dequantization --------------------------------------------------- */

static void test_fp8_decode_knows_every_code(void **state)
{
	struct recipe_fixture *f = *state;
	int q, s;
	uint8_t *qb = add_src(f, "w.weight", SD_F8_E4M3, 2, (uint64_t[]){ 2, 128 }, &q);
	float one = 1.0f;

	memcpy(add_src(f, "w.weight_scale_inv", SD_F32, 2, (uint64_t[]){ 1, 1 }, &s),
	       &one, 4);
	for (unsigned c = 0; c < 256; c++)
		qb[c] = (uint8_t)c;
	built(rx_dequant_fp8_block(&f->r, q, s, SD_F32, f->err), f->err);
	float got[256];
	assert_int_equal(recipe_eval_cpu(&f->r, 0, 2, got, &f->reader, f->err), 0);

	/* values worked out by hand from the format */
	static const struct { uint8_t code; uint32_t bits; } known[] = {
		{ 0x00, 0x00000000u }, { 0x80, 0x80000000u },   /* +-0 */
		{ 0x01, 0x3B000000u }, { 0x81, 0xBB000000u },   /* +-2^-9, smallest */
		{ 0x03, 0x3BC00000u },                          /* 3 * 2^-9 */
		{ 0x07, 0x3C600000u },                          /* 7 * 2^-9, largest subnormal */
		{ 0x08, 0x3C800000u },                          /* 2^-6, smallest normal */
		{ 0x38, 0x3F800000u }, { 0xC0, 0xC0000000u },   /* 1, -2 */
		{ 0x7E, 0x43E00000u }, { 0xFE, 0xC3E00000u },   /* +-448, max finite */
		{ 0x77, 0x43700000u },                          /* 240: exponent 15 is finite */
		{ 0x7F, 0x7FF00000u }, { 0xFF, 0xFFF00000u },   /* NaN, as c10 widens it */
	};
	for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
		if (bits(got[known[k].code]) != known[k].bits)
			fail_msg("code 0x%02x gave 0x%08x, not 0x%08x", known[k].code,
				 bits(got[known[k].code]), known[k].bits);
	for (unsigned c = 0; c < 256; c++)
		assert_int_equal(bits(got[c]), bits(ref_fp8((uint8_t)c)));
}

/* Every code against every scale that can go wrong, in every output dtype. */
static void test_fp8_scales_at_the_edges_multiply_like_pytorch(void **state)
{
	static const uint32_t scale_bits[] = {
		0x3F800000u, 0x00000000u, 0x80000000u,  /* 1, +0, -0 */
		0x00000001u, 0x007FFFFFu, 0x00800000u,  /* subnormals, smallest normal */
		0x7F7FFFFFu, 0xFF7FFFFFu,               /* +-max finite */
		0x7F800000u, 0xFF800000u,               /* +-Inf */
		0x7FC00001u, 0x7F800001u, 0xFFC00000u,  /* NaNs, one signalling */
		0x3A800000u, 0x43000000u, 0xBFE00000u,  /* 2^-10, 128, -1.75 */
		0x2F800000u, 0x5E800000u, 0x33D6BF95u, 0x4B189680u,
	};
	const uint64_t rows = 256, cols = 128 * 10;

	for (size_t t = 0; t < sizeof(out_types) / sizeof(out_types[0]); t++) {
		struct recipe_fixture *f = *state;
		int q, s;
		uint8_t *qb = add_src(f, "q", SD_F8_E4M3, 2, (uint64_t[]){ rows, cols }, &q);
		float *sb = (float *)add_src(f, "s", SD_F32, 2, (uint64_t[]){ 2, 10 }, &s);
		for (size_t k = 0; k < 20; k++)
			sb[k] = from_bits(scale_bits[k]);
		for (uint64_t i = 0; i < rows * cols; i++)
			qb[i] = (uint8_t)(i * 7 + i / cols);    /* every code in each block */
		built(rx_dequant_fp8_block(&f->r, q, s, out_types[t], f->err), f->err);
		unsigned char *want = ref_fp8_block(qb, sb, rows, cols, out_types[t]);
		assert_rows(f, want, 0, rows);
		assert_rows(f, want, 127, 129);
		free(want);
		recipe_fixture_teardown(state);
		recipe_fixture_setup(state);
	}
}

/* out = 300 and in = 200: the last block row and column are partial. */
static void test_fp8_ragged_blocks_use_the_partial_scales(void **state)
{
	const uint64_t rows = 300, cols = 200;

	for (size_t t = 0; t < sizeof(out_types) / sizeof(out_types[0]); t++) {
		struct recipe_fixture *f = *state;
		int q, s;
		uint8_t *qb = add_src(f, "q", SD_F8_E4M3, 2, (uint64_t[]){ rows, cols }, &q);
		float *sb = (float *)add_src(f, "s", SD_F32, 2, (uint64_t[]){ 3, 2 }, &s);
		for (int k = 0; k < 6; k++)     /* distinct, so a wrong block shows */
			sb[k] = (float)ldexp(1.0 + k / 8.0, (int)(memsrc_random(&f->mem) % 40) - 20);
		built(rx_dequant_fp8_block(&f->r, q, s, out_types[t], f->err), f->err);
		assert_int_equal(rx_root(&f->r)->dtype, out_types[t]);
		assert_int_equal(rx_root(&f->r)->shape[0], rows);
		assert_int_equal(rx_root(&f->r)->shape[1], cols);
		unsigned char *want = ref_fp8_block(qb, sb, rows, cols, out_types[t]);
		assert_computes(f, want);
		free(want);
		recipe_fixture_teardown(state);
		recipe_fixture_setup(state);
	}
}

/* Output types of the random tests: F64 too, the widest table entries. */
static const enum sd_dtype all_out_types[] = { SD_F32, SD_BF16, SD_F16, SD_F64 };

/* A scale for the random tests: mostly random finite values across the
 * whole F32 range, sometimes one of the specials. */
static float random_scale(struct recipe_fixture *f)
{
	static const uint32_t special[] = { 0x00000000u, 0x80000000u, 0x00000001u,
					    0x7F800000u, 0xFF800000u, 0x7FC00001u,
					    0xFF800001u, 0x7F7FFFFFu };
	uint64_t x = memsrc_random(&f->mem);

	if (x % 8 == 0)
		return from_bits(special[(x >> 8) % (sizeof(special) / sizeof(special[0]))]);
	uint32_t b = (uint32_t)(x >> 32);
	if ((b & 0x7F800000u) == 0x7F800000u)
		b &= ~0x40000000u;       /* keep it finite */
	return from_bits(b);
}

/* Random codes under 6 x 8 blocks of random scales, both dims ragged:
 * every table is built from its own block's scale and used for exactly
 * the block's rows and columns. */
static void test_fp8_random_codes_under_many_scale_blocks(void **state)
{
	const uint64_t rows = 700, cols = 1000;

	for (size_t t = 0; t < sizeof(all_out_types) / sizeof(all_out_types[0]); t++) {
		struct recipe_fixture *f = *state;
		int q, s;
		uint8_t *qb = add_src(f, "q", SD_F8_E4M3, 2, (uint64_t[]){ rows, cols }, &q);
		float *sb = (float *)add_src(f, "s", SD_F32, 2, (uint64_t[]){ 6, 8 }, &s);
		for (int k = 0; k < 48; k++)
			sb[k] = random_scale(f);
		built(rx_dequant_fp8_block(&f->r, q, s, all_out_types[t], f->err), f->err);
		unsigned char *want = ref_fp8_block(qb, sb, rows, cols, all_out_types[t]);
		assert_computes(f, want);
		assert_rows(f, want, 383, 641);
		free(want);
		recipe_fixture_teardown(state);
		recipe_fixture_setup(state);
	}
}

/* A transpose over a dequant (what a native view of a DeepSeek expert is). */
static void test_fp8_dequant_under_a_transpose_of_a_stack(void **state)
{
	struct recipe_fixture *f = *state;
	int q[2], s[2], x[2];
	uint8_t *qb[2];
	float *sb[2];

	for (int e = 0; e < 2; e++) {
		qb[e] = add_src(f, e ? "q1" : "q0", SD_F8_E4M3, 2, (uint64_t[]){ 130, 3 }, &q[e]);
		sb[e] = (float *)add_src(f, e ? "s1" : "s0", SD_F32, 2, (uint64_t[]){ 2, 1 }, &s[e]);
		sb[e][0] = 0.25f * (float)(e + 1);
		sb[e][1] = -3.0f;
	}
	for (int e = 0; e < 2; e++) {
		x[e] = built(rx_dequant_fp8_block(&f->r, q[e], s[e], SD_BF16, f->err), f->err);
		x[e] = built(rx_transpose_last2(&f->r, x[e], f->err), f->err);
	}
	built(rx_stack0(&f->r, x, 2, f->err), f->err);
	/* out[e][h][i] = W_e[i][h] */
	unsigned char *want = malloc(2 * 3 * 130 * 2);
	for (int e = 0; e < 2; e++) {
		unsigned char *w = ref_fp8_block(qb[e], sb[e], 130, 3, SD_BF16);
		for (int h = 0; h < 3; h++)
			for (int i = 0; i < 130; i++)
				memcpy(want + ((e * 3 + h) * 130 + i) * 2, w + (i * 3 + h) * 2, 2);
		free(w);
	}
	assert_computes(f, want);
	free(want);
}

static void assert_refused(struct recipe_fixture *f, int rc, const char *words)
{
	assert_int_equal(rc, -EINVAL);
	if (!strstr(f->err, words))
		fail_msg("message '%s' does not say '%s'", f->err, words);
}

static void test_fp8_builder_refuses_what_does_not_fit(void **state)
{
	struct recipe_fixture *f = *state;
	int q, s, bad_s, s_bf16, w_bf16, q3;

	add_src(f, "q", SD_F8_E4M3, 2, (uint64_t[]){ 300, 200 }, &q);
	add_src(f, "s", SD_F32, 2, (uint64_t[]){ 3, 2 }, &s);
	add_src(f, "s_short", SD_F32, 2, (uint64_t[]){ 2, 2 }, &bad_s);
	add_src(f, "s_bf16", SD_BF16, 2, (uint64_t[]){ 3, 2 }, &s_bf16);
	add_src(f, "w_bf16", SD_BF16, 2, (uint64_t[]){ 300, 200 }, &w_bf16);
	add_src(f, "q3", SD_F8_E4M3, 3, (uint64_t[]){ 1, 300, 200 }, &q3);
	uint32_t before = f->r.nnodes;

	assert_refused(f, rx_dequant_fp8_block(&f->r, q, bad_s, SD_BF16, f->err),
		       "needs F32[3,2]");
	assert_non_null(strstr(f->err, "F32[2,2]"));
	assert_refused(f, rx_dequant_fp8_block(&f->r, q, s_bf16, SD_BF16, f->err),
		       "BF16[3,2]");
	assert_refused(f, rx_dequant_fp8_block(&f->r, w_bf16, s, SD_BF16, f->err),
		       "not a 2-D F8_E4M3");
	assert_refused(f, rx_dequant_fp8_block(&f->r, q3, s, SD_BF16, f->err),
		       "not a 2-D F8_E4M3");
	assert_refused(f, rx_dequant_fp8_block(&f->r, q, s, SD_I32, f->err),
		       "cannot produce I32");
	assert_refused(f, rx_dequant_fp8_block(&f->r, q, s, SD_F8_E4M3, f->err),
		       "cannot produce F8_E4M3");
	assert_int_equal(f->r.nnodes, before);
}

/* ---- MXFP4 ----------------------------------------------------------------------- */

static void test_mxfp4_every_byte_under_every_edge_scale(void **state)
{
	static const uint8_t edge[16] = { 127, 0, 1, 2, 126, 128, 253, 254, 255, 100,
					  150, 118, 136, 64, 190, 127 };
	for (size_t t = 0; t < sizeof(out_types) / sizeof(out_types[0]); t++) {
		struct recipe_fixture *f = *state;
		int b, s;
		/* 16 groups of 16 bytes: every byte value once per group row */
		uint8_t *bb = add_src(f, "x_blocks", SD_U8, 3, (uint64_t[]){ 16, 16, 16 }, &b);
		uint8_t *sb = add_src(f, "x_scales", SD_U8, 2, (uint64_t[]){ 16, 16 }, &s);
		for (unsigned i = 0; i < 16 * 16 * 16; i++)
			bb[i] = (uint8_t)(i * 17 + i / 256);
		for (unsigned g = 0; g < 256; g++)
			sb[g] = edge[(g + g / 16) % 16];
		built(rx_dequant_mxfp4(&f->r, b, s, out_types[t], f->err), f->err);
		assert_int_equal(rx_root(&f->r)->ndim, 2);
		assert_int_equal(rx_root(&f->r)->shape[1], 16 * 32);
		unsigned char *want = ref_mxfp4(bb, sb, 256, 16, out_types[t]);
		assert_computes(f, want);
		free(want);
		recipe_fixture_teardown(state);
		recipe_fixture_setup(state);
	}
}

/* Random bytes under random scales from all 256 values, many groups per
 * row: each group is looked up in its own scale's table. */
static void test_mxfp4_random_bytes_under_random_scales(void **state)
{
	const uint64_t E = 3, O = 37, G = 90;

	for (size_t t = 0; t < sizeof(all_out_types) / sizeof(all_out_types[0]); t++) {
		struct recipe_fixture *f = *state;
		int b, s;
		uint8_t *bb = add_src(f, "b", SD_U8, 4, (uint64_t[]){ E, O, G, 16 }, &b);
		uint8_t *sb = add_src(f, "s", SD_U8, 3, (uint64_t[]){ E, O, G }, &s);
		built(rx_dequant_mxfp4(&f->r, b, s, all_out_types[t], f->err), f->err);
		unsigned char *want = ref_mxfp4(bb, sb, E * O * G, 16, all_out_types[t]);
		assert_computes(f, want);
		assert_rows(f, want, 1, 3);
		free(want);
		recipe_fixture_teardown(state);
		recipe_fixture_setup(state);
	}
}

static void test_mxfp4_known_values(void **state)
{
	struct recipe_fixture *f = *state;
	int b, s;
	uint8_t *bb = add_src(f, "x_blocks", SD_U8, 3, (uint64_t[]){ 1, 3, 2 }, &b);
	uint8_t *sb = add_src(f, "x_scales", SD_U8, 2, (uint64_t[]){ 1, 3 }, &s);
	static const uint8_t blocks[6] = { 0x21, 0xF7, 0x90, 0x1A, 0x10, 0x70 };
	static const uint8_t scales[3] = { 127, 255, 0 };
	static const uint32_t want[12] = {
		0x3F000000u, 0x3F800000u, 0x40C00000u, 0xC0C00000u, /* .5 1 6 -6 (x1) */
		0xFFC00000u, 0xFF800000u, 0xFF800000u, 0x7F800000u, /* x 2^128 = Inf: 0*Inf is NaN */
		0x00000000u, 0x00200000u, 0x00000000u, 0x01400000u, /* x 2^-127: 0 2^-128 0 6*2^-127 */
	};
	float got[12];

	memcpy(bb, blocks, 6);
	memcpy(sb, scales, 3);
	built(rx_dequant_mxfp4(&f->r, b, s, SD_F32, f->err), f->err);
	assert_int_equal(recipe_eval_cpu(&f->r, 0, 1, got, &f->reader, f->err), 0);
	for (int k = 0; k < 12; k++)
		if (bits(got[k]) != want[k])
			fail_msg("element %d is 0x%08x, not 0x%08x", k, bits(got[k]), want[k]);
}

/* GPT-OSS's full path: [E, out, G, 16] -> [E, out, G*32] -> [E, G*32, out]. */
static void test_mxfp4_then_transpose_is_gpt_oss_expert_layout(void **state)
{
	const uint64_t E = 3, O = 5, G = 4;

	for (size_t t = 0; t < sizeof(out_types) / sizeof(out_types[0]); t++) {
		struct recipe_fixture *f = *state;
		int b, s;
		uint8_t *bb = add_src(f, "b", SD_U8, 4, (uint64_t[]){ E, O, G, 16 }, &b);
		uint8_t *sb = add_src(f, "s", SD_U8, 3, (uint64_t[]){ E, O, G }, &s);
		for (uint64_t g = 0; g < E * O * G; g++)
			sb[g] = (uint8_t)(110 + memsrc_random(&f->mem) % 30);
		int x = built(rx_dequant_mxfp4(&f->r, b, s, out_types[t], f->err), f->err);
		built(rx_transpose_last2(&f->r, x, f->err), f->err);
		size_t es = dtype_size(out_types[t]);
		unsigned char *flat = ref_mxfp4(bb, sb, E * O * G, 16, out_types[t]);
		unsigned char *want = malloc(E * O * G * 32 * es);
		for (uint64_t e = 0; e < E; e++)
			for (uint64_t o = 0; o < O; o++)
				for (uint64_t c = 0; c < G * 32; c++)
					memcpy(want + ((e * G * 32 + c) * O + o) * es,
					       flat + ((e * O + o) * G * 32 + c) * es, es);
		assert_computes(f, want);
		free(flat);
		free(want);
		recipe_fixture_teardown(state);
		recipe_fixture_setup(state);
	}
}

static void test_mxfp4_builder_refuses_what_does_not_fit(void **state)
{
	struct recipe_fixture *f = *state;
	int b, s, s_wrong, s_f32, b2, s1, e8;

	add_src(f, "b", SD_U8, 4, (uint64_t[]){ 2, 3, 4, 16 }, &b);
	add_src(f, "s", SD_U8, 3, (uint64_t[]){ 2, 3, 4 }, &s);
	add_src(f, "s_wrong", SD_U8, 3, (uint64_t[]){ 2, 3, 5 }, &s_wrong);
	add_src(f, "s_f32", SD_F32, 3, (uint64_t[]){ 2, 3, 4 }, &s_f32);
	add_src(f, "b2", SD_U8, 2, (uint64_t[]){ 4, 16 }, &b2);
	add_src(f, "s1", SD_U8, 1, (uint64_t[]){ 4 }, &s1);
	add_src(f, "e8", SD_F8_E8M0, 3, (uint64_t[]){ 2, 3, 4 }, &e8);
	uint32_t before = f->r.nnodes;

	assert_refused(f, rx_dequant_mxfp4(&f->r, b, s_wrong, SD_BF16, f->err),
		       "U8[2,3,5]");
	assert_refused(f, rx_dequant_mxfp4(&f->r, b, s_f32, SD_BF16, f->err), "F32[2,3,4]");
	assert_refused(f, rx_dequant_mxfp4(&f->r, b2, s1, SD_BF16, f->err),
		       "at least 3 dims");
	assert_refused(f, rx_dequant_mxfp4(&f->r, s, b, SD_BF16, f->err), "the scales are");
	assert_refused(f, rx_dequant_mxfp4(&f->r, b, s, SD_U8, f->err), "cannot produce U8");
	assert_int_equal(f->r.nnodes, before);
	/* scales typed F8_E8M0 are the same bytes */
	built(rx_dequant_mxfp4(&f->r, b, e8, SD_BF16, f->err), f->err);
}

static void test_format_writes_the_dequant_operations(void **state)
{
	struct recipe_fixture *f = *state;
	int q, s, b, bs;
	char buf[256];

	add_src(f, "a.weight", SD_F8_E4M3, 2, (uint64_t[]){ 4, 4 }, &q);
	add_src(f, "a.weight_scale_inv", SD_F32, 2, (uint64_t[]){ 1, 1 }, &s);
	built(rx_dequant_fp8_block(&f->r, q, s, SD_BF16, f->err), f->err);
	recipe_format(&f->r, memsrc_name, &f->mem, false, buf, sizeof(buf));
	assert_string_equal(buf, "dequant_fp8_block(src(\"a.weight\"), "
			    "src(\"a.weight_scale_inv\"), BF16)");
	add_src(f, "x_blocks", SD_U8, 3, (uint64_t[]){ 1, 1, 16 }, &b);
	add_src(f, "x_scales", SD_U8, 2, (uint64_t[]){ 1, 1 }, &bs);
	built(rx_dequant_mxfp4(&f->r, b, bs, SD_F32, f->err), f->err);
	recipe_format(&f->r, memsrc_name, &f->mem, false, buf, sizeof(buf));
	assert_string_equal(buf, "dequant_mxfp4(src(\"x_blocks\"), src(\"x_scales\"), F32)");
}

#define T(name) cmocka_unit_test_prestate_setup_teardown(name, recipe_fixture_setup, \
							 recipe_fixture_teardown, &stream)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_fp8_decode_knows_every_code),
		T(test_fp8_scales_at_the_edges_multiply_like_pytorch),
		T(test_fp8_ragged_blocks_use_the_partial_scales),
		T(test_fp8_random_codes_under_many_scale_blocks),
		T(test_fp8_dequant_under_a_transpose_of_a_stack),
		T(test_fp8_builder_refuses_what_does_not_fit),
		T(test_mxfp4_every_byte_under_every_edge_scale),
		T(test_mxfp4_random_bytes_under_random_scales),
		T(test_mxfp4_known_values),
		T(test_mxfp4_then_transpose_is_gpt_oss_expert_layout),
		T(test_mxfp4_builder_refuses_what_does_not_fit),
		T(test_format_writes_the_dequant_operations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
