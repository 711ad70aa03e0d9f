/*
 * test_view.c — a view of a checkpoint, end to end through view_open and
 * view_read, without FUSE.
 *
 * Each test writes a tiny Nemotron-H checkpoint into a fresh temporary
 * directory: config.json (two routed experts, two layers, bfloat16), one
 * safetensors file laid out as a safetensors writer lays it out, and a
 * tokenizer.json to pass through.  Every source element's value is a
 * formula of (tensor, element), so the tests compute each view tensor's
 * expected bytes with their own index arithmetic (gate_and_up_projs[e][h][i]
 * == up_e[i][h]) rather than by reading the source back.  The view's
 * header and index are parsed with cJSON.
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
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "cache.h"
#include "err.h"
#include "gpu.h"
#include "gpu_fake.h"
#include "testlib.h"
#include "view.h"

/* ---- the source checkpoint ---------------------------------------------------- */

#define WEIGHTS "model.safetensors"
#define SHARD "model-00001-of-00001.safetensors"
#define INDEX "model.safetensors.index.json"

enum { E = 2, H = 4, I = 3 };   /* experts, hidden size, expert intermediate size */

static const char CONFIG[] =
	"{\"architectures\":[\"NemotronHForCausalLM\"],\"n_routed_experts\":2,"
	"\"num_hidden_layers\":2,\"torch_dtype\":\"bfloat16\"}";
static const char TOKENIZER[] =
	"{\"version\":\"1.0\",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1}}}\n";

/* The source tensors in data order, all BF16. */
enum { EMBED, A_LOG, UP0, DOWN0, UP1, DOWN1, NORM, LM_HEAD, NSRC };

static const struct {
	const char *name;
	int ndim;
	uint64_t shape[2];
} SOURCE[NSRC] = {
	[EMBED] = { "backbone.embeddings.weight", 2, { 4, 3 } },
	[A_LOG] = { "backbone.layers.0.mixer.A_log", 1, { 2 } },
	[UP0] = { "backbone.layers.1.mixer.experts.0.up_proj.weight", 2, { I, H } },
	[DOWN0] = { "backbone.layers.1.mixer.experts.0.down_proj.weight", 2, { H, I } },
	[UP1] = { "backbone.layers.1.mixer.experts.1.up_proj.weight", 2, { I, H } },
	[DOWN1] = { "backbone.layers.1.mixer.experts.1.down_proj.weight", 2, { H, I } },
	[NORM] = { "backbone.norm_f.weight", 1, { H } },
	[LM_HEAD] = { "lm_head.weight", 2, { 5, H } },
};

/* The bf16 bits of element k of source tensor t: finite, all distinct. */
static uint16_t src_value(int t, uint64_t k)
{
	return (uint16_t)(0x3C00 + t * 0x100 + k * 3 + ((k & 1) << 15));
}

static uint64_t src_elems(int t)
{
	return SOURCE[t].ndim == 1 ? SOURCE[t].shape[0]
				   : SOURCE[t].shape[0] * SOURCE[t].shape[1];
}

/* The view's tensors, in the order the shard holds them (source order). */
enum { V_EMBED, V_A_LOG, V_GATE_UP, V_DOWN, V_NORM, V_LM_HEAD, NVIEW };

static const struct {
	const char *name;
	const char *dtype;
	int ndim;
	uint64_t shape[3];
} VIEW[NVIEW] = {
	[V_EMBED] = { "model.embed_tokens.weight", "BF16", 2, { 4, 3 } },
	[V_A_LOG] = { "model.layers.0.mixer._fp32_params.A_log", "F32", 1, { 2 } },
	[V_GATE_UP] = { "model.layers.1.mixer.experts.gate_and_up_projs", "BF16", 3, { E, H, I } },
	[V_DOWN] = { "model.layers.1.mixer.experts.down_projs", "BF16", 3, { E, I, H } },
	[V_NORM] = { "model.norm.weight", "BF16", 1, { H } },
	[V_LM_HEAD] = { "lm_head.weight", "BF16", 2, { 5, H } },
};

static uint64_t view_nbytes(int v)
{
	uint64_t n = strcmp(VIEW[v].dtype, "F32") ? 2 : 4;

	for (int d = 0; d < VIEW[v].ndim; d++)
		n *= VIEW[v].shape[d];
	return n;
}

