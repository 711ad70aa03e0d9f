/*
 * test_kernels.c — every kernel path (kernels.h) gives the reference's
 * bytes: transposes equal a naive loop written here, casts equal the
 * scalar casts of dtype.h element by element, row copies equal memcpy,
 * on random data, on every
 * shape edge and alignment, streamed or not, and on the special values
 * (NaN payloads of both signs, ±0, subnormals, ±Inf, every rounding tie).
 *
 * Each per-path test runs once per path; a path this CPU or build lacks is
 * reported as a TAP skip.  cmocka reports its own skips as "not ok", so
 * this file prints the TAP itself and runs each test as a one-test cmocka
 * group with cmocka's plain output (which prove ignores).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "err.h"
#include "kernels.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next_random(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fill_random(void *p, size_t n)
{
	unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)next_random();
}

/* The path a test runs on: its prestate. */
static const struct sd_kernels *path_of(void **state)
{
	const struct sd_kernels *k = sd_kernels_path(*(const enum sd_cpu_path *)*state);

	assert_non_null(k);     /* the runner skips paths the CPU lacks */
	return k;
}

/* --- transposes ------------------------------------------------------------- */

static void naive_transpose(const unsigned char *src, size_t rows, size_t cols, size_t sld,
			    unsigned char *dst, size_t dld, size_t es)
{
	for (size_t r = 0; r < rows; r++)
		for (size_t c = 0; c < cols; c++)
			memcpy(dst + (c * dld + r) * es, src + (r * sld + c) * es, es);
}

/*
 * One transpose by path k against the naive loop: src at byte offset
 * src_off (so rows start anywhere), dst at dst_off, leading dimensions
 * with padding; dst starts as a pattern that must survive in the padding.
 */
static void check_transpose(const struct sd_kernels *k, size_t es, size_t rows, size_t cols,
			    size_t src_pad, size_t dst_pad, size_t src_off, size_t dst_off,
			    bool stream)
{
	size_t sld = cols + src_pad, dld = rows + dst_pad;
	size_t sbytes = rows * sld * es + src_off, dbytes = cols * dld * es + dst_off;
	unsigned char *src = malloc(sbytes + 1), *got = malloc(dbytes + 1), *want = malloc(dbytes + 1);
	sd_transpose_fn *fn = es == 2 ? k->transpose16 : k->transpose32;

	assert_non_null(src);
	assert_non_null(got);
	assert_non_null(want);
	fill_random(src, sbytes);
	fill_random(want, dbytes);
	memcpy(got, want, dbytes);
	naive_transpose(src + src_off, rows, cols, sld, want + dst_off, dld, es);
	fn(src + src_off, rows, cols, sld, got + dst_off, dld, stream);
	if (memcmp(got, want, dbytes)) {
		print_error("%s: transpose of %zu-byte elements, %zu x %zu, ld %zu -> %zu, "
			    "offsets %zu/%zu, stream %d differs\n", k->name, es, rows, cols,
			    sld, dld, src_off, dst_off, stream);
		fail();
	}
	free(src);
	free(got);
	free(want);
}

/* Sizes around every register block (4, 8, 16, 32) and tile (64). */
static const size_t edge_sizes[] = { 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47,
				     63, 64, 65, 96, 129 };
#define NSIZES (sizeof(edge_sizes) / sizeof(edge_sizes[0]))

static void test_transposes_match_a_naive_loop_on_every_edge(void **state)
{
	const struct sd_kernels *k = path_of(state);

	for (size_t es = 2; es <= 4; es += 2)
		for (size_t i = 0; i < NSIZES; i++)
			for (size_t j = 0; j < NSIZES; j++) {
				size_t rows = edge_sizes[i], cols = edge_sizes[j];
				check_transpose(k, es, rows, cols, 0, 0, 0, 0, false);
				check_transpose(k, es, rows, cols, 3, 5, es, 3 * es, i % 2);
			}
}

/* Outputs large enough to stream, with dst rows starting at every element
 * of a cache line, rows of whole lines or not, and the shape the CPU
 * evaluator gives the kernel for an expert (a block of rows of a wide
 * matrix written into a wider one). */
