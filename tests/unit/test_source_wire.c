/*
 * test_source_wire.c — a scanned source packed by one rank unpacks on
 * another into the same source, and a blob that is damaged, cut short, from
 * another version, or describing tensors a scan could not have made is
 * refused with a message and no descriptor left open.
 *
 * The checkpoints are real directories under /tmp written with testlib's
 * helpers: a plain one (two shards, an index, config.json, a tokenizer)
 * and an Automodel sharded save whose tensor "w" is split into two chunks
 * across its two files by DCP_SHARDING_INFO.  The round trip is compared
 * field by field against the scan, not against another pack.
 */
#include <errno.h>
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

#include <cmocka.h>

#include "err.h"
#include "source.h"
#include "source_wire.h"
#include "testlib.h"

struct fixture {
	char dir[64];
	struct source scanned, unpacked;
	bool have_scanned, have_unpacked;
	char *blob;
	size_t len;
	char err[SD_ERRLEN];
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx || testdir_make(fx->dir, sizeof(fx->dir), "wire") < 0) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	int rc;

	if (fx->have_scanned)
		source_free(&fx->scanned);
	if (fx->have_unpacked)
		source_free(&fx->unpacked);
	free(fx->blob);
	rc = testdir_remove(fx->dir);
	free(fx);
	return rc;
}

static const struct test_tensor shard1[] = {
	{ "model.embed_tokens.weight", "BF16", { 8, 4 } },
	{ "model.layers.0.mlp.up_proj.weight", "F32", { 3, 4 } },
};
static const struct test_tensor shard2[] = {
	{ "model.norm.weight", "BF16", { 4 } },
	{ "lm_head.weight", "F16", { 8, 4 } },
	{ "step", "I64", { 0 } },
};

static void write_plain(struct fixture *fx)
{
	test_write_shard(fx->dir, "model-00001-of-00002.safetensors", shard1, 2, NULL);
	test_write_shard(fx->dir, "model-00002-of-00002.safetensors", shard2, 3, NULL);
	test_write_json(fx->dir, "model.safetensors.index.json",
			"{'metadata':{},'weight_map':{"
			"'model.embed_tokens.weight':'model-00001-of-00002.safetensors',"
			"'model.layers.0.mlp.up_proj.weight':'model-00001-of-00002.safetensors',"
			"'model.norm.weight':'model-00002-of-00002.safetensors',"
			"'lm_head.weight':'model-00002-of-00002.safetensors',"
			"'step':'model-00002-of-00002.safetensors'}}");
	test_write_json(fx->dir, "config.json",
			"{'architectures':['LlamaForCausalLM'],'num_hidden_layers':1,'x':[1,{'y':null}]}");
	test_write_file(fx->dir, "tokenizer.json", "{}", 2);
}

/* "w" F32 [4, 2]: rows 0-1 in one file, rows 2-3 in the other. */
static void write_sharded(struct fixture *fx)
{
	static const struct test_tensor half[] = { { "w", "F32", { 2, 2 } } };
	static const struct test_shard first = {
		.metadata = "{'DCP_SHARDING_INFO':'{\\'w\\':{\\'saved_offsets\\':[0,0]}}'}",
	};
	static const struct test_shard second = {
		.metadata = "{'DCP_SHARDING_INFO':'{\\'w\\':{\\'saved_offsets\\':[2,0]}}'}",
	};
	char meta[128];

	test_write_shard(fx->dir, "shard-00001-model-00001-of-00001.safetensors", half, 1, &first);
	test_write_shard(fx->dir, "shard-00002-model-00001-of-00001.safetensors", half, 1, &second);
	test_path(meta, sizeof(meta), fx->dir, ".hf_metadata");
	assert_int_equal(mkdir(meta, 0755), 0);
	test_write_json(meta, "config.json", "{'architectures':['LlamaForCausalLM']}");
}

static void scan_and_pack(struct fixture *fx)
{
	if (source_scan(fx->dir, &fx->scanned, fx->err) < 0)
		fail_msg("scan: %s", fx->err);
	fx->have_scanned = true;
	if (source_pack(&fx->scanned, &fx->blob, &fx->len, fx->err) < 0)
		fail_msg("pack: %s", fx->err);
}