static void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int b = 0; b < 4; b++)
		p[b] = (unsigned char)(v >> (8 * b));
}

/* What view tensor v must hold, computed from the source formula. */
static unsigned char *expected_tensor(int v)
{
	unsigned char *out = malloc(view_nbytes(v));

	assert_non_null(out);
	switch (v) {
	case V_EMBED:
	case V_NORM:
	case V_LM_HEAD: {       /* renamed: bytes unchanged */
		int t = v == V_EMBED ? EMBED : v == V_NORM ? NORM : LM_HEAD;
		for (uint64_t k = 0; k < src_elems(t); k++)
			put16(out + 2 * k, src_value(t, k));
		break;
	}
	case V_A_LOG:           /* F32: the bf16 widened, exactly */
		for (uint64_t k = 0; k < 2; k++)
			put32(out + 4 * k, (uint32_t)src_value(A_LOG, k) << 16);
		break;
	case V_GATE_UP:         /* [e][h][i] = up_e[i][h] */
		for (uint64_t e = 0; e < E; e++)
			for (uint64_t h = 0; h < H; h++)
				for (uint64_t i = 0; i < I; i++)
					put16(out + 2 * ((e * H + h) * I + i),
					      src_value(e ? UP1 : UP0, i * H + h));
		break;
	case V_DOWN:            /* [e][i][h] = down_e[h][i] */
		for (uint64_t e = 0; e < E; e++)
			for (uint64_t i = 0; i < I; i++)
				for (uint64_t h = 0; h < H; h++)
					put16(out + 2 * ((e * I + i) * H + h),
					      src_value(e ? DOWN1 : DOWN0, h * I + i));
		break;
	}
	return out;
}

struct fixture {
	char dir[64];
	uint64_t data_start;    /* where the source file's tensor data begins */
	bool open;
	struct view v;
	struct view_io io;
	char err[SD_ERRLEN];
};

/* The weight file as a safetensors writer makes it, __metadata__ first,
 * each source element holding its src_value(). */
static void write_weights(struct fixture *f)
{
	struct test_tensor t[NSRC];
	uint64_t nbytes = 0;

	for (int i = 0; i < NSRC; i++) {
		t[i] = (struct test_tensor){ .name = SOURCE[i].name, .dtype = "BF16" };
		for (int d = 0; d < SOURCE[i].ndim; d++)
			t[i].shape[d] = SOURCE[i].shape[d];
		nbytes += 2 * src_elems(i);
	}
	unsigned char *data = malloc(nbytes), *p = data;
	assert_non_null(data);
	for (int i = 0; i < NSRC; i++)
		for (uint64_t k = 0; k < src_elems(i); k++, p += 2)
			put16(p, src_value(i, k));
	const struct test_shard shard = { .metadata = "{'format':'pt'}", .data = data };
	f->data_start = 8 + test_write_shard(f->dir, WEIGHTS, t, NSRC, &shard);
	free(data);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	if (testdir_make(f->dir, sizeof(f->dir), "view") < 0)
		return -1;
	*state = f;
	test_write_file(f->dir, "config.json", CONFIG, strlen(CONFIG));
	test_write_file(f->dir, "tokenizer.json", TOKENIZER, strlen(TOKENIZER));
	write_weights(f);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->open) {
		view_io_release(&f->v, &f->io);
		view_close(&f->v);
	}
	view_io_free(&f->io);
	int rc = testdir_remove(f->dir);
	free(f);
	return rc;
}

static void open_view(struct fixture *f, uint64_t cache_bytes)
{
	struct view_opts o = { .view = VIEW_AUTO, .adapter = NULL,
			       .dtype = SD_DTYPE_INVALID, .ep_rank = 0, .ep_size = 0 };
	int rc = view_open(&f->v, f->dir, &o, cache_bytes, f->err);

	if (rc != 0)
		fail_msg("view_open: %d: %s", rc, f->err);
	f->open = true;
}

/* ---- reading through the view ---------------------------------------------------- */

static size_t file_index(struct fixture *f, const char *name)
{
	long i = layout_find(&f->v.layout, name);

	if (i < 0)
		fail_msg("the view has no file '%s'", name);
	return (size_t)i;
}

