/*
 * test_recipe.c — a recipe's rows hold what its expression says, whichever
 * rows are asked for; and the plan chunks recipes by what they can afford.
 *
 * Recipes are built over a source described in memory (names, dtypes,
 * shapes), whose bytes a reader callback copies from per-tensor arrays of
 * pseudo-random bits.  recipe_eval_cpu's output is compared with naive
 * references in this file that move one element at a time with explicit
 * index arithmetic (out[e][h][i] = up_e[i][h]) and share no code with the
 * evaluator; casts use dtype.h's scalar conversions, which test_dtype checks
 * bit-exactly.  Every recipe is evaluated whole and for every row range
 * [r0, r1) of dim 0 (all of them for small tensors), each into a buffer of
 * exactly the promised size so AddressSanitizer sees any overrun, and each
 * must equal the matching slice of the whole reference.
 */
#include <errno.h>
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
#include "err.h"
#include "plan.h"
#include "recipe.h"
#include "testlib.h"

/* ---- the fixture (testlib.h) ----------------------------------------------- */

/* This file's random stream (see recipe_fixture_setup). */
static uint64_t stream = 0x243F6A8885A308D3ull;

static uint64_t elem_count(int ndim, const uint64_t *shape)
{
	uint64_t n = 1;

	for (int d = 0; d < ndim; d++)
		n *= shape[d];
	return n;
}

static size_t add_tensor(struct recipe_fixture *f, const char *name, enum sd_dtype dt,
			 int ndim, const uint64_t *shape)
{
	return recipe_fixture_add(f, name, dt, ndim, shape, MEMSRC_RANDOM);
}

/* rx_src over a new tensor, asserting the builder succeeds. */
static int src_node(struct recipe_fixture *f, const char *name, enum sd_dtype dt, int ndim,
		    const uint64_t *shape)
{
	return recipe_fixture_src(f, add_tensor(f, name, dt, ndim, shape));
}

/* ---- naive references ----------------------------------------------------- */

struct arr {
	enum sd_dtype dtype;
	int ndim;
	uint64_t shape[ST_MAX_DIMS];
	size_t es;
	unsigned char *b;
};

static uint64_t arr_elems(const struct arr *a)
{
	return elem_count(a->ndim, a->shape);
}

static uint64_t arr_bytes(const struct arr *a)
{
	return arr_elems(a) * a->es;
}

static struct arr arr_new(enum sd_dtype dt, int ndim, const uint64_t *shape)
{
	struct arr a = { .dtype = dt, .ndim = ndim, .es = dtype_size(dt) };

	for (int d = 0; d < ndim; d++)
		a.shape[d] = shape[d];
	a.b = calloc(1, arr_bytes(&a) ? arr_bytes(&a) : 1);
	assert_non_null(a.b);
	return a;
}

static void arr_free(struct arr *a)
{
	free(a->b);
	a->b = NULL;
}

static struct arr ref_src(const struct recipe_fixture *f, size_t t)
{
	const struct memsrc_tensor *s = &f->mem.tensors[t];
	struct arr a = arr_new(s->dtype, s->ndim, s->shape);

	memcpy(a.b, f->mem.bytes[t], arr_bytes(&a));
	return a;
}

/* Element i of a, as a pointer to its bytes. */
static unsigned char *at(const struct arr *a, uint64_t i)
{
	return a->b + i * a->es;
}

/* out[b][j][i] = x[b][i][j] */
static struct arr ref_transpose_last2(const struct arr *x)
{
	uint64_t shape[ST_MAX_DIMS];
	int nd = x->ndim;

	memcpy(shape, x->shape, sizeof(shape));
	shape[nd - 2] = x->shape[nd - 1];
	shape[nd - 1] = x->shape[nd - 2];
	struct arr out = arr_new(x->dtype, nd, shape);
	uint64_t R = x->shape[nd - 2], C = x->shape[nd - 1];
	uint64_t batches = elem_count(nd - 2, x->shape);
	for (uint64_t b = 0; b < batches; b++)
		for (uint64_t i = 0; i < R; i++)
			for (uint64_t j = 0; j < C; j++)
				memcpy(at(&out, (b * C + j) * R + i),
				       at(x, (b * R + i) * C + j), x->es);
	return out;
}

/* out[o][base_k + j] = x_k[o][j]; a 1-D concat is "outer" 1. */
static struct arr ref_concat_last(const struct arr *xs, size_t n)
{
	uint64_t shape[ST_MAX_DIMS];
	int nd = xs[0].ndim;

	memcpy(shape, xs[0].shape, sizeof(shape));
	shape[nd - 1] = 0;
	for (size_t k = 0; k < n; k++)
		shape[nd - 1] += xs[k].shape[nd - 1];
	struct arr out = arr_new(xs[0].dtype, nd, shape);
	uint64_t outer = elem_count(nd - 1, shape), last = shape[nd - 1];
	for (uint64_t o = 0; o < outer; o++) {
		uint64_t base = 0;
		for (size_t k = 0; k < n; k++) {
			uint64_t w = xs[k].shape[nd - 1];
			for (uint64_t j = 0; j < w; j++)
				memcpy(at(&out, o * last + base + j), at(&xs[k], o * w + j),
				       out.es);
			base += w;
		}
	}
	return out;
}

/* out[e][...] = x_e[...] */
static struct arr ref_stack0(const struct arr *xs, size_t n)
{
	uint64_t shape[ST_MAX_DIMS];

	shape[0] = n;
	memcpy(shape + 1, xs[0].shape, (size_t)xs[0].ndim * sizeof(shape[0]));
	struct arr out = arr_new(xs[0].dtype, xs[0].ndim + 1, shape);
	uint64_t per = arr_elems(&xs[0]);
	for (size_t e = 0; e < n; e++)
		for (uint64_t i = 0; i < per; i++)
			memcpy(at(&out, e * per + i), at(&xs[e], i), out.es);
	return out;
}

/* out[...] = x[k][...] */
static struct arr ref_index0(const struct arr *x, uint64_t k)
{
	struct arr out = arr_new(x->dtype, x->ndim - 1, x->shape + 1);
	uint64_t per = arr_elems(&out);

	for (uint64_t i = 0; i < per; i++)
		memcpy(at(&out, i), at(x, k * per + i), out.es);
	return out;
}

/* out[..., j - a] = x[..., j] for j in [a, b), along dim 0 or the last dim. */
static struct arr ref_slice(const struct arr *x, int dim, uint64_t a, uint64_t b)
{
	uint64_t shape[ST_MAX_DIMS];

	memcpy(shape, x->shape, sizeof(shape));
	shape[dim] = b - a;
	struct arr out = arr_new(x->dtype, x->ndim, shape);
	uint64_t outer = elem_count(dim, x->shape);
	uint64_t inner = elem_count(x->ndim - dim - 1, x->shape + dim + 1);
	for (uint64_t o = 0; o < outer; o++)
		for (uint64_t j = a; j < b; j++)
			for (uint64_t i = 0; i < inner; i++)
				memcpy(at(&out, (o * (b - a) + (j - a)) * inner + i),
				       at(x, (o * x->shape[dim] + j) * inner + i), out.es);
	return out;
}

static float load_f32(enum sd_dtype t, const unsigned char *p)
{
	uint16_t h;
	float v;

	switch (t) {
	case SD_BF16:
		memcpy(&h, p, 2);
		return bf16_to_f32(h);
	case SD_F16:
		memcpy(&h, p, 2);
		return f16_to_f32(h);
	case SD_F32:
		memcpy(&v, p, 4);
		return v;
	default:
		fail_msg("reference cast does not handle %s", dtype_name(t));
	}
	return 0;
}

