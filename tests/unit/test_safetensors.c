/*
 * test_safetensors.c — st_read_header accepts well-formed files and refuses
 * every kind of damaged one with a message a user can act on.
 *
 * Every case is a real file in a temporary directory: the 8-byte length,
 * the JSON and a data section, written by write_safetensors() below.  JSON
 * is written with single quotes for readability and turned into double
 * quotes on the way out (no test needs a literal single quote).  Each
 * refusal asserts the errno, that the message names the file and the
 * tensor, a phrase that shows which rule fired, and that the header was
 * left empty.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "safetensors.h"
#include "testlib.h"

#define FILE_NAME "model-00001-of-00002.safetensors"

static char tmpdir[] = "/tmp/sdafs-test-st-XXXXXX";
static char path[sizeof(tmpdir) + sizeof(FILE_NAME) + 1];

static int make_tmpdir(void **state)
{
	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(path, sizeof(path), "%s/%s", tmpdir, FILE_NAME);
	return 0;
}

static int remove_tmpdir(void **state)
{
	(void)state;
	unlink(path);
	return rmdir(tmpdir);
}

static void write_bytes(const void *bytes, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, bytes, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/*
 * The file: header length field len_field (normally json_len), json_len
 * bytes of JSON with ' turned into ", then data_size bytes of data.
 */
static void write_safetensors(const char *json, size_t json_len,
			      uint64_t len_field, size_t data_size)
{
	size_t total = 8 + json_len + data_size;
	unsigned char *buf = malloc(total);

	assert_non_null(buf);
	for (int i = 0; i < 8; i++)
		buf[i] = (unsigned char)(len_field >> (8 * i));
	for (size_t i = 0; i < json_len; i++)
		buf[8 + i] = json[i] == '\'' ? '"' : (unsigned char)json[i];
	for (size_t i = 0; i < data_size; i++)
		buf[8 + json_len + i] = (unsigned char)i;
	write_bytes(buf, total);
	free(buf);
}

static int read_file(struct st_header *h, char *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	int rc;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	memset(h, 0xAB, sizeof(*h));     /* must not survive an error */
	err[0] = '\0';
	rc = st_read_header(fd, (uint64_t)st.st_size, FILE_NAME, h, err);
	close(fd);
	return rc;
}

static int load(const char *json, size_t data_size, struct st_header *h,
		char *err)
{
	write_safetensors(json, strlen(json), strlen(json), data_size);
	return read_file(h, err);
}

static void assert_empty(const struct st_header *h)
{
	static const struct st_header zero;

	assert_memory_equal(h, &zero, sizeof(zero));
}

/* The refusal checks shared by every malformed-file test. */
static void assert_refused(int rc, int code, const struct st_header *h,
			   const char *err, const char *tensor,
			   const char *phrase)
{
	char quoted[ST_MAX_NAME + 3];

	if (rc != code || !strstr(err, FILE_NAME) || !strstr(err, phrase))
		print_error("rc %d (want %d), message: %s\n", rc, code, err);
	assert_int_equal(rc, code);
	assert_non_null(strstr(err, FILE_NAME));
	assert_non_null(strstr(err, phrase));
	if (tensor) {
		snprintf(quoted, sizeof(quoted), "'%s'", tensor);
		assert_non_null(strstr(err, quoted));
	}
	assert_empty(h);
}

static void expect_refused(const char *json, size_t data_size, int code,
			   const char *tensor, const char *phrase)
{
	struct st_header h;
	char err[SD_ERRLEN];
	int rc = load(json, data_size, &h, err);

	assert_refused(rc, code, &h, err, tensor, phrase);
}

#define T_F32_4 "{'dtype':'F32','shape':[4],'data_offsets':"

/* ---- good files ------------------------------------------------------ */

