/*
 * kernels_sse2.c — the SSE2 path (kernels.h): 128-bit registers, what
 * every x86-64 has.
 *
 * Transposes are register blocks (8 x 8 of 16-bit, 4 x 4 of 32-bit
 * elements) built from interleaves; casts are dtype_scalar.h's formulas
 * on four lanes at once, written with the same integer steps so they give
 * the same bits, NaNs and ties included.  Edges and tails go to the
 * scalar path.
 */
#include "kernels.h"

#ifdef SD_KERNELS_X86
#include <immintrin.h>

#define SSE2 __attribute__((target("sse2")))

/* Eight rows of eight 16-bit elements, transposed in place: three rounds of
 * interleaving (16-, 32-, 64-bit pairs) turn rows into columns. */
static inline SSE2 void transpose8x8_epi16(__m128i a[8])
{
	__m128i b[8], c[8];

	SD_UNROLL
	for (int i = 0; i < 4; i++) {
		b[2 * i] = _mm_unpacklo_epi16(a[2 * i], a[2 * i + 1]);
		b[2 * i + 1] = _mm_unpackhi_epi16(a[2 * i], a[2 * i + 1]);
	}
	SD_UNROLL
	for (int i = 0; i < 2; i++) {
		c[4 * i + 0] = _mm_unpacklo_epi32(b[4 * i + 0], b[4 * i + 2]);
		c[4 * i + 1] = _mm_unpackhi_epi32(b[4 * i + 0], b[4 * i + 2]);
		c[4 * i + 2] = _mm_unpacklo_epi32(b[4 * i + 1], b[4 * i + 3]);
		c[4 * i + 3] = _mm_unpackhi_epi32(b[4 * i + 1], b[4 * i + 3]);
	}
	SD_UNROLL
	for (int i = 0; i < 4; i++) {
		a[2 * i] = _mm_unpacklo_epi64(c[i], c[i + 4]);
		a[2 * i + 1] = _mm_unpackhi_epi64(c[i], c[i + 4]);
	}
}

static SSE2 void block8x8_16(const void *src, size_t sld, void *dst, size_t dld)
{
	const uint16_t *s = src;
	uint16_t *d = dst;
	__m128i a[8];

	SD_UNROLL
	for (int i = 0; i < 8; i++)
		a[i] = _mm_loadu_si128((const __m128i *)(s + (size_t)i * sld));
	transpose8x8_epi16(a);
	SD_UNROLL
	for (int i = 0; i < 8; i++)
		_mm_storeu_si128((__m128i *)(d + (size_t)i * dld), a[i]);
}

static SSE2 void block4x4_32(const void *src, size_t sld, void *dst, size_t dld)
{
	const uint32_t *s = src;
	uint32_t *d = dst;
	__m128i r0 = _mm_loadu_si128((const __m128i *)s);
	__m128i r1 = _mm_loadu_si128((const __m128i *)(s + sld));
	__m128i r2 = _mm_loadu_si128((const __m128i *)(s + 2 * sld));
	__m128i r3 = _mm_loadu_si128((const __m128i *)(s + 3 * sld));
	__m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpackhi_epi32(r0, r1);
	__m128i t2 = _mm_unpacklo_epi32(r2, r3), t3 = _mm_unpackhi_epi32(r2, r3);

	_mm_storeu_si128((__m128i *)d, _mm_unpacklo_epi64(t0, t2));
	_mm_storeu_si128((__m128i *)(d + dld), _mm_unpackhi_epi64(t0, t2));
	_mm_storeu_si128((__m128i *)(d + 2 * dld), _mm_unpacklo_epi64(t1, t3));
	_mm_storeu_si128((__m128i *)(d + 3 * dld), _mm_unpackhi_epi64(t1, t3));
}

static SSE2 void stream_lines_sse2(void *dst, const void *src, size_t lines)
{
	__m128i *d = dst;
	const char *s = src;

	for (size_t i = 0; i < lines * 4; i++)
		_mm_stream_si128(d + i, _mm_loadu_si128((const __m128i *)(s + i * 16)));
}

