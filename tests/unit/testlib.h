/*
 * testlib.h — fixture helpers the unit tests share: a temporary directory
 * under /tmp and its removal, files and JSON written into it, safetensors
 * shards laid out as a safetensors writer lays them out, and a recipe
 * being built over an in-memory source.
 *
 * The writers fail the running cmocka test when anything goes wrong, so a
 * test can call them without checking.  JSON given to them is written with
 * ' for " so fixtures read without escapes.  testlib.c is compiled into
 * every unit test by the Makefile; it is not a test itself.
 */
#ifndef SDAFS_TESTLIB_H
#define SDAFS_TESTLIB_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "memsrc.h"
#include "recipe.h"

/* Make a fresh directory /tmp/sdafs-test-<tag>-XXXXXX and put its path in
 * buf.  Returns 0, or -1 when it cannot be made (a setup returns -1 then). */
int testdir_make(char *buf, size_t len, const char *tag);

/* Remove dir and everything below it; returns 0 or what nftw returned. */
int testdir_remove(const char *dir);

/* buf = dir/name; the test fails when it does not fit. */
void test_path(char *buf, size_t len, const char *dir, const char *name);

/* Write len bytes as the file dir/name, replacing any file there. */
void test_write_file(const char *dir, const char *name, const void *bytes,
		     size_t len);

/* A copy of text with every ' turned into " (free it). */
char *test_json_text(const char *text);

/* before, depth nested empty arrays, then after (malloc'ed; free it): JSON
 * deeper than cJSON reads when depth passes its limit of 1000. */
char *test_nested_json(const char *before, int depth, const char *after);

/* Write text as the file dir/name, every ' turned into ". */
void test_write_json(const char *dir, const char *name, const char *text);

/* A tensor of a fixture shard: shape is zero-terminated ({ 0 } is a scalar). */
struct test_tensor {
	const char *name;
	const char *dtype;
	uint64_t shape[4];
};

/* What a shard holds besides its tensors; a NULL struct means all defaults. */
struct test_shard {
	const char *metadata;   /* the __metadata__ object as JSON with ' for ",
				 * or NULL for none */
	const void *data;       /* the tensors' bytes back to back, in table
				 * order, or NULL for patterned bytes
				 * (byte i of the data section == i * 37 + 11) */
};

/* Write a valid safetensors file dir/name holding the n tensors in the
 * order given: an 8-byte little-endian header length, the JSON header
 * (__metadata__ first, when there is one) space-padded to a multiple of 8,
 * then the data section with contiguous data_offsets from 0.  Returns the
 * padded header length N, so the data begins at byte 8 + N. */
uint64_t test_write_shard(const char *dir, const char *name,
			  const struct test_tensor *t, size_t n,
			  const struct test_shard *opt);

/*
 * A small Nemotron-H MoE checkpoint in dir, for the tests of whole views
 * (test_export, test_verify): config.json (n_routed_experts experts on
 * layer 1, bfloat16), two shards of patterned bytes with their index
 * (experts below n/2 in the first with the embedding and A_log; the others,
 * norm_f and lm_head in the second) and a tokenizer.json to pass through.
 * Its native view merges the experts, casts A_log to F32, renames the rest.
 */
void test_write_moe_checkpoint(const char *dir, unsigned experts);

struct view;
/* View file `file` of v whole, through the mount's read path (view_read),
 * in a buffer of its size plus one (free it); *size gets the size. */
unsigned char *test_view_file(struct view *v, size_t file, uint64_t *size);

/*
 * What the recipe tests (test_recipe, test_dequant, test_gpu) build on: a
 * recipe over an in-memory source (memsrc.h) and a reader of it that
 * counts its calls per tensor and fails those of one tensor on request.
 */
#define RECIPE_FIXTURE_TENSORS 32

struct recipe_fixture {
	struct memsrc mem;
	struct rx_reader reader;
	struct recipe r;
	unsigned reads[RECIPE_FIXTURE_TENSORS]; /* reader calls per tensor */
	long fail_tensor;               /* its reads fail with -EIO (-1: none) */
	uint64_t *stream;               /* the test file's random stream */
	char err[SD_ERRLEN];
};

/*
 * cmocka setup and teardown, for cmocka_unit_test_prestate_setup_teardown
 * with the test file's random stream (a uint64_t) as the initial state.
 * The tensors' bytes continue that stream, so each test of a file gets
 * bytes of its own, and the same ones every run.  Teardown puts the stream
 * back in *state: a test may tear down and set up again for a fresh
 * fixture.
 */
int recipe_fixture_setup(void **state);
int recipe_fixture_teardown(void **state);

/* memsrc_add into f, failing the test when it refuses; the index. */
size_t recipe_fixture_add(struct recipe_fixture *f, const char *name, enum sd_dtype dt,
			  int ndim, const uint64_t *shape, enum memsrc_fill fill);

/* A recipe builder's result x, failing the test with the builder's message
 * (err) when it refused. */
int built(int x, const char *err);

/* rx_src of f's tensor t in f's recipe, failing the test when refused. */
int recipe_fixture_src(struct recipe_fixture *f, size_t t);

/* Rows [r0, r1) of f's recipe by recipe_eval_cpu, in a buffer of exactly
 * their size (so AddressSanitizer sees an overrun) filled with 0xA5 first
 * (so a byte left unwritten is likely to show); the test fails when the
 * evaluation does.  The caller frees it. */
unsigned char *recipe_fixture_eval(struct recipe_fixture *f, uint64_t r0, uint64_t r1);

#endif