static int unpack(struct fixture *fx, const char *blob, size_t len)
{
	int rc = source_unpack(blob, len, fx->dir, &fx->unpacked, fx->err);

	fx->have_unpacked = rc == 0;
	return rc;
}

static void assert_same_json(const cJSON *a, const cJSON *b)
{
	assert_true(!a == !b);
	if (a)
		assert_true(cJSON_Compare(a, b, true));
}

static void assert_same_source(const struct source *a, const struct source *b)
{
	assert_same_json(a->config, b->config);
	assert_true(!a->index_name == !b->index_name);
	if (a->index_name)
		assert_string_equal(a->index_name, b->index_name);
	assert_int_equal(a->dcp, b->dcp);
	assert_int_equal(a->peft, b->peft);
	assert_same_json(a->file_index_map, b->file_index_map);
	assert_int_equal(a->nfiles, b->nfiles);
	assert_int_equal(a->nweights, b->nweights);
	for (size_t i = 0; i < a->nfiles; i++) {
		const struct src_file *x = &a->files[i], *y = &b->files[i];
		assert_string_equal(x->name, y->name);
		assert_string_equal(x->path, y->path);
		assert_int_equal(x->size, y->size);
		assert_int_equal(x->mtime.tv_sec, y->mtime.tv_sec);
		assert_int_equal(x->mtime.tv_nsec, y->mtime.tv_nsec);
		assert_int_equal(x->ino, y->ino);
		assert_int_equal(x->is_weights, y->is_weights);
		assert_int_equal(x->perm.mode, y->perm.mode);
		assert_true(y->fd >= 0);
		assert_same_json(x->metadata, y->metadata);
	}
	assert_int_equal(a->ntensors, b->ntensors);
	for (size_t i = 0; i < a->ntensors; i++) {
		const struct src_tensor *x = &a->tensors[i], *y = &b->tensors[i];
		assert_string_equal(x->name, y->name);
		assert_int_equal(x->dtype, y->dtype);
		assert_int_equal(x->ndim, y->ndim);
		assert_memory_equal(x->shape, y->shape, sizeof(x->shape));
		assert_int_equal(x->file, y->file);
		assert_int_equal(x->offset, y->offset);
		assert_int_equal(x->nbytes, y->nbytes);
		assert_int_equal(x->nchunks, y->nchunks);
		for (uint32_t c = 0; c < x->nchunks; c++) {
			assert_int_equal(x->chunks[c].file, y->chunks[c].file);
			assert_int_equal(x->chunks[c].offset, y->chunks[c].offset);
			assert_int_equal(x->chunks[c].nbytes, y->chunks[c].nbytes);
			for (int d = 0; d < x->ndim; d++) {
				assert_int_equal(x->chunks[c].start[d], y->chunks[c].start[d]);
				assert_int_equal(x->chunks[c].shape[d], y->chunks[c].shape[d]);
			}
		}
		assert_int_equal(source_find(b, x->name), (long)i);
	}
}

static void test_a_packed_scan_unpacks_to_the_same_source(void **state)
{
	struct fixture *fx = *state;

	write_plain(fx);
	scan_and_pack(fx);
	if (unpack(fx, fx->blob, fx->len) < 0)
		fail_msg("unpack: %s", fx->err);
	assert_same_source(&fx->scanned, &fx->unpacked);
	assert_int_equal(fx->unpacked.nweights, 2);
	assert_int_equal(fx->unpacked.ntensors, 5);
}

static void test_a_sharded_save_round_trips_its_chunks(void **state)
{
	struct fixture *fx = *state;
	unsigned char a[32], b[32];

	write_sharded(fx);
	scan_and_pack(fx);
	if (unpack(fx, fx->blob, fx->len) < 0)
		fail_msg("unpack: %s", fx->err);
	assert_same_source(&fx->scanned, &fx->unpacked);
	long w = source_find(&fx->unpacked, "w");
	assert_true(w >= 0);
	assert_int_equal(fx->unpacked.tensors[w].nchunks, 2);
	assert_int_equal(source_read_rows(&fx->scanned, (uint32_t)w, 0, 4, a, NULL, fx->err), 0);
	assert_int_equal(source_read_rows(&fx->unpacked, (uint32_t)w, 0, 4, b, NULL, fx->err), 0);
	assert_memory_equal(a, b, sizeof(a));
}

