/*
 * safetensors.c — read a safetensors header and prove it describes the file.
 *
 * The one idea: nothing from the header is used until it has been checked
 * against something we trust.  The length is bounded by the format's cap
 * and the file size before anything is allocated; cJSON parses the JSON;
 * each tensor's byte count follows from its dtype and shape (with overflow
 * checks) and must equal its data_offsets span; and the tensors, sorted by
 * offset, must tile the data section exactly, with no gap, overlap or
 * trailing byte.  A header that passes cannot send a later read outside
 * its tensor.
 */
#include "safetensors.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "json.h"

/* Sizes and offsets are JSON numbers, i.e. doubles: above 2^53-1 the text
 * may have been rounded, so the value read is not the value written. */
#define ST_MAX_JSON_INT 9007199254740991.0

/* Tensor names are printed at most this long, so a long name cannot push
 * the actual problem out of the SD_ERRLEN message. */
#define NAME_FMT "'%.200s'"

static int check_file_size(uint64_t file_size, const char *what, char *err)
{
	if (file_size < 8)
		return sd_err(err, -EINVAL,
			      "%s: file is %llu bytes, too short for the 8-byte header length of a safetensors file",
			      what, (unsigned long long)file_size);
	return 0;
}

static int check_header_len(uint64_t len, uint64_t file_size,
			    const char *what, char *err)
{
	if (len < 2)
		return sd_err(err, -EINVAL,
			      "%s: header length is %llu; a safetensors header holds at least the 2 bytes of \"{}\"",
			      what, (unsigned long long)len);
	if (len > ST_MAX_HEADER)
		return sd_err(err, -EINVAL,
			      "%s: header length %llu is over the safetensors limit of %llu bytes; not a safetensors file or corrupt",
			      what, (unsigned long long)len, ST_MAX_HEADER);
	if (len > file_size - 8)
		return sd_err(err, -EINVAL,
			      "%s: header length %llu is larger than the file (%llu bytes): file truncated?",
			      what, (unsigned long long)len,
			      (unsigned long long)file_size);
	return 0;
}

/* Short human description of a JSON value for messages: 12, "abc", an array. */
static const char *json_describe(const cJSON *item, char *buf, size_t size)
{
	if (cJSON_IsNumber(item))
		snprintf(buf, size, "%.15g", item->valuedouble);
	else if (cJSON_IsString(item))
		snprintf(buf, size, "the string \"%.40s\"", item->valuestring);
	else if (cJSON_IsBool(item))
		snprintf(buf, size, "%s", cJSON_IsTrue(item) ? "true" : "false");
	else if (cJSON_IsNull(item))
		snprintf(buf, size, "null");
	else if (cJSON_IsArray(item))
		snprintf(buf, size, "an array");
	else
		snprintf(buf, size, "an object");
	return buf;
}

/*
 * A shape entry or offset as an integer, or the reason it is not one.
 * Returns NULL on success.
 */
static const char *json_uint(const cJSON *item, uint64_t *out)
{
	double d;

	if (!cJSON_IsNumber(item))
		return "not a number";
	d = item->valuedouble;
	if (!(d >= 0))
		return "negative";
	if (d > ST_MAX_JSON_INT)
		return "larger than 2^53-1, beyond which JSON numbers lose precision";
	if ((double)(uint64_t)d != d)
		return "not a whole number";
	*out = (uint64_t)d;
	return NULL;
}

int st_shape_bytes(const uint64_t *shape, int ndim, size_t elem,
		   uint64_t *out, const char *what, char *err)
{
	/* Every partial product must fit too, even when a 0 makes the total
	 * 0, so that later stride arithmetic on this shape cannot overflow. */
	uint64_t bytes = elem;
	bool empty = false;

	for (int i = 0; i < ndim; i++) {
		if (shape[i] == 0) {
			empty = true;
			continue;
		}
		if (bytes > (uint64_t)INT64_MAX / shape[i])
			return sd_err(err, -EOVERFLOW,
				      "%s: shape dimension %d (%llu) makes the tensor larger than 2^63 bytes",
				      what, i, (unsigned long long)shape[i]);
		bytes *= shape[i];
	}
	*out = empty ? 0 : bytes;
	return 0;
}

