/*
 * kernels_avx2.c — the AVX2 path (kernels.h): 256-bit registers.
 *
 * A transpose block is two halves of SSE2's: the interleaves work inside
 * each 128-bit lane, so after them each lane holds a transposed 8 x 8
 * (16-bit) or 4 x 4 (32-bit) block, and one lane exchange between two
 * registers puts the columns together.  Casts are dtype_scalar.h's
 * formulas on eight lanes; tails and thin edges go to the SSE2 path.
 */
#include "kernels.h"

#ifdef SD_KERNELS_X86
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))

/* Sixteen rows of sixteen 16-bit elements, transposed in place. */
static inline AVX2 void transpose16x16_epi16(__m256i a[16])
{
	__m256i b[16], c[16];

	SD_UNROLL
	for (int i = 0; i < 8; i++) {
		b[2 * i] = _mm256_unpacklo_epi16(a[2 * i], a[2 * i + 1]);
		b[2 * i + 1] = _mm256_unpackhi_epi16(a[2 * i], a[2 * i + 1]);
	}
	SD_UNROLL
	for (int i = 0; i < 4; i++) {
		c[4 * i + 0] = _mm256_unpacklo_epi32(b[4 * i + 0], b[4 * i + 2]);
		c[4 * i + 1] = _mm256_unpackhi_epi32(b[4 * i + 0], b[4 * i + 2]);
		c[4 * i + 2] = _mm256_unpacklo_epi32(b[4 * i + 1], b[4 * i + 3]);
		c[4 * i + 3] = _mm256_unpackhi_epi32(b[4 * i + 1], b[4 * i + 3]);
	}
	/* b[8g + j]: lane L holds column 8L + j of rows 8g .. 8g + 7 */
	SD_UNROLL
	for (int g = 0; g < 2; g++)
		SD_UNROLL
		for (int i = 0; i < 4; i++) {
			b[8 * g + 2 * i] = _mm256_unpacklo_epi64(c[8 * g + i], c[8 * g + i + 4]);
			b[8 * g + 2 * i + 1] = _mm256_unpackhi_epi64(c[8 * g + i], c[8 * g + i + 4]);
		}
	SD_UNROLL
	for (int j = 0; j < 8; j++) {
		a[j] = _mm256_permute2x128_si256(b[j], b[8 + j], 0x20);
		a[8 + j] = _mm256_permute2x128_si256(b[j], b[8 + j], 0x31);
	}
}

/* Eight rows of eight 32-bit elements, transposed in place. */
static inline AVX2 void transpose8x8_epi32(__m256i a[8])
{
	__m256i b[8];

	SD_UNROLL
	for (int g = 0; g < 2; g++) {
		__m256i t0 = _mm256_unpacklo_epi32(a[4 * g], a[4 * g + 1]);
		__m256i t1 = _mm256_unpackhi_epi32(a[4 * g], a[4 * g + 1]);
		__m256i t2 = _mm256_unpacklo_epi32(a[4 * g + 2], a[4 * g + 3]);
		__m256i t3 = _mm256_unpackhi_epi32(a[4 * g + 2], a[4 * g + 3]);
		/* b[4g + j]: lane L holds column 4L + j of rows 4g .. 4g + 3 */
		b[4 * g + 0] = _mm256_unpacklo_epi64(t0, t2);
		b[4 * g + 1] = _mm256_unpackhi_epi64(t0, t2);
		b[4 * g + 2] = _mm256_unpacklo_epi64(t1, t3);
		b[4 * g + 3] = _mm256_unpackhi_epi64(t1, t3);
	}
	SD_UNROLL
	for (int j = 0; j < 4; j++) {
		a[j] = _mm256_permute2x128_si256(b[j], b[4 + j], 0x20);
		a[4 + j] = _mm256_permute2x128_si256(b[j], b[4 + j], 0x31);
	}
}

