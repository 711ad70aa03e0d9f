/*
 * recipe_cuda.c — the CUDA evaluator (see gpu.h).
 *
 * Evaluation mirrors recipe_cpu.c node by node: a node asked for rows
 * [r0, r1) asks its children for the rows it needs, here into device
 * buffers, through the same arithmetic (rx_index.h); the kernels run the
 * thread functions of kernel_math.h.  Source rows are read on the CPU by the
 * reader into pinned staging and copied up asynchronously; the root comes
 * back into pinned staging and is copied out.  Every worker thread has its
 * own stream and pools (gpu_life.c), so the chunks different threads
 * convert overlap their copies and kernels; a chunk's copies and kernels are
 * queued without waits and the stream is drained once.
 *
 * This file is plain C: every CUDA call goes through gpu_api(), so the
 * tests run all of it against a device in host memory (tests/unit/
 * gpu_fake.c).  A chunk whose memory cannot be had is done again in halves
 * of its rows, down to one row, before the CPU is asked to take it.
 */
#include "gpu.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "gpu_api.h"
#include "gpu_life.h"
#include "kernel_math.h"
#include "recipe.h"
#include "rx_index.h"

struct gev {
	const struct recipe *r;
	const struct rx_reader *rd;
	struct gpu_ctx *c;
	const struct gpu_api *api;
	char *err;
};

static int geval(struct gev *g, uint32_t i, uint64_t r0, uint64_t r1, char *d);

static bool gpu_dtype(enum sd_dtype t)
{
	return t == SD_BF16 || t == SD_F16 || t == SD_F32;
}

bool gpu_supports(const struct recipe *r)
{
	for (uint32_t i = 0; i < r->nnodes; i++) {
		const struct rx_node *n = &r->nodes[i];
		const struct rx_node *c = n->nkids ? &r->nodes[r->kids[n->kids]] : NULL;
		if (n->op == RX_CAST && !(gpu_dtype(n->dtype) && gpu_dtype(c->dtype)))
			return false;
		if ((n->op == RX_DEQUANT_FP8 || n->op == RX_DEQUANT_MXFP4) && !gpu_dtype(n->dtype))
			return false;
	}
	return true;
}

/* e from a CUDA call: 0, or its errno (gpu_error). */
static int check(struct gev *g, int e, const char *what)
{
	return e == GPU_OK ? 0 : gpu_error(e, what, g->err);
}

static uint32_t kid_of(const struct gev *g, const struct rx_node *n, uint32_t k)
{
	return g->r->kids[n->kids + k];
}

static const struct rx_node *kid_node(const struct gev *g, const struct rx_node *n, uint32_t k)
{
	return &g->r->nodes[kid_of(g, n, k)];
}

static int dtemp(struct gev *g, uint64_t bytes, char **p)
{
	return gpu_device_get(g->c, bytes, p, g->err);
}

static int copy2d(struct gev *g, char *d, const char *s, struct rx_copy2d c, const char *what)
{
	if (!c.width || !c.height)
		return 0;
	return check(g, g->api->copy2d(d + c.dst_off, (size_t)c.dst_pitch, s + c.src_off,
				       (size_t)c.src_pitch, (size_t)c.width, (size_t)c.height,
				       GPU_DEVICE_TO_DEVICE, g->c->stream), what);
}

/* Part p of child kid into d: straight into place when it is whole child
 * rows, else through a device buffer, trimmed (as recipe_cpu.c's eval_part). */
static int gpart(struct gev *g, uint32_t kid, struct rx_part p, char *d)
{
	uint64_t cb = rx_row_bytes(&g->r->nodes[kid]);
	char *t;
	int rc;

	if (p.skip == 0 && p.len == (p.c1 - p.c0) * cb)
		return geval(g, kid, p.c0, p.c1, d + p.dst_off);
	if ((rc = dtemp(g, (p.c1 - p.c0) * cb, &t)) < 0 ||
	    (rc = geval(g, kid, p.c0, p.c1, t)) < 0)
		return rc;
	return check(g, g->api->copy(d + p.dst_off, t + p.skip, (size_t)p.len,
				     GPU_DEVICE_TO_DEVICE, g->c->stream), "copying rows");
}

/* One step of a layout node (rx_index.h) into device buffer d. */
struct gpu_step {
	struct gev *g;
	char *d;
};

static int take_step(void *arg, const struct rx_step *s)
{
	struct gpu_step *x = arg;
	char *t;
	int rc;

	if (!s->strided)
		return gpart(x->g, s->kid, s->part, x->d);
	if ((rc = dtemp(x->g, s->part.len, &t)) < 0 ||
	    (rc = geval(x->g, s->kid, s->part.c0, s->part.c1, t)) < 0)
		return rc;
	return copy2d(x->g, x->d, t, s->copy, "strided copy");
}

/* Source rows: the reader puts them (chunked sources included) into pinned
 * staging, and the copy up is queued on the stream. */
