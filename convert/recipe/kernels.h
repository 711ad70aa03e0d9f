/*
 * kernels.h — the CPU evaluator's inner loops (2-D transposes of 16- and
 * 32-bit elements, casts between F32 and the 16-bit floats, the row copies
 * of concat_last) in several instruction sets, one of which is chosen once,
 * at start-up.
 *
 * The one idea: every path is a table of the same functions, and the scalar
 * table is the reference the others must equal byte for byte (the casts are
 * c10's rules, dtype_scalar.h, redone lane by lane in integer arithmetic, so
 * no hardware rounding of NaNs or ties ever decides a bit).  The vector paths
 * are compiled for the baseline x86-64 target with per-function target
 * attributes, so one binary runs on any x86-64 and uses what the CPU has;
 * other architectures get the scalar table only.
 *
 * `stream` says the output will not be read again soon (it is the chunk
 * being converted, not a temporary a parent reads next): large outputs are
 * then written with non-temporal stores, which skip reading each line
 * before overwriting it and leave the caches to the input.  The bytes are
 * the same either way.
 */
#ifndef SDAFS_KERNELS_H
#define SDAFS_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

enum sd_cpu_path { SD_CPU_SCALAR, SD_CPU_SSE2, SD_CPU_AVX2, SD_CPU_AVX512, SD_CPU_NPATHS };

/* dst[c * dst_ld + r] = src[r * src_ld + c] for r < rows, c < cols; the
 * leading dimensions count elements.  src and dst must not overlap. */
typedef void sd_transpose_fn(const void *src, size_t rows, size_t cols, size_t src_ld,
			     void *dst, size_t dst_ld, bool stream);
/* n elements of src converted into dst (dtype.h's rules); no overlap, any
 * alignment. */
typedef void sd_cast_fn(void *dst, const void *src, size_t n, bool stream);

/* lines x 64 bytes from src (any alignment) to dst (64-byte aligned),
 * around the caches where the path can. */
typedef void sd_stream_lines_fn(void *dst, const void *src, size_t lines);

struct sd_kernels {
	const char *name;               /* as -o cpu= spells it */
	sd_transpose_fn *transpose16, *transpose32;
	sd_cast_fn *f32_to_bf16, *bf16_to_f32, *f32_to_f16, *f16_to_f32;
	sd_stream_lines_fn *stream_lines;
};

/* The tables, each defined in its own file; a path this build has no code
 * for (not x86-64) has no table and sd_kernels_path() says so. */
extern const struct sd_kernels sd_kernels_scalar;
#if defined(__x86_64__)
#define SD_KERNELS_X86 1
extern const struct sd_kernels sd_kernels_sse2, sd_kernels_avx2, sd_kernels_avx512;
#endif

/* The path's name ("scalar", "sse2", "avx2", "avx512"). */
const char *sd_cpu_path_name(enum sd_cpu_path p);
/* The table of path p, or NULL where this build or this CPU lacks it. */
const struct sd_kernels *sd_kernels_path(enum sd_cpu_path p);

/*
 * Choose the path every later call uses: "auto" (the widest this CPU has)
 * or a path's name.  -EINVAL for an unknown name, -ENOTSUP for a path this
 * CPU or build lacks, with a message.  Call before conversions start (at
 * mount); until it is called, the first use chooses by the environment
 * variable SDAFS_CPU (same values; unset means auto) and stops the program
 * with a message if SDAFS_CPU names a path it cannot take.
 */
int sd_kernels_choose(const char *name, char *err);
/* The path in use. */
const struct sd_kernels *sd_kernels(void);

/* dst[c][r] = src[r][c] for elements of es bytes (1, 2, 4 or 8), with the
 * path in use for 2 and 4. */
void sd_transpose(const void *src, size_t rows, size_t cols, size_t src_ld,
		  void *dst, size_t dst_ld, size_t es, bool stream);
