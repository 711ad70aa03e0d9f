/* dcp.c — assembling DCP-sharded tensors at scan time (see dcp.h). */
#include "dcp.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "grow.h"
#include "json.h"

#define MAX_PAIRWISE 4096       /* chunks per tensor checked box against box */

struct dcp_piece {
	char *name;
	enum sd_dtype dtype;
	int ndim;
	struct src_chunk c;
};

int dcp_chunk_info(const cJSON *metadata, const char *file, cJSON **info, char *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(metadata, "DCP_SHARDING_INFO");

	char what[SD_ERRLEN];
	int rc;

	*info = NULL;
	if (!v)
		return 0;
	snprintf(what, sizeof(what), "%s: __metadata__ DCP_SHARDING_INFO", file);
	if (cJSON_IsString(v) &&
	    (rc = sd_json_parse(v->valuestring, strlen(v->valuestring), what, NULL, info, err)) < 0)
		return rc;
	if (!cJSON_IsObject(*info)) {
		cJSON_Delete(*info);
		*info = NULL;
		return sd_err(err, -EINVAL, "%s: __metadata__ DCP_SHARDING_INFO is not a JSON object in a string",
			      file);
	}
	return 0;
}

int dcp_add_chunks(struct dcp_pending *p, uint32_t fi, const char *file,
		   struct st_header *h, const cJSON *info, char *err)
{
	for (size_t i = 0; i < h->ntensors; i++) {
		struct st_tensor *t = &h->tensors[i];
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(info, t->name);
		const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "saved_offsets");
		int rc;

		if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != t->ndim)
			return sd_err(err, -EINVAL, "%s: tensor '%s' has no saved_offsets of %d numbers in DCP_SHARDING_INFO",
				      file, t->name, t->ndim);
		if ((rc = sd_grow(&p->pieces, &p->cap, p->n + 1, sizeof(*p->pieces), err)) < 0)
			return rc;
		struct dcp_piece *d = &p->pieces[p->n];
		memset(d, 0, sizeof(*d));
		d->dtype = t->dtype;
		d->ndim = t->ndim;
		d->c.file = fi;
		d->c.offset = t->offset;
		d->c.nbytes = t->nbytes;
		memcpy(d->c.shape, t->shape, sizeof(d->c.shape));
		int k = 0;
		const cJSON *o;
		cJSON_ArrayForEach(o, offs) {
			if (!cJSON_IsNumber(o) || o->valuedouble < 0 || o->valuedouble > 9e15 ||
			    o->valuedouble != (double)(uint64_t)o->valuedouble)
				return sd_err(err, -EINVAL, "%s: tensor '%s': saved_offsets must be non-negative integers",
					      file, t->name);
			d->c.start[k++] = (uint64_t)o->valuedouble;
		}
		d->name = t->name;      /* ownership moves here */
		t->name = NULL;
		p->n++;
	}
	return 0;
}

static int by_name_then_start(const void *a, const void *b)
{
	const struct dcp_piece *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	for (int d = 0; d < x->ndim && d < y->ndim; d++)
		if (x->c.start[d] != y->c.start[d])
			return x->c.start[d] < y->c.start[d] ? -1 : 1;
	return 0;
}

static bool boxes_overlap(const struct src_chunk *a, const struct src_chunk *b, int nd)
{
	for (int d = 0; d < nd; d++)
		if (a->start[d] + a->shape[d] <= b->start[d] ||
		    b->start[d] + b->shape[d] <= a->start[d])
			return false;
	return true;
}

bool dcp_chunks_tile(const struct src_tensor *t)
{
	size_t es = dtype_size(t->dtype);
	uint64_t total = 0, bytes;

	if (t->nchunks > MAX_PAIRWISE)
		return false;
	for (uint32_t i = 0; i < t->nchunks; i++) {
		const struct src_chunk *c = &t->chunks[i];
		for (int d = 0; d < t->ndim; d++)
			if (c->start[d] > t->shape[d] || c->shape[d] > t->shape[d] - c->start[d])
				return false;
		if (st_shape_bytes(c->shape, t->ndim, es, &bytes, "", NULL) < 0 ||
		    bytes != c->nbytes || __builtin_add_overflow(total, bytes, &total))
			return false;
		for (uint32_t j = 0; j < i; j++)
			if (boxes_overlap(c, &t->chunks[j], t->ndim))
				return false;
	}
	return total == t->nbytes;
}

