/*
 * recipe_cpu.c — the CPU backend: evaluating a recipe into host memory.
 *
 * Evaluation asks each node for a range of its rows and lets it ask its
 * children for exactly the rows it needs.  Source rows are read straight
 * into the destination when no transformation sits between them (stack0 and
 * slice0 pass the caller's buffer down), so a grouped expert tensor costs one
 * read plus one transpose per expert.  Temporaries come from a per-thread
 * arena that keeps its memory between chunks, so a conversion allocates only
 * until the arena has grown to the largest chunk it has seen.
 */
#include "recipe.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kernels.h"
#include "quant.h"
#include "rx_index.h"

/* --- per-thread arena ----------------------------------------------------- */

struct arena_blk {
	struct arena_blk *next;
	size_t cap, used;               /* multiples of 64 */
	_Alignas(64) unsigned char data[];      /* whole cache lines for the kernels */
};

static pthread_key_t arena_key;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

static void arena_destroy(void *p)
{
	for (struct arena_blk *b = p, *n; b; b = n) {
		n = b->next;
		free(b);
	}
}

static void arena_init(void)
{
	pthread_key_create(&arena_key, arena_destroy);
}

static void *arena_alloc(size_t n)
{
	struct arena_blk *b = pthread_getspecific(arena_key);

	n = (n + 63) & ~(size_t)63;
	if (!b || b->cap - b->used < n) {
		size_t cap = b ? b->cap * 2 : (size_t)1 << 20;
		if (cap < n)
			cap = n;
		struct arena_blk *nb = aligned_alloc(64, sizeof(*nb) + cap);
		if (!nb)
			return NULL;
		nb->next = b;
		nb->cap = cap;
		nb->used = 0;
		b = nb;
		pthread_setspecific(arena_key, b);
	}
	void *p = (char *)b->data + b->used;
	b->used += n;
	return p;
}

/* After a chunk: keep one block big enough for everything the chunk used,
 * so the next chunk of the same kind allocates nothing. */
static void arena_reset(void)
{
	struct arena_blk *b = pthread_getspecific(arena_key);
	size_t total = 0;

	if (!b)
		return;
	if (!b->next) {
		b->used = 0;
		return;
	}
	for (struct arena_blk *i = b; i; i = i->next)
		total += i->cap;
	arena_destroy(b);
	b = aligned_alloc(64, sizeof(*b) + total);
	if (b) {
		b->next = NULL;
		b->cap = total;
		b->used = 0;
	}
	pthread_setspecific(arena_key, b);
}

size_t recipe_cpu_arena_bytes(void)
{
	struct arena_blk *b;
	size_t total = 0;

	pthread_once(&arena_once, arena_init);
	for (b = pthread_getspecific(arena_key); b; b = b->next)
		total += sizeof(*b) + b->cap;
	return total;
}

void recipe_cpu_arena_release(void)
{
	pthread_once(&arena_once, arena_init);
	arena_destroy(pthread_getspecific(arena_key));
	pthread_setspecific(arena_key, NULL);
}

/* Input bytes per block of a 2-D transpose or a cast: the block is read
 * into scratch that stays in L2 while the kernel turns it around. */
#define CONVERT_BLOCK ((uint64_t)256 << 10)

/* --- evaluation ----------------------------------------------------------- */

struct eval {
	const struct recipe *r;
	const struct rx_reader *rd;
	char *err;
	const char *out, *out_end;      /* the caller's buffer */
};

static int eval(struct eval *ev, uint32_t i, uint64_t r0, uint64_t r1, void *dst);

static const struct rx_node *kid(const struct eval *ev, const struct rx_node *n,
				 uint32_t k)
{
	return &ev->r->nodes[ev->r->kids[n->kids + k]];
}

static uint32_t kid_index(const struct eval *ev, const struct rx_node *n,
			  uint32_t k)
{
	return ev->r->kids[n->kids + k];
}

static void *temp(struct eval *ev, uint64_t bytes)
{
	void *p = arena_alloc(bytes ? (size_t)bytes : 1);

	if (!p)
		sd_err(ev->err, -ENOMEM, "cannot allocate %llu bytes of conversion scratch",
		       (unsigned long long)bytes);
	return p;
}

