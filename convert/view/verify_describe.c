/*
 * verify_describe.c — verify's differences in words (see verify_describe.h).
 *
 * A difference names the file, the tensor and the byte, and says what is
 * there against what the view holds, so a user can see at once whether a
 * copy is truncated, reordered, from another conversion or damaged.
 */
#include "verify_describe.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "grow.h"
#include "io.h"

void verify_add(struct verify_report *rep, const struct verify_diff *d, const char *fmt, ...)
{
	va_list ap;
	char what[SD_ERRLEN];

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&rep->mu);
	rep->total++;
	if (rep->n < VERIFY_KEEP &&
	    sd_grow(&rep->diffs, &rep->cap, rep->n + 1, sizeof(*rep->diffs), NULL) == 0) {
		struct verify_diff *x = &rep->diffs[rep->n++];
		*x = *d;
		x->file = strdup(d->file);
		x->tensor = d->tensor ? strdup(d->tensor) : NULL;
		x->what = strdup(what);
	}
	pthread_mutex_unlock(&rep->mu);
}

/* --- headers ---------------------------------------------------------------- */

static void fmt_tensor(char *buf, size_t len, enum sd_dtype dt, int ndim, const uint64_t *shape)
{
	size_t o = (size_t)snprintf(buf, len, "%s[", dtype_name(dt));

	for (int d = 0; d < ndim && o < len; d++)
		o += (size_t)snprintf(buf + o, len - o, "%s%" PRIu64, d ? "," : "", shape[d]);
	if (o < len)
		snprintf(buf + o, len - o, "]");
}

bool same_tensor(const struct st_tensor *a, const struct plan_tensor *t)
{
	return a->dtype == t->dtype && a->ndim == t->ndim && a->nbytes == t->nbytes &&
	       !memcmp(a->shape, t->shape, (size_t)t->ndim * sizeof(*t->shape));
}

static bool same_entry(const struct st_tensor *a, const struct st_tensor *b)
{
	return a->dtype == b->dtype && a->ndim == b->ndim &&
	       !memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof(*a->shape));
}

static int map_names(const struct st_header *h, struct strmap *m)
{
	for (size_t k = 0; k < h->ntensors; k++)
		if (strmap_put(m, h->tensors[k].name, k, NULL) == -ENOMEM)
			return -ENOMEM;
	return 0;
}

/* Entries missing, extra, or of another dtype or shape: how many. */
static size_t compare_entries(struct verify_report *rep, struct verify_diff *x,
			      const struct st_header *got, const struct strmap *got_names,
			      const struct st_header *want, const struct strmap *want_names)
{
	size_t found = 0, k;
	char a[128], b[128];

	for (size_t i = 0; i < want->ntensors; i++) {
		const struct st_tensor *w = &want->tensors[i];
		x->tensor = w->name;
		if (!strmap_get(got_names, w->name, &k)) {
			verify_add(rep, x, "header: tensor '%s' missing", w->name);
			found++;
		} else if (!same_entry(&got->tensors[k], w)) {
			const struct st_tensor *g = &got->tensors[k];
			fmt_tensor(a, sizeof(a), g->dtype, g->ndim, g->shape);
			fmt_tensor(b, sizeof(b), w->dtype, w->ndim, w->shape);
			verify_add(rep, x, "header: tensor '%s' is %s, expected %s", w->name, a, b);
			found++;
		}
	}
	for (size_t i = 0; i < got->ntensors; i++) {
		x->tensor = got->tensors[i].name;
		if (!strmap_get(want_names, got->tensors[i].name, &k)) {
			verify_add(rep, x, "header: tensor '%s' is not in the view", got->tensors[i].name);
			found++;
		}
	}
	x->tensor = NULL;
	return found;
}

