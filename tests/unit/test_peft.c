/*
 * test_peft.c — planning PEFT adapter directories (convert/plan/peft.c): which
 * directories are PEFT, the recipe of every kind of output, and the
 * adapters refused, each message naming the tensor or group.
 *
 * Byte-level results are checked by tests/integration/15-peft.t against an
 * independent reference; here the plans themselves are pinned: names,
 * shapes and recipes as conversion-spec §2.5 describes them.
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
#include <unistd.h>

#include <cmocka.h>

#include "adapter_fixture.h"
#include "peft.h"
#include "view.h"

#define P "base_model.model.model.layers.0.mlp.experts"
#define CONFIG_R4 "{'peft_type': 'LORA', 'r': 4, 'target_modules': ['experts']}"

static int setup(void **state)
{
	return fixture_setup(state, "peft");
}

/* Write an adapter directory and scan it. */
static void scan_adapter(struct fixture *fx, const char *config,
			 const struct test_tensor *t, size_t n)
{
	if (config)
		test_write_json(fx->dir, PEFT_CONFIG, config);
	test_write_shard(fx->dir, PEFT_WEIGHTS, t, n, NULL);
	if (source_scan(fx->dir, &fx->src, fx->err) < 0)
		fail_msg("source_scan: %s", fx->err);
	fx->scanned = true;
}

static int plan_adapter(struct fixture *fx, const struct view_opts *o)
{
	if (fx->planned)
		plan_free(&fx->plan);
	fx->err[0] = '\0';
	int rc = peft_plan(&fx->src, o, &fx->plan, fx->err);
	fx->planned = rc == 0;
	return rc;
}

static void must_plan_adapter(struct fixture *fx, const struct view_opts *o)
{
	if (plan_adapter(fx, o) < 0)
		fail_msg("peft_plan: %s", fx->err);
}

static const struct view_opts defaults = { .dtype = SD_DTYPE_INVALID };

