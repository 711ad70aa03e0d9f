/*
 * kernels.c — which kernel path runs (kernels.h), and the pieces every path
 * shares: the dispatch of a transpose or a cast to the path's kernel, the
 * tile walker of the vector transposes and the loop around a vector cast.
 *
 * The path is one pointer, set once before conversions start (or on first
 * use, from SDAFS_CPU) and only read afterwards, so choosing costs a load
 * per call and never a CPUID.
 */
#include "kernels.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#ifdef SD_KERNELS_X86
#include <immintrin.h>
#endif

/* A streamed transpose turns around this many bytes of source rows at a
 * time: they stay in L2 (and their pages in the TLB) while every column of
 * them is written out. */
#define STRIP_BYTES ((size_t)256 << 10)

static const char *const path_names[SD_CPU_NPATHS] = {
	[SD_CPU_SCALAR] = "scalar", [SD_CPU_SSE2] = "sse2",
	[SD_CPU_AVX2] = "avx2", [SD_CPU_AVX512] = "avx512",
};

static const struct sd_kernels *active;

const char *sd_cpu_path_name(enum sd_cpu_path p)
{
	return (unsigned)p < SD_CPU_NPATHS ? path_names[p] : NULL;
}

/* What the CPU lets each path use (and the OS: the compiler's check reads
 * XCR0 too, so registers the kernel does not save count as absent).  Other
 * architectures have the scalar path only. */
static int cpu_has(enum sd_cpu_path p)
{
#ifdef SD_KERNELS_X86
	__builtin_cpu_init();
	switch (p) {
	case SD_CPU_SSE2:
		return __builtin_cpu_supports("sse2");
	case SD_CPU_AVX2:
		return __builtin_cpu_supports("avx2");
	case SD_CPU_AVX512:
		return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		       __builtin_cpu_supports("avx512vl");
	default:
		break;
	}
#endif
	return p == SD_CPU_SCALAR;
}

const struct sd_kernels *sd_kernels_path(enum sd_cpu_path p)
{
	static const struct sd_kernels *const tables[SD_CPU_NPATHS] = {
		[SD_CPU_SCALAR] = &sd_kernels_scalar,
#ifdef SD_KERNELS_X86
		[SD_CPU_SSE2] = &sd_kernels_sse2,
		[SD_CPU_AVX2] = &sd_kernels_avx2,
		[SD_CPU_AVX512] = &sd_kernels_avx512,
#endif
	};

	if ((unsigned)p >= SD_CPU_NPATHS || !tables[p] || !cpu_has(p))
		return NULL;
	return tables[p];
}

static const struct sd_kernels *widest(void)
{
	for (int p = SD_CPU_NPATHS - 1; p > SD_CPU_SCALAR; p--) {
		const struct sd_kernels *k = sd_kernels_path((enum sd_cpu_path)p);
		if (k)
			return k;
	}
	return &sd_kernels_scalar;
}

static int find(const char *name, const struct sd_kernels **out, char *err)
{
	if (!strcmp(name, "auto")) {
		*out = widest();
		return 0;
	}
	for (int p = 0; p < SD_CPU_NPATHS; p++) {
		if (strcmp(name, path_names[p]))
			continue;
		if (!(*out = sd_kernels_path((enum sd_cpu_path)p)))
			return sd_err(err, -ENOTSUP, "this CPU has no %s kernels (the widest it has: %s)",
				      name, widest()->name);
		return 0;
	}
	return sd_err(err, -EINVAL, "unknown kernel path '%s': expected auto, scalar, sse2, avx2 or avx512",
		      name);
}

int sd_kernels_choose(const char *name, char *err)
{
	const struct sd_kernels *k;
	int rc = find(name, &k, err);

	if (rc == 0)
		__atomic_store_n(&active, k, __ATOMIC_RELEASE);
	return rc;
}

/* First use without a choice: SDAFS_CPU decides.  A test run that forces a
 * path the machine lacks must not quietly test another one, so that stops. */