/* Bytes [off, off + len) of a view file into dst; returns how many there were. */
static size_t read_range(struct fixture *f, size_t file, uint64_t off, size_t len,
			 unsigned char *dst)
{
	int rc = view_read(&f->v, file, off, len, &f->io, f->err);
	size_t total = 0;

	if (rc != 0)
		fail_msg("view_read at %" PRIu64 "+%zu: %d: %s", off, len, rc, f->err);
	for (size_t i = 0; i < f->io.nseg; i++)
		total += f->io.segs[i].len;
	assert_int_equal(view_io_gather(&f->v, &f->io, dst, f->err), 0);
	view_io_release(&f->v, &f->io);
	return total;
}

/* A whole view file in one read (caller frees). */
static unsigned char *read_file(struct fixture *f, const char *name, uint64_t *size)
{
	size_t fi = file_index(f, name);
	uint64_t n = f->v.layout.files[fi].size;
	unsigned char *buf = malloc(n + 1);

	assert_non_null(buf);
	assert_int_equal(read_range(f, fi, 0, (size_t)n, buf), n);
	buf[n] = '\0';
	*size = n;
	return buf;
}

static uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int b = 7; b >= 0; b--)
		v = v << 8 | p[b];
	return v;
}

/* The shard's header as JSON; *data_start gets where tensor data begins. */
static cJSON *parse_header(const unsigned char *file, uint64_t size, uint64_t *data_start)
{
	assert_true(size >= 8);
	uint64_t n = le64(file);
	assert_true(8 + n <= size);
	cJSON *h = cJSON_ParseWithLength((const char *)file + 8, (size_t)n);
	assert_non_null(h);
	*data_start = 8 + n;
	return h;
}

/* Where the shard holds view tensor v, from the shard's own header (read
 * on its own, so nothing is converted). */
static void tensor_range(struct fixture *f, int v, uint64_t *off, uint64_t *len)
{
	size_t fi = file_index(f, SHARD);
	unsigned char head[8];

	assert_int_equal(read_range(f, fi, 0, 8, head), 8);
	uint64_t start = 8 + le64(head);
	unsigned char *file = malloc(start);
	assert_non_null(file);
	assert_int_equal(read_range(f, fi, 0, (size_t)start, file), start);
	cJSON *h = parse_header(file, start, &start);
	cJSON *offs = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(h, VIEW[v].name), "data_offsets");

	assert_int_equal(cJSON_GetArraySize(offs), 2);
	*off = start + (uint64_t)cJSON_GetArrayItem(offs, 0)->valuedouble;
	*len = (uint64_t)cJSON_GetArrayItem(offs, 1)->valuedouble -
	       (uint64_t)cJSON_GetArrayItem(offs, 0)->valuedouble;
	cJSON_Delete(h);
	free(file);
}

/* ---- layout ------------------------------------------------------------------------- */

static void test_view_has_one_shard_its_index_and_the_other_files(void **state)
{
	struct fixture *f = *state;

	open_view(f, 1 << 20);
	assert_int_equal(f->v.layout.n, 4);
	assert_int_equal(f->v.layout.files[file_index(f, SHARD)].kind, VF_WEIGHTS);
	assert_int_equal(f->v.layout.files[file_index(f, INDEX)].kind, VF_MEMORY);
	assert_int_equal(f->v.layout.files[file_index(f, "tokenizer.json")].kind, VF_SOURCE);
	assert_int_equal(f->v.layout.files[file_index(f, "config.json")].kind, VF_SOURCE);
	assert_int_equal(layout_find(&f->v.layout, WEIGHTS), -1);
}

/* ---- the shard ------------------------------------------------------------------------ */

