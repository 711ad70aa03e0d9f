/*
 * test_adapter.c — the rule engine and the built-in Nemotron-H table turn a
 * HuggingFace checkpoint into NeMo Automodel's native layout, as the
 * conversion spec (§2.1-2.4, §3.1-3.2) describes it.
 *
 * Each test builds a real checkpoint under /tmp (config.json and one
 * model.safetensors, written by testlib's test_write_json() and
 * test_write_shard()), scans it, picks the adapter from config.json the way
 * a mount does, plans the view and asserts on the plan: which names exist,
 * their dtype and shape, and the recipe that makes them (NULL when the bytes
 * are the source's, unchanged).  JSON in the fixtures is written with ' for
 * " so it reads without escapes.
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
#include "adapter_fixture.h"

/* --- fixture (struct fixture and its helpers: adapter_fixture.h) ------- */

static int setup(void **state)
{
	return fixture_setup(state, "adapter");
}

static const struct view_opts every_expert = {
	.view = VIEW_NATIVE, .dtype = SD_DTYPE_INVALID,
};

/* What a mount does: scan, choose the adapter from config.json, plan. */
static int plan_checkpoint(struct fixture *fx, const char *config,
			   const struct test_tensor *t, size_t n,
			   const struct view_opts *o)
{
	scan_and_choose(fx, config, t, n, "nemotron_h");
	return make_plan(fx, o, DIR_TO_NATIVE);
}

/* A Nemotron-H config.json with two layers, plus fields. */
#define NEMOTRON(fields) \
	"{'architectures':['NemotronHForCausalLM'],'model_type':'nemotron_h'," \
	"'num_hidden_layers':2,'torch_dtype':'bfloat16'" fields "}"
#define NEMOTRON_MOE   NEMOTRON(",'n_routed_experts':4")
#define NEMOTRON_DENSE NEMOTRON("")

/* Per-expert HF keys of layer L (I = 3, H = 6). */
#define EXPERT(L, e, proj) "backbone.layers." #L ".mixer.experts." #e "." proj ".weight"
#define UP(L, e, dt)   { EXPERT(L, e, "up_proj"), dt, { 3, 6 } }
#define DOWN(L, e, dt) { EXPERT(L, e, "down_proj"), dt, { 6, 3 } }
#define GROUP(L, dt)   UP(L, 0, dt), UP(L, 1, dt), UP(L, 2, dt), UP(L, 3, dt), \
	DOWN(L, 0, dt), DOWN(L, 1, dt), DOWN(L, 2, dt), DOWN(L, 3, dt)

/* --- §3.1 renames --------------------------------------------------------- */

static void test_backbone_prefix_becomes_model(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "backbone.layers.0.mixer.in_proj.weight", "BF16", { 10, 6 } },
		{ "backbone.layers.1.mixer.q_proj.weight", "F32", { 6, 6 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_DENSE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 2);
	const struct plan_tensor *p = must_plan(fx, "model.layers.0.mixer.in_proj.weight");
	assert_string_equal(dtype_and_shape(p), "BF16[10,6]");
	assert_null(p->recipe);
	assert_int_equal(p->src, source_find(&fx->src, "backbone.layers.0.mixer.in_proj.weight"));
	p = must_plan(fx, "model.layers.1.mixer.q_proj.weight");
	assert_string_equal(dtype_and_shape(p), "F32[6,6]");
	assert_null(p->recipe);
	assert_null(planned(fx, "backbone.layers.0.mixer.in_proj.weight"));
}

static void test_norm_f_becomes_norm_under_backbone(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "backbone.norm_f.weight", "BF16", { 6 } },
		{ "backbone.norm_f.bias", "BF16", { 6 } },
		{ "model.norm_f.weight", "BF16", { 6 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_DENSE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 3);
	assert_null(must_plan(fx, "model.norm.weight")->recipe);
	/* Only the exact key backbone.norm_f.weight is renamed. */
	must_plan(fx, "model.norm_f.bias");
	assert_int_equal(must_plan(fx, "model.norm_f.weight")->src,
			 source_find(&fx->src, "model.norm_f.weight"));
}

static void test_embeddings_become_embed_tokens_under_backbone(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "backbone.embeddings.weight", "BF16", { 16, 6 } },
		{ "model.embeddings.weight", "BF16", { 16, 6 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_DENSE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 2);
	assert_string_equal(dtype_and_shape(must_plan(fx, "model.embed_tokens.weight")),
			    "BF16[16,6]");
	assert_int_equal(must_plan(fx, "model.embeddings.weight")->src,
			 source_find(&fx->src, "model.embeddings.weight"));
}

static void test_peft_backbone_becomes_base_model_model_model(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "base_model.model.backbone.layers.0.mixer.in_proj.lora_A.weight", "F32", { 2, 6 } },
		{ "base_model.model.backbone.norm_f.weight", "F32", { 6 } },
		{ "base_model.model.backbone.embeddings.weight", "F32", { 16, 6 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_DENSE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 3);
	must_plan(fx, "base_model.model.model.layers.0.mixer.in_proj.lora_A.weight");
	must_plan(fx, "base_model.model.model.norm.weight");
	must_plan(fx, "base_model.model.model.embed_tokens.weight");
}

static void test_lm_head_is_unchanged(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "lm_head.weight", "BF16", { 16, 6 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 1);
	const struct plan_tensor *p = must_plan(fx, "lm_head.weight");
	assert_string_equal(dtype_and_shape(p), "BF16[16,6]");
	assert_null(p->recipe);
}

/* --- §3.1 fp32 holder ----------------------------------------------------- */