static void format_shape(const struct st_tensor *t, char *buf, size_t size)
{
	size_t used = (size_t)snprintf(buf, size, "[");

	for (int i = 0; i < t->ndim && used < size; i++)
		used += (size_t)snprintf(buf + used, size - used, "%s%llu",
					 i ? ", " : "",
					 (unsigned long long)t->shape[i]);
	if (used < size)
		snprintf(buf + used, size - used, "]");
}

static int parse_dtype(const cJSON *item, struct st_tensor *t,
		       const char *what, char *err)
{
	char desc[64];

	if (!cJSON_IsString(item))
		return sd_err(err, -EINVAL,
			      "%s: tensor " NAME_FMT ": dtype is %s, not a string such as \"BF16\"",
			      what, t->name, json_describe(item, desc, sizeof(desc)));
	t->dtype = dtype_parse(item->valuestring);
	if (t->dtype == SD_DTYPE_INVALID)
		return sd_err(err, -EINVAL,
			      "%s: tensor " NAME_FMT ": unknown dtype \"%.40s\" (known: BOOL, U8, I8, U16, I16, U32, I32, U64, I64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2, F8_E8M0)",
			      what, t->name, item->valuestring);
	return 0;
}

static int parse_shape(const cJSON *item, struct st_tensor *t,
		       const char *what, char *err)
{
	const cJSON *dim;
	char desc[64];
	int ndim;

	if (!cJSON_IsArray(item))
		return sd_err(err, -EINVAL,
			      "%s: tensor " NAME_FMT ": shape is %s, not an array of integers",
			      what, t->name, json_describe(item, desc, sizeof(desc)));
	ndim = cJSON_GetArraySize(item);
	if (ndim > ST_MAX_DIMS)
		return sd_err(err, -EINVAL,
			      "%s: tensor " NAME_FMT ": shape has %d dimensions; at most %d are supported",
			      what, t->name, ndim, ST_MAX_DIMS);
	t->ndim = 0;
	cJSON_ArrayForEach(dim, item) {
		const char *why = json_uint(dim, &t->shape[t->ndim]);

		if (why)
			return sd_err(err, -EINVAL,
				      "%s: tensor " NAME_FMT ": shape[%d] is %s, which is %s; dimensions must be non-negative integers",
				      what, t->name, t->ndim,
				      json_describe(dim, desc, sizeof(desc)), why);
		t->ndim++;
	}
	return 0;
}

/* Reads data_offsets into t->offset (still relative) and t->nbytes. */
static int parse_offsets(const cJSON *item, struct st_tensor *t,
			 const char *what, char *err)
{
	uint64_t v[2];
	char desc[64];
	int i = 0;
	const cJSON *e;

	if (cJSON_IsArray(item))
		snprintf(desc, sizeof(desc), "an array of %d entries",
			 cJSON_GetArraySize(item));
	else
		json_describe(item, desc, sizeof(desc));
	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2)
		return sd_err(err, -EINVAL,
			      "%s: tensor " NAME_FMT ": data_offsets is %s; it must be an array of two integers [begin, end]",
			      what, t->name, desc);
	cJSON_ArrayForEach(e, item) {
		const char *why = json_uint(e, &v[i]);

		if (why)
			return sd_err(err, -EINVAL,
				      "%s: tensor " NAME_FMT ": data_offsets[%d] is %s, which is %s; offsets must be non-negative integers",
				      what, t->name, i,
				      json_describe(e, desc, sizeof(desc)), why);
		i++;
	}
	if (v[0] > v[1])
		return sd_err(err, -EINVAL,
			      "%s: tensor " NAME_FMT ": data_offsets [%llu, %llu] end before they begin",
			      what, t->name, (unsigned long long)v[0],
			      (unsigned long long)v[1]);
	t->offset = v[0];
	t->nbytes = v[1] - v[0];
	return 0;
}