/*
 * Rows [r0, r1) of node i a block at a time into one scratch buffer, for a
 * parent that turns each block around while it is still in L2: blocks of
 * about CONVERT_BLOCK bytes (whole 32-row register blocks where there are
 * more) where the node gives rows cheaply, else all rows at once.
 *
 *     struct blocks b;
 *     if ((rc = blocks_start(ev, i, r0, r1, &b)) < 0) return rc;
 *     while ((rc = blocks_next(ev, &b)) > 0) use b.t, rows [b.b0, b.b1);
 *     return rc;
 */
struct blocks {
	uint32_t node;
	uint64_t b0, b1, end, step;
	char *t;
};

static int blocks_start(struct eval *ev, uint32_t i, uint64_t r0, uint64_t r1, struct blocks *b)
{
	uint64_t rb = rx_row_bytes(&ev->r->nodes[i]), n = r1 - r0;
	uint64_t step = rx_row_separable(ev->r, i) ? CONVERT_BLOCK / rb : n;

	if (step > 32 && step < n)
		step &= ~(uint64_t)31;
	step = step == 0 ? 1 : step > n ? n : step;
	*b = (struct blocks){ i, r0, r0, r1, step, temp(ev, step * rb) };
	return b->t ? 0 : -ENOMEM;
}

/* The next block into b->t: 1, or 0 after the last, or a negative errno. */
static int blocks_next(struct eval *ev, struct blocks *b)
{
	int rc;

	if (b->b1 >= b->end)
		return 0;
	b->b0 = b->b1;
	b->b1 = b->b0 + b->step < b->end ? b->b0 + b->step : b->end;
	rc = eval(ev, b->node, b->b0, b->b1, b->t);
	return rc < 0 ? rc : 1;
}

/* Output written into the caller's buffer is not read again by this
 * chunk's evaluation, so the kernels may stream it past the caches; a
 * temporary is read next by its parent and should stay cached. */
static bool streams(const struct eval *ev, const void *dst)
{
	return (const char *)dst >= ev->out && (const char *)dst < ev->out_end;
}

/* Rows [r0, r1) of a transpose, output row i at dst + i * dst_ld elements
 * (a concat_last parent passes its own row length, so its transposed
 * children are written in place instead of through a temporary). */
static int eval_transpose(struct eval *ev, const struct rx_node *n, uint64_t r0,
			  uint64_t r1, void *dst, uint64_t dst_ld)
{
	const struct rx_node *c = kid(ev, n, 0);
	size_t es = dtype_size(n->dtype);
	uint64_t R = c->shape[c->ndim - 2], C = c->shape[c->ndim - 1];
	int rc;

	if (n->ndim == 2) {
		/* Output rows are input columns, so every input row is needed;
		 * take them a block at a time, so scratch stays small (it is per
		 * worker thread) and the block stays in cache while it is
		 * transposed.  A child that cannot give rows comes whole. */
		struct blocks b;
		if ((rc = blocks_start(ev, kid_index(ev, n, 0), 0, R, &b)) < 0)
			return rc;
		while ((rc = blocks_next(ev, &b)) > 0)
			sd_transpose(b.t + r0 * es, b.b1 - b.b0, r1 - r0, C, (char *)dst + b.b0 * es,
				     dst_ld, es, streams(ev, dst));
		return rc;
	}
	uint64_t batches = (r1 - r0) * (rx_row_bytes(n) / (R * C * es));
	char *t = temp(ev, batches * R * C * es);
	if (!t)
		return -ENOMEM;
	if ((rc = eval(ev, kid_index(ev, n, 0), r0, r1, t)) < 0)
		return rc;
	for (uint64_t b = 0; b < batches; b++)
		sd_transpose(t + b * R * C * es, R, C, C, (char *)dst + b * C * dst_ld * es,
			     dst_ld, es, streams(ev, dst));
	return 0;
}

/* Part p of child kid into dst: straight into place when it is whole child
 * rows, else through scratch, trimmed. */
