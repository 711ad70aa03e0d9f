/*
 * fuzz_checkpoint.c — libFuzzer target: a whole view (scan, adapter choice,
 * plan, layout, reads) of a checkpoint built from the input.
 *
 * The input is an options byte and up to four texts separated by the bytes
 * FF 00 (which no UTF-8 JSON text contains):
 *
 *     opts | config.json | FF 00 | index.json | FF 00 | headers
 *          [ | FF 00 | adapter table ]
 *
 * where headers is one to three safetensors header texts separated by
 * FF 01.  opts picks the view options: bits 0-1 the view (auto, native,
 * hf, auto), bits 2-3 the dtype (auto, BF16, F16, F32), bits 4-5 ep_size
 * (0 = all experts), bit 6 ep_rank, and bit 7 "fix the offsets": each
 * header's data_offsets are rewritten to tile its tensors in the order
 * given, so that a mutated shape, dtype or name still makes a valid file
 * and reaches the adapter engine instead of stopping at the header check
 * (fuzz_safetensors covers the header check itself).
 *
 * The texts are written into one temporary directory made once per process
 * and rewritten every run: config.json and model.safetensors.index.json
 * (each only when its text is not empty) and shard k of n as
 * model-0000k-of-0000n.safetensors, as a Hugging Face writer names them:
 * the 8-byte length, the header, then as many data bytes as the header's
 * largest data_offsets end asks for, at most 1 MiB (a header asking for
 * more gets a truncated file).  The data is a fixed byte pattern rather
 * than zeros, so conversions meet NaN, Inf and subnormal bit patterns.  A
 * non-empty adapter table is written beside the directory and used as
 * -o adapter_file= (the seeds of the example families carry theirs), so
 * fuzzed tables meet fuzzed checkpoints; without one the built-in adapter
 * is chosen from config.json.
 *
 * When view_open succeeds every file of the view is read front to back
 * through view_read and view_io_gather, so every recipe is evaluated.
 * Errors are expected; a crash, leak, undefined behaviour, a leaked file
 * descriptor or a read that returns the wrong number of bytes is a bug.
 * With SDAFS_FUZZ_VERBOSE set, each run says how far it got (to check that
 * the seeds open).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "dtype.h"
#include "err.h"
#include "view.h"

#define DATA_CAP     (1u << 20)         /* data bytes written at most */
#define CACHE_BYTES  (1u << 20)
#define READ_LEN     65521u             /* odd, so reads straddle chunks */

#define CONFIG  "config.json"
#define INDEX   "model.safetensors.index.json"
#define SHARDS_MAX 3

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];                    /* the checkpoint */
static char table_path[96];             /* the adapter table, beside it */
static uint8_t *pattern;                /* DATA_CAP bytes of shard data */
static uint8_t *readbuf;                /* READ_LEN bytes */
static bool verbose;
static char shard_names[SHARDS_MAX][40];        /* written by the last run */

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_checkpoint: %s\n", what);
	abort();
}

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void remove_fixture(void)
{
	nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	unlink(table_path);
}

/* The directory, made on the first run and removed at exit. */
static void setup(void)
{
	if (dir[0])
		return;
	snprintf(dir, sizeof(dir), "/tmp/sdafs-fuzz-XXXXXX");
	if (!mkdtemp(dir))
		fail("cannot make a temporary directory");
	snprintf(table_path, sizeof(table_path), "%s-adapter.json", dir);
	atexit(remove_fixture);
	pattern = malloc(DATA_CAP);
	readbuf = malloc(READ_LEN);
	if (!pattern || !readbuf)
		fail("out of memory");
	for (size_t i = 0; i < DATA_CAP; i++)
		pattern[i] = (uint8_t)(i * 151 + (i >> 8) * 7 + 3);
	verbose = getenv("SDAFS_FUZZ_VERBOSE") != NULL;
}

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail("cannot write a fixture file");
		p += n;
		len -= (size_t)n;
	}
}