static void store_f32(enum sd_dtype t, float v, unsigned char *p)
{
	uint16_t h;

	switch (t) {
	case SD_BF16:
		h = f32_to_bf16(v);
		memcpy(p, &h, 2);
		return;
	case SD_F16:
		h = f32_to_f16(v);
		memcpy(p, &h, 2);
		return;
	case SD_F32:
		memcpy(p, &v, 4);
		return;
	default:
		fail_msg("reference cast does not handle %s", dtype_name(t));
	}
}

/* Element by element through the scalar casts (16-bit to 16-bit via F32,
 * as dtype.h specifies). */
static struct arr ref_cast(const struct arr *x, enum sd_dtype to)
{
	struct arr out = arr_new(to, x->ndim, x->shape);

	for (uint64_t i = 0; i < arr_elems(x); i++) {
		if (x->dtype == to)
			memcpy(at(&out, i), at(x, i), out.es);
		else
			store_f32(to, load_f32(x->dtype, at(x, i)), at(&out, i));
	}
	return out;
}

/* ---- the check every evaluation test makes --------------------------------- */

/* Evaluate rows [r0, r1) into a buffer of exactly the promised size. */
static void assert_rows_equal(struct recipe_fixture *f, const struct arr *want,
			      uint64_t r0, uint64_t r1)
{
	uint64_t rb = rx_row_bytes(rx_root(&f->r));
	size_t len = (size_t)((r1 - r0) * rb);
	unsigned char *got = recipe_fixture_eval(f, r0, r1);

	if (memcmp(got, want->b + r0 * rb, len) != 0) {
		size_t k = 0;
		while (got[k] == want->b[r0 * rb + k])
			k++;
		fail_msg("rows [%" PRIu64 ", %" PRIu64 ") differ from the reference at byte %zu of %zu",
			 r0, r1, k, len);
	}
	free(got);
}

/*
 * The root has want's dtype and shape, and every row range evaluates to
 * the matching slice of want.  Small tensors try every [r0, r1); large
 * ones every single row, every prefix and suffix, and a spread of middles.
 */
static void assert_recipe_computes(struct recipe_fixture *f, const struct arr *want)
{
	const struct rx_node *root = rx_root(&f->r);

	assert_int_equal(root->dtype, want->dtype);
	assert_int_equal(root->ndim, want->ndim);
	for (int d = 0; d < want->ndim; d++)
		assert_int_equal(root->shape[d], want->shape[d]);
	uint64_t rows = rx_rows(root);
	assert_int_equal(rows * rx_row_bytes(root), arr_bytes(want));
	for (uint64_t r0 = 0; r0 < rows; r0++)
		for (uint64_t r1 = r0 + 1; r1 <= rows; r1++)
			if (rows <= 24 || r1 - r0 == 1 || r0 == 0 || r1 == rows ||
			    (r0 * 7 + r1) % 13 == 0)
				assert_rows_equal(f, want, r0, r1);
}

/* ---- src and cast ------------------------------------------------------------ */

static void test_src_yields_the_tensor_bytes_as_stored(void **state)
{
	struct recipe_fixture *f = *state;
	size_t t = add_tensor(f, "w", SD_I32, 2, (uint64_t[]){ 7, 3 });

	built(memsrc_src(&f->mem, &f->r, (uint32_t)(t), f->err), f->err);
	struct arr want = ref_src(f, t);
	assert_recipe_computes(f, &want);
	arr_free(&want);
}

static void test_src_of_a_scalar_is_one_row(void **state)
{
	struct recipe_fixture *f = *state;
	size_t t = add_tensor(f, "scale", SD_F32, 0, NULL);

	built(memsrc_src(&f->mem, &f->r, (uint32_t)(t), f->err), f->err);
	assert_int_equal(rx_rows(rx_root(&f->r)), 1);
	assert_int_equal(rx_row_bytes(rx_root(&f->r)), 4);
	struct arr want = ref_src(f, t);
	assert_recipe_computes(f, &want);
	arr_free(&want);
}

/* cast(src) of a [9, 5] tensor matches the scalar conversion of each element. */
static void check_cast(void **state, enum sd_dtype from, enum sd_dtype to)
{
	struct recipe_fixture *f = *state;
	size_t t = add_tensor(f, "w", from, 2, (uint64_t[]){ 9, 5 });
	int x = built(memsrc_src(&f->mem, &f->r, (uint32_t)(t), f->err), f->err);

	built(rx_cast(&f->r, x, to, f->err), f->err);
	struct arr s = ref_src(f, t), want = ref_cast(&s, to);
	assert_recipe_computes(f, &want);
	arr_free(&s);
	arr_free(&want);
}

static void test_cast_bf16_to_f32_widens_every_element(void **state)
{
	check_cast(state, SD_BF16, SD_F32);
}

static void test_cast_f32_to_bf16_rounds_like_the_scalar_cast(void **state)
{
	check_cast(state, SD_F32, SD_BF16);
}

static void test_cast_f16_to_f32_widens_every_element(void **state)
{
	check_cast(state, SD_F16, SD_F32);
}

static void test_cast_f32_to_f16_rounds_like_the_scalar_cast(void **state)
{
	check_cast(state, SD_F32, SD_F16);
}

static void test_cast_bf16_to_f16_goes_through_f32(void **state)
{
	check_cast(state, SD_BF16, SD_F16);
}

/* ---- transpose_last2 ------------------------------------------------------------ */

static void check_transpose(struct recipe_fixture *f, enum sd_dtype dt, int ndim,
			    const uint64_t *shape)
{
	size_t t = add_tensor(f, "w", dt, ndim, shape);
	int x = built(memsrc_src(&f->mem, &f->r, (uint32_t)(t), f->err), f->err);

	built(rx_transpose_last2(&f->r, x, f->err), f->err);
	struct arr s = ref_src(f, t), want = ref_transpose_last2(&s);
	assert_recipe_computes(f, &want);
	arr_free(&s);
	arr_free(&want);
	recipe_free(&f->r);
}

/* Sizes straddle the evaluator's 32-element tiles and degenerate to vectors. */
static void test_transpose_last2_of_2d_swaps_rows_and_columns(void **state)
{
	static const uint64_t sizes[][2] = {
		{ 37, 53 }, { 53, 37 }, { 1, 29 }, { 29, 1 }, { 1, 1 }, { 32, 32 },
		{ 33, 65 }, { 64, 3 }, { 2, 31 },
		{ 300, 700 },   /* over one 256 KiB block: blocks of 184 rows, then 116 */
	};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		check_transpose(*state, SD_BF16, 2, sizes[i]);
}

static void test_transpose_last2_moves_elements_of_1_2_4_and_8_bytes(void **state)
{
	static const enum sd_dtype types[] = { SD_U8, SD_I16, SD_F32, SD_I64 };

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		check_transpose(*state, types[i], 2, (uint64_t[]){ 37, 53 });
		check_transpose(*state, types[i], 3, (uint64_t[]){ 3, 35, 9 });
	}
}

static void test_transpose_last2_of_3d_and_4d_transposes_each_batch(void **state)
{
	check_transpose(*state, SD_BF16, 3, (uint64_t[]){ 5, 37, 11 });
	check_transpose(*state, SD_BF16, 3, (uint64_t[]){ 4, 1, 7 });
	check_transpose(*state, SD_F32, 4, (uint64_t[]){ 2, 3, 5, 7 });
}

/* ---- concat_last ----------------------------------------------------------------- */

static void check_concat(struct recipe_fixture *f, int ndim, const uint64_t *lead,
			 const uint64_t *widths, size_t n)
{
	int xs[8] = { 0 };
	struct arr parts[8];

	for (size_t k = 0; k < n; k++) {
		uint64_t shape[ST_MAX_DIMS];
		char name[32];
		for (int d = 0; d < ndim - 1; d++)
			shape[d] = lead[d];
		shape[ndim - 1] = widths[k];
		snprintf(name, sizeof(name), "part%zu", k);
		size_t t = add_tensor(f, name, SD_BF16, ndim, shape);
		xs[k] = built(memsrc_src(&f->mem, &f->r, (uint32_t)(t), f->err), f->err);
		parts[k] = ref_src(f, t);
	}
	built(rx_concat_last(&f->r, xs, (uint32_t)n, f->err), f->err);
	struct arr want = ref_concat_last(parts, n);
	assert_recipe_computes(f, &want);
	arr_free(&want);
	for (size_t k = 0; k < n; k++)
		arr_free(&parts[k]);
}

