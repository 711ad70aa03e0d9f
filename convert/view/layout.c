/* layout.c — assigning plan tensors to view files (see layout.h). */
#include "layout.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "grow.h"

#define INDEX_NAME "model.safetensors.index.json"

struct order_ctx {
	const struct plan *p;
	const struct source *s;
	const uint32_t *file_of;        /* consolidated layout, or NULL */
};

/* Output file (given, or the anchor's source file), source position of the
 * tensor's anchor, then plan order. */
static int by_source_position(const void *a, const void *b, void *arg)
{
	const struct order_ctx *o = arg;
	uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
	const struct src_tensor *ti = &o->s->tensors[o->p->tensors[i].src];
	const struct src_tensor *tj = &o->s->tensors[o->p->tensors[j].src];

	if (o->file_of && o->file_of[i] != o->file_of[j])
		return o->file_of[i] < o->file_of[j] ? -1 : 1;
	if (ti->file != tj->file)
		return ti->file < tj->file ? -1 : 1;
	if (ti->offset != tj->offset)
		return ti->offset < tj->offset ? -1 : 1;
	return i < j ? -1 : i > j;
}

static int add_file(struct layout *l, const char *name, char *err)
{
	struct vfile *f = realloc(l->files, (l->n + 1) * sizeof(*f));

	if (!f)
		return sd_err(err, -ENOMEM, "out of memory");
	l->files = f;
	f = &l->files[l->n];
	memset(f, 0, sizeof(*f));
	f->mat_fd = -1;
	if (!(f->name = strdup(name)))
		return sd_err(err, -ENOMEM, "out of memory");
	if (strmap_put(&l->by_name, f->name, l->n, NULL) < 0) {
		free(f->name);
		return sd_err(err, -EINVAL, "two files of the view would be called '%s'", name);
	}
	l->n++;
	return 0;
}

static cJSON *shape_json(const struct plan_tensor *t)
{
	cJSON *a = cJSON_CreateArray();

	for (int d = 0; a && d < t->ndim; d++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber((double)t->shape[d]));
	return a;
}

/* Header JSON of one shard: tensors in slot order, offsets contiguous,
 * space-padded to a multiple of 8 as the safetensors writer does. */
static int make_header(struct vfile *f, const struct plan *p, bool bare, char *err)
{
	cJSON *h = cJSON_CreateObject(), *meta = bare ? NULL : cJSON_CreateObject();
	uint64_t off = 0;

	if (!h || (!bare && !meta))
		goto nomem;
	if (meta) {
		cJSON_AddItemToObject(h, "__metadata__", meta);
		if (!cJSON_AddStringToObject(meta, "format", "pt"))
			goto nomem;
	}
	for (size_t i = 0; i < f->nslots; i++) {
		const struct plan_tensor *t = &p->tensors[f->slots[i].tensor];
		cJSON *e = cJSON_CreateObject(), *offs = cJSON_CreateArray();
		if (!e || !offs) {
			cJSON_Delete(e);
			cJSON_Delete(offs);
			goto nomem;
		}
		cJSON_AddItemToObject(h, t->name, e);
		cJSON_AddStringToObject(e, "dtype", dtype_name(t->dtype));
		cJSON_AddItemToObject(e, "shape", shape_json(t));
		cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
		cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + t->nbytes)));
		cJSON_AddItemToObject(e, "data_offsets", offs);
		f->slots[i].off = off;  /* made absolute below */
		off += t->nbytes;
	}
	char *json = cJSON_PrintUnformatted(h);
	cJSON_Delete(h);
	if (!json)
		return sd_err(err, -ENOMEM, "out of memory");
	size_t n = strlen(json), padded = bare ? n : (n + 7) & ~(size_t)7;
	f->mem = malloc(8 + padded);
	if (!f->mem) {
		free(json);
		return sd_err(err, -ENOMEM, "out of memory");
	}
	for (int b = 0; b < 8; b++)
		f->mem[b] = (char)((uint64_t)padded >> (8 * b));
	memcpy(f->mem + 8, json, n);
	memset(f->mem + 8 + n, ' ', padded - n);
	free(json);
	f->mem_len = 8 + padded;
	for (size_t i = 0; i < f->nslots; i++)
		f->slots[i].off += f->mem_len;
	f->size = f->mem_len + off;
	return 0;
nomem:
	cJSON_Delete(h);
	return sd_err(err, -ENOMEM, "out of memory");
}