static int gsrc(struct gev *g, const struct rx_node *n, uint64_t r0, uint64_t r1, char *d)
{
	uint64_t bytes = (r1 - r0) * rx_row_bytes(n);
	char *h;
	int rc;

	if ((rc = gpu_pinned_get(g->c, bytes, &h, g->err)) < 0 ||
	    (rc = g->rd->rows(g->rd->arg, (uint32_t)n->a, r0, r1, h, g->err)) < 0)
		return rc;
	return check(g, g->api->copy(d, h, (size_t)bytes, GPU_HOST_TO_DEVICE, g->c->stream),
		     "copying source rows up");
}

static int gcast(struct gev *g, const struct rx_node *n, uint64_t r0, uint64_t r1, char *d)
{
	const struct rx_node *c = kid_node(g, n, 0);
	uint64_t count = (r1 - r0) * rx_row_bytes(n) / dtype_size(n->dtype);
	struct kx_cast a;
	char *t;
	int rc;

	if (c->dtype == n->dtype)
		return geval(g, kid_of(g, n, 0), r0, r1, d);
	if ((rc = dtemp(g, count * dtype_size(c->dtype), &t)) < 0 ||
	    (rc = geval(g, kid_of(g, n, 0), r0, r1, t)) < 0)
		return rc;
	a = (struct kx_cast){ d, t, (int)n->dtype, (int)c->dtype, count };
	return check(g, g->api->cast(a, kx_blocks(count, gpu_max_blocks()), g->c->stream),
		     "cast kernel");
}

static int gtranspose(struct gev *g, const struct rx_node *n, uint64_t r0, uint64_t r1, char *d)
{
	const struct rx_node *c = kid_node(g, n, 0);
	unsigned es = (unsigned)dtype_size(n->dtype);
	uint64_t R = c->shape[c->ndim - 2], C = c->shape[c->ndim - 1];
	struct kx_transpose a = { R, C, 0, C, R * C, R * C };
	uint64_t batches = 1, nb, so, dof;
	char *t;
	int rc;

	/* before anything is read or copied: the CPU will take it whole */
	if (kx_transpose_too_tall(R))
		return sd_err(g->err, -ENOTSUP, "transpose of %llu rows is too tall for one grid",
			      (unsigned long long)R);
	if (n->ndim == 2) {     /* output rows are input columns: all input rows */
		a.c0 = r0;
		a.cw = r1 - r0;
		if ((rc = dtemp(g, R * C * es, &t)) < 0 ||
		    (rc = geval(g, kid_of(g, n, 0), 0, R, t)) < 0)
			return rc;
	} else {
		batches = (r1 - r0) * (rx_row_bytes(n) / (R * C * es));
		if ((rc = dtemp(g, batches * R * C * es, &t)) < 0 ||
		    (rc = geval(g, kid_of(g, n, 0), r0, r1, t)) < 0)
			return rc;
	}
	for (uint64_t b0 = 0; b0 < batches; b0 += nb) {
		kx_transpose_group(a, batches, b0, &nb, &so, &dof);
		if ((rc = check(g, g->api->transpose(a, es, kx_transpose_grid(a, nb), t + so * es,
						     d + dof * es, g->c->stream),
				"transpose kernel")) < 0)
			return rc;
	}
	return 0;
}

static int gdequant_fp8(struct gev *g, const struct rx_node *n, uint64_t r0, uint64_t r1, char *d)
{
	uint64_t cols = n->shape[1], bcols = kid_node(g, n, 1)->shape[1];
	uint64_t s0 = r0 / SD_FP8_BLOCK, s1 = (r1 - 1) / SD_FP8_BLOCK + 1;
	char *q, *s;
	int rc;

	if ((rc = dtemp(g, (r1 - r0) * cols, &q)) < 0 ||
	    (rc = dtemp(g, (s1 - s0) * bcols * 4, &s)) < 0 ||
	    (rc = geval(g, kid_of(g, n, 0), r0, r1, q)) < 0 ||
	    (rc = geval(g, kid_of(g, n, 1), s0, s1, s)) < 0)
		return rc;
	struct kx_fp8 a = { d, (const uint8_t *)q, (const float *)s, (int)n->dtype,
			    r1 - r0, cols, bcols, r0, s0 };
	return check(g, g->api->dequant_fp8(a, kx_blocks((r1 - r0) * cols, gpu_max_blocks()),
					    g->c->stream), "dequant_fp8_block kernel");
}

static int gdequant_mxfp4(struct gev *g, const struct rx_node *n, uint64_t r0, uint64_t r1, char *d)
{
	const struct rx_node *b = kid_node(g, n, 0), *s = kid_node(g, n, 1);
	uint64_t bytes = b->shape[b->ndim - 1];
	uint64_t groups = (r1 - r0) * rx_row_bytes(s);
	char *bb, *sb;
	int rc;

	if ((rc = dtemp(g, groups * bytes, &bb)) < 0 || (rc = dtemp(g, groups, &sb)) < 0 ||
	    (rc = geval(g, kid_of(g, n, 0), r0, r1, bb)) < 0 ||
	    (rc = geval(g, kid_of(g, n, 1), r0, r1, sb)) < 0)
		return rc;
	struct kx_mxfp4 a = { d, (const uint8_t *)bb, (const uint8_t *)sb, (int)n->dtype, groups, bytes };
	return check(g, g->api->dequant_mxfp4(a, kx_blocks(groups * bytes, gpu_max_blocks()),
					      g->c->stream), "dequant_mxfp4 kernel");
}