static const struct sd_transposer t16 = {
	2, 8, block8x8_16, NULL, stream_lines_sse2, &sd_kernels_scalar
};
static const struct sd_transposer t32 = {
	4, 4, block4x4_32, NULL, stream_lines_sse2, &sd_kernels_scalar
};
SD_DEFINE_TRANSPOSE(transpose16_sse2, t16)
SD_DEFINE_TRANSPOSE(transpose32_sse2, t32)

/* --- casts: dtype_scalar.h's formulas, four lanes at a time --------------- */

static inline SSE2 void store128(void *p, __m128i v, bool nt)
{
	if (nt)
		_mm_stream_si128(p, v);
	else
		_mm_storeu_si128(p, v);
}

/* mask ? a : b lane by lane, mask being all ones or all zeros */
static inline SSE2 __m128i select128(__m128i mask, __m128i a, __m128i b)
{
	return _mm_or_si128(_mm_and_si128(mask, a), _mm_andnot_si128(mask, b));
}

/* 16-bit results held in 32-bit lanes, sign-extended, so the signed
 * saturating pack leaves them exactly as they are. */
static inline SSE2 __m128i sext16(__m128i x)
{
	return _mm_srai_epi32(_mm_slli_epi32(x, 16), 16);
}

/* narrow_bf16 */
static inline SSE2 __m128i narrow_bf16_x4(__m128i u)
{
	__m128i lsb = _mm_and_si128(_mm_srli_epi32(u, 16), _mm_set1_epi32(1));
	__m128i rounded = _mm_srli_epi32(_mm_add_epi32(_mm_add_epi32(u, _mm_set1_epi32(0x7FFF)),
						       lsb), 16);
	__m128i nan = _mm_cmpgt_epi32(_mm_and_si128(u, _mm_set1_epi32(0x7FFFFFFF)),
				      _mm_set1_epi32(0x7F800000));

	return sext16(select128(nan, _mm_set1_epi32(0x7FC0), rounded));
}

/* narrow_f16; a is below 2^31, so the signed compares order it right */
static inline SSE2 __m128i narrow_f16_x4(__m128i u)
{
	__m128i sign = _mm_and_si128(_mm_srli_epi32(u, 16), _mm_set1_epi32(0x8000));
	__m128i a = _mm_and_si128(u, _mm_set1_epi32(0x7FFFFFFF));
	__m128i rebiased = _mm_sub_epi32(a, _mm_set1_epi32(112 << 23));
	__m128i lsb = _mm_and_si128(_mm_srli_epi32(rebiased, 13), _mm_set1_epi32(1));
	__m128i normal = _mm_srli_epi32(_mm_add_epi32(_mm_add_epi32(rebiased,
								    _mm_set1_epi32(0xFFF)), lsb), 13);
	__m128 half = _mm_add_ps(_mm_castsi128_ps(a), _mm_set1_ps(0.5f));
	__m128i subnormal = _mm_sub_epi32(_mm_castps_si128(half), _mm_set1_epi32(0x3F000000));
	__m128i r = select128(_mm_cmpgt_epi32(a, _mm_set1_epi32(0x38800000 - 1)), normal, subnormal);

	r = select128(_mm_cmpgt_epi32(a, _mm_set1_epi32(0x477FF000 - 1)), _mm_set1_epi32(0x7C00), r);
	r = select128(_mm_cmpgt_epi32(a, _mm_set1_epi32(0x7F800000)), _mm_set1_epi32(0x7E00), r);
	return sext16(_mm_or_si128(sign, r));
}