static void test_tensors_are_sorted_by_offset_and_made_absolute(void **state)
{
	const char *json =
		"{'__metadata__':{'format':'pt','note':'saved by a test'},"
		"'c.weight':{'dtype':'BF16','shape':[2,3],'data_offsets':[20,32]},"
		"'empty':{'dtype':'F16','shape':[0,5],'data_offsets':[32,32]},"
		"'a.weight':{'dtype':'F32','shape':[4],'data_offsets':[0,16]},"
		"'scalar':{'dtype':'I32','shape':[],'data_offsets':[16,20]}}";
	static const struct {
		const char *name;
		enum sd_dtype dtype;
		int ndim;
		uint64_t shape[2], offset, nbytes;
	} want[] = {
		{ "a.weight", SD_F32, 1, { 4, 0 }, 0, 16 },
		{ "scalar", SD_I32, 0, { 0, 0 }, 16, 4 },
		{ "c.weight", SD_BF16, 2, { 2, 3 }, 20, 12 },
		{ "empty", SD_F16, 2, { 0, 5 }, 32, 0 },
	};
	struct st_header h;
	char err[SD_ERRLEN];
	uint64_t data_start = 8 + strlen(json);
	const cJSON *format;

	(void)state;
	assert_int_equal(load(json, 32, &h, err), 0);
	assert_int_equal(h.header_len, strlen(json));
	assert_int_equal(h.data_start, data_start);
	assert_int_equal(h.file_size, data_start + 32);
	assert_int_equal(h.ntensors, 4);
	for (size_t i = 0; i < 4; i++) {
		const struct st_tensor *t = &h.tensors[i];

		assert_string_equal(t->name, want[i].name);
		assert_int_equal(t->dtype, want[i].dtype);
		assert_int_equal(t->ndim, want[i].ndim);
		for (int d = 0; d < t->ndim; d++)
			assert_int_equal(t->shape[d], want[i].shape[d]);
		assert_int_equal(t->offset, data_start + want[i].offset);
		assert_int_equal(t->nbytes, want[i].nbytes);
	}
	assert_true(cJSON_IsObject(h.metadata));
	format = cJSON_GetObjectItemCaseSensitive(h.metadata, "format");
	assert_true(cJSON_IsString(format));
	assert_string_equal(format->valuestring, "pt");
	st_header_free(&h);
	assert_empty(&h);
}

static void test_every_dtype_is_read_with_its_size(void **state)
{
	char json[4096];
	size_t used = 0, offset = 0;
	struct st_header h;
	char err[SD_ERRLEN];

	(void)state;
	used += (size_t)snprintf(json + used, sizeof(json) - used, "{");
	for (int t = 0; t < SD_DTYPE_COUNT; t++) {
		size_t bytes = 3 * dtype_size((enum sd_dtype)t);

		used += (size_t)snprintf(json + used, sizeof(json) - used,
			"%s't_%s':{'dtype':'%s','shape':[3],'data_offsets':[%zu,%zu]}",
			t ? "," : "", dtype_name((enum sd_dtype)t),
			dtype_name((enum sd_dtype)t), offset, offset + bytes);
		offset += bytes;
	}
	snprintf(json + used, sizeof(json) - used, "}");

	assert_int_equal(load(json, offset, &h, err), 0);
	assert_int_equal(h.ntensors, SD_DTYPE_COUNT);
	assert_null(h.metadata);
	for (int t = 0; t < SD_DTYPE_COUNT; t++) {
		char name[32];

		snprintf(name, sizeof(name), "t_%s",
			 dtype_name((enum sd_dtype)t));
		assert_string_equal(h.tensors[t].name, name);
		assert_int_equal(h.tensors[t].dtype, t);
		assert_int_equal(h.tensors[t].nbytes,
				 3 * dtype_size((enum sd_dtype)t));
	}
	st_header_free(&h);
}

static void test_zero_byte_tensors_may_sit_anywhere_contiguous(void **state)
{
	const char *json =
		"{'b':" T_F32_4 "[16,32]},"
		"'z1':{'dtype':'U8','shape':[0],'data_offsets':[16,16]},"
		"'z2':{'dtype':'I64','shape':[7,0,3],'data_offsets':[32,32]},"
		"'a':" T_F32_4 "[0,16]},"
		"'z0':{'dtype':'BF16','shape':[0],'data_offsets':[0,0]}}";
	static const char *const order[] = { "z0", "a", "z1", "b", "z2" };
	struct st_header h;
	char err[SD_ERRLEN];

	(void)state;
	assert_int_equal(load(json, 32, &h, err), 0);
	assert_int_equal(h.ntensors, 5);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(h.tensors[i].name, order[i]);
	assert_int_equal(h.tensors[4].offset, h.data_start + 32);
	assert_int_equal(h.tensors[4].nbytes, 0);
	st_header_free(&h);
}