static void test_mamba_fp32_params_move_to_holder_and_become_f32(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "backbone.layers.0.mixer.A_log", "BF16", { 4 } },
		{ "backbone.layers.0.mixer.dt_bias", "BF16", { 4 } },
		{ "backbone.layers.0.mixer.D", "F16", { 4 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 3);
	const struct plan_tensor *p = must_plan(fx, "model.layers.0.mixer._fp32_params.A_log");
	assert_string_equal(dtype_and_shape(p), "F32[4]");
	assert_int_equal(p->nbytes, 16);
	assert_string_equal(recipe_text(fx, p),
			    "cast(src(\"backbone.layers.0.mixer.A_log\"), F32)");
	p = must_plan(fx, "model.layers.0.mixer._fp32_params.dt_bias");
	assert_string_equal(recipe_text(fx, p),
			    "cast(src(\"backbone.layers.0.mixer.dt_bias\"), F32)");
	p = must_plan(fx, "model.layers.0.mixer._fp32_params.D");
	assert_string_equal(recipe_text(fx, p), "cast(src(\"backbone.layers.0.mixer.D\"), F32)");
	assert_null(planned(fx, "model.layers.0.mixer.A_log"));
}

static void test_f32_mamba_param_moves_without_a_recipe(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "backbone.layers.1.mixer.D", "F32", { 4 } },
		{ "mtp.layers.0.mixer.A_log", "F32", { 4 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	const struct plan_tensor *p = must_plan(fx, "model.layers.1.mixer._fp32_params.D");
	assert_string_equal(dtype_and_shape(p), "F32[4]");
	assert_null(p->recipe);
	assert_null(must_plan(fx, "mtp.layers.0.mixer._fp32_params.A_log")->recipe);
}

static void test_holder_keys_and_longer_tails_are_not_moved(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "backbone.layers.0.mixer._fp32_params.A_log", "F32", { 4 } },
		{ "backbone.layers.0.mixer.A_log_extra", "BF16", { 4 } },
		{ "backbone.layers.0.mixer.norm.D", "BF16", { 4 } },
		{ "backbone.layers.0.D", "BF16", { 4 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 4);
	must_plan(fx, "model.layers.0.mixer._fp32_params.A_log");
	const struct plan_tensor *p = must_plan(fx, "model.layers.0.mixer.A_log_extra");
	assert_string_equal(dtype_and_shape(p), "BF16[4]");
	assert_null(p->recipe);
	assert_null(must_plan(fx, "model.layers.0.mixer.norm.D")->recipe);
	assert_null(must_plan(fx, "model.layers.0.D")->recipe);
}

/* The text after the last .mixer. is "D", but the key is already under the
 * holder: the spec leaves keys with ._fp32_params. where they are. */
static void test_key_under_a_holder_is_never_rerouted(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "backbone.layers.0.mixer._fp32_params.mixer.D", "F32", { 4 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	must_plan(fx, "model.layers.0.mixer._fp32_params.mixer.D");
}

static void test_integer_a_log_moves_but_is_not_cast(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "backbone.layers.0.mixer.A_log", "I32", { 4 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	const struct plan_tensor *p = must_plan(fx, "model.layers.0.mixer._fp32_params.A_log");
	assert_string_equal(dtype_and_shape(p), "I32[4]");
	assert_null(p->recipe);
}

/* --- §3.2 truncation ------------------------------------------------------ */

static void test_layers_at_or_above_num_hidden_layers_are_dropped(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "backbone.layers.1.norm.weight", "BF16", { 6 } },
		{ "backbone.layers.2.norm.weight", "BF16", { 6 } },
		{ "backbone.layers.10.norm.weight", "BF16", { 6 } },
		{ "model.layers.0.norm.weight", "BF16", { 6 } },
		{ "model.layers.2.norm.weight", "BF16", { 6 } },
		UP(2, 0, "BF16"), DOWN(2, 0, "BF16"),
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 2);
	assert_int_equal(must_plan(fx, "model.layers.1.norm.weight")->src,
			 source_find(&fx->src, "backbone.layers.1.norm.weight"));
	assert_int_equal(must_plan(fx, "model.layers.0.norm.weight")->src,
			 source_find(&fx->src, "model.layers.0.norm.weight"));
	/* Layer 2's experts went with their layer: no incomplete group. */
	assert_null(planned(fx, "model.layers.2.mixer.experts.gate_and_up_projs"));
}

static void test_mtp_and_peft_layers_are_never_truncated(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "mtp.layers.5.norm.weight", "BF16", { 6 } },
		{ "base_model.model.backbone.layers.5.mixer.in_proj.lora_A.weight", "F32", { 2, 6 } },
		{ "backbone.layers.5.norm.weight", "BF16", { 6 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 2);
	must_plan(fx, "mtp.layers.5.norm.weight");
	must_plan(fx, "base_model.model.model.layers.5.mixer.in_proj.lora_A.weight");
}

static void test_without_num_hidden_layers_nothing_is_truncated(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "backbone.layers.0.norm.weight", "BF16", { 6 } },
		{ "backbone.layers.7.norm.weight", "BF16", { 6 } },
		{ "model.layers.9.norm.weight", "BF16", { 6 } },
	};

	assert_int_equal(plan_checkpoint(fx, "{'architectures':['NemotronHForCausalLM']}",
					 t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 3);
	must_plan(fx, "model.layers.7.norm.weight");
	must_plan(fx, "model.layers.9.norm.weight");
}

static void test_zero_num_hidden_layers_truncates_nothing(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "backbone.layers.3.norm.weight", "BF16", { 6 } },
	};

	assert_int_equal(plan_checkpoint(fx, "{'architectures':['NemotronHForCausalLM'],"
					 "'num_hidden_layers':0}", t, NT(t), &every_expert), 0);
	must_plan(fx, "model.layers.3.norm.weight");
}

/* --- §2.2 / §3.2 expert merge ----------------------------------------------- */

