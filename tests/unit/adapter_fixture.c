/*
 * adapter_fixture.c — the fixture and plan helpers of the adapter unit
 * tests; see adapter_fixture.h.
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

#include <cmocka.h>

#include "adapter_fixture.h"
#include "dtype.h"
#include "recipe.h"

int fixture_setup(void **state, const char *tag)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	if (testdir_make(fx->dir, sizeof(fx->dir), tag) < 0) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

int fixture_teardown(void **state)
{
	struct fixture *fx = *state;
	int rc;

	if (fx->planned)
		plan_free(&fx->plan);
	adapter_free(fx->adapter);
	if (fx->scanned)
		source_free(&fx->src);
	rc = testdir_remove(fx->dir);
	free(fx);
	return rc;
}

void scan_checkpoint(struct fixture *fx, const char *config,
		     const struct test_tensor *t, size_t n)
{
	if (config)
		test_write_json(fx->dir, "config.json", config);
	test_write_shard(fx->dir, "model.safetensors", t, n, NULL);
	if (source_scan(fx->dir, &fx->src, fx->err) < 0)
		fail_msg("source_scan: %s", fx->err);
	fx->scanned = true;
}

void scan_and_choose(struct fixture *fx, const char *config,
		     const struct test_tensor *t, size_t n, const char *want)
{
	scan_checkpoint(fx, config, t, n);
	if (adapter_choose(&fx->src, NULL, &fx->adapter, fx->err) < 0)
		fail_msg("adapter_choose: %s", fx->err);
	assert_string_equal(adapter_name(fx->adapter), want);
}

int make_plan(struct fixture *fx, const struct view_opts *o, int dir)
{
	if (fx->planned)
		plan_free(&fx->plan);
	fx->err[0] = '\0';
	int rc = adapter_plan(fx->adapter, &fx->src, o, dir, &fx->plan, fx->err);
	fx->planned = rc == 0;
	return rc;
}

const struct plan_tensor *planned(const struct fixture *fx, const char *name)
{
	size_t i;

	return strmap_get(&fx->plan.by_name, name, &i) ? &fx->plan.tensors[i] : NULL;
}

const struct plan_tensor *must_plan(const struct fixture *fx, const char *name)
{
	const struct plan_tensor *t = planned(fx, name);

	if (!t)
		fail_msg("the plan has no tensor '%s'", name);
	return t;
}

const char *dtype_and_shape(const struct plan_tensor *t)
{
	static char buf[128];
	size_t o = (size_t)snprintf(buf, sizeof(buf), "%s[", dtype_name(t->dtype));

	for (int i = 0; i < t->ndim; i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, i ? ",%llu" : "%llu",
				      (unsigned long long)t->shape[i]);
	snprintf(buf + o, sizeof(buf) - o, "]");
	return buf;
}

const char *recipe_text(const struct fixture *fx, const struct plan_tensor *t)
{
	static char buf[4096];

	if (!t->recipe)
		return "(source bytes)";
	assert_true(recipe_format(t->recipe, source_tensor_name, &fx->src, true, buf, sizeof(buf)) < sizeof(buf));
	return buf;
}

void assert_mentions(const char *msg, const char *words)
{
	if (!strstr(msg, words))
		fail_msg("message \"%s\" does not mention \"%s\"", msg, words);
}

void assert_load_fails(const char *table, const char *const *words)
{
	char *json = test_json_text(table);
	char err[SD_ERRLEN] = "";
	struct adapter *a = NULL;

	int rc = adapter_load(json, strlen(json), "my_table.json", &a, err);
	free(json);
	if (rc >= 0) {
		adapter_free(a);
		fail_msg("the table loaded; expected a message with \"%s\"", words[0]);
	}
	assert_mentions(err, "my_table.json");
	for (; *words; words++)
		assert_mentions(err, *words);
	if (rc != -EINVAL)
		fail_msg("a bad table gave %d (%s), not -EINVAL; message: %s", rc, strerror(-rc), err);
}