static void test_concat_last_of_2d_joins_rows_side_by_side(void **state)
{
	check_concat(*state, 2, (uint64_t[]){ 6 }, (uint64_t[]){ 3, 5, 1 }, 3);
}

static void test_concat_last_of_3d_joins_along_the_last_dim(void **state)
{
	check_concat(*state, 3, (uint64_t[]){ 3, 4 }, (uint64_t[]){ 2, 5 }, 2);
}

/* For vectors the last dim is the row dim: a row range can span parts. */
static void test_concat_last_of_1d_appends_along_dim_0(void **state)
{
	check_concat(*state, 1, NULL, (uint64_t[]){ 5, 1, 7, 2 }, 4);
}

/* The ranges assert_rows_equal checks on a tensor too big for every pair. */
static void assert_some_rows_equal(struct recipe_fixture *f, const struct arr *want)
{
	uint64_t rows = rx_rows(rx_root(&f->r));

	assert_rows_equal(f, want, 0, rows);
	assert_rows_equal(f, want, 1, rows - 1);
	assert_rows_equal(f, want, 0, 1);
	assert_rows_equal(f, want, rows / 3, rows);
}

/* Transposed parts are written straight into their columns of the output
 * (2-D: gate_and_up's shape, long enough that the kernels stream), next to
 * a part that is copied in. */
static void test_concat_last_of_transposes_fills_each_column_range(void **state)
{
	struct recipe_fixture *f = *state;
	size_t t[3] = { add_tensor(f, "gate", SD_BF16, 2, (uint64_t[]){ 1400, 24 }),
			add_tensor(f, "up", SD_BF16, 2, (uint64_t[]){ 1000, 24 }),
			add_tensor(f, "plain", SD_BF16, 2, (uint64_t[]){ 24, 40 }) };
	int xs[3];
	struct arr parts[3];

	for (int k = 0; k < 3; k++) {
		xs[k] = recipe_fixture_src(f, t[k]);
		parts[k] = ref_src(f, t[k]);
		if (k < 2) {
			struct arr src = parts[k];
			xs[k] = built(rx_transpose_last2(&f->r, xs[k], f->err), f->err);
			parts[k] = ref_transpose_last2(&src);
			arr_free(&src);
		}
	}
	built(rx_concat_last(&f->r, xs, 3, f->err), f->err);
	struct arr want = ref_concat_last(parts, 3);
	assert_recipe_computes(f, &want);
	arr_free(&want);
	for (int k = 0; k < 3; k++)
		arr_free(&parts[k]);
}

/* The same for batches: each batch's transpose lands in its own rows. */
static void test_concat_last_of_3d_transposes_fills_every_batch(void **state)
{
	struct recipe_fixture *f = *state;
	size_t a = add_tensor(f, "a", SD_F32, 3, (uint64_t[]){ 3, 50, 20 });
	size_t b = add_tensor(f, "b", SD_F32, 3, (uint64_t[]){ 3, 20, 7 });
	struct arr src = ref_src(f, a);
	struct arr parts[2] = { ref_transpose_last2(&src), ref_src(f, b) };
	int xs[2] = { built(rx_transpose_last2(&f->r, recipe_fixture_src(f, a), f->err), f->err),
		      recipe_fixture_src(f, b) };

	built(rx_concat_last(&f->r, xs, 2, f->err), f->err);
	struct arr want = ref_concat_last(parts, 2);
	assert_recipe_computes(f, &want);
	arr_free(&want);
	arr_free(&src);
	arr_free(&parts[0]);
	arr_free(&parts[1]);
}

/* Parts bigger than one evaluation block are copied block by block. */
static void test_concat_last_of_parts_larger_than_a_block(void **state)
{
	struct recipe_fixture *f = *state;
	size_t t[2] = { add_tensor(f, "a", SD_BF16, 2, (uint64_t[]){ 600, 300 }),
			add_tensor(f, "b", SD_BF16, 2, (uint64_t[]){ 600, 260 }) };
	struct arr parts[2] = { ref_src(f, t[0]), ref_src(f, t[1]) };

	built(rx_concat_last(&f->r, (int[]){ recipe_fixture_src(f, t[0]),
					     recipe_fixture_src(f, t[1]) }, 2, f->err), f->err);
	struct arr want = ref_concat_last(parts, 2);
	assert_some_rows_equal(f, &want);
	arr_free(&want);
	arr_free(&parts[0]);
	arr_free(&parts[1]);
}

/* A cast of more than one evaluation block converts block by block, every
 * element as dtype_convert does. */
static void test_cast_larger_than_a_block_converts_every_element(void **state)
{
	struct recipe_fixture *f = *state;
	size_t t = add_tensor(f, "w", SD_F32, 2, (uint64_t[]){ 300, 301 });
	struct arr want = arr_new(SD_BF16, 2, (uint64_t[]){ 300, 301 });

	built(rx_cast(&f->r, recipe_fixture_src(f, t), SD_BF16, f->err), f->err);
	dtype_convert(want.b, SD_BF16, f->mem.bytes[t], SD_F32, 300 * 301);
	assert_some_rows_equal(f, &want);
	arr_free(&want);
}

/* ---- the expert merges ------------------------------------------------------------ */

enum { E = 3, I = 5, H = 7 };

/* E expert tensors [I, H] in BF16, called experts.<e>.<what>. */
static void add_experts(struct recipe_fixture *f, const char *what, size_t *t)
{
	for (int e = 0; e < E; e++) {
		char name[64];
		snprintf(name, sizeof(name), "experts.%d.%s", e, what);
		t[e] = add_tensor(f, name, SD_BF16, 2, (uint64_t[]){ I, H });
	}
}

/* stack0 over e of transpose_last2(src(t[e])), optionally cast per expert. */
static int stack_transposed(struct recipe_fixture *f, const size_t *t)
{
	int kids[E];

	for (int e = 0; e < E; e++) {
		int x = built(memsrc_src(&f->mem, &f->r, (uint32_t)(t[e]), f->err), f->err);
		kids[e] = built(rx_transpose_last2(&f->r, x, f->err), f->err);
	}
	return built(rx_stack0(&f->r, kids, E, f->err), f->err);
}

static void test_stack0_of_transposed_experts_is_e_h_i(void **state)
{
	struct recipe_fixture *f = *state;
	size_t up[E];

	add_experts(f, "up_proj.weight", up);
	stack_transposed(f, up);
	/* out[e][h][i] = up_e[i][h] */
	struct arr want = arr_new(SD_BF16, 3, (uint64_t[]){ E, H, I });
	for (uint64_t e = 0; e < E; e++)
		for (uint64_t h = 0; h < H; h++)
			for (uint64_t i = 0; i < I; i++)
				memcpy(at(&want, (e * H + h) * I + i),
				       f->mem.bytes[up[e]] + (i * H + h) * 2, 2);
	assert_recipe_computes(f, &want);
	arr_free(&want);
}