static void test_experts_merge_into_grouped_tensors(void **state)
{
	struct fixture *fx = *state;
	/* Stored out of order: the grouped tensor still stacks 0, 1, 2, 3. */
	static const struct test_tensor t[] = {
		UP(0, 3, "BF16"), DOWN(0, 1, "BF16"), UP(0, 1, "BF16"), UP(0, 0, "BF16"),
		DOWN(0, 0, "BF16"), UP(0, 2, "BF16"), DOWN(0, 3, "BF16"), DOWN(0, 2, "BF16"),
		{ "backbone.layers.0.mixer.gate.weight", "BF16", { 4, 6 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 3);
	assert_int_equal(fx->plan.experts, 4);
	const struct plan_tensor *gu = must_plan(fx, "model.layers.0.mixer.experts.gate_and_up_projs");
	assert_string_equal(dtype_and_shape(gu), "BF16[4,6,3]");
	assert_int_equal(gu->nbytes, 4 * 6 * 3 * 2);
	assert_string_equal(recipe_text(fx, gu),
			    "stack0(" T_SRC(EXPERT(0, 0, "up_proj")) ", "
			    T_SRC(EXPERT(0, 1, "up_proj")) ", "
			    T_SRC(EXPERT(0, 2, "up_proj")) ", "
			    T_SRC(EXPERT(0, 3, "up_proj")) ")");
	const struct plan_tensor *d = must_plan(fx, "model.layers.0.mixer.experts.down_projs");
	assert_string_equal(dtype_and_shape(d), "BF16[4,3,6]");
	assert_string_equal(recipe_text(fx, d),
			    "stack0(" T_SRC(EXPERT(0, 0, "down_proj")) ", "
			    T_SRC(EXPERT(0, 1, "down_proj")) ", "
			    T_SRC(EXPERT(0, 2, "down_proj")) ", "
			    T_SRC(EXPERT(0, 3, "down_proj")) ")");
	must_plan(fx, "model.layers.0.mixer.gate.weight");
	assert_null(planned(fx, "model.layers.0.mixer.experts.0.up_proj.weight"));
}

static void test_gate_proj_of_non_gated_experts_is_ignored(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		GROUP(0, "BF16"),
		{ EXPERT(0, 0, "gate_proj"), "BF16", { 3, 6 } },
		{ EXPERT(0, 1, "gate_proj"), "BF16", { 3, 6 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 2);
	const struct plan_tensor *gu = must_plan(fx, "model.layers.0.mixer.experts.gate_and_up_projs");
	assert_string_equal(dtype_and_shape(gu), "BF16[4,6,3]");
	assert_null(strstr(recipe_text(fx, gu), "gate_proj"));
	assert_null(planned(fx, "model.layers.0.mixer.experts.0.gate_proj.weight"));
}

static void test_scale_inv_keys_are_dropped_in_moe_models(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		GROUP(0, "BF16"),
		{ "backbone.layers.0.mixer.in_proj.weight", "BF16", { 10, 6 } },
		{ "backbone.layers.0.mixer.in_proj.weight_scale_inv", "F32", { 1 } },
		{ EXPERT(0, 0, "up_proj") "_scale_inv", "F32", { 1 } },
		{ "mtp.layers.0.mixer.out_proj.weight_scale_inv", "F32", { 1 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 3);
	must_plan(fx, "model.layers.0.mixer.in_proj.weight");
	assert_null(planned(fx, "model.layers.0.mixer.in_proj.weight_scale_inv"));
	assert_null(planned(fx, "model.layers.0.mixer.experts.0.up_proj.weight_scale_inv"));
	assert_null(planned(fx, "mtp.layers.0.mixer.out_proj.weight_scale_inv"));
}

/* §2.2: a key under mixer.experts that the per-expert pattern does not
 * match passes through (renamed like any other key). */
static void test_expert_like_keys_outside_the_pattern_pass_through(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		GROUP(0, "BF16"),
		{ "backbone.layers.0.mixer.experts.0.up_proj.bias", "BF16", { 3 } },
		{ "backbone.layers.0.mixer.experts.0.fc1.weight", "BF16", { 3, 6 } },
		{ "backbone.layers.0.mixer.experts.lora_A.weight", "BF16", { 2, 6 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 5);
	assert_null(must_plan(fx, "model.layers.0.mixer.experts.0.up_proj.bias")->recipe);
	assert_null(must_plan(fx, "model.layers.0.mixer.experts.0.fc1.weight")->recipe);
	assert_null(must_plan(fx, "model.layers.0.mixer.experts.lora_A.weight")->recipe);
}

static void test_experts_beyond_n_routed_experts_are_dropped(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		GROUP(0, "BF16"), UP(0, 4, "BF16"), DOWN(0, 4, "BF16"), UP(0, 17, "BF16"),
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 2);
	const struct plan_tensor *gu = must_plan(fx, "model.layers.0.mixer.experts.gate_and_up_projs");
	assert_string_equal(dtype_and_shape(gu), "BF16[4,6,3]");
	assert_null(strstr(recipe_text(fx, gu), "experts.4."));
	assert_null(planned(fx, "model.layers.0.mixer.experts.4.up_proj.weight"));
}

static void test_mtp_experts_merge_under_the_mtp_prefix(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "mtp.layers.3.mixer.experts.0.up_proj.weight", "BF16", { 3, 6 } },
		{ "mtp.layers.3.mixer.experts.1.up_proj.weight", "BF16", { 3, 6 } },
		{ "mtp.layers.3.mixer.experts.2.up_proj.weight", "BF16", { 3, 6 } },
		{ "mtp.layers.3.mixer.experts.3.up_proj.weight", "BF16", { 3, 6 } },
		{ "mtp.layers.3.mixer.experts.0.down_proj.weight", "BF16", { 6, 3 } },
		{ "mtp.layers.3.mixer.experts.1.down_proj.weight", "BF16", { 6, 3 } },
		{ "mtp.layers.3.mixer.experts.2.down_proj.weight", "BF16", { 6, 3 } },
		{ "mtp.layers.3.mixer.experts.3.down_proj.weight", "BF16", { 6, 3 } },
		{ "mtp.layers.3.enorm.weight", "BF16", { 6 } },
		{ "mtp.layers.3.mixer.D", "BF16", { 4 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 4);
	assert_string_equal(dtype_and_shape(must_plan(fx, "mtp.layers.3.mixer.experts.gate_and_up_projs")),
			    "BF16[4,6,3]");
	assert_string_equal(dtype_and_shape(must_plan(fx, "mtp.layers.3.mixer.experts.down_projs")),
			    "BF16[4,3,6]");
	must_plan(fx, "mtp.layers.3.enorm.weight");
	assert_string_equal(dtype_and_shape(must_plan(fx, "mtp.layers.3.mixer._fp32_params.D")),
			    "F32[4]");
}

/* --- expert dtype ------------------------------------------------------------ */

static void test_experts_are_cast_to_config_torch_dtype(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = { GROUP(0, "F32") };

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.dtype, SD_BF16);
	const struct plan_tensor *gu = must_plan(fx, "model.layers.0.mixer.experts.gate_and_up_projs");
	assert_string_equal(dtype_and_shape(gu), "BF16[4,6,3]");
	assert_int_equal(gu->nbytes, 4 * 6 * 3 * 2);
	assert_string_equal(dtype_and_shape(must_plan(fx, "model.layers.0.mixer.experts.down_projs")),
			    "BF16[4,3,6]");
}

static void test_dtype_option_overrides_torch_dtype_for_experts(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = { GROUP(0, "BF16") };
	const struct view_opts f16 = { .view = VIEW_NATIVE, .dtype = SD_F16 };

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &f16), 0);
	assert_int_equal(fx->plan.dtype, SD_F16);
	assert_string_equal(dtype_and_shape(must_plan(fx, "model.layers.0.mixer.experts.gate_and_up_projs")),
			    "F16[4,6,3]");
	assert_string_equal(dtype_and_shape(must_plan(fx, "model.layers.0.mixer.experts.down_projs")),
			    "F16[4,3,6]");
}

static void test_experts_default_to_bfloat16_without_torch_dtype(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = { GROUP(0, "F32") };

	assert_int_equal(plan_checkpoint(fx, "{'architectures':['NemotronHForCausalLM'],"
					 "'n_routed_experts':4}", t, NT(t), &every_expert), 0);
	assert_string_equal(dtype_and_shape(must_plan(fx, "model.layers.0.mixer.experts.gate_and_up_projs")),
			    "BF16[4,6,3]");
}

static void test_expert_dtype_never_casts_other_tensors(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		GROUP(0, "BF16"),
		{ "backbone.layers.0.mixer.gate.weight", "F32", { 4, 6 } },
		{ "backbone.layers.0.mixer.shared_experts.up_proj.weight", "BF16", { 3, 6 } },
		{ "backbone.norm_f.weight", "BF16", { 6 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	/* Same checkpoint with float16 experts: only the experts change. */
	const struct view_opts f16 = { .view = VIEW_NATIVE, .dtype = SD_F16 };
	assert_int_equal(make_plan(fx, &f16, DIR_TO_NATIVE), 0);
	assert_string_equal(dtype_and_shape(must_plan(fx, "model.layers.0.mixer.experts.gate_and_up_projs")),
			    "F16[4,6,3]");
	const struct plan_tensor *p = must_plan(fx, "model.layers.0.mixer.gate.weight");
	assert_string_equal(dtype_and_shape(p), "F32[4,6]");
	assert_null(p->recipe);
	p = must_plan(fx, "model.layers.0.mixer.shared_experts.up_proj.weight");
	assert_string_equal(dtype_and_shape(p), "BF16[3,6]");
	assert_null(p->recipe);
	p = must_plan(fx, "model.norm.weight");
	assert_string_equal(dtype_and_shape(p), "BF16[6]");
	assert_null(p->recipe);
}

/* --- dense models ----------------------------------------------------------- */

static void test_dense_model_is_a_pure_rename(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "backbone.layers.0.mixer.up_proj.weight", "BF16", { 3, 6 } },
		{ "backbone.layers.0.mixer.up_proj.weight_scale_inv", "F32", { 1 } },
		{ EXPERT(0, 0, "up_proj"), "BF16", { 3, 6 } },
		{ EXPERT(0, 0, "gate_proj"), "BF16", { 3, 6 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_DENSE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.experts, 0);
	assert_int_equal(fx->plan.n, 4);
	for (size_t i = 0; i < fx->plan.n; i++)
		assert_null(fx->plan.tensors[i].recipe);
	must_plan(fx, "model.layers.0.mixer.up_proj.weight_scale_inv");
	must_plan(fx, "model.layers.0.mixer.experts.0.up_proj.weight");
	must_plan(fx, "model.layers.0.mixer.experts.0.gate_proj.weight");
	assert_null(planned(fx, "model.layers.0.mixer.experts.gate_and_up_projs"));
}

/* --- §2.4 validation -------------------------------------------------------- */

static void test_missing_experts_are_an_error_naming_layer_projection_and_experts(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		UP(0, 0, "BF16"), UP(0, 1, "BF16"), UP(0, 3, "BF16"),
		DOWN(0, 0, "BF16"), DOWN(0, 2, "BF16"),
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), -EINVAL);
	assert_mentions(fx->err, "model.layers.0.mixer.experts.gate_and_up_projs");
	assert_mentions(fx->err, "up_proj of experts 2");
	assert_mentions(fx->err, "down_proj of experts 1, 3");
	assert_int_equal(fx->plan.n, 0);
}

static void test_layer_without_expert_keys_is_not_checked(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		GROUP(0, "BF16"),
		{ "backbone.layers.1.mixer.in_proj.weight", "BF16", { 10, 6 } },
		{ "backbone.layers.1.mixer.gate.weight", "BF16", { 4, 6 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), 0);
	assert_int_equal(fx->plan.n, 4);
	assert_null(planned(fx, "model.layers.1.mixer.experts.gate_and_up_projs"));
	assert_null(planned(fx, "model.layers.1.mixer.experts.down_projs"));
}

static void test_inconsistent_expert_shapes_are_an_error_naming_the_tensor(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		UP(0, 0, "BF16"), UP(0, 1, "BF16"), UP(0, 3, "BF16"),
		{ EXPERT(0, 2, "up_proj"), "BF16", { 3, 5 } },
		DOWN(0, 0, "BF16"), DOWN(0, 1, "BF16"), DOWN(0, 2, "BF16"), DOWN(0, 3, "BF16"),
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert), -EINVAL);
	assert_mentions(fx->err, "model.layers.0.mixer.experts.gate_and_up_projs");
	assert_int_equal(fx->plan.n, 0);
}