static void test_empty_header_means_no_tensors_and_no_data(void **state)
{
	struct st_header h;
	char err[SD_ERRLEN];

	(void)state;
	assert_int_equal(load("{}", 0, &h, err), 0);
	assert_int_equal(h.ntensors, 0);
	assert_int_equal(h.data_start, 10);
	st_header_free(&h);

	assert_int_equal(load("{'__metadata__':{}}", 0, &h, err), 0);
	assert_int_equal(h.ntensors, 0);
	assert_true(cJSON_IsObject(h.metadata));
	st_header_free(&h);

	expect_refused("{}", 4, -EINVAL, NULL, "4 trailing bytes");
}

static void test_space_padding_after_the_json_is_allowed(void **state)
{
	const char *json = "{'a':" T_F32_4 "[0,16]}}         ";
	struct st_header h;
	char err[SD_ERRLEN];

	(void)state;
	assert_int_equal(strlen(json) % 8, 0);
	assert_int_equal(load(json, 16, &h, err), 0);
	assert_int_equal(h.ntensors, 1);
	assert_int_equal(h.tensors[0].offset, 8 + strlen(json));
	st_header_free(&h);
}

static void test_parse_header_in_memory_matches_the_file(void **state)
{
	const char json[] = "{\"w\":{\"dtype\":\"U16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}";
	struct st_header h;
	char err[SD_ERRLEN];
	size_t len = sizeof(json) - 1;

	(void)state;
	assert_int_equal(st_parse_header(json, len, 8 + len + 8, FILE_NAME,
					 &h, err), 0);
	assert_int_equal(h.ntensors, 1);
	assert_int_equal(h.tensors[0].offset, 8 + len);
	st_header_free(&h);
	/* The same header in a file too short for its data. */
	assert_int_equal(st_parse_header(json, len, 8 + len + 4, FILE_NAME,
					 &h, err), -EINVAL);
	assert_non_null(strstr(err, "'w'"));
	assert_empty(&h);
}

static void test_shape_bytes_checks_every_partial_product(void **state)
{
	const uint64_t fits[] = { 3, 5, 7 };
	const uint64_t zero[] = { 4, 0, 9 };
	const uint64_t huge_with_zero[] = { 0, 1ull << 62, 4 };
	const uint64_t too_big[] = { 1ull << 31, 1ull << 31 };
	uint64_t bytes = 1;
	char err[SD_ERRLEN];

	(void)state;
	assert_int_equal(st_shape_bytes(fits, 3, 2, &bytes, "x", err), 0);
	assert_int_equal(bytes, 210);
	assert_int_equal(st_shape_bytes(NULL, 0, 8, &bytes, "x", err), 0);
	assert_int_equal(bytes, 8);
	assert_int_equal(st_shape_bytes(zero, 3, 4, &bytes, "x", err), 0);
	assert_int_equal(bytes, 0);
	assert_int_equal(st_shape_bytes(too_big, 2, 1, &bytes, "x", err), 0);
	assert_int_equal(bytes, 1ull << 62);
	assert_int_equal(st_shape_bytes(too_big, 2, 2, &bytes, FILE_NAME, err),
			 -EOVERFLOW);
	assert_non_null(strstr(err, FILE_NAME));
	assert_int_equal(st_shape_bytes(huge_with_zero, 3, 2, &bytes, "x", err),
			 -EOVERFLOW);
}

/* ---- the file around the header -------------------------------------- */

static void test_file_shorter_than_the_length_field(void **state)
{
	struct st_header h;
	char err[SD_ERRLEN];

	(void)state;
	write_bytes("\x02\0\0\0\0", 5);
	assert_refused(read_file(&h, err), -EINVAL, &h, err, NULL,
		       "too short");
}

static void test_header_length_larger_than_file(void **state)
{
	struct st_header h;
	char err[SD_ERRLEN];

	(void)state;
	write_safetensors("{}", 2, 100, 18);
	assert_refused(read_file(&h, err), -EINVAL, &h, err, NULL,
		       "header length 100 is larger than the file (28 bytes)");
}

static void test_header_length_over_the_100_mb_cap(void **state)
{
	struct st_header h;
	char err[SD_ERRLEN];

	(void)state;
	write_safetensors("{}", 2, 200000000, 0);
	assert_refused(read_file(&h, err), -EINVAL, &h, err, NULL,
		       "limit of 100000000 bytes");
	write_safetensors("{}", 2, UINT64_MAX, 0);
	assert_refused(read_file(&h, err), -EINVAL, &h, err, NULL, "limit");
}