/* Write the file at path, or remove it when the text is empty. */
static void put_file(const char *path, const void *text, size_t len)
{
	int fd;

	if (!len) {
		if (unlink(path) < 0 && errno != ENOENT)
			fail("cannot remove a fixture file");
		return;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("cannot create a fixture file");
	write_all(fd, text, len);
	close(fd);
}

/* The data size the header asks for: its largest data_offsets end. */
static uint64_t claimed_data_size(const char *json, size_t len)
{
	cJSON *root = cJSON_ParseWithLength(json, len);
	const cJSON *object = cJSON_IsObject(root) ? root : NULL;
	const cJSON *entry;
	uint64_t end = 0;

	cJSON_ArrayForEach(entry, object) {
		const cJSON *last = cJSON_GetArrayItem(
			cJSON_GetObjectItemCaseSensitive(entry, "data_offsets"), 1);
		double d = cJSON_IsNumber(last) ? last->valuedouble : 0;

		if (d > 0 && d < 1e18 && (uint64_t)d > end)
			end = (uint64_t)d;
	}
	cJSON_Delete(root);
	return end;
}

/*
 * The header with its data_offsets rewritten to tile, in the order given,
 * every tensor whose dtype and shape make sense; NULL when the text is not
 * a JSON object.  Caller frees.
 */
static char *fixed_offsets(const char *json, size_t len)
{
	cJSON *root = cJSON_ParseWithLength(json, len);
	cJSON *entry;
	uint64_t at = 0;
	char *text;

	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return NULL;
	}
	cJSON_ArrayForEach(entry, root) {
		const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
		const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
		enum sd_dtype t = cJSON_IsString(dtype) ?
			dtype_parse(dtype->valuestring) : SD_DTYPE_INVALID;
		const cJSON *dim;
		uint64_t bytes;
		bool ok = t != SD_DTYPE_INVALID && cJSON_IsArray(shape);
		double offs[2];
		cJSON *arr;

		if (!ok)
			continue;
		bytes = dtype_size(t);
		cJSON_ArrayForEach(dim, shape) {
			double d = cJSON_IsNumber(dim) ? dim->valuedouble : -1;

			ok = ok && d >= 0 && d <= DATA_CAP &&
			     !__builtin_mul_overflow(bytes, (uint64_t)d, &bytes);
		}
		if (!ok || bytes > DATA_CAP - at)
			continue;
		offs[0] = (double)at;
		offs[1] = (double)(at + bytes);
		if (!(arr = cJSON_CreateDoubleArray(offs, 2)))
			fail("out of memory");
		if (cJSON_GetObjectItemCaseSensitive(entry, "data_offsets"))
			cJSON_ReplaceItemInObjectCaseSensitive(entry, "data_offsets", arr);
		else
			cJSON_AddItemToObject(entry, "data_offsets", arr);
		at += bytes;
	}
	text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!text)
		fail("out of memory");
	return text;
}

static void put_shard(const char *name, const char *header, size_t len, bool fix)
{
	char path[128], *fixed = fix ? fixed_offsets(header, len) : NULL;
	uint8_t lenbuf[8];
	uint64_t data;
	int fd;

	if (fixed) {
		header = fixed;
		len = strlen(fixed);
	}
	data = claimed_data_size(header, len);
	if (data > DATA_CAP)
		data = DATA_CAP;
	for (int i = 0; i < 8; i++)
		lenbuf[i] = (uint8_t)((uint64_t)len >> (8 * i));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("cannot create a shard");
	write_all(fd, lenbuf, sizeof(lenbuf));
	write_all(fd, header, len);
	write_all(fd, pattern, (size_t)data);
	close(fd);
	free(fixed);
}

/* Up to SHARDS_MAX headers separated by FF 01; the last run's shards go. */
static void put_shards(const uint8_t *text, size_t len, bool fix)
{
	const uint8_t *p = text, *end = text + len, *hdr[SHARDS_MAX];
	size_t hlen[SHARDS_MAX];
	int n = 0;
	char path[128];

	for (int k = 0; k < SHARDS_MAX && shard_names[k][0]; k++) {
		snprintf(path, sizeof(path), "%s/%s", dir, shard_names[k]);
		unlink(path);
		shard_names[k][0] = '\0';
	}
	while (n < SHARDS_MAX) {
		const uint8_t *q = p;

		while (q < end && !(q + 1 < end && q[0] == 0xFF && q[1] == 0x01))
			q++;
		hdr[n] = p;
		hlen[n++] = (size_t)(q - p);
		if (q == end)
			break;
		p = q + 2;
	}
	hlen[n - 1] = (size_t)(end - hdr[n - 1]);     /* the rest, FF 01 and all */
	for (int k = 0; k < n; k++) {
		snprintf(shard_names[k], sizeof(shard_names[k]),
			 "model-%05d-of-%05d.safetensors", k + 1, n);
		put_shard(shard_names[k], (const char *)hdr[k], hlen[k], fix);
	}
}