static void test_two_sources_renamed_to_one_name_are_an_error(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "backbone.norm_f.weight", "BF16", { 6 } },
		{ "model.norm.weight", "BF16", { 6 } },
	};

	assert_true(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert) < 0);
	assert_mentions(fx->err, "'model.norm.weight'");
}

static void test_two_sources_for_one_expert_are_an_error(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		GROUP(0, "BF16"),
		{ "model.layers.0.mixer.experts.2.down_proj.weight", "BF16", { 6, 3 } },
	};

	assert_true(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), &every_expert) < 0);
	assert_mentions(fx->err, EXPERT(0, 2, "down_proj"));
	assert_mentions(fx->err, "model.layers.0.mixer.experts.2.down_proj.weight");
}

/* --- §2.4 expert parallelism ------------------------------------------------ */

static void test_ep_range_gives_the_remainder_to_the_first_ranks(void **state)
{
	unsigned long start, end;

	(void)state;
	static const unsigned long want[3][2] = { { 0, 3 }, { 3, 6 }, { 6, 8 } };
	for (long rank = 0; rank < 3; rank++) {
		ep_range(8, rank, 3, &start, &end);
		assert_int_equal(start, want[rank][0]);
		assert_int_equal(end, want[rank][1]);
	}
	ep_range(8, 1, 4, &start, &end);
	assert_int_equal(start, 2);
	assert_int_equal(end, 4);
	ep_range(8, 0, 0, &start, &end);
	assert_int_equal(start, 0);
	assert_int_equal(end, 8);
}