static void test_transposes_stream_large_outputs_at_every_alignment(void **state)
{
	const struct sd_kernels *k = path_of(state);
	static const size_t shapes[][4] = {     /* rows, cols, src pad, dst pad */
		{ 200, 300, 0, 0 }, { 97, 1000, 0, 31 }, { 1000, 97, 5, 0 },
		{ 64, 1856, 0, 2688 - 64 }, { 33, 2049, 0, 0 }, { 256, 256, 0, 0 },
	};

	for (size_t es = 2; es <= 4; es += 2)
		for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
			for (size_t off = 0; off < 64; off += es * (s % 2 ? 3 : 1)) {
				check_transpose(k, es, shapes[s][0], shapes[s][1], shapes[s][2],
						shapes[s][3], off % 8, off, true);
			}
}

static void test_transposes_match_on_random_shapes(void **state)
{
	const struct sd_kernels *k = path_of(state);

	for (int n = 0; n < 60; n++) {
		size_t rows = 1 + next_random() % 300, cols = 1 + next_random() % 300;
		check_transpose(k, n % 2 ? 4 : 2, rows, cols, next_random() % 40,
				next_random() % 40, next_random() % 4 * 2, next_random() % 64 / 2 * 2,
				n % 3 == 0);
	}
}

/* --- casts ------------------------------------------------------------------ */

enum cast_kind { F32_TO_BF16, BF16_TO_F32, F32_TO_F16, F16_TO_F32, NCASTS };

static const char *const cast_names[NCASTS] = {
	"F32->BF16", "BF16->F32", "F32->F16", "F16->F32"
};

static sd_cast_fn *cast_of(const struct sd_kernels *k, enum cast_kind c)
{
	sd_cast_fn *fns[NCASTS] = { k->f32_to_bf16, k->bf16_to_f32, k->f32_to_f16, k->f16_to_f32 };

	return fns[c];
}

static size_t in_size(enum cast_kind c)
{
	return c == F32_TO_BF16 || c == F32_TO_F16 ? 4 : 2;
}

/* The reference: dtype.h's scalar cast of one element, at any alignment. */
static void scalar_one(enum cast_kind c, unsigned char *out, const unsigned char *in)
{
	float f;
	uint16_t h;

	switch (c) {
	case F32_TO_BF16:
	case F32_TO_F16:
		memcpy(&f, in, 4);
		h = c == F32_TO_BF16 ? f32_to_bf16(f) : f32_to_f16(f);
		memcpy(out, &h, 2);
		break;
	default:
		memcpy(&h, in, 2);
		f = c == BF16_TO_F32 ? bf16_to_f32(h) : f16_to_f32(h);
		memcpy(out, &f, 4);
		break;
	}
}

/* n elements of in (at byte offset in_off) cast by path k into a buffer at
 * byte offset out_off, against the scalar reference; the bytes around the
 * output must be left alone. */
static void check_cast(const struct sd_kernels *k, enum cast_kind c, const unsigned char *in,
		       size_t n, size_t in_off, size_t out_off, bool stream)
{
	size_t is = in_size(c), os = 6 - is, len = n * os + out_off + 8;
	unsigned char *src = malloc(n * is + in_off + 1), *got = malloc(len), *want = malloc(len);

	assert_non_null(src);
	assert_non_null(got);
	assert_non_null(want);
	memcpy(src + in_off, in, n * is);
	fill_random(want, len);
	memcpy(got, want, len);
	for (size_t i = 0; i < n; i++)
		scalar_one(c, want + out_off + i * os, src + in_off + i * is);
	cast_of(k, c)(got + out_off, src + in_off, n, stream);
	for (size_t i = 0; i < len; i++)
		if (got[i] != want[i]) {
			size_t e = (i - out_off) / os;
			print_error("%s %s: n %zu, offsets %zu/%zu, stream %d: byte %zu "
				    "(element %zu) is %02x, not %02x\n", k->name, cast_names[c],
				    n, in_off, out_off, stream, i, e, got[i], want[i]);
			fail();
		}
	free(src);
	free(got);
	free(want);
}

/* Every F32 exponent and sign with the patterns of the low 16 bits that
 * decide rounding: exact ties for BF16 (0x8000) and F16 (bit 12, and for
 * F16 subnormal results bits 13..15; higher ones come from the upper half
 * with a zero low half), one below and above them, and NaN payloads in
 * both halves. */
