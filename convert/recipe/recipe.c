/*
 * recipe.c — building, checking and printing recipes (see recipe.h).
 *
 * Builders check shapes as they go, so a recipe that exists is a recipe that
 * can be evaluated: the evaluator never meets a shape it cannot handle.
 */
#include "recipe.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "grow.h"
#include "quant.h"

static int push_node(struct recipe *r, const struct rx_node *n,
		     const int *kids, uint32_t nkids, char *err)
{
	int rc;

	if (r->nnodes >= INT32_MAX - 1)
		return sd_err(err, -E2BIG, "recipe too large");
	if ((rc = sd_grow(&r->nodes, &r->cap, (size_t)r->nnodes + 1, sizeof(*r->nodes), err)) < 0 ||
	    (rc = sd_grow(&r->kids, &r->kidcap, (size_t)r->nkids + nkids, sizeof(*r->kids), err)) < 0)
		return rc;
	r->nodes[r->nnodes] = *n;
	r->nodes[r->nnodes].kids = r->nkids;
	r->nodes[r->nnodes].nkids = nkids;
	for (uint32_t i = 0; i < nkids; i++)
		r->kids[r->nkids++] = (uint32_t)kids[i];
	return (int)r->nnodes++;
}

static const struct rx_node *node(const struct recipe *r, int i)
{
	return &r->nodes[i];
}

uint64_t rx_rows(const struct rx_node *n)
{
	return n->ndim == 0 ? 1 : n->shape[0];
}

static uint64_t elems(const struct rx_node *n)
{
	uint64_t e = 1;

	for (int i = 0; i < n->ndim; i++)
		e *= n->shape[i];
	return e;
}

uint64_t rx_row_bytes(const struct rx_node *n)
{
	uint64_t rows = rx_rows(n);

	return rows ? elems(n) / rows * dtype_size(n->dtype) : 0;
}

int rx_src(struct recipe *r, uint32_t tensor, enum sd_dtype dt, int ndim,
	   const uint64_t *shape, char *err)
{
	struct rx_node n = { .op = RX_SRC, .dtype = dt, .ndim = ndim, .a = tensor };

	if (ndim < 0 || ndim > ST_MAX_DIMS)
		return sd_err(err, -EINVAL, "source tensor %" PRIu32 ": %d dims (at most %d)",
			      tensor, ndim, ST_MAX_DIMS);
	memcpy(n.shape, shape, (size_t)ndim * sizeof(*shape));
	return push_node(r, &n, NULL, 0, err);
}

int rx_cast(struct recipe *r, int x, enum sd_dtype to, char *err)
{
	struct rx_node n = *node(r, x);

	if (!dtype_is_castable_float(n.dtype) || !dtype_is_castable_float(to))
		return sd_err(err, -EINVAL, "cannot cast %s to %s",
			      dtype_name(n.dtype), dtype_name(to));
	n.op = RX_CAST;
	n.dtype = to;
	return push_node(r, &n, &x, 1, err);
}

int rx_transpose_last2(struct recipe *r, int x, char *err)
{
	struct rx_node n = *node(r, x);

	if (n.ndim < 2)
		return sd_err(err, -EINVAL, "cannot transpose a tensor of %d dims", n.ndim);
	n.op = RX_TRANSPOSE_LAST2;
	n.shape[n.ndim - 1] = node(r, x)->shape[n.ndim - 2];
	n.shape[n.ndim - 2] = node(r, x)->shape[n.ndim - 1];
	return push_node(r, &n, &x, 1, err);
}

static bool same_shape(const struct rx_node *a, const struct rx_node *b,
		       int upto)
{
	if (a->ndim != b->ndim || a->dtype != b->dtype)
		return false;
	for (int i = 0; i < upto; i++)
		if (a->shape[i] != b->shape[i])
			return false;
	return true;
}

static void fmt_shape(const struct rx_node *n, char *buf, size_t len)
{
	size_t o = (size_t)snprintf(buf, len, "%s[", dtype_name(n->dtype));

	for (int i = 0; i < n->ndim && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, i ? ",%" PRIu64 : "%" PRIu64,
				      n->shape[i]);
	if (o < len)
		snprintf(buf + o, len - o, "]");
}

static int mismatch(const struct recipe *r, const char *op, int a, int b,
		    char *err)
{
	char sa[128], sb[128];

	fmt_shape(node(r, a), sa, sizeof(sa));
	fmt_shape(node(r, b), sb, sizeof(sb));
	return sd_err(err, -EINVAL, "%s: parts do not fit together: %s vs %s",
		      op, sa, sb);
}

