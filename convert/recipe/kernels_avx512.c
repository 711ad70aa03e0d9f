/*
 * kernels_avx512.c — the AVX-512 path (kernels.h): 512-bit registers and
 * mask registers (F, BW, VL; nothing newer, so every AVX-512 CPU has it).
 *
 * A transpose block is 32 x 32 16-bit or 16 x 16 32-bit elements: one
 * 64-byte row per register, so every load and store is a whole cache line.
 * The interleaves work inside 128-bit lanes as in SSE2; two rounds of lane
 * shuffles between registers then gather each column's four lanes.  Casts
 * are dtype_scalar.h's formulas on sixteen lanes; tails and thin edges go
 * to the AVX2 path.  The hardware BF16 conversion is not used: it
 * rounds NaNs its own way, and the integer formula costs no more here.
 */
#include "kernels.h"

#ifdef SD_KERNELS_X86
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

/* out[L] = lane L of g0, g1, g2 and g3, in that order: two rounds of
 * vshufi64x2, each taking two lanes from each of two registers. */
static inline AVX512 void gather_lanes(__m512i g0, __m512i g1, __m512i g2, __m512i g3,
				       __m512i out[4])
{
	__m512i p = _mm512_shuffle_i64x2(g0, g1, 0x88);    /* g0.0 g0.2 g1.0 g1.2 */
	__m512i q = _mm512_shuffle_i64x2(g0, g1, 0xDD);    /* g0.1 g0.3 g1.1 g1.3 */
	__m512i r = _mm512_shuffle_i64x2(g2, g3, 0x88);
	__m512i s = _mm512_shuffle_i64x2(g2, g3, 0xDD);

	out[0] = _mm512_shuffle_i64x2(p, r, 0x88);         /* lane 0 of each group */
	out[1] = _mm512_shuffle_i64x2(q, s, 0x88);         /* lane 1 */
	out[2] = _mm512_shuffle_i64x2(p, r, 0xDD);         /* lane 2 */
	out[3] = _mm512_shuffle_i64x2(q, s, 0xDD);         /* lane 3 */
}

/* Rows 8q .. 8q + 7 (each 32 16-bit elements): afterwards a[8q + j] holds,
 * in lane L, column 8L + j of those rows. */
static inline AVX512 void interleave8_epi16(__m512i *a)
{
	__m512i b[8], c[8];

	SD_UNROLL
	for (int i = 0; i < 4; i++) {
		b[2 * i] = _mm512_unpacklo_epi16(a[2 * i], a[2 * i + 1]);
		b[2 * i + 1] = _mm512_unpackhi_epi16(a[2 * i], a[2 * i + 1]);
	}
	SD_UNROLL
	for (int i = 0; i < 2; i++) {
		c[4 * i + 0] = _mm512_unpacklo_epi32(b[4 * i + 0], b[4 * i + 2]);
		c[4 * i + 1] = _mm512_unpackhi_epi32(b[4 * i + 0], b[4 * i + 2]);
		c[4 * i + 2] = _mm512_unpacklo_epi32(b[4 * i + 1], b[4 * i + 3]);
		c[4 * i + 3] = _mm512_unpackhi_epi32(b[4 * i + 1], b[4 * i + 3]);
	}
	SD_UNROLL
	for (int i = 0; i < 4; i++) {
		a[2 * i] = _mm512_unpacklo_epi64(c[i], c[i + 4]);
		a[2 * i + 1] = _mm512_unpackhi_epi64(c[i], c[i + 4]);
	}
}

/* Rows 4q .. 4q + 3 (each 16 32-bit elements): afterwards a[4q + j] holds,
 * in lane L, column 4L + j of those rows. */
static inline AVX512 void interleave4_epi32(__m512i *a)
{
	__m512i t0 = _mm512_unpacklo_epi32(a[0], a[1]), t1 = _mm512_unpackhi_epi32(a[0], a[1]);
	__m512i t2 = _mm512_unpacklo_epi32(a[2], a[3]), t3 = _mm512_unpackhi_epi32(a[2], a[3]);

	a[0] = _mm512_unpacklo_epi64(t0, t2);
	a[1] = _mm512_unpackhi_epi64(t0, t2);
	a[2] = _mm512_unpacklo_epi64(t1, t3);
	a[3] = _mm512_unpackhi_epi64(t1, t3);
}

static inline AVX512 void store512(void *p, __m512i v, bool nt)
{
	if (nt)
		_mm512_stream_si512(p, v);
	else
		_mm512_storeu_si512(p, v);
}