static void test_stack0_of_gate_and_up_concat_is_gated_e_h_2i(void **state)
{
	struct recipe_fixture *f = *state;
	size_t gate[E], up[E];
	int kids[E];

	add_experts(f, "gate_proj.weight", gate);
	add_experts(f, "up_proj.weight", up);
	for (int e = 0; e < E; e++) {
		int g = built(memsrc_src(&f->mem, &f->r, (uint32_t)(gate[e]), f->err), f->err);
		int u = built(memsrc_src(&f->mem, &f->r, (uint32_t)(up[e]), f->err), f->err);
		int parts[2] = { built(rx_transpose_last2(&f->r, g, f->err), f->err),
				 built(rx_transpose_last2(&f->r, u, f->err), f->err) };
		kids[e] = built(rx_concat_last(&f->r, parts, 2, f->err), f->err);
	}
	built(rx_stack0(&f->r, kids, E, f->err), f->err);
	/* out[e][h][j] = gate_e[j][h] for j < I, up_e[j - I][h] after */
	struct arr want = arr_new(SD_BF16, 3, (uint64_t[]){ E, H, 2 * I });
	for (uint64_t e = 0; e < E; e++)
		for (uint64_t h = 0; h < H; h++)
			for (uint64_t j = 0; j < 2 * I; j++) {
				const unsigned char *from = j < I
					? f->mem.bytes[gate[e]] + (j * H + h) * 2
					: f->mem.bytes[up[e]] + ((j - I) * H + h) * 2;
				memcpy(at(&want, (e * H + h) * 2 * I + j), from, 2);
			}
	assert_recipe_computes(f, &want);
	arr_free(&want);
}

static void test_cast_of_stacked_experts_casts_every_element(void **state)
{
	struct recipe_fixture *f = *state;
	size_t down[E];

	add_experts(f, "down_proj.weight", down);
	built(rx_cast(&f->r, stack_transposed(f, down), SD_F32, f->err), f->err);
	/* out[e][h][i] = widen(down_e[i][h]): a bf16 widens by 16 zero bits */
	struct arr want = arr_new(SD_F32, 3, (uint64_t[]){ E, H, I });
	for (uint64_t e = 0; e < E; e++)
		for (uint64_t h = 0; h < H; h++)
			for (uint64_t i = 0; i < I; i++) {
				uint16_t b;
				memcpy(&b, f->mem.bytes[down[e]] + (i * H + h) * 2, 2);
				uint32_t w = (uint32_t)b << 16;
				memcpy(at(&want, (e * H + h) * I + i), &w, 4);
			}
	assert_recipe_computes(f, &want);
	arr_free(&want);
}

/* Row e of a stack needs expert e only: the others are never read. */
static void test_rows_of_a_stack_read_only_their_experts(void **state)
{
	struct recipe_fixture *f = *state;
	size_t up[E];
	unsigned char out[H * I * 2];

	add_experts(f, "up_proj.weight", up);
	stack_transposed(f, up);
	assert_int_equal(recipe_eval_cpu(&f->r, 1, 2, out, &f->reader, f->err), 0);
	assert_int_equal(f->reads[up[0]], 0);
	assert_true(f->reads[up[1]] > 0);
	assert_int_equal(f->reads[up[2]], 0);
}

/* ---- index0, slice0, slice_last ------------------------------------------------------ */

/* The HF view of a native grouped tensor splits it: one expert, transposed
 * (2-D).  The transpose takes its child a block of rows at a time, but every
 * row of index0 is the one expert row of the source, so the expert is read
 * once, not once a block (it was read 4 times here, 16 for a 2048 x 2048
 * BF16 expert: a native -> HF view read 12x its size from its source). */
static void test_a_split_expert_is_read_once_when_transposed(void **state)
{
	struct recipe_fixture *f = *state;
	/* 1024 rows of 1 KiB: four 256 KiB blocks for the 2-D transpose */
	size_t t = add_tensor(f, "experts", SD_BF16, 3, (uint64_t[]){ 3, 1024, 512 });
	struct arr all = ref_src(f, t), one = ref_index0(&all, 1);
	struct arr want = ref_transpose_last2(&one);
	int x = built(memsrc_src(&f->mem, &f->r, (uint32_t)t, f->err), f->err);

	x = built(rx_index0(&f->r, x, 1, f->err), f->err);
	built(rx_transpose_last2(&f->r, x, f->err), f->err);
	unsigned char *got = recipe_fixture_eval(f, 0, 512);
	assert_memory_equal(got, want.b, arr_bytes(&want));
	assert_int_equal(f->reads[t], 1);
	free(got);
	arr_free(&want);
	arr_free(&one);
	arr_free(&all);
}

static void test_index0_picks_one_slice_and_drops_dim_0(void **state)
{
	struct recipe_fixture *f = *state;
	size_t t3 = add_tensor(f, "cube", SD_BF16, 3, (uint64_t[]){ 4, 3, 5 });
	size_t t1 = add_tensor(f, "vec", SD_F32, 1, (uint64_t[]){ 6 });
	struct arr cube = ref_src(f, t3), vec = ref_src(f, t1), want;

	/* A 3-D tensor's plane */
	int x = built(memsrc_src(&f->mem, &f->r, (uint32_t)(t3), f->err), f->err);
	built(rx_index0(&f->r, x, 2, f->err), f->err);
	want = ref_index0(&cube, 2);
	assert_recipe_computes(f, &want);
	arr_free(&want);

	/* A row of that plane: a vector */
	built(rx_index0(&f->r, (int)f->r.nnodes - 1, 1, f->err), f->err);
	struct arr plane = ref_index0(&cube, 2);
	want = ref_index0(&plane, 1);
	assert_recipe_computes(f, &want);
	arr_free(&want);
	arr_free(&plane);

	/* An element of a vector: a scalar, one row */
	x = built(memsrc_src(&f->mem, &f->r, (uint32_t)(t1), f->err), f->err);
	built(rx_index0(&f->r, x, 5, f->err), f->err);
	assert_int_equal(rx_root(&f->r)->ndim, 0);
	want = ref_index0(&vec, 5);
	assert_recipe_computes(f, &want);
	arr_free(&want);

	/* A row of a 2-D transpose (a column of its source) */
	x = built(memsrc_src(&f->mem, &f->r, (uint32_t)(t3), f->err), f->err);
	x = built(rx_index0(&f->r, x, 3, f->err), f->err);
	x = built(rx_transpose_last2(&f->r, x, f->err), f->err);
	built(rx_index0(&f->r, x, 4, f->err), f->err);
	struct arr p3 = ref_index0(&cube, 3), tp = ref_transpose_last2(&p3);
	want = ref_index0(&tp, 4);
	assert_recipe_computes(f, &want);
	arr_free(&want);
	arr_free(&p3);
	arr_free(&tp);
	arr_free(&cube);
	arr_free(&vec);
}

static void test_slice0_keeps_rows_a_to_b(void **state)
{
	struct recipe_fixture *f = *state;
	size_t t = add_tensor(f, "w", SD_BF16, 2, (uint64_t[]){ 9, 4 });
	struct arr s = ref_src(f, t), want;

	int x = built(memsrc_src(&f->mem, &f->r, (uint32_t)(t), f->err), f->err);
	built(rx_slice0(&f->r, x, 2, 7, f->err), f->err);
	want = ref_slice(&s, 0, 2, 7);
	assert_recipe_computes(f, &want);
	arr_free(&want);

	/* Rows of a 2-D transpose: columns 1..3 of the source */
	x = built(rx_transpose_last2(&f->r, x, f->err), f->err);
	built(rx_slice0(&f->r, x, 1, 3, f->err), f->err);
	struct arr tp = ref_transpose_last2(&s);
	want = ref_slice(&tp, 0, 1, 3);
	assert_recipe_computes(f, &want);
	arr_free(&want);
	arr_free(&tp);

	/* An empty slice has no rows */
	built(rx_slice0(&f->r, 0, 4, 4, f->err), f->err);
	assert_int_equal(rx_rows(rx_root(&f->r)), 0);
	arr_free(&s);
}

