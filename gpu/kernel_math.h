/*
 * kernel_math.h — what each thread of the CUDA kernels (cuda_api.cu)
 * computes, as functions the host can run too.
 *
 * A kernel there hands its block and thread indices to functions here and
 * does nothing else but move bytes.  The functions hold all of the kernel's index arithmetic
 * (grid-stride loops, 64-bit offsets, tiles, batch groups, which scale an
 * element takes) and its scalar rules (dtype_scalar.h, quant.h), and are
 * compiled by gcc as well as nvcc (SD_HD).  So a unit test can run the very
 * code a GPU runs, thread by thread on the CPU, over the inputs the CPU
 * evaluator gets and compare the bytes (tests/unit/test_kernel_math.c): the
 * GPU's arithmetic is tested on every machine, with a GPU or without.  Only
 * how the bytes move (shared memory, typed loads) stays in the .cu.
 */
#ifndef SDAFS_KERNEL_MATH_H
#define SDAFS_KERNEL_MATH_H

#include <stdbool.h>
#include <stdint.h>

#include "dtype.h"              /* enum sd_dtype */
#include "dtype_scalar.h"
#include "quant.h"

#define KX_THREADS 256u         /* threads per block of the element kernels */
#define KX_TILE 32u             /* the transpose tile is KX_TILE square */
#define KX_TILE_ROWS 8u         /* threads per tile column (blockDim.y) */
#define KX_GRID_YZ 65535u       /* CUDA's limit on gridDim.y and gridDim.z */

/* Where a thread sits along x: its block of blocks, its thread of threads. */
struct kx_at {
	unsigned block, blocks;
	unsigned thread, threads;
};

/* The first element of a grid-stride loop, and the stride. */
SD_HD uint64_t kx_first(struct kx_at at)
{
	return (uint64_t)at.block * at.threads + at.thread;
}

SD_HD uint64_t kx_stride(struct kx_at at)
{
	return (uint64_t)at.blocks * at.threads;
}

/* Blocks for n elements of KX_THREADS each, at most max_blocks (one wave of
 * the device: more blocks only queue); threads loop over the rest. */
SD_HD unsigned kx_blocks(uint64_t n, unsigned max_blocks)
{
	uint64_t b = (n + KX_THREADS - 1) / KX_THREADS;

	if (b > max_blocks)
		b = max_blocks;
	return b ? (unsigned)b : 1u;
}

SD_HD float kx_load_f32(int dt, const char *p, uint64_t i)
{
	if (dt == SD_BF16)
		return widen_bf16(((const uint16_t *)p)[i]);
	if (dt == SD_F16)
		return widen_f16(((const uint16_t *)p)[i]);
	return ((const float *)p)[i];
}

SD_HD void kx_store_f32(int dt, char *p, uint64_t i, float v)
{
	if (dt == SD_BF16)
		((uint16_t *)p)[i] = narrow_bf16(v);
	else if (dt == SD_F16)
		((uint16_t *)p)[i] = narrow_f16(v);
	else
		((float *)p)[i] = v;
}

/* --- cast: n elements of dtype from to dtype to ------------------------------ */

struct kx_cast {
	char *dst;
	const char *src;
	int to, from;
	uint64_t n;
};

SD_HD void kx_cast_thread(struct kx_cast a, struct kx_at at)
{
	for (uint64_t i = kx_first(at); i < a.n; i += kx_stride(at))
		kx_store_f32(a.to, a.dst, i, kx_load_f32(a.from, a.src, i));
}

/* --- transpose of the last two dims, through a tile ---------------------------
 *
 * dst[b][c][r] = src[b][r][c0 + c] for r < R, c < cw, batch b: a block moves
 * one KX_TILE square through shared memory, reading rows and writing
 * columns so both sides are coalesced.  Element counts, not bytes. */

struct kx_transpose {
	uint64_t R, C;          /* the input matrix */
	uint64_t c0, cw;        /* its columns [c0, c0 + cw) are wanted */
	uint64_t sbatch, dbatch;        /* elements from one batch to the next */
};

/* The grid of one launch: x over output rows (input columns), y over input
 * rows, z over batches (at most KX_GRID_YZ of them: see kx_transpose_group). */
struct kx_grid3 {
	unsigned x, y, z;
};

/* Input rows of this many KX_TILE tiles cannot be one grid (gridDim.y). */
SD_HD bool kx_transpose_too_tall(uint64_t R)
{
	return (R + KX_TILE - 1) / KX_TILE > KX_GRID_YZ;
}