static inline AVX512 void transpose32x32_16(const uint16_t *s, size_t sld, uint16_t *d,
					    size_t dld, bool nt)
{
	__m512i a[32];

	SD_UNROLL
	for (int i = 0; i < 32; i++)
		a[i] = _mm512_loadu_si512(s + (size_t)i * sld);
	SD_UNROLL
	for (int q = 0; q < 4; q++)
		interleave8_epi16(a + 8 * q);
	SD_UNROLL
	for (int j = 0; j < 8; j++) {
		__m512i out[4];
		gather_lanes(a[j], a[8 + j], a[16 + j], a[24 + j], out);
		SD_UNROLL
		for (int l = 0; l < 4; l++)
			store512(d + (size_t)(8 * l + j) * dld, out[l], nt);
	}
}

static inline AVX512 void transpose16x16_32(const uint32_t *s, size_t sld, uint32_t *d,
					    size_t dld, bool nt)
{
	__m512i a[16];

	SD_UNROLL
	for (int i = 0; i < 16; i++)
		a[i] = _mm512_loadu_si512(s + (size_t)i * sld);
	SD_UNROLL
	for (int q = 0; q < 4; q++)
		interleave4_epi32(a + 4 * q);
	SD_UNROLL
	for (int j = 0; j < 4; j++) {
		__m512i out[4];
		gather_lanes(a[j], a[4 + j], a[8 + j], a[12 + j], out);
		SD_UNROLL
		for (int l = 0; l < 4; l++)
			store512(d + (size_t)(4 * l + j) * dld, out[l], nt);
	}
}

static AVX512 void block32x32_16(const void *src, size_t sld, void *dst, size_t dld)
{
	transpose32x32_16(src, sld, dst, dld, false);
}

static AVX512 void block32x32_16_nt(const void *src, size_t sld, void *dst, size_t dld)
{
	transpose32x32_16(src, sld, dst, dld, true);
}

static AVX512 void block16x16_32(const void *src, size_t sld, void *dst, size_t dld)
{
	transpose16x16_32(src, sld, dst, dld, false);
}

static AVX512 void block16x16_32_nt(const void *src, size_t sld, void *dst, size_t dld)
{
	transpose16x16_32(src, sld, dst, dld, true);
}

static AVX512 void stream_lines_avx512(void *dst, const void *src, size_t lines)
{
	char *d = dst;
	const char *s = src;

	for (size_t i = 0; i < lines; i++)
		_mm512_stream_si512((void *)(d + i * 64), _mm512_loadu_si512(s + i * 64));
}

/* each output row of a block is one 64-byte line: streamed directly */
static const struct sd_transposer t16 = {
	2, 32, block32x32_16, block32x32_16_nt, stream_lines_avx512, &sd_kernels_avx2
};
static const struct sd_transposer t32 = {
	4, 16, block16x16_32, block16x16_32_nt, stream_lines_avx512, &sd_kernels_avx2
};
SD_DEFINE_TRANSPOSE(transpose16_avx512, t16)
SD_DEFINE_TRANSPOSE(transpose32_avx512, t32)

/* --- casts: dtype_scalar.h's formulas, sixteen lanes at a time ------------ */

static inline AVX512 __m512i narrow_bf16_x16(__m512i u)
{
	__m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
	__m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(
				u, _mm512_set1_epi32(0x7FFF)), lsb), 16);
	__mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)),
						_mm512_set1_epi32(0x7F800000));

	return _mm512_mask_blend_epi32(nan, rounded, _mm512_set1_epi32(0x7FC0));
}

static inline AVX512 __m512i narrow_f16_x16(__m512i u)
{
	__m512i sign = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x8000));
	__m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
	__m512i rebiased = _mm512_sub_epi32(a, _mm512_set1_epi32(112 << 23));
	__m512i lsb = _mm512_and_si512(_mm512_srli_epi32(rebiased, 13), _mm512_set1_epi32(1));
	__m512i normal = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(
				rebiased, _mm512_set1_epi32(0xFFF)), lsb), 13);
	__m512 half = _mm512_add_ps(_mm512_castsi512_ps(a), _mm512_set1_ps(0.5f));
	__m512i subnormal = _mm512_sub_epi32(_mm512_castps_si512(half),
					     _mm512_set1_epi32(0x3F000000));
	__m512i r = _mm512_mask_blend_epi32(_mm512_cmpge_epu32_mask(a, _mm512_set1_epi32(0x38800000)),
					    subnormal, normal);

	r = _mm512_mask_blend_epi32(_mm512_cmpge_epu32_mask(a, _mm512_set1_epi32(0x477FF000)),
				    r, _mm512_set1_epi32(0x7C00));
	r = _mm512_mask_blend_epi32(_mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(0x7F800000)),
				    r, _mm512_set1_epi32(0x7E00));
	return _mm512_or_si512(sign, r);
}

