/*
 * test_dtype.c — dtype names and sizes, and the bit-exact float casts.
 *
 * The casts are checked against references that work a different way:
 * values come from the bit fields via ldexp() in double, and narrowing
 * picks between the two neighbouring representable values by comparing
 * distances in double (ties to the even pattern), instead of dtype.c's
 * integer rounding tricks.  Every 16-bit pattern and every midpoint
 * between neighbouring 16-bit values is covered exhaustively; f32 inputs
 * are sampled.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dtype.h"

static uint32_t bits_of(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

static float float_of(uint32_t u)
{
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* A float whose exponent lies in [lo, hi] (biased), random sign and mantissa. */
static float random_float_in(unsigned lo, unsigned hi)
{
	uint64_t r = rng_next();
	uint32_t exp = lo + (uint32_t)(r >> 40) % (hi - lo + 1);

	return float_of((uint32_t)(r & 0x807FFFFFu) | exp << 23);
}

/* ---- references ------------------------------------------------------ */

/* Magnitude of a non-negative pattern with the given field widths; the
 * all-ones exponent reads as the next power of two, which is where IEEE
 * rounding puts the overflow threshold. */
static double ref_magnitude(uint32_t p, int mant_bits, int bias)
{
	uint32_t exp = p >> mant_bits;
	uint32_t mant = p & ((1u << mant_bits) - 1);

	if (exp == 0)
		return ldexp(mant, 1 - bias - mant_bits);
	return ldexp((1u << mant_bits) + mant, (int)exp - bias - mant_bits);
}

static double ref_f16_value(uint16_t h)
{
	double m = ref_magnitude(h & 0x7FFFu, 10, 15);

	if ((h & 0x7C00u) == 0x7C00u)
		m = INFINITY;
	return (h & 0x8000u) ? -m : m;
}

static double ref_bf16_value(uint16_t h)
{
	double m = ref_magnitude(h & 0x7FFFu, 7, 127);

	if ((h & 0x7F80u) == 0x7F80u)
		m = INFINITY;
	return (h & 0x8000u) ? -m : m;
}

/*
 * Round |x| to the pattern in [0, inf_pattern] nearest by distance, ties
 * to the even pattern.  Binary search for the largest finite pattern not
 * above |x|; its successor is the other neighbour.
 */
static uint16_t ref_round(float f, uint16_t inf_pattern, int mant_bits,
			  int bias)
{
	double x = fabs((double)f);
	uint32_t lo = 0, hi = inf_pattern - 1u;
	double d_lo, d_hi;

	while (lo < hi) {
		uint32_t mid = (lo + hi + 1) / 2;

		if (ref_magnitude(mid, mant_bits, bias) <= x)
			lo = mid;
		else
			hi = mid - 1;
	}
	d_lo = x - ref_magnitude(lo, mant_bits, bias);
	d_hi = ref_magnitude(lo + 1, mant_bits, bias) - x;
	if (isinf(x))
		return inf_pattern;
	if (d_lo < d_hi || (d_lo == d_hi && (lo & 1) == 0))
		return (uint16_t)lo;
	return (uint16_t)(lo + 1);
}

static uint16_t ref_f32_to_bf16(float f)
{
	uint16_t sign = (bits_of(f) >> 31) ? 0x8000u : 0;

	if (isnan(f))
		return 0x7FC0u;
	return sign | ref_round(f, 0x7F80u, 7, 127);
}

static uint16_t ref_f32_to_f16(float f)
{
	uint16_t sign = (bits_of(f) >> 31) ? 0x8000u : 0;

	if (isnan(f))
		return sign | 0x7E00u;
	return sign | ref_round(f, 0x7C00u, 10, 15);
}

static bool f16_is_nan(uint16_t h)
{
	return (h & 0x7C00u) == 0x7C00u && (h & 0x03FFu);
}

static bool bf16_is_nan(uint16_t h)
{
	return (h & 0x7F80u) == 0x7F80u && (h & 0x007Fu);
}

/* ---- names and sizes ------------------------------------------------- */