/* Fills t from the header entry item (whose key is t->name). */
static int parse_tensor(const cJSON *item, struct st_tensor *t,
			uint64_t data_size, const char *what, char *err)
{
	static const char *const fields[3] = { "dtype", "shape", "data_offsets" };
	const cJSON *found[3] = { NULL, NULL, NULL };
	const cJSON *field;
	char desc[64], ctx[SD_ERRLEN], shape[256];
	uint64_t need = 0;
	int rc;

	if (!cJSON_IsObject(item))
		return sd_err(err, -EINVAL,
			      "%s: tensor " NAME_FMT ": entry is %s, not an object with dtype, shape and data_offsets",
			      what, t->name, json_describe(item, desc, sizeof(desc)));
	/* cJSON keeps repeated keys; a repeated field would be ambiguous. */
	cJSON_ArrayForEach(field, item) {
		for (int f = 0; f < 3; f++) {
			if (strcmp(field->string, fields[f]) != 0)
				continue;
			if (found[f])
				return sd_err(err, -EINVAL,
					      "%s: tensor " NAME_FMT ": field \"%s\" appears twice",
					      what, t->name, fields[f]);
			found[f] = field;
		}
	}
	for (int f = 0; f < 3; f++)
		if (!found[f])
			return sd_err(err, -EINVAL,
				      "%s: tensor " NAME_FMT ": missing \"%s\"",
				      what, t->name, fields[f]);

	if ((rc = parse_dtype(found[0], t, what, err)) ||
	    (rc = parse_shape(found[1], t, what, err)) ||
	    (rc = parse_offsets(found[2], t, what, err)))
		return rc;

	snprintf(ctx, sizeof(ctx), "%s: tensor " NAME_FMT, what, t->name);
	rc = st_shape_bytes(t->shape, t->ndim, dtype_size(t->dtype), &need,
			    ctx, err);
	if (rc)
		return rc;
	format_shape(t, shape, sizeof(shape));
	if (need != t->nbytes)
		return sd_err(err, -EINVAL,
			      "%s: data_offsets [%llu, %llu] hold %llu bytes but shape %s of %s needs %llu",
			      ctx, (unsigned long long)t->offset,
			      (unsigned long long)(t->offset + t->nbytes),
			      (unsigned long long)t->nbytes, shape,
			      dtype_name(t->dtype), (unsigned long long)need);
	if (t->offset + t->nbytes > data_size)
		return sd_err(err, -EINVAL,
			      "%s: data_offsets [%llu, %llu] run past the end of the data section (%llu bytes): file truncated?",
			      ctx, (unsigned long long)t->offset,
			      (unsigned long long)(t->offset + t->nbytes),
			      (unsigned long long)data_size);
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	const struct st_tensor *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Zero-byte tensors sort before a tensor that begins where they sit, and
 * ties are broken by name so the order never depends on qsort. */
static int cmp_offset(const void *a, const void *b)
{
	const struct st_tensor *x = a, *y = b;

	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	if (x->nbytes != y->nbytes)
		return x->nbytes < y->nbytes ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Tensors are sorted by offset (still relative to the data section). */
static int check_tiling(const struct st_header *h, uint64_t data_size,
			const char *what, char *err)
{
	uint64_t end = 0;

	for (size_t i = 0; i < h->ntensors; i++) {
		const struct st_tensor *t = &h->tensors[i];

		if (t->offset > end) {
			if (i == 0)
				return sd_err(err, -EINVAL,
					      "%s: tensor " NAME_FMT " starts at data offset %llu, leaving %llu unused bytes at the start of the data section; the first tensor must start at 0",
					      what, t->name,
					      (unsigned long long)t->offset,
					      (unsigned long long)t->offset);
			return sd_err(err, -EINVAL,
				      "%s: %llu unused bytes between tensor " NAME_FMT " (ends at data offset %llu) and tensor " NAME_FMT " (starts at %llu)",
				      what, (unsigned long long)(t->offset - end),
				      h->tensors[i - 1].name,
				      (unsigned long long)end, t->name,
				      (unsigned long long)t->offset);
		}
		if (t->offset < end)
			return sd_err(err, -EINVAL,
				      "%s: tensor " NAME_FMT " data_offsets [%llu, %llu] overlap tensor " NAME_FMT ", which ends at %llu",
				      what, t->name,
				      (unsigned long long)t->offset,
				      (unsigned long long)(t->offset + t->nbytes),
				      h->tensors[i - 1].name,
				      (unsigned long long)end);
		end = t->offset + t->nbytes;
	}
	if (end != data_size)
		return sd_err(err, -EINVAL,
			      "%s: the data section holds %llu bytes but the tensors end at %llu: %llu trailing bytes belong to no tensor",
			      what, (unsigned long long)data_size,
			      (unsigned long long)end,
			      (unsigned long long)(data_size - end));
	return 0;
}

static int take_metadata(cJSON *root, cJSON *item, struct st_header *out,
			 const char *what, char *err)
{
	const cJSON *value;
	char desc[64];

	if (out->metadata)
		return sd_err(err, -EINVAL,
			      "%s: \"__metadata__\" appears twice", what);
	if (!cJSON_IsObject(item))
		return sd_err(err, -EINVAL,
			      "%s: \"__metadata__\" is %s, not an object of strings",
			      what, json_describe(item, desc, sizeof(desc)));
	cJSON_ArrayForEach(value, item)
		if (!cJSON_IsString(value))
			return sd_err(err, -EINVAL,
				      "%s: \"__metadata__\" entry \"%.200s\" is %s; metadata values must be strings",
				      what, value->string,
				      json_describe(value, desc, sizeof(desc)));
	out->metadata = cJSON_DetachItemViaPointer(root, item);
	return 0;
}

static bool json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parses the JSON and checks everything that does not need the tensors. */
static int parse_root(const char *json, size_t len, const char *what,
		      cJSON **root, char *err)
{
	const char *end = NULL;
	char ctx[SD_ERRLEN];
	int rc;

	/* json.c refuses what cJSON would misread: NUL, \u0000, deep nesting */
	snprintf(ctx, sizeof(ctx), "%s: header", what);
	if ((rc = sd_json_parse(json, len, ctx, &end, root, err)) < 0)
		return rc;
	if (!cJSON_IsObject(*root))
		return sd_err(err, -EINVAL,
			      "%s: header is a JSON %s, not an object mapping tensor names to dtype, shape and data_offsets",
			      what, cJSON_IsArray(*root) ? "array" : "scalar");
	/* Writers pad the header with spaces to align the data section. */
	for (const char *p = end; p < json + len; p++)
		if (!json_space(*p))
			return sd_err(err, -EINVAL,
				      "%s: unexpected bytes after the header's JSON object, starting at byte %zu",
				      what, (size_t)(p - json));
	return 0;
}

static int parse_members(cJSON *root, uint64_t data_size, const char *what,
			 struct st_header *out, char *err)
{
	cJSON *item, *next;
	size_t count = 0;
	int rc;

	cJSON_ArrayForEach(item, root)
		if (strcmp(item->string, "__metadata__") != 0 &&
		    ++count > ST_MAX_TENSORS)
			return sd_err(err, -EINVAL,
				      "%s: header lists more than %u tensors",
				      what, ST_MAX_TENSORS);
	out->tensors = calloc(count ? count : 1, sizeof(*out->tensors));
	if (!out->tensors)
		return sd_err(err, -ENOMEM,
			      "%s: out of memory for %zu tensors", what, count);

	for (item = root->child; item; item = next) {
		struct st_tensor *t = &out->tensors[out->ntensors];
		size_t name_len = strlen(item->string);

		next = item->next;   /* take_metadata unlinks item */
		if (strcmp(item->string, "__metadata__") == 0) {
			rc = take_metadata(root, item, out, what, err);
			if (rc)
				return rc;
			continue;
		}
		if (name_len == 0)
			return sd_err(err, -EINVAL,
				      "%s: a tensor has an empty name", what);
		if (name_len > ST_MAX_NAME)
			return sd_err(err, -EINVAL,
				      "%s: tensor name " NAME_FMT "... is %zu bytes; at most %d are supported",
				      what, item->string, name_len, ST_MAX_NAME);
		/* The view writes the name back into JSON headers and the
		 * index; bytes that are not UTF-8 would not read back there. */
		if (!sd_utf8_valid(item->string, name_len)) {
			char shown[256];
			return sd_err(err, -EINVAL,
				      "%s: tensor name %s is not valid UTF-8, so it cannot be written into the view's JSON headers (other safetensors readers refuse it too)",
				      what, sd_quote(item->string, name_len, false, shown, sizeof(shown)));
		}
		t->name = strdup(item->string);
		if (!t->name)
			return sd_err(err, -ENOMEM, "%s: out of memory", what);
		out->ntensors++;
		rc = parse_tensor(item, t, data_size, what, err);
		if (rc)
			return rc;
	}
	return 0;
}

int st_parse_header(const char *json, size_t len, uint64_t file_size,
		    const char *what, struct st_header *out, char *err)
{
	cJSON *root = NULL;
	uint64_t data_size;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = check_file_size(file_size, what, err)) < 0)
		return rc;
	rc = check_header_len(len, file_size, what, err);
	if (rc)
		return rc;
	out->header_len = len;
	out->data_start = 8 + (uint64_t)len;
	out->file_size = file_size;
	data_size = file_size - out->data_start;

	rc = parse_root(json, len, what, &root, err);
	if (!rc)
		rc = parse_members(root, data_size, what, out, err);
	cJSON_Delete(root);
	if (rc)
		goto fail;

	qsort(out->tensors, out->ntensors, sizeof(*out->tensors), cmp_name);
	for (size_t i = 1; i < out->ntensors; i++)
		if (strcmp(out->tensors[i - 1].name, out->tensors[i].name) == 0) {
			rc = sd_err(err, -EINVAL,
				    "%s: tensor " NAME_FMT " appears twice in the header",
				    what, out->tensors[i].name);
			goto fail;
		}
	qsort(out->tensors, out->ntensors, sizeof(*out->tensors), cmp_offset);
	rc = check_tiling(out, data_size, what, err);
	if (rc)
		goto fail;
	for (size_t i = 0; i < out->ntensors; i++)
		out->tensors[i].offset += out->data_start;
	return 0;

fail:
	st_header_free(out);
	return rc;
}