static int eval_part(struct eval *ev, uint32_t kid, struct rx_part p, void *dst)
{
	uint64_t cb = rx_row_bytes(&ev->r->nodes[kid]);
	char *out = (char *)dst + p.dst_off, *t;
	int rc;

	if (p.skip == 0 && p.len == (p.c1 - p.c0) * cb)
		return eval(ev, kid, p.c0, p.c1, out);
	if (!(t = temp(ev, (p.c1 - p.c0) * cb)))
		return -ENOMEM;
	if ((rc = eval(ev, kid, p.c0, p.c1, t)) < 0)
		return rc;
	memcpy(out, t + p.skip, (size_t)p.len);
	return 0;
}

/*
 * A strided step (concat_last's columns, slice_last's runs): the child's
 * rows a block at a time where it gives rows, so each block is still cached
 * when its runs are copied into place.  A transposed child whose runs are
 * taken whole is written into place by the transpose itself (its output
 * lines copy.dst_pitch apart), so a gate_and_up concat costs no copy.
 */
static int strided_step(struct eval *ev, const struct rx_step *s, char *dst)
{
	const struct rx_node *c = &ev->r->nodes[s->kid];
	const struct rx_copy2d *cp = &s->copy;
	size_t es = dtype_size(c->dtype);
	char *out = dst + cp->dst_off;
	struct blocks b;
	int rc;

	if (c->op == RX_TRANSPOSE_LAST2 && cp->src_off == 0 && cp->width == cp->src_pitch)
		return eval_transpose(ev, c, s->part.c0, s->part.c1, out, cp->dst_pitch / es);
	uint64_t runs_per_row = rx_row_bytes(c) / cp->src_pitch;
	if ((rc = blocks_start(ev, s->kid, s->part.c0, s->part.c1, &b)) < 0)
		return rc;
	while ((rc = blocks_next(ev, &b)) > 0) {
		uint64_t lines = (b.b1 - b.b0) * runs_per_row;
		sd_copy_rows(out, cp->dst_pitch, b.t + cp->src_off, cp->src_pitch, cp->width,
			     lines, streams(ev, out));
		out += lines * cp->dst_pitch;
	}
	return rc;
}

/* One step of a layout node (rx_index.h) into dst. */
struct cpu_step {
	struct eval *ev;
	void *dst;
};

static int take_step(void *arg, const struct rx_step *s)
{
	struct cpu_step *x = arg;

	return s->strided ? strided_step(x->ev, s, x->dst) :
			    eval_part(x->ev, s->kid, s->part, x->dst);
}

/* A cast a block of rows at a time where the child gives rows, so the
 * block is still cached when the kernel reads it. */
static int eval_cast(struct eval *ev, const struct rx_node *n, uint64_t r0, uint64_t r1,
		     void *dst)
{
	const struct rx_node *c = kid(ev, n, 0);
	uint64_t rb = rx_row_bytes(n);
	struct blocks b;
	int rc;

	if ((rc = blocks_start(ev, kid_index(ev, n, 0), r0, r1, &b)) < 0)
		return rc;
	while ((rc = blocks_next(ev, &b)) > 0) {
		char *out = (char *)dst + (b.b0 - r0) * rb;
		sd_convert(out, n->dtype, b.t, c->dtype,
			   (size_t)((b.b1 - b.b0) * rb / dtype_size(n->dtype)), streams(ev, out));
	}
	return rc;
}

/*
 * Dequantization by table.  Within one scale block a weight code always
 * gives the same output, so the block's possible outputs are computed first,
 * with the per-element rule itself (quant.h's product in F32, then the cast
 * RX_CAST uses, dtype_convert), and the codes are looked up: the bits are
 * the rule's by construction, at the cost of one load per element instead
 * of a decode, a multiply with its NaN checks and a cast.
 */

/* dst[i] = table[codes[i]] for entries of size es (2, 4, 8 or 16 bytes);
 * fixed-size memcpy, so each entry moves as one load and one store whatever
 * the alignment of dst.  Unrolled by four: the loop is three memory
 * operations per entry, so its own counting would otherwise cost as much. */
#define LOOKUP_ONE(SIZE, k)                                                     \
	memcpy(dst + (i + (k)) * (SIZE), table + (size_t)codes[i + (k)] * (SIZE), (SIZE))