SD_HD struct kx_grid3 kx_transpose_grid(struct kx_transpose a, uint64_t batches)
{
	struct kx_grid3 g;

	g.x = (unsigned)((a.cw + KX_TILE - 1) / KX_TILE);
	g.y = (unsigned)((a.R + KX_TILE - 1) / KX_TILE);
	g.z = (unsigned)batches;
	return g;
}

/* Batches [b0, b0 + *nb) as one launch: the element offsets of their
 * first batch in the input and the output.  Launches go in steps of
 * KX_GRID_YZ batches. */
SD_HD void kx_transpose_group(struct kx_transpose a, uint64_t batches, uint64_t b0,
			      uint64_t *nb, uint64_t *src_off, uint64_t *dst_off)
{
	*nb = batches - b0 < KX_GRID_YZ ? batches - b0 : KX_GRID_YZ;
	*src_off = b0 * a.sbatch;
	*dst_off = b0 * a.dbatch;
}

/* Thread (tx, .) of block (bx, by, bz) loading tile row k (k = ty, ty +
 * KX_TILE_ROWS, ...): the input element it puts in tile[k][tx], false when
 * that lies outside the matrix. */
SD_HD bool kx_transpose_src(struct kx_transpose a, unsigned bx, unsigned by, unsigned bz,
			    unsigned tx, unsigned k, uint64_t *src)
{
	uint64_t r = (uint64_t)by * KX_TILE + k, c = (uint64_t)bx * KX_TILE + tx;

	*src = (uint64_t)bz * a.sbatch + r * a.C + a.c0 + c;
	return r < a.R && c < a.cw;
}

/* The same thread storing, after the block's barrier: where tile[tx][k]
 * goes in the output. */
SD_HD bool kx_transpose_dst(struct kx_transpose a, unsigned bx, unsigned by, unsigned bz,
			    unsigned tx, unsigned k, uint64_t *dst)
{
	uint64_t c = (uint64_t)bx * KX_TILE + k, r = (uint64_t)by * KX_TILE + tx;

	*dst = (uint64_t)bz * a.dbatch + c * a.R + r;
	return c < a.cw && r < a.R;
}

/* --- FP8 block dequantization: rows [r0, r0 + rows) of a [., cols] weight --- */

struct kx_fp8 {
	char *out;
	const uint8_t *q;
	const float *scale;     /* scale rows [s0, ...), bcols each */
	int to;
	uint64_t rows, cols, bcols, r0, s0;
};

SD_HD void kx_fp8_one(struct kx_fp8 a, uint64_t x)
{
	uint64_t i = x / a.cols, j = x % a.cols;
	float w = f32_from_bits(sd_fp8e4m3_to_f32_bits(a.q[x]));
	float s = a.scale[((a.r0 + i) / SD_FP8_BLOCK - a.s0) * a.bcols + j / SD_FP8_BLOCK];

	kx_store_f32(a.to, a.out, x, sd_dequant_mul(w, s));
}

SD_HD void kx_fp8_thread(struct kx_fp8 a, struct kx_at at)
{
	for (uint64_t x = kx_first(at); x < a.rows * a.cols; x += kx_stride(at))
		kx_fp8_one(a, x);
}

/* --- MXFP4: groups of `bytes` bytes, two codes each, one scale per group ---- */

struct kx_mxfp4 {
	char *out;
	const uint8_t *blocks, *scales;
	int to;
	uint64_t groups, bytes;
};

SD_HD void kx_mxfp4_one(struct kx_mxfp4 a, uint64_t x)
{
	float sc = f32_from_bits(sd_e8m0_to_f32_bits(a.scales[x / a.bytes]));
	uint8_t b = a.blocks[x];

	kx_store_f32(a.to, a.out, 2 * x,
		     sd_dequant_mul(f32_from_bits(sd_fp4_to_f32_bits((uint8_t)(b & 0xF))), sc));
	kx_store_f32(a.to, a.out, 2 * x + 1,
		     sd_dequant_mul(f32_from_bits(sd_fp4_to_f32_bits((uint8_t)(b >> 4))), sc));
}

SD_HD void kx_mxfp4_thread(struct kx_mxfp4 a, struct kx_at at)
{
	for (uint64_t x = kx_first(at); x < a.groups * a.bytes; x += kx_stride(at))
		kx_mxfp4_one(a, x);
}

#endif
