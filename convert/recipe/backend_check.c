/*
 * backend_check.c — comparing a backend with the CPU's bytes (see
 * backend_check.h).
 *
 * The cases are small (a few megabytes in all) so a mount pays
 * milliseconds for them, but each reaches a different kernel: both
 * transpose shapes, every float cast (every BF16 and F16 bit pattern among
 * the inputs), the gated expert merge, index/slices/reshape, FP8 block
 * dequantization across a ragged block edge, and MXFP4.  The last cases are
 * larger than one wave of GPU threads (so grid-stride loops go round),
 * larger than a pool's first block (so pools grow), and hold more matrices
 * than one grid (so transposes are launched in groups).  The small cases
 * are evaluated whole and from row 1, the latter in batches of rows where
 * the backend has such a path (the one a chunk takes when memory runs
 * out), so row offsets are compared too; the large ones once each, to keep
 * the check to milliseconds.
 */
#include "backend_check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "memsrc.h"

struct bc {
	struct memsrc mem;
	char *err;
};

/* A source tensor of random bytes, or (every) every 16-bit pattern in turn;
 * returns its index. */
static int tensor(struct bc *b, enum sd_dtype dt, int ndim, const uint64_t *shape, bool every)
{
	int i = memsrc_add(&b->mem, NULL, dt, ndim, shape, MEMSRC_RANDOM, b->err);

	if (i >= 0 && every)
		for (uint64_t k = 0; k < b->mem.tensors[i].nbytes; k++)
			b->mem.bytes[i][k] = (unsigned char)(k & 1 ? (k / 2) >> 8 : k / 2);
	return i;
}

/* Which evaluations of a case compare: the whole root by eval, rows from
 * row 1 (by the batched evaluator, when there is one). */
enum { WHOLE = 1, FROM_ROW_1 = 2 };

/* The root of r evaluated by both as passes says; 0 when equal. */
static int compare(struct bc *b, const struct recipe *r, const char *what, unsigned passes,
		   rx_eval_fn eval, rx_eval_fn batched)
{
	struct rx_reader rd = memsrc_reader(&b->mem);
	uint64_t rows = rx_rows(rx_root(r)), rb = rx_row_bytes(rx_root(r));
	size_t len = (size_t)(rows * rb);
	unsigned char *want = malloc(len + 1), *got = malloc(len + 1);
	int rc = 0;

	if (!want || !got) {
		rc = sd_err(b->err, -ENOMEM, "out of memory");
		goto out;
	}
	for (uint64_t r0 = 0; r0 < 2 && r0 < rows && rc == 0; r0++) {
		if (!(passes & (r0 ? FROM_ROW_1 : WHOLE)))
			continue;
		size_t part = (size_t)((rows - r0) * rb);
		memset(got, 0xA5, part);
		if ((rc = recipe_eval_cpu(r, r0, rows, want, &rd, b->err)) < 0)
			break;
		rx_eval_fn fn = r0 && batched ? batched : eval;
		const char *how = fn == eval ? "" : " in row batches";
		if ((rc = fn(r, r0, rows, got, &rd, b->err)) < 0) {
			sd_err_prefix(b->err, "backend check, %s%s", what, how);
			break;
		}
		if (memcmp(want, got, part)) {
			size_t k = 0;
			while (want[k] == got[k])
				k++;
			rc = sd_err(b->err, -EIO, "backend check: %s (rows %llu..%llu%s) differs from the CPU at byte %zu of %zu",
				    what, (unsigned long long)r0, (unsigned long long)rows, how, k, part);
		}
	}
out:
	free(want);
	free(got);
	return rc;
}

/* rx_src over a new tensor: the node, or a negative errno. */
static int src(struct bc *b, struct recipe *r, enum sd_dtype dt, int ndim,
	       const uint64_t *shape, bool every)
{
	int t = tensor(b, dt, ndim, shape, every);

	return t < 0 ? t : memsrc_src(&b->mem, r, (uint32_t)t, b->err);
}

#define SHAPE(...) (const uint64_t[]){ __VA_ARGS__ }
#define NDIM(...) (int)(sizeof((const uint64_t[]){ __VA_ARGS__ }) / sizeof(uint64_t))
#define SRC(r, dt, every, ...) src(b, r, dt, NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__), every)

