/*
 * test_verify.c — comparing a directory with a view (verify.c,
 * verify_describe.c), without FUSE.
 *
 * Each test writes a small Nemotron-H MoE checkpoint (testlib), copies its
 * native view into a directory through the mount's read path (view_read),
 * damages the copy in one known way and asserts on the differences verify
 * reports: their kind, file, tensor and byte offset.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "testlib.h"
#include "units.h"
#include "verify.h"
#include "view.h"

#define EXPERTS 4
#define SHARD1 "model-00001-of-00002.safetensors"
#define GROUPED "model.layers.1.mixer.experts.gate_and_up_projs"
#define INDEX "model.safetensors.index.json"

struct fixture {
	char src[64], copy[64];
	struct view v;
	struct units us;
	struct verify_report rep;
	bool reported;
	char err[SD_ERRLEN];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct view_opts o = { .view = VIEW_NATIVE, .dtype = SD_DTYPE_INVALID };

	if (!f || testdir_make(f->src, sizeof(f->src), "verify-src") < 0 ||
	    testdir_make(f->copy, sizeof(f->copy), "verify-copy") < 0)
		return -1;
	*state = f;
	test_write_moe_checkpoint(f->src, EXPERTS);
	if (view_open(&f->v, f->src, &o, 1 << 20, f->err) != 0)
		fail_msg("view_open: %s", f->err);
	for (size_t i = 0; i < f->v.layout.n; i++) {
		uint64_t n;
		unsigned char *b = test_view_file(&f->v, i, &n);
		test_write_file(f->copy, f->v.layout.files[i].name, b, (size_t)n);
		free(b);
	}
	struct units_tree tree = { &f->v.plan, &f->v.layout, "" };
	if (units_build(&f->us, &f->v, &tree, 1, f->err) != 0)
		fail_msg("units_build: %s", f->err);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->reported)
		verify_report_free(&f->rep);
	units_free(&f->us);
	view_close(&f->v);
	int rc = testdir_remove(f->src) | testdir_remove(f->copy);
	free(f);
	return rc;
}

/* verify the copy; the number of differences */
static size_t verify(struct fixture *f)
{
	struct units_progress p = { 0 };
	int fd = open(f->copy, O_RDONLY | O_DIRECTORY);

	assert_true(fd >= 0);
	if (f->reported)
		verify_report_free(&f->rep);
	if (verify_dir(&f->us, fd, 3, 1 << 20, &p, &f->rep, f->err) != 0)
		fail_msg("verify_dir: %s", f->err);
	f->reported = true;
	close(fd);
	assert_int_equal(atomic_load(&p.done), p.total);
	return f->rep.total;
}

/* The difference of kind k in file, or a failure listing them all. */
static const struct verify_diff *only(struct fixture *f, enum verify_kind k, const char *file)
{
	for (size_t i = 0; i < f->rep.n; i++)
		if (f->rep.diffs[i].kind == k && !strcmp(f->rep.diffs[i].file, file))
			return &f->rep.diffs[i];
	for (size_t i = 0; i < f->rep.n; i++)
		print_message("# found: %s: %s\n", f->rep.diffs[i].file, f->rep.diffs[i].what);
	fail_msg("no difference of kind %d in %s", (int)k, file);
	return NULL;
}

/* Where the view puts tensor name: its file's index and its offset. */
static uint64_t tensor_offset(struct fixture *f, const char *name, size_t *file)
{
	for (size_t i = 0; i < f->v.layout.n; i++) {
		const struct vfile *vf = &f->v.layout.files[i];
		for (size_t k = 0; k < vf->nslots; k++)
			if (!strcmp(f->v.plan.tensors[vf->slots[k].tensor].name, name)) {
				*file = i;
				return vf->slots[k].off;
			}
	}
	fail_msg("no tensor %s", name);
	return 0;
}

