/*
 * test_config_json.c — a view's config.json is the source's text with
 * quantization_config cut out: every other byte (key order, number text,
 * spacing) as written, wherever the member sits, duplicates included; a
 * text the cut cannot handle fails instead of being served wrong.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "layout.h"
#include "testlib.h"

struct fixture {
	char dir[256];
	struct source s;
	struct src_file file;
	struct plan p;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx || testdir_make(fx->dir, sizeof(fx->dir), "config") < 0)
		return -1;
	fx->p.config_drop = "quantization_config";
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	if (fx->file.fd > 0)
		close(fx->file.fd);
	cJSON_Delete(fx->s.config);
	testdir_remove(fx->dir);
	free(fx);
	return 0;
}

/* The view's config.json for a source config.json holding text: rc, and
 * the text in *out (NULL when passed through). */
static int edit(struct fixture *fx, const char *text, char **out)
{
	char path[512], err[SD_ERRLEN] = "";
	size_t len = 0;
	int rc;

	test_write_file(fx->dir, "config.json", text, strlen(text));
	test_path(path, sizeof(path), fx->dir, "config.json");
	fx->file.fd = open(path, O_RDONLY);
	assert_true(fx->file.fd >= 0);
	fx->file.name = "config.json";
	fx->file.size = strlen(text);
	fx->s.files = &fx->file;
	fx->s.nfiles = 1;
	fx->s.config = cJSON_Parse(text);
	rc = layout_config(&fx->p, &fx->s, 0, out, &len, err);
	if (rc == 1)
		assert_int_equal(len, strlen(*out));
	if (rc < 0)
		assert_non_null(strstr(err, "quantization_config"));
	return rc;
}

static void expect_edit(void **state, const char *text, const char *want)
{
	char *got = NULL;

	assert_int_equal(edit(*state, text, &got), 1);
	assert_string_equal(got, want);
	free(got);
}

static void test_member_in_the_middle_goes_with_its_comma(void **state)
{
	expect_edit(state,
		    "{\"a\": 1.0, \"quantization_config\": {\"s\": \"}\\\"{,\", \"l\": [1, {\"z\": 2}]}, \"b\": 10000.0}",
		    "{\"a\": 1.0, \"b\": 10000.0}");
}

static void test_first_member_goes_with_the_comma_after_it(void **state)
{
	expect_edit(state, "{\"quantization_config\": {}, \"a\": 1}", "{\"a\": 1}");
}

static void test_last_member_keeps_the_closing_layout(void **state)
{
	expect_edit(state, "{\n  \"a\": 1,\n  \"quantization_config\": null\n}\n",
		    "{\n  \"a\": 1\n}\n");
}

static void test_only_member_leaves_an_empty_object(void **state)
{
	expect_edit(state, "{ \"quantization_config\": \"fp8\" }", "{  }");
}

static void test_every_duplicate_goes(void **state)
{
	expect_edit(state, "{\"quantization_config\": 1, \"a\": true, \"quantization_config\": 2}",
		    "{\"a\": true}");
}

static void test_numbers_keep_their_text(void **state)
{
	/* re-printing would give 1e-06 -> 1e-06 but 12345678901234567891 -> 1.2345678901234567e+19 */
	expect_edit(state,
		    "{\"big\": 12345678901234567891, \"eps\": 1E-6, \"quantization_config\": {}, \"theta\": 1000000.0}",
		    "{\"big\": 12345678901234567891, \"eps\": 1E-6, \"theta\": 1000000.0}");
}

static void test_config_without_the_key_is_passed_through(void **state)
{
	char *got = (char *)"unset";

	assert_int_equal(edit(*state, "{\"a\": {\"quantization_config\": 1}}", &got), 0);
	assert_null(got);
}

static void test_plan_that_drops_nothing_passes_it_through(void **state)
{
	struct fixture *fx = *state;
	char *got = (char *)"unset";

	fx->p.config_drop = NULL;
	assert_int_equal(edit(fx, "{\"quantization_config\": 1}", &got), 0);
	assert_null(got);
}

static void test_a_key_the_cut_cannot_see_fails_the_mount(void **state)
{
	char *got = NULL;

	/* "quantization\u005fconfig" is the same key to a JSON reader */
	assert_int_equal(edit(*state, "{\"quantization\\u005fconfig\": 1, \"a\": 2}", &got), -EINVAL);
	assert_null(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_member_in_the_middle_goes_with_its_comma, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_member_goes_with_the_comma_after_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_member_keeps_the_closing_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_only_member_leaves_an_empty_object, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_duplicate_goes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_numbers_keep_their_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_without_the_key_is_passed_through, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plan_that_drops_nothing_passes_it_through, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_key_the_cut_cannot_see_fails_the_mount, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
