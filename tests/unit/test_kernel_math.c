/*
 * test_kernel_math.c — the CUDA kernels' arithmetic, run on the CPU: every
 * kernel's thread functions (gpu/kernel_math.h), executed for each block
 * and thread of the grid the evaluator would launch, give the CPU
 * evaluator's bytes for the same inputs.
 *
 * No CUDA is needed: the thread functions are plain C, and the grids are
 * walked by gpu_fake.c's launch loops (a barrier is the end of a phase).
 * The grids are made small on purpose (a handful of blocks), so every
 * grid-stride loop goes round many times; the transposes cover ragged
 * tiles, a column range of a 2-D matrix (a chunk of its output rows) and
 * more matrices than one grid holds (launches in groups); FP8 is dequantized
 * from rows that do not start at a scale block.  Source bytes hold every
 * BF16/F16 pattern, the F32 specials, every FP8 code and every MXFP4 byte
 * and scale.  The CPU evaluator is itself checked against naive references
 * in test_recipe.c, test_dequant.c and test_dtype.c.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dtype.h"
#include "gpu_fake.h"
#include "kernel_math.h"
#include "testlib.h"

static uint64_t stream = 0x4B3A11E5D00DF00Dull;

/* Grids of a few blocks: 3 blocks of KX_THREADS threads cover 768
 * elements a round. */
#define FEW_BLOCKS 3u

static const uint32_t f32_special[] = {
	0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x00800000, 0x7F800000, 0xFF800000,
	0x7FC00000, 0xFFC00001, 0x7F800001, 0x7F7FFFFF, 0x3F808000, 0x3F818000, 0x477FF000,
	0x33000000, 0x387FC000,
};

/* A source tensor: random bytes, then every 16-bit pattern (2-byte types),
 * the F32 specials or every byte (1-byte types) from its start. */
static size_t add(struct recipe_fixture *f, enum sd_dtype dt, int ndim, const uint64_t *shape)
{
	size_t i = recipe_fixture_add(f, NULL, dt, ndim, shape, MEMSRC_RANDOM);
	unsigned char *b = f->mem.bytes[i];
	uint64_t n = f->mem.tensors[i].nbytes / dtype_size(dt);

	if (dtype_size(dt) == 2)
		for (uint64_t k = 0; k < n && k < 65536; k++)
			memcpy(b + 2 * k, &(uint16_t){ (uint16_t)k }, 2);
	else if (dtype_size(dt) == 1)
		for (uint64_t k = 0; k < n && k < 256; k++)
			b[k] = (unsigned char)k;
	else if (dt == SD_F32)
		memcpy(b, f32_special, n * 4 < sizeof(f32_special) ? n * 4 : sizeof(f32_special));
	return i;
}

static void assert_same_bytes(const unsigned char *cpu, const unsigned char *gpu, size_t len,
			      const char *what)
{
	for (size_t k = 0; k < len; k++)
		if (cpu[k] != gpu[k])
			fail_msg("%s: byte %zu of %zu is %02x from the kernel's threads, %02x on the CPU",
				 what, k, len, gpu[k], cpu[k]);
}

/* An output buffer of exactly len bytes, filled with a byte no result has
 * everywhere, so one left unwritten shows. */
static unsigned char *out_buffer(size_t len)
{
	unsigned char *p = malloc(len ? len : 1);

	assert_non_null(p);
	memset(p, 0xA5, len);
	return p;
}

static void reset(void **state)
{
	recipe_fixture_teardown(state);
	recipe_fixture_setup(state);
}

/* ---- cast ------------------------------------------------------------------------ */

static void cast_rows_match(struct recipe_fixture *f, size_t t, enum sd_dtype from,
			    enum sd_dtype to, uint64_t r0, uint64_t r1)
{
	uint64_t cols = f->mem.tensors[t].shape[1];
	uint64_t n = (r1 - r0) * cols;
	unsigned char *cpu = recipe_fixture_eval(f, r0, r1), *gpu = out_buffer(n * dtype_size(to));
	struct kx_cast a = { (char *)gpu, (const char *)f->mem.bytes[t] + r0 * cols * dtype_size(from),
			     (int)to, (int)from, n };
	char what[96];