/* Check that the chunks [g, g+n) tile the tensor and fill in its shape. */
static int check_tiling(const struct dcp_piece *g, size_t n, struct src_tensor *t,
			const struct source *s, char *err)
{
	uint64_t total = 0, volume = 1;

	t->dtype = g[0].dtype;
	t->ndim = g[0].ndim;
	memset(t->shape, 0, sizeof(t->shape));
	for (size_t i = 0; i < n; i++) {
		if (g[i].dtype != t->dtype || g[i].ndim != t->ndim)
			return sd_err(err, -EINVAL, "sharded tensor '%s': its chunk in %s is %s with %d dims but its chunk in %s is %s with %d dims",
				      t->name, s->files[g[0].c.file].name, dtype_name(t->dtype), t->ndim,
				      s->files[g[i].c.file].name, dtype_name(g[i].dtype), g[i].ndim);
		for (int d = 0; d < t->ndim; d++)
			if (g[i].c.start[d] + g[i].c.shape[d] > t->shape[d])
				t->shape[d] = g[i].c.start[d] + g[i].c.shape[d];
		total += g[i].c.nbytes;
	}
	int rc = st_shape_bytes(t->shape, t->ndim, dtype_size(t->dtype), &volume, t->name, err);
	if (rc < 0)
		return rc;
	if (n > MAX_PAIRWISE)
		return sd_err(err, -E2BIG, "sharded tensor '%s' has %zu chunks, more than sdafs checks (%d)",
			      t->name, n, MAX_PAIRWISE);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (boxes_overlap(&g[i].c, &g[j].c, t->ndim))
				return sd_err(err, -EINVAL, "sharded tensor '%s': its chunks in %s and %s overlap",
					      t->name, s->files[g[i].c.file].name, s->files[g[j].c.file].name);
	if (total != volume)    /* no overlap, so less means a gap */
		return sd_err(err, -EINVAL, "sharded tensor '%s': its %zu chunks hold %" PRIu64 " of the %" PRIu64 " bytes of its shape; a chunk is missing (is a shard file missing?)",
			      t->name, n, total, volume);
	t->nbytes = volume;
	return 0;
}

int dcp_finish(struct source *s, struct dcp_pending *p, char *err)
{
	size_t groups = 0;
	int rc = 0;

	qsort(p->pieces, p->n, sizeof(*p->pieces), by_name_then_start);
	for (size_t i = 0; i < p->n; i++)
		if (i == 0 || strcmp(p->pieces[i].name, p->pieces[i - 1].name))
			groups++;
	struct src_tensor *nt = realloc(s->tensors, (s->ntensors + groups + 1) * sizeof(*nt));
	if (!nt)
		return sd_err(err, -ENOMEM, "out of memory");
	s->tensors = nt;
	for (size_t i = 0, j; i < p->n && rc == 0; i = j) {
		for (j = i + 1; j < p->n && !strcmp(p->pieces[j].name, p->pieces[i].name); j++)
			;
		struct src_tensor *t = &s->tensors[s->ntensors];
		memset(t, 0, sizeof(*t));
		t->name = p->pieces[i].name;
		p->pieces[i].name = NULL;
		for (size_t k = i + 1; k < j; k++) {
			free(p->pieces[k].name);
			p->pieces[k].name = NULL;
		}
		s->ntensors++;
		if ((rc = check_tiling(&p->pieces[i], j - i, t, s, err)) < 0)
			break;
		t->file = p->pieces[i].c.file;
		t->offset = p->pieces[i].c.offset;
		if (j - i > 1) {        /* a single chunk is just a tensor */
			if (!(t->chunks = malloc((j - i) * sizeof(*t->chunks)))) {
				rc = sd_err(err, -ENOMEM, "out of memory");
				break;
			}
			for (size_t k = i; k < j; k++)
				t->chunks[k - i] = p->pieces[k].c;
			t->nchunks = (uint32_t)(j - i);
		}
		size_t other;
		rc = strmap_put(&s->by_name, t->name, s->ntensors - 1, &other);
		if (rc == -EEXIST)
			rc = sd_err(err, -EINVAL, "tensor '%s' is both stored whole (in %s) and in DCP chunks",
				    t->name, s->files[s->tensors[other].file].name);
		else if (rc < 0)
			rc = sd_err(err, rc, "out of memory");
	}
	return rc;
}

void dcp_pending_free(struct dcp_pending *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->pieces[i].name);
	free(p->pieces);
	memset(p, 0, sizeof(*p));
}
