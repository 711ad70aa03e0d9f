/*
 * testlib.c — the unit tests' shared fixture helpers (see testlib.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
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
#include <cjson/cJSON.h>

#include "dtype.h"
#include "testlib.h"
#include "view.h"

int testdir_make(char *buf, size_t len, const char *tag)
{
	int n = snprintf(buf, len, "/tmp/sdafs-test-%s-XXXXXX", tag);

	if (n < 0 || (size_t)n >= len)
		return -1;
	return mkdtemp(buf) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int testdir_remove(const char *dir)
{
	return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void test_path(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	assert_true(n > 0 && (size_t)n < len);
}

void test_write_file(const char *dir, const char *name, const void *bytes,
		     size_t len)
{
	char path[512];
	int fd;

	test_path(path, sizeof(path), dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bytes, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

char *test_json_text(const char *text)
{
	char *json = strdup(text);

	assert_non_null(json);
	for (char *p = json; *p; p++)
		if (*p == '\'')
			*p = '"';
	return json;
}

char *test_nested_json(const char *before, int depth, const char *after)
{
	size_t a = strlen(before), b = strlen(after);
	char *text = malloc(a + 2 * (size_t)depth + b + 1);

	assert_non_null(text);
	memcpy(text, before, a);
	memset(text + a, '[', (size_t)depth);
	memset(text + a + depth, ']', (size_t)depth);
	memcpy(text + a + 2 * (size_t)depth, after, b + 1);
	return text;
}

void test_write_json(const char *dir, const char *name, const char *text)
{
	char *json = test_json_text(text);

	test_write_file(dir, name, json, strlen(json));
	free(json);
}

uint64_t test_write_shard(const char *dir, const char *name,
			  const struct test_tensor *t, size_t n,
			  const struct test_shard *opt)
{
	static const struct test_shard defaults;
	cJSON *root = cJSON_CreateObject();
	uint64_t data = 0;

	if (!opt)
		opt = &defaults;
	assert_non_null(root);
	if (opt->metadata) {
		char *text = test_json_text(opt->metadata);
		cJSON *meta = cJSON_Parse(text);

		assert_non_null(meta);
		free(text);
		cJSON_AddItemToObject(root, "__metadata__", meta);
	}
	for (size_t i = 0; i < n; i++) {
		cJSON *entry = cJSON_AddObjectToObject(root, t[i].name);
		cJSON *shape = cJSON_CreateArray();
		uint64_t bytes = dtype_size(dtype_parse(t[i].dtype));

		assert_non_null(entry);
		assert_non_null(shape);
		for (int d = 0; d < 4 && t[i].shape[d]; d++) {
			cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[d]));
			bytes *= t[i].shape[d];
		}
		cJSON_AddStringToObject(entry, "dtype", t[i].dtype);
		cJSON_AddItemToObject(entry, "shape", shape);
		double offsets[2] = { (double)data, (double)(data + bytes) };
		cJSON_AddItemToObject(entry, "data_offsets", cJSON_CreateDoubleArray(offsets, 2));
		data += bytes;
	}
	char *json = cJSON_PrintUnformatted(root);
	assert_non_null(json);
	size_t json_len = strlen(json);
	uint64_t header_len = (json_len + 7) / 8 * 8;
	size_t total = (size_t)(8 + header_len + data);
	unsigned char *buf = malloc(total);
	assert_non_null(buf);
	for (int i = 0; i < 8; i++)
		buf[i] = (unsigned char)(header_len >> (8 * i));
	memcpy(buf + 8, json, json_len);
	memset(buf + 8 + json_len, ' ', header_len - json_len);
	if (opt->data)
		memcpy(buf + 8 + header_len, opt->data, (size_t)data);
	else
		for (uint64_t i = 0; i < data; i++)
			buf[8 + header_len + i] = (unsigned char)(i * 37 + 11);
	test_write_file(dir, name, buf, total);
	free(buf);
	free(json);
	cJSON_Delete(root);
	return header_len;
}

void test_write_moe_checkpoint(const char *dir, unsigned experts)
{
	struct test_tensor shard[2][70];
	char names[2][70][96];
	size_t n[2] = { 0, 0 };
	cJSON *index = cJSON_CreateObject(), *map = cJSON_AddObjectToObject(index, "weight_map");
	char config[256];

	assert_true(experts >= 2 && experts <= 32);
	assert_non_null(map);
	/* e < experts: expert e's up and down; e == experts: the first shard's
	 * embedding and A_log; e == experts + 1: the second's norm and lm_head */
	for (unsigned e = 0; e < experts + 2; e++) {
		int s = e < experts ? e >= experts / 2 : e == experts + 1;
		for (int k = 0; k < 2; k++) {
			char *name = names[s][n[s]];
			struct test_tensor *t = &shard[s][n[s]];
			if (e < experts) {
				snprintf(name, 96, "backbone.layers.1.mixer.experts.%u.%s_proj.weight", e,
					 k ? "down" : "up");
				*t = (struct test_tensor){ name, "BF16", { k ? 4 : 3, k ? 3 : 4 } };
			} else if (e == experts) {
				snprintf(name, 96, "%s", k ? "backbone.layers.0.mixer.A_log" : "backbone.embeddings.weight");
				*t = (struct test_tensor){ name, "BF16", { k ? 2 : 8, k ? 0 : 4 } };
			} else {
				snprintf(name, 96, "%s", k ? "lm_head.weight" : "backbone.norm_f.weight");
				*t = (struct test_tensor){ name, "BF16", { k ? 5 : 4, k ? 4 : 0 } };
			}
			cJSON_AddStringToObject(map, name, s ? "model-00002-of-00002.safetensors" :
						"model-00001-of-00002.safetensors");
			n[s]++;
		}
	}
	test_write_shard(dir, "model-00001-of-00002.safetensors", shard[0], n[0], NULL);
	test_write_shard(dir, "model-00002-of-00002.safetensors", shard[1], n[1], NULL);
	char *json = cJSON_Print(index);
	assert_non_null(json);
	test_write_file(dir, "model.safetensors.index.json", json, strlen(json));
	free(json);
	cJSON_Delete(index);
	snprintf(config, sizeof(config), "{'architectures':['NemotronHForCausalLM'],'n_routed_experts':%u,"
		 "'num_hidden_layers':2,'torch_dtype':'bfloat16'}", experts);
	test_write_json(dir, "config.json", config);
	test_write_json(dir, "tokenizer.json", "{'version':'1.0','model':{'type':'BPE'}}\n");
}

