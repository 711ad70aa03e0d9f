/*
 * test_tied.c — the Llama / Qwen2 / Qwen3 / Mistral dense table and tied
 * lm_head (conversion spec §6, §8): HF names are the native names, so the
 * view asked for decides the direction; when the config ties lm_head to the
 * embedding (tie_word_embeddings, else under thinker_config, else under
 * text_config) and the checkpoint has no lm_head.weight, the native view
 * holds one that reads the embedding's source bytes: an alias, no copy.
 *
 * Each test builds a real checkpoint under /tmp (config.json and one
 * model.safetensors, written by testlib), scans it, picks the adapter the
 * way a mount does and asserts on the plan: names, dtypes, shapes, the
 * source tensor an unchanged tensor reads, and recipes written out as text.
 * JSON in the fixtures is written with ' for ".
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

#include "adapter.h"
#include "dtype.h"
#include "err.h"
#include "plan.h"
#include "recipe.h"
#include "source.h"
#include "testlib.h"
#include "view.h"
#include "adapter_fixture.h"

static int setup(void **state)
{
	return fixture_setup(state, "tied");
}

static const struct view_opts native_view = { .view = VIEW_NATIVE, .dtype = SD_DTYPE_INVALID };

/* A Llama config.json, plus fields. */
#define LLAMA(fields) \
	"{'architectures':['LlamaForCausalLM'],'model_type':'llama'," \
	"'num_hidden_layers':1,'torch_dtype':'bfloat16'" fields "}"

#define EMBED "model.embed_tokens.weight"
#define HEAD  "lm_head.weight"

/* A one-layer Llama without lm_head.weight (V = 16, H = 6). */
static const struct test_tensor no_head[] = {
	{ EMBED, "BF16", { 16, 6 } },
	{ "model.layers.0.self_attn.q_proj.weight", "BF16", { 6, 6 } },
	{ "model.layers.0.mlp.down_proj.weight", "BF16", { 6, 12 } },
	{ "model.norm.weight", "BF16", { 6 } },
};

/* Scan, choose from config.json (it must be llama), plan the native view. */
static int plan_native(struct fixture *fx, const char *config,
		       const struct test_tensor *t, size_t n)
{
	scan_and_choose(fx, config, t, n, "llama");
	return make_plan(fx, &native_view, DIR_TO_NATIVE);
}

/* The plan holds lm_head.weight reading the embedding's source bytes. */
static void assert_aliased(const struct fixture *fx)
{
	const struct plan_tensor *h = must_plan(fx, HEAD);
	const struct plan_tensor *e = must_plan(fx, EMBED);

	assert_null(h->recipe);
	assert_null(e->recipe);
	assert_int_equal(h->src, source_find(&fx->src, EMBED));
	assert_int_equal(e->src, h->src);
	assert_string_equal(dtype_and_shape(h), "BF16[16,6]");
	assert_int_equal(h->nbytes, e->nbytes);
}

/* --- the tie flag --------------------------------------------------------- */

static void test_tied_config_gives_lm_head_as_an_alias_of_the_embedding(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(plan_native(fx, LLAMA(",'tie_word_embeddings':true"), no_head, NT(no_head)), 0);
	assert_int_equal(fx->plan.n, NT(no_head) + 1);
	assert_aliased(fx);
	/* everything else passes through under its own name, unchanged */
	for (size_t i = 0; i < NT(no_head); i++) {
		const struct plan_tensor *t = must_plan(fx, no_head[i].name);
		assert_null(t->recipe);
		assert_int_equal(t->src, source_find(&fx->src, no_head[i].name));
	}
}

static void test_untied_config_adds_no_lm_head(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(plan_native(fx, LLAMA(",'tie_word_embeddings':false"), no_head, NT(no_head)), 0);
	assert_int_equal(fx->plan.n, NT(no_head));
	assert_null(planned(fx, HEAD));
}

static void test_config_without_the_flag_is_untied(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(plan_native(fx, LLAMA(""), no_head, NT(no_head)), 0);
	assert_null(planned(fx, HEAD));
}

static void test_null_flag_counts_as_absent(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(plan_native(fx, LLAMA(",'tie_word_embeddings':null,'text_config':{'tie_word_embeddings':true}"),
				     no_head, NT(no_head)), 0);
	assert_aliased(fx);
}

static void test_flag_under_text_config_ties(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(plan_native(fx, LLAMA(",'text_config':{'tie_word_embeddings':true}"),
				     no_head, NT(no_head)), 0);
	assert_aliased(fx);
}

static void test_flag_under_thinker_config_comes_before_text_config(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(plan_native(fx, LLAMA(",'thinker_config':{'tie_word_embeddings':true},"
					       "'text_config':{'tie_word_embeddings':false}"),
				     no_head, NT(no_head)), 0);
	assert_aliased(fx);
}

static void test_top_level_flag_comes_before_text_config(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(plan_native(fx, LLAMA(",'tie_word_embeddings':false,"
					       "'text_config':{'tie_word_embeddings':true}"),
				     no_head, NT(no_head)), 0);
	assert_null(planned(fx, HEAD));
}