static const struct sd_kernels *choose_from_env(void)
{
	const char *env = getenv("SDAFS_CPU");
	char err[SD_ERRLEN];

	if (sd_kernels_choose(env && *env ? env : "auto", err) < 0) {
		fprintf(stderr, "sdafs: SDAFS_CPU=%s: %s\n", env, err);
		abort();
	}
	return __atomic_load_n(&active, __ATOMIC_ACQUIRE);
}

const struct sd_kernels *sd_kernels(void)
{
	const struct sd_kernels *k = __atomic_load_n(&active, __ATOMIC_ACQUIRE);

	return k ? k : choose_from_env();
}

void sd_transpose(const void *src, size_t rows, size_t cols, size_t src_ld,
		  void *dst, size_t dst_ld, size_t es, bool stream)
{
	switch (es) {
	case 1:
		sd_transpose8_scalar(src, rows, cols, src_ld, dst, dst_ld, stream);
		break;
	case 2:
		sd_kernels()->transpose16(src, rows, cols, src_ld, dst, dst_ld, stream);
		break;
	case 4:
		sd_kernels()->transpose32(src, rows, cols, src_ld, dst, dst_ld, stream);
		break;
	default:
		sd_transpose64_scalar(src, rows, cols, src_ld, dst, dst_ld, stream);
		break;
	}
}

void sd_convert(void *dst, enum sd_dtype to, const void *src, enum sd_dtype from, size_t n,
		bool stream)
{
	const struct sd_kernels *k = sd_kernels();
	sd_cast_fn *fn = NULL;

	if (from == SD_F32 && to == SD_BF16)
		fn = k->f32_to_bf16;
	else if (from == SD_BF16 && to == SD_F32)
		fn = k->bf16_to_f32;
	else if (from == SD_F32 && to == SD_F16)
		fn = k->f32_to_f16;
	else if (from == SD_F16 && to == SD_F32)
		fn = k->f16_to_f32;
	if (fn)
		fn(dst, src, n, stream);
	else
		dtype_convert(dst, to, src, from, n);
}

/* Non-temporal stores are weakly ordered: fence them before the caller
 * hands the buffer to another thread. */
static void stream_fence(void)
{
#ifdef SD_KERNELS_X86
	_mm_sfence();
#endif
}

void sd_copy_rows(void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t width,
		  size_t rows, bool stream)
{
	char *d = dst;
	const char *s = src;

	if (!stream || width * rows < SD_STREAM_MIN || width < 128) {
		for (size_t r = 0; r < rows; r++)
			memcpy(d + r * dst_pitch, s + r * src_pitch, width);
		return;
	}
	sd_stream_lines_fn *lines = sd_kernels()->stream_lines;
	for (size_t r = 0; r < rows; r++, d += dst_pitch, s += src_pitch) {
		size_t head = (64 - (uintptr_t)d % 64) % 64, body = (width - head) / 64 * 64;
		memcpy(d, s, head);
		lines(d + head, s + head, body / 64);
		memcpy(d + head + body, s + head + body, width - head - body);
	}
	stream_fence();
}

#define PTR(base, off) ((const char *)(base) + (off))
#define WPTR(base, off) ((char *)(base) + (off))

static sd_transpose_fn *edge(const struct sd_transposer *k)
{
	return k->es == 2 ? k->narrower->transpose16 : k->narrower->transpose32;
}

/* Plain stores: 64 x 64-element tiles of register blocks, then the edges. */
static void walk_plain(const struct sd_transposer *k, const void *src, size_t rows, size_t cols,
		       size_t src_ld, void *dst, size_t dst_ld)
{
	size_t es = k->es, b = k->block, tile = 64;
	size_t rb = rows - rows % b, cb = cols - cols % b;

	for (size_t r0 = 0; r0 < rb; r0 += tile) {
		size_t r1 = r0 + tile < rb ? r0 + tile : rb;
		for (size_t c0 = 0; c0 < cb; c0 += tile) {
			size_t c1 = c0 + tile < cb ? c0 + tile : cb;
			for (size_t r = r0; r < r1; r += b)
				for (size_t c = c0; c < c1; c += b)
					k->block_fn(PTR(src, (r * src_ld + c) * es), src_ld,
						    WPTR(dst, (c * dst_ld + r) * es), dst_ld);
		}
	}
	if (cb < cols)
		edge(k)(PTR(src, cb * es), rb, cols - cb, src_ld, WPTR(dst, cb * dst_ld * es),
			dst_ld, false);
	if (rb < rows)
		edge(k)(PTR(src, rb * src_ld * es), rows - rb, cols, src_ld, WPTR(dst, rb * es),
			dst_ld, false);
}