/* pread all of len bytes at off; a short read means the file shrank. */
static int pread_all(int fd, void *buf, size_t len, uint64_t off,
		     const char *what, char *err)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return sd_err(err, -errno, "%s: reading the header: %s",
				      what, strerror(errno));
		if (n == 0)
			return sd_err(err, -EIO,
				      "%s: file ended at byte %llu while reading the header; was it truncated while being read?",
				      what, (unsigned long long)(off + done));
		done += (size_t)n;
	}
	return 0;
}

int st_read_header(int fd, uint64_t file_size, const char *what,
		   struct st_header *out, char *err)
{
	unsigned char lenbuf[8];
	uint64_t len = 0;
	char *json;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = check_file_size(file_size, what, err)) < 0)
		return rc;
	rc = pread_all(fd, lenbuf, sizeof(lenbuf), 0, what, err);
	if (rc)
		return rc;
	for (int i = 7; i >= 0; i--)           /* little-endian on any host */
		len = len << 8 | lenbuf[i];
	rc = check_header_len(len, file_size, what, err);
	if (rc)
		return rc;

	json = malloc((size_t)len);
	if (!json)
		return sd_err(err, -ENOMEM,
			      "%s: out of memory for a %llu-byte header",
			      what, (unsigned long long)len);
	rc = pread_all(fd, json, (size_t)len, 8, what, err);
	if (!rc)
		rc = st_parse_header(json, (size_t)len, file_size, what, out,
				     err);
	free(json);
	return rc;
}

void st_header_free(struct st_header *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->ntensors; i++)
		free(h->tensors[i].name);
	free(h->tensors);
	cJSON_Delete(h->metadata);
	memset(h, 0, sizeof(*h));
}
