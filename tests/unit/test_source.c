/*
 * test_source.c — source_scan finds a checkpoint's weight files, its
 * pass-through files and its tensors, and refuses a directory it cannot
 * trust with a message that names the directory, the file and the problem.
 *
 * Every case is a real directory under /tmp, built in the test with
 * testlib's helpers: shards are written by test_write_shard() (8-byte
 * length, JSON header padded with spaces to a multiple of 8, contiguous
 * data_offsets from 0, a data section holding exactly the tensors), and JSON
 * files by test_write_json(), which turns ' into " so the fixtures read
 * without escapes.  The directory is removed by the teardown, whether the
 * test passed or not.
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
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "dtype.h"
#include "err.h"
#include "source.h"
#include "testlib.h"

/* --- fixture ----------------------------------------------------------- */

struct fixture {
	char dir[64];
	struct source src;
	bool scanned;           /* src holds a successful scan */
	char err[SD_ERRLEN];
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	if (testdir_make(fx->dir, sizeof(fx->dir), "source") < 0) {
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

	if (fx->scanned)
		source_free(&fx->src);
	rc = testdir_remove(fx->dir);
	free(fx);
	return rc;
}

static void make_subdir(char *buf, size_t len, const char *dir, const char *name)
{
	test_path(buf, len, dir, name);
	assert_int_equal(mkdir(buf, 0700), 0);
}

static int scan(struct fixture *fx, const char *dir)
{
	int rc = source_scan(dir, &fx->src, fx->err);

	fx->scanned = rc == 0;
	return rc;
}

static void assert_mentions(const char *msg, const char *words)
{
	if (!strstr(msg, words))
		fail_msg("message \"%s\" does not mention \"%s\"", msg, words);
}

/* Scanning dir fails with a negative errno and a message naming each word. */
static void assert_scan_fails(struct fixture *fx, const char *dir,
			      const char *const *words)
{
	fx->err[0] = '\0';
	int rc = scan(fx, dir);
	if (rc >= 0)
		fail_msg("scan of %s succeeded; expected a message with \"%s\"", dir, words[0]);
	for (; *words; words++)
		assert_mentions(fx->err, *words);
}

#define FAILS_MENTIONING(fx, dir, ...) \
	assert_scan_fails(fx, dir, (const char *const[]){ __VA_ARGS__, NULL })

/* Index of the file called name in src.files, or -1. */
static long file_index(const struct source *s, const char *name)
{
	for (size_t i = 0; i < s->nfiles; i++)
		if (!strcmp(s->files[i].name, name))
			return (long)i;
	return -1;
}

static const struct test_tensor embed[] = {
	{ "backbone.embeddings.weight", "BF16", { 8, 4 } },
};
static const struct test_tensor norm[] = {
	{ "backbone.norm_f.weight", "BF16", { 4 } },
};
static const struct test_tensor head[] = {
	{ "lm_head.weight", "BF16", { 8, 4 } },
};

/* --- without an index ---------------------------------------------------- */

static void test_without_index_every_safetensors_file_is_a_weight_file(void **state)
{
	struct fixture *fx = *state;

	test_write_shard(fx->dir, "b.safetensors", head, 1, NULL);
	test_write_shard(fx->dir, "a.safetensors", embed, 1, NULL);
	test_write_json(fx->dir, "config.json", "{'model_type':'nemotron_h'}");
	test_write_json(fx->dir, "tokenizer.json", "{'version':'1.0'}");

	assert_int_equal(scan(fx, fx->dir), 0);
	assert_null(fx->src.index_name);
	assert_int_equal(fx->src.nweights, 2);
	assert_string_equal(fx->src.files[0].name, "a.safetensors");
	assert_string_equal(fx->src.files[1].name, "b.safetensors");
	assert_true(fx->src.files[0].is_weights);
	assert_true(fx->src.files[1].is_weights);
	assert_int_equal(fx->src.nfiles, 4);
	assert_string_equal(fx->src.files[2].name, "config.json");
	assert_string_equal(fx->src.files[3].name, "tokenizer.json");
	assert_false(fx->src.files[2].is_weights);
	assert_false(fx->src.files[3].is_weights);
	assert_non_null(fx->src.config);
	assert_int_equal(fx->src.ntensors, 2);
}

static void test_subdirectories_are_ignored(void **state)
{
	struct fixture *fx = *state;
	char sub[512];

	test_write_shard(fx->dir, "model.safetensors", embed, 1, NULL);
	make_subdir(sub, sizeof(sub), fx->dir, "original");
	test_write_shard(sub, "consolidated.safetensors", head, 1, NULL);
	test_write_json(sub, "params.json", "{}");
	make_subdir(sub, sizeof(sub), fx->dir, "dir.safetensors");

	assert_int_equal(scan(fx, fx->dir), 0);
	assert_int_equal(fx->src.nfiles, 1);
	assert_int_equal(fx->src.nweights, 1);
	assert_string_equal(fx->src.files[0].name, "model.safetensors");
	assert_int_equal(source_find(&fx->src, "lm_head.weight"), -1);
}

/* --- with an index --------------------------------------------------------- */

static void test_index_weight_map_names_the_weight_files(void **state)
{
	struct fixture *fx = *state;

	test_write_shard(fx->dir, "model-00002-of-00002.safetensors", head, 1, NULL);
	test_write_shard(fx->dir, "model-00001-of-00002.safetensors", embed, 1, NULL);
	test_write_shard(fx->dir, "stray.safetensors", norm, 1, NULL);
	test_write_json(fx->dir, "config.json", "{}");
	test_write_json(fx->dir, "model.safetensors.index.json",
			"{'metadata':{'total_size':128},'weight_map':{"
			"'lm_head.weight':'model-00002-of-00002.safetensors',"
			"'backbone.embeddings.weight':'model-00001-of-00002.safetensors'}}");

	assert_int_equal(scan(fx, fx->dir), 0);
	assert_string_equal(fx->src.index_name, "model.safetensors.index.json");
	assert_int_equal(fx->src.nweights, 2);
	assert_string_equal(fx->src.files[0].name, "model-00001-of-00002.safetensors");
	assert_string_equal(fx->src.files[1].name, "model-00002-of-00002.safetensors");
	/* The stray shard is neither used nor shown; the index is not shown. */
	assert_int_equal(fx->src.nfiles, 3);
	assert_string_equal(fx->src.files[2].name, "config.json");
	assert_int_equal(file_index(&fx->src, "stray.safetensors"), -1);
	assert_int_equal(file_index(&fx->src, "model.safetensors.index.json"), -1);
	assert_int_equal(source_find(&fx->src, "backbone.norm_f.weight"), -1);
	assert_int_equal(fx->src.ntensors, 2);
}

static void test_weight_file_named_by_index_is_not_also_passed_through(void **state)
{
	struct fixture *fx = *state;

	test_write_shard(fx->dir, "weights.bin", embed, 1, NULL);
	test_write_json(fx->dir, "model.safetensors.index.json",
			"{'weight_map':{'backbone.embeddings.weight':'weights.bin'}}");

	assert_int_equal(scan(fx, fx->dir), 0);
	assert_int_equal(fx->src.nweights, 1);
	assert_string_equal(fx->src.files[0].name, "weights.bin");
	assert_int_equal(fx->src.nfiles, 1);
}

static void test_index_value_must_be_a_plain_file_name(void **state)
{
	struct fixture *fx = *state;
	static const char *const bad[] = {
		"../evil.safetensors", "/etc/passwd", "sub/x.safetensors", "",
	};
	char sub[512];

	test_write_shard(fx->dir, "model.safetensors", embed, 1, NULL);
	make_subdir(sub, sizeof(sub), fx->dir, "sub");
	test_write_shard(sub, "x.safetensors", embed, 1, NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char index[256], quoted[64];
		snprintf(index, sizeof(index),
			 "{'weight_map':{'backbone.embeddings.weight':'%s'}}", bad[i]);
		test_write_json(fx->dir, "model.safetensors.index.json", index);
		snprintf(quoted, sizeof(quoted), "'%s'", bad[i]);
		FAILS_MENTIONING(fx, fx->dir, "model.safetensors.index.json",
				 "backbone.embeddings.weight", quoted,
				 "plain file name");
	}
}

static void test_index_naming_a_missing_file_is_an_error(void **state)
{
	struct fixture *fx = *state;

	test_write_shard(fx->dir, "model-00001-of-00002.safetensors", embed, 1, NULL);
	test_write_json(fx->dir, "model.safetensors.index.json",
			"{'weight_map':{"
			"'backbone.embeddings.weight':'model-00001-of-00002.safetensors',"
			"'lm_head.weight':'model-00002-of-00002.safetensors'}}");

	FAILS_MENTIONING(fx, fx->dir, "model-00002-of-00002.safetensors",
			 "lm_head.weight", "not a regular file");
}

static void test_index_naming_a_fifo_is_an_error_and_does_not_hang(void **state)
{
	struct fixture *fx = *state;
	char fifo[512];

	test_write_shard(fx->dir, "model.safetensors", embed, 1, NULL);
	test_path(fifo, sizeof(fifo), fx->dir, "pipe.safetensors");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	test_write_json(fx->dir, "model.safetensors.index.json",
			"{'weight_map':{'backbone.embeddings.weight':'model.safetensors',"
			"'lm_head.weight':'pipe.safetensors'}}");

	alarm(20);      /* a blocking open of the FIFO would hang here */
	FAILS_MENTIONING(fx, fx->dir, "pipe.safetensors", "not a regular file");
	alarm(0);
}

static void test_tensor_listed_for_one_file_but_stored_in_another_is_an_error(void **state)
{
	struct fixture *fx = *state;

	test_write_shard(fx->dir, "model-00001-of-00002.safetensors", embed, 1, NULL);
	test_write_shard(fx->dir, "model-00002-of-00002.safetensors", head, 1, NULL);
	test_write_json(fx->dir, "model.safetensors.index.json",
			"{'weight_map':{"
			"'backbone.embeddings.weight':'model-00002-of-00002.safetensors',"
			"'lm_head.weight':'model-00001-of-00002.safetensors'}}");

	FAILS_MENTIONING(fx, fx->dir, "model.safetensors.index.json",
			 "model-00001-of-00002.safetensors",
			 "model-00002-of-00002.safetensors", "stored in");
}

static void test_tensor_listed_in_index_but_in_no_file_is_an_error(void **state)
{
	struct fixture *fx = *state;

	test_write_shard(fx->dir, "model.safetensors", embed, 1, NULL);
	test_write_json(fx->dir, "model.safetensors.index.json",
			"{'weight_map':{'backbone.embeddings.weight':'model.safetensors',"
			"'backbone.norm_f.weight':'model.safetensors'}}");

	FAILS_MENTIONING(fx, fx->dir, "backbone.norm_f.weight", "model.safetensors",
			 "no such tensor");
}

static void test_same_tensor_in_two_shards_is_an_error_naming_both_files(void **state)
{
	struct fixture *fx = *state;

	test_write_shard(fx->dir, "model-00001-of-00002.safetensors", embed, 1, NULL);
	test_write_shard(fx->dir, "model-00002-of-00002.safetensors", embed, 1, NULL);

	FAILS_MENTIONING(fx, fx->dir, "backbone.embeddings.weight",
			 "model-00001-of-00002.safetensors",
			 "model-00002-of-00002.safetensors");
}

static void test_two_index_files_without_model_index_are_ambiguous(void **state)
{
	struct fixture *fx = *state;
	static const char index[] =
		"{'weight_map':{'backbone.embeddings.weight':'model.safetensors'}}";

	test_write_shard(fx->dir, "model.safetensors", embed, 1, NULL);
	test_write_json(fx->dir, "a.safetensors.index.json", index);
	test_write_json(fx->dir, "b.safetensors.index.json", index);

	FAILS_MENTIONING(fx, fx->dir, "a.safetensors.index.json",
			 "b.safetensors.index.json", "model.safetensors.index.json");
}

static void test_model_index_wins_over_other_index_files(void **state)
{
	struct fixture *fx = *state;

	test_write_shard(fx->dir, "model.safetensors", embed, 1, NULL);
	test_write_shard(fx->dir, "other.safetensors", head, 1, NULL);
	test_write_json(fx->dir, "model.safetensors.index.json",
			"{'weight_map':{'backbone.embeddings.weight':'model.safetensors'}}");
	/* Both sort before model.safetensors.index.json. */
	test_write_json(fx->dir, "a.safetensors.index.json",
			"{'weight_map':{'lm_head.weight':'other.safetensors'}}");
	test_write_json(fx->dir, "b.safetensors.index.json",
			"{'weight_map':{'lm_head.weight':'other.safetensors'}}");

	assert_int_equal(scan(fx, fx->dir), 0);
	assert_string_equal(fx->src.index_name, "model.safetensors.index.json");
	assert_int_equal(fx->src.nweights, 1);
	assert_string_equal(fx->src.files[0].name, "model.safetensors");
}

static void test_directory_without_weight_files_is_an_error(void **state)
{
	struct fixture *fx = *state;

	test_write_json(fx->dir, "config.json", "{'model_type':'nemotron_h'}");

	FAILS_MENTIONING(fx, fx->dir, fx->dir, "no safetensors weight files");
}

/* Found by fuzzing: an empty directory sorted a NULL list. */
static void test_empty_directory_is_an_error(void **state)
{
	struct fixture *fx = *state;

	FAILS_MENTIONING(fx, fx->dir, fx->dir, "no safetensors weight files");
}

static void test_malformed_shard_header_names_directory_and_file(void **state)
{
	struct fixture *fx = *state;
	/* The length field claims 4096 header bytes in a 24-byte file. */
	static const unsigned char truncated[24] = { 0x00, 0x10, 0, 0, 0, 0, 0, 0, '{', '}' };

	test_write_shard(fx->dir, "a.safetensors", embed, 1, NULL);
	test_write_file(fx->dir, "b.safetensors", truncated, sizeof(truncated));

	FAILS_MENTIONING(fx, fx->dir, "b.safetensors", "header length");
	assert_memory_equal(fx->err, fx->dir, strlen(fx->dir));
}

static void test_config_that_is_not_json_is_an_error(void **state)
{
	struct fixture *fx = *state;

	test_write_shard(fx->dir, "model.safetensors", embed, 1, NULL);
	test_write_json(fx->dir, "config.json", "{'architectures': [");

	FAILS_MENTIONING(fx, fx->dir, fx->dir, "config.json", "JSON");
}

static void test_weight_map_that_is_not_an_object_is_an_error(void **state)
{
	struct fixture *fx = *state;

	test_write_shard(fx->dir, "model.safetensors", embed, 1, NULL);
	test_write_json(fx->dir, "model.safetensors.index.json",
			"{'weight_map':['model.safetensors']}");

	FAILS_MENTIONING(fx, fx->dir, "model.safetensors.index.json", "weight_map");
}

static void test_index_value_that_is_not_a_string_is_an_error(void **state)
{
	struct fixture *fx = *state;

	test_write_shard(fx->dir, "model.safetensors", embed, 1, NULL);
	test_write_json(fx->dir, "model.safetensors.index.json",
			"{'weight_map':{'backbone.embeddings.weight':1}}");

	FAILS_MENTIONING(fx, fx->dir, "model.safetensors.index.json",
			 "backbone.embeddings.weight", "not a file name");
}

/* --- symlinks and special files ---------------------------------------------- */

/* The HuggingFace cache: snapshots/<rev>/<file> -> ../../blobs/<hash>. */
static void test_shard_symlinked_into_another_directory_is_followed(void **state)
{
	struct fixture *fx = *state;
	char blobs[512], snapshots[512], rev[512], link[512], blob[512];

	make_subdir(blobs, sizeof(blobs), fx->dir, "blobs");
	make_subdir(snapshots, sizeof(snapshots), fx->dir, "snapshots");
	make_subdir(rev, sizeof(rev), snapshots, "0123abcd");
	uint64_t n = test_write_shard(blobs, "5f2e6a", embed, 1, NULL);
	test_write_json(blobs, "9c41d0", "{'model_type':'nemotron_h'}");
	test_path(link, sizeof(link), rev, "model.safetensors");
	assert_int_equal(symlink("../../blobs/5f2e6a", link), 0);
	test_path(link, sizeof(link), rev, "config.json");
	assert_int_equal(symlink("../../blobs/9c41d0", link), 0);

	assert_int_equal(scan(fx, rev), 0);
	assert_int_equal(fx->src.nweights, 1);
	assert_string_equal(fx->src.files[0].name, "model.safetensors");
	assert_int_equal(fx->src.files[0].size, 8 + n + 8 * 4 * 2);
	assert_int_equal(fx->src.nfiles, 2);
	assert_string_equal(fx->src.files[1].name, "config.json");
	assert_non_null(fx->src.config);
	test_path(blob, sizeof(blob), blobs, "5f2e6a");
	struct stat st;
	assert_int_equal(stat(blob, &st), 0);
	assert_int_equal(fx->src.files[0].ino, st.st_ino);
	assert_int_not_equal(source_find(&fx->src, "backbone.embeddings.weight"), -1);
}

static void test_symlink_to_directory_and_fifo_are_not_weight_files(void **state)
{
	struct fixture *fx = *state;
	char sub[512], link[512], fifo[512];

	test_write_shard(fx->dir, "model.safetensors", embed, 1, NULL);
	make_subdir(sub, sizeof(sub), fx->dir, "elsewhere");
	test_write_shard(sub, "inner.safetensors", head, 1, NULL);
	test_path(link, sizeof(link), fx->dir, "x.safetensors");
	assert_int_equal(symlink("elsewhere", link), 0);
	test_path(fifo, sizeof(fifo), fx->dir, "y.safetensors");
	assert_int_equal(mkfifo(fifo, 0600), 0);

	alarm(20);      /* opening the FIFO would block */
	assert_int_equal(scan(fx, fx->dir), 0);
	alarm(0);
	assert_int_equal(fx->src.nweights, 1);
	assert_int_equal(fx->src.nfiles, 1);
	assert_string_equal(fx->src.files[0].name, "model.safetensors");
	assert_int_equal(source_find(&fx->src, "lm_head.weight"), -1);
}

/* --- who may read what (perm.h) ------------------------------------------------ */

static void write_mode(const char *dir, const char *name, mode_t mode)
{
	char path[512];

	test_write_json(dir, name, "{}");
	test_path(path, sizeof(path), dir, name);
	assert_int_equal(chmod(path, mode), 0);
}

static mode_t perm_mode(const struct source *s, const char *name)
{
	long i = file_index(s, name);

	if (i < 0)
		fail_msg("no file %s", name);
	assert_int_equal(s->files[i].perm.uid, getuid());
	assert_int_equal(s->files[i].perm.gid, getgid());
	return s->files[i].perm.mode;
}

static void test_each_file_and_the_directory_keep_owner_group_and_read_bits(void **state)
{
	struct fixture *fx = *state;
	char path[512];

	test_write_shard(fx->dir, "model.safetensors", embed, 1, NULL);
	test_path(path, sizeof(path), fx->dir, "model.safetensors");
	assert_int_equal(chmod(path, 0640), 0);
	write_mode(fx->dir, "config.json", 0604);
	write_mode(fx->dir, "run.sh", 0755);
	assert_int_equal(chmod(fx->dir, 0750), 0);

	assert_int_equal(scan(fx, fx->dir), 0);
	assert_int_equal(perm_mode(&fx->src, "model.safetensors"), 0440);
	assert_int_equal(perm_mode(&fx->src, "config.json"), 0404);
	assert_int_equal(perm_mode(&fx->src, "run.sh"), 0444);  /* no write, no exec */
	assert_int_equal(fx->src.dir_perm.uid, getuid());
	assert_int_equal(fx->src.dir_perm.mode, 0550);
}

/*
 * A link out of the source directory: its target's bits, narrowed by each
 * directory between the target and the first that holds the source (here
 * fx->dir), since a user who cannot search one cannot reach the target.
 */
static void test_a_symlinked_file_gets_its_targets_bits_and_its_directories(void **state)
{
	struct fixture *fx = *state;
	char src[512], open_dir[512], closed[512], searchable[512], link[512];

	assert_int_equal(chmod(fx->dir, 0755), 0);
	make_subdir(src, sizeof(src), fx->dir, "src");
	assert_int_equal(chmod(src, 0755), 0);
	make_subdir(open_dir, sizeof(open_dir), fx->dir, "open");
	assert_int_equal(chmod(open_dir, 0755), 0);
	make_subdir(closed, sizeof(closed), fx->dir, "closed");       /* 0700 */
	make_subdir(searchable, sizeof(searchable), fx->dir, "searchable");
	assert_int_equal(chmod(searchable, 0711), 0);
	test_write_shard(src, "model.safetensors", embed, 1, NULL);
	write_mode(open_dir, "a", 0644);
	write_mode(closed, "b", 0644);
	write_mode(searchable, "c", 0644);
	write_mode(fx->dir, "d", 0600);
	static const char *const links[][2] = {
		{ "../open/a", "a.json" }, { "../closed/b", "b.json" },
		{ "../searchable/c", "c.json" }, { "../d", "d.json" },
	};
	for (size_t i = 0; i < 4; i++) {
		test_path(link, sizeof(link), src, links[i][1]);
		assert_int_equal(symlink(links[i][0], link), 0);
	}

	assert_int_equal(scan(fx, src), 0);
	assert_int_equal(perm_mode(&fx->src, "a.json"), 0444);
	assert_int_equal(perm_mode(&fx->src, "b.json"), 0400);
	assert_int_equal(perm_mode(&fx->src, "c.json"), 0444);
	assert_int_equal(perm_mode(&fx->src, "d.json"), 0400);
}

/* A file whose extended ACL could refuse a user its mode lets in shows
 * only its owner's bit. */
static void test_a_file_with_an_acl_shows_only_its_owners_bit(void **state)
{
	struct fixture *fx = *state;
	char path[512];
	/* version 2; user::rw- user:65534:--- group::r-- mask::r-- other::r-- */
	static const unsigned char acl[] = {
		2, 0, 0, 0,
		0x01, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
		0x02, 0, 0, 0, 0xfe, 0xff, 0, 0,
		0x04, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
	};

	test_write_shard(fx->dir, "model.safetensors", embed, 1, NULL);
	test_path(path, sizeof(path), fx->dir, "model.safetensors");
	assert_int_equal(chmod(path, 0644), 0);
	write_mode(fx->dir, "notes.json", 0644);
	test_path(path, sizeof(path), fx->dir, "notes.json");
	if (setxattr(path, "system.posix_acl_access", acl, sizeof(acl), 0) < 0)
		skip();         /* a filesystem without ACLs */
	assert_int_equal(scan(fx, fx->dir), 0);
	assert_int_equal(perm_mode(&fx->src, "notes.json"), 0400);
	assert_int_equal(perm_mode(&fx->src, "model.safetensors"), 0444);
}

/* The fold: a class keeps its bit only when the other part grants it to
 * that whole class. */
static void test_perm_narrow_keeps_a_class_only_where_every_part_lets_it_in(void **state)
{
	static const struct {
		struct src_perm acc, with;
		mode_t want;
	} cases[] = {
		{ { 1, 10, 0444 }, { 1, 10, 0440 }, 0440 },     /* same owner and group */
		{ { 1, 10, 0444 }, { 2, 10, 0440 }, 0040 },     /* its owner may not: others can't */
		{ { 1, 10, 0444 }, { 2, 10, 0444 }, 0444 },     /* all may */
		{ { 1, 10, 0444 }, { 1, 11, 0440 }, 0400 },     /* another group */
		{ { 1, 10, 0444 }, { 1, 11, 0444 }, 0444 },
		{ { 1, 10, 0444 }, { 1, 10, 0404 }, 0400 },     /* its group is kept out */
		{ { 1, 10, 0400 }, { 1, 10, 0444 }, 0400 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct src_perm p = cases[i].acc;
		perm_narrow(&p, &cases[i].with, S_IROTH);
		if (p.mode != cases[i].want)
			fail_msg("case %zu: %04o, want %04o", i, p.mode, cases[i].want);
		assert_int_equal(p.uid, cases[i].acc.uid);
		assert_int_equal(p.gid, cases[i].acc.gid);
	}
	struct src_perm p = { 1, 10, 0444 }, dir = { 1, 10, 0751 };
	perm_narrow(&p, &dir, S_IXOTH);     /* searching a directory */
	assert_int_equal(p.mode, 0444);
	dir.mode = 0750;
	perm_narrow(&p, &dir, S_IXOTH);
	assert_int_equal(p.mode, 0440);
	dir.mode = 0700;
	perm_narrow(&p, &dir, S_IXOTH);
	assert_int_equal(p.mode, 0400);
}

/* --- tensors ------------------------------------------------------------------- */

static void test_source_find_locates_each_tensor_in_its_file(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor first[] = {
		{ "backbone.embeddings.weight", "BF16", { 8, 4 } },
		{ "backbone.layers.0.mixer.D", "F32", { 3 } },
	};
	static const struct test_tensor second[] = {
		{ "lm_head.weight", "F16", { 2, 3, 5 } },
		{ "backbone.layers.0.mixer.scale", "I64", { 0 } },
	};

	uint64_t n1 = test_write_shard(fx->dir, "model-00001-of-00002.safetensors",
				       first, 2, NULL);
	uint64_t n2 = test_write_shard(fx->dir, "model-00002-of-00002.safetensors",
				       second, 2, NULL);

	assert_int_equal(scan(fx, fx->dir), 0);
	assert_int_equal(fx->src.ntensors, 4);

	long d = source_find(&fx->src, "backbone.layers.0.mixer.D");
	assert_true(d >= 0);
	const struct src_tensor *t = &fx->src.tensors[d];
	assert_string_equal(t->name, "backbone.layers.0.mixer.D");
	assert_int_equal(t->dtype, SD_F32);
	assert_int_equal(t->ndim, 1);
	assert_int_equal(t->shape[0], 3);
	assert_int_equal(t->file, 0);
	assert_int_equal(t->offset, 8 + n1 + 8 * 4 * 2);
	assert_int_equal(t->nbytes, 12);

	long h = source_find(&fx->src, "lm_head.weight");
	assert_true(h >= 0);
	t = &fx->src.tensors[h];
	assert_int_equal(t->dtype, SD_F16);
	assert_int_equal(t->ndim, 3);
	assert_int_equal(t->shape[2], 5);
	assert_int_equal(t->file, 1);
	assert_int_equal(t->offset, 8 + n2);
	assert_int_equal(t->nbytes, 2 * 3 * 5 * 2);

	long s = source_find(&fx->src, "backbone.layers.0.mixer.scale");
	assert_true(s >= 0);
	assert_int_equal(fx->src.tensors[s].ndim, 0);
	assert_int_equal(fx->src.tensors[s].nbytes, 8);

	assert_int_equal(source_find(&fx->src, "backbone.layers.0.mixer"), -1);
	assert_int_equal(source_find(&fx->src, "lm_head.weigh"), -1);
	assert_int_equal(source_find(&fx->src, ""), -1);
}

static void test_plain_file_names(void **state)
{
	(void)state;
	assert_true(source_name_is_plain("model-00001-of-00002.safetensors"));
	assert_true(source_name_is_plain(".hidden.safetensors"));
	assert_true(source_name_is_plain("..x"));
	assert_false(source_name_is_plain(""));
	assert_false(source_name_is_plain("."));
	assert_false(source_name_is_plain(".."));
	assert_false(source_name_is_plain("../evil.safetensors"));
	assert_false(source_name_is_plain("/etc/passwd"));
	assert_false(source_name_is_plain("sub/x.safetensors"));
	assert_false(source_name_is_plain("trailing/"));
}

static void test_header_bytes_read_counts_each_weight_header(void **state)
{
	struct fixture *fx = *state;

	uint64_t n1 = test_write_shard(fx->dir, "model-00001-of-00002.safetensors",
				       embed, 1, NULL);
	uint64_t n2 = test_write_shard(fx->dir, "model-00002-of-00002.safetensors",
				       head, 1, NULL);
	test_write_shard(fx->dir, "unlisted.safetensors", norm, 1, NULL);
	test_write_json(fx->dir, "model.safetensors.index.json",
			"{'weight_map':{"
			"'backbone.embeddings.weight':'model-00001-of-00002.safetensors',"
			"'lm_head.weight':'model-00002-of-00002.safetensors'}}");

	assert_int_equal(scan(fx, fx->dir), 0);
	assert_int_equal(fx->src.header_bytes_read, (8 + n1) + (8 + n2));
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_without_index_every_safetensors_file_is_a_weight_file),
		TEST(test_subdirectories_are_ignored),
		TEST(test_index_weight_map_names_the_weight_files),
		TEST(test_weight_file_named_by_index_is_not_also_passed_through),
		TEST(test_index_value_must_be_a_plain_file_name),
		TEST(test_index_naming_a_missing_file_is_an_error),
		TEST(test_index_naming_a_fifo_is_an_error_and_does_not_hang),
		TEST(test_tensor_listed_for_one_file_but_stored_in_another_is_an_error),
		TEST(test_tensor_listed_in_index_but_in_no_file_is_an_error),
		TEST(test_same_tensor_in_two_shards_is_an_error_naming_both_files),
		TEST(test_two_index_files_without_model_index_are_ambiguous),
		TEST(test_model_index_wins_over_other_index_files),
		TEST(test_directory_without_weight_files_is_an_error),
		TEST(test_empty_directory_is_an_error),
		TEST(test_malformed_shard_header_names_directory_and_file),
		TEST(test_config_that_is_not_json_is_an_error),
		TEST(test_weight_map_that_is_not_an_object_is_an_error),
		TEST(test_index_value_that_is_not_a_string_is_an_error),
		TEST(test_shard_symlinked_into_another_directory_is_followed),
		TEST(test_symlink_to_directory_and_fifo_are_not_weight_files),
		TEST(test_each_file_and_the_directory_keep_owner_group_and_read_bits),
		TEST(test_a_symlinked_file_gets_its_targets_bits_and_its_directories),
		TEST(test_a_file_with_an_acl_shows_only_its_owners_bit),
		TEST(test_perm_narrow_keeps_a_class_only_where_every_part_lets_it_in),
		TEST(test_source_find_locates_each_tensor_in_its_file),
		TEST(test_plain_file_names),
		TEST(test_header_bytes_read_counts_each_weight_header),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