static void test_header_length_zero_or_one(void **state)
{
	struct st_header h;
	char err[SD_ERRLEN];

	(void)state;
	write_safetensors("{}", 2, 0, 0);
	assert_refused(read_file(&h, err), -EINVAL, &h, err, NULL,
		       "header length is 0");
	write_safetensors("{}", 2, 1, 0);
	assert_refused(read_file(&h, err), -EINVAL, &h, err, NULL,
		       "header length is 1");
}

static void test_read_error_is_reported_with_its_errno(void **state)
{
	struct st_header h;
	char err[SD_ERRLEN];
	int fd = open(tmpdir, O_RDONLY | O_DIRECTORY);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(st_read_header(fd, 64, FILE_NAME, &h, err), -EISDIR);
	close(fd);
	assert_non_null(strstr(err, FILE_NAME));
	assert_empty(&h);
}

/* ---- the JSON itself ------------------------------------------------- */

static void test_invalid_json(void **state)
{
	(void)state;
	expect_refused("{'a': {'dtype':", 0, -EINVAL, NULL, "not valid JSON");
	expect_refused("{'a' 1}", 0, -EINVAL, NULL, "not valid JSON");
	expect_refused("  ", 0, -EINVAL, NULL, "not valid JSON");
}

static void test_json_that_is_not_an_object(void **state)
{
	(void)state;
	expect_refused("[1, 2, 3]", 0, -EINVAL, NULL, "JSON array");
	expect_refused("'model'", 0, -EINVAL, NULL, "JSON scalar");
}

static void test_trailing_garbage_after_the_object(void **state)
{
	(void)state;
	expect_refused("{} x", 0, -EINVAL, NULL, "unexpected bytes");
	expect_refused("{}{}", 0, -EINVAL, NULL, "starting at byte 2");
}

static void test_embedded_nul_byte(void **state)
{
	static const char json[] =
		"{'a\0b':{'dtype':'U8','shape':[1],'data_offsets':[0,1]}}";
	struct st_header h;
	char err[SD_ERRLEN];

	(void)state;
	write_safetensors(json, sizeof(json) - 1, sizeof(json) - 1, 1);
	assert_refused(read_file(&h, err), -EINVAL, &h, err, NULL,
		       "NUL byte at position 3");
}

/* cJSON decodes \u0000 into a NUL that ends its C string, so "a\u0000b"
 * would silently become "a" (and a second such name "appears twice").
 * The name is refused, shown as written. */
static void test_a_name_holding_an_escaped_nul_is_refused_shown_escaped(void **state)
{
	(void)state;
	expect_refused("{'a\\u0000b':{'dtype':'U8','shape':[1],'data_offsets':[0,1]},"
		       "'a\\u0000c':{'dtype':'U8','shape':[1],'data_offsets':[1,2]}}",
		       2, -EINVAL, NULL, "the name \"a\\u0000b\" (byte 1) holds \\u0000");
}

/* The same NUL in a value would cut "F32\u0000junk" to a valid "F32". */
static void test_a_value_holding_an_escaped_nul_is_refused(void **state)
{
	(void)state;
	expect_refused("{'w':{'dtype':'U8\\u0000junk','shape':[1],'data_offsets':[0,1]}}",
		       1, -EINVAL, NULL, "the string \"U8\\u0000junk\"");
}

/* An escaped backslash before u0000 is no NUL: the name is "a\u0000b"
 * with a real backslash, and it loads. */
static void test_an_escaped_backslash_before_u0000_is_not_a_nul(void **state)
{
	struct st_header h;
	char err[SD_ERRLEN];

	(void)state;
	assert_int_equal(load("{'a\\\\u0000b':{'dtype':'U8','shape':[1],'data_offsets':[0,1]}}",
			      1, &h, err), 0);
	assert_int_equal(h.ntensors, 1);
	assert_string_equal(h.tensors[0].name, "a\\u0000b");
	st_header_free(&h);
}

/* A name of bytes that are not UTF-8 could not be written back into the
 * view's JSON; the message shows the bad byte. */
static void test_a_name_that_is_not_utf8_is_refused_showing_the_byte(void **state)
{
	(void)state;
	expect_refused("{'ab\xff':{'dtype':'U8','shape':[1],'data_offsets':[0,1]}}",
		       1, -EINVAL, NULL, "tensor name \"ab\\xff\" is not valid UTF-8");
	expect_refused("{'\xed\xa0\x80':{'dtype':'U8','shape':[1],'data_offsets':[0,1]}}",
		       1, -EINVAL, NULL, "not valid UTF-8");     /* a surrogate */
	expect_refused("{'\xc0\xae':{'dtype':'U8','shape':[1],'data_offsets':[0,1]}}",
		       1, -EINVAL, NULL, "not valid UTF-8");     /* overlong '.' */
}