static inline AVX512 __m512i widen_f16_x16(__m512i h)
{
	__m512i sign = _mm512_slli_epi32(_mm512_and_si512(h, _mm512_set1_epi32(0x8000)), 16);
	__m512i em = _mm512_and_si512(h, _mm512_set1_epi32(0x7FFF));
	__m512i normal = _mm512_add_epi32(_mm512_slli_epi32(em, 13), _mm512_set1_epi32(112 << 23));
	__m512i inf_nan = _mm512_add_epi32(normal, _mm512_set1_epi32(112 << 23));
	__m512i special = _mm512_mask_or_epi32(inf_nan,
					       _mm512_cmpgt_epu32_mask(em, _mm512_set1_epi32(0x7C00)),
					       inf_nan, _mm512_set1_epi32(0x00400000));
	__m512i subnormal = _mm512_castps_si512(_mm512_mul_ps(_mm512_cvtepi32_ps(em),
							      _mm512_set1_ps(0x1p-24f)));
	__m512i r = _mm512_mask_blend_epi32(_mm512_cmplt_epu32_mask(em, _mm512_set1_epi32(0x0400)),
					    normal, subnormal);

	r = _mm512_mask_blend_epi32(_mm512_cmpge_epu32_mask(em, _mm512_set1_epi32(0x7C00)),
				    r, special);
	return _mm512_or_si512(sign, r);
}

static inline AVX512 __m512i widen_bf16_x16(__m512i h)
{
	return _mm512_slli_epi32(h, 16);
}

static inline AVX512 void store256_512(void *p, __m256i v, bool nt)
{
	if (nt)
		_mm256_stream_si256(p, v);
	else
		_mm256_storeu_si256(p, v);
}

/* Sixteen F32 (as bits) in, sixteen 16-bit values out per step (the low
 * halves of the 32-bit results, vpmovdw). */
#define NARROW_BODY(NAME, NARROW)                                                   \
	static AVX512 size_t NAME(void *dst, const void *src, size_t n, bool nt)    \
	{                                                                           \
		const char *s = src;                                                \
		__m256i *d = dst;                                                   \
		size_t i = 0;                                                       \
		for (; i + 16 <= n; i += 16, s += 64)                               \
			store256_512(d++, _mm512_cvtepi32_epi16(NARROW(_mm512_loadu_si512(s))), nt); \
		return i;                                                           \
	}

/* Sixteen 16-bit values in, sixteen F32 out per step (WIDEN takes them
 * zero-extended to 32 bits). */
#define WIDEN_BODY(NAME, WIDEN)                                                     \
	static AVX512 size_t NAME(void *dst, const void *src, size_t n, bool nt)    \
	{                                                                           \
		const __m256i *s = src;                                             \
		char *d = dst;                                                      \
		size_t i = 0;                                                       \
		for (; i + 16 <= n; i += 16, d += 64)                               \
			store512(d, WIDEN(_mm512_cvtepu16_epi32(_mm256_loadu_si256(s++))), nt); \
		return i;                                                           \
	}

NARROW_BODY(f32_to_bf16_body, narrow_bf16_x16)
NARROW_BODY(f32_to_f16_body, narrow_f16_x16)
WIDEN_BODY(bf16_to_f32_body, widen_bf16_x16)
WIDEN_BODY(f16_to_f32_body, widen_f16_x16)

SD_DEFINE_CAST(f32_to_bf16_avx512, f32_to_bf16_body, sd_kernels_avx2.f32_to_bf16, 4, 2)
SD_DEFINE_CAST(f32_to_f16_avx512, f32_to_f16_body, sd_kernels_avx2.f32_to_f16, 4, 2)
SD_DEFINE_CAST(bf16_to_f32_avx512, bf16_to_f32_body, sd_kernels_avx2.bf16_to_f32, 2, 4)
SD_DEFINE_CAST(f16_to_f32_avx512, f16_to_f32_body, sd_kernels_avx2.f16_to_f32, 2, 4)

const struct sd_kernels sd_kernels_avx512 = {
	.name = "avx512",
	.transpose16 = transpose16_avx512,
	.transpose32 = transpose32_avx512,
	.f32_to_bf16 = f32_to_bf16_avx512,
	.bf16_to_f32 = bf16_to_f32_avx512,
	.f32_to_f16 = f32_to_f16_avx512,
	.f16_to_f32 = f16_to_f32_avx512,
	.stream_lines = stream_lines_avx512,
};
#endif