/* gated experts: E=3, H=8, I=5 (U=10), r=4 */
static const struct test_tensor native_gated[] = {
	{ P ".lora_gate_and_up_A", "BF16", { 3, 8, 4 } },
	{ P ".lora_gate_and_up_B", "BF16", { 3, 4, 10 } },
	{ P ".lora_down_A", "BF16", { 3, 5, 4 } },
	{ P ".lora_down_B", "BF16", { 3, 4, 8 } },
	{ "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "BF16", { 4, 8 } },
	{ "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude", "F32", { 8 } },
};

static void test_a_directory_is_peft_only_with_both_files(void **state)
{
	struct fixture *fx = *state;

	scan_checkpoint(fx, NULL, native_gated, NT(native_gated));
	assert_false(fx->src.peft);             /* model.safetensors, no adapter_config */
	source_free(&fx->src);
	test_write_shard(fx->dir, PEFT_WEIGHTS, native_gated, NT(native_gated), NULL);
	char path[512];
	test_path(path, sizeof(path), fx->dir, "model.safetensors");
	assert_int_equal(unlink(path), 0);
	assert_int_equal(source_scan(fx->dir, &fx->src, fx->err), 0);
	assert_false(fx->src.peft);             /* no adapter_config.json yet */
	source_free(&fx->src);
	test_write_json(fx->dir, PEFT_CONFIG, CONFIG_R4);
	assert_int_equal(source_scan(fx->dir, &fx->src, fx->err), 0);
	assert_true(fx->src.peft);
	assert_non_null(fx->src.peft_config);
}

static void test_native_to_v5_reshapes_a_and_permutes_b(void **state)
{
	struct fixture *fx = *state;

	scan_adapter(fx, CONFIG_R4, native_gated, NT(native_gated));
	must_plan_adapter(fx, &defaults);
	assert_string_equal(fx->plan.direction, "native->hf (PEFT v5)");
	const struct plan_tensor *t = must_plan(fx, P ".lora_A.weight");
	assert_string_equal(dtype_and_shape(t), "BF16[12,8]");
	assert_string_equal(recipe_text(fx, t), "reshape(" SRC(P ".lora_down_B") ", [12,8])");
	t = must_plan(fx, P ".lora_B.weight");
	assert_string_equal(dtype_and_shape(t), "BF16[5,12]");
	assert_string_equal(recipe_text(fx, t),
			    "reshape(transpose_last2(reshape(" SRC(P ".lora_down_A") ", [3,20])), [5,12])");
	assert_string_equal(dtype_and_shape(must_plan(fx, P ".base_layer.lora_A.weight")), "BF16[12,10]");
	assert_string_equal(dtype_and_shape(must_plan(fx, P ".base_layer.lora_B.weight")), "BF16[8,12]");
	/* DoRA renamed, other LoRA unchanged, nothing else */
	assert_string_equal(recipe_text(fx, must_plan(fx, "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector")),
			    "(source bytes)");
	assert_non_null(planned(fx, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
	assert_int_equal(fx->plan.n, 6);
}

static void test_native_to_v4_splits_gate_and_up_at_i(void **state)
{
	struct fixture *fx = *state;
	struct view_opts o = defaults;

	o.peft_v4 = true;
	scan_adapter(fx, CONFIG_R4, native_gated, NT(native_gated));
	must_plan_adapter(fx, &o);
	/* 3 experts x (gate A, up A, gate B, up B, down A, down B) + 2 others */
	assert_int_equal(fx->plan.n, 3 * 6 + 2);
	const struct plan_tensor *t = must_plan(fx, P ".2.up_proj.lora_B.weight");
	assert_string_equal(dtype_and_shape(t), "BF16[5,4]");
	assert_string_equal(recipe_text(fx, t),
			    "transpose_last2(slice_last(index0(" SRC(P ".lora_gate_and_up_B") ", 2), 5, 10))");
	t = must_plan(fx, P ".1.gate_proj.lora_A.weight");
	assert_string_equal(recipe_text(fx, t),
			    "transpose_last2(index0(" SRC(P ".lora_gate_and_up_A") ", 1))");
	assert_string_equal(recipe_text(fx, must_plan(fx, P ".1.up_proj.lora_A.weight")),
			    "transpose_last2(index0(" SRC(P ".lora_gate_and_up_A") ", 1))");
	assert_string_equal(dtype_and_shape(must_plan(fx, P ".0.down_proj.lora_B.weight")), "BF16[8,4]");
}

static void test_v4_to_native_stacks_and_joins_gate_with_up(void **state)
{
	struct fixture *fx = *state;
	struct test_tensor t[12];
	char names[12][128];
	const char *proj[] = { "gate", "up" };
	size_t n = 0;

	for (int e = 0; e < 2; e++)
		for (int p = 0; p < 2; p++)
			for (int ab = 0; ab < 2; ab++) {
				snprintf(names[n], sizeof(names[n]), P ".%d.%s_proj.lora_%c.weight",
					 e, proj[p], ab ? 'B' : 'A');
				t[n] = (struct test_tensor){ names[n], "F32",
							     { ab ? 5 : 4, ab ? 4 : 8 } };
				n++;
			}
	scan_adapter(fx, CONFIG_R4, t, n);
	must_plan_adapter(fx, &defaults);
	assert_string_equal(fx->plan.direction, "hf->native (PEFT)");
	assert_int_equal(fx->plan.n, 2);        /* up's copy of lora_A is dropped */
	const struct plan_tensor *gu = must_plan(fx, P ".lora_gate_and_up_B");
	assert_string_equal(dtype_and_shape(gu), "F32[2,4,10]");
	assert_non_null(strstr(recipe_text(fx, gu), "concat_last(stack0(" T_SRC(P ".0.gate_proj.lora_B.weight")));
	assert_string_equal(dtype_and_shape(must_plan(fx, P ".lora_gate_and_up_A")), "F32[2,8,4]");
}

static void test_v5_to_native_needs_r_dividing_the_rank_expert_dim(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ P ".lora_A.weight", "BF16", { 12, 8 } },
		{ P ".lora_B.weight", "BF16", { 5, 12 } },
	};

	scan_adapter(fx, "{'peft_type': 'LORA', 'r': 5}", t, NT(t));
	assert_int_equal(plan_adapter(fx, &defaults), -EINVAL);
	assert_mentions(fx->err, P ".lora_A.weight");
	assert_mentions(fx->err, "not a multiple of the rank r=5");
}

static void test_v5_to_native_without_r_says_what_is_missing(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = { { P ".lora_A.weight", "BF16", { 12, 8 } } };

	scan_adapter(fx, "{'peft_type': 'LORA'}", t, NT(t));
	assert_int_equal(plan_adapter(fx, &defaults), -EINVAL);
	assert_mentions(fx->err, "no positive integer \"r\"");
}

static void test_v5_tensors_of_one_group_must_agree_on_experts(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ P ".lora_A.weight", "BF16", { 12, 8 } },
		{ P ".lora_B.weight", "BF16", { 5, 16 } },
	};

	scan_adapter(fx, CONFIG_R4, t, NT(t));
	assert_int_equal(plan_adapter(fx, &defaults), -EINVAL);
	assert_mentions(fx->err, "holds 12 rank-expert rows or columns");
}