static void test_a_utf8_name_loads(void **state)
{
	struct st_header h;
	char err[SD_ERRLEN];

	(void)state;
	assert_int_equal(load("{'\xc3\xa9t\xe2\x82\xac\xf0\x9f\x98\x80':{'dtype':'U8','shape':[1],"
			      "'data_offsets':[0,1]}}", 1, &h, err), 0);
	assert_string_equal(h.tensors[0].name, "\xc3\xa9t\xe2\x82\xac\xf0\x9f\x98\x80");
	st_header_free(&h);
}

/* JSON deeper than cJSON goes is valid JSON; the message says what it is. */
static void test_json_nested_past_the_limit_says_so(void **state)
{
	char *json = test_nested_json("{'__metadata__':{'x':'y'},'d':", 1001, "}");

	(void)state;
	expect_refused(json, 0, -EINVAL, NULL, "nested deeper than 1000 levels");
	free(json);
}

/* ---- one tensor entry ------------------------------------------------ */

static void test_entry_that_is_not_an_object(void **state)
{
	(void)state;
	expect_refused("{'backbone.embed':5}", 0, -EINVAL, "backbone.embed",
		       "entry is 5, not an object");
}

static void test_missing_fields(void **state)
{
	(void)state;
	expect_refused("{'w':{'shape':[4],'data_offsets':[0,16]}}", 16,
		       -EINVAL, "w", "missing \"dtype\"");
	expect_refused("{'w':{'dtype':'F32','data_offsets':[0,16]}}", 16,
		       -EINVAL, "w", "missing \"shape\"");
	expect_refused("{'w':{'dtype':'F32','shape':[4]}}", 16, -EINVAL, "w",
		       "missing \"data_offsets\"");
}

static void test_repeated_field(void **state)
{
	(void)state;
	expect_refused("{'w':{'dtype':'F32','dtype':'F16','shape':[4],"
		       "'data_offsets':[0,16]}}", 16, -EINVAL, "w",
		       "\"dtype\" appears twice");
}

static void test_unknown_or_mistyped_dtype(void **state)
{
	(void)state;
	expect_refused("{'lm_head.weight':{'dtype':'F12','shape':[4],"
		       "'data_offsets':[0,16]}}", 16, -EINVAL,
		       "lm_head.weight", "unknown dtype \"F12\"");
	expect_refused("{'w':{'dtype':'bf16','shape':[4],"
		       "'data_offsets':[0,8]}}", 8, -EINVAL, "w",
		       "unknown dtype \"bf16\"");
	expect_refused("{'w':{'dtype':4,'shape':[4],'data_offsets':[0,16]}}",
		       16, -EINVAL, "w", "dtype is 4, not a string");
}

static void test_bad_shape_entries(void **state)
{
	(void)state;
	expect_refused("{'w':{'dtype':'F32','shape':[-1],'data_offsets':[0,0]}}",
		       0, -EINVAL, "w", "shape[0] is -1, which is negative");
	expect_refused("{'w':{'dtype':'F32','shape':[2,1.5],'data_offsets':[0,12]}}",
		       12, -EINVAL, "w", "shape[1] is 1.5, which is not a whole number");
	expect_refused("{'w':{'dtype':'F32','shape':[1e20],'data_offsets':[0,0]}}",
		       0, -EINVAL, "w", "larger than 2^53-1");
	expect_refused("{'w':{'dtype':'F32','shape':[9007199254740993],'data_offsets':[0,0]}}",
		       0, -EINVAL, "w", "larger than 2^53-1");
	expect_refused("{'w':{'dtype':'F32','shape':['4'],'data_offsets':[0,16]}}",
		       16, -EINVAL, "w", "shape[0] is the string \"4\", which is not a number");
	expect_refused("{'w':{'dtype':'F32','shape':[null],'data_offsets':[0,16]}}",
		       16, -EINVAL, "w", "shape[0] is null");
	expect_refused("{'w':{'dtype':'F32','shape':4,'data_offsets':[0,16]}}",
		       16, -EINVAL, "w", "shape is 4, not an array");
}

