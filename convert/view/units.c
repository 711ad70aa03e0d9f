/* units.c — listing a view's bytes as work units (see units.h). */
#include "units.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "grow.h"

/* Where tree 0 put each of its tensors and passed-through files, so the
 * later trees can place the same bytes from the same units. */
struct first_tree {
	size_t *tensor_unit;    /* first unit of plan tensor t, count below */
	size_t *tensor_n;
	size_t *file_unit;      /* by source file: first unit of its copy */
	size_t *file_n;
};

static int add_place(struct units *us, size_t ui, uint32_t file, uint64_t off,
		     char *err)
{
	struct unit *u = &us->u[ui];
	int rc = sd_grow(&us->places, &us->placecap, us->nplaces + 1,
			 sizeof(*us->places), err);

	if (rc < 0)
		return rc;
	if (us->nplaces >= UNIT_NO_PLACE)
		return sd_err(err, -E2BIG, "too many pieces to write");
	uint32_t p = (uint32_t)us->nplaces++;
	us->places[p] = (struct unit_place){ file, UNIT_NO_PLACE, off };
	if (u->nplaces++)
		us->places[u->last].next = p;
	else
		u->first = p;
	u->last = p;
	us->files[file].nunits++;
	return 0;
}

/* Append unit *proto placed at (file, off). */
static int add_unit(struct units *us, const struct unit *proto, uint32_t file,
		    uint64_t off, char *err)
{
	int rc = sd_grow(&us->u, &us->cap, us->n + 1, sizeof(*us->u), err);

	if (rc < 0)
		return rc;
	us->u[us->n] = *proto;
	us->u[us->n].nplaces = 0;
	us->n++;
	return add_place(us, us->n - 1, file, off, err);
}

