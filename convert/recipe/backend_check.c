/*
 * backend_check.c — comparing a backend with the CPU's bytes (see
 * backend_check.h).
 *
 * The cases are small (well under a megabyte in all) so a mount pays
 * milliseconds for them, but each reaches a different kernel: both
 * transpose shapes, every float cast (every BF16 and F16 bit pattern among
 * the inputs), the gated expert merge, index/slices/reshape, FP8 block
 * dequantization across a ragged block edge, and MXFP4.  Part of each
 * case is evaluated from a row other than 0, so row offsets are compared
 * too.
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

/* The root of r evaluated by both, whole and from row 1; 0 when equal. */
static int compare(struct bc *b, const struct recipe *r, const char *what, rx_eval_fn eval)
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
		size_t part = (size_t)((rows - r0) * rb);
		memset(got, 0xA5, part);
		if ((rc = recipe_eval_cpu(r, r0, rows, want, &rd, b->err)) < 0)
			break;
		if ((rc = eval(r, r0, rows, got, &rd, b->err)) < 0) {
			sd_err_prefix(b->err, "backend check, %s", what);
			break;
		}
		if (memcmp(want, got, part)) {
			size_t k = 0;
			while (want[k] == got[k])
				k++;
			rc = sd_err(b->err, -EIO, "backend check: %s (rows %llu..%llu) differs from the CPU at byte %zu of %zu",
				    what, (unsigned long long)r0, (unsigned long long)rows, k, part);
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

static int build(struct bc *b, struct recipe *r, int k, const char **what)
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
	}
	return -ENOENT;
}

int backend_check(rx_eval_fn eval, char *err)
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
		memset(&r, 0, sizeof(r));
		rc = build(b, &r, k, &what);
		if (rc == -ENOENT) {
			rc = 0;
			break;
		}
		if (rc >= 0)
			rc = compare(b, &r, what, eval);
		recipe_free(&r);
	}
	memsrc_free(&b->mem);
	free(b);
	return rc;
}