static void flip(struct fixture *f, const char *name, uint64_t off)
{
	char path[512];
	unsigned char b;

	test_path(path, sizeof(path), f->copy, name);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x5a;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

static void test_an_exact_copy_has_no_difference(void **state)
{
	struct fixture *f = *state;
	uint64_t total = 0;

	assert_int_equal(verify(f), 0);
	for (size_t i = 0; i < f->v.layout.n; i++)
		total += f->v.layout.files[i].size;
	/* every byte compared but the index, compared as a whole before */
	assert_int_equal(f->rep.bytes_compared + f->v.layout.files[layout_find(&f->v.layout, INDEX)].size,
			 total);
}

static void test_a_flipped_byte_is_named_by_tensor_and_offset(void **state)
{
	struct fixture *f = *state;
	size_t file;
	uint64_t at = tensor_offset(f, GROUPED, &file) + 37;
	uint64_t n;
	unsigned char *want = test_view_file(&f->v, file, &n);

	flip(f, f->v.layout.files[file].name, at);
	assert_int_equal(verify(f), 1);
	const struct verify_diff *d = only(f, VD_TENSOR, f->v.layout.files[file].name);
	assert_string_equal(d->tensor, GROUPED);
	assert_int_equal(d->offset, 37);
	assert_int_equal(d->file_offset, at);
	assert_int_equal(d->count, 1);
	assert_int_equal(d->want, want[at]);
	assert_int_equal(d->got, want[at] ^ 0x5a);
	assert_non_null(strstr(d->what, "the first at byte 37 of the tensor"));
	free(want);
}

static void test_bytes_wrong_in_two_experts_are_one_difference_of_the_tensor(void **state)
{
	struct fixture *f = *state;
	size_t file;
	uint64_t at = tensor_offset(f, GROUPED, &file);
	const struct plan_tensor *t = &f->v.plan.tensors[0];

	for (size_t i = 0; i < f->v.plan.n; i++)
		if (!strcmp(f->v.plan.tensors[i].name, GROUPED))
			t = &f->v.plan.tensors[i];
	assert_int_equal(plan_nchunks(t), EXPERTS);     /* one chunk per expert */
	flip(f, f->v.layout.files[file].name, at + 5);
	flip(f, f->v.layout.files[file].name, at + 3 * plan_chunk_bytes(t) + 1);
	assert_int_equal(verify(f), 1);
	const struct verify_diff *d = only(f, VD_TENSOR, f->v.layout.files[file].name);
	assert_int_equal(d->count, 2);
	assert_int_equal(d->offset, 5);
}

static void test_a_missing_file_and_extra_entries_are_named(void **state)
{
	struct fixture *f = *state;
	char path[512];

	test_path(path, sizeof(path), f->copy, "tokenizer.json");
	assert_int_equal(unlink(path), 0);
	test_write_file(f->copy, "notes.txt", "x", 1);
	test_path(path, sizeof(path), f->copy, "subdir");
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(verify(f), 3);
	only(f, VD_MISSING, "tokenizer.json");
	assert_non_null(strstr(only(f, VD_EXTRA, "notes.txt")->what, "extra file"));
	assert_non_null(strstr(only(f, VD_EXTRA, "subdir")->what, "extra directory"));
}

static void test_a_truncated_shard_names_the_tensor_it_ends_in(void **state)
{
	struct fixture *f = *state;
	char path[512];
	size_t file;
	uint64_t at = tensor_offset(f, GROUPED, &file) + 10;

	test_path(path, sizeof(path), f->copy, f->v.layout.files[file].name);
	assert_int_equal(truncate(path, (off_t)at), 0);
	assert_int_equal(verify(f), 1);
	const struct verify_diff *d = only(f, VD_SIZE, f->v.layout.files[file].name);
	assert_string_equal(d->tensor, GROUPED);
	assert_int_equal(d->file_offset, at);
	assert_non_null(strstr(d->what, "truncated inside tensor"));
}

/* Rewrite the copy's first shard with its tensors in reverse order (and
 * their bytes moved with them), or with one dtype changed. */
static void rewrite_shard(struct fixture *f, bool reverse, const char *as_f16)
{
	size_t fi = (size_t)layout_find(&f->v.layout, SHARD1);
	const struct vfile *vf = &f->v.layout.files[fi];
	struct test_tensor t[64];
	uint64_t n, total = 0;
	unsigned char *file = test_view_file(&f->v, fi, &n), *data = malloc(n);

	assert_true(vf->nslots <= 64);
	assert_non_null(data);
	for (size_t k = 0; k < vf->nslots; k++) {
		size_t s = reverse ? vf->nslots - 1 - k : k;
		const struct plan_tensor *p = &f->v.plan.tensors[vf->slots[s].tensor];
		t[k] = (struct test_tensor){ p->name, dtype_name(p->dtype), { 0 } };
		if (as_f16 && !strcmp(p->name, as_f16))
			t[k].dtype = "F16";
		for (int d = 0; d < p->ndim; d++)
			t[k].shape[d] = p->shape[d];
		memcpy(data + total, file + vf->slots[s].off, (size_t)p->nbytes);
		total += p->nbytes;
	}
	const struct test_shard opt = { .metadata = "{'format':'pt'}", .data = data };
	test_write_shard(f->copy, SHARD1, t, vf->nslots, &opt);
	free(file);
	free(data);
}

static void test_tensors_stored_in_another_order_are_one_header_difference(void **state)
{
	struct fixture *f = *state;

	rewrite_shard(f, true, NULL);
	verify(f);
	const struct verify_diff *d = only(f, VD_HEADER, SHARD1);
	assert_non_null(strstr(d->what, "tensors stored in another order"));
	for (size_t i = 0; i < f->rep.n; i++)   /* each tensor found by name, right */
		assert_true(f->rep.diffs[i].kind != VD_TENSOR);
}

static void test_a_dtype_in_the_header_is_named_with_both(void **state)
{
	struct fixture *f = *state;

	rewrite_shard(f, false, "model.embed_tokens.weight");
	assert_int_equal(verify(f), 1);
	const struct verify_diff *d = only(f, VD_HEADER, SHARD1);
	assert_string_equal(d->tensor, "model.embed_tokens.weight");
	assert_non_null(strstr(d->what, "is F16[8,4], expected BF16[8,4]"));
}

static void test_a_header_that_is_not_one_is_said_so(void **state)
{
	struct fixture *f = *state;
	char path[512];

	test_path(path, sizeof(path), f->copy, SHARD1);
	int fd = open(path, O_RDWR);
	assert_int_equal(pwrite(fd, "[", 1, 8), 1);     /* the JSON's '{' */
	close(fd);
	verify(f);
	assert_non_null(strstr(only(f, VD_HEADER, SHARD1)->what, "not a valid safetensors header"));
}

static void test_an_index_entry_changed_is_named_by_key(void **state)
{
	struct fixture *f = *state;
	char path[512];
	uint64_t n;
	unsigned char *text = test_view_file(&f->v, (size_t)layout_find(&f->v.layout, INDEX), &n);
	cJSON *j = cJSON_ParseWithLength((const char *)text, (size_t)n);

	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(j, "weight_map"), GROUPED,
				  cJSON_CreateString("model-00002-of-00002.safetensors"));
	char *out = cJSON_Print(j);
	test_path(path, sizeof(path), f->copy, INDEX);
	test_write_file(f->copy, INDEX, out, strlen(out));
	assert_int_equal(verify(f), 1);
	const struct verify_diff *d = only(f, VD_INDEX, INDEX);
	assert_string_equal(d->tensor, GROUPED);
	assert_non_null(strstr(d->what, "expected \"" SHARD1 "\""));
	free(out);
	cJSON_Delete(j);
	free(text);
}