/* Same entries: then the order, the metadata, or the text itself. */
static void compare_layout(struct verify_report *rep, struct verify_diff *x,
			   const struct st_header *got, const struct st_header *want,
			   const char *got_text, const char *want_text, size_t n)
{
	for (size_t i = 0; i < want->ntensors; i++)
		if (strcmp(got->tensors[i].name, want->tensors[i].name)) {
			x->tensor = got->tensors[i].name;
			verify_add(rep, x, "header: tensors stored in another order: '%s' is tensor %zu, where '%s' is expected",
				   got->tensors[i].name, i + 1, want->tensors[i].name);
			x->tensor = NULL;
			return;
		}
	if (!cJSON_Compare(got->metadata, want->metadata, true) &&
	    (got->metadata || want->metadata)) {
		char *g = got->metadata ? cJSON_PrintUnformatted(got->metadata) : NULL;
		char *w = want->metadata ? cJSON_PrintUnformatted(want->metadata) : NULL;
		verify_add(rep, x, "header: __metadata__ is %.200s, expected %.200s",
			   g ? g : "absent", w ? w : "absent");
		free(g);
		free(w);
		return;
	}
	size_t i = 0;
	while (i < n && got_text[i] == want_text[i])
		i++;
	x->file_offset = 8 + i;
	verify_add(rep, x, "header: its text differs from byte %zu on (the same tensors in the same order: key order or spacing)",
		   8 + i);
}

int describe_header(struct verify_report *rep, uint32_t order, const struct units_file *f,
		    int fd, uint64_t size, struct st_header *h, struct strmap *by_name,
		    char *err)
{
	struct verify_diff x = { .kind = VD_HEADER, .order = order, .file = f->path };
	struct st_header want;
	struct strmap want_names = { 0 };
	unsigned char b[8];
	uint64_t len = 0;
	char msg[SD_ERRLEN];
	int rc = 0;

	memset(h, 0, sizeof(*h));
	if (size < 8 || sd_pread_full(fd, b, 8, 0) != 8) {
		verify_add(rep, &x, "too short for a safetensors header (%" PRIu64 " bytes)", size);
		return 0;
	}
	for (int k = 7; k >= 0; k--)
		len = len << 8 | b[k];
	if (len > ST_MAX_HEADER || len > size - 8) {
		verify_add(rep, &x, "header length %" PRIu64 " does not fit the file (%" PRIu64 " bytes)",
			   len, size);
		return 0;
	}
	char *text = malloc(len + 1);
	if (!text)
		return sd_err(err, -ENOMEM, "out of memory");
	ssize_t r = sd_pread_full(fd, text, (size_t)len, 8);
	if (r < 0 || (uint64_t)r != len) {
		free(text);
		return sd_err(err, r < 0 ? (int)r : -EIO, "%s: cannot read its header", f->path);
	}
	if (st_parse_header(text, (size_t)len, size, f->path, h, msg) < 0) {
		verify_add(rep, &x, "not a valid safetensors header: %s", msg);
		free(text);
		return 0;
	}
	rc = st_parse_header(f->vf->mem + 8, f->vf->mem_len - 8, f->size, f->path, &want, err);
	if (rc == 0 && (map_names(h, by_name) < 0 || map_names(&want, &want_names) < 0))
		rc = sd_err(err, -ENOMEM, "out of memory");
	if (rc == 0 && !compare_entries(rep, &x, h, by_name, &want, &want_names))
		compare_layout(rep, &x, h, &want, text, f->vf->mem + 8,
			       len < f->vf->mem_len - 8 ? (size_t)len : f->vf->mem_len - 8);
	if (rc == 0)
		st_header_free(&want);
	strmap_free(&want_names);
	free(text);
	return rc;
}

/* --- the index -------------------------------------------------------------- */

static void compare_values(struct verify_report *rep, struct verify_diff *x, const char *what,
			   const cJSON *got, const cJSON *want)
{
	if (cJSON_Compare(got, want, true))
		return;
	char *g = got ? cJSON_PrintUnformatted(got) : NULL;
	char *w = want ? cJSON_PrintUnformatted(want) : NULL;
	verify_add(rep, x, "%s is %.200s, expected %.200s", what, g ? g : "absent", w ? w : "absent");
	free(g);
	free(w);
}