/* Bytes [0, len) of source file f from off, in pieces, at file/at. */
static int add_source_range(struct units *us, const struct plan_tensor *t, uint32_t f,
			    uint64_t off, uint64_t len, uint32_t file, uint64_t at,
			    char *err)
{
	for (uint64_t k = 0; k < len; k += UNIT_PIECE) {
		struct unit u = {
			.kind = UNIT_SOURCE, .len = len - k < UNIT_PIECE ? len - k : UNIT_PIECE,
			.src_file = f, .src_off = off + k, .tensor = t, .tensor_off = k,
		};
		int rc = add_unit(us, &u, file, at + k, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* A tensor's units: its source bytes, or one per cache chunk of rows, as a
 * mount converts them. */
static int add_tensor(struct units *us, const struct plan_tensor *t, uint32_t file,
		      uint64_t at, char *err)
{
	if (t->preload) {       /* delivered by another rank (dist/) */
		struct unit u = { .kind = UNIT_MEM, .len = t->nbytes, .mem = t->preload, .tensor = t };
		return add_unit(us, &u, file, at, err);
	}
	if (!t->recipe) {
		const struct src_tensor *s = &us->view->src.tensors[t->src];
		return add_source_range(us, t, s->file, s->offset, t->nbytes, file, at, err);
	}
	uint64_t rows = rx_rows(rx_root(t->recipe)), row = rx_row_bytes(rx_root(t->recipe));
	for (uint64_t r0 = 0; r0 < rows; r0 += t->chunk_rows) {
		uint64_t r1 = r0 + t->chunk_rows < rows ? r0 + t->chunk_rows : rows;
		struct unit u = { .kind = UNIT_ROWS, .len = (r1 - r0) * row, .tensor = t,
				  .tensor_off = r0 * row, .r0 = r0, .r1 = r1 };
		int rc = add_unit(us, &u, file, at + r0 * row, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The same bytes: the same unchanged source tensor, or the same recipe
 * cut into the same chunks. */
static bool same_bytes(const struct plan_tensor *a, const struct plan_tensor *b)
{
	if (a->dtype != b->dtype || a->ndim != b->ndim || a->nbytes != b->nbytes ||
	    memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof(*a->shape)) ||
	    a->preload || b->preload)
		return false;
	if (!a->recipe || !b->recipe)
		return !a->recipe && !b->recipe && a->src == b->src;
	return a->chunk_rows == b->chunk_rows && recipe_equal(a->recipe, b->recipe);
}

/* Place every unit in [first, first + n) again, shifted to file/at. */
static int place_again(struct units *us, size_t first, size_t n, uint32_t file,
		       uint64_t at, char *err)
{
	for (size_t i = first; i < first + n; i++) {
		int rc = add_place(us, i, file, at + us->u[i].tensor_off, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int add_weights(struct units *us, const struct units_tree *tr, size_t tree,
		       const struct vfile *vf, uint32_t file, struct first_tree *ft,
		       const struct plan *plan0, char *err)
{
	struct unit hdr = { .kind = UNIT_MEM, .len = vf->mem_len, .mem = vf->mem };
	int rc = add_unit(us, &hdr, file, 0, err);

	for (size_t k = 0; k < vf->nslots && rc == 0; k++) {
		const struct vslot *s = &vf->slots[k];
		const struct plan_tensor *t = &tr->plan->tensors[s->tensor];
		size_t t0;
		if (!t->nbytes)
			continue;
		if (tree > 0 && strmap_get(&plan0->by_name, t->name, &t0) &&
		    same_bytes(&plan0->tensors[t0], t)) {
			rc = place_again(us, ft->tensor_unit[t0], ft->tensor_n[t0], file, s->off, err);
			continue;
		}
		size_t before = us->n;
		rc = add_tensor(us, t, file, s->off, err);
		if (tree == 0) {
			ft->tensor_unit[s->tensor] = before;
			ft->tensor_n[s->tensor] = us->n - before;
		}
	}
	return rc;
}

static int add_passed(struct units *us, size_t tree, const struct vfile *vf,
		      uint32_t file, struct first_tree *ft, char *err)
{
	uint32_t f = vf->src_file;

	if (tree > 0 && ft->file_n[f])
		return place_again(us, ft->file_unit[f], ft->file_n[f], file, 0, err);
	size_t before = us->n;
	int rc = add_source_range(us, NULL, f, 0, vf->size, file, 0, err);
	if (tree == 0) {
		ft->file_unit[f] = before;
		ft->file_n[f] = us->n - before;
	}
	return rc;
}

static int add_file(struct units *us, const struct units_tree *tr, size_t tree,
		    const struct vfile *vf, char *err)
{
	int rc = sd_grow(&us->files, &us->filecap, us->nfiles + 1, sizeof(*us->files), err);
	size_t n = strlen(tr->dir) + strlen(vf->name) + 2;

	if (rc < 0)
		return rc;
	struct units_file *f = &us->files[us->nfiles];
	memset(f, 0, sizeof(*f));
	if (!(f->path = malloc(n)))
		return sd_err(err, -ENOMEM, "out of memory");
	snprintf(f->path, n, "%s%s%s", tr->dir, tr->dir[0] ? "/" : "", vf->name);
	f->vf = vf;
	f->tree = (uint32_t)tree;
	f->size = vf->size;
	us->bytes += vf->size;
	us->nfiles++;
	return 0;
}

int units_build(struct units *us, struct view *v, const struct units_tree *trees,
		size_t ntrees, char *err)
{
	const struct plan *plan0 = trees[0].plan;
	struct first_tree ft = {
		calloc(plan0->n + 1, sizeof(size_t)), calloc(plan0->n + 1, sizeof(size_t)),
		calloc(v->src.nfiles + 1, sizeof(size_t)), calloc(v->src.nfiles + 1, sizeof(size_t)),
	};
	int rc = 0;

	memset(us, 0, sizeof(*us));
	us->view = v;
	if (!ft.tensor_unit || !ft.tensor_n || !ft.file_unit || !ft.file_n)
		rc = sd_err(err, -ENOMEM, "out of memory");
	for (size_t t = 0; t < ntrees && rc == 0; t++) {
		const struct layout *l = trees[t].layout;
		for (size_t i = 0; i < l->n && rc == 0; i++) {
			const struct vfile *vf = &l->files[i];
			uint32_t file = (uint32_t)us->nfiles;
			if ((rc = add_file(us, &trees[t], t, vf, err)) < 0)
				break;
			if (vf->kind == VF_MEMORY) {
				struct unit u = { .kind = UNIT_MEM, .len = vf->size, .mem = vf->mem };
				rc = vf->size ? add_unit(us, &u, file, 0, err) : 0;
			} else if (vf->kind == VF_SOURCE) {
				rc = add_passed(us, t, vf, file, &ft, err);
			} else {
				rc = add_weights(us, &trees[t], t, vf, file, &ft, plan0, err);
			}
		}
	}
	free(ft.tensor_unit);
	free(ft.tensor_n);
	free(ft.file_unit);
	free(ft.file_n);
	if (rc < 0)
		units_free(us);
	return rc;
}

void units_free(struct units *us)
{
	for (size_t i = 0; i < us->nfiles; i++)
		free(us->files[i].path);
	free(us->files);
	free(us->u);
	free(us->places);
	memset(us, 0, sizeof(*us));
}
