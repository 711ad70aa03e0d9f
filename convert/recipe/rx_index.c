/*
 * rx_index.c — the steps a layout node's rows are made of (see rx_index.h):
 * which child, which of its rows, and where their bytes go, from the
 * arithmetic in rx_index.h.  Every evaluator takes these steps, so none of
 * them decides on its own which rows a concat or a slice needs.
 */
#include "rx_index.h"

#include <errno.h>
#include <string.h>

#include "recipe.h"

/* concat_last: along dim 0 the rows span children; otherwise each child's
 * runs, for the same rows, go side by side. */
static int concat_steps(const struct recipe *r, const struct rx_node *n, uint64_t r0,
			uint64_t r1, rx_step_fn step, void *arg)
{
	const uint32_t *kids = &r->kids[n->kids];
	uint64_t es = dtype_size(n->dtype), last = n->shape[n->ndim - 1];
	uint64_t base = 0, col = 0, outer = rx_runs(r0, r1, rx_row_bytes(n), last * es);
	struct rx_step s;
	int rc;

	memset(&s, 0, sizeof(s));
	for (uint32_t k = 0; k < n->nkids && (n->ndim > 1 || base < r1); k++) {
		const struct rx_node *c = &r->nodes[kids[k]];
		uint64_t w = c->shape[c->ndim - 1];
		s.kid = kids[k];
		if (n->ndim == 1) {
			s.strided = false;
			rc = rx_concat0_part(base, w, r0, r1, es, &s.part) ? step(arg, &s) : 0;
			base += w;
		} else {
			s.strided = true;
			s.part = (struct rx_part){ r0, r1, 0, outer * w * es, 0 };
			s.copy = rx_concat_last_copy(outer, last, col, w, es);
			rc = step(arg, &s);
			col += w;
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

int rx_layout_steps(const struct recipe *r, const struct rx_node *n, uint64_t r0, uint64_t r1,
		    rx_step_fn step, void *arg)
{
	const uint32_t *kids = &r->kids[n->kids];
	const struct rx_node *c = n->nkids ? &r->nodes[kids[0]] : NULL;
	uint64_t rb = rx_row_bytes(n), es = dtype_size(n->dtype);
	struct rx_step s;
	int rc;

	memset(&s, 0, sizeof(s));
	s.kid = n->nkids ? kids[0] : 0;
	switch (n->op) {
	case RX_CONCAT_LAST:
		return concat_steps(r, n, r0, r1, step, arg);
	case RX_STACK0:         /* row e is child e, whole */
		for (uint64_t e = r0; e < r1; e++) {
			s.kid = kids[e];
			s.part = rx_stack0_part(e, r0, rx_rows(&r->nodes[s.kid]), rb);
			if ((rc = step(arg, &s)) < 0)
				return rc;
		}
		return 0;
	case RX_INDEX0:
		s.part = rx_index0_part(n->a, r0, r1, rb);
		return step(arg, &s);
	case RX_SLICE0:
		s.part = rx_slice0_part(n->a, r0, r1, rb);
		return step(arg, &s);
	case RX_RESHAPE:
		rx_reshape_part(r0, r1, rb, rx_row_bytes(c), &s.part);
		return step(arg, &s);
	case RX_SLICE_LAST:
		if (n->ndim == 1) {     /* the last dim is the row dim */
			s.part = rx_slice0_part(n->a, r0, r1, rb);
		} else {
			uint64_t cl = c->shape[c->ndim - 1];
			uint64_t outer = rx_runs(r0, r1, rx_row_bytes(c), cl * es);
			s.strided = true;
			s.part = (struct rx_part){ r0, r1, 0, outer * cl * es, 0 };
			s.copy = rx_slice_last_copy(outer, cl, n->a, n->b, es);
		}
		return step(arg, &s);
	default:
		return -EINVAL;
	}
}
