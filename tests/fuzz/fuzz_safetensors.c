/*
 * fuzz_safetensors.c — libFuzzer target: st_parse_header on arbitrary JSON.
 *
 * The input is the header JSON itself (a seed is the header of a real
 * shard).  The file size handed to the parser is derived from the input so
 * that the fuzzer reaches the accepting path: the harness reads the largest
 * data_offsets end with its own cJSON walk and, by the input length modulo
 * 8 (trailing spaces are legal padding, so the fuzzer controls it), passes
 * a file that ends exactly there, one byte short, one byte long, or holds
 * no data at all.  Whenever the parser accepts, the header must describe
 * the file: every tensor inside it, in offset order, tiling the data
 * section with no gap or overlap, its byte count the product of its shape
 * and element size, names unique, metadata an object of strings.  Any
 * violation aborts, so libFuzzer records it as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "safetensors.h"

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "fuzz_safetensors: invariant broken: " #cond ": " \
				__VA_ARGS__);                                \
			fputc('\n', stderr);                                 \
			abort();                                             \
		}                                                            \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The largest data_offsets end any entry claims (0 when there is none or
 * the text is not JSON): the data size a consistent file would have. */
static uint64_t claimed_data_size(const char *json, size_t len)
{
	cJSON *root = cJSON_ParseWithLength(json, len);
	const cJSON *object = cJSON_IsObject(root) ? root : NULL;
	const cJSON *entry;
	uint64_t end = 0;

	cJSON_ArrayForEach(entry, object) {
		const cJSON *offs = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
		const cJSON *last = cJSON_GetArrayItem(offs, 1);
		double d = cJSON_IsNumber(last) ? last->valuedouble : 0;

		if (d > 0 && d < 1e18 && (uint64_t)d > end)
			end = (uint64_t)d;
	}
	cJSON_Delete(root);
	return end;
}

static uint64_t file_size_for(const char *json, size_t len)
{
	uint64_t exact = 8 + (uint64_t)len + claimed_data_size(json, len);

	switch (len % 8) {
	case 5: return exact + 1;               /* a trailing byte no tensor owns */
	case 6: return exact - 1;               /* truncated (may go below 8 + len) */
	case 7: return 8 + (uint64_t)len;       /* header only */
	default: return exact;
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_header(const struct st_header *h, size_t len,
			 uint64_t file_size)
{
	uint64_t at;
	const char **names;

	CHECK(h->header_len == len, "header_len %llu, input %zu",
	      (unsigned long long)h->header_len, len);
	CHECK(h->data_start == 8 + (uint64_t)len, "data_start %llu",
	      (unsigned long long)h->data_start);
	CHECK(h->file_size == file_size, "file_size %llu, given %llu",
	      (unsigned long long)h->file_size, (unsigned long long)file_size);
	CHECK(h->ntensors == 0 || h->tensors, "tensors array missing");
	CHECK(h->ntensors <= ST_MAX_TENSORS, "%zu tensors", h->ntensors);

	at = h->data_start;
	for (size_t i = 0; i < h->ntensors; i++) {
		const struct st_tensor *t = &h->tensors[i];
		uint64_t bytes = dtype_size(t->dtype);
		int overflow = 0;

		CHECK(t->name && t->name[0], "tensor %zu has no name", i);
		CHECK(strlen(t->name) <= ST_MAX_NAME, "name of %zu bytes",
		      strlen(t->name));
		CHECK(t->dtype >= 0 && t->dtype < SD_DTYPE_COUNT, "dtype %d",
		      (int)t->dtype);
		CHECK(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS, "ndim %d", t->ndim);
		for (int d = 0; d < t->ndim; d++)
			overflow |= __builtin_mul_overflow(bytes, t->shape[d], &bytes);
		CHECK(!overflow && bytes <= (uint64_t)INT64_MAX,
		      "'%s': shape product overflows but the header was accepted",
		      t->name);
		CHECK(t->nbytes == bytes, "'%s': nbytes %llu, shape needs %llu",
		      t->name, (unsigned long long)t->nbytes,
		      (unsigned long long)bytes);
		/* Sorted and contiguous: each tensor starts where the last ended. */
		CHECK(t->offset == at, "'%s' starts at %llu, expected %llu",
		      t->name, (unsigned long long)t->offset,
		      (unsigned long long)at);
		CHECK(t->offset + t->nbytes >= t->offset &&
		      t->offset + t->nbytes <= file_size,
		      "'%s' [%llu, +%llu) leaves the file of %llu bytes", t->name,
		      (unsigned long long)t->offset,
		      (unsigned long long)t->nbytes,
		      (unsigned long long)file_size);
		at = t->offset + t->nbytes;
	}
	CHECK(at == file_size, "tensors end at %llu, file is %llu bytes",
	      (unsigned long long)at, (unsigned long long)file_size);

	names = malloc((h->ntensors + 1) * sizeof(*names));
	CHECK(names, "out of memory in the harness");
	for (size_t i = 0; i < h->ntensors; i++)
		names[i] = h->tensors[i].name;
	qsort(names, h->ntensors, sizeof(*names), cmp_str);
	for (size_t i = 1; i < h->ntensors; i++)
		CHECK(strcmp(names[i - 1], names[i]) != 0, "'%s' twice", names[i]);
	free(names);

	if (h->metadata) {
		const cJSON *v;

		CHECK(cJSON_IsObject(h->metadata), "metadata not an object");
		cJSON_ArrayForEach(v, h->metadata)
			CHECK(cJSON_IsString(v), "metadata value not a string");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *json = (const char *)data;
	uint64_t file_size = file_size_for(json, size);
	struct st_header h;
	char err[SD_ERRLEN];

	err[0] = '\0';
	if (st_parse_header(json, size, file_size, "fuzz", &h, err) == 0) {
		check_header(&h, size, file_size);
		st_header_free(&h);
	} else {
		CHECK(err[0], "an error without a message");
		CHECK(h.ntensors == 0 && !h.tensors && !h.metadata,
		      "a failed parse left data in *out");
	}
	return 0;
}