/* widen_f16 of four halves held in 32-bit lanes */
static inline SSE2 __m128i widen_f16_x4(__m128i h)
{
	__m128i sign = _mm_slli_epi32(_mm_and_si128(h, _mm_set1_epi32(0x8000)), 16);
	__m128i em = _mm_and_si128(h, _mm_set1_epi32(0x7FFF));
	__m128i normal = _mm_add_epi32(_mm_slli_epi32(em, 13), _mm_set1_epi32(112 << 23));
	__m128i quiet = _mm_and_si128(_mm_cmpgt_epi32(em, _mm_set1_epi32(0x7C00)),
				      _mm_set1_epi32(0x00400000));
	__m128i special = _mm_or_si128(_mm_add_epi32(normal, _mm_set1_epi32(112 << 23)), quiet);
	__m128i subnormal = _mm_castps_si128(_mm_mul_ps(_mm_cvtepi32_ps(em), _mm_set1_ps(0x1p-24f)));
	__m128i r = select128(_mm_cmpgt_epi32(_mm_set1_epi32(0x0400), em), subnormal, normal);

	r = select128(_mm_cmpgt_epi32(em, _mm_set1_epi32(0x7C00 - 1)), special, r);
	return _mm_or_si128(sign, r);
}

static inline SSE2 __m128i widen_bf16_x4(__m128i h)
{
	return _mm_slli_epi32(h, 16);
}

/* Eight F32 (as bits) in, eight 16-bit values out per step. */
#define NARROW_BODY(NAME, NARROW)                                                   \
	static SSE2 size_t NAME(void *dst, const void *src, size_t n, bool nt)      \
	{                                                                           \
		const __m128i *s = src;                                             \
		__m128i *d = dst;                                                   \
		size_t i = 0;                                                       \
		for (; i + 8 <= n; i += 8, s += 2)                                  \
			store128(d++, _mm_packs_epi32(NARROW(_mm_loadu_si128(s)),   \
						      NARROW(_mm_loadu_si128(s + 1))), nt); \
		return i;                                                           \
	}

/* Eight 16-bit values in, eight F32 out per step (WIDEN takes them
 * zero-extended to 32 bits). */
#define WIDEN_BODY(NAME, WIDEN)                                                     \
	static SSE2 size_t NAME(void *dst, const void *src, size_t n, bool nt)      \
	{                                                                           \
		const __m128i *s = src;                                             \
		__m128i *d = dst;                                                   \
		size_t i = 0;                                                       \
		for (; i + 8 <= n; i += 8, d += 2) {                                \
			__m128i h = _mm_loadu_si128(s++);                           \
			store128(d, WIDEN(_mm_unpacklo_epi16(h, _mm_setzero_si128())), nt); \
			store128(d + 1, WIDEN(_mm_unpackhi_epi16(h, _mm_setzero_si128())), nt); \
		}                                                                   \
		return i;                                                           \
	}

NARROW_BODY(f32_to_bf16_body, narrow_bf16_x4)
NARROW_BODY(f32_to_f16_body, narrow_f16_x4)
WIDEN_BODY(bf16_to_f32_body, widen_bf16_x4)
WIDEN_BODY(f16_to_f32_body, widen_f16_x4)

SD_DEFINE_CAST(f32_to_bf16_sse2, f32_to_bf16_body, sd_kernels_scalar.f32_to_bf16, 4, 2)
SD_DEFINE_CAST(f32_to_f16_sse2, f32_to_f16_body, sd_kernels_scalar.f32_to_f16, 4, 2)
SD_DEFINE_CAST(bf16_to_f32_sse2, bf16_to_f32_body, sd_kernels_scalar.bf16_to_f32, 2, 4)
SD_DEFINE_CAST(f16_to_f32_sse2, f16_to_f32_body, sd_kernels_scalar.f16_to_f32, 2, 4)

const struct sd_kernels sd_kernels_sse2 = {
	.name = "sse2",
	.transpose16 = transpose16_sse2,
	.transpose32 = transpose32_sse2,
	.f32_to_bf16 = f32_to_bf16_sse2,
	.bf16_to_f32 = bf16_to_f32_sse2,
	.f32_to_f16 = f32_to_f16_sse2,
	.f16_to_f32 = f16_to_f32_sse2,
	.stream_lines = stream_lines_sse2,
};
#endif