static void test_v4_without_lora_down_a_cannot_tell_gating(void **state)
{
	struct fixture *fx = *state;
	struct view_opts o = defaults;
	static const struct test_tensor t[] = {
		{ P ".lora_gate_and_up_A", "BF16", { 3, 8, 4 } },
		{ P ".lora_gate_and_up_B", "BF16", { 3, 4, 10 } },
	};

	o.peft_v4 = true;
	scan_adapter(fx, CONFIG_R4, t, NT(t));
	assert_int_equal(plan_adapter(fx, &o), -EINVAL);
	assert_mentions(fx->err, "use peft=v5");
	must_plan_adapter(fx, &defaults);       /* v5 does not need to know */
}

static void test_a_native_tensor_of_two_dims_is_refused(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = { { P ".lora_down_B", "BF16", { 4, 8 } } };

	scan_adapter(fx, CONFIG_R4, t, NT(t));
	assert_int_equal(plan_adapter(fx, &defaults), -EINVAL);
	assert_mentions(fx->err, P ".lora_down_B");
	assert_mentions(fx->err, "got 2 dims");
}

static void test_an_adapter_is_not_split_by_expert_parallel_rank(void **state)
{
	struct fixture *fx = *state;
	struct view_opts o = defaults;

	o.ep_size = 2;
	scan_adapter(fx, CONFIG_R4, native_gated, NT(native_gated));
	assert_int_equal(plan_adapter(fx, &o), -EINVAL);
	assert_mentions(fx->err, "ep_size");
	/* one mount per rank of a job (-o mpi, %r): each shows the whole adapter */
	o.ep_rank = 1;
	o.ep_from_rank = true;
	must_plan_adapter(fx, &o);
	assert_string_equal(dtype_and_shape(must_plan(fx, P ".lora_A.weight")), "BF16[12,8]");
}

static void test_view_hf_of_an_hf_adapter_is_refused(void **state)
{
	struct fixture *fx = *state;
	struct view_opts o = defaults;
	static const struct test_tensor t[] = { { "m.q.lora_magnitude_vector", "F32", { 8 } } };

	o.view = VIEW_HF;
	scan_adapter(fx, CONFIG_R4, t, NT(t));
	assert_int_equal(plan_adapter(fx, &o), -EINVAL);
	assert_mentions(fx->err, "use view=native");
	o.view = VIEW_AUTO;
	must_plan_adapter(fx, &o);
	assert_non_null(must_plan(fx, "m.q.lora_magnitude"));
}

/* Found by fuzz_checkpoint: the view of a DCP piece named
 * adapter_model.safetensors was a consolidated model, not an adapter. */
static void test_an_adapter_file_from_a_sharded_save_is_refused(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = { { P ".lora_down_B", "BF16", { 3, 4, 8 } } };
	static const struct test_shard dcp = {
		.metadata = "{'DCP_SHARDING_INFO': '{\\'" P ".lora_down_B\\': {\\'saved_offsets\\': [0, 0, 0]}}'}",
	};

	test_write_json(fx->dir, PEFT_CONFIG, CONFIG_R4);
	test_write_shard(fx->dir, PEFT_WEIGHTS, t, NT(t), &dcp);
	assert_int_equal(source_scan(fx->dir, &fx->src, fx->err), -EINVAL);
	assert_mentions(fx->err, PEFT_WEIGHTS);
	assert_mentions(fx->err, "carries DCP_SHARDING_INFO");
}

/* Found by fuzz_checkpoint: an adapter without tensors lost its file. */
static void test_an_empty_adapter_keeps_its_weights_file(void **state)
{
	struct fixture *fx = *state;
	struct view v;

	test_write_json(fx->dir, PEFT_CONFIG, CONFIG_R4);
	test_write_shard(fx->dir, PEFT_WEIGHTS, NULL, 0, NULL);
	if (view_open(&v, fx->dir, &defaults, 1u << 20, fx->err) < 0)
		fail_msg("view_open: %s", fx->err);
	long w = layout_find(&v.layout, PEFT_WEIGHTS);
	assert_true(w >= 0);
	assert_int_equal(v.layout.files[w].kind, VF_WEIGHTS);
	assert_int_equal(v.layout.files[w].nslots, 0);
	assert_true(layout_find(&v.layout, "model.safetensors.index.json") < 0);
	view_close(&v);
}