static void test_shard_header_lists_every_tensor_with_contiguous_offsets(void **state)
{
	struct fixture *f = *state;
	uint64_t size, start, end = 0;

	open_view(f, 1 << 20);
	unsigned char *file = read_file(f, SHARD, &size);
	cJSON *h = parse_header(file, size, &start);
	assert_int_equal((start - 8) % 8, 0);
	for (uint64_t b = 8; b < start; b++)
		assert_true(file[b] >= 0x20);   /* JSON text, padded with spaces */

	cJSON *meta = cJSON_GetObjectItemCaseSensitive(h, "__metadata__");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(meta, "format")),
			    "pt");
	assert_int_equal(cJSON_GetArraySize(h), NVIEW + 1);
	int v = 0;
	cJSON *e;
	cJSON_ArrayForEach(e, h) {
		if (e == meta)
			continue;
		assert_true(v < NVIEW);
		assert_string_equal(e->string, VIEW[v].name);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "dtype")),
				    VIEW[v].dtype);
		cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
		assert_int_equal(cJSON_GetArraySize(shape), VIEW[v].ndim);
		for (int d = 0; d < VIEW[v].ndim; d++)
			assert_int_equal(cJSON_GetArrayItem(shape, d)->valuedouble, VIEW[v].shape[d]);
		cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
		assert_int_equal(cJSON_GetArraySize(offs), 2);
		assert_int_equal(cJSON_GetArrayItem(offs, 0)->valuedouble, end);
		end += view_nbytes(v);
		assert_int_equal(cJSON_GetArrayItem(offs, 1)->valuedouble, end);
		v++;
	}
	assert_int_equal(v, NVIEW);
	assert_int_equal(size, start + end);
	cJSON_Delete(h);
	free(file);
}

static void test_shard_tensors_hold_renamed_cast_and_merged_bytes(void **state)
{
	struct fixture *f = *state;
	uint64_t size, start;

	open_view(f, 1 << 20);
	unsigned char *file = read_file(f, SHARD, &size);
	cJSON *h = parse_header(file, size, &start);
	for (int v = 0; v < NVIEW; v++) {
		cJSON *offs = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(h, VIEW[v].name), "data_offsets");
		uint64_t off = start + (uint64_t)cJSON_GetArrayItem(offs, 0)->valuedouble;
		unsigned char *want = expected_tensor(v);
		if (memcmp(file + off, want, view_nbytes(v)) != 0)
			fail_msg("'%s' does not hold the expected bytes", VIEW[v].name);
		free(want);
	}
	cJSON_Delete(h);
	free(file);
}

/* ---- the index ------------------------------------------------------------------------------ */

static void test_index_maps_every_tensor_to_the_shard_and_totals_their_bytes(void **state)
{
	struct fixture *f = *state;
	uint64_t size, total = 0;

	open_view(f, 1 << 20);
	unsigned char *text = read_file(f, INDEX, &size);
	cJSON *index = cJSON_ParseWithLength((const char *)text, (size_t)size);
	assert_non_null(index);
	cJSON *map = cJSON_GetObjectItemCaseSensitive(index, "weight_map");
	assert_int_equal(cJSON_GetArraySize(map), NVIEW);
	for (int v = 0; v < NVIEW; v++) {
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(map, VIEW[v].name)),
				    SHARD);
		total += view_nbytes(v);
	}
	cJSON *meta = cJSON_GetObjectItemCaseSensitive(index, "metadata");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(meta, "total_size")->valuedouble, total);
	cJSON_Delete(index);
	free(text);
}

/* ---- reads of any range ----------------------------------------------------------------------- */

/* Reads of every offset and small odd lengths agree with the whole file,
 * however they cut across header, tensors and chunks. */
static void assert_small_reads_agree(struct fixture *f, const char *name)
{
	static const size_t lens[] = { 1, 7, 13 };
	uint64_t size;
	unsigned char *whole = read_file(f, name, &size);
	unsigned char *got = malloc(size + 13);
	size_t fi = file_index(f, name);

	assert_non_null(got);
	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
		/* Back to back: the pieces reassemble the file */
		memset(got, 0, size);
		for (uint64_t off = 0; off < size; off += lens[l])
			read_range(f, fi, off, lens[l], got + off);
		assert_memory_equal(got, whole, size);
		/* From every offset */
		for (uint64_t off = 0; off < size; off++) {
			size_t want = size - off < lens[l] ? (size_t)(size - off) : lens[l];
			assert_int_equal(read_range(f, fi, off, lens[l], got), want);
			if (memcmp(got, whole + off, want) != 0)
				fail_msg("%s: %zu bytes at %" PRIu64 " differ", name, lens[l], off);
		}
	}
	free(got);
	free(whole);
}

static void test_reads_of_any_offset_and_length_reassemble_the_files(void **state)
{
	struct fixture *f = *state;

	open_view(f, 1 << 20);
	assert_small_reads_agree(f, SHARD);
	assert_small_reads_agree(f, INDEX);
	assert_small_reads_agree(f, "tokenizer.json");
}