static void test_slice0_of_a_stack_keeps_experts_a_to_b(void **state)
{
	struct recipe_fixture *f = *state;
	size_t up[E];

	add_experts(f, "up_proj.weight", up);
	built(rx_slice0(&f->r, stack_transposed(f, up), 1, 3, f->err), f->err);
	struct arr parts[E];
	for (int e = 0; e < E; e++) {
		struct arr s = ref_src(f, up[e]);
		parts[e] = ref_transpose_last2(&s);
		arr_free(&s);
	}
	struct arr all = ref_stack0(parts, E), want = ref_slice(&all, 0, 1, 3);
	assert_recipe_computes(f, &want);
	assert_int_equal(f->reads[up[0]], 0);   /* expert 0 is outside the slice */
	arr_free(&want);
	arr_free(&all);
	for (int e = 0; e < E; e++)
		arr_free(&parts[e]);
}

static void test_slice_last_keeps_columns_a_to_b(void **state)
{
	struct recipe_fixture *f = *state;
	size_t t2 = add_tensor(f, "mat", SD_BF16, 2, (uint64_t[]){ 6, 10 });
	size_t t3 = add_tensor(f, "cube", SD_F32, 3, (uint64_t[]){ 3, 4, 9 });
	size_t t1 = add_tensor(f, "vec", SD_U8, 1, (uint64_t[]){ 11 });
	struct arr mat = ref_src(f, t2), cube = ref_src(f, t3), vec = ref_src(f, t1);
	struct arr want;

	int x = built(memsrc_src(&f->mem, &f->r, (uint32_t)(t2), f->err), f->err);
	built(rx_slice_last(&f->r, x, 3, 8, f->err), f->err);
	want = ref_slice(&mat, 1, 3, 8);
	assert_recipe_computes(f, &want);
	arr_free(&want);

	x = built(memsrc_src(&f->mem, &f->r, (uint32_t)(t3), f->err), f->err);
	built(rx_slice_last(&f->r, x, 0, 4, f->err), f->err);
	want = ref_slice(&cube, 2, 0, 4);
	assert_recipe_computes(f, &want);
	arr_free(&want);

	/* For a vector the last dim is the row dim */
	x = built(memsrc_src(&f->mem, &f->r, (uint32_t)(t1), f->err), f->err);
	built(rx_slice_last(&f->r, x, 2, 9, f->err), f->err);
	want = ref_slice(&vec, 0, 2, 9);
	assert_recipe_computes(f, &want);
	arr_free(&want);

	/* Columns of a 2-D transpose: rows 1..5 of the source */
	x = built(memsrc_src(&f->mem, &f->r, (uint32_t)(t2), f->err), f->err);
	x = built(rx_transpose_last2(&f->r, x, f->err), f->err);
	built(rx_slice_last(&f->r, x, 1, 5, f->err), f->err);
	struct arr tp = ref_transpose_last2(&mat);
	want = ref_slice(&tp, 1, 1, 5);
	assert_recipe_computes(f, &want);
	arr_free(&want);
	arr_free(&tp);
	arr_free(&mat);
	arr_free(&cube);
	arr_free(&vec);
}

/* ---- reshape ------------------------------------------------------------------ */

/* Rows of a reshape that cut through the child's rows: [6, 10] as [4, 15]
 * and [20, 3] (every output row range starts or ends inside a child row). */
static void test_reshape_keeps_the_bytes_in_row_major_order(void **state)
{
	struct recipe_fixture *f = *state;
	size_t t = add_tensor(f, "mat", SD_BF16, 2, (uint64_t[]){ 6, 10 });
	static const uint64_t shapes[][3] = { { 4, 15, 0 }, { 20, 3, 0 }, { 2, 3, 10 } };
	static const int nds[] = { 2, 2, 3 };

	for (size_t k = 0; k < 3; k++) {
		struct arr want = ref_src(f, t);
		want.ndim = nds[k];
		for (int d = 0; d < nds[k]; d++)
			want.shape[d] = shapes[k][d];
		int x = built(memsrc_src(&f->mem, &f->r, (uint32_t)(t), f->err), f->err);
		built(rx_reshape(&f->r, x, nds[k], shapes[k], f->err), f->err);
		assert_recipe_computes(f, &want);
		arr_free(&want);
		recipe_free(&f->r);
	}
}

/* PEFT's ParamWrapper B tensor: native [E, I, r] -> [I, r*E] with column
 * k*E + e holding A[e, :, k], built as reshape/transpose/reshape and checked
 * element by element against that formula. */
static void test_reshape_transpose_reshape_is_the_rank_major_permute(void **state)
{
	struct recipe_fixture *f = *state;
	const uint64_t NE = 5, NI = 7, R = 3;
	size_t t = add_tensor(f, "lora_down_A", SD_F32, 3, (uint64_t[]){ NE, NI, R });
	struct arr a = ref_src(f, t);
	struct arr want = arr_new(SD_F32, 2, (uint64_t[]){ NI, R * NE });

	for (uint64_t e = 0; e < NE; e++)
		for (uint64_t i = 0; i < NI; i++)
			for (uint64_t k = 0; k < R; k++)
				memcpy(at(&want, i * R * NE + k * NE + e),
				       at(&a, (e * NI + i) * R + k), 4);
	int x = built(memsrc_src(&f->mem, &f->r, (uint32_t)(t), f->err), f->err);
	x = built(rx_reshape(&f->r, x, 2, (uint64_t[]){ NE, NI * R }, f->err), f->err);
	x = built(rx_transpose_last2(&f->r, x, f->err), f->err);
	built(rx_reshape(&f->r, x, 2, (uint64_t[]){ NI, R * NE }, f->err), f->err);
	assert_recipe_computes(f, &want);
	arr_free(&want);
	arr_free(&a);
}

static void test_reshape_to_another_element_count_is_refused(void **state)
{
	struct recipe_fixture *f = *state;
	int x = src_node(f, "w", SD_BF16, 2, (uint64_t[]){ 4, 6 });
	uint32_t before = f->r.nnodes;

	assert_int_equal(rx_reshape(&f->r, x, 2, (uint64_t[]){ 5, 5 }, f->err), -EINVAL);
	assert_int_equal(f->r.nnodes, before);
	assert_non_null(strstr(f->err, "BF16[4,6] does not have 25 elements"));
}

/* ---- builders refuse what does not fit ------------------------------------------------ */

/* The builder's result was rc, nothing was added, and the message says what. */
static void assert_refused(struct recipe_fixture *f, int rc, uint32_t nodes_before,
			   const char *message)
{
	assert_int_equal(rc, -EINVAL);
	assert_int_equal(f->r.nnodes, nodes_before);
	assert_string_equal(f->err, message);
	f->err[0] = '\0';
}

static void test_transpose_of_a_vector_is_refused(void **state)
{
	struct recipe_fixture *f = *state;
	int x = src_node(f, "v", SD_BF16, 1, (uint64_t[]){ 4 });

	assert_refused(f, rx_transpose_last2(&f->r, x, f->err), 1,
		       "cannot transpose a tensor of 1 dims");
}

static void test_concat_of_mismatched_shapes_or_dtypes_is_refused(void **state)
{
	struct recipe_fixture *f = *state;
	int a = src_node(f, "a", SD_BF16, 2, (uint64_t[]){ 2, 3 });
	int b = src_node(f, "b", SD_BF16, 2, (uint64_t[]){ 3, 3 });
	int c = src_node(f, "c", SD_F32, 2, (uint64_t[]){ 2, 3 });
	int d = src_node(f, "d", SD_BF16, 3, (uint64_t[]){ 1, 2, 3 });

	assert_refused(f, rx_concat_last(&f->r, (int[]){ a, b }, 2, f->err), 4,
		       "concat_last: parts do not fit together: BF16[2,3] vs BF16[3,3]");
	assert_refused(f, rx_concat_last(&f->r, (int[]){ a, c }, 2, f->err), 4,
		       "concat_last: parts do not fit together: BF16[2,3] vs F32[2,3]");
	assert_refused(f, rx_concat_last(&f->r, (int[]){ a, d }, 2, f->err), 4,
		       "concat_last: parts do not fit together: BF16[2,3] vs BF16[1,2,3]");
	assert_refused(f, rx_concat_last(&f->r, NULL, 0, f->err), 4,
		       "concat_last of nothing");
}