/* A zero-sized [1e8, 0, 4] tensor split into per-expert keys ran out of
 * time and memory (tests/fuzz/regressions: peft-v4-split-of-1e8-experts). */
static void test_v4_splits_at_most_4096_experts(void **state)
{
	struct fixture *fx = *state;
	struct view_opts o = defaults;
	static const struct test_tensor t[] = { { P ".lora_down_A", "BF16", { 4097, 1, 1 } } };

	o.peft_v4 = true;
	scan_adapter(fx, CONFIG_R4, t, NT(t));
	assert_int_equal(plan_adapter(fx, &o), -E2BIG);
	assert_mentions(fx->err, P ".lora_down_A");
	assert_mentions(fx->err, "holds 4097 experts");
	assert_mentions(fx->err, "use peft=v5");
	must_plan_adapter(fx, &defaults);
}

/* --- names in the family's layout (peft_names.c, adapter_names.c) ----------- */

#define BB "base_model.model.backbone.layers.1.mixer.experts"
#define MM "base_model.model.model.layers.1.mixer.experts"
#define NEMOTRON "{'architectures': ['NemotronHForCausalLM']}"

/* Write config.json (unless NULL) beside the adapter, then the adapter. */
static void scan_family_adapter(struct fixture *fx, const char *model_config,
				const struct test_tensor *t, size_t n)
{
	if (model_config)
		test_write_json(fx->dir, "config.json", model_config);
	scan_adapter(fx, CONFIG_R4, t, n);
}

/* The regression: transformers' NemotronH names its modules
 * backbone.; Automodel's from_hf maps them to model. (spec §3.1), also for
 * an adapter with nothing but its key names to go by. */
static void test_nemotron_backbone_adapter_shows_model_names(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ BB ".lora_A.weight", "BF16", { 12, 8 } },
		{ BB ".lora_B.weight", "BF16", { 5, 12 } },
		{ BB ".base_layer.lora_A.weight", "BF16", { 12, 5 } },
		{ BB ".base_layer.lora_B.weight", "BF16", { 8, 12 } },
		{ "base_model.model.backbone.embeddings.lora_embedding_A", "BF16", { 4, 16 } },
		{ "base_model.model.backbone.layers.0.mixer.in_proj.lora_magnitude_vector", "F32", { 8 } },
	};

	scan_family_adapter(fx, NULL, t, NT(t));
	must_plan_adapter(fx, &defaults);
	assert_string_equal(fx->plan.adapter, "peft, nemotron_h names (key names)");
	assert_string_equal(fx->plan.direction, "hf->native (PEFT)");
	assert_string_equal(recipe_text(fx, must_plan(fx, MM ".lora_down_B")),
			    "reshape(" SRC(BB ".lora_A.weight") ", [3,4,8])");
	must_plan(fx, MM ".lora_down_A");
	must_plan(fx, MM ".lora_gate_and_up_A");
	must_plan(fx, MM ".lora_gate_and_up_B");
	/* a module is renamed as its weight is: embeddings -> embed_tokens */
	must_plan(fx, "base_model.model.model.embed_tokens.lora_embedding_A");
	must_plan(fx, "base_model.model.model.layers.0.mixer.in_proj.lora_magnitude");
	assert_int_equal(fx->plan.n, 6);
}

/* to_hf's ^model\. -> backbone. does not fire behind base_model.model.:
 * Automodel saves Nemotron-H adapters in model. names (spec §7, §11.2). */
static void test_nemotron_native_adapter_keeps_model_names_in_hf(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ MM ".lora_down_B", "BF16", { 3, 4, 8 } },
		{ "base_model.model.model.embed_tokens.lora_embedding_A", "BF16", { 4, 16 } },
	};

	scan_family_adapter(fx, NEMOTRON, t, NT(t));
	must_plan_adapter(fx, &defaults);
	assert_string_equal(fx->plan.adapter, "peft, nemotron_h names (config.json)");
	must_plan(fx, MM ".lora_A.weight");
	must_plan(fx, "base_model.model.model.embed_tokens.lora_embedding_A");
	assert_int_equal(fx->plan.n, 2);
}

