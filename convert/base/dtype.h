/*
 * dtype.h — safetensors element types and the bit-exact casts between the
 * floating types.
 *
 * Casts follow PyTorch's scalar c10 semantics so a view holds exactly what
 * `tensor.to(dtype)` produces: narrowing rounds to nearest, ties to even;
 * F32->BF16 turns any NaN into 0x7FC0; F32->F16 turns any NaN into
 * sign|0x7E00; widening is exact.  Conversions between two 16-bit types go
 * through F32 (which is exact on the way up, so they round once).
 */
#ifndef SDAFS_DTYPE_H
#define SDAFS_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The deepest tensor any part of sdafs handles; safetensors headers with
 * deeper ones are refused. */
#define ST_MAX_DIMS     8

enum sd_dtype {
	SD_BOOL, SD_U8, SD_I8, SD_U16, SD_I16, SD_U32, SD_I32, SD_U64, SD_I64,
	SD_F16, SD_BF16, SD_F32, SD_F64,
	SD_F8_E4M3, SD_F8_E5M2, SD_F8_E8M0,
	SD_DTYPE_COUNT,
	SD_DTYPE_INVALID = -1
};

/* Name as written in safetensors headers ("BF16"); NULL for invalid. */
const char *dtype_name(enum sd_dtype t);
/* Parse a safetensors dtype string; SD_DTYPE_INVALID when unknown. */
enum sd_dtype dtype_parse(const char *name);
/* Element size in bytes (1, 2, 4 or 8). */
size_t dtype_size(enum sd_dtype t);
/* True for the types cast() handles: F16, BF16, F32, F64. */
bool dtype_is_castable_float(enum sd_dtype t);
/* True for every floating type, FP8 included. */
bool dtype_is_float(enum sd_dtype t);

/* Scalar conversions (exported for tests and references). */
float bf16_to_f32(uint16_t h);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);
uint16_t f32_to_f16(float f);

/*
 * Convert n elements from src (type from) to dst (type to).  Both must be
 * castable floats; from == to is a plain copy.  src and dst must not overlap.
 */
void dtype_convert(void *dst, enum sd_dtype to, const void *src,
		   enum sd_dtype from, size_t n);

#endif