	gpu_fake_run_cast(a, kx_blocks(n, FEW_BLOCKS));
	snprintf(what, sizeof(what), "cast %s to %s, rows %" PRIu64 "..%" PRIu64,
		 dtype_name(from), dtype_name(to), r0, r1);
	assert_same_bytes(cpu, gpu, n * dtype_size(to), what);
	free(cpu);
	free(gpu);
}

static void test_cast_threads_give_the_cpus_bytes(void **state)
{
	static const enum sd_dtype t[] = { SD_BF16, SD_F16, SD_F32 };

	for (size_t a = 0; a < 3; a++)
		for (size_t b = 0; b < 3; b++) {
			struct recipe_fixture *f = *state;
			if (a == b)
				continue;
			size_t x = add(f, t[a], 2, (uint64_t[]){ 700, 100 });     /* 70000 >= 65536 */
			built(rx_cast(&f->r, recipe_fixture_src(f, x), t[b], f->err), f->err);
			cast_rows_match(f, x, t[a], t[b], 0, 700);
			cast_rows_match(f, x, t[a], t[b], 3, 411);
			reset(state);
		}
}

/* ---- transpose ---------------------------------------------------------------------- */

/*
 * The launches the evaluator makes for rows [r0, r1) of transpose_last2
 * of src (batches of R x C), as recipe_cuda.c's gtranspose makes them: a
 * column range of the whole matrix in 2-D, else whole matrices, in groups
 * of at most KX_GRID_YZ per launch.
 */
static void run_transpose(const unsigned char *src, unsigned char *dst, unsigned es, int ndim,
			  uint64_t R, uint64_t C, uint64_t r0, uint64_t r1)
{
	struct kx_transpose a = { R, C, 0, C, R * C, R * C };
	uint64_t batches = 1, nb, so, dof;

	if (ndim == 2) {
		a.c0 = r0;
		a.cw = r1 - r0;
	} else {
		batches = r1 - r0;      /* [batches, R, C]: a matrix per row */
		src += r0 * R * C * es;
	}
	for (uint64_t b0 = 0; b0 < batches; b0 += nb) {
		kx_transpose_group(a, batches, b0, &nb, &so, &dof);
		gpu_fake_run_transpose(a, es, kx_transpose_grid(a, nb), src + so * es, dst + dof * es);
	}
}

static void transpose_rows_match(struct recipe_fixture *f, size_t t, uint64_t r0, uint64_t r1)
{
	const struct memsrc_tensor *s = &f->mem.tensors[t];
	unsigned es = (unsigned)dtype_size(s->dtype);
	uint64_t R = s->shape[s->ndim - 2], C = s->shape[s->ndim - 1];
	size_t len = (size_t)((r1 - r0) * rx_row_bytes(rx_root(&f->r)));
	unsigned char *cpu = recipe_fixture_eval(f, r0, r1), *gpu = out_buffer(len);
	char what[128];

	run_transpose(f->mem.bytes[t], gpu, es, s->ndim, R, C, r0, r1);
	snprintf(what, sizeof(what), "transpose of %u-byte [%s%" PRIu64 ", %" PRIu64 "], rows %" PRIu64 "..%" PRIu64,
		 es, s->ndim == 3 ? "batches, " : "", R, C, r0, r1);
	assert_same_bytes(cpu, gpu, len, what);
	free(cpu);
	free(gpu);
}

static void test_transpose_threads_give_the_cpus_bytes(void **state)
{
	static const enum sd_dtype t[] = { SD_U8, SD_BF16, SD_F32, SD_I64 };

	for (size_t k = 0; k < 4; k++) {
		struct recipe_fixture *f = *state;
		/* ragged against the 32x32 tiles; output rows are input columns */
		size_t x = add(f, t[k], 2, (uint64_t[]){ 77, 131 });
		built(rx_transpose_last2(&f->r, recipe_fixture_src(f, x), f->err), f->err);
		transpose_rows_match(f, x, 0, 131);
		transpose_rows_match(f, x, 33, 70);
		transpose_rows_match(f, x, 130, 131);
		reset(state);
		f = *state;
		x = add(f, t[k], 3, (uint64_t[]){ 5, 45, 33 });
		built(rx_transpose_last2(&f->r, recipe_fixture_src(f, x), f->err), f->err);
		transpose_rows_match(f, x, 0, 5);
		transpose_rows_match(f, x, 1, 4);
		reset(state);
	}
}