static void test_stack_of_mismatched_shapes_or_dtypes_is_refused(void **state)
{
	struct recipe_fixture *f = *state;
	int a = src_node(f, "a", SD_BF16, 2, (uint64_t[]){ 2, 3 });
	int b = src_node(f, "b", SD_BF16, 2, (uint64_t[]){ 2, 4 });
	int c = src_node(f, "c", SD_F16, 2, (uint64_t[]){ 2, 3 });
	int d = src_node(f, "d", SD_BF16, 8, (uint64_t[]){ 1, 1, 1, 1, 1, 1, 1, 2 });

	assert_refused(f, rx_stack0(&f->r, (int[]){ a, a, b }, 3, f->err), 4,
		       "stack0: parts do not fit together: BF16[2,3] vs BF16[2,4]");
	assert_refused(f, rx_stack0(&f->r, (int[]){ a, c }, 2, f->err), 4,
		       "stack0: parts do not fit together: BF16[2,3] vs F16[2,3]");
	assert_refused(f, rx_stack0(&f->r, (int[]){ d, d }, 2, f->err), 4,
		       "stack0: too many dims");
	assert_refused(f, rx_stack0(&f->r, NULL, 0, f->err), 4, "stack0 of nothing");
}

static void test_index0_out_of_range_is_refused(void **state)
{
	struct recipe_fixture *f = *state;
	int a = src_node(f, "a", SD_BF16, 2, (uint64_t[]){ 5, 3 });
	int s = src_node(f, "s", SD_BF16, 0, NULL);

	assert_refused(f, rx_index0(&f->r, a, 5, f->err), 2,
		       "index0: index 5 out of range");
	assert_refused(f, rx_index0(&f->r, s, 0, f->err), 2,
		       "index0: index 0 out of range");
}

static void test_slice_out_of_range_is_refused(void **state)
{
	struct recipe_fixture *f = *state;
	int a = src_node(f, "a", SD_BF16, 2, (uint64_t[]){ 5, 3 });
	int s = src_node(f, "s", SD_BF16, 0, NULL);

	assert_refused(f, rx_slice0(&f->r, a, 2, 6, f->err), 2,
		       "slice [2, 6) out of range");
	assert_refused(f, rx_slice0(&f->r, a, 3, 2, f->err), 2,
		       "slice [3, 2) out of range");
	assert_refused(f, rx_slice_last(&f->r, a, 0, 4, f->err), 2,
		       "slice [0, 4) out of range");
	assert_refused(f, rx_slice_last(&f->r, s, 0, 0, f->err), 2,
		       "slice [0, 0) out of range");
	/* The edges themselves are in range */
	built(rx_slice0(&f->r, a, 5, 5, f->err), f->err);
	built(rx_slice_last(&f->r, a, 0, 3, f->err), f->err);
}

static void test_cast_of_a_non_float_dtype_is_refused(void **state)
{
	struct recipe_fixture *f = *state;
	int i = src_node(f, "i", SD_I32, 1, (uint64_t[]){ 4 });
	int b = src_node(f, "b", SD_BF16, 1, (uint64_t[]){ 4 });
	int q = src_node(f, "q", SD_F8_E4M3, 1, (uint64_t[]){ 4 });

	assert_refused(f, rx_cast(&f->r, i, SD_F32, f->err), 3,
		       "cannot cast I32 to F32");
	assert_refused(f, rx_cast(&f->r, b, SD_I8, f->err), 3,
		       "cannot cast BF16 to I8");
	assert_refused(f, rx_cast(&f->r, q, SD_BF16, f->err), 3,
		       "cannot cast F8_E4M3 to BF16");
}

/* ---- row separability ------------------------------------------------------------------ */

static void test_row_separability_follows_what_rows_need(void **state)
{
	struct recipe_fixture *f = *state;
	struct recipe *r = &f->r;
	int m = src_node(f, "mat", SD_BF16, 2, (uint64_t[]){ 4, 6 });
	int c = src_node(f, "cube", SD_BF16, 3, (uint64_t[]){ 2, 4, 6 });
	int tm = built(rx_transpose_last2(r, m, f->err), f->err);
	int tc = built(rx_transpose_last2(r, c, f->err), f->err);
	int st = built(rx_stack0(r, (int[]){ tm, tm }, 2, f->err), f->err);
	int cast_tm = built(rx_cast(r, tm, SD_F32, f->err), f->err);
	int cat_tm = built(rx_concat_last(r, (int[]){ tm, tm }, 2, f->err), f->err);
	int cast_m = built(rx_cast(r, m, SD_F32, f->err), f->err);
	int cast_st = built(rx_cast(r, st, SD_F32, f->err), f->err);

	assert_true(rx_row_separable(r, (uint32_t)m));
	assert_false(rx_row_separable(r, (uint32_t)tm));   /* a row is a source column */
	assert_true(rx_row_separable(r, (uint32_t)tc));    /* a row is its own batch */
	assert_true(rx_row_separable(r, (uint32_t)st));    /* a row is one whole child */
	assert_false(rx_row_separable(r, (uint32_t)cast_tm));
	assert_false(rx_row_separable(r, (uint32_t)cat_tm));
	assert_true(rx_row_separable(r, (uint32_t)cast_m));
	assert_true(rx_row_separable(r, (uint32_t)cast_st));
}

/* ---- text form ----------------------------------------------------------------------------- */

static void test_format_writes_the_expression(void **state)
{
	struct recipe_fixture *f = *state;
	char buf[512];
	const char *want =
		"cast(stack0(transpose_last2(src(\"a.0.w\")), transpose_last2(src(\"a.1.w\"))), F32)";
	int a0 = src_node(f, "a.0.w", SD_BF16, 2, (uint64_t[]){ 2, 3 });
	int t0 = built(rx_transpose_last2(&f->r, a0, f->err), f->err);
	int a1 = src_node(f, "a.1.w", SD_BF16, 2, (uint64_t[]){ 2, 3 });
	int t1 = built(rx_transpose_last2(&f->r, a1, f->err), f->err);
	int st = built(rx_stack0(&f->r, (int[]){ t0, t1 }, 2, f->err), f->err);

	built(rx_cast(&f->r, st, SD_F32, f->err), f->err);
	assert_int_equal(recipe_format(&f->r, memsrc_name, &f->mem, false, buf, sizeof(buf)), strlen(want));
	assert_string_equal(buf, want);
}

static void test_format_writes_the_arguments_of_index_and_slices(void **state)
{
	struct recipe_fixture *f = *state;
	char buf[256];
	int x = src_node(f, "w", SD_BF16, 3, (uint64_t[]){ 4, 5, 6 });

	x = built(rx_index0(&f->r, x, 1, f->err), f->err);
	x = built(rx_slice0(&f->r, x, 0, 2, f->err), f->err);
	x = built(rx_slice_last(&f->r, x, 3, 6, f->err), f->err);
	built(rx_concat_last(&f->r, (int[]){ x, x }, 2, f->err), f->err);
	recipe_format(&f->r, memsrc_name, &f->mem, false, buf, sizeof(buf));
	assert_string_equal(buf,
		"concat_last(slice_last(slice0(index0(src(\"w\"), 1), 0, 2), 3, 6), "
		"slice_last(slice0(index0(src(\"w\"), 1), 0, 2), 3, 6))");
}