static int geval(struct gev *g, uint32_t i, uint64_t r0, uint64_t r1, char *d)
{
	const struct rx_node *n = &g->r->nodes[i];
	uint64_t rb = rx_row_bytes(n);

	if (r0 >= r1 || rb == 0)
		return 0;
	switch (n->op) {
	case RX_SRC:
		return gsrc(g, n, r0, r1, d);
	case RX_CAST:
		return gcast(g, n, r0, r1, d);
	case RX_STACK0:
	case RX_INDEX0:
	case RX_SLICE0:
	case RX_SLICE_LAST:
	case RX_CONCAT_LAST:
	case RX_RESHAPE:
		return rx_layout_steps(g->r, n, r0, r1, take_step, &(struct gpu_step){ g, d });
	case RX_TRANSPOSE_LAST2:
		return gtranspose(g, n, r0, r1, d);
	case RX_DEQUANT_FP8:
		return gdequant_fp8(g, n, r0, r1, d);
	case RX_DEQUANT_MXFP4:
		return gdequant_mxfp4(g, n, r0, r1, d);
	}
	return sd_err(g->err, -EINVAL, "unknown recipe operation %d", (int)n->op);
}

/* Rows [r0, r1) in one go: device result, copy down, drain, copy out. */
static int eval_batch(struct gev *g, uint64_t r0, uint64_t r1, char *dst)
{
	uint64_t len = (r1 - r0) * rx_row_bytes(rx_root(g->r));
	char *dev, *host;
	int rc, e;

	if ((rc = dtemp(g, len, &dev)) == 0 &&
	    (rc = gpu_pinned_get(g->c, len, &host, g->err)) == 0 &&
	    (rc = geval(g, g->r->nnodes - 1, r0, r1, dev)) == 0)
		rc = check(g, g->api->copy(host, dev, (size_t)len, GPU_DEVICE_TO_HOST, g->c->stream),
			   "copying the result down");
	/* Always drain the stream: the pools are reused by the next batch. */
	if ((e = g->api->stream_sync(g->c->stream)) != GPU_OK) {
		char why[SD_ERRLEN];
		int rc2 = gpu_error(e, "converting", why);
		if (rc == 0 || rc2 == -ENODEV) {
			rc = rc2;
			if (g->err)
				memcpy(g->err, why, sizeof(why));
		}
	}
	if (rc == 0)
		memcpy(dst, host, (size_t)len);
	gpu_pool_reset(&g->c->dev);
	gpu_pool_reset(&g->c->pin);
	return rc;
}

/* Rows [r0, r1), in halves (and halves of those) while memory runs out. */
static int eval_rows(struct gev *g, uint64_t r0, uint64_t r1, char *dst)
{
	uint64_t mid = r0 + (r1 - r0) / 2;
	int rc = eval_batch(g, r0, r1, dst);

	if (rc != -ENOMEM || r1 - r0 < 2)
		return rc;
	gpu_count_split();
	if ((rc = eval_rows(g, r0, mid, dst)) < 0)
		return rc;
	return eval_rows(g, mid, r1, dst + (mid - r0) * rx_row_bytes(rx_root(g->r)));
}

/* recipe_eval_cuda in batches of at most `rows` rows (0: all at once). */
static int eval_cuda(const struct recipe *r, uint64_t r0, uint64_t r1, void *dst,
		     const struct rx_reader *rd, uint64_t rows, char *err)
{
	struct gev g = { r, rd, NULL, NULL, err };
	uint64_t rb = rx_row_bytes(rx_root(r));
	int rc = 0;

	if (!gpu_supports(r))
		return sd_err(err, -ENOTSUP, "the CUDA backend does not evaluate this recipe (F64)");
	if (r0 >= r1 || rb == 0)
		return 0;
	if ((rc = gpu_enter(&g.c, err)) < 0)
		return rc;
	g.api = gpu_api();
	if (!rows)
		rows = r1 - r0;
	for (uint64_t a = r0; a < r1 && rc == 0; a += rows) {
		uint64_t b = r1 - a < rows ? r1 : a + rows;
		rc = eval_rows(&g, a, b, (char *)dst + (a - r0) * rb);
	}
	gpu_leave(g.c);
	return rc;
}

int recipe_eval_cuda(const struct recipe *r, uint64_t r0, uint64_t r1, void *dst,
		     const struct rx_reader *rd, char *err)
{
	return eval_cuda(r, r0, r1, dst, rd, 0, err);
}

int recipe_eval_cuda_batched(const struct recipe *r, uint64_t r0, uint64_t r1, void *dst,
			     const struct rx_reader *rd, char *err)
{
	return eval_cuda(r, r0, r1, dst, rd, r1 > r0 ? (r1 - r0 + 2) / 3 : 0, err);
}