/* Found by fuzzing: the message was built from freed memory. */
static void test_ep_rank_without_experts_is_an_error(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		UP(0, 0, "BF16"), UP(0, 1, "BF16"), DOWN(0, 0, "BF16"), DOWN(0, 1, "BF16"),
	};
	const struct view_opts fourth_of_4 = {
		.view = VIEW_NATIVE, .dtype = SD_DTYPE_INVALID, .ep_rank = 3, .ep_size = 4,
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON(",'n_routed_experts':2"), t, NT(t),
					 &fourth_of_4), -EINVAL);
	assert_mentions(fx->err, "ep_rank=3 of ep_size=4 holds no expert (the model has 2)");
}

/* Found reading the PEFT fuzz campaign's bug: a split makes one tensor per
 * expert even from a tensor of no bytes, so a huge count must be refused. */
static void test_an_absurd_expert_count_is_refused(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = { UP(0, 0, "BF16"), DOWN(0, 0, "BF16") };
	const struct view_opts o = { .view = VIEW_NATIVE, .dtype = SD_DTYPE_INVALID };

	assert_int_equal(plan_checkpoint(fx, NEMOTRON(",'n_routed_experts':100000000"), t, NT(t),
					 &o), -EINVAL);
	assert_mentions(fx->err, "100000000 routed experts is more than sdafs handles");
}

static void test_ep_rank_sees_only_its_experts(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		UP(0, 0, "BF16"), UP(0, 1, "BF16"), UP(0, 2, "BF16"), UP(0, 3, "BF16"),
		UP(0, 4, "BF16"), UP(0, 5, "BF16"), UP(0, 6, "BF16"), UP(0, 7, "BF16"),
		DOWN(0, 0, "BF16"), DOWN(0, 1, "BF16"), DOWN(0, 2, "BF16"), DOWN(0, 3, "BF16"),
		DOWN(0, 4, "BF16"), DOWN(0, 5, "BF16"), DOWN(0, 6, "BF16"), DOWN(0, 7, "BF16"),
	};
	const struct view_opts last_of_3 = {
		.view = VIEW_NATIVE, .dtype = SD_DTYPE_INVALID, .ep_rank = 2, .ep_size = 3,
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON(",'n_routed_experts':8"), t, NT(t),
					 &last_of_3), 0);
	assert_int_equal(fx->plan.ep_start, 6);
	assert_int_equal(fx->plan.ep_end, 8);
	const struct plan_tensor *gu = must_plan(fx, "model.layers.0.mixer.experts.gate_and_up_projs");
	assert_string_equal(dtype_and_shape(gu), "BF16[2,6,3]");
	assert_string_equal(recipe_text(fx, gu),
			    "stack0(" T_SRC(EXPERT(0, 6, "up_proj")) ", "
			    T_SRC(EXPERT(0, 7, "up_proj")) ")");
	assert_string_equal(dtype_and_shape(must_plan(fx, "model.layers.0.mixer.experts.down_projs")),
			    "BF16[2,3,6]");

	const struct view_opts second_of_4 = {
		.view = VIEW_NATIVE, .dtype = SD_DTYPE_INVALID, .ep_rank = 1, .ep_size = 4,
	};
	assert_int_equal(make_plan(fx, &second_of_4, DIR_TO_NATIVE), 0);
	assert_string_equal(recipe_text(fx, must_plan(fx, "model.layers.0.mixer.experts.gate_and_up_projs")),
			    "stack0(" T_SRC(EXPERT(0, 2, "up_proj")) ", "
			    T_SRC(EXPERT(0, 3, "up_proj")) ")");
}