static size_t compare_maps(struct verify_report *rep, struct verify_diff *x,
			   const cJSON *got, const cJSON *want)
{
	size_t before = rep->total;
	const cJSON *e;
	char what[SD_ERRLEN];

	cJSON_ArrayForEach(e, want) {
		x->tensor = e->string;
		snprintf(what, sizeof(what), "weight_map['%.300s']", e->string);
		compare_values(rep, x, what, cJSON_GetObjectItemCaseSensitive(got, e->string), e);
	}
	cJSON_ArrayForEach(e, got) {
		x->tensor = e->string;
		if (!cJSON_GetObjectItemCaseSensitive(want, e->string))
			verify_add(rep, x, "weight_map has '%s', which is not in the view", e->string);
	}
	x->tensor = NULL;
	return rep->total - before;
}

void describe_index(struct verify_report *rep, uint32_t order, const struct units_file *f,
		    const char *got, size_t n)
{
	struct verify_diff x = { .kind = VD_INDEX, .order = order, .file = f->path };
	cJSON *g = cJSON_ParseWithLength(got, n);
	cJSON *w = cJSON_ParseWithLength(f->vf->mem, f->vf->mem_len);
	size_t found = 0;

	if (!g) {
		verify_add(rep, &x, "not valid JSON");
	} else {
		size_t before = rep->total;
		compare_values(rep, &x, "metadata.total_size",
			       cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g, "metadata"), "total_size"),
			       cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(w, "metadata"), "total_size"));
		found = rep->total - before;
		found += compare_maps(rep, &x, cJSON_GetObjectItemCaseSensitive(g, "weight_map"),
				      cJSON_GetObjectItemCaseSensitive(w, "weight_map"));
		if (!found && !cJSON_Compare(g, w, true))
			verify_add(rep, &x, "its JSON differs outside weight_map and total_size");
		else if (!found) {
			size_t i = 0;
			while (i < n && i < f->vf->mem_len && got[i] == f->vf->mem[i])
				i++;
			x.file_offset = i;
			verify_add(rep, &x, "its text differs from byte %zu on (the same JSON: key order or spacing)", i);
		}
	}
	cJSON_Delete(g);
	cJSON_Delete(w);
}

/* --- bytes ------------------------------------------------------------------ */

void compare_bytes(struct verify_report *rep, uint32_t order, const struct units_file *f,
		   const struct unit *u, const unsigned char *want, const unsigned char *got,
		   size_t n, uint64_t dir_off)
{
	if (!memcmp(want, got, n))
		return;
	size_t first = 0, count = 0;
	while (want[first] == got[first])
		first++;
	for (size_t i = first; i < n; i++)
		count += want[i] != got[i];
	struct verify_diff x = {
		.kind = u->tensor ? VD_TENSOR : VD_BYTES, .order = order, .file = f->path,
		.tensor = u->tensor ? u->tensor->name : NULL,
		.offset = u->tensor ? u->tensor_off + first : dir_off + first,
		.file_offset = dir_off + first, .count = count, .got = got[first], .want = want[first],
	};
	verify_add(rep, &x, "bytes differ");    /* worded in merge_diffs */
}

static int by_place(const void *a, const void *b)
{
	const struct verify_diff *x = a, *y = b;

	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	if (x->kind == VD_EXTRA)
		return strcmp(x->file, y->file);
	if (x->file_offset != y->file_offset)
		return x->file_offset < y->file_offset ? -1 : 1;
	return (int)x->kind - (int)y->kind;
}

static bool same_run(const struct verify_diff *a, const struct verify_diff *b)
{
	return (a->kind == VD_TENSOR || a->kind == VD_BYTES) && a->kind == b->kind &&
	       a->order == b->order && (a->kind == VD_BYTES || !strcmp(a->tensor, b->tensor));
}