static unsigned char *f32_special_sweep(size_t *n)
{
	static const uint16_t low[] = {
		0x0000, 0x0001, 0x0FFF, 0x1000, 0x1001, 0x2000, 0x2FFF, 0x3000, 0x3001,
		0x4000, 0x6000, 0x7FFF, 0x8000, 0x8001, 0xC000, 0xFFFF,
	};
	size_t nlow = sizeof(low) / sizeof(low[0]);
	uint32_t *v = malloc((size_t)65536 * nlow * 4);

	assert_non_null(v);
	for (uint32_t hi = 0; hi < 65536; hi++)
		for (size_t l = 0; l < nlow; l++)
			v[hi * nlow + l] = hi << 16 | low[l];
	*n = (size_t)65536 * nlow;
	return (unsigned char *)v;
}

static void test_casts_match_scalar_on_special_values(void **state)
{
	const struct sd_kernels *k = path_of(state);
	size_t n;
	unsigned char *f32 = f32_special_sweep(&n);
	uint16_t every16[65536];
	static const uint32_t named[] = {
		0x00000000, 0x80000000, 0x7F800000, 0xFF800000,         /* ±0, ±Inf */
		0x7F800001, 0xFF800001, 0x7FC00000, 0xFFC00000,         /* NaNs */
		0x7FBFFFFF, 0xFFFFFFFF, 0x7FFF0000, 0x7F80FFFF,
		0x00000001, 0x807FFFFF, 0x00800000, 0x80800000,         /* subnormal, min */
		0x477FEFFF, 0x477FF000, 0x477FF001, 0x7F7FFFFF,         /* F16 overflow */
		0x387FFFFF, 0x38800000, 0x33000000, 0x33000001, 0xB3000000,
		0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F808001,         /* BF16 ties */
	};

	for (uint32_t i = 0; i < 65536; i++)
		every16[i] = (uint16_t)i;
	check_cast(k, F32_TO_BF16, f32, n, 0, 0, false);
	check_cast(k, F32_TO_F16, f32, n, 0, 0, true);
	check_cast(k, F32_TO_BF16, (const unsigned char *)named, sizeof(named) / 4, 0, 0, false);
	check_cast(k, F32_TO_F16, (const unsigned char *)named, sizeof(named) / 4, 0, 0, false);
	check_cast(k, BF16_TO_F32, (const unsigned char *)every16, 65536, 0, 0, true);
	check_cast(k, F16_TO_F32, (const unsigned char *)every16, 65536, 0, 0, false);
	free(f32);
}

/* Every length up to a few registers at several alignments of both sides,
 * then lengths large enough to stream with the output starting at every
 * even byte of a cache line. */
static void test_casts_match_scalar_at_every_length_and_alignment(void **state)
{
	const struct sd_kernels *k = path_of(state);
	size_t big = (SD_STREAM_MIN / 2) + 77;
	unsigned char *in = malloc(big * 4);

	assert_non_null(in);
	fill_random(in, big * 4);
	for (int c = 0; c < NCASTS; c++) {
		for (size_t n = 0; n <= 100; n++)
			for (size_t off = 0; off < 4; off++)
				check_cast(k, (enum cast_kind)c, in, n, off, (off * 3) % 5,
					   n % 2);
		for (size_t out_off = 0; out_off < 64; out_off += 2)
			check_cast(k, (enum cast_kind)c, in, big - out_off, out_off % 3, out_off,
				   true);
		check_cast(k, (enum cast_kind)c, in, big, 1, 1, true);  /* odd: no streaming */
	}
	free(in);
}

/* --- row copies (concat_last's columns) -------------------------------------- */

/* sd_copy_rows with path k in use against a memcpy per row, the bytes
 * between the rows left alone. */