static void test_gpt_oss_router_lora_is_the_native_gate(void **state)
{
	struct fixture *fx = *state;
	struct view_opts o = defaults;
	static const struct test_tensor t[] = {
		{ "base_model.model.model.layers.0.mlp.router.lora_A.weight", "BF16", { 4, 8 } },
		{ "base_model.model.model.layers.0.mlp.router.lora_B.weight", "BF16", { 2, 4 } },
	};

	scan_family_adapter(fx, "{'architectures': ['GptOssForCausalLM']}", t, NT(t));
	/* only dense LoRA: the names say which layout (router: HF) */
	must_plan_adapter(fx, &o);
	assert_string_equal(fx->plan.direction, "hf->native (PEFT)");
	must_plan(fx, "base_model.model.model.layers.0.mlp.gate.lora_A.weight");
	must_plan(fx, "base_model.model.model.layers.0.mlp.gate.lora_B.weight");
	/* view=hf of names already HF: the HF renames find nothing to do */
	o.view = VIEW_HF;
	must_plan_adapter(fx, &o);
	assert_string_equal(fx->plan.direction, "identity (PEFT)");
	must_plan(fx, "base_model.model.model.layers.0.mlp.router.lora_A.weight");
}

/* NemotronOmni routes only keys starting language_model. (spec §5); a PEFT
 * key starts base_model.model., so every name stays. */
static void test_nemotron_omni_adapter_keys_keep_their_names(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "base_model.model.language_model.backbone.layers.1.mixer.experts.lora_A.weight", "BF16", { 12, 8 } },
		{ "base_model.model.mlp1.1.lora_A.weight", "BF16", { 4, 8 } },
	};

	scan_family_adapter(fx, "{'architectures': ['NemotronH_Nano_Omni_Reasoning_V3']}", t, NT(t));
	must_plan_adapter(fx, &defaults);
	assert_string_equal(fx->plan.adapter, "peft, nemotron_omni names (config.json)");
	must_plan(fx, "base_model.model.language_model.backbone.layers.1.mixer.experts.lora_down_B");
	must_plan(fx, "base_model.model.mlp1.1.lora_A.weight");
}

/* Without base_model.model. the same table does rename: the route hands
 * language_model.'s rest to Nemotron-H; a rename with a transpose (Step3p5's
 * experts) is not a name change, the router bias's is. */
static void test_adapter_rename_applies_routes_and_plain_renames_only(void **state)
{
	struct fixture *fx = *state;
	struct adapter *a;
	char *out;

	scan_family_adapter(fx, NULL, native_gated, NT(native_gated));
	assert_int_equal(adapter_choose(&fx->src, "nemotron_omni", &a, fx->err), 0);
	assert_int_equal(adapter_rename(a, &fx->src, DIR_TO_NATIVE,
					"language_model.backbone.norm_f.weight", &out, fx->err), 0);
	assert_string_equal(out, "language_model.model.norm.weight");
	free(out);
	adapter_free(a);
	assert_int_equal(adapter_choose(&fx->src, "step3p5", &a, fx->err), 0);
	assert_int_equal(adapter_rename(a, &fx->src, DIR_TO_NATIVE,
					"model.layers.3.moe.down_proj.weight", &out, fx->err), 0);
	assert_string_equal(out, "model.layers.3.moe.down_proj.weight");
	free(out);
	assert_int_equal(adapter_rename(a, &fx->src, DIR_TO_NATIVE,
					"model.layers.3.moe.router_bias", &out, fx->err), 0);
	assert_string_equal(out, "model.layers.3.moe.gate.e_score_correction_bias");
	free(out);
	adapter_free(a);
}

/* Only dense LoRA in HF names: view=auto renames them, view=hf keeps them. */
static void test_dense_adapter_direction_follows_its_names(void **state)
{
	struct fixture *fx = *state;
	struct view_opts o = defaults;
	static const struct test_tensor t[] = {
		{ "base_model.model.backbone.layers.0.mixer.in_proj.lora_A.weight", "BF16", { 4, 8 } },
	};

	scan_family_adapter(fx, NEMOTRON, t, NT(t));
	must_plan_adapter(fx, &o);
	assert_string_equal(fx->plan.direction, "hf->native (PEFT)");
	must_plan(fx, "base_model.model.model.layers.0.mixer.in_proj.lora_A.weight");
	o.view = VIEW_HF;
	must_plan_adapter(fx, &o);
	assert_string_equal(fx->plan.direction, "identity (PEFT)");
	must_plan(fx, "base_model.model.backbone.layers.0.mixer.in_proj.lora_A.weight");
}