static void test_transposes_of_more_matrices_than_a_grid_holds_go_in_groups(void **state)
{
	struct recipe_fixture *f = *state;
	uint64_t nb, so, dof;
	struct kx_transpose a = { 2, 3, 0, 3, 6, 6 };

	/* the grouping itself: KX_GRID_YZ matrices, then the rest */
	kx_transpose_group(a, 2 * KX_GRID_YZ + 7, KX_GRID_YZ, &nb, &so, &dof);
	assert_int_equal(nb, KX_GRID_YZ);
	assert_int_equal(so, (uint64_t)KX_GRID_YZ * 6);
	assert_int_equal(dof, (uint64_t)KX_GRID_YZ * 6);
	kx_transpose_group(a, 2 * KX_GRID_YZ + 7, 2 * KX_GRID_YZ, &nb, &so, &dof);
	assert_int_equal(nb, 7);
	/* and its bytes */
	size_t x = add(f, SD_BF16, 3, (uint64_t[]){ KX_GRID_YZ + 3, 2, 3 });
	built(rx_transpose_last2(&f->r, recipe_fixture_src(f, x), f->err), f->err);
	transpose_rows_match(f, x, 0, KX_GRID_YZ + 3);
	assert_false(kx_transpose_too_tall((uint64_t)KX_GRID_YZ * KX_TILE));
	assert_true(kx_transpose_too_tall((uint64_t)KX_GRID_YZ * KX_TILE + 1));
}

/* ---- dequantization ----------------------------------------------------------------- */

static void fp8_rows_match(struct recipe_fixture *f, size_t q, size_t s, enum sd_dtype to,
			   uint64_t r0, uint64_t r1)
{
	uint64_t cols = f->mem.tensors[q].shape[1], bcols = f->mem.tensors[s].shape[1];
	uint64_t s0 = r0 / SD_FP8_BLOCK, n = (r1 - r0) * cols;
	unsigned char *cpu = recipe_fixture_eval(f, r0, r1), *gpu = out_buffer(n * dtype_size(to));
	struct kx_fp8 a = { (char *)gpu, f->mem.bytes[q] + r0 * cols,
			    (const float *)(void *)f->mem.bytes[s] + s0 * bcols, (int)to,
			    r1 - r0, cols, bcols, r0, s0 };
	char what[96];

	gpu_fake_run_fp8(a, kx_blocks(n, FEW_BLOCKS));
	snprintf(what, sizeof(what), "dequant_fp8_block to %s, rows %" PRIu64 "..%" PRIu64,
		 dtype_name(to), r0, r1);
	assert_same_bytes(cpu, gpu, n * dtype_size(to), what);
	free(cpu);
	free(gpu);
}

static void test_fp8_threads_give_the_cpus_bytes(void **state)
{
	static const enum sd_dtype t[] = { SD_F32, SD_BF16, SD_F16 };

	for (size_t k = 0; k < 3; k++) {
		struct recipe_fixture *f = *state;
		size_t q = add(f, SD_F8_E4M3, 2, (uint64_t[]){ 300, 520 });     /* ragged blocks */
		size_t s = add(f, SD_F32, 2, (uint64_t[]){ 3, 5 });     /* specials: 0, Inf, NaN... */
		built(rx_dequant_fp8_block(&f->r, recipe_fixture_src(f, q), recipe_fixture_src(f, s),
					   t[k], f->err), f->err);
		fp8_rows_match(f, q, s, t[k], 0, 300);
		fp8_rows_match(f, q, s, t[k], 130, 257);       /* from inside the second block */
		fp8_rows_match(f, q, s, t[k], 299, 300);
		reset(state);
	}
}