static void test_shape_whose_size_overflows(void **state)
{
	(void)state;
	expect_refused("{'experts.w':{'dtype':'F32','shape':[4503599627370496,"
		       "4503599627370496],'data_offsets':[0,16]}}", 16,
		       -EOVERFLOW, "experts.w", "larger than 2^63 bytes");
	expect_refused("{'w':{'dtype':'BF16','shape':[4294967296,2147483648],"
		       "'data_offsets':[0,16]}}", 16, -EOVERFLOW, "w",
		       "2^63");
}

static void test_too_many_dimensions(void **state)
{
	(void)state;
	expect_refused("{'w':{'dtype':'U8','shape':[1,1,1,1,1,1,1,1,1],"
		       "'data_offsets':[0,1]}}", 1, -EINVAL, "w",
		       "9 dimensions; at most 8");
}

static void test_bad_data_offsets(void **state)
{
	(void)state;
	expect_refused("{'w':" T_F32_4 "[0]}}", 16, -EINVAL, "w",
		       "data_offsets is an array of 1 entries");
	expect_refused("{'w':" T_F32_4 "[0,16,32]}}", 32, -EINVAL, "w",
		       "data_offsets is an array of 3 entries");
	expect_refused("{'w':" T_F32_4 "16}}", 16, -EINVAL, "w",
		       "data_offsets is 16");
	expect_refused("{'w':" T_F32_4 "[16,0]}}", 16, -EINVAL, "w",
		       "[16, 0] end before they begin");
	expect_refused("{'w':" T_F32_4 "[0,'16']}}", 16, -EINVAL, "w",
		       "data_offsets[1] is the string \"16\"");
	expect_refused("{'w':" T_F32_4 "[0,16.5]}}", 16, -EINVAL, "w",
		       "not a whole number");
	expect_refused("{'w':" T_F32_4 "[-16,0]}}", 16, -EINVAL, "w",
		       "negative");
}

static void test_size_disagrees_with_shape(void **state)
{
	(void)state;
	expect_refused("{'backbone.layers.0.mixer.A_log':" T_F32_4 "[0,10]}}",
		       10, -EINVAL, "backbone.layers.0.mixer.A_log",
		       "data_offsets [0, 10] hold 10 bytes but shape [4] of F32 needs 16");
	expect_refused("{'s':{'dtype':'F64','shape':[],'data_offsets':[0,4]}}",
		       4, -EINVAL, "s", "shape [] of F64 needs 8");
}

/* ---- how the tensors tile the data section --------------------------- */

static void test_gap_between_tensors(void **state)
{
	(void)state;
	expect_refused("{'a':" T_F32_4 "[0,16]},'b':" T_F32_4 "[20,36]}}",
		       36, -EINVAL, "b", "4 unused bytes between tensor 'a'");
	expect_refused("{'a':" T_F32_4 "[0,16]},"
		       "'b':{'dtype':'U8','shape':[1],'data_offsets':[17,18]}}",
		       18, -EINVAL, "b", "1 unused bytes between tensor 'a'");
}

static void test_overlapping_tensors(void **state)
{
	(void)state;
	expect_refused("{'a':" T_F32_4 "[0,16]},'b':" T_F32_4 "[8,24]}}",
		       24, -EINVAL, "b", "overlap tensor 'a'");
	expect_refused("{'a':" T_F32_4 "[0,16]},'b':" T_F32_4 "[0,16]}}",
		       16, -EINVAL, "b", "overlap tensor 'a'");
}

static void test_trailing_bytes_after_the_last_tensor(void **state)
{
	(void)state;
	expect_refused("{'a':" T_F32_4 "[0,16]}}", 20, -EINVAL, NULL,
		       "holds 20 bytes but the tensors end at 16: 4 trailing bytes");
}

static void test_first_tensor_not_at_zero(void **state)
{
	(void)state;
	expect_refused("{'a':" T_F32_4 "[4,20]}}", 20, -EINVAL, "a",
		       "the first tensor must start at 0");
}

static void test_offsets_beyond_the_file(void **state)
{
	(void)state;
	expect_refused("{'a':" T_F32_4 "[0,16]}}", 8, -EINVAL, "a",
		       "run past the end of the data section (8 bytes)");
	expect_refused("{'a':" T_F32_4 "[0,16]},'b':" T_F32_4 "[16,32]}}",
		       16, -EINVAL, "b", "run past the end");
}

/* ---- names and metadata ---------------------------------------------- */