/* Lists of more than three children show the first two, a count, the last. */
static void test_format_shortens_long_child_lists_unless_full(void **state)
{
	struct recipe_fixture *f = *state;
	char buf[512];
	int kids[5];

	for (int e = 0; e < 5; e++) {
		char name[32];
		snprintf(name, sizeof(name), "e%d", e);
		kids[e] = src_node(f, name, SD_BF16, 1, (uint64_t[]){ 2 });
	}
	built(rx_stack0(&f->r, kids, 5, f->err), f->err);
	recipe_format(&f->r, memsrc_name, &f->mem, false, buf, sizeof(buf));
	assert_string_equal(buf,
		"stack0(src(\"e0\"), src(\"e1\"), ... 2 more ..., src(\"e4\"))");
	recipe_format(&f->r, memsrc_name, &f->mem, true, buf, sizeof(buf));
	assert_string_equal(buf,
		"stack0(src(\"e0\"), src(\"e1\"), src(\"e2\"), src(\"e3\"), src(\"e4\"))");
	built(rx_stack0(&f->r, kids, 4, f->err), f->err);
	recipe_format(&f->r, memsrc_name, &f->mem, false, buf, sizeof(buf));
	assert_string_equal(buf,
		"stack0(src(\"e0\"), src(\"e1\"), ... 1 more ..., src(\"e3\"))");
	/* Three children are shown as they are */
	built(rx_stack0(&f->r, kids, 3, f->err), f->err);
	recipe_format(&f->r, memsrc_name, &f->mem, false, buf, sizeof(buf));
	assert_string_equal(buf, "stack0(src(\"e0\"), src(\"e1\"), src(\"e2\"))");
}

static void test_format_into_a_short_buffer_truncates_and_returns_the_full_length(void **state)
{
	struct recipe_fixture *f = *state;
	char buf[8];
	int x = src_node(f, "weight", SD_BF16, 1, (uint64_t[]){ 2 });

	built(rx_cast(&f->r, x, SD_F32, f->err), f->err);
	assert_int_equal(recipe_format(&f->r, memsrc_name, &f->mem, false, buf, sizeof(buf)),
			 strlen("cast(src(\"weight\"), F32)"));
	assert_string_equal(buf, "cast(sr");
	assert_int_equal(recipe_format(&f->r, memsrc_name, &f->mem, false, NULL, 0),
			 strlen("cast(src(\"weight\"), F32)"));
}

/* ---- reader errors --------------------------------------------------------------------------- */

static void test_reader_error_reaches_the_caller_with_its_message(void **state)
{
	struct recipe_fixture *f = *state;
	size_t up[E];
	unsigned char out[E * H * I * 4];

	add_experts(f, "up_proj.weight", up);
	built(rx_cast(&f->r, stack_transposed(f, up), SD_F32, f->err), f->err);
	f->fail_tensor = (long)up[1];
	assert_int_equal(recipe_eval_cpu(&f->r, 0, E, out, &f->reader, f->err), -EIO);
	assert_string_equal(f->err, "reading 'experts.1.up_proj.weight' at row 0: disk on fire");
	/* Rows that do not need the failing tensor still evaluate */
	assert_int_equal(recipe_eval_cpu(&f->r, 2, 3, out, &f->reader, f->err), 0);
}

/*
 * Rows can hold no bytes (a zero-width last dim): asking for them is asking
 * for nothing, and must succeed without reading or writing anything.
 */
static void test_rows_of_zero_bytes_evaluate_to_nothing(void **state)
{
	struct recipe_fixture *f = *state;
	int empty = src_node(f, "empty", SD_BF16, 2, (uint64_t[]){ 3, 0 });
	int cube = src_node(f, "cube", SD_BF16, 3, (uint64_t[]){ 2, 0, 4 });
	int full = src_node(f, "full", SD_BF16, 2, (uint64_t[]){ 3, 4 });
	unsigned char none[1];
	struct recipe *r = &f->r;

	built(rx_concat_last(r, (int[]){ empty, empty }, 2, f->err), f->err);
	assert_int_equal(recipe_eval_cpu(r, 0, 3, none, &f->reader, f->err), 0);
	built(rx_slice_last(r, empty, 0, 0, f->err), f->err);
	assert_int_equal(recipe_eval_cpu(r, 0, 3, none, &f->reader, f->err), 0);
	built(rx_slice_last(r, full, 2, 2, f->err), f->err);
	assert_int_equal(recipe_eval_cpu(r, 0, 3, none, &f->reader, f->err), 0);
	built(rx_transpose_last2(r, cube, f->err), f->err);
	assert_int_equal(recipe_eval_cpu(r, 0, 2, none, &f->reader, f->err), 0);
	assert_int_equal(f->reads[full], 0);
}

/* ---- plan chunking ------------------------------------------------------------------------------ */

/* Add the fixture's recipe to plan p under name (the plan takes it). */
static void plan_take(struct recipe_fixture *f, struct plan *p, const char *name)
{
	struct recipe *r = malloc(sizeof(*r));

	assert_non_null(r);
	*r = f->r;
	memset(&f->r, 0, sizeof(f->r));
	assert_int_equal(plan_add(p, name, rx_root(r), 0, r, f->err), 0);
}

/* Chunks cover the tensor: all but the last are full, none is empty. */
static void assert_chunks_cover(const struct plan_tensor *t)
{
	uint64_t cb = plan_chunk_bytes(t), n = plan_nchunks(t);

	assert_int_equal(cb, t->chunk_rows * rx_row_bytes(rx_root(t->recipe)));
	assert_true(n >= 1);
	assert_true((n - 1) * cb < t->nbytes);
	assert_true(t->nbytes <= n * cb);
}

static void test_plan_gives_stacked_experts_one_expert_per_chunk(void **state)
{
	struct recipe_fixture *f = *state;
	struct plan p = { 0 };
	size_t up[E], down[E];

	add_experts(f, "up_proj.weight", up);
	add_experts(f, "down_proj.weight", down);
	stack_transposed(f, up);
	plan_take(f, &p, "experts.gate_and_up_projs");
	built(rx_cast(&f->r, stack_transposed(f, down), SD_F32, f->err), f->err);
	plan_take(f, &p, "experts.down_projs");
	plan_chunk(&p);

	assert_int_equal(p.tensors[0].nbytes, E * H * I * 2);
	assert_int_equal(p.tensors[0].chunk_rows, 1);
	assert_int_equal(plan_chunk_bytes(&p.tensors[0]), H * I * 2);
	assert_int_equal(plan_nchunks(&p.tensors[0]), E);
	assert_int_equal(p.tensors[1].nbytes, E * H * I * 4);
	assert_int_equal(p.tensors[1].chunk_rows, 1);
	assert_int_equal(plan_chunk_bytes(&p.tensors[1]), H * I * 4);
	assert_int_equal(plan_nchunks(&p.tensors[1]), E);
	plan_free(&p);
}

/* A row of a 2-D transpose needs the whole source: one chunk, all rows. */
static void test_plan_keeps_a_2d_transpose_in_one_chunk(void **state)
{
	struct recipe_fixture *f = *state;
	struct plan p = { 0 };
	size_t t = recipe_fixture_add(f, "big", SD_BF16, 2, (uint64_t[]){ 4096, 3000 }, MEMSRC_NO_BYTES);
	int x = built(memsrc_src(&f->mem, &f->r, (uint32_t)(t), f->err), f->err);

	built(rx_transpose_last2(&f->r, x, f->err), f->err);
	plan_take(f, &p, "big.t");
	plan_chunk(&p);
	assert_int_equal(p.tensors[0].chunk_rows, 3000);
	assert_int_equal(plan_nchunks(&p.tensors[0]), 1);
	assert_int_equal(plan_chunk_bytes(&p.tensors[0]), p.tensors[0].nbytes);
	plan_free(&p);
}

