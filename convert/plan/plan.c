/* plan.c — the plan's tensor list and its chunking policy (see plan.h). */
#include "plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "grow.h"
#include "json.h"
#include "safetensors.h"

/* Converted chunks aim at this size: big enough that per-chunk overhead
 * vanishes next to a 1 MiB FUSE request, small enough that a read near
 * the start of a huge tensor does not convert much more than it needs. */
#define CHUNK_TARGET ((uint64_t)4 << 20)

int plan_add(struct plan *p, const char *name, const struct rx_node *shape,
	     uint32_t src, struct recipe *recipe, char *err)
{
	int rc = sd_grow(&p->tensors, &p->cap, p->n + 1, sizeof(*p->tensors), err);

	if (rc < 0)
		return rc;
	/* Every name must fit the header of a file our own reader accepts:
	 * source names are valid UTF-8, but a rename working on bytes can cut
	 * a character in two. */
	size_t len = strlen(name);
	if (!name[0] || len > ST_MAX_NAME || !strcmp(name, "__metadata__") ||
	    !sd_utf8_valid(name, len)) {
		char shown[160];
		return sd_err(err, -EINVAL, "a tensor of the view would be called %s (%zu bytes), which a safetensors header cannot hold",
			      sd_quote(name, len, false, shown, sizeof(shown)), len);
	}
	struct plan_tensor *t = &p->tensors[p->n];
	memset(t, 0, sizeof(*t));
	if (!(t->name = strdup(name)))
		return sd_err(err, -ENOMEM, "out of memory");
	t->dtype = shape->dtype;
	t->ndim = shape->ndim;
	memcpy(t->shape, shape->shape, sizeof(t->shape));
	t->nbytes = rx_rows(shape) * rx_row_bytes(shape);
	t->src = src;
	t->recipe = recipe;
	size_t other;
	rc = strmap_put(&p->by_name, t->name, p->n, &other);
	if (rc < 0) {
		free(t->name);
		if (rc == -EEXIST)
			return sd_err(err, rc, "two tensors of the view would be called '%s'", name);
		return sd_err(err, rc, "out of memory");
	}
	p->n++;
	return 0;
}

static const struct rx_node *under_casts(const struct recipe *r)
{
	const struct rx_node *n = rx_root(r);

	while (n->op == RX_CAST)
		n = &r->nodes[r->kids[n->kids]];
	return n;
}

void plan_chunk(struct plan *p)
{
	for (size_t i = 0; i < p->n; i++) {
		struct plan_tensor *t = &p->tensors[i];
		if (!t->recipe)
			continue;
		const struct rx_node *root = rx_root(t->recipe);
		uint64_t rows = rx_rows(root), rb = rx_row_bytes(root);
		if (under_casts(t->recipe)->op == RX_STACK0)
			t->chunk_rows = 1;      /* one expert is the natural chunk */
		else if (!rx_row_separable(t->recipe, t->recipe->nnodes - 1) || !rb)
			t->chunk_rows = rows ? rows : 1;
		else
			t->chunk_rows = rb >= CHUNK_TARGET ? 1 : CHUNK_TARGET / rb;
		if (t->chunk_rows > rows && rows)
			t->chunk_rows = rows;
	}
}

uint64_t plan_chunk_bytes(const struct plan_tensor *t)
{
	return t->chunk_rows * rx_row_bytes(rx_root(t->recipe));
}

uint64_t plan_nchunks(const struct plan_tensor *t)
{
	uint64_t rows = rx_rows(rx_root(t->recipe));

	return t->nbytes ? (rows + t->chunk_rows - 1) / t->chunk_rows : 0;
}

int plan_src(struct recipe *r, const struct source *s, size_t t, char *err)
{
	const struct src_tensor *st = &s->tensors[t];

	return rx_src(r, (uint32_t)t, st->dtype, st->ndim, st->shape, err);
}

void plan_free(struct plan *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->tensors[i].name);
		free(p->tensors[i].preload);
		if (p->tensors[i].recipe) {
			recipe_free(p->tensors[i].recipe);
			free(p->tensors[i].recipe);
		}
	}
	free(p->tensors);
	free(p->files.file_of);
	strmap_free(&p->by_name);
	memset(p, 0, sizeof(*p));
}
