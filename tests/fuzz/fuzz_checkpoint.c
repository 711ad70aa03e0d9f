/*
 * fuzz_checkpoint.c — libFuzzer target: a whole view (scan, adapter choice,
 * plan, layout, reads) of a checkpoint built from the input.
 *
 * The input is an options byte and up to six texts separated by the bytes
 * FF 00 (which no UTF-8 JSON text contains):
 *
 *     opts | config.json | FF 00 | index.json | FF 00 | headers
 *          [ | FF 00 | adapter table
 *          [ | FF 00 | fqn_to_file_index_mapping | FF 00 | fqn_to_dtype_mapping ]]
 *
 * where headers is one to three safetensors header texts separated by
 * FF 01.  An input with the fifth text (even an empty one) is an Automodel
 * sharded save: config.json and the two mappings (when not empty) go into
 * .hf_metadata/, and the headers' __metadata__ may carry DCP_SHARDING_INFO.
 *
 * An input whose config.json text is a JSON object with a "peft_type" key
 * is a PEFT adapter directory instead: that text becomes
 * adapter_config.json, the first header adapter_model.safetensors, and
 * there is no config.json, index, other shard or .hf_metadata/ (the index
 * and mapping texts are ignored).  No model config has that key, so the
 * inputs of the other modes keep their meaning.
 *
 * opts picks the view options: bits 0-1 the view (auto, native, hf, auto),
 * bits 2-3 the dtype (auto, BF16, F16, F32), bits 4-5 ep_size (0 = all
 * experts), bit 6 ep_rank (in PEFT mode, where ep_rank means nothing, the
 * peft_v4 flag: per-expert HF keys instead of ParamWrapper tensors), and
 * bit 7 "fix the offsets": each header's data_offsets are rewritten to tile
 * its tensors in the order given, so that a mutated shape, dtype or name
 * still makes a valid file and reaches the adapter engine instead of
 * stopping at the header check (fuzz_safetensors covers the header check
 * itself).
 *
 * The texts are written into one temporary directory ($TMPDIR or /tmp)
 * made once per process and rewritten every run: config.json and
 * model.safetensors.index.json (each only when its text is not empty) and
 * shard k of n as model-0000k-of-0000n.safetensors, as a Hugging Face
 * writer names them: the 8-byte length, the header, then as many data
 * bytes as the header's largest data_offsets end asks for, at most 1 MiB
 * (a header asking for more gets a truncated file).  The data is a fixed byte pattern rather
 * than zeros, so conversions meet NaN, Inf and subnormal bit patterns.  A
 * non-empty adapter table is written beside the directory and used as
 * -o adapter_file= (the seeds of the example families carry theirs), so
 * fuzzed tables meet fuzzed checkpoints; without one the built-in adapter
 * is chosen from config.json.
 *
 * When view_open succeeds every file of the view is read front to back
 * through view_read and view_io_gather, so every recipe is evaluated, and
 * what the view shows must itself be valid: each weight file a safetensors
 * file (checked by st_parse_header) whose header matches the plan, and the
 * index naming a weight file of the view for every tensor; a PEFT view has
 * instead no index and one weight file, adapter_model.safetensors, holding
 * every tensor, beside adapter_config.json passed through.  Errors are
 * expected; a crash, leak, undefined behaviour, a leaked file descriptor, a
 * read that returns the wrong number of bytes or an invalid view is a bug.
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
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "dtype.h"
#include "err.h"
#include "peft.h"
#include "safetensors.h"
#include "view.h"

#define DATA_CAP     (1u << 20)         /* data bytes written at most */
#define CACHE_BYTES  (1u << 20)
#define READ_LEN     65521u             /* odd, so reads straddle chunks */

#define CONFIG  "config.json"
#define INDEX   "model.safetensors.index.json"
#define META    ".hf_metadata"          /* an Automodel save's config and maps */
#define FILE_INDEX_MAP "fqn_to_file_index_mapping.json"
#define DTYPE_MAP      "fqn_to_dtype_mapping.json"

/* The texts of an input, in order. */
enum { P_CONFIG, P_INDEX, P_HEADERS, P_TABLE, P_FILE_INDEX, P_DTYPES, PARTS };
#define SHARDS_MAX 3

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256];                   /* the checkpoint */
static char table_path[300];            /* the adapter table, beside it */
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
	const char *tmp;

	if (dir[0])
		return;
	tmp = getenv("TMPDIR");
	if (!tmp || !tmp[0] || strlen(tmp) > 200)
		tmp = "/tmp";
	snprintf(dir, sizeof(dir), "%s/sdafs-fuzz-XXXXXX", tmp);
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