/* A separable tensor is cut into chunks of whole rows of about 4 MiB. */
static void test_plan_cuts_a_separable_cast_into_4_mib_chunks(void **state)
{
	struct recipe_fixture *f = *state;
	struct plan p = { 0 };
	const uint64_t target = 4u << 20;
	size_t big = recipe_fixture_add(f, "big", SD_F32, 2, (uint64_t[]){ 100000, 1000 },
					MEMSRC_NO_BYTES);
	size_t wide = recipe_fixture_add(f, "wide", SD_F32, 2, (uint64_t[]){ 3, 3000000 },
					 MEMSRC_NO_BYTES);
	size_t small = recipe_fixture_add(f, "A_log", SD_BF16, 1, (uint64_t[]){ 2 },
					  MEMSRC_NO_BYTES);

	built(rx_cast(&f->r, built(memsrc_src(&f->mem, &f->r, (uint32_t)(big), f->err), f->err), SD_BF16, f->err), f->err);
	plan_take(f, &p, "big.bf16");
	built(rx_cast(&f->r, built(memsrc_src(&f->mem, &f->r, (uint32_t)(wide), f->err), f->err), SD_BF16, f->err), f->err);
	plan_take(f, &p, "wide.bf16");
	built(rx_cast(&f->r, built(memsrc_src(&f->mem, &f->r, (uint32_t)(small), f->err), f->err), SD_F32, f->err), f->err);
	plan_take(f, &p, "A_log.f32");
	plan_chunk(&p);

	/* 2000-byte rows: as many as fit in 4 MiB */
	const struct plan_tensor *t = &p.tensors[0];
	assert_int_equal(t->chunk_rows, target / 2000);
	assert_true(plan_chunk_bytes(t) <= target);
	assert_true(plan_chunk_bytes(t) > target - 2000);
	assert_int_equal(plan_nchunks(t), (100000 + target / 2000 - 1) / (target / 2000));
	assert_chunks_cover(t);
	/* Rows over 4 MiB: one row a chunk */
	t = &p.tensors[1];
	assert_int_equal(t->chunk_rows, 1);
	assert_int_equal(plan_nchunks(t), 3);
	assert_chunks_cover(t);
	/* A tensor smaller than a chunk is one chunk of all its rows */
	t = &p.tensors[2];
	assert_int_equal(t->chunk_rows, 2);
	assert_int_equal(plan_nchunks(t), 1);
	assert_int_equal(plan_chunk_bytes(t), 8);
	assert_chunks_cover(t);
	plan_free(&p);
}

static void test_plan_add_refuses_a_duplicate_name(void **state)
{
	struct recipe_fixture *f = *state;
	struct plan p = { 0 };
	int x = src_node(f, "w", SD_BF16, 1, (uint64_t[]){ 4 });
	struct rx_node as_stored = f->r.nodes[x];

	built(rx_cast(&f->r, x, SD_F32, f->err), f->err);
	plan_take(f, &p, "model.w");
	assert_int_equal(plan_add(&p, "model.w", &as_stored, 0, NULL, f->err), -EEXIST);
	assert_string_equal(f->err, "two tensors of the view would be called 'model.w'");
	assert_int_equal(p.n, 1);
	assert_int_equal(p.tensors[0].dtype, SD_F32);   /* the first one stays */
	plan_free(&p);
}

/* Found by fuzzing: a rename to __metadata__, or a name past the format's
 * limit, made view files our own reader refused. */
static void test_plan_add_refuses_names_a_header_cannot_hold(void **state)
{
	struct recipe_fixture *f = *state;
	struct plan p = { 0 };
	int x = src_node(f, "w", SD_BF16, 1, (uint64_t[]){ 4 });
	struct rx_node as_stored = f->r.nodes[x];
	char *long_name = malloc(ST_MAX_NAME + 2);

	assert_non_null(long_name);
	memset(long_name, 'p', ST_MAX_NAME + 1);
	long_name[ST_MAX_NAME + 1] = '\0';
	assert_int_equal(plan_add(&p, "__metadata__", &as_stored, 0, NULL, f->err), -EINVAL);
	assert_non_null(strstr(f->err, "__metadata__"));
	assert_int_equal(plan_add(&p, long_name, &as_stored, 0, NULL, f->err), -EINVAL);
	assert_non_null(strstr(f->err, "4097 bytes"));
	assert_int_equal(plan_add(&p, "", &as_stored, 0, NULL, f->err), -EINVAL);
	/* half of a two-byte character, as a rename working on bytes can leave */
	assert_int_equal(plan_add(&p, "layers.\xc3.w", &as_stored, 0, NULL, f->err), -EINVAL);
	assert_non_null(strstr(f->err, "\\xc3"));
	assert_int_equal(plan_add(&p, "layers.\xc3\x9d.w", &as_stored, 0, NULL, f->err), 0);
	long_name[ST_MAX_NAME] = '\0';
	assert_int_equal(plan_add(&p, long_name, &as_stored, 0, NULL, f->err), 0);
	assert_int_equal(p.n, 2);
	free(long_name);
	plan_free(&p);
}

#define T(name) cmocka_unit_test_prestate_setup_teardown(name, recipe_fixture_setup, \
							 recipe_fixture_teardown, &stream)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_src_yields_the_tensor_bytes_as_stored),
		T(test_src_of_a_scalar_is_one_row),
		T(test_cast_bf16_to_f32_widens_every_element),
		T(test_cast_f32_to_bf16_rounds_like_the_scalar_cast),
		T(test_cast_f16_to_f32_widens_every_element),
		T(test_cast_f32_to_f16_rounds_like_the_scalar_cast),
		T(test_cast_bf16_to_f16_goes_through_f32),
		T(test_transpose_last2_of_2d_swaps_rows_and_columns),
		T(test_transpose_last2_moves_elements_of_1_2_4_and_8_bytes),
		T(test_transpose_last2_of_3d_and_4d_transposes_each_batch),
		T(test_concat_last_of_2d_joins_rows_side_by_side),
		T(test_concat_last_of_3d_joins_along_the_last_dim),
		T(test_concat_last_of_1d_appends_along_dim_0),
		T(test_concat_last_of_transposes_fills_each_column_range),
		T(test_concat_last_of_3d_transposes_fills_every_batch),
		T(test_concat_last_of_parts_larger_than_a_block),
		T(test_cast_larger_than_a_block_converts_every_element),
		T(test_stack0_of_transposed_experts_is_e_h_i),
		T(test_stack0_of_gate_and_up_concat_is_gated_e_h_2i),
		T(test_cast_of_stacked_experts_casts_every_element),
		T(test_rows_of_a_stack_read_only_their_experts),
		T(test_index0_picks_one_slice_and_drops_dim_0),
		T(test_a_split_expert_is_read_once_when_transposed),
		T(test_slice0_keeps_rows_a_to_b),
		T(test_slice0_of_a_stack_keeps_experts_a_to_b),
		T(test_slice_last_keeps_columns_a_to_b),
		T(test_reshape_keeps_the_bytes_in_row_major_order),
		T(test_reshape_transpose_reshape_is_the_rank_major_permute),
		T(test_reshape_to_another_element_count_is_refused),
		T(test_transpose_of_a_vector_is_refused),
		T(test_concat_of_mismatched_shapes_or_dtypes_is_refused),
		T(test_stack_of_mismatched_shapes_or_dtypes_is_refused),
		T(test_index0_out_of_range_is_refused),
		T(test_slice_out_of_range_is_refused),
		T(test_cast_of_a_non_float_dtype_is_refused),
		T(test_row_separability_follows_what_rows_need),
		T(test_format_writes_the_expression),
		T(test_format_writes_the_arguments_of_index_and_slices),
		T(test_format_shortens_long_child_lists_unless_full),
		T(test_format_into_a_short_buffer_truncates_and_returns_the_full_length),
		T(test_reader_error_reaches_the_caller_with_its_message),
		T(test_plan_gives_stacked_experts_one_expert_per_chunk),
		T(test_plan_keeps_a_2d_transpose_in_one_chunk),
		T(test_plan_cuts_a_separable_cast_into_4_mib_chunks),
		T(test_plan_add_refuses_a_duplicate_name),
		T(test_plan_add_refuses_names_a_header_cannot_hold),
		/* Last: before the fix it stops the program (division by zero). */
		T(test_rows_of_zero_bytes_evaluate_to_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