static void word(struct verify_diff *d)
{
	char what[SD_ERRLEN];
	const char *s = d->count == 1 ? "" : "s", *verb = d->count == 1 ? "differs" : "differ";

	if (d->kind == VD_TENSOR)
		snprintf(what, sizeof(what), "tensor '%s': %" PRIu64 " byte%s %s, the first at byte %" PRIu64 " of the tensor (file offset %" PRIu64 ": 0x%02x here, 0x%02x expected)",
			 d->tensor, d->count, s, verb, d->offset, d->file_offset, d->got, d->want);
	else if (d->kind == VD_BYTES)
		snprintf(what, sizeof(what), "%" PRIu64 " byte%s %s, the first at byte %" PRIu64 " (0x%02x here, 0x%02x expected)",
			 d->count, s, verb, d->offset, d->got, d->want);
	else
		return;
	free(d->what);
	d->what = strdup(what);
}

void merge_diffs(struct verify_report *rep)
{
	size_t kept = 0;

	if (rep->n)
		qsort(rep->diffs, rep->n, sizeof(*rep->diffs), by_place);
	for (size_t i = 0; i < rep->n; i++) {
		struct verify_diff *d = &rep->diffs[i];
		if (kept && same_run(&rep->diffs[kept - 1], d)) {
			rep->diffs[kept - 1].count += d->count;
			free(d->file);
			free(d->tensor);
			free(d->what);
			rep->total--;
			continue;
		}
		rep->diffs[kept++] = *d;
	}
	rep->n = kept;
	for (size_t i = 0; i < rep->n; i++)
		word(&rep->diffs[i]);
}

/* --- the report ------------------------------------------------------------- */

void verify_print(const struct verify_report *rep, FILE *out, size_t max)
{
	size_t shown = rep->n < max ? rep->n : max;

	for (size_t i = 0; i < shown; i++)
		fprintf(out, "%s: %s\n", rep->diffs[i].file, rep->diffs[i].what ? rep->diffs[i].what : "?");
	if (rep->total > shown)
		fprintf(out, "... and %zu more difference%s\n", rep->total - shown,
			rep->total - shown == 1 ? "" : "s");
}

static const char *const KIND_NAMES[] = {
	[VD_MISSING] = "missing", [VD_EXTRA] = "extra", [VD_NOT_FILE] = "not_a_file",
	[VD_SIZE] = "size", [VD_HEADER] = "header", [VD_INDEX] = "index",
	[VD_TENSOR] = "tensor", [VD_BYTES] = "bytes",
};

static cJSON *diff_json(const struct verify_diff *d)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "file", d->file);
	cJSON_AddStringToObject(o, "kind", KIND_NAMES[d->kind]);
	if (d->tensor)
		cJSON_AddStringToObject(o, "tensor", d->tensor);
	if (d->kind == VD_TENSOR || d->kind == VD_BYTES) {
		cJSON_AddNumberToObject(o, "offset", (double)d->offset);
		cJSON_AddNumberToObject(o, "bytes_differing", (double)d->count);
	}
	if (d->kind == VD_TENSOR || d->kind == VD_BYTES || d->kind == VD_SIZE)
		cJSON_AddNumberToObject(o, "file_offset", (double)d->file_offset);
	cJSON_AddStringToObject(o, "message", d->what ? d->what : "");
	return o;
}

char *verify_json(const struct verify_report *rep, const char *src, const char *dir)
{
	cJSON *j = cJSON_CreateObject(), *a = cJSON_CreateArray();
	char *text = NULL;

	if (!j || !a) {
		cJSON_Delete(j);
		cJSON_Delete(a);
		return NULL;
	}
	cJSON_AddStringToObject(j, "src", src);
	cJSON_AddStringToObject(j, "dir", dir);
	cJSON_AddBoolToObject(j, "equal", rep->total == 0);
	cJSON_AddNumberToObject(j, "files", (double)rep->files);
	cJSON_AddNumberToObject(j, "bytes_compared", (double)rep->bytes_compared);
	cJSON_AddNumberToObject(j, "differences_total", (double)rep->total);
	cJSON_AddItemToObject(j, "differences", a);
	for (size_t i = 0; i < rep->n; i++)
		cJSON_AddItemToArray(a, diff_json(&rep->diffs[i]));
	text = cJSON_Print(j);
	cJSON_Delete(j);
	return text;
}