/* dir/name, in a buffer that the next call reuses. */
static const char *path_in(const char *d, const char *name)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/%s", d, name);
	return path;
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

/* An Automodel save keeps config.json and the fqn mappings in .hf_metadata/;
 * other checkpoints have no such folder. */
static void put_metadata(bool automodel, const char *const *part, const size_t *len)
{
	char meta[300];

	snprintf(meta, sizeof(meta), "%s/" META, dir);
	if (automodel && mkdir(meta, 0755) < 0 && errno != EEXIST)
		fail("cannot make .hf_metadata");
	put_file(path_in(meta, CONFIG), part[P_CONFIG], automodel ? len[P_CONFIG] : 0);
	put_file(path_in(meta, FILE_INDEX_MAP), part[P_FILE_INDEX], automodel ? len[P_FILE_INDEX] : 0);
	put_file(path_in(meta, DTYPE_MAP), part[P_DTYPES], automodel ? len[P_DTYPES] : 0);
	if (!automodel && rmdir(meta) < 0 && errno != ENOENT)
		fail("cannot remove .hf_metadata");
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
	char path[512], *fixed = fix ? fixed_offsets(header, len) : NULL;
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

/* Up to SHARDS_MAX headers separated by FF 01 (PEFT: the first one only);
 * the last run's shards go. */
static void put_shards(const uint8_t *text, size_t len, bool fix, bool peft)
{
	const uint8_t *p = text, *end = text + len, *hdr[SHARDS_MAX];
	size_t hlen[SHARDS_MAX];
	int n = 0;
	char path[512];

	for (int k = 0; k < SHARDS_MAX && shard_names[k][0]; k++) {
		snprintf(path, sizeof(path), "%s/%s", dir, shard_names[k]);
		unlink(path);
		shard_names[k][0] = '\0';
	}
	while (n < (peft ? 1 : SHARDS_MAX)) {
		const uint8_t *q = p;

		while (q < end && !(q + 1 < end && q[0] == 0xFF && q[1] == 0x01))
			q++;
		hdr[n] = p;
		hlen[n++] = (size_t)(q - p);
		if (q == end)
			break;
		p = q + 2;
	}
	if (!peft)
		hlen[n - 1] = (size_t)(end - hdr[n - 1]);     /* the rest, FF 01 and all */
	for (int k = 0; k < n; k++) {
		if (peft)
			snprintf(shard_names[k], sizeof(shard_names[k]), "%s", PEFT_WEIGHTS);
		else
			snprintf(shard_names[k], sizeof(shard_names[k]),
				 "model-%05d-of-%05d.safetensors", k + 1, n);
		put_shard(shard_names[k], (const char *)hdr[k], hlen[k], fix);
	}
}

/* Split text at FF 00 into at most PARTS parts (the last one takes the
 * rest); returns how many there are. */
static int split_parts(const uint8_t *text, size_t len, const char **part,
		       size_t *part_len)
{
	const uint8_t *p = text, *end = text + len;
	int n = 0;

	for (;;) {
		const uint8_t *q = p;

		while (n < PARTS - 1 && q < end && !(q + 1 < end && q[0] == 0xFF && q[1] == 0x00))
			q++;
		if (n == PARTS - 1)
			q = end;
		part[n] = (const char *)p;
		part_len[n++] = (size_t)(q - p);
		if (q == end)
			return n;
		p = q + 2;
	}
}

static struct view_opts opts_from(uint8_t b, bool peft)
{
	static const enum view_kind views[4] = { VIEW_AUTO, VIEW_NATIVE, VIEW_HF, VIEW_AUTO };
	static const enum sd_dtype dtypes[4] = { SD_DTYPE_INVALID, SD_BF16, SD_F16, SD_F32 };
	struct view_opts o = { 0 };

	o.view = views[b & 3];
	o.dtype = dtypes[(b >> 2) & 3];
	o.ep_size = (b >> 4) & 3;
	if (peft)
		o.peft_v4 = (b >> 6) & 1;
	else
		o.ep_rank = (b >> 6) & 1;
	return o;
}

/* A PEFT input: its config text is a JSON object with a "peft_type" key. */
static bool is_peft(const char *config, size_t len)
{
	cJSON *root = len ? cJSON_ParseWithLength(config, len) : NULL;
	bool peft = cJSON_IsObject(root) &&
		    cJSON_GetObjectItemCaseSensitive(root, "peft_type") != NULL;

	cJSON_Delete(root);
	return peft;
}

/* Lowest free descriptor: it moves when a run leaks one. */
static int lowest_free_fd(void)
{
	int fd = dup(0);

	if (fd >= 0)
		close(fd);
	return fd;
}

/* Slots in the order st_parse_header lists tensors: by offset, then size
 * (a zero-byte tensor first), then name. */
static int slot_order(const void *a, const void *b, void *arg)
{
	const struct view *v = arg;
	const struct vslot *x = a, *y = b;
	const struct plan_tensor *tx = &v->plan.tensors[x->tensor];
	const struct plan_tensor *ty = &v->plan.tensors[y->tensor];

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	if (tx->nbytes != ty->nbytes)
		return tx->nbytes < ty->nbytes ? -1 : 1;
	return strcmp(tx->name, ty->name);
}

/* A view's weight file must be a valid safetensors file holding its slots'
 * tensors with the plan's names, dtypes, sizes and offsets. */
static void check_weights_file(struct view *v, const struct vfile *f,
			       const uint8_t *bytes)
{
	struct st_header h;
	struct vslot *slots;
	uint64_t n = 0;
	char err[SD_ERRLEN];

	for (int i = 7; i >= 0; i--)
		n = n << 8 | bytes[i];
	if (f->size < 8 || n > f->size - 8)
		fail("a view file's header length runs past its end");
	if (st_parse_header((const char *)bytes + 8, (size_t)n, f->size, f->name,
			    &h, err) < 0) {
		fprintf(stderr, "fuzz_checkpoint: view file is not valid safetensors: %s\n", err);
		abort();
	}
	if (h.ntensors != f->nslots)
		fail("a view file's header lists more or fewer tensors than it holds");
	if (!(slots = malloc((f->nslots + 1) * sizeof(*slots))))
		fail("out of memory");
	memcpy(slots, f->slots, f->nslots * sizeof(*slots));
	qsort_r(slots, f->nslots, sizeof(*slots), slot_order, v);
	for (size_t i = 0; i < h.ntensors; i++) {
		const struct plan_tensor *t = &v->plan.tensors[slots[i].tensor];

		if (strcmp(h.tensors[i].name, t->name) != 0 ||
		    h.tensors[i].dtype != t->dtype || h.tensors[i].nbytes != t->nbytes ||
		    h.tensors[i].offset != slots[i].off) {
			fprintf(stderr, "fuzz_checkpoint: %s: header entry '%s' at %llu disagrees with slot '%s' at %llu\n",
				f->name, h.tensors[i].name,
				(unsigned long long)h.tensors[i].offset, t->name,
				(unsigned long long)slots[i].off);
			abort();
		}
	}
	free(slots);
	st_header_free(&h);
}

/* The view's index must name, for every tensor of the plan, a weight file
 * of the view. */
static void check_index_file(const struct view *v, const uint8_t *bytes, size_t len)
{
	cJSON *root = cJSON_ParseWithLength((const char *)bytes, len);
	const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
	const cJSON *e;
	size_t n = 0;

	if (!cJSON_IsObject(map))
		fail("the view's index has no weight_map");
	cJSON_ArrayForEach(e, map) {
		long f = cJSON_IsString(e) ? layout_find(&v->layout, e->valuestring) : -1;

		if (f < 0 || v->layout.files[f].kind != VF_WEIGHTS)
			fail("the view's index maps a tensor to a file the view lacks");
		n++;
	}
	if (n != v->plan.n)
		fail("the view's index does not list every tensor once");
	cJSON_Delete(root);
}

/* Read one file of the view front to back; the whole of it when it is
 * small enough to check. */
static void read_file(struct view *v, size_t fi, struct view_io *io)
{
	const struct vfile *f = &v->layout.files[fi];
	uint8_t *whole = f->size <= (64u << 20) ? malloc(f->size + 1) : NULL;
	char err[SD_ERRLEN];
	uint64_t off;

	for (off = 0; off < f->size; off += READ_LEN) {
		size_t want = f->size - off < READ_LEN ? (size_t)(f->size - off) : READ_LEN;
		size_t got = 0;
		int rc = view_read(v, fi, off, READ_LEN, io, err);

		if (rc < 0) {   /* a conversion that failed, say */
			if (verbose)
				fprintf(stderr, "fuzz_checkpoint: read: %s\n", err);
			break;
		}
		for (size_t s = 0; s < io->nseg; s++)
			got += io->segs[s].len;
		if (got != want) {
			fprintf(stderr, "fuzz_checkpoint: %s at %llu: %zu bytes, expected %zu\n",
				f->name, (unsigned long long)off, got, want);
			abort();
		}
		rc = view_io_gather(v, io, whole ? whole + off : readbuf, err);
		view_io_release(v, io);
		if (rc < 0)
			break;
	}
	if (whole && off >= f->size) {
		if (f->kind == VF_WEIGHTS)
			check_weights_file(v, f, whole);
		else if (!strcmp(f->name, INDEX))
			check_index_file(v, whole, (size_t)f->size);
	}
	free(whole);
}

/* The view's files: a PEFT view is adapter_model.safetensors holding every
 * tensor and adapter_config.json passed through, without an index; any
 * other view has an index (check_index_file checks what it says). */
static void check_files(const struct view *v)
{
	long index = layout_find(&v->layout, INDEX);
	size_t weights = 0, slots = 0;

	for (size_t f = 0; f < v->layout.n; f++) {
		if (v->layout.files[f].kind == VF_WEIGHTS) {
			weights++;
			slots += v->layout.files[f].nslots;
		}
	}
	if (!v->src.peft) {
		if (index < 0)
			fail("the view has no index");
		return;
	}
	long w = layout_find(&v->layout, PEFT_WEIGHTS);
	long c = layout_find(&v->layout, PEFT_CONFIG);
	if (index >= 0)
		fail("a PEFT view has an index");
	if (weights != 1 || w < 0 || v->layout.files[w].kind != VF_WEIGHTS)
		fail("a PEFT view is not one weight file " PEFT_WEIGHTS);
	if (slots != v->plan.n)
		fail("a PEFT view's weight file does not hold every tensor once");
	if (c < 0 || v->layout.files[c].kind != VF_SOURCE)
		fail("a PEFT view does not pass " PEFT_CONFIG " through");
}

static void read_view(struct view *v)
{
	struct view_io io = { 0 };

	check_files(v);
	for (size_t f = 0; f < v->layout.n; f++)
		read_file(v, f, &io);
	view_io_free(&io);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *part[PARTS] = { "", "", "", "", "", "" };   /* absent: empty */
	size_t len[PARTS] = { 0 };
	char err[SD_ERRLEN];
	struct view_opts o;
	struct view v;
	bool automodel, peft;
	int fd_before;

	if (size < 1)
		return 0;
	setup();
	automodel = split_parts(data + 1, size - 1, part, len) > P_FILE_INDEX;
	peft = is_peft(part[P_CONFIG], len[P_CONFIG]);
	automodel = automodel && !peft;
	o = opts_from(data[0], peft);
	put_file(path_in(dir, CONFIG), part[P_CONFIG], automodel || peft ? 0 : len[P_CONFIG]);
	put_file(path_in(dir, PEFT_CONFIG), part[P_CONFIG], peft ? len[P_CONFIG] : 0);
	put_file(path_in(dir, INDEX), part[P_INDEX], peft ? 0 : len[P_INDEX]);
	put_shards((const uint8_t *)part[P_HEADERS], len[P_HEADERS], data[0] & 0x80, peft);
	put_file(table_path, part[P_TABLE], len[P_TABLE]);
	o.adapter_file = len[P_TABLE] ? table_path : NULL;
	put_metadata(automodel, part, len);

	fd_before = lowest_free_fd();
	err[0] = '\0';
	if (view_open(&v, dir, &o, CACHE_BYTES, err) == 0) {
		if (verbose)
			fprintf(stderr, "fuzz_checkpoint: view %s by %s: %zu files, %zu tensors\n",
				v.plan.direction, v.plan.adapter, v.layout.n, v.plan.n);
		if (v.src.peft != peft)
			fail(peft ? "a PEFT directory was not taken for one" :
			     "a checkpoint was taken for a PEFT directory");
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