static void test_names_are_the_safetensors_spellings(void **state)
{
	static const char *const names[SD_DTYPE_COUNT] = {
		"BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64",
		"F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2", "F8_E8M0",
	};

	(void)state;
	for (int t = 0; t < SD_DTYPE_COUNT; t++) {
		assert_string_equal(dtype_name((enum sd_dtype)t), names[t]);
		assert_int_equal(dtype_parse(names[t]), t);
	}
}

static void test_unknown_names_are_invalid(void **state)
{
	static const char *const bad[] = {
		"", "bf16", "Bf16", "F8", "F8_E4M3FN", "FLOAT32", "BF16 ", "U128",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(dtype_parse(bad[i]), SD_DTYPE_INVALID);
	assert_int_equal(dtype_parse(NULL), SD_DTYPE_INVALID);
	assert_null(dtype_name(SD_DTYPE_INVALID));
	assert_null(dtype_name(SD_DTYPE_COUNT));
	assert_int_equal(dtype_size(SD_DTYPE_INVALID), 0);
}

static void test_sizes_and_float_classes(void **state)
{
	static const size_t sizes[SD_DTYPE_COUNT] = {
		[SD_BOOL] = 1, [SD_U8] = 1, [SD_I8] = 1, [SD_U16] = 2,
		[SD_I16] = 2, [SD_U32] = 4, [SD_I32] = 4, [SD_U64] = 8,
		[SD_I64] = 8, [SD_F16] = 2, [SD_BF16] = 2, [SD_F32] = 4,
		[SD_F64] = 8, [SD_F8_E4M3] = 1, [SD_F8_E5M2] = 1,
		[SD_F8_E8M0] = 1,
	};

	(void)state;
	for (int t = 0; t < SD_DTYPE_COUNT; t++) {
		enum sd_dtype d = (enum sd_dtype)t;
		bool castable = d == SD_F16 || d == SD_BF16 || d == SD_F32 ||
				d == SD_F64;
		bool fp8 = d == SD_F8_E4M3 || d == SD_F8_E5M2 ||
			   d == SD_F8_E8M0;

		assert_int_equal(dtype_size(d), sizes[t]);
		assert_int_equal(dtype_is_castable_float(d), castable);
		assert_int_equal(dtype_is_float(d), castable || fp8);
	}
}

/* ---- bf16 ------------------------------------------------------------ */

static void test_bf16_widens_exactly_and_narrows_back(void **state)
{
	(void)state;
	for (uint32_t h = 0; h <= 0xFFFFu; h++) {
		float f = bf16_to_f32((uint16_t)h);

		assert_int_equal(bits_of(f), h << 16);
		if (bf16_is_nan((uint16_t)h)) {
			assert_int_equal(f32_to_bf16(f), 0x7FC0);
			continue;
		}
		assert_true((double)f == ref_bf16_value((uint16_t)h));
		assert_int_equal(f32_to_bf16(f), h);
	}
}

static void test_bf16_special_values(void **state)
{
	static const struct { uint32_t in; uint16_t out; } cases[] = {
		{ 0x00000000u, 0x0000 }, { 0x80000000u, 0x8000 },   /* ±0      */
		{ 0x7F800000u, 0x7F80 }, { 0xFF800000u, 0xFF80 },   /* ±inf    */
		{ 0x7FC00000u, 0x7FC0 }, { 0xFFC00000u, 0x7FC0 },   /* NaN ->  */
		{ 0x7F800001u, 0x7FC0 }, { 0xFFFFFFFFu, 0x7FC0 },   /* 0x7FC0  */
		{ 0x00000001u, 0x0000 }, { 0x80000001u, 0x8000 },   /* subnorm */
		{ 0x00008000u, 0x0000 }, { 0x00018000u, 0x0002 },   /* ties    */
		{ 0x00008001u, 0x0001 }, { 0x007FFFFFu, 0x0080 },
		{ 0x3F808000u, 0x3F80 }, { 0x3F818000u, 0x3F82 },   /* ties    */
		{ 0x7F7F7FFFu, 0x7F7F }, { 0x7F7E8000u, 0x7F7E },   /* max     */
		{ 0x7F7F8000u, 0x7F80 }, { 0x7F7FFFFFu, 0x7F80 },   /* -> inf  */
		{ 0xFF7FFFFFu, 0xFF80 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(f32_to_bf16(float_of(cases[i].in)),
				 cases[i].out);
}

static void test_bf16_rounds_every_midpoint_to_even(void **state)
{
	(void)state;
	for (uint32_t h = 0; h < 0x7F80u; h++) {
		/* Exactly halfway to the next pattern, then one ulp either side. */
		uint32_t mid = h << 16 | 0x8000u;
		uint32_t probes[3] = { mid, mid - 1, mid + 1 };

		for (int k = 0; k < 3; k++) {
			float f = float_of(probes[k]);

			assert_int_equal(f32_to_bf16(f), ref_f32_to_bf16(f));
			assert_int_equal(f32_to_bf16(-f), ref_f32_to_bf16(-f));
		}
		assert_int_equal(f32_to_bf16(float_of(mid)),
				 (h & 1) ? h + 1 : h);
	}
}

static void test_bf16_matches_reference_on_random_floats(void **state)
{
	(void)state;
	for (int i = 0; i < 1000000; i++) {
		float f = float_of((uint32_t)rng_next());

		assert_int_equal(f32_to_bf16(f), ref_f32_to_bf16(f));
	}
}

/* ---- f16 ------------------------------------------------------------- */

static void test_f16_widens_exactly(void **state)
{
	(void)state;
	for (uint32_t h = 0; h <= 0xFFFFu; h++) {
		float f = f16_to_f32((uint16_t)h);
		uint32_t sign = (h & 0x8000u) << 16;

		if (f16_is_nan((uint16_t)h)) {
			/* c10 keeps the payload, shifted up, and quiets it. */
			assert_int_equal(bits_of(f), sign | 0x7FC00000u |
							     (h & 0x3FFu) << 13);
			continue;
		}
		assert_true((double)f == ref_f16_value((uint16_t)h));
		assert_int_equal(bits_of(f) & 0x80000000u, sign);
	}
}

static void test_f16_round_trips_every_non_nan_pattern(void **state)
{
	(void)state;
	for (uint32_t h = 0; h <= 0xFFFFu; h++) {
		uint16_t back = f32_to_f16(f16_to_f32((uint16_t)h));

		if (f16_is_nan((uint16_t)h))
			assert_int_equal(back, (h & 0x8000u) | 0x7E00u);
		else
			assert_int_equal(back, h);
	}
}

static void test_f16_special_values(void **state)
{
	static const struct { float in; uint16_t out; } cases[] = {
		{ 0.0f, 0x0000 }, { -0.0f, 0x8000 },
		{ 1.0f, 0x3C00 }, { -2.0f, 0xC000 },
		{ 65504.0f, 0x7BFF }, { 65519.0f, 0x7BFF },   /* max finite */
		{ 65520.0f, 0x7C00 }, { -65520.0f, 0xFC00 },  /* tie -> inf */
		{ 1e10f, 0x7C00 }, { 3.4e38f, 0x7C00 },       /* overflow   */
		{ INFINITY, 0x7C00 }, { -INFINITY, 0xFC00 },
		{ 0x1p-14f, 0x0400 },                         /* min normal */
		{ 0x1p-24f, 0x0001 }, { -0x1p-24f, 0x8001 },  /* subnormal  */
		{ 0x1p-25f, 0x0000 }, { -0x1p-25f, 0x8000 },  /* tie -> 0   */
		{ 0x1.000002p-25f, 0x0001 },
		{ 0x3p-25f, 0x0002 }, { 0x5p-25f, 0x0002 },   /* ties, even */
		{ 0x3FFp-24f, 0x03FF }, { 0x7FFp-25f, 0x0400 },
		{ 0x1p-149f, 0x0000 }, { -0x1p-149f, 0x8000 },
		{ 0x1.002p0f, 0x3C00 }, { 0x1.006p0f, 0x3C02 }, /* ties, even */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(f32_to_f16(cases[i].in), cases[i].out);
	assert_int_equal(f32_to_f16(nextafterf(65520.0f, 0.0f)), 0x7BFF);
}

static void test_f16_nan_keeps_sign_and_becomes_0x7E00(void **state)
{
	static const uint32_t nans[] = {
		0x7FC00000u, 0x7F800001u, 0x7FFFFFFFu, 0x7F812345u,
	};

	(void)state;
	for (size_t i = 0; i < sizeof(nans) / sizeof(nans[0]); i++) {
		assert_int_equal(f32_to_f16(float_of(nans[i])), 0x7E00);
		assert_int_equal(f32_to_f16(float_of(nans[i] | 0x80000000u)),
				 0xFE00);
	}
}

static void test_f16_widened_values(void **state)
{
	static const struct { uint16_t in; uint32_t out; } cases[] = {
		{ 0x0000, 0x00000000u }, { 0x8000, 0x80000000u },
		{ 0x0001, 0x33800000u }, { 0x03FF, 0x387FC000u },
		{ 0x0400, 0x38800000u }, { 0x7BFF, 0x477FE000u },
		{ 0x7C00, 0x7F800000u }, { 0xFC00, 0xFF800000u },
		{ 0x7C01, 0x7FC02000u }, { 0x7E00, 0x7FC00000u },
		{ 0xFDFF, 0xFFFFE000u },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(bits_of(f16_to_f32(cases[i].in)),
				 cases[i].out);
}

static void test_f16_rounds_every_midpoint_to_even(void **state)
{
	(void)state;
	for (uint32_t h = 0; h < 0x7C00u; h++) {
		/* Midpoints have 12 significant bits: exact in float. */
		double m = (ref_f16_value((uint16_t)h) +
			    ref_magnitude(h + 1, 10, 15)) / 2;
		float mid = (float)m;
		float probes[3] = { mid, nextafterf(mid, 0.0f),
				    nextafterf(mid, INFINITY) };

		assert_true((double)mid == m);
		for (int k = 0; k < 3; k++) {
			assert_int_equal(f32_to_f16(probes[k]),
					 ref_f32_to_f16(probes[k]));
			assert_int_equal(f32_to_f16(-probes[k]),
					 ref_f32_to_f16(-probes[k]));
		}
		assert_int_equal(f32_to_f16(mid), (h & 1) ? h + 1 : h);
	}
}

static void test_f16_matches_reference_on_random_floats(void **state)
{
	(void)state;
	for (int i = 0; i < 1000000; i++) {
		/* Half the samples land in or near the f16 range. */
		float f = (i & 1) ? float_of((uint32_t)rng_next())
				  : random_float_in(95, 145);

		assert_int_equal(f32_to_f16(f), ref_f32_to_f16(f));
	}
}

/* ---- arrays ---------------------------------------------------------- */

static const enum sd_dtype castable[] = { SD_F16, SD_BF16, SD_F32, SD_F64 };

/* The scalar path for one element, as PyTorch composes it; the same type
 * is a plain copy (a NaN would otherwise be canonicalised). */
static void scalar_convert(unsigned char *dst, enum sd_dtype to,
			   const unsigned char *src, enum sd_dtype from)
{
	float f = 0;
	double d;
	uint16_t h;

	if (from == to) {
		memcpy(dst, src, dtype_size(from));
		return;
	}
	switch (from) {
	case SD_F16:  memcpy(&h, src, 2); f = f16_to_f32(h); break;
	case SD_BF16: memcpy(&h, src, 2); f = bf16_to_f32(h); break;
	case SD_F32:  memcpy(&f, src, 4); break;
	case SD_F64:  memcpy(&d, src, 8); f = (float)d; break;
	default: fail();
	}
	switch (to) {
	case SD_F16:  h = f32_to_f16(f); memcpy(dst, &h, 2); break;
	case SD_BF16: h = f32_to_bf16(f); memcpy(dst, &h, 2); break;
	case SD_F32:  memcpy(dst, &f, 4); break;
	case SD_F64:  d = f; memcpy(dst, &d, 8); break;
	default: fail();
	}
}

static void test_convert_arrays_equal_the_scalar_casts(void **state)
{
	/* Not a multiple of any block size; the +1 makes both sides
	 * misaligned, as safetensors data may be. */
	enum { N = 1000 + 37 };
	static unsigned char src[N * 8 + 2], dst[N * 8 + 2];
	unsigned char want[8];

	(void)state;
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (unsigned char)rng_next();
	for (size_t a = 0; a < 4; a++) {
		for (size_t b = 0; b < 4; b++) {
			enum sd_dtype from = castable[a], to = castable[b];
			size_t fs = dtype_size(from), ts = dtype_size(to);

			memset(dst, 0xAA, sizeof(dst));
			dtype_convert(dst + 1, to, src + 1, from, N);
			for (size_t i = 0; i < N; i++) {
				scalar_convert(want, to, src + 1 + i * fs, from);
				assert_memory_equal(dst + 1 + i * ts, want, ts);
			}
			/* Nothing written past the last element. */
			assert_int_equal(dst[1 + N * ts], 0xAA);
			assert_int_equal(dst[0], 0xAA);
		}
	}
}

static void test_convert_zero_elements_writes_nothing(void **state)
{
	unsigned char src[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	unsigned char dst[8] = { 0 };

	(void)state;
	dtype_convert(dst, SD_BF16, src, SD_F32, 0);
	dtype_convert(dst, SD_F32, src, SD_F32, 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(dst[i], 0);
}

/* c10::Half and c10::BFloat16 are built from a float, so a double is
 * rounded twice; a direct rounding would give the other answer here. */
static void test_f64_to_16_bit_rounds_through_f32(void **state)
{
	double d[2] = { 1.0 + 0x1p-11 + 0x1p-40, 1.0 + 0x1p-8 + 0x1p-40 };
	uint16_t h;

	(void)state;
	dtype_convert(&h, SD_F16, &d[0], SD_F64, 1);
	assert_int_equal(h, 0x3C00);   /* direct would be 0x3C01 */
	dtype_convert(&h, SD_BF16, &d[1], SD_F64, 1);
	assert_int_equal(h, 0x3F80);   /* direct would be 0x3F81 */
}

static void test_f32_and_f64_conversions(void **state)
{
	float f[3] = { 0.1f, -0.0f, INFINITY };
	double d[3], back_d[3] = { 1e300, 1.0 + 0x1p-24 + 0x1p-30, -1e-50 };
	float back_f[3];

	(void)state;
	dtype_convert(d, SD_F64, f, SD_F32, 3);
	assert_true(d[0] == (double)0.1f);
	assert_int_equal(signbit(d[1]) != 0, 1);
	assert_true(isinf(d[2]));
	dtype_convert(back_f, SD_F32, back_d, SD_F64, 3);
	assert_true(isinf(back_f[0]));
	assert_true(back_f[1] == 0x1.000002p0f);   /* nearest, not truncated */
	assert_int_equal(bits_of(back_f[2]), 0x80000000u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_are_the_safetensors_spellings),
		cmocka_unit_test(test_unknown_names_are_invalid),
		cmocka_unit_test(test_sizes_and_float_classes),
		cmocka_unit_test(test_bf16_widens_exactly_and_narrows_back),
		cmocka_unit_test(test_bf16_special_values),
		cmocka_unit_test(test_bf16_rounds_every_midpoint_to_even),
		cmocka_unit_test(test_bf16_matches_reference_on_random_floats),
		cmocka_unit_test(test_f16_widens_exactly),
		cmocka_unit_test(test_f16_round_trips_every_non_nan_pattern),
		cmocka_unit_test(test_f16_special_values),
		cmocka_unit_test(test_f16_nan_keeps_sign_and_becomes_0x7E00),
		cmocka_unit_test(test_f16_widened_values),
		cmocka_unit_test(test_f16_rounds_every_midpoint_to_even),
		cmocka_unit_test(test_f16_matches_reference_on_random_floats),
		cmocka_unit_test(test_convert_arrays_equal_the_scalar_casts),
		cmocka_unit_test(test_convert_zero_elements_writes_nothing),
		cmocka_unit_test(test_f64_to_16_bit_rounds_through_f32),
		cmocka_unit_test(test_f32_and_f64_conversions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