static void test_reads_at_or_past_the_end_return_nothing(void **state)
{
	struct fixture *f = *state;
	unsigned char buf[16];

	open_view(f, 1 << 20);
	for (size_t fi = 0; fi < f->v.layout.n; fi++) {
		uint64_t size = f->v.layout.files[fi].size;
		assert_int_equal(view_read(&f->v, fi, size, 10, &f->io, f->err), 0);
		assert_int_equal(f->io.nseg, 0);
		assert_int_equal(view_read(&f->v, fi, size + 1000, 10, &f->io, f->err), 0);
		assert_int_equal(f->io.nseg, 0);
		assert_int_equal(view_read(&f->v, fi, UINT64_MAX - 4, 10, &f->io, f->err), 0);
		assert_int_equal(f->io.nseg, 0);
		/* A read that straddles the end stops there */
		assert_int_equal(read_range(f, fi, size - 3, 10, buf), 3);
		/* So does one whose end would wrap around */
		unsigned char *all = malloc(size);
		assert_non_null(all);
		assert_int_equal(read_range(f, fi, 1, SIZE_MAX, all), size - 1);
		free(all);
	}
}

/* Reading across the boundary between the two experts' chunks of a grouped
 * tensor gives one segment in each chunk, both pinned until released. */
static void test_a_read_across_two_chunks_gives_a_segment_in_each(void **state)
{
	struct fixture *f = *state;
	uint64_t off, len;
	size_t fi;

	open_view(f, 1 << 20);
	tensor_range(f, V_GATE_UP, &off, &len);
	fi = file_index(f, SHARD);
	assert_int_equal(view_read(&f->v, fi, off + len / 2 - 3, 6, &f->io, f->err), 0);
	assert_int_equal(f->io.nseg, 2);
	assert_non_null(f->io.segs[0].mem);
	assert_non_null(f->io.segs[1].mem);
	assert_int_equal(f->io.segs[0].len, 3);
	assert_int_equal(f->io.segs[1].len, 3);
	assert_int_equal(f->io.npin, 2);
	view_io_release(&f->v, &f->io);
	assert_int_equal(f->io.npin, 0);
}

/* ---- pass-through ------------------------------------------------------------------------------- */

static void test_pass_through_files_hold_the_source_bytes(void **state)
{
	struct fixture *f = *state;
	uint64_t size;

	open_view(f, 1 << 20);
	unsigned char *tok = read_file(f, "tokenizer.json", &size);
	assert_int_equal(size, strlen(TOKENIZER));
	assert_memory_equal(tok, TOKENIZER, size);
	free(tok);
	unsigned char *config = read_file(f, "config.json", &size);
	assert_int_equal(size, strlen(CONFIG));
	assert_memory_equal(config, CONFIG, size);
	free(config);
}

/* ---- conversion on demand ----------------------------------------------------------------------- */

static void test_open_converts_nothing_and_a_read_converts_only_its_chunks(void **state)
{
	struct fixture *f = *state;
	uint64_t off, len;
	unsigned char buf[64];

	open_view(f, 1 << 20);
	tensor_range(f, V_GATE_UP, &off, &len);   /* reads the header only */
	assert_int_equal(f->v.stats.chunks_converted, 0);
	assert_int_equal(f->v.stats.source_bytes, 0);

	size_t fi = file_index(f, SHARD);
	assert_int_equal(read_range(f, fi, off, (size_t)len, buf), len);
	assert_int_equal(f->v.stats.chunks_converted, E);
	assert_int_equal(f->v.stats.bytes_converted, len);
	/* Again: served from the cache */
	assert_int_equal(read_range(f, fi, off, (size_t)len, buf), len);
	assert_int_equal(f->v.stats.chunks_converted, E);
	/* The first bytes of the down projections: expert 0's chunk only */
	tensor_range(f, V_DOWN, &off, &len);
	assert_int_equal(read_range(f, fi, off, 5, buf), 5);
	assert_int_equal(f->v.stats.chunks_converted, E + 1);
}

