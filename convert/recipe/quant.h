/*
 * quant.h — the scalar arithmetic of the two dequantizing recipe operations,
 * shared by the CPU backend and the CUDA kernels so both produce the same
 * bits.
 *
 * Everything is done on F32 bit patterns with integer operations, and the
 * one floating multiply has its NaN result fixed explicitly: hardware and
 * compilers disagree on which NaN a product of NaNs yields (x86 returns the
 * first operand, CUDA a canonical NaN, and a C compiler may swap the
 * operands of a commutative multiply), so the rule is written down here as
 * the one PyTorch's CPU kernels give on x86: a NaN weight wins, then a NaN
 * scale (quieted), and 0 * Inf is x86's default NaN 0xFFC00000.
 *
 * FP8 E4M3 ("fn": no infinities; 0x7F and 0xFF are NaN) widens exactly as
 * c10's fp8e4m3fn_to_fp32_value does, NaN codes included (sign|0x7FF00000).
 *
 * E8M0 scales are 2^(s-127), computed the way transformers' MXFP4 path does
 * (torch.ldexp with an integer exponent: a F32 power of two), so s = 0 is
 * the subnormal 2^-127 and s = 255 is 2^128, which overflows to +Inf in F32
 * (the OCP format calls 0xFF NaN; the PyTorch arithmetic does not).
 */
#ifndef SDAFS_QUANT_H
#define SDAFS_QUANT_H

#include <stdint.h>

#include "dtype_scalar.h"   /* SD_HD, f32_bits, f32_from_bits */

/* Rows of an FP8 weight (and columns) that share one scale. */
#define SD_FP8_BLOCK 128u

/* c10 fp8e4m3fn_to_fp32_value, written out case by case. */
SD_HD uint32_t sd_fp8e4m3_to_f32_bits(uint8_t q)
{
	uint32_t sign = (uint32_t)(q & 0x80u) << 24;
	uint32_t e = (q >> 3) & 0xFu, m = q & 7u;

	if (e == 15 && m == 7)
		return sign | 0x7FF00000u;              /* NaN */
	if (e != 0)
		return sign | ((e + 120u) << 23) | (m << 20);
	if (m == 0)
		return sign;                            /* +-0 */
	/* subnormal m * 2^-9: normalise on m's top bit p */
	uint32_t p = m >= 4 ? 2u : m >= 2 ? 1u : 0u;
	return sign | ((118u + p) << 23) | ((m - (1u << p)) << (23 - p));
}

/* 2^(s-127) as F32 bits; s = 255 is +Inf (see the top of this file). */
SD_HD uint32_t sd_e8m0_to_f32_bits(uint8_t s)
{
	return s ? (uint32_t)s << 23 : 0x00400000u;
}

/* The MXFP4 codes (OCP E2M1: 0, .5, 1, 1.5, 2, 3, 4, 6 and their
 * negatives, bit 3 the sign) as F32 bits.  Computed, not looked up: a
 * table indexed at run time would sit in a GPU thread's local memory. */
SD_HD uint32_t sd_fp4_to_f32_bits(uint8_t code)
{
	uint32_t e = (code >> 1) & 3u, m = code & 1u;
	uint32_t mag = e ? ((e + 126u) << 23) | (m << 22)      /* 2^(e-1) * 1.m */
			 : (m ? 0x3F000000u : 0u);              /* 0 or 0.5 */

	return ((uint32_t)(code & 8u) << 28) | mag;
}

/* a * b in F32 with the NaN rule above. */
SD_HD float sd_dequant_mul(float a, float b)
{
	float p = a * b;

	if (p == p)
		return p;
	if (a != a)
		return f32_from_bits(f32_bits(a) | 0x00400000u);
	if (b != b)
		return f32_from_bits(f32_bits(b) | 0x00400000u);
	return f32_from_bits(0xFFC00000u);
}

#endif