static void test_duplicate_tensor_name(void **state)
{
	(void)state;
	expect_refused("{'model.norm.weight':" T_F32_4 "[0,16]},"
		       "'model.norm.weight':" T_F32_4 "[16,32]}}", 32,
		       -EINVAL, "model.norm.weight", "appears twice");
}

static void test_empty_tensor_name(void **state)
{
	(void)state;
	expect_refused("{'':" T_F32_4 "[0,16]}}", 16, -EINVAL, NULL,
		       "empty name");
}

static void test_tensor_name_too_long(void **state)
{
	char json[ST_MAX_NAME + 128];

	(void)state;
	memset(json, 'x', sizeof(json));
	json[0] = '{';
	json[1] = '\'';
	snprintf(json + 2 + ST_MAX_NAME + 1, sizeof(json) - ST_MAX_NAME - 3,
		 "':" T_F32_4 "[0,16]}}");
	expect_refused(json, 16, -EINVAL, NULL, "4097 bytes; at most 4096");
}

static void test_metadata_must_be_an_object_of_strings(void **state)
{
	(void)state;
	expect_refused("{'__metadata__':'pt'}", 0, -EINVAL, NULL,
		       "\"__metadata__\" is the string \"pt\", not an object");
	expect_refused("{'__metadata__':{'format':'pt','step':1000}}", 0,
		       -EINVAL, NULL,
		       "entry \"step\" is 1000; metadata values must be strings");
	expect_refused("{'__metadata__':{},'__metadata__':{}}", 0, -EINVAL,
		       NULL, "\"__metadata__\" appears twice");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tensors_are_sorted_by_offset_and_made_absolute),
		cmocka_unit_test(test_every_dtype_is_read_with_its_size),
		cmocka_unit_test(test_zero_byte_tensors_may_sit_anywhere_contiguous),
		cmocka_unit_test(test_empty_header_means_no_tensors_and_no_data),
		cmocka_unit_test(test_space_padding_after_the_json_is_allowed),
		cmocka_unit_test(test_parse_header_in_memory_matches_the_file),
		cmocka_unit_test(test_shape_bytes_checks_every_partial_product),
		cmocka_unit_test(test_file_shorter_than_the_length_field),
		cmocka_unit_test(test_header_length_larger_than_file),
		cmocka_unit_test(test_header_length_over_the_100_mb_cap),
		cmocka_unit_test(test_header_length_zero_or_one),
		cmocka_unit_test(test_read_error_is_reported_with_its_errno),
		cmocka_unit_test(test_invalid_json),
		cmocka_unit_test(test_json_that_is_not_an_object),
		cmocka_unit_test(test_trailing_garbage_after_the_object),
		cmocka_unit_test(test_embedded_nul_byte),
		cmocka_unit_test(test_a_name_holding_an_escaped_nul_is_refused_shown_escaped),
		cmocka_unit_test(test_a_value_holding_an_escaped_nul_is_refused),
		cmocka_unit_test(test_an_escaped_backslash_before_u0000_is_not_a_nul),
		cmocka_unit_test(test_a_name_that_is_not_utf8_is_refused_showing_the_byte),
		cmocka_unit_test(test_a_utf8_name_loads),
		cmocka_unit_test(test_json_nested_past_the_limit_says_so),
		cmocka_unit_test(test_entry_that_is_not_an_object),
		cmocka_unit_test(test_missing_fields),
		cmocka_unit_test(test_repeated_field),
		cmocka_unit_test(test_unknown_or_mistyped_dtype),
		cmocka_unit_test(test_bad_shape_entries),
		cmocka_unit_test(test_shape_whose_size_overflows),
		cmocka_unit_test(test_too_many_dimensions),
		cmocka_unit_test(test_bad_data_offsets),
		cmocka_unit_test(test_size_disagrees_with_shape),
		cmocka_unit_test(test_gap_between_tensors),
		cmocka_unit_test(test_overlapping_tensors),
		cmocka_unit_test(test_trailing_bytes_after_the_last_tensor),
		cmocka_unit_test(test_first_tensor_not_at_zero),
		cmocka_unit_test(test_offsets_beyond_the_file),
		cmocka_unit_test(test_duplicate_tensor_name),
		cmocka_unit_test(test_empty_tensor_name),
		cmocka_unit_test(test_tensor_name_too_long),
		cmocka_unit_test(test_metadata_must_be_an_object_of_strings),
	};

	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