static void test_missing_experts_outside_the_rank_are_fine(void **state)
{
	struct fixture *fx = *state;
	/* Experts 0..2 of 8: exactly rank 0's share of three ranks. */
	static const struct test_tensor t[] = {
		UP(0, 0, "BF16"), UP(0, 1, "BF16"), UP(0, 2, "BF16"),
		DOWN(0, 0, "BF16"), DOWN(0, 1, "BF16"), DOWN(0, 2, "BF16"),
	};
	const struct view_opts rank0 = {
		.view = VIEW_NATIVE, .dtype = SD_DTYPE_INVALID, .ep_rank = 0, .ep_size = 3,
	};
	const struct view_opts rank1 = {
		.view = VIEW_NATIVE, .dtype = SD_DTYPE_INVALID, .ep_rank = 1, .ep_size = 3,
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON(",'n_routed_experts':8"), t, NT(t),
					 &rank0), 0);
	assert_string_equal(dtype_and_shape(must_plan(fx, "model.layers.0.mixer.experts.gate_and_up_projs")),
			    "BF16[3,6,3]");
	/* Rank 1 needs experts 3..5, which are missing. */
	assert_int_equal(make_plan(fx, &rank1, DIR_TO_NATIVE), -EINVAL);
	assert_mentions(fx->err, "up_proj of experts 3, 4, 5");
}

/* --- choosing the adapter ------------------------------------------------------ */

static const struct test_tensor one_tensor[] = {
	{ "backbone.embeddings.weight", "BF16", { 16, 6 } },
};

static void test_choose_by_architecture(void **state)
{
	struct fixture *fx = *state;

	scan_checkpoint(fx, "{'architectures':['NemotronHForCausalLM'],'model_type':'other'}",
			one_tensor, 1);
	assert_int_equal(adapter_choose(&fx->src, NULL, &fx->adapter, fx->err), 0);
	assert_string_equal(adapter_name(fx->adapter), "nemotron_h");
}

static void test_choose_by_model_type_without_architectures(void **state)
{
	struct fixture *fx = *state;

	scan_checkpoint(fx, "{'model_type':'nemotron_h'}", one_tensor, 1);
	assert_int_equal(adapter_choose(&fx->src, NULL, &fx->adapter, fx->err), 0);
	assert_string_equal(adapter_name(fx->adapter), "nemotron_h");
}

static void test_choose_by_name_ignores_config(void **state)
{
	struct fixture *fx = *state;

	scan_checkpoint(fx, "{'architectures':['LlamaForCausalLM'],'model_type':'llama'}",
			one_tensor, 1);
	assert_int_equal(adapter_choose(&fx->src, "nemotron_h", &fx->adapter, fx->err), 0);
	assert_string_equal(adapter_name(fx->adapter), "nemotron_h");
}

static void test_choose_unknown_name_lists_supported(void **state)
{
	struct fixture *fx = *state;

	scan_checkpoint(fx, "{'architectures':['NemotronHForCausalLM']}", one_tensor, 1);
	assert_int_equal(adapter_choose(&fx->src, "mixtral", &fx->adapter, fx->err), -EINVAL);
	assert_null(fx->adapter);
	assert_mentions(fx->err, "mixtral");
	assert_mentions(fx->err, "nemotron_h");
}

static void test_unknown_architecture_lists_supported(void **state)
{
	struct fixture *fx = *state;

	scan_checkpoint(fx, "{'architectures':['GPT2LMHeadModel'],'model_type':'gpt2'}",
			one_tensor, 1);
	assert_int_equal(adapter_choose(&fx->src, NULL, &fx->adapter, fx->err), -EINVAL);
	assert_null(fx->adapter);
	assert_mentions(fx->err, "GPT2LMHeadModel");
	assert_mentions(fx->err, "nemotron_h");
	assert_mentions(fx->err, "NemotronHForCausalLM");
}

static void test_no_config_json_is_an_error_mentioning_it(void **state)
{
	struct fixture *fx = *state;

	scan_checkpoint(fx, NULL, one_tensor, 1);
	assert_int_equal(adapter_choose(&fx->src, NULL, &fx->adapter, fx->err), -EINVAL);
	assert_null(fx->adapter);
	assert_mentions(fx->err, "config.json");
	assert_mentions(fx->err, fx->dir);
}

/* --- loading tables --------------------------------------------------------------- */

#define TABLE(rule) "{'name':'t','hf_to_native':[{'op':'drop','match':'^x$'}," rule "]}"

static void test_load_refuses_text_that_is_not_json(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING("{'name':'t','hf_to_native':[", "JSON");
}

static void test_load_refuses_table_without_name(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING("{'hf_to_native':[]}", "\"name\"");
}

/* Found by fuzzing: a bad second rule list after a good first one made the
 * loader report success with no table. */
static void test_load_refuses_a_bad_rule_list_after_a_good_one(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING("{'name':'x','hf_to_native':[{'op':'drop','match':'a'}],'native_to_hf':1}",
			      "native_to_hf", "array");
}

static void test_load_refuses_unknown_op(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING(TABLE("{'op':'frobnicate','match':'^y$'}"),
			      "hf_to_native rule 2", "frobnicate");
}

static void test_load_refuses_bad_regex_quoting_it(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING(TABLE("{'op':'rename','match':'^(unclosed[.]weight','to':'x'}"),
			      "hf_to_native rule 2", "^(unclosed[.]weight");
}