static void check_copy_rows(const struct sd_kernels *k, size_t width, size_t rows,
			    size_t dst_pitch, size_t src_pitch, size_t dst_off, size_t src_off)
{
	size_t dbytes = rows * dst_pitch + dst_off, sbytes = rows * src_pitch + src_off;
	unsigned char *src = malloc(sbytes), *got = malloc(dbytes), *want = malloc(dbytes);
	char err[SD_ERRLEN];

	assert_non_null(src);
	assert_non_null(got);
	assert_non_null(want);
	assert_int_equal(sd_kernels_choose(k->name, err), 0);
	fill_random(src, sbytes);
	fill_random(want, dbytes);
	memcpy(got, want, dbytes);
	for (size_t r = 0; r < rows; r++)
		memcpy(want + dst_off + r * dst_pitch, src + src_off + r * src_pitch, width);
	sd_copy_rows(got + dst_off, dst_pitch, src + src_off, src_pitch, width, rows, true);
	if (memcmp(got, want, dbytes)) {
		print_error("%s: copy of %zu rows of %zu bytes, pitches %zu/%zu, offsets %zu/%zu "
			    "differs\n", k->name, rows, width, dst_pitch, src_pitch, dst_off, src_off);
		fail();
	}
	free(src);
	free(got);
	free(want);
}

static void test_row_copies_match_memcpy_at_every_alignment(void **state)
{
	const struct sd_kernels *k = path_of(state);
	char err[SD_ERRLEN];

	for (size_t off = 0; off < 64; off += 3) {
		check_copy_rows(k, 3712, 40, 7424, 3712, off, off % 5);  /* concat of two */
		check_copy_rows(k, 200, 400, 333, 200, off, 1);
		check_copy_rows(k, 128, 600, 192, 130, off, off);
		check_copy_rows(k, 7, 30, 9, 7, off, 0);                 /* too small to stream */
	}
	for (size_t lines = 0; lines < 5; lines++)
		for (size_t off = 0; off < 64; off += 7) {
			_Alignas(64) unsigned char dst[5 * 64 + 64];
			unsigned char src[5 * 64 + 64];
			fill_random(src, sizeof(src));
			memset(dst, 0xA5, sizeof(dst));
			k->stream_lines(dst, src + off, lines);
			assert_memory_equal(dst, src + off, lines * 64);
			for (size_t i = lines * 64; i < sizeof(dst); i++)
				assert_int_equal(dst[i], 0xA5);
		}
	assert_int_equal(sd_kernels_choose("auto", err), 0);
}

/* --- the dispatch ------------------------------------------------------------ */

static void test_choose_takes_auto_and_every_path_the_cpu_has(void **state)
{
	char err[SD_ERRLEN];

	(void)state;
	assert_int_equal(sd_kernels_choose("auto", err), 0);
	const struct sd_kernels *widest = sd_kernels();
	for (int p = 0; p < SD_CPU_NPATHS; p++) {
		const char *name = sd_cpu_path_name((enum sd_cpu_path)p);
		const struct sd_kernels *k = sd_kernels_path((enum sd_cpu_path)p);
		int rc = sd_kernels_choose(name, err);
		if (k) {
			assert_int_equal(rc, 0);
			assert_ptr_equal(sd_kernels(), k);
			assert_string_equal(k->name, name);
		} else {
			assert_int_equal(rc, -ENOTSUP);
			assert_non_null(strstr(err, name));
		}
	}
	assert_non_null(sd_kernels_path(SD_CPU_SCALAR));
	assert_int_equal(sd_kernels_choose("auto", err), 0);
	assert_ptr_equal(sd_kernels(), widest);
	for (int p = SD_CPU_NPATHS - 1; p > 0 && !sd_kernels_path((enum sd_cpu_path)p); p--)
		assert_ptr_not_equal(widest, &sd_kernels_scalar);
}

static void test_choose_refuses_an_unknown_name_and_keeps_the_path(void **state)
{
	char err[SD_ERRLEN];

	(void)state;
	assert_int_equal(sd_kernels_choose("scalar", err), 0);
	assert_int_equal(sd_kernels_choose("avx9000", err), -EINVAL);
	assert_non_null(strstr(err, "'avx9000'"));
	assert_non_null(strstr(err, "expected auto, scalar, sse2, avx2 or avx512"));
	assert_ptr_equal(sd_kernels(), &sd_kernels_scalar);
	assert_null(sd_kernels_path(SD_CPU_NPATHS));
	assert_null(sd_cpu_path_name(SD_CPU_NPATHS));
	assert_int_equal(sd_kernels_choose("auto", err), 0);
}

/* The element sizes and type pairs without a kernel go to the scalar code,
 * whatever the path. */