static void test_the_json_report_and_the_printed_one_say_the_same(void **state)
{
	struct fixture *f = *state;
	char path[512], *text = NULL;
	size_t len = 0;

	test_path(path, sizeof(path), f->copy, "tokenizer.json");
	unlink(path);
	test_write_file(f->copy, "a.txt", "x", 1);
	test_write_file(f->copy, "b.txt", "x", 1);
	assert_int_equal(verify(f), 3);
	char *json = verify_json(&f->rep, f->src, f->copy);
	cJSON *j = cJSON_Parse(json);
	assert_non_null(j);
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "equal")));
	assert_int_equal(cJSON_GetObjectItem(j, "differences_total")->valueint, 3);
	cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "differences"), 0);
	assert_string_equal(cJSON_GetObjectItem(first, "kind")->valuestring, "missing");
	assert_string_equal(cJSON_GetObjectItem(first, "file")->valuestring, "tokenizer.json");
	cJSON_Delete(j);
	free(json);
	FILE *out = open_memstream(&text, &len);
	verify_print(&f->rep, out, 2);
	fclose(out);
	assert_string_equal(text, "tokenizer.json: missing\n"
				  "a.txt: not in the view (an extra file)\n"
				  "... and 1 more difference\n");
	free(text);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_an_exact_copy_has_no_difference),
		T(test_a_flipped_byte_is_named_by_tensor_and_offset),
		T(test_bytes_wrong_in_two_experts_are_one_difference_of_the_tensor),
		T(test_a_missing_file_and_extra_entries_are_named),
		T(test_a_truncated_shard_names_the_tensor_it_ends_in),
		T(test_tensors_stored_in_another_order_are_one_header_difference),
		T(test_a_dtype_in_the_header_is_named_with_both),
		T(test_a_header_that_is_not_one_is_said_so),
		T(test_an_index_entry_changed_is_named_by_key),
		T(test_the_json_report_and_the_printed_one_say_the_same),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