static AVX2 void block16x16_16(const void *src, size_t sld, void *dst, size_t dld)
{
	const uint16_t *s = src;
	uint16_t *d = dst;
	__m256i a[16];

	SD_UNROLL
	for (int i = 0; i < 16; i++)
		a[i] = _mm256_loadu_si256((const __m256i *)(s + (size_t)i * sld));
	transpose16x16_epi16(a);
	SD_UNROLL
	for (int i = 0; i < 16; i++)
		_mm256_storeu_si256((__m256i *)(d + (size_t)i * dld), a[i]);
}

static AVX2 void block8x8_32(const void *src, size_t sld, void *dst, size_t dld)
{
	const uint32_t *s = src;
	uint32_t *d = dst;
	__m256i a[8];

	SD_UNROLL
	for (int i = 0; i < 8; i++)
		a[i] = _mm256_loadu_si256((const __m256i *)(s + (size_t)i * sld));
	transpose8x8_epi32(a);
	SD_UNROLL
	for (int i = 0; i < 8; i++)
		_mm256_storeu_si256((__m256i *)(d + (size_t)i * dld), a[i]);
}

static AVX2 void stream_lines_avx2(void *dst, const void *src, size_t lines)
{
	__m256i *d = dst;
	const char *s = src;

	for (size_t i = 0; i < lines * 2; i++)
		_mm256_stream_si256(d + i, _mm256_loadu_si256((const __m256i *)(s + i * 32)));
}

static const struct sd_transposer t16 = {
	2, 16, block16x16_16, NULL, stream_lines_avx2, &sd_kernels_sse2
};
static const struct sd_transposer t32 = {
	4, 8, block8x8_32, NULL, stream_lines_avx2, &sd_kernels_sse2
};
/* --- casts: dtype_scalar.h's formulas, eight lanes at a time -------------- */

static inline AVX2 __m256i select256(__m256i mask, __m256i a, __m256i b)
{
	return _mm256_blendv_epi8(b, a, mask);
}

/* 16-bit results held in 32-bit lanes, sign-extended for the signed pack */
static inline AVX2 __m256i sext16_256(__m256i x)
{
	return _mm256_srai_epi32(_mm256_slli_epi32(x, 16), 16);
}

/* Two registers of 16-bit results in 32-bit lanes, as sixteen in order:
 * the pack works per 128-bit lane, the permute puts the lanes back. */
static inline AVX2 __m256i pack16_256(__m256i lo, __m256i hi)
{
	return _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8);
}

static inline AVX2 __m256i narrow_bf16_x8(__m256i u)
{
	__m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
	__m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(
				u, _mm256_set1_epi32(0x7FFF)), lsb), 16);
	__m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF)),
					 _mm256_set1_epi32(0x7F800000));

	return sext16_256(select256(nan, _mm256_set1_epi32(0x7FC0), rounded));
}

static inline AVX2 __m256i narrow_f16_x8(__m256i u)
{
	__m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x8000));
	__m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF));
	__m256i rebiased = _mm256_sub_epi32(a, _mm256_set1_epi32(112 << 23));
	__m256i lsb = _mm256_and_si256(_mm256_srli_epi32(rebiased, 13), _mm256_set1_epi32(1));
	__m256i normal = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(
				rebiased, _mm256_set1_epi32(0xFFF)), lsb), 13);
	__m256 half = _mm256_add_ps(_mm256_castsi256_ps(a), _mm256_set1_ps(0.5f));
	__m256i subnormal = _mm256_sub_epi32(_mm256_castps_si256(half),
					     _mm256_set1_epi32(0x3F000000));
	__m256i r = select256(_mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x38800000 - 1)),
			      normal, subnormal);

	r = select256(_mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x477FF000 - 1)),
		      _mm256_set1_epi32(0x7C00), r);
	r = select256(_mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7F800000)),
		      _mm256_set1_epi32(0x7E00), r);
	return sext16_256(_mm256_or_si256(sign, r));
}

