/*
 * rx_index.h — where the bytes of the layout operations come from: the
 * row and offset arithmetic of concat_last, slice_last, slice0, index0,
 * stack0 and reshape, once, for every backend.
 *
 * An evaluator asks a node for rows [r0, r1) and must know which rows to
 * ask each child for and where their bytes land.  That mapping is the whole
 * meaning of these operations, so it lives here as plain functions of
 * numbers (row sizes in bytes, element counts), compiled for the host and,
 * under nvcc, for the device too (SD_HD); rx_layout_steps (rx_index.c)
 * walks a node's children with them.  The CPU evaluator (recipe_cpu.c) and
 * the CUDA evaluator (gpu/recipe_cuda.c) take those steps and differ only in
 * how they move the bytes: memcpy there, cudaMemcpy2DAsync here.
 */
#ifndef SDAFS_RX_INDEX_H
#define SDAFS_RX_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "dtype_scalar.h"       /* SD_HD */

/* A strided byte copy: height runs of width bytes, run i from
 * src + src_off + i * src_pitch to dst + dst_off + i * dst_pitch. */
struct rx_copy2d {
	uint64_t dst_off, dst_pitch;
	uint64_t src_off, src_pitch;
	uint64_t width, height;
};

/* A contiguous part of a child: its rows [c0, c1), of which the bytes from
 * skip on (len of them) are wanted, landing at dst_off. */
struct rx_part {
	uint64_t c0, c1;
	uint64_t skip, len;
	uint64_t dst_off;
};

/* How many runs of run_bytes rows [r0, r1) hold, for nodes whose rows are
 * row_bytes each (a run: one stretch along the last dim). */
SD_HD uint64_t rx_runs(uint64_t r0, uint64_t r1, uint64_t row_bytes, uint64_t run_bytes)
{
	return (r1 - r0) * (row_bytes / run_bytes);
}

/*
 * concat_last along dim 0 (a 1-D concat): rows [r0, r1) span children.
 * Child k holds output rows [base, base + len); *part gets the rows of it
 * in range and where they land (es bytes per row).  False when child k has
 * none of them.
 */
SD_HD bool rx_concat0_part(uint64_t base, uint64_t len, uint64_t r0, uint64_t r1,
			   uint64_t es, struct rx_part *part)
{
	uint64_t a = r0 > base ? r0 - base : 0;
	uint64_t b;

	if (r1 <= base || a >= len)
		return false;
	b = r1 - base < len ? r1 - base : len;
	part->c0 = a;
	part->c1 = b;
	part->skip = 0;
	part->len = (b - a) * es;
	part->dst_off = (base + a - r0) * es;
	return true;
}

/*
 * concat_last of 2 or more dims: each of the outer runs of the output
 * (last dim `last` elements) is the children's runs side by side.  A child
 * of last dim w elements starting at element col of the run (es bytes
 * each), evaluated for the same rows into a buffer of its own, is copied so.
 */
SD_HD struct rx_copy2d rx_concat_last_copy(uint64_t outer, uint64_t last, uint64_t col,
					   uint64_t w, uint64_t es)
{
	struct rx_copy2d c;

	c.dst_off = col * es;
	c.dst_pitch = last * es;
	c.src_off = 0;
	c.src_pitch = w * es;
	c.width = w * es;
	c.height = outer;
	return c;
}

/* slice_last [a, b) of 2 or more dims: the child's runs (cl elements) for
 * the same rows, of which elements [a, b) of each are kept. */
SD_HD struct rx_copy2d rx_slice_last_copy(uint64_t outer, uint64_t cl, uint64_t a, uint64_t b,
					  uint64_t es)
{
	struct rx_copy2d c;

	c.dst_off = 0;
	c.dst_pitch = (b - a) * es;
	c.src_off = a * es;
	c.src_pitch = cl * es;
	c.width = (b - a) * es;
	c.height = outer;
	return c;
}

/* slice0 [a, ...) and slice_last of a 1-D node (its last dim is the row
 * dim): rows [r0, r1) are the child's rows [a + r0, a + r1), in place. */
SD_HD struct rx_part rx_slice0_part(uint64_t a, uint64_t r0, uint64_t r1, uint64_t row_bytes)
{
	struct rx_part p;

	p.c0 = a + r0;
	p.c1 = a + r1;
	p.skip = 0;
	p.len = (r1 - r0) * row_bytes;
	p.dst_off = 0;
	return p;
}

/* index0 k: the rows [r0, r1) of the result are bytes of the child's row
 * k (rows of row_bytes here). */
SD_HD struct rx_part rx_index0_part(uint64_t k, uint64_t r0, uint64_t r1, uint64_t row_bytes)
{
	struct rx_part p;

	p.c0 = k;
	p.c1 = k + 1;
	p.skip = r0 * row_bytes;
	p.len = (r1 - r0) * row_bytes;
	p.dst_off = 0;
	return p;
}

/* stack0: output row e (of rows [r0, ...), each row_bytes) is child e
 * whole, all child_rows of its rows. */
SD_HD struct rx_part rx_stack0_part(uint64_t e, uint64_t r0, uint64_t child_rows,
				    uint64_t row_bytes)
{
	struct rx_part p;

	p.c0 = 0;
	p.c1 = child_rows;
	p.skip = 0;
	p.len = row_bytes;
	p.dst_off = (e - r0) * row_bytes;
	return p;
}

/*
 * reshape: rows [r0, r1) of row_bytes each are bytes [r0, r1) * row_bytes
 * of the child in row-major order: the child rows (of child_bytes) covering
 * them, trimmed by skip at the start.  True when they are exactly those
 * child rows (nothing to trim: the child can write in place).
 */
SD_HD bool rx_reshape_part(uint64_t r0, uint64_t r1, uint64_t row_bytes, uint64_t child_bytes,
			   struct rx_part *p)
{
	uint64_t b0 = r0 * row_bytes, b1 = r1 * row_bytes;

	p->c0 = b0 / child_bytes;
	p->c1 = (b1 + child_bytes - 1) / child_bytes;
	p->skip = b0 - p->c0 * child_bytes;
	p->len = b1 - b0;
	p->dst_off = 0;
	return b0 % child_bytes == 0 && b1 % child_bytes == 0;
}

/*
 * The whole of a layout node's rows [r0, r1), as steps over its children.
 * A step takes part.c0..c1 of child kid; unless strided, the bytes of them
 * from part.skip on (part.len of them) land at part.dst_off of the node's
 * rows; if strided, those child rows (part.len bytes) are evaluated into
 * scratch and copied into place as copy says.  An evaluator walks them with
 * rx_layout_steps and only moves bytes.  (Host only.)
 */
struct rx_step {
	uint32_t kid;
	bool strided;
	struct rx_part part;
	struct rx_copy2d copy;
};

struct recipe;
struct rx_node;

typedef int (*rx_step_fn)(void *arg, const struct rx_step *s);

/* Call step for each step of rows [r0, r1) of n (concat_last, slice_last,
 * slice0, index0, stack0 or reshape) in order; the first error it returns,
 * or 0.  -EINVAL for another operation. */
int rx_layout_steps(const struct recipe *r, const struct rx_node *n, uint64_t r0, uint64_t r1,
		    rx_step_fn step, void *arg);

#endif