/* The next part of the input up to FF 00 (or the end). */
static const char *next_part(const uint8_t **p, const uint8_t *end, size_t *len)
{
	const uint8_t *start = *p, *q = start;

	while (q < end && !(q[0] == 0xFF && q + 1 < end && q[1] == 0x00))
		q++;
	*len = (size_t)(q - start);
	*p = q < end ? q + 2 : end;
	return (const char *)start;
}

static struct view_opts opts_from(uint8_t b)
{
	static const enum view_kind views[4] = { VIEW_AUTO, VIEW_NATIVE, VIEW_HF, VIEW_AUTO };
	static const enum sd_dtype dtypes[4] = { SD_DTYPE_INVALID, SD_BF16, SD_F16, SD_F32 };
	struct view_opts o = { 0 };

	o.view = views[b & 3];
	o.dtype = dtypes[(b >> 2) & 3];
	o.ep_size = (b >> 4) & 3;
	o.ep_rank = (b >> 6) & 1;
	return o;
}

/* Lowest free descriptor: it moves when a run leaks one. */
static int lowest_free_fd(void)
{
	int fd = dup(0);

	if (fd >= 0)
		close(fd);
	return fd;
}

static void read_view(struct view *v)
{
	struct view_io io = { 0 };
	char err[SD_ERRLEN];

	for (size_t f = 0; f < v->layout.n; f++) {
		uint64_t fsize = v->layout.files[f].size;

		for (uint64_t off = 0; off < fsize; off += READ_LEN) {
			size_t want = fsize - off < READ_LEN ? (size_t)(fsize - off) : READ_LEN;
			size_t got = 0;
			int rc = view_read(v, f, off, READ_LEN, &io, err);

			if (rc < 0) {   /* a conversion that failed, say */
				if (verbose)
					fprintf(stderr, "fuzz_checkpoint: read: %s\n", err);
				break;
			}
			for (size_t s = 0; s < io.nseg; s++)
				got += io.segs[s].len;
			if (got != want) {
				fprintf(stderr, "fuzz_checkpoint: %s at %llu: %zu bytes, expected %zu\n",
					v->layout.files[f].name,
					(unsigned long long)off, got, want);
				abort();
			}
			rc = view_io_gather(v, &io, readbuf, err);
			view_io_release(v, &io);
			if (rc < 0)
				break;
		}
	}
	view_io_free(&io);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	const char *config, *index, *headers, *table;
	size_t config_len, index_len, headers_len, table_len;
	char path[128], err[SD_ERRLEN];
	struct view_opts o;
	struct view v;
	int fd_before;

	if (size < 1)
		return 0;
	setup();
	o = opts_from(*p++);
	config = next_part(&p, end, &config_len);
	index = next_part(&p, end, &index_len);
	headers = next_part(&p, end, &headers_len);
	table = next_part(&p, end, &table_len);
	snprintf(path, sizeof(path), "%s/" CONFIG, dir);
	put_file(path, config, config_len);
	snprintf(path, sizeof(path), "%s/" INDEX, dir);
	put_file(path, index, index_len);
	put_shards((const uint8_t *)headers, headers_len, data[0] & 0x80);
	put_file(table_path, table, table_len);
	o.adapter_file = table_len ? table_path : NULL;

	fd_before = lowest_free_fd();
	err[0] = '\0';
	if (view_open(&v, dir, &o, CACHE_BYTES, err) == 0) {
		if (verbose)
			fprintf(stderr, "fuzz_checkpoint: view %s by %s: %zu files, %zu tensors\n",
				v.plan.direction, v.plan.adapter, v.layout.n, v.plan.n);
		read_view(&v);
		view_close(&v);
	} else if (!err[0]) {
		fail("view_open failed without a message");
	} else if (verbose) {
		fprintf(stderr, "fuzz_checkpoint: open: %s\n", err);
	}
	if (lowest_free_fd() != fd_before)
		fail("a file descriptor leaked");
	return 0;
}