static void test_load_refuses_merge_without_named_groups(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING(TABLE("{'op':'merge_experts',"
				    "'match':'^(.*)layers[.]([0-9]+)[.]experts[.]([0-9]+)[.](up|down)$',"
				    "'gate_and_up':'g','down':'d'}"),
			      "hf_to_native rule 2", "named group");
}

static void test_load_refuses_rename_without_to(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING(TABLE("{'op':'rename','match':'^y$'}"), "hf_to_native rule 2", "\"to\"");
}

static void test_load_refuses_unknown_condition(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING(TABLE("{'op':'drop','match':'^y$','if':'sometimes'}"),
			      "hf_to_native rule 2", "\"if\"");
}

static void test_builtin_tables_all_load(void **state)
{
	(void)state;
	char err[SD_ERRLEN];
	bool nemotron = false;

	assert_true(adapter_builtin_count() >= 1);
	for (size_t i = 0; i < adapter_builtin_count(); i++) {
		struct adapter *a;
		if (adapter_builtin(i, &a, err) < 0)
			fail_msg("built-in table %zu: %s", i, err);
		nemotron |= !strcmp(adapter_name(a), "nemotron_h");
		adapter_free(a);
	}
	assert_true(nemotron);
}

/* A family added as data: Mixtral-style gated experts w1 (gate), w3 (up)
 * and w2 (down) become [E, H, 2I] with gate first, then up (§2.1). */
static void test_custom_gated_table_concatenates_gate_then_up(void **state)
{
	struct fixture *fx = *state;
	static const char table[] =
		"{'name':'mixtral_like','architectures':['MixtralForCausalLM'],"
		"'config':{'experts':'num_local_experts','dtype':'torch_dtype'},"
		"'hf_to_native':[{'op':'merge_experts','gated':true,"
		"'match':'^(?<prefix>.*)layers[.](?<layer>[0-9]+)[.]block_sparse_moe[.]experts[.]"
		"(?<expert>[0-9]+)[.](?<proj>w1|w2|w3)[.]weight$',"
		"'projections':{'gate':'w1','up':'w3','down':'w2'},"
		"'gate_and_up':'${prefix}layers.${layer}.block_sparse_moe.experts.gate_and_up_projs',"
		"'down':'${prefix}layers.${layer}.block_sparse_moe.experts.down_projs'}]}";
#define MX(e, w) "model.layers.0.block_sparse_moe.experts." #e "." w ".weight"
	static const struct test_tensor t[] = {
		{ MX(0, "w1"), "BF16", { 3, 4 } }, { MX(0, "w2"), "BF16", { 4, 3 } },
		{ MX(0, "w3"), "BF16", { 3, 4 } }, { MX(1, "w3"), "BF16", { 3, 4 } },
		{ MX(1, "w1"), "BF16", { 3, 4 } }, { MX(1, "w2"), "BF16", { 4, 3 } },
		{ "model.norm.weight", "BF16", { 4 } },
	};
	char *json = test_json_text(table);

	int rc = adapter_load(json, strlen(json), "mixtral_like.json", &fx->adapter, fx->err);
	free(json);
	if (rc < 0)
		fail_msg("adapter_load: %s", fx->err);
	assert_string_equal(adapter_name(fx->adapter), "mixtral_like");
	scan_checkpoint(fx, "{'architectures':['MixtralForCausalLM'],'num_local_experts':2,"
			"'torch_dtype':'bfloat16'}", t, NT(t));
	assert_int_equal(make_plan(fx, &every_expert, DIR_TO_NATIVE), 0);

	assert_int_equal(fx->plan.n, 3);
	const struct plan_tensor *gu =
		must_plan(fx, "model.layers.0.block_sparse_moe.experts.gate_and_up_projs");
	assert_string_equal(dtype_and_shape(gu), "BF16[2,4,6]");
	assert_string_equal(recipe_text(fx, gu),
			    "stack0(concat_last(" T_SRC(MX(0, "w1")) ", " T_SRC(MX(0, "w3")) "), "
			    "concat_last(" T_SRC(MX(1, "w1")) ", " T_SRC(MX(1, "w3")) "))");
	const struct plan_tensor *d = must_plan(fx, "model.layers.0.block_sparse_moe.experts.down_projs");
	assert_string_equal(dtype_and_shape(d), "BF16[2,3,4]");
	assert_string_equal(recipe_text(fx, d),
			    "stack0(" T_SRC(MX(0, "w2")) ", " T_SRC(MX(1, "w2")) ")");
	must_plan(fx, "model.norm.weight");
#undef MX
}

/* --- bounded patterns ------------------------------------------------------------- */

static void load_table(struct fixture *fx, const char *table)
{
	char *json = test_json_text(table);
	int rc = adapter_load(json, strlen(json), "my_table.json", &fx->adapter, fx->err);

	free(json);
	if (rc < 0)
		fail_msg("adapter_load: %s", fx->err);
}

/* A pattern that backtracks catastrophically on names it does not match
 * fails the plan, naming the table, the rule and the tensor, instead of
 * taking minutes and then counting as "no match". */
static void test_a_catastrophic_pattern_fails_the_plan_naming_table_rule_and_tensor(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-0", "F32", { 1 } },
		{ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-1", "F32", { 1 } },
	};

	load_table(fx, "{'name':'hostile','same_names':true,'hf_to_native':["
		       "{'op':'drop','match':'^y$'},{'op':'rename','match':'^(x+x+)+$','to':'y'}]}");
	scan_checkpoint(fx, "{}", t, NT(t));
	assert_int_equal(make_plan(fx, &every_expert, DIR_TO_NATIVE), -EINVAL);
	assert_mentions(fx->err, "my_table.json");
	assert_mentions(fx->err, "hf_to_native rule 2");
	assert_mentions(fx->err, "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-0'");
	assert_mentions(fx->err, "match limit");
}