static void test_flag_that_is_not_a_bool_is_an_error_naming_it(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(plan_native(fx, LLAMA(",'text_config':{'tie_word_embeddings':'yes'}"),
				     no_head, NT(no_head)), -EINVAL);
	assert_mentions(fx->err, "config.json");
	assert_mentions(fx->err, "text_config.tie_word_embeddings");
	assert_mentions(fx->err, "true or false");
}

/* --- when there is nothing to alias --------------------------------------- */

static void test_stored_lm_head_is_kept(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ EMBED, "BF16", { 16, 6 } },
		{ "model.norm.weight", "BF16", { 6 } },
		{ HEAD, "BF16", { 16, 6 } },
	};

	assert_int_equal(plan_native(fx, LLAMA(",'tie_word_embeddings':true"), t, NT(t)), 0);
	assert_int_equal(fx->plan.n, 3);
	assert_int_equal(must_plan(fx, HEAD)->src, source_find(&fx->src, HEAD));
}

static void test_without_the_embedding_nothing_is_aliased(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.layers.0.self_attn.q_proj.weight", "BF16", { 6, 6 } },
		{ "model.norm.weight", "BF16", { 6 } },
	};

	assert_int_equal(plan_native(fx, LLAMA(",'tie_word_embeddings':true"), t, NT(t)), 0);
	assert_int_equal(fx->plan.n, 2);
	assert_null(planned(fx, HEAD));
}

static void test_hf_view_shows_the_source_as_it_is(void **state)
{
	struct fixture *fx = *state;
	const struct view_opts hf = { .view = VIEW_HF, .dtype = SD_DTYPE_INVALID };

	scan_and_choose(fx, LLAMA(",'tie_word_embeddings':true"), no_head, NT(no_head), "llama");
	assert_int_equal(make_plan(fx, &hf, DIR_TO_HF), 0);
	assert_string_equal(fx->plan.direction, "native->hf");
	assert_int_equal(fx->plan.n, NT(no_head));
	assert_null(planned(fx, HEAD));
	for (size_t i = 0; i < NT(no_head); i++)
		assert_null(must_plan(fx, no_head[i].name)->recipe);
}

/* A converted embedding (here cast by a table's rename) gives the alias its
 * own copy of the recipe: both tensors are made alike, neither frees the
 * other's. */
static void test_alias_of_a_converted_embedding_gets_the_same_recipe(void **state)
{
	struct fixture *fx = *state;
	char *table = test_json_text(
		"{'name':'cast_embed','same_names':true,"
		"'tied_lm_head':{'lm_head':'lm_head.weight','embedding':'model.embed_tokens.weight'},"
		"'hf_to_native':[{'op':'rename','match':'^model\\\\.embed_tokens\\\\.weight$',"
		"'to':'model.embed_tokens.weight','cast':'F32'}]}");

	scan_checkpoint(fx, LLAMA(",'tie_word_embeddings':true"), no_head, NT(no_head));
	int rc = adapter_load(table, strlen(table), "cast_embed.json", &fx->adapter, fx->err);
	free(table);
	if (rc < 0)
		fail_msg("adapter_load: %s", fx->err);
	assert_int_equal(make_plan(fx, &native_view, DIR_TO_NATIVE), 0);
	const struct plan_tensor *e = must_plan(fx, EMBED);
	const struct plan_tensor *h = must_plan(fx, HEAD);
	assert_non_null(e->recipe);
	assert_non_null(h->recipe);
	assert_ptr_not_equal(e->recipe, h->recipe);
	assert_ptr_not_equal(e->recipe->nodes, h->recipe->nodes);
	assert_string_equal(dtype_and_shape(h), "F32[16,6]");
	char want[256];
	snprintf(want, sizeof(want), "%s", recipe_text(fx, e));
	assert_string_equal(want, "cast(" SRC(EMBED) ", F32)");
	assert_string_equal(recipe_text(fx, h), want);
	assert_true(h->chunk_rows > 0);
}

/* --- choosing the table and the direction --------------------------------- */

static void test_every_dense_architecture_chooses_llama(void **state)
{
	static const char *const configs[] = {
		"{'architectures':['Qwen2ForCausalLM']}",
		"{'architectures':['Qwen3ForCausalLM']}",
		"{'architectures':['MistralForCausalLM']}",
		"{'model_type':'qwen3'}",
	};
	(void)state;

	for (size_t i = 0; i < NT(configs); i++) {
		struct fixture *fx;
		if (fixture_setup((void **)&fx, "tied-arch") < 0)
			fail_msg("fixture_setup");
		scan_and_choose(fx, configs[i], no_head, NT(no_head), "llama");
		assert_true(adapter_same_names(fx->adapter));
		fixture_teardown((void **)&fx);
	}
}