#define DEFINE_LOOKUP(NAME, SIZE)                                               \
	static void NAME(unsigned char *restrict dst, const uint8_t *restrict codes, \
			 size_t n, const unsigned char *restrict table)         \
	{                                                                       \
		size_t i = 0;                                                   \
		for (; i + 4 <= n; i += 4) {                                    \
			LOOKUP_ONE(SIZE, 0);                                    \
			LOOKUP_ONE(SIZE, 1);                                    \
			LOOKUP_ONE(SIZE, 2);                                    \
			LOOKUP_ONE(SIZE, 3);                                    \
		}                                                               \
		for (; i < n; i++)                                              \
			LOOKUP_ONE(SIZE, 0);                                    \
	}

DEFINE_LOOKUP(lookup2, 2)
DEFINE_LOOKUP(lookup4, 4)
DEFINE_LOOKUP(lookup8, 8)
DEFINE_LOOKUP(lookup16, 16)

static void lookup(void *dst, const uint8_t *codes, size_t n, const void *table,
		   size_t es)
{
	switch (es) {
	case 2: lookup2(dst, codes, n, table); break;
	case 4: lookup4(dst, codes, n, table); break;
	case 8: lookup8(dst, codes, n, table); break;
	default: lookup16(dst, codes, n, table); break;
	}
}

/* The 256 outputs of one FP8 scale block, in the output dtype. */
static void fp8_block_table(void *table, enum sd_dtype to, float scale)
{
	float prod[256];

	for (unsigned c = 0; c < 256; c++)
		prod[c] = sd_dequant_mul(f32_from_bits(sd_fp8e4m3_to_f32_bits((uint8_t)c)),
					 scale);
	dtype_convert(table, to, prod, SD_F32, 256);
}

/* Rows of a 128-row block of scales share their tables: one per block
 * column, built once for all the block's rows in range. */
static int eval_dequant_fp8(struct eval *ev, const struct rx_node *n, uint64_t r0,
			    uint64_t r1, void *dst)
{
	uint64_t cols = n->shape[1], bcols = kid(ev, n, 1)->shape[1];
	uint64_t s0 = r0 / SD_FP8_BLOCK, s1 = (r1 - 1) / SD_FP8_BLOCK + 1;
	size_t es = dtype_size(n->dtype), tsize = 256 * es;
	uint8_t *q = temp(ev, (r1 - r0) * cols);
	float *scale = temp(ev, (s1 - s0) * bcols * sizeof(float));
	unsigned char *tables = temp(ev, bcols * tsize);
	int rc;

	if (!q || !scale || !tables)
		return -ENOMEM;
	if ((rc = eval(ev, kid_index(ev, n, 0), r0, r1, q)) < 0 ||
	    (rc = eval(ev, kid_index(ev, n, 1), s0, s1, scale)) < 0)
		return rc;
	for (uint64_t sr = s0; sr < s1; sr++) {
		uint64_t a = sr * SD_FP8_BLOCK > r0 ? sr * SD_FP8_BLOCK : r0;
		uint64_t b = (sr + 1) * SD_FP8_BLOCK < r1 ? (sr + 1) * SD_FP8_BLOCK : r1;
		for (uint64_t bc = 0; bc < bcols; bc++)
			fp8_block_table(tables + bc * tsize, n->dtype,
					scale[(sr - s0) * bcols + bc]);
		for (uint64_t i = a; i < b; i++) {
			const uint8_t *qrow = q + (i - r0) * cols;
			unsigned char *orow = (unsigned char *)dst + (i - r0) * cols * es;
			for (uint64_t bc = 0; bc < bcols; bc++) {
				uint64_t j = bc * SD_FP8_BLOCK;
				uint64_t w = cols - j < SD_FP8_BLOCK ? cols - j : SD_FP8_BLOCK;
				lookup(orow + j * es, qrow + j, (size_t)w, tables + bc * tsize, es);
			}
		}
	}
	return 0;
}

/*
 * MXFP4: a group of 32 values shares one scale byte, so there are at most
 * 256 distinct scales.  For each one that occurs, a table maps a block byte
 * to its two outputs (low nibble first); a group is then one lookup per
 * byte.  The 16 values of a scale are computed by the rule, and the pairs
 * are copies of them.
 */
