/*
 * kernels_scalar.c — the reference path (kernels.h): plain C loops that
 * every vector path must equal byte for byte, and the fallback where the
 * CPU has no vector path.
 *
 * The transposes walk 32 x 32 tiles so both sides of a tile stay in L1;
 * the casts are dtype.c's (c10's rules), so this path is, by definition,
 * what a view holds.
 */
#include "kernels.h"

#include <string.h>

#define TILE 32

/* Elements move by fixed-size memcpy (a plain load and store), so any
 * alignment is fine: rows of a safetensors tensor need not be aligned. */
#define DEFINE_TRANSPOSE(NAME, ES)                                              \
	void NAME(const void *src_, size_t rows, size_t cols, size_t src_ld,    \
		  void *dst_, size_t dst_ld, bool stream)                       \
	{                                                                       \
		const unsigned char *src = src_;                                \
		unsigned char *dst = dst_;                                      \
		(void)stream;                                                   \
		for (size_t r0 = 0; r0 < rows; r0 += TILE) {                    \
			size_t r1 = r0 + TILE < rows ? r0 + TILE : rows;        \
			for (size_t c0 = 0; c0 < cols; c0 += TILE) {            \
				size_t c1 = c0 + TILE < cols ? c0 + TILE : cols; \
				for (size_t c = c0; c < c1; c++)                \
					for (size_t r = r0; r < r1; r++)        \
						memcpy(dst + (c * dst_ld + r) * ES, \
						       src + (r * src_ld + c) * ES, ES); \
			}                                                       \
		}                                                               \
	}

DEFINE_TRANSPOSE(sd_transpose8_scalar, 1)
DEFINE_TRANSPOSE(sd_transpose16_scalar, 2)
DEFINE_TRANSPOSE(sd_transpose32_scalar, 4)
DEFINE_TRANSPOSE(sd_transpose64_scalar, 8)

static void f32_to_bf16_scalar(void *dst, const void *src, size_t n, bool stream)
{
	(void)stream;
	dtype_convert(dst, SD_BF16, src, SD_F32, n);
}

static void bf16_to_f32_scalar(void *dst, const void *src, size_t n, bool stream)
{
	(void)stream;
	dtype_convert(dst, SD_F32, src, SD_BF16, n);
}

static void f32_to_f16_scalar(void *dst, const void *src, size_t n, bool stream)
{
	(void)stream;
	dtype_convert(dst, SD_F16, src, SD_F32, n);
}

static void f16_to_f32_scalar(void *dst, const void *src, size_t n, bool stream)
{
	(void)stream;
	dtype_convert(dst, SD_F32, src, SD_F16, n);
}

static void stream_lines_scalar(void *dst, const void *src, size_t lines)
{
	memcpy(dst, src, lines * 64);
}

const struct sd_kernels sd_kernels_scalar = {
	.name = "scalar",
	.transpose16 = sd_transpose16_scalar,
	.transpose32 = sd_transpose32_scalar,
	.f32_to_bf16 = f32_to_bf16_scalar,
	.bf16_to_f32 = bf16_to_f32_scalar,
	.f32_to_f16 = f32_to_f16_scalar,
	.f16_to_f32 = f16_to_f32_scalar,
	.stream_lines = stream_lines_scalar,
};