static void test_a_tiny_cache_stays_bounded_and_serves_correct_bytes(void **state)
{
	struct fixture *f = *state;
	struct cache_stats cs;
	uint64_t size;

	open_view(f, 64);
	unsigned char *first = read_file(f, SHARD, &size);
	unsigned char *got = malloc(size);
	assert_non_null(got);
	size_t fi = file_index(f, SHARD);
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t off = 0; off < size; off += 13)
			read_range(f, fi, off, 13, got + off);
		assert_memory_equal(got, first, size);
		cache_get_stats(f->v.cache, &cs);
		assert_true(cs.bytes <= 64);
	}
	/* Five chunks of 104 bytes in all do not fit: some were made again */
	assert_true(cs.evictions > 0);
	assert_true(f->v.stats.chunks_converted > 5);
	for (int v = 0; v < NVIEW; v++) {
		uint64_t off, len;
		unsigned char *want = expected_tensor(v);
		tensor_range(f, v, &off, &len);
		assert_memory_equal(got + off, want, len);
		free(want);
	}
	free(got);
	free(first);
}

/* ---- a source that changes under the view ---------------------------------------------------------- */

/*
 * The source file is cut short after the view opened, in the middle of the
 * second expert's down projection.  Every read of the view file built from
 * it fails with -EIO and a message naming the source file, before anything
 * is read or converted, and leaves no pins; the first expert's chunk is not
 * served either, and the pass-through files still read.
 */
static void test_a_truncated_source_fails_every_read_of_its_view_file(void **state)
{
	struct fixture *f = *state;
	char path[128];
	uint64_t off, len, cut = 0;
	unsigned char buf[64];

	uint64_t head_off, head_len;

	open_view(f, 1 << 20);
	tensor_range(f, V_LM_HEAD, &head_off, &head_len);
	tensor_range(f, V_DOWN, &off, &len);
	size_t fi = file_index(f, SHARD);
	assert_int_equal(read_range(f, fi, off, (size_t)len / 2, buf), len / 2);
	assert_int_equal(f->v.stats.chunks_converted, 1);     /* expert 0 cached */
	for (int t = 0; t < DOWN1; t++)
		cut += 2 * src_elems(t);
	snprintf(path, sizeof(path), "%s/%s", f->dir, WEIGHTS);
	assert_int_equal(truncate(path, (off_t)(f->data_start + cut + 2)), 0);

	assert_int_equal(view_read(&f->v, fi, off, (size_t)len / 2, &f->io, f->err), -EIO);
	assert_non_null(strstr(f->err, path));
	assert_non_null(strstr(f->err, "truncated"));
	assert_int_equal(f->io.npin, 0);
	assert_int_equal(f->io.nseg, 0);
	assert_int_equal(f->v.stats.read_errors, 1);
	assert_int_equal(f->v.stats.read_error_causes[VIEW_FAULT_SOURCE_CHANGED], 1);
	assert_int_equal(f->v.stats.source_changes, 1);
	assert_int_equal(f->v.stats.chunks_converted, 1);

	assert_int_equal(view_read(&f->v, fi, head_off, (size_t)head_len, &f->io, f->err), -EIO);
	assert_int_equal(f->v.stats.source_changes, 1);       /* found once */

	size_t tok = file_index(f, "tokenizer.json");
	assert_true(read_range(f, tok, 0, sizeof(buf), buf) > 0);
}

/*
 * A file cut short between planning a read and reading it: the pread that
 * runs out fails with -EIO naming the source file.
 */
static void test_a_source_cut_short_during_a_read_fails_it_with_eio(void **state)
{
	struct fixture *f = *state;
	char path[128];
	uint64_t off, len;
	unsigned char buf[64];

	open_view(f, 1 << 20);
	tensor_range(f, V_LM_HEAD, &off, &len);
	size_t fi = file_index(f, SHARD);
	assert_int_equal(view_read(&f->v, fi, off, (size_t)len, &f->io, f->err), 0);
	snprintf(path, sizeof(path), "%s/%s", f->dir, WEIGHTS);
	assert_int_equal(truncate(path, (off_t)f->data_start), 0);
	assert_int_equal(view_io_gather(&f->v, &f->io, buf, f->err), -EIO);
	assert_non_null(strstr(f->err, path));
	assert_non_null(strstr(f->err, "ends early"));
	view_io_release(&f->v, &f->io);
	assert_int_equal(f->v.stats.read_errors, 1);   /* counted once, by its cause */
	assert_int_equal(f->v.stats.read_error_causes[VIEW_FAULT_SOURCE_UNREADABLE], 1);
	assert_int_equal(f->v.stats.read_error_causes[VIEW_FAULT_SOURCE_CHANGED], 0);
}