/* The same for a detect pattern, which runs before any rule. */
static void test_a_catastrophic_detect_pattern_fails_naming_it(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-0", "F32", { 1 } },
	};
	int dir;

	load_table(fx, "{'name':'hostile','detect':{'hf':'^(x+x+)+$'},"
		       "'hf_to_native':[{'op':'drop','match':'^y$'}]}");
	scan_checkpoint(fx, "{}", t, NT(t));
	assert_int_equal(adapter_detect(fx->adapter, &fx->src, &dir, fx->err), -EINVAL);
	assert_mentions(fx->err, "my_table.json: \"detect\" \"hf\"");
	assert_mentions(fx->err, "match limit");
}

/* A pattern that is only long-winded, not runaway, still works on the
 * longest name a header may hold: the JIT's small stack runs out on this
 * one, and the interpreter finishes it within the limits. */
static void test_a_heavy_pattern_on_a_4000_byte_name_still_matches(void **state)
{
	struct fixture *fx = *state;
	char name[4096];
	struct test_tensor t[1] = { { name, "F32", { 1 } } };

	for (size_t i = 0; i < 3990; i += 2)
		memcpy(name + i, "a.", 2);
	strcpy(name + 3990, "weight");
	load_table(fx, "{'name':'heavy','same_names':true,'hf_to_native':["
		       "{'op':'rename','match':'^(?:(a)|(b)|[.])*weight$','to':'renamed'}]}");
	scan_checkpoint(fx, "{}", t, NT(t));
	if (make_plan(fx, &every_expert, DIR_TO_NATIVE) < 0)
		fail_msg("%s", fx->err);
	must_plan(fx, "renamed");
}

static void test_load_says_json_nested_too_deep_is_too_deep(void **state)
{
	char *table = test_nested_json("{'name':'t','x':", 1001, ",'hf_to_native':[]}");

	(void)state;
	LOAD_FAILS_MENTIONING(table, "nested deeper than 1000 levels", "not a syntax error");
	free(table);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, fixture_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_backbone_prefix_becomes_model),
		TEST(test_a_catastrophic_pattern_fails_the_plan_naming_table_rule_and_tensor),
		TEST(test_a_catastrophic_detect_pattern_fails_naming_it),
		TEST(test_a_heavy_pattern_on_a_4000_byte_name_still_matches),
		TEST(test_load_says_json_nested_too_deep_is_too_deep),
		TEST(test_norm_f_becomes_norm_under_backbone),
		TEST(test_embeddings_become_embed_tokens_under_backbone),
		TEST(test_peft_backbone_becomes_base_model_model_model),
		TEST(test_lm_head_is_unchanged),
		TEST(test_mamba_fp32_params_move_to_holder_and_become_f32),
		TEST(test_f32_mamba_param_moves_without_a_recipe),
		TEST(test_holder_keys_and_longer_tails_are_not_moved),
		TEST(test_key_under_a_holder_is_never_rerouted),
		TEST(test_integer_a_log_moves_but_is_not_cast),
		TEST(test_layers_at_or_above_num_hidden_layers_are_dropped),
		TEST(test_mtp_and_peft_layers_are_never_truncated),
		TEST(test_without_num_hidden_layers_nothing_is_truncated),
		TEST(test_zero_num_hidden_layers_truncates_nothing),
		TEST(test_experts_merge_into_grouped_tensors),
		TEST(test_gate_proj_of_non_gated_experts_is_ignored),
		TEST(test_scale_inv_keys_are_dropped_in_moe_models),
		TEST(test_expert_like_keys_outside_the_pattern_pass_through),
		TEST(test_experts_beyond_n_routed_experts_are_dropped),
		TEST(test_mtp_experts_merge_under_the_mtp_prefix),
		TEST(test_experts_are_cast_to_config_torch_dtype),
		TEST(test_an_absurd_expert_count_is_refused),
		TEST(test_dtype_option_overrides_torch_dtype_for_experts),
		TEST(test_experts_default_to_bfloat16_without_torch_dtype),
		TEST(test_expert_dtype_never_casts_other_tensors),
		TEST(test_dense_model_is_a_pure_rename),
		TEST(test_missing_experts_are_an_error_naming_layer_projection_and_experts),
		TEST(test_layer_without_expert_keys_is_not_checked),
		TEST(test_inconsistent_expert_shapes_are_an_error_naming_the_tensor),
		TEST(test_two_sources_renamed_to_one_name_are_an_error),
		TEST(test_two_sources_for_one_expert_are_an_error),
		TEST(test_ep_range_gives_the_remainder_to_the_first_ranks),
		TEST(test_ep_rank_without_experts_is_an_error),
		TEST(test_ep_rank_sees_only_its_experts),
		TEST(test_missing_experts_outside_the_rank_are_fine),
		TEST(test_choose_by_architecture),
		TEST(test_choose_by_model_type_without_architectures),
		TEST(test_choose_by_name_ignores_config),
		TEST(test_choose_unknown_name_lists_supported),
		TEST(test_unknown_architecture_lists_supported),
		TEST(test_no_config_json_is_an_error_mentioning_it),
		TEST(test_load_refuses_text_that_is_not_json),
		TEST(test_load_refuses_table_without_name),
		TEST(test_load_refuses_unknown_op),
		TEST(test_load_refuses_bad_regex_quoting_it),
		TEST(test_load_refuses_merge_without_named_groups),
		TEST(test_load_refuses_rename_without_to),
		TEST(test_load_refuses_unknown_condition),
		TEST(test_load_refuses_a_bad_rule_list_after_a_good_one),
		TEST(test_builtin_tables_all_load),
		TEST(test_custom_gated_table_concatenates_gate_then_up),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