static void test_other_sizes_and_pairs_use_the_scalar_code(void **state)
{
	static const enum sd_dtype types[] = { SD_F16, SD_BF16, SD_F32, SD_F64 };
	unsigned char src[37 * 23 * 8], got[37 * 23 * 8], want[37 * 23 * 8];
	char err[SD_ERRLEN];

	(void)state;
	assert_int_equal(sd_kernels_choose("auto", err), 0);
	fill_random(src, sizeof(src));
	for (size_t es = 1; es <= 8; es *= 2) {
		memset(got, 0, sizeof(got));
		memset(want, 0, sizeof(want));
		naive_transpose(src, 37, 23, 23, want, 37, es);
		sd_transpose(src, 37, 23, 23, got, 37, es, es % 2 == 0);
		assert_memory_equal(got, want, sizeof(got));
	}
	for (size_t a = 0; a < 4; a++)
		for (size_t b = 0; b < 4; b++) {
			size_t n = sizeof(src) / 8 - 3;
			memset(got, 0, sizeof(got));
			memset(want, 0, sizeof(want));
			dtype_convert(want, types[b], src, types[a], n);
			sd_convert(got, types[b], src, types[a], n, true);
			assert_memory_equal(got, want, n * dtype_size(types[b]));
		}
}

/* --- the runner ------------------------------------------------------------- */

struct path_test {
	const char *name;
	CMUnitTestFunction fn;
};

static const struct path_test per_path[] = {
	{ "transposes_match_a_naive_loop_on_every_edge",
	  test_transposes_match_a_naive_loop_on_every_edge },
	{ "transposes_stream_large_outputs_at_every_alignment",
	  test_transposes_stream_large_outputs_at_every_alignment },
	{ "transposes_match_on_random_shapes", test_transposes_match_on_random_shapes },
	{ "casts_match_scalar_on_special_values", test_casts_match_scalar_on_special_values },
	{ "casts_match_scalar_at_every_length_and_alignment",
	  test_casts_match_scalar_at_every_length_and_alignment },
	{ "row_copies_match_memcpy_at_every_alignment",
	  test_row_copies_match_memcpy_at_every_alignment },
};

static const struct path_test general[] = {
	{ "choose_takes_auto_and_every_path_the_cpu_has",
	  test_choose_takes_auto_and_every_path_the_cpu_has },
	{ "choose_refuses_an_unknown_name_and_keeps_the_path",
	  test_choose_refuses_an_unknown_name_and_keeps_the_path },
	{ "other_sizes_and_pairs_use_the_scalar_code",
	  test_other_sizes_and_pairs_use_the_scalar_code },
};

static enum sd_cpu_path paths[SD_CPU_NPATHS] = {
	SD_CPU_SCALAR, SD_CPU_SSE2, SD_CPU_AVX2, SD_CPU_AVX512
};

/* One cmocka test as its own group; prints its TAP line. */
static int run_one(unsigned number, const char *name, CMUnitTestFunction fn, void *prestate)
{
	const struct CMUnitTest t = { name, fn, NULL, NULL, prestate };
	int failed = _cmocka_run_group_tests(name, &t, 1, NULL, NULL) != 0;

	printf("%s %u - %s\n", failed ? "not ok" : "ok", number, name);
	fflush(stdout);
	return failed;
}

int main(void)
{
	size_t npath = sizeof(per_path) / sizeof(per_path[0]);
	size_t ngeneral = sizeof(general) / sizeof(general[0]);
	unsigned number = 0;
	int failed = 0;
	char name[160];

	/* cmocka's own TAP would print a plan per group */
	unsetenv("CMOCKA_MESSAGE_OUTPUT");
	cmocka_set_message_output(CM_OUTPUT_STDOUT);
	printf("1..%zu\n", ngeneral + npath * SD_CPU_NPATHS);
	for (size_t i = 0; i < ngeneral; i++)
		failed |= run_one(++number, general[i].name, general[i].fn, NULL);
	for (int p = 0; p < SD_CPU_NPATHS; p++)
		for (size_t i = 0; i < npath; i++) {
			snprintf(name, sizeof(name), "%s_%s", sd_cpu_path_name(paths[p]),
				 per_path[i].name);
			if (!sd_kernels_path(paths[p]))
				printf("ok %u # skip %s: this CPU or build has no %s path\n",
				       ++number, name, sd_cpu_path_name(paths[p]));
			else
				failed |= run_one(++number, name, per_path[i].fn, &paths[p]);
		}
	return failed;
}