unsigned char *test_view_file(struct view *v, size_t file, uint64_t *size)
{
	struct view_io io = { 0 };
	char err[SD_ERRLEN];
	uint64_t n = v->layout.files[file].size;
	unsigned char *buf = malloc(n + 1);

	assert_non_null(buf);
	if (view_read(v, file, 0, (size_t)n, &io, err) != 0)
		fail_msg("view_read: %s", err);
	assert_int_equal(view_io_gather(v, &io, buf, err), 0);
	view_io_release(v, &io);
	view_io_free(&io);
	*size = n;
	return buf;
}

static int read_counting(void *arg, uint32_t tensor, uint64_t r0, uint64_t r1,
			 void *dst, char *err)
{
	struct recipe_fixture *f = arg;

	if (tensor < RECIPE_FIXTURE_TENSORS)
		f->reads[tensor]++;
	if ((long)tensor == f->fail_tensor)
		return sd_err(err, -EIO, "reading '%s' at row %" PRIu64 ": disk on fire",
			      f->mem.tensors[tensor].name, r0);
	return memsrc_read(&f->mem, tensor, r0, r1, dst, err);
}

int recipe_fixture_setup(void **state)
{
	struct recipe_fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->stream = *state;
	memsrc_init(&f->mem, *f->stream);
	f->reader = (struct rx_reader){ .rows = read_counting, .arg = f };
	f->fail_tensor = -1;
	*state = f;
	return 0;
}

int recipe_fixture_teardown(void **state)
{
	struct recipe_fixture *f = *state;

	*f->stream = f->mem.rng;
	*state = f->stream;
	memsrc_free(&f->mem);
	recipe_free(&f->r);
	free(f);
	return 0;
}

size_t recipe_fixture_add(struct recipe_fixture *f, const char *name, enum sd_dtype dt,
			  int ndim, const uint64_t *shape, enum memsrc_fill fill)
{
	int i = memsrc_add(&f->mem, name, dt, ndim, shape, fill, f->err);

	if (i < 0)
		fail_msg("adding tensor '%s': %s", name ? name : "", f->err);
	assert_true(i < RECIPE_FIXTURE_TENSORS);
	return (size_t)i;
}

int built(int x, const char *err)
{
	if (x < 0)
		fail_msg("builder failed: %d: %s", x, err);
	return x;
}

int recipe_fixture_src(struct recipe_fixture *f, size_t t)
{
	return built(memsrc_src(&f->mem, &f->r, (uint32_t)(t), f->err), f->err);
}

unsigned char *recipe_fixture_eval(struct recipe_fixture *f, uint64_t r0, uint64_t r1)
{
	size_t len = (size_t)((r1 - r0) * rx_row_bytes(rx_root(&f->r)));
	unsigned char *got = malloc(len ? len : 1);
	int rc;

	assert_non_null(got);
	memset(got, 0xA5, len);
	if ((rc = recipe_eval_cpu(&f->r, r0, r1, got, &f->reader, f->err)) != 0)
		fail_msg("rows [%" PRIu64 ", %" PRIu64 "): %d: %s", r0, r1, rc, f->err);
	return got;
}
