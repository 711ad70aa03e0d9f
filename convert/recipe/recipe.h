/*
 * recipe.h — how one output tensor is computed from source tensors.
 *
 * A recipe is a small expression tree over source tensors, stored as an
 * array of nodes (children before parents, the root last).  The same
 * description drives every backend, so backends cannot drift apart in
 * meaning.  Evaluation is by rows of dimension 0 of a node's output: asking
 * for rows [r0, r1) of a stacked expert tensor converts just those experts,
 * which is what makes a 1 MiB read of a 15 GB grouped tensor cheap.
 *
 * Operations (shapes row-major; "rows" = indices along dim 0, a scalar has
 * one row):
 *   src(t)              the source tensor t, bytes as stored
 *   cast(x, dtype)      elementwise float cast (round to nearest even)
 *   transpose_last2(x)  swap the last two dims (ndim >= 2)
 *   concat_last(x...)   join along the last dim (all other dims equal)
 *   stack0(x...)        new dim 0 over equal-shaped children
 *   index0(x, k)        x[k], dropping dim 0
 *   slice0(x, a, b)     x[a:b]
 *   slice_last(x, a, b) x[..., a:b]
 *   reshape(x, shape)   the same elements in row-major order, another shape
 *   dequant_fp8_block(q, s, dtype)
 *                       F8_E4M3 [out, in] times F32 scales
 *                       [ceil(out/128), ceil(in/128)], one per 128x128 block,
 *                       in F32, then cast (DeepSeek-V3's weight_scale_inv)
 *   dequant_mxfp4(blocks, scales, dtype)
 *                       U8 [..., G, B] of two FP4 codes each (low nibble
 *                       first) times 2^(scale-127) from U8 [..., G], in F32,
 *                       then cast: [..., G*2B] (GPT-OSS: X_blocks, X_scales)
 * The scalar arithmetic of the last two is in quant.h.
 *
 * convert/recipe/ owns how a tensor is computed: this IR and its builders
 * (recipe.c), the dequantization rules (quant.h), the CPU evaluator
 * (recipe_cpu.c), the check that another backend gives the CPU's bytes
 * (backend_check.c) and in-memory tensors for it and the tests (memsrc.c).
 * It may use only convert/base: what a source tensor is and where its bytes
 * live is the rx_reader's business.
 */
#ifndef SDAFS_RECIPE_H
#define SDAFS_RECIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

enum rx_op {
	RX_SRC, RX_CAST, RX_TRANSPOSE_LAST2, RX_CONCAT_LAST, RX_STACK0,
	RX_INDEX0, RX_SLICE0, RX_SLICE_LAST, RX_RESHAPE,
	RX_DEQUANT_FP8, RX_DEQUANT_MXFP4,
};

struct rx_node {
	enum rx_op op;
	enum sd_dtype dtype;
	int ndim;
	uint64_t shape[ST_MAX_DIMS];
	uint32_t nkids;
	uint32_t kids;          /* first index into recipe.kids */
	uint64_t a, b;          /* src: source tensor index; slices: range */
};

struct recipe {
	struct rx_node *nodes;
	uint32_t nnodes;
	size_t cap;
	uint32_t *kids;
	uint32_t nkids;
	size_t kidcap;
};

/* Builders: each returns the new node's index (>= 0) or a negative errno
 * with a message naming what does not fit.  The last node built is the root.
 * A recipe knows its source tensors only by index, dtype and shape; what
 * they are and where their bytes live is the reader's business. */
int rx_src(struct recipe *r, uint32_t tensor, enum sd_dtype dt, int ndim,
	   const uint64_t *shape, char *err);
int rx_cast(struct recipe *r, int x, enum sd_dtype to, char *err);
int rx_transpose_last2(struct recipe *r, int x, char *err);
int rx_concat_last(struct recipe *r, const int *xs, uint32_t n, char *err);
int rx_stack0(struct recipe *r, const int *xs, uint32_t n, char *err);
int rx_index0(struct recipe *r, int x, uint64_t k, char *err);
int rx_slice0(struct recipe *r, int x, uint64_t a, uint64_t b, char *err);
int rx_slice_last(struct recipe *r, int x, uint64_t a, uint64_t b, char *err);
/* ndim dims of shape, with the same element count as x. */
int rx_reshape(struct recipe *r, int x, int ndim, const uint64_t *shape,
	       char *err);
/* q: F8_E4M3 [out, in]; scale: F32 [ceil(out/128), ceil(in/128)]. */
int rx_dequant_fp8_block(struct recipe *r, int q, int scale, enum sd_dtype to,
			 char *err);
/* blocks: U8 [..., G, B] (at least 3 dims, so dim 0 stays the row dim);
 * scales: U8 or F8_E8M0 [..., G]. */
int rx_dequant_mxfp4(struct recipe *r, int blocks, int scales, enum sd_dtype to,
		     char *err);
/* Copy every node of src after r's own; returns the index src's root has in
 * r (so a part built on its own can join a larger recipe). */
int rx_append(struct recipe *r, const struct recipe *src, char *err);
void recipe_free(struct recipe *r);
/* The same nodes over the same source tensors: the same bytes. */
bool recipe_equal(const struct recipe *a, const struct recipe *b);

static inline const struct rx_node *rx_root(const struct recipe *r)
{
	return &r->nodes[r->nnodes - 1];
}

uint64_t rx_rows(const struct rx_node *n);
uint64_t rx_row_bytes(const struct rx_node *n);
/* Which child rows each operation's rows come from, and where their bytes
 * land, is in rx_index.h (shared by every backend). */
/* True when rows of the node can be produced without producing all of it
 * (a 2-D transpose cannot).  Chunking follows this. */
bool rx_row_separable(const struct recipe *r, uint32_t node);

/* The name of source tensor t, for text forms. */
typedef const char *(*rx_name_fn)(const void *arg, uint32_t tensor);

/*
 * Write the recipe as text, e.g.
 *   stack0(cast(transpose_last2(src("a.0.w")), BF16), ..., ... 5 more ..., ...)
 * naming source tensors through name(arg, t); child lists longer than 3
 * show the first two, a count and the last, unless full is set.  Returns
 * the length it needed (like snprintf).
 */
size_t recipe_format(const struct recipe *r, rx_name_fn name, const void *arg,
		     bool full, char *buf, size_t len);

/* How evaluation reads source bytes: rows [r0, r1) of dimension 0 of source
 * tensor t (a scalar has one row), as stored, into dst.  This is all an
 * evaluator knows of storage: files, sharded saves' chunks and in-memory
 * tensors are the reader's business. */
struct rx_reader {
	int (*rows)(void *arg, uint32_t tensor, uint64_t r0, uint64_t r1, void *dst,
		    char *err);
	void *arg;
};

/*
 * CPU backend: compute rows [r0, r1) of the root into dst
 * ((r1 - r0) * rx_row_bytes(root) bytes).  Temporaries come from a
 * per-thread arena that is reused across calls.
 */
int recipe_eval_cpu(const struct recipe *r, uint64_t r0, uint64_t r1,
		    void *dst, const struct rx_reader *rd, char *err);
/* Bytes the calling thread's arena keeps between calls, and giving them
 * back: for callers that bound their memory (export.c). */
size_t recipe_cpu_arena_bytes(void);
void recipe_cpu_arena_release(void);

#endif