static void chmod_source(struct fixture *f, const char *name, mode_t mode)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	assert_int_equal(chmod(path, mode), 0);
}

/* Each view file may be read by whom its source files let read: the shard
 * and the index (which names every tensor) as the weight file, a
 * pass-through file as itself; `whole` is who may read them all. */
static void test_each_view_file_keeps_its_sources_read_permission(void **state)
{
	struct fixture *f = *state;

	chmod_source(f, WEIGHTS, 0640);
	chmod_source(f, "config.json", 0644);
	chmod_source(f, "tokenizer.json", 0604);
	open_view(f, 1 << 20);
	const struct vfile *files = f->v.layout.files;
	assert_int_equal(files[file_index(f, SHARD)].perm.mode, 0440);
	assert_int_equal(files[file_index(f, SHARD)].perm.uid, getuid());
	assert_int_equal(files[file_index(f, SHARD)].perm.gid, getgid());
	assert_int_equal(files[file_index(f, INDEX)].perm.mode, 0440);
	assert_int_equal(files[file_index(f, "config.json")].perm.mode, 0444);
	assert_int_equal(files[file_index(f, "tokenizer.json")].perm.mode, 0404);
	assert_int_equal(f->v.layout.whole.mode, 0400);
}

/* ---- on a GPU that fails ------------------------------------------------------------------- */

/* A chunk of a tensor: its bytes from the view, compared with the test's
 * own arithmetic. */
static void assert_chunk_right(struct fixture *f, int v, uint64_t from, uint64_t n)
{
	uint64_t off, len;
	unsigned char *want = expected_tensor(v), *got = malloc(n);

	assert_non_null(got);
	tensor_range(f, v, &off, &len);
	assert_true(from + n <= len);
	assert_int_equal(read_range(f, file_index(f, SHARD), off + from, (size_t)n, got), n);
	assert_memory_equal(got, want + from, n);
	free(want);
	free(got);
}

static void test_a_gpu_given_up_mid_view_leaves_the_cpu_serving_right_bytes(void **state)
{
	struct fixture *f = *state;
	char why[SD_ERRLEN];
	uint64_t off, len;

	if (!gpu_fake_install(1, 2, (size_t)1 << 30, why)) {
		print_message("# %s: nothing to test here\n", why);
		return;
	}
	open_view(f, 1 << 20);
	assert_int_equal(gpu_init(NULL, 0, why), 0);    /* as a mount does before it sets gpu */
	f->v.gpu = true;
	tensor_range(f, V_GATE_UP, &off, &len);
	assert_chunk_right(f, V_GATE_UP, 0, len / E);           /* expert 0: on the GPU */
	assert_int_equal(f->v.stats.bytes_converted_cuda, len / E);
	gpu_fake_fail(FAKE_STREAM_SYNC, 1, GPU_ERR_ILLEGAL_ADDRESS);
	assert_chunk_right(f, V_GATE_UP, len / E, len / E);     /* expert 1: the fault */
	tensor_range(f, V_DOWN, &off, &len);
	assert_chunk_right(f, V_DOWN, 0, len);                  /* after it */
	assert_int_equal(f->v.stats.read_errors, 0);

	char *text = view_stats_json(&f->v);
	cJSON *j = cJSON_Parse(text);
	assert_non_null(j);
	assert_string_equal(cJSON_GetObjectItem(j, "backend")->valuestring, "cpu");
	assert_non_null(strstr(cJSON_GetObjectItem(j, "backend_reason")->valuestring,
			       "the GPU failed"));
	cJSON *g = cJSON_GetObjectItem(j, "gpu");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(g, "given_up")));
	assert_true(cJSON_GetObjectItem(g, "fallback_chunks")->valuedouble >= 1 + E);
	cJSON_Delete(j);
	free(text);
	view_io_release(&f->v, &f->io);
	view_close(&f->v);
	f->open = false;
	gpu_fake_uninstall();
}

/* ---- read-ahead ------------------------------------------------------------------------------------- */