static int name_order(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int make_index(struct layout *l, const struct plan *p,
		      const uint32_t *file_of, char *err)
{
	cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject();
	cJSON *map = cJSON_CreateObject();
	const char **names = malloc((p->n + 1) * sizeof(*names));
	uint64_t total = 0;
	int rc;

	if (!root || !meta || !map || !names)
		goto nomem;
	cJSON_AddItemToObject(root, "metadata", meta);
	cJSON_AddItemToObject(root, "weight_map", map);
	for (size_t i = 0; i < p->n; i++) {
		names[i] = p->tensors[i].name;
		total += p->tensors[i].nbytes;
	}
	cJSON_AddItemToObject(meta, "total_size", cJSON_CreateNumber((double)total));
	qsort(names, p->n, sizeof(*names), name_order);
	for (size_t i = 0; i < p->n; i++) {
		size_t t;
		strmap_get(&p->by_name, names[i], &t);
		if (!cJSON_AddStringToObject(map, names[i], l->files[file_of[t]].name))
			goto nomem;
	}
	char *json = cJSON_Print(root);
	if (!json)
		goto nomem;
	if ((rc = add_file(l, INDEX_NAME, err)) < 0) {
		free(json);
		goto out;
	}
	struct vfile *f = &l->files[l->n - 1];
	f->kind = VF_MEMORY;
	f->mem = json;
	f->mem_len = f->size = strlen(json);
	rc = 0;
	goto out;
nomem:
	rc = sd_err(err, -ENOMEM, "out of memory");
out:
	cJSON_Delete(root);
	if (!root) {
		cJSON_Delete(meta);
		cJSON_Delete(map);
	}
	free(names);
	return rc;
}

/* config.json says what the weights are: when the plan makes a key of it
 * untrue, the view serves an edited copy from memory. */
static int edit_config(struct vfile *f, const struct plan *p, const struct source *s,
		       char *err)
{
	char *text;
	size_t len;
	int rc = layout_config(p, s, f->src_file, &text, &len, err);

	if (rc <= 0)
		return rc;
	f->kind = VF_MEMORY;
	f->edited = true;
	f->mem = text;
	f->mem_len = f->size = len;
	return 0;
}

/* Note in f->srcs every source file the recipe (or identity) of t reads. */
static int note_sources(struct vfile *f, const struct plan_tensor *t,
			const struct source *s, bool *seen, size_t *cap, char *err)
{
	size_t n = t->recipe ? t->recipe->nnodes : 1;

	for (size_t i = 0; i < n; i++) {
		const struct rx_node *x = t->recipe ? &t->recipe->nodes[i] : NULL;
		if (x && x->op != RX_SRC)
			continue;
		const struct src_tensor *st = &s->tensors[x ? x->a : t->src];
		for (uint32_t c = 0; c <= st->nchunks; c++) {
			uint32_t sf = c < st->nchunks ? st->chunks[c].file : st->file;
			if (seen[sf])
				continue;
			int rc = sd_grow(&f->srcs, cap, f->nsrcs + 1, sizeof(*f->srcs), err);
			if (rc < 0)
				return rc;
			seen[sf] = true;
			f->srcs[f->nsrcs++] = sf;
		}
	}
	return 0;
}

static int collect_sources(struct layout *l, const struct plan *p,
			   const struct source *s, char *err)
{
	bool *seen = calloc(s->nfiles + 1, sizeof(*seen));
	int rc = 0;

	if (!seen)
		return sd_err(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < l->n && rc == 0; i++) {
		struct vfile *f = &l->files[i];
		size_t cap = 0;
		if (f->kind == VF_SOURCE || f->edited) {
			if (!(f->srcs = malloc(sizeof(*f->srcs))))
				rc = sd_err(err, -ENOMEM, "out of memory");
			else
				f->srcs[f->nsrcs++] = f->src_file;
			continue;
		}
		for (size_t k = 0; k < f->nslots && rc == 0; k++)
			rc = note_sources(f, &p->tensors[f->slots[k].tensor], s, seen, &cap, err);
		for (size_t k = 0; k < f->nsrcs; k++)
			seen[f->srcs[k]] = false;
	}
	free(seen);
	return rc;
}

/* Narrow acc by p, or start it with p. */
static void fold_perm(struct src_perm *acc, bool *started, const struct src_perm *p)
{
	if (*started)
		perm_narrow(acc, p, S_IROTH);
	else
		*acc = *p;
	*started = true;
}

/* Who may read each file: every source of its bytes; the index (which
 * names every tensor) every weight file.  A file of no source (an empty
 * view) tells no more than the directory listing. */
static void set_perms(struct layout *l, const struct source *s)
{
	struct src_perm listing = s->dir_perm, weights;
	bool any_weights = false, any = false;

	listing.mode &= 0444;
	for (size_t i = 0; i < l->n; i++) {
		struct vfile *f = &l->files[i];
		bool started = false;
		for (size_t k = 0; k < f->nsrcs; k++)
			fold_perm(&f->perm, &started, &s->files[f->srcs[k]].perm);
		if (!started)
			f->perm = listing;
		if (f->kind == VF_WEIGHTS)
			fold_perm(&weights, &any_weights, &f->perm);
	}
	for (size_t i = 0; i < l->n; i++) {
		struct vfile *f = &l->files[i];
		if (f->kind == VF_MEMORY)
			f->perm = any_weights ? weights : listing;
		fold_perm(&l->whole, &any, &f->perm);
	}
	if (!any)
		l->whole = listing;
}

/* The file of each sorted tensor: the given one, or a new file whenever the
 * anchor's source file changes.  Returns the number of files. */
static size_t assign_files(const struct plan *p, const struct source *s,
			   const uint32_t *order, uint32_t *file_of)
{
	const struct plan_files *files = &p->files;
	size_t nfiles = 0;

	for (size_t i = 0; i < p->n; i++) {
		if (files->file_of || files->single) {
			file_of[order[i]] = files->single ? 0 : files->file_of[order[i]];
			continue;
		}
		if (i == 0 || s->tensors[p->tensors[order[i]].src].file !=
			      s->tensors[p->tensors[order[i - 1]].src].file)
			nfiles++;
		file_of[order[i]] = (uint32_t)(nfiles - 1);
	}
	if (files->single)
		return 1;       /* even when empty: the directory keeps its file */
	return files->file_of ? files->nfiles : nfiles;
}

int layout_build(const struct plan *p, const struct source *s,
		 struct layout *out, char *err)
{
	const struct plan_files *files = &p->files;
	struct layout *l = out;
	uint32_t *order = malloc((p->n + 1) * sizeof(*order));
	uint32_t *file_of = malloc((p->n + 1) * sizeof(*file_of));
	size_t nshards = 0;
	int rc = 0;

	memset(l, 0, sizeof(*l));
	if (!order || !file_of) {
		rc = sd_err(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < p->n; i++)
		order[i] = (uint32_t)i;
	struct order_ctx ctx = { p, s, files->file_of };
	qsort_r(order, p->n, sizeof(*order), by_source_position, &ctx);
	nshards = assign_files(p, s, order, file_of);
	for (size_t k = 0, i = 0; k < nshards; k++) {
		char name[64];
		size_t j = i;
		while (j < p->n && file_of[order[j]] == k)
			j++;
		if (files->single)
			snprintf(name, sizeof(name), "%s", files->single);
		else
			snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors",
				 k + 1, nshards);
		if ((rc = add_file(l, name, err)) < 0)
			goto out;
		struct vfile *f = &l->files[l->n - 1];
		f->kind = VF_WEIGHTS;
		f->nslots = j - i;
		if (!(f->slots = malloc((f->nslots + 1) * sizeof(*f->slots)))) {
			rc = sd_err(err, -ENOMEM, "out of memory");
			goto out;
		}
		for (size_t m = i; m < j; m++) {
			f->slots[m - i].tensor = order[m];
			file_of[order[m]] = (uint32_t)(l->n - 1);
		}
		if ((rc = make_header(f, p, files->bare_headers, err)) < 0)
			goto out;
		i = j;
	}
	if (!files->single && (rc = make_index(l, p, file_of, err)) < 0)
		goto out;
	for (size_t i = s->nweights; i < s->nfiles; i++) {
		if ((rc = add_file(l, s->files[i].name, err)) < 0)
			goto out;
		struct vfile *f = &l->files[l->n - 1];
		f->kind = VF_SOURCE;
		f->src_file = (uint32_t)i;
		f->size = s->files[i].size;
		if (!strcmp(f->name, "config.json") &&
		    (rc = edit_config(f, p, s, err)) < 0)
			goto out;
	}
	if ((rc = collect_sources(l, p, s, err)) == 0)
		set_perms(l, s);
out:
	free(order);
	free(file_of);
	if (rc < 0)
		layout_free(l);
	return rc;
}

long layout_find(const struct layout *l, const char *name)
{
	size_t v;

	return strmap_get(&l->by_name, name, &v) ? (long)v : -1;
}

void layout_free(struct layout *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->files[i].name);
		free(l->files[i].mem);
		free(l->files[i].slots);
		free(l->files[i].srcs);
		if (l->files[i].mat_fd >= 0)
			close(l->files[i].mat_fd);
	}
	free(l->files);
	strmap_free(&l->by_name);
	memset(l, 0, sizeof(*l));
}
