/*
 * dtype.c — safetensors element types and the casts between F16, BF16, F32
 * and F64.
 *
 * The one idea: every cast works on the IEEE bit patterns and is written
 * as branch-free selects, so it reproduces PyTorch's c10 scalar
 * casts bit for bit and the compiler can vectorise the array loops.  F32 is
 * the hub: the 16-bit types widen to it exactly, so any cast that goes
 * through it rounds once (F64 to a 16-bit type rounds twice, exactly as
 * PyTorch does, because c10::Half and c10::BFloat16 are built from a float).
 */
#include "dtype.h"
#include "dtype_scalar.h"

#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	size_t size;
} dtype_info[SD_DTYPE_COUNT] = {
	[SD_BOOL] = { "BOOL", 1 },       [SD_U8] = { "U8", 1 },
	[SD_I8] = { "I8", 1 },           [SD_U16] = { "U16", 2 },
	[SD_I16] = { "I16", 2 },         [SD_U32] = { "U32", 4 },
	[SD_I32] = { "I32", 4 },         [SD_U64] = { "U64", 8 },
	[SD_I64] = { "I64", 8 },         [SD_F16] = { "F16", 2 },
	[SD_BF16] = { "BF16", 2 },       [SD_F32] = { "F32", 4 },
	[SD_F64] = { "F64", 8 },         [SD_F8_E4M3] = { "F8_E4M3", 1 },
	[SD_F8_E5M2] = { "F8_E5M2", 1 }, [SD_F8_E8M0] = { "F8_E8M0", 1 },
};

static bool dtype_valid(enum sd_dtype t)
{
	return (int)t >= 0 && (int)t < SD_DTYPE_COUNT;
}

const char *dtype_name(enum sd_dtype t)
{
	return dtype_valid(t) ? dtype_info[t].name : NULL;
}

enum sd_dtype dtype_parse(const char *name)
{
	if (!name)
		return SD_DTYPE_INVALID;
	for (int t = 0; t < SD_DTYPE_COUNT; t++)
		if (strcmp(name, dtype_info[t].name) == 0)
			return (enum sd_dtype)t;
	return SD_DTYPE_INVALID;
}

size_t dtype_size(enum sd_dtype t)
{
	return dtype_valid(t) ? dtype_info[t].size : 0;
}

bool dtype_is_castable_float(enum sd_dtype t)
{
	return t == SD_F16 || t == SD_BF16 || t == SD_F32 || t == SD_F64;
}

bool dtype_is_float(enum sd_dtype t)
{
	return dtype_is_castable_float(t) || t == SD_F8_E4M3 ||
	       t == SD_F8_E5M2 || t == SD_F8_E8M0;
}

float bf16_to_f32(uint16_t h)
{
	return widen_bf16(h);
}

float f16_to_f32(uint16_t h)
{
	return widen_f16(h);
}

uint16_t f32_to_bf16(float f)
{
	return narrow_bf16(f);
}

uint16_t f32_to_f16(float f)
{
	return narrow_f16(f);
}

/*
 * One loop per (from, to) pair.  Elements are moved with memcpy because
 * safetensors offsets need not be aligned to the element size; the
 * compiler turns these into plain (vector) loads.  The work is done in
 * fixed-size blocks, with restrict parameters, because GCC's default -O2
 * cost model only vectorises loops that need neither a scalar remainder
 * nor a run-time overlap check.
 */
#define CAST_BLOCK 64

#define DEFINE_CAST(NAME, STYPE, DTYPE, EXPR)                                \
	static void NAME(unsigned char *restrict d,                          \
			 const unsigned char *restrict s, size_t n)          \
	{                                                                    \
		size_t i = 0;                                                \
		for (; i + CAST_BLOCK <= n; i += CAST_BLOCK) {               \
			const unsigned char *sb = s + i * sizeof(STYPE);     \
			unsigned char *db = d + i * sizeof(DTYPE);           \
			for (size_t j = 0; j < CAST_BLOCK; j++) {            \
				STYPE x;                                     \
				DTYPE y;                                     \
				memcpy(&x, sb + j * sizeof(x), sizeof(x));   \
				y = (EXPR);                                  \
				memcpy(db + j * sizeof(y), &y, sizeof(y));   \
			}                                                    \
		}                                                            \
		for (; i < n; i++) {                                         \
			STYPE x;                                             \
			DTYPE y;                                             \
			memcpy(&x, s + i * sizeof(x), sizeof(x));            \
			y = (EXPR);                                          \
			memcpy(d + i * sizeof(y), &y, sizeof(y));            \
		}                                                            \
	}

DEFINE_CAST(cast_f32_bf16, float, uint16_t, narrow_bf16(x))
DEFINE_CAST(cast_f32_f16, float, uint16_t, narrow_f16(x))
DEFINE_CAST(cast_f32_f64, float, double, (double)x)
DEFINE_CAST(cast_bf16_f32, uint16_t, float, widen_bf16(x))
DEFINE_CAST(cast_bf16_f16, uint16_t, uint16_t, narrow_f16(widen_bf16(x)))
DEFINE_CAST(cast_bf16_f64, uint16_t, double, (double)widen_bf16(x))
DEFINE_CAST(cast_f16_f32, uint16_t, float, widen_f16(x))
DEFINE_CAST(cast_f16_bf16, uint16_t, uint16_t, narrow_bf16(widen_f16(x)))
DEFINE_CAST(cast_f16_f64, uint16_t, double, (double)widen_f16(x))
DEFINE_CAST(cast_f64_f32, double, float, (float)x)
DEFINE_CAST(cast_f64_bf16, double, uint16_t, narrow_bf16((float)x))
DEFINE_CAST(cast_f64_f16, double, uint16_t, narrow_f16((float)x))

#define PAIR(a, b) ((int)(a) * SD_DTYPE_COUNT + (int)(b))

void dtype_convert(void *dst, enum sd_dtype to, const void *src,
		   enum sd_dtype from, size_t n)
{
	if (from == to) {
		memcpy(dst, src, n * dtype_size(from));
		return;
	}
	switch (PAIR(from, to)) {
	case PAIR(SD_F32, SD_BF16):
		cast_f32_bf16(dst, src, n);
		return;
	case PAIR(SD_F32, SD_F16):
		cast_f32_f16(dst, src, n);
		return;
	case PAIR(SD_F32, SD_F64):
		cast_f32_f64(dst, src, n);
		return;
	case PAIR(SD_BF16, SD_F32):
		cast_bf16_f32(dst, src, n);
		return;
	case PAIR(SD_BF16, SD_F16):
		cast_bf16_f16(dst, src, n);
		return;
	case PAIR(SD_BF16, SD_F64):
		cast_bf16_f64(dst, src, n);
		return;
	case PAIR(SD_F16, SD_F32):
		cast_f16_f32(dst, src, n);
		return;
	case PAIR(SD_F16, SD_BF16):
		cast_f16_bf16(dst, src, n);
		return;
	case PAIR(SD_F16, SD_F64):
		cast_f16_f64(dst, src, n);
		return;
	case PAIR(SD_F64, SD_F32):
		cast_f64_f32(dst, src, n);
		return;
	case PAIR(SD_F64, SD_BF16):
		cast_f64_bf16(dst, src, n);
		return;
	case PAIR(SD_F64, SD_F16):
		cast_f64_f16(dst, src, n);
		return;
	}
	/* Callers check dtype_is_castable_float(); anything else is a bug,
	 * and writing nothing would hand out silently wrong bytes. */
	abort();
}