/* Wait (up to 10 s) until n chunks were filled ahead. */
static void wait_for_fills_ahead(struct fixture *f, uint64_t n)
{
	struct cache_stats cs;

	for (int i = 0; i < 10000; i++) {
		cache_get_stats(f->v.cache, &cs);
		if (cs.ahead_fills >= n && cs.ahead_bytes == cs.bytes)
			return;
		usleep(1000);
	}
	fail_msg("only %" PRIu64 " of %" PRIu64 " chunks were filled ahead", cs.ahead_fills, n);
}

/*
 * Two reads in a row inside the grouped gate_and_up tensor make a
 * sequential stream: the read-ahead converts the rest of that tensor ahead
 * of the reader, and nothing past it (a loader that copies tensors out in
 * its own order would not want the next one), and the reader then finds
 * every chunk in the cache, holding the expected bytes.
 */
static void test_a_sequential_reader_finds_its_tensor_converted_ahead(void **state)
{
	struct fixture *f = *state;
	struct readahead_stream own = { 0 };
	struct cache_stats cs;
	uint64_t off, len;
	unsigned char *want = expected_tensor(V_GATE_UP), *got = malloc(view_nbytes(V_GATE_UP));

	assert_non_null(got);
	open_view(f, 1 << 20);
	assert_int_equal(view_readahead_start(&f->v, 2, 1 << 20, f->err), 0);
	size_t fi = file_index(f, SHARD);
	tensor_range(f, V_GATE_UP, &off, &len);
	view_readahead_note(&f->v, &own, fi, off, 2);
	assert_int_equal(f->v.stats.chunks_converted, 0);       /* one read: no stream yet */
	view_readahead_note(&f->v, &own, fi, off + 2, 2);
	wait_for_fills_ahead(f, E);
	assert_int_equal(f->v.stats.chunks_converted, E);       /* this tensor's, no more */

	view_readahead_note(&f->v, &own, fi, off, (size_t)len);
	read_range(f, fi, off, (size_t)len, got);
	assert_memory_equal(got, want, len);
	cache_get_stats(f->v.cache, &cs);
	assert_int_equal(f->v.stats.chunks_converted, E);       /* none by the reader */
	assert_int_equal(cs.ahead_hits, E);
	assert_int_equal(cs.ahead_wasted, 0);
	view_readahead_stop(&f->v);
	view_readahead_stop(&f->v);     /* twice is fine */
	free(want);
	free(got);
}

/* Closing the view while the read-ahead is busy stops it and frees all. */
static void test_closing_the_view_stops_a_busy_read_ahead(void **state)
{
	struct fixture *f = *state;
	struct readahead_stream own = { 0 };

	open_view(f, 1 << 20);
	assert_int_equal(view_readahead_start(&f->v, 2, 1 << 20, f->err), 0);
	size_t fi = file_index(f, SHARD);
	view_readahead_note(&f->v, &own, fi, 0, 8);
	view_readahead_note(&f->v, &own, fi, 8, 8);
	view_close(&f->v);              /* the teardown must not close it again */
	f->open = false;
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_view_has_one_shard_its_index_and_the_other_files),
		T(test_shard_header_lists_every_tensor_with_contiguous_offsets),
		T(test_shard_tensors_hold_renamed_cast_and_merged_bytes),
		T(test_index_maps_every_tensor_to_the_shard_and_totals_their_bytes),
		T(test_reads_of_any_offset_and_length_reassemble_the_files),
		T(test_reads_at_or_past_the_end_return_nothing),
		T(test_a_read_across_two_chunks_gives_a_segment_in_each),
		T(test_pass_through_files_hold_the_source_bytes),
		T(test_open_converts_nothing_and_a_read_converts_only_its_chunks),
		T(test_a_tiny_cache_stays_bounded_and_serves_correct_bytes),
		T(test_a_truncated_source_fails_every_read_of_its_view_file),
		T(test_a_source_cut_short_during_a_read_fails_it_with_eio),
		T(test_each_view_file_keeps_its_sources_read_permission),
		T(test_a_gpu_given_up_mid_view_leaves_the_cpu_serving_right_bytes),
		T(test_a_sequential_reader_finds_its_tensor_converted_ahead),
		T(test_closing_the_view_stops_a_busy_read_ahead),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