static int build(struct bc *b, struct recipe *r, int k, const char **what, unsigned *passes)
{
	int x, y = 0, xs[2];

	switch (k) {
	case 0:
		*what = "transpose_last2 of BF16 [3, 40, 72]";
		x = SRC(r, SD_BF16, false, 3, 40, 72);
		return x < 0 ? x : rx_transpose_last2(r, x, b->err);
	case 1:
		*what = "transpose_last2 of F32 [72, 40], cast to BF16";
		x = SRC(r, SD_F32, false, 72, 40);
		if (x >= 0)
			x = rx_transpose_last2(r, x, b->err);
		return x < 0 ? x : rx_cast(r, x, SD_BF16, b->err);
	case 2:
		*what = "cast of every BF16 pattern to F32";
		x = SRC(r, SD_BF16, true, 256, 256);
		return x < 0 ? x : rx_cast(r, x, SD_F32, b->err);
	case 3:
		*what = "cast of every F16 pattern to BF16";
		x = SRC(r, SD_F16, true, 256, 256);
		return x < 0 ? x : rx_cast(r, x, SD_BF16, b->err);
	case 4:
		*what = "cast of random F32 to F16";
		x = SRC(r, SD_F32, false, 64, 256);
		return x < 0 ? x : rx_cast(r, x, SD_F16, b->err);
	case 5:         /* two experts' gate and up, as the native merge does */
		*what = "stack0 of concat_last of transposes (gate_and_up)";
		for (int e = 0; e < 2; e++) {
			if ((x = SRC(r, SD_BF16, false, 24, 40)) < 0 ||
			    (x = rx_transpose_last2(r, x, b->err)) < 0 ||
			    (y = SRC(r, SD_BF16, false, 24, 40)) < 0 ||
			    (y = rx_transpose_last2(r, y, b->err)) < 0 ||
			    (xs[e] = rx_concat_last(r, (int[]){ x, y }, 2, b->err)) < 0)
				return x < 0 ? x : y < 0 ? y : xs[e];
		}
		return rx_stack0(r, xs, 2, b->err);
	case 6:
		*what = "index0, slice_last, reshape and slice0";
		x = SRC(r, SD_BF16, false, 6, 10, 12);
		if (x >= 0)
			x = rx_index0(r, x, 2, b->err);
		if (x >= 0)
			x = rx_slice_last(r, x, 3, 9, b->err);
		if (x >= 0)
			x = rx_reshape(r, x, 2, SHAPE(6, 10), b->err);
		return x < 0 ? x : rx_slice0(r, x, 1, 5, b->err);
	case 7:
		*what = "dequant_fp8_block of F8_E4M3 [130, 260] to BF16";
		x = SRC(r, SD_F8_E4M3, false, 130, 260);
		y = SRC(r, SD_F32, false, 2, 3);
		return x < 0 ? x : y < 0 ? y : rx_dequant_fp8_block(r, x, y, SD_BF16, b->err);
	case 8:
		*what = "dequant_mxfp4 of U8 [2, 4, 3, 16] to BF16";
		x = SRC(r, SD_U8, false, 2, 4, 3, 16);
		y = SRC(r, SD_U8, false, 2, 4, 3);
		return x < 0 ? x : y < 0 ? y : rx_dequant_mxfp4(r, x, y, SD_BF16, b->err);
	/* Larger ones, each compared once: in row batches of a third, still
	 * more elements than one wave of an H100's threads (270336). */
	case 9:         /* 4 MiB out, 2 in: more than a pool's first block */
		*what = "cast of random F16 [1024, 1024] to F32 (grid-stride, pool growth)";
		*passes = FROM_ROW_1;
		x = SRC(r, SD_F16, false, 1024, 1024);
		return x < 0 ? x : rx_cast(r, x, SD_F32, b->err);
	case 10:        /* grids hold at most 65535 matrices: whole, or it fits */
		*what = "transpose_last2 of BF16 [65600, 2, 3] (in groups of 65535 matrices)";
		*passes = WHOLE;
		x = SRC(r, SD_BF16, false, 65600, 2, 3);
		return x < 0 ? x : rx_transpose_last2(r, x, b->err);
	case 11:
		*what = "dequant_fp8_block of F8_E4M3 [1100, 1000] to F16 (grid-stride)";
		*passes = FROM_ROW_1;
		x = SRC(r, SD_F8_E4M3, false, 1100, 1000);
		y = SRC(r, SD_F32, false, 9, 8);
		return x < 0 ? x : y < 0 ? y : rx_dequant_fp8_block(r, x, y, SD_F16, b->err);
	}
	return -ENOENT;
}

int backend_check(rx_eval_fn eval, rx_eval_fn batched, char *err)
{
	struct bc *b = calloc(1, sizeof(*b));
	int rc = 0;

	if (!b)
		return sd_err(err, -ENOMEM, "out of memory");
	memsrc_init(&b->mem, 0x5daf5);
	b->err = err;
	for (int k = 0; rc == 0; k++) {
		struct recipe r;
		const char *what = "";
		unsigned passes = WHOLE | FROM_ROW_1;
		memset(&r, 0, sizeof(r));
		rc = build(b, &r, k, &what, &passes);
		if (rc == -ENOENT) {
			rc = 0;
			break;
		}
		if (rc >= 0)
			rc = compare(b, &r, what, passes, eval, batched);
		recipe_free(&r);
	}
	memsrc_free(&b->mem);
	free(b);
	return rc;
}