static inline AVX2 __m256i widen_f16_x8(__m256i h)
{
	__m256i sign = _mm256_slli_epi32(_mm256_and_si256(h, _mm256_set1_epi32(0x8000)), 16);
	__m256i em = _mm256_and_si256(h, _mm256_set1_epi32(0x7FFF));
	__m256i normal = _mm256_add_epi32(_mm256_slli_epi32(em, 13), _mm256_set1_epi32(112 << 23));
	__m256i quiet = _mm256_and_si256(_mm256_cmpgt_epi32(em, _mm256_set1_epi32(0x7C00)),
					 _mm256_set1_epi32(0x00400000));
	__m256i special = _mm256_or_si256(_mm256_add_epi32(normal, _mm256_set1_epi32(112 << 23)),
					  quiet);
	__m256i subnormal = _mm256_castps_si256(_mm256_mul_ps(_mm256_cvtepi32_ps(em),
							      _mm256_set1_ps(0x1p-24f)));
	__m256i r = select256(_mm256_cmpgt_epi32(_mm256_set1_epi32(0x0400), em), subnormal, normal);

	r = select256(_mm256_cmpgt_epi32(em, _mm256_set1_epi32(0x7C00 - 1)), special, r);
	return _mm256_or_si256(sign, r);
}

static inline AVX2 __m256i widen_bf16_x8(__m256i h)
{
	return _mm256_slli_epi32(h, 16);
}

static inline AVX2 void store256(void *p, __m256i v, bool nt)
{
	if (nt)
		_mm256_stream_si256(p, v);
	else
		_mm256_storeu_si256(p, v);
}

/* Sixteen F32 (as bits) in, sixteen 16-bit values out per step. */
#define NARROW_BODY(NAME, NARROW)                                                   \
	static AVX2 size_t NAME(void *dst, const void *src, size_t n, bool nt)      \
	{                                                                           \
		const __m256i *s = src;                                             \
		__m256i *d = dst;                                                   \
		size_t i = 0;                                                       \
		for (; i + 16 <= n; i += 16, s += 2)                                \
			store256(d++, pack16_256(NARROW(_mm256_loadu_si256(s)),     \
						 NARROW(_mm256_loadu_si256(s + 1))), nt); \
		return i;                                                           \
	}

/* Eight 16-bit values in, eight F32 out per step (WIDEN takes them
 * zero-extended to 32 bits). */
#define WIDEN_BODY(NAME, WIDEN)                                                     \
	static AVX2 size_t NAME(void *dst, const void *src, size_t n, bool nt)      \
	{                                                                           \
		const __m128i *s = src;                                             \
		__m256i *d = dst;                                                   \
		size_t i = 0;                                                       \
		for (; i + 8 <= n; i += 8)                                          \
			store256(d++, WIDEN(_mm256_cvtepu16_epi32(_mm_loadu_si128(s++))), nt); \
		return i;                                                           \
	}

NARROW_BODY(f32_to_bf16_body, narrow_bf16_x8)
NARROW_BODY(f32_to_f16_body, narrow_f16_x8)
WIDEN_BODY(bf16_to_f32_body, widen_bf16_x8)
WIDEN_BODY(f16_to_f32_body, widen_f16_x8)

SD_DEFINE_CAST(f32_to_bf16_avx2, f32_to_bf16_body, sd_kernels_sse2.f32_to_bf16, 4, 2)
SD_DEFINE_CAST(f32_to_f16_avx2, f32_to_f16_body, sd_kernels_sse2.f32_to_f16, 4, 2)
SD_DEFINE_CAST(bf16_to_f32_avx2, bf16_to_f32_body, sd_kernels_sse2.bf16_to_f32, 2, 4)
SD_DEFINE_CAST(f16_to_f32_avx2, f16_to_f32_body, sd_kernels_sse2.f16_to_f32, 2, 4)
SD_DEFINE_TRANSPOSE(transpose16_avx2, t16)
SD_DEFINE_TRANSPOSE(transpose32_avx2, t32)

const struct sd_kernels sd_kernels_avx2 = {
	.name = "avx2",
	.transpose16 = transpose16_avx2,
	.transpose32 = transpose32_avx2,
	.f32_to_bf16 = f32_to_bf16_avx2,
	.bf16_to_f32 = bf16_to_f32_avx2,
	.f32_to_f16 = f32_to_f16_avx2,
	.f16_to_f32 = f16_to_f32_avx2,
	.stream_lines = stream_lines_avx2,
};
#endif