/* Every blob cut short is refused with a message, and leaves nothing open. */
static void test_every_truncation_of_a_blob_is_refused(void **state)
{
	struct fixture *fx = *state;
	int before;

	write_plain(fx);
	scan_and_pack(fx);
	before = dup(0);
	close(before);
	for (size_t n = 0; n < fx->len; n++) {
		fx->err[0] = '\0';
		if (unpack(fx, fx->blob, n) == 0)
			fail_msg("a blob cut to %zu of %zu bytes was accepted", n, fx->len);
		assert_true(fx->err[0] != '\0');
	}
	int after = dup(0);
	close(after);
	assert_int_equal(after, before);
}

static void test_a_blob_of_another_version_says_so(void **state)
{
	struct fixture *fx = *state;

	write_plain(fx);
	scan_and_pack(fx);
	fx->blob[7] ^= 1;
	assert_int_equal(unpack(fx, fx->blob, fx->len), -EINVAL);
	assert_non_null(strstr(fx->err, "not in this version's format"));
}

/* A rank that sees another file than rank 0 did must not serve it. */
static void test_a_file_changed_since_rank_0_scanned_is_refused(void **state)
{
	struct fixture *fx = *state;
	char path[128];

	write_plain(fx);
	scan_and_pack(fx);
	test_path(path, sizeof(path), fx->dir, "tokenizer.json");
	test_write_file(fx->dir, "tokenizer.json", "{} ", 3);
	assert_int_equal(unpack(fx, fx->blob, fx->len), -EINVAL);
	assert_non_null(strstr(fx->err, "tokenizer.json"));
	assert_non_null(strstr(fx->err, "different file than rank 0"));
}

/* Tensors a scan refuses are refused here too: later reads rely on them. */
static void test_tensors_a_scan_could_not_have_made_are_refused(void **state)
{
	struct fixture *fx = *state;
	char *blob;
	size_t len;

	write_sharded(fx);
	scan_and_pack(fx);
	struct src_tensor *w = &fx->scanned.tensors[source_find(&fx->scanned, "w")];
	w->chunks[1].start[0] = 1;                      /* overlaps the first chunk */
	assert_int_equal(source_pack(&fx->scanned, &blob, &len, fx->err), 0);
	assert_int_equal(unpack(fx, blob, len), -EINVAL);
	assert_non_null(strstr(fx->err, "damaged"));
	free(blob);
	w->chunks[1].start[0] = 2;
	w->nbytes += 4;                                 /* more than its shape */
	assert_int_equal(source_pack(&fx->scanned, &blob, &len, fx->err), 0);
	assert_int_equal(unpack(fx, blob, len), -EINVAL);
	free(blob);
	w->nbytes -= 4;
	w->chunks[1].shape[1] = 3;                      /* out of the tensor */
	assert_int_equal(source_pack(&fx->scanned, &blob, &len, fx->err), 0);
	assert_int_equal(unpack(fx, blob, len), -EINVAL);
	free(blob);
	w->chunks[1].shape[1] = 2;
	assert_int_equal(source_pack(&fx->scanned, &blob, &len, fx->err), 0);
	assert_int_equal(unpack(fx, blob, len), 0);     /* restored: accepted */
	free(blob);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_a_packed_scan_unpacks_to_the_same_source),
		TEST(test_a_sharded_save_round_trips_its_chunks),
		TEST(test_every_truncation_of_a_blob_is_refused),
		TEST(test_a_blob_of_another_version_says_so),
		TEST(test_a_file_changed_since_rank_0_scanned_is_refused),
		TEST(test_tensors_a_scan_could_not_have_made_are_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