static void mxfp4_rows_match(struct recipe_fixture *f, size_t b, size_t s, enum sd_dtype to,
			     uint64_t r0, uint64_t r1)
{
	const struct memsrc_tensor *bt = &f->mem.tensors[b];
	uint64_t bytes = bt->shape[bt->ndim - 1];
	uint64_t group_row = f->mem.tensors[s].nbytes / f->mem.tensors[s].shape[0];
	uint64_t groups = (r1 - r0) * group_row, n = groups * bytes * 2;
	unsigned char *cpu = recipe_fixture_eval(f, r0, r1), *gpu = out_buffer(n * dtype_size(to));
	struct kx_mxfp4 a = { (char *)gpu, f->mem.bytes[b] + r0 * group_row * bytes,
			      f->mem.bytes[s] + r0 * group_row, (int)to, groups, bytes };
	char what[96];

	gpu_fake_run_mxfp4(a, kx_blocks(groups * bytes, FEW_BLOCKS));
	snprintf(what, sizeof(what), "dequant_mxfp4 to %s, rows %" PRIu64 "..%" PRIu64,
		 dtype_name(to), r0, r1);
	assert_same_bytes(cpu, gpu, n * dtype_size(to), what);
	free(cpu);
	free(gpu);
}

static void test_mxfp4_threads_give_the_cpus_bytes(void **state)
{
	static const enum sd_dtype t[] = { SD_F32, SD_BF16, SD_F16 };

	for (size_t k = 0; k < 3; k++) {
		struct recipe_fixture *f = *state;
		size_t b = add(f, SD_U8, 4, (uint64_t[]){ 4, 16, 4, 16 });      /* every byte */
		size_t s = add(f, SD_U8, 3, (uint64_t[]){ 4, 16, 4 });          /* every scale */
		for (unsigned c = 0; c < 256; c++)
			f->mem.bytes[s][c] = (uint8_t)(255 - c);
		built(rx_dequant_mxfp4(&f->r, recipe_fixture_src(f, b), recipe_fixture_src(f, s),
				       t[k], f->err), f->err);
		mxfp4_rows_match(f, b, s, t[k], 0, 4);
		mxfp4_rows_match(f, b, s, t[k], 1, 3);
		reset(state);
	}
}

/* ---- launch geometry ------------------------------------------------------------------ */

static void test_grids_cover_every_element_once_however_few_blocks(void **state)
{
	(void)state;
	assert_int_equal(kx_blocks(0, 100), 1);
	assert_int_equal(kx_blocks(KX_THREADS, 100), 1);
	assert_int_equal(kx_blocks(KX_THREADS + 1, 100), 2);
	assert_int_equal(kx_blocks((uint64_t)1 << 40, 1056), 1056);
	/* every element of n is visited exactly once by the threads of a grid */
	for (unsigned blocks = 1; blocks <= 4; blocks++) {
		uint64_t n = 3 * KX_THREADS * blocks + 17;
		unsigned char *seen = calloc(n, 1);
		assert_non_null(seen);
		for (unsigned b = 0; b < blocks; b++)
			for (unsigned t = 0; t < KX_THREADS; t++) {
				struct kx_at at = { b, blocks, t, KX_THREADS };
				for (uint64_t i = kx_first(at); i < n; i += kx_stride(at))
					seen[i]++;
			}
		for (uint64_t i = 0; i < n; i++)
			assert_int_equal(seen[i], 1);
		free(seen);
	}
	/* indices past 2^32 stay 64-bit */
	struct kx_at far = { 70000, 70001, 255, KX_THREADS };
	assert_true(kx_first(far) == (uint64_t)70000 * KX_THREADS + 255);
	assert_true(kx_stride(far) == (uint64_t)70001 * KX_THREADS);
}

#define T(name) cmocka_unit_test_prestate_setup_teardown(name, recipe_fixture_setup, \
							 recipe_fixture_teardown, &stream)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_cast_threads_give_the_cpus_bytes),
		T(test_transpose_threads_give_the_cpus_bytes),
		T(test_transposes_of_more_matrices_than_a_grid_holds_go_in_groups),
		T(test_fp8_threads_give_the_cpus_bytes),
		T(test_mxfp4_threads_give_the_cpus_bytes),
		cmocka_unit_test(test_grids_cover_every_element_once_however_few_blocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
