/*
 * dtype_scalar.h — the scalar casts of dtype.c (c10's rounding and NaNs),
 * in a header so the CUDA kernels (gpu/) compile the very same code and
 * cannot round differently.  Everything works on IEEE bit patterns; the only
 * float arithmetic (an exact multiply, a rounding add) is IEEE on both.
 */
#ifndef SDAFS_DTYPE_SCALAR_H
#define SDAFS_DTYPE_SCALAR_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#ifndef SD_HD
#ifdef __CUDACC__
#define SD_HD __host__ __device__ __forceinline__
#else
#define SD_HD static inline
#endif
#endif

SD_HD uint32_t f32_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

SD_HD float f32_from_bits(uint32_t u)
{
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/*
 * c ? a : b without a branch.  With a plain ?: GCC sinks the float
 * arithmetic of the unused arm into a branch and, since float operations
 * may trap, will not turn it back into a select, so the loop would not
 * vectorise.
 */
SD_HD uint32_t select_u32(bool c, uint32_t a, uint32_t b)
{
	uint32_t mask = 0u - (uint32_t)c;

	return (a & mask) | (b & ~mask);
}

/*
 * The casts are inline so the array loops of dtype.c get them inlined
 * (an out-of-line call stops vectorisation); the exported scalar functions
 * there are thin wrappers.
 */
SD_HD float widen_bf16(uint16_t h)
{
	return f32_from_bits((uint32_t)h << 16);
}

/*
 * c10::Half widens with the FP16 library's fp16_ieee_to_fp32_value, whose
 * NaN path is a float multiply: the payload moves up 13 bits and, as with
 * every IEEE arithmetic result (and with F16C's vcvtph2ps), the quiet bit
 * is set.  Subnormals are exact as (float)mantissa * 2^-24.
 */
SD_HD float widen_f16(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t em = h & 0x7FFFu;                      /* exponent|mantissa */
	uint32_t normal = (em << 13) + (112u << 23);    /* rebias 15 -> 127  */
	uint32_t special = (normal + (112u << 23)) |    /* exponent 31 -> 255 */
			   (em > 0x7C00u ? 0x00400000u : 0);
	uint32_t subnormal = f32_bits((float)(int32_t)em * 0x1p-24f);
	uint32_t r = select_u32(em >= 0x7C00u, special,
				select_u32(em < 0x0400u, subnormal, normal));

	return f32_from_bits(sign | r);
}

/* c10::BFloat16's round_to_nearest_even, including its positive NaN. */
SD_HD uint16_t narrow_bf16(float f)
{
	uint32_t u = f32_bits(f);
	uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;

	return (uint16_t)((u & 0x7FFFFFFFu) > 0x7F800000u ? 0x7FC0u : rounded);
}

/*
 * Same results as fp16_ieee_from_fp32_value (c10::Half).  Normal results
 * round the rebiased pattern to nearest even; a carry out of the mantissa
 * correctly bumps the exponent.  Subnormal results come from adding 0.5f,
 * whose ulp (2^-24) is the f16 subnormal step, so the FPU does the
 * ties-to-even rounding.  From 65520 (halfway past 65504) up it is inf.
 */
SD_HD uint16_t narrow_f16(float f)
{
	uint32_t u = f32_bits(f);
	uint32_t sign = (u >> 16) & 0x8000u;
	uint32_t a = u & 0x7FFFFFFFu;
	uint32_t rebiased = a - (112u << 23);
	uint32_t normal = (rebiased + 0xFFFu + ((rebiased >> 13) & 1u)) >> 13;
	uint32_t subnormal = f32_bits(f32_from_bits(a) + 0.5f) - 0x3F000000u;
	uint32_t r = select_u32(a >= 0x38800000u, normal, subnormal);

	r = select_u32(a >= 0x477FF000u, 0x7C00u, r);
	r = select_u32(a > 0x7F800000u, 0x7E00u, r);

	return (uint16_t)(sign | r);
}

#endif