static void test_same_names_source_reads_as_hf_without_mixing_layouts(void **state)
{
	struct fixture *fx = *state;
	int dir = -1;

	scan_and_choose(fx, LLAMA(""), no_head, NT(no_head), "llama");
	assert_int_equal(adapter_detect(fx->adapter, &fx->src, &dir, fx->err), 0);
	assert_int_equal(dir, DIR_TO_NATIVE);
}

static void test_names_of_another_family_do_not_fit_llama(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "backbone.embeddings.weight", "BF16", { 16, 6 } },
		{ "backbone.layers.0.mixer.in_proj.weight", "BF16", { 10, 6 } },
	};
	int dir = -1;

	scan_checkpoint(fx, LLAMA(""), t, NT(t));
	assert_int_equal(adapter_choose(&fx->src, "llama", &fx->adapter, fx->err), 0);
	assert_int_equal(adapter_detect(fx->adapter, &fx->src, &dir, fx->err), -EINVAL);
	assert_mentions(fx->err, "no tensor name fits llama");
	assert_mentions(fx->err, "backbone.");
}

static void test_only_the_llama_table_declares_same_names(void **state)
{
	char err[SD_ERRLEN];
	size_t llama = 0;
	(void)state;

	for (size_t i = 0; i < adapter_builtin_count(); i++) {
		struct adapter *a;
		if (adapter_builtin(i, &a, err) < 0)
			fail_msg("built-in table %zu: %s", i, err);
		bool is_llama = !strcmp(adapter_name(a), "llama");
		llama += is_llama;
		if (adapter_same_names(a) != is_llama)
			fail_msg("built-in %s: same_names is %d", adapter_name(a), adapter_same_names(a));
		adapter_free(a);
	}
	assert_int_equal(llama, 1);
}

/* The view option decides the direction of a same-names family: auto and
 * native give the native view (with the alias), hf the source as it is. */
static void test_view_option_picks_the_direction(void **state)
{
	struct fixture *fx = *state;
	static const struct { enum view_kind view; const char *direction; size_t n; } cases[] = {
		{ VIEW_AUTO, "hf->native", NT(no_head) + 1 },
		{ VIEW_NATIVE, "hf->native", NT(no_head) + 1 },
		{ VIEW_HF, "native->hf", NT(no_head) },
	};

	test_write_json(fx->dir, "config.json", LLAMA(",'tie_word_embeddings':true"));
	test_write_shard(fx->dir, "model.safetensors", no_head, NT(no_head), NULL);
	for (size_t i = 0; i < NT(cases); i++) {
		struct view_opts o = { .view = cases[i].view, .dtype = SD_DTYPE_INVALID };
		struct view v;
		if (view_open(&v, fx->dir, &o, 1 << 20, fx->err) < 0)
			fail_msg("view_open (case %zu): %s", i, fx->err);
		assert_string_equal(v.plan.direction, cases[i].direction);
		assert_int_equal(v.plan.n, cases[i].n);
		view_close(&v);
	}
}

/* --- loading the declarations --------------------------------------------- */

static void test_load_refuses_a_tie_without_both_names(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING("{'name':'t','tied_lm_head':{'lm_head':'lm_head.weight'},"
			      "'hf_to_native':[]}", "tied_lm_head", "embedding");
	LOAD_FAILS_MENTIONING("{'name':'t','tied_lm_head':'lm_head.weight','hf_to_native':[]}",
			      "tied_lm_head");
	LOAD_FAILS_MENTIONING("{'name':'t','tied_lm_head':{'lm_head':'x','embedding':'x'},"
			      "'hf_to_native':[]}", "tied_lm_head", "two different");
}

static void test_load_refuses_same_names_that_is_not_a_bool(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING("{'name':'t','same_names':'yes','hf_to_native':[]}",
			      "same_names", "true or false");
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, fixture_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_tied_config_gives_lm_head_as_an_alias_of_the_embedding),
		TEST(test_untied_config_adds_no_lm_head),
		TEST(test_config_without_the_flag_is_untied),
		TEST(test_null_flag_counts_as_absent),
		TEST(test_flag_under_text_config_ties),
		TEST(test_flag_under_thinker_config_comes_before_text_config),
		TEST(test_top_level_flag_comes_before_text_config),
		TEST(test_flag_that_is_not_a_bool_is_an_error_naming_it),
		TEST(test_stored_lm_head_is_kept),
		TEST(test_without_the_embedding_nothing_is_aliased),
		TEST(test_hf_view_shows_the_source_as_it_is),
		TEST(test_alias_of_a_converted_embedding_gets_the_same_recipe),
		TEST(test_every_dense_architecture_chooses_llama),
		TEST(test_same_names_source_reads_as_hf_without_mixing_layouts),
		TEST(test_names_of_another_family_do_not_fit_llama),
		TEST(test_only_the_llama_table_declares_same_names),
		TEST(test_view_option_picks_the_direction),
		TEST(test_load_refuses_a_tie_without_both_names),
		TEST(test_load_refuses_same_names_that_is_not_a_bool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