int rx_concat_last(struct recipe *r, const int *xs, uint32_t n, char *err)
{
	if (n == 0)
		return sd_err(err, -EINVAL, "concat_last of nothing");
	struct rx_node out = *node(r, xs[0]);
	if (out.ndim < 1)
		return sd_err(err, -EINVAL, "concat_last of scalars");
	out.op = RX_CONCAT_LAST;
	for (uint32_t i = 1; i < n; i++) {
		if (!same_shape(node(r, xs[0]), node(r, xs[i]), out.ndim - 1))
			return mismatch(r, "concat_last", xs[0], xs[i], err);
		out.shape[out.ndim - 1] += node(r, xs[i])->shape[out.ndim - 1];
	}
	return push_node(r, &out, xs, n, err);
}

int rx_stack0(struct recipe *r, const int *xs, uint32_t n, char *err)
{
	if (n == 0)
		return sd_err(err, -EINVAL, "stack0 of nothing");
	struct rx_node out = *node(r, xs[0]);
	if (out.ndim + 1 > ST_MAX_DIMS)
		return sd_err(err, -EINVAL, "stack0: too many dims");
	for (uint32_t i = 1; i < n; i++)
		if (!same_shape(node(r, xs[0]), node(r, xs[i]), out.ndim))
			return mismatch(r, "stack0", xs[0], xs[i], err);
	out.op = RX_STACK0;
	memmove(out.shape + 1, out.shape, (size_t)out.ndim * sizeof(out.shape[0]));
	out.shape[0] = n;
	out.ndim++;
	return push_node(r, &out, xs, n, err);
}

int rx_index0(struct recipe *r, int x, uint64_t k, char *err)
{
	struct rx_node out = *node(r, x);

	if (out.ndim < 1 || k >= out.shape[0])
		return sd_err(err, -EINVAL, "index0: index %" PRIu64 " out of range", k);
	out.op = RX_INDEX0;
	out.a = k;
	memmove(out.shape, out.shape + 1, (size_t)(out.ndim - 1) * sizeof(out.shape[0]));
	out.ndim--;
	return push_node(r, &out, &x, 1, err);
}

static int slice(struct recipe *r, int x, uint64_t a, uint64_t b, int dim,
		 enum rx_op op, char *err)
{
	struct rx_node out = *node(r, x);

	if (out.ndim < 1 || a > b || b > out.shape[dim])
		return sd_err(err, -EINVAL, "slice [%" PRIu64 ", %" PRIu64 ") out of range",
			      a, b);
	out.op = op;
	out.a = a;
	out.b = b;
	out.shape[dim] = b - a;
	return push_node(r, &out, &x, 1, err);
}

int rx_slice0(struct recipe *r, int x, uint64_t a, uint64_t b, char *err)
{
	return slice(r, x, a, b, 0, RX_SLICE0, err);
}

int rx_slice_last(struct recipe *r, int x, uint64_t a, uint64_t b, char *err)
{
	return slice(r, x, a, b, node(r, x)->ndim - 1, RX_SLICE_LAST, err);
}

int rx_reshape(struct recipe *r, int x, int ndim, const uint64_t *shape,
	       char *err)
{
	struct rx_node out = *node(r, x);
	uint64_t e = 1;

	if (ndim < 0 || ndim > ST_MAX_DIMS)
		return sd_err(err, -EINVAL, "reshape: %d dims", ndim);
	for (int i = 0; i < ndim; i++) {
		if (shape[i] && e > UINT64_MAX / shape[i])
			return sd_err(err, -EINVAL, "reshape: shape overflows");
		e *= shape[i];
	}
	if (e != elems(&out)) {
		char s0[128];
		fmt_shape(&out, s0, sizeof(s0));
		return sd_err(err, -EINVAL, "reshape: %s does not have %" PRIu64 " elements",
			      s0, e);
	}
	out.op = RX_RESHAPE;
	out.ndim = ndim;
	memset(out.shape, 0, sizeof(out.shape));
	memcpy(out.shape, shape, (size_t)ndim * sizeof(*shape));
	return push_node(r, &out, &x, 1, err);
}

/* Dequantizing builders: the output dtype must be one cast() can write,
 * since the F32 products are cast to it. */