static void mxfp4_pair_table(unsigned char *table, enum sd_dtype to, uint8_t scale)
{
	float prod[16];
	unsigned char val[16 * 8];
	size_t es = dtype_size(to);
	float sc = f32_from_bits(sd_e8m0_to_f32_bits(scale));

	for (unsigned c = 0; c < 16; c++)
		prod[c] = sd_dequant_mul(f32_from_bits(sd_fp4_to_f32_bits((uint8_t)c)), sc);
	dtype_convert(val, to, prod, SD_F32, 16);
	for (unsigned b = 0; b < 256; b++) {
		memcpy(table + b * 2 * es, val + (b & 15u) * es, es);
		memcpy(table + b * 2 * es + es, val + (b >> 4) * es, es);
	}
}

static int eval_dequant_mxfp4(struct eval *ev, const struct rx_node *n, uint64_t r0,
			      uint64_t r1, void *dst)
{
	const struct rx_node *b = kid(ev, n, 0), *s = kid(ev, n, 1);
	uint64_t bytes = b->shape[b->ndim - 1];
	uint64_t groups = (r1 - r0) * rx_row_bytes(s);
	size_t es = dtype_size(n->dtype), tsize = 256 * 2 * es;
	uint8_t *blocks = temp(ev, groups * bytes), *scales = temp(ev, groups);
	uint16_t slot[256];
	unsigned nslots = 0;
	int rc;

	if (!blocks || !scales)
		return -ENOMEM;
	if ((rc = eval(ev, kid_index(ev, n, 0), r0, r1, blocks)) < 0 ||
	    (rc = eval(ev, kid_index(ev, n, 1), r0, r1, scales)) < 0)
		return rc;
	memset(slot, 0xFF, sizeof(slot));
	for (uint64_t g = 0; g < groups; g++)
		if (slot[scales[g]] == 0xFFFF)
			slot[scales[g]] = (uint16_t)nslots++;
	unsigned char *tables = temp(ev, nslots * tsize);
	if (!tables)
		return -ENOMEM;
	for (unsigned v = 0; v < 256; v++)
		if (slot[v] != 0xFFFF)
			mxfp4_pair_table(tables + slot[v] * tsize, n->dtype, (uint8_t)v);
	for (uint64_t g = 0; g < groups; g++)
		lookup((unsigned char *)dst + g * bytes * 2 * es, blocks + g * bytes,
		       (size_t)bytes, tables + slot[scales[g]] * tsize, 2 * es);
	return 0;
}

static int eval(struct eval *ev, uint32_t i, uint64_t r0, uint64_t r1, void *dst)
{
	const struct rx_node *n = &ev->r->nodes[i];
	uint64_t rb = rx_row_bytes(n);

	if (r0 >= r1 || rb == 0)
		return 0;       /* nothing to produce (a zero-size dim) */
	switch (n->op) {
	case RX_SRC:
		return ev->rd->rows(ev->rd->arg, (uint32_t)n->a, r0, r1, dst, ev->err);
	case RX_CAST:
		return eval_cast(ev, n, r0, r1, dst);
	case RX_STACK0:
	case RX_INDEX0:
	case RX_SLICE0:
	case RX_SLICE_LAST:
	case RX_CONCAT_LAST:
	case RX_RESHAPE:
		return rx_layout_steps(ev->r, n, r0, r1, take_step, &(struct cpu_step){ ev, dst });
	case RX_TRANSPOSE_LAST2:
		return eval_transpose(ev, n, r0, r1, dst, n->shape[n->ndim - 1]);
	case RX_DEQUANT_FP8:
		return eval_dequant_fp8(ev, n, r0, r1, dst);
	case RX_DEQUANT_MXFP4:
		return eval_dequant_mxfp4(ev, n, r0, r1, dst);
	}
	return sd_err(ev->err, -EINVAL, "unknown recipe operation %d", (int)n->op);
}

int recipe_eval_cpu(const struct recipe *r, uint64_t r0, uint64_t r1,
		    void *dst, const struct rx_reader *rd, char *err)
{
	const struct rx_node *root = rx_root(r);
	struct eval ev = { r, rd, err, dst, (char *)dst + (r1 - r0) * rx_row_bytes(root) };

	pthread_once(&arena_once, arena_init);
	int rc = eval(&ev, r->nnodes - 1, r0, r1, dst);
	arena_reset();
	return rc;
}