/* One tile of `line` x `line` elements (one 64-byte line per output row),
 * written non-temporally; dst rows are aligned. */
static void stream_tile(const struct sd_transposer *k, const void *src, size_t src_ld,
			void *dst, size_t dst_ld)
{
	size_t es = k->es, b = k->block, line = 64 / es;
	_Alignas(64) unsigned char stage[32 * 64];      /* line <= 32 rows of 64 bytes */

	if (k->line_block_fn) {
		k->line_block_fn(src, src_ld, dst, dst_ld);
		return;
	}
	for (size_t r = 0; r < line; r += b)
		for (size_t c = 0; c < line; c += b)
			k->block_fn(PTR(src, (r * src_ld + c) * es), src_ld, stage + (c * line + r) * es,
				    line);
	for (size_t c = 0; c < line; c++)
		k->stream_lines(WPTR(dst, c * dst_ld * es), stage + c * 64, 1);
}

void sd_transpose_run(const struct sd_transposer *k, const void *src, size_t rows,
		      size_t cols, size_t src_ld, void *dst, size_t dst_ld, bool stream)
{
	size_t es = k->es, line = 64 / es;
	/* source rows to do plainly until dst's rows start on a line */
	size_t lead = ((64 - (uintptr_t)dst % 64) % 64) / es;

	if (!stream || rows * cols * es < SD_STREAM_MIN || (dst_ld * es) % 64 ||
	    (uintptr_t)dst % es || rows < lead + line || cols < line) {
		walk_plain(k, src, rows, cols, src_ld, dst, dst_ld);
		return;
	}
	size_t rs = (rows - lead) / line * line, cs = cols / line * line;
	const char *s = PTR(src, lead * src_ld * es);
	char *d = WPTR(dst, lead * es);

	size_t strip = STRIP_BYTES / (cols * es) / line * line;

	if (strip < line)
		strip = line;
	if (lead)
		walk_plain(k, src, lead, cols, src_ld, dst, dst_ld);
	for (size_t s0 = 0; s0 < rs; s0 += strip) {
		size_t s1 = s0 + strip < rs ? s0 + strip : rs;
		for (size_t c0 = 0; c0 < cs; c0 += line)
			for (size_t r0 = s0; r0 < s1; r0 += line)
				stream_tile(k, s + (r0 * src_ld + c0) * es, src_ld,
					    d + (c0 * dst_ld + r0) * es, dst_ld);
	}
	stream_fence();
	if (cs < cols)
		edge(k)(s + cs * es, rs, cols - cs, src_ld, d + cs * dst_ld * es, dst_ld, false);
	if (lead + rs < rows)
		walk_plain(k, s + rs * src_ld * es, rows - lead - rs, cols, src_ld, d + rs * es,
			   dst_ld);
}

void sd_cast_run(sd_cast_body_fn *body, sd_cast_fn *narrower, size_t in_es, size_t out_es,
		 void *dst, const void *src, size_t n, bool stream)
{
	size_t head = ((64 - (uintptr_t)dst % 64) % 64) / out_es, done;
	bool nt = stream && n * out_es >= SD_STREAM_MIN && (uintptr_t)dst % out_es == 0;

	if (!nt)
		head = 0;
	narrower(dst, src, head, false);
	done = head + body(WPTR(dst, head * out_es), PTR(src, head * in_es), n - head, nt);
	if (nt)
		stream_fence();
	narrower(WPTR(dst, done * out_es), PTR(src, done * in_es), n - done, false);
}