static int check_dequant_to(const char *op, enum sd_dtype to, char *err)
{
	if (!dtype_is_castable_float(to))
		return sd_err(err, -EINVAL, "%s: cannot produce %s (F16, BF16, F32 or F64)",
			      op, dtype_name(to));
	return 0;
}

int rx_dequant_fp8_block(struct recipe *r, int q, int scale, enum sd_dtype to,
			 char *err)
{
	const struct rx_node *w = node(r, q), *s = node(r, scale);
	struct rx_node out = *w;
	char sw[128], ss[128];
	int rc;

	if ((rc = check_dequant_to("dequant_fp8_block", to, err)) < 0)
		return rc;
	fmt_shape(w, sw, sizeof(sw));
	fmt_shape(s, ss, sizeof(ss));
	if (w->dtype != SD_F8_E4M3 || w->ndim != 2)
		return sd_err(err, -EINVAL, "dequant_fp8_block: the weight is %s, "
			      "not a 2-D F8_E4M3 matrix", sw);
	uint64_t brows = (w->shape[0] + SD_FP8_BLOCK - 1) / SD_FP8_BLOCK;
	uint64_t bcols = (w->shape[1] + SD_FP8_BLOCK - 1) / SD_FP8_BLOCK;
	if (s->dtype != SD_F32 || s->ndim != 2 || s->shape[0] != brows ||
	    s->shape[1] != bcols)
		return sd_err(err, -EINVAL, "dequant_fp8_block: the scales are %s; "
			      "a weight %s in %ux%u blocks needs F32[%" PRIu64 ",%" PRIu64 "]",
			      ss, sw, SD_FP8_BLOCK, SD_FP8_BLOCK, brows, bcols);
	out.op = RX_DEQUANT_FP8;
	out.dtype = to;
	return push_node(r, &out, (const int[]){ q, scale }, 2, err);
}

int rx_dequant_mxfp4(struct recipe *r, int blocks, int scales, enum sd_dtype to,
		     char *err)
{
	const struct rx_node *b = node(r, blocks), *s = node(r, scales);
	struct rx_node out = *b;
	char sb[128], ss[128];
	int rc;

	if ((rc = check_dequant_to("dequant_mxfp4", to, err)) < 0)
		return rc;
	fmt_shape(b, sb, sizeof(sb));
	fmt_shape(s, ss, sizeof(ss));
	if (b->dtype != SD_U8 || b->ndim < 3)
		return sd_err(err, -EINVAL, "dequant_mxfp4: the blocks are %s, "
			      "not U8 [..., groups, bytes] with at least 3 dims", sb);
	bool fits = (s->dtype == SD_U8 || s->dtype == SD_F8_E8M0) &&
		    s->ndim == b->ndim - 1;
	for (int d = 0; fits && d < s->ndim; d++)
		fits = s->shape[d] == b->shape[d];
	if (!fits)
		return sd_err(err, -EINVAL, "dequant_mxfp4: the scales are %s; blocks %s "
			      "need U8 (or F8_E8M0) of their shape without the last dim", ss, sb);
	out.op = RX_DEQUANT_MXFP4;
	out.dtype = to;
	out.ndim = b->ndim - 1;
	out.shape[out.ndim - 1] = b->shape[b->ndim - 2] * b->shape[b->ndim - 1] * 2;
	out.shape[b->ndim - 1] = 0;
	return push_node(r, &out, (const int[]){ blocks, scales }, 2, err);
}

int rx_append(struct recipe *r, const struct recipe *src, char *err)
{
	uint32_t base = r->nnodes;
	int *kids = malloc((src->nkids ? src->nkids : 1) * sizeof(int));
	int x = -EINVAL;

	if (!kids)
		return sd_err(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < src->nnodes; i++) {
		const struct rx_node *n = &src->nodes[i];
		for (uint32_t k = 0; k < n->nkids; k++)
			kids[k] = (int)(src->kids[n->kids + k] + base);
		if ((x = push_node(r, n, kids, n->nkids, err)) < 0)
			break;
	}
	free(kids);
	return x;
}

bool recipe_equal(const struct recipe *a, const struct recipe *b)
{
	if (a->nnodes != b->nnodes || a->nkids != b->nkids ||
	    memcmp(a->kids, b->kids, a->nkids * sizeof(*a->kids)))
		return false;
	for (uint32_t i = 0; i < a->nnodes; i++) {
		const struct rx_node *x = &a->nodes[i], *y = &b->nodes[i];
		if (x->op != y->op || x->dtype != y->dtype || x->ndim != y->ndim ||
		    x->nkids != y->nkids || x->kids != y->kids || x->a != y->a ||
		    x->b != y->b || memcmp(x->shape, y->shape, (size_t)x->ndim * sizeof(*x->shape)))
			return false;
	}
	return true;
}