static void test_unknown_family_keeps_names_and_says_so(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ BB ".lora_A.weight", "BF16", { 12, 8 } },
	};

	scan_family_adapter(fx, "{'architectures': ['SomethingNewForCausalLM']}", t, NT(t));
	must_plan_adapter(fx, &defaults);
	assert_string_equal(fx->plan.adapter, "peft, family unknown: names kept");
	must_plan(fx, BB ".lora_down_B");
}

/* Key names that fit two families (Nemotron-H's and DeepSeek's per-expert
 * keys) tell neither.  (Experts 0 and 3 of 4: no group is complete, so the
 * keys pass through under their names.) */
static void test_key_names_of_two_families_tell_neither(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ BB ".0.up_proj.lora_A.weight", "BF16", { 4, 8 } },
		{ "base_model.model.model.layers.2.mlp.experts.3.gate_proj.lora_A.weight", "BF16", { 4, 8 } },
	};

	scan_family_adapter(fx, NULL, t, NT(t));
	must_plan_adapter(fx, &defaults);
	assert_string_equal(fx->plan.adapter, "peft, family unknown: names kept");
	must_plan(fx, BB ".0.up_proj.lora_A.weight");
}

static void test_adapter_option_wins_over_config_json(void **state)
{
	struct fixture *fx = *state;
	struct view_opts o = defaults;
	static const struct test_tensor t[] = { { BB ".lora_A.weight", "BF16", { 12, 8 } } };

	o.adapter = "nemotron_h";
	scan_family_adapter(fx, "{'architectures': ['LlamaForCausalLM']}", t, NT(t));
	must_plan_adapter(fx, &o);
	assert_string_equal(fx->plan.adapter, "peft, nemotron_h names (adapter=)");
	must_plan(fx, MM ".lora_down_B");
	o.adapter = "no_such_family";
	assert_int_equal(plan_adapter(fx, &o), -EINVAL);
	assert_mentions(fx->err, "no adapter called 'no_such_family'");
}

/* A table whose rename would take base_model.model. away gives the key no
 * name: refused, naming the key and what the rename made of it. */
static void test_a_rename_that_drops_the_peft_prefix_is_refused(void **state)
{
	struct fixture *fx = *state;
	struct view_opts o = defaults;
	char path[512];
	static const struct test_tensor t[] = { { BB ".lora_A.weight", "BF16", { 12, 8 } } };

	test_path(path, sizeof(path), fx->dir, "strip.json");
	test_write_json(fx->dir, "strip.json",
			"{'name': 'strip', 'hf_to_native': [{'op': 'rename', 'match': '^base_model\\\\.model\\\\.', 'to': ''}]}");
	o.adapter_file = path;
	scan_family_adapter(fx, NULL, t, NT(t));
	assert_int_equal(plan_adapter(fx, &o), -EINVAL);
	assert_mentions(fx->err, BB ".lora_A.weight");
	assert_mentions(fx->err, "drops the base_model.model. prefix");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, fixture_teardown)
	const struct CMUnitTest tests[] = {
		T(test_a_directory_is_peft_only_with_both_files),
		T(test_native_to_v5_reshapes_a_and_permutes_b),
		T(test_native_to_v4_splits_gate_and_up_at_i),
		T(test_v4_to_native_stacks_and_joins_gate_with_up),
		T(test_v5_to_native_needs_r_dividing_the_rank_expert_dim),
		T(test_v5_to_native_without_r_says_what_is_missing),
		T(test_v5_tensors_of_one_group_must_agree_on_experts),
		T(test_v4_without_lora_down_a_cannot_tell_gating),
		T(test_a_native_tensor_of_two_dims_is_refused),
		T(test_an_adapter_is_not_split_by_expert_parallel_rank),
		T(test_view_hf_of_an_hf_adapter_is_refused),
		T(test_an_adapter_file_from_a_sharded_save_is_refused),
		T(test_an_empty_adapter_keeps_its_weights_file),
		T(test_v4_splits_at_most_4096_experts),
		T(test_nemotron_backbone_adapter_shows_model_names),
		T(test_nemotron_native_adapter_keeps_model_names_in_hf),
		T(test_gpt_oss_router_lora_is_the_native_gate),
		T(test_nemotron_omni_adapter_keys_keep_their_names),
		T(test_adapter_rename_applies_routes_and_plain_renames_only),
		T(test_dense_adapter_direction_follows_its_names),
		T(test_unknown_family_keeps_names_and_says_so),
		T(test_key_names_of_two_families_tell_neither),
		T(test_adapter_option_wins_over_config_json),
		T(test_a_rename_that_drops_the_peft_prefix_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