/* dtype_convert() with the path in use where it has a kernel for the pair. */
void sd_convert(void *dst, enum sd_dtype to, const void *src, enum sd_dtype from, size_t n,
		bool stream);
/* rows rows of width bytes from src to dst, rows pitch bytes apart on each
 * side (concat_last's copies into its columns). */
void sd_copy_rows(void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t width,
		  size_t rows, bool stream);

/* --- shared by the paths' files ------------------------------------------ */

/* Outputs smaller than this are stored plainly even when streamed: they
 * are cheap either way and likely still cached when they are served. */
#define SD_STREAM_MIN ((size_t)64 << 10)

/* A block x block register block: the same leading dimensions as
 * sd_transpose_fn, pointers at the block's first elements. */
typedef void sd_block_fn(const void *src, size_t src_ld, void *dst, size_t dst_ld);

/* How a path transposes elements of es bytes. */
struct sd_transposer {
	size_t es, block;
	sd_block_fn *block_fn;
	/* Streaming: either a block whose output rows are single 64-byte lines
	 * (block * es == 64), stored non-temporally at 64-byte aligned dst
	 * rows, or NULL and tiles staged in L1 go out by the path's
	 * stream_lines. */
	sd_block_fn *line_block_fn;
	sd_stream_lines_fn *stream_lines;
	/* the next narrower path, for the thin edges */
	const struct sd_kernels *narrower;
};

/*
 * A whole transpose with path k: square tiles of register blocks, so the
 * lines a tile reads and writes stay in L1, and the ragged right and bottom
 * edges by k->narrower (so a thin matrix still runs in registers).  Streamed,
 * the output goes out in whole 64-byte lines: rows of dst are aligned by
 * doing the first few source rows plainly, and each tile of one line by
 * one line is either a line block or staged in L1 and copied out.
 */
void sd_transpose_run(const struct sd_transposer *k, const void *src, size_t rows,
		      size_t cols, size_t src_ld, void *dst, size_t dst_ld, bool stream);

/* A vector cast's main loop: converts the first elements of n, a whole
 * number of its registers, with non-temporal stores when nt (dst is then
 * 64-byte aligned); returns how many it converted. */
typedef size_t sd_cast_body_fn(void *dst, const void *src, size_t n, bool nt);

/* A cast with a path's main loop: the elements before dst is aligned (when
 * streaming) and after the last whole register go to `narrower`. */
void sd_cast_run(sd_cast_body_fn *body, sd_cast_fn *narrower, size_t in_es, size_t out_es,
		 void *dst, const void *src, size_t n, bool stream);

/* A path's table entries: a transpose by its sd_transposer, a cast by its
 * main loop and the next narrower path's cast. */
#define SD_DEFINE_TRANSPOSE(NAME, TRANSPOSER)                                      \
	static void NAME(const void *src, size_t rows, size_t cols, size_t src_ld,  \
			 void *dst, size_t dst_ld, bool stream)                     \
	{                                                                           \
		sd_transpose_run(&TRANSPOSER, src, rows, cols, src_ld, dst, dst_ld, \
				 stream);                                           \
	}
#define SD_DEFINE_CAST(NAME, BODY, NARROWER, IN_ES, OUT_ES)                        \
	static void NAME(void *dst, const void *src, size_t n, bool stream)         \
	{                                                                           \
		sd_cast_run(BODY, NARROWER, IN_ES, OUT_ES, dst, src, n, stream);    \
	}

/* Before a loop over the registers of a block: unrolled, its arrays of
 * registers stay in registers (the default -O2 keeps them on the stack). */
#define SD_UNROLL _Pragma("GCC unroll 32")

/* The scalar transposes by element size: sd_transpose() uses the 8- and
 * 64-bit ones on every path. */
sd_transpose_fn sd_transpose8_scalar, sd_transpose16_scalar, sd_transpose32_scalar,
		sd_transpose64_scalar;

#endif