void recipe_free(struct recipe *r)
{
	free(r->nodes);
	free(r->kids);
	memset(r, 0, sizeof(*r));
}

bool rx_row_separable(const struct recipe *r, uint32_t i)
{
	const struct rx_node *n = &r->nodes[i];

	switch (n->op) {
	case RX_SRC:
	case RX_STACK0:         /* children are produced whole anyway */
		return true;
	case RX_TRANSPOSE_LAST2:
		return n->ndim >= 3 && rx_row_separable(r, r->kids[n->kids]);
	case RX_RESHAPE:        /* rows of it are a byte range of the child */
		return rx_rows(n) <= 1 || rx_row_separable(r, r->kids[n->kids]);
	case RX_INDEX0:         /* all of its rows are one row of the child, which
				 * a parent taking them a block at a time (a 2-D
				 * transpose of an expert) would read once a block */
		return false;
	default:
		for (uint32_t k = 0; k < n->nkids; k++)
			if (!rx_row_separable(r, r->kids[n->kids + k]))
				return false;
		return true;
	}
}

/* --- text form ----------------------------------------------------------- */

struct fmtbuf { char *buf; size_t len, used; };

static void put(struct fmtbuf *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct fmtbuf *f, const char *fmt, ...)
{
	va_list ap;
	size_t room = f->used < f->len ? f->len - f->used : 0;

	va_start(ap, fmt);
	int n = vsnprintf(room ? f->buf + f->used : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		f->used += (size_t)n;
}

static const char *const op_names[] = {
	[RX_SRC] = "src", [RX_CAST] = "cast",
	[RX_TRANSPOSE_LAST2] = "transpose_last2", [RX_CONCAT_LAST] = "concat_last",
	[RX_STACK0] = "stack0", [RX_INDEX0] = "index0", [RX_SLICE0] = "slice0",
	[RX_SLICE_LAST] = "slice_last", [RX_RESHAPE] = "reshape",
	[RX_DEQUANT_FP8] = "dequant_fp8_block", [RX_DEQUANT_MXFP4] = "dequant_mxfp4",
};

struct fmt {
	const struct recipe *r;
	rx_name_fn name;
	const void *arg;
	bool full;
};

static void fmt_node(const struct fmt *x, uint32_t i, struct fmtbuf *f)
{
	const struct recipe *r = x->r;
	const struct rx_node *n = &r->nodes[i];

	if (n->op == RX_SRC) {
		put(f, "src(\"%s\")", x->name(x->arg, (uint32_t)n->a));
		return;
	}
	put(f, "%s(", op_names[n->op]);
	uint32_t shown = n->nkids;
	if (!x->full && n->nkids > 3)
		shown = 2;
	for (uint32_t k = 0; k < shown; k++) {
		if (k)
			put(f, ", ");
		fmt_node(x, r->kids[n->kids + k], f);
	}
	if (shown < n->nkids) {
		put(f, ", ... %u more ..., ", n->nkids - shown - 1);
		fmt_node(x, r->kids[n->kids + n->nkids - 1], f);
	}
	switch (n->op) {
	case RX_CAST:
	case RX_DEQUANT_FP8:
	case RX_DEQUANT_MXFP4:
		put(f, ", %s)", dtype_name(n->dtype));
		break;
	case RX_INDEX0:
		put(f, ", %" PRIu64 ")", n->a);
		break;
	case RX_SLICE0:
	case RX_SLICE_LAST:
		put(f, ", %" PRIu64 ", %" PRIu64 ")", n->a, n->b);
		break;
	case RX_RESHAPE:
		for (int d = 0; d < n->ndim; d++)
			put(f, d ? ",%" PRIu64 : ", [%" PRIu64, n->shape[d]);
		put(f, n->ndim ? "])" : ", [])");
		break;
	default:
		put(f, ")");
	}
}

size_t recipe_format(const struct recipe *r, rx_name_fn name, const void *arg,
		     bool full, char *buf, size_t len)
{
	struct fmtbuf f = { buf, len, 0 };
	struct fmt x = { r, name, arg, full };

	if (len)
		buf[0] = '\0';
	fmt_node(&x, r->nnodes - 1, &f);
	return f.used;
}
