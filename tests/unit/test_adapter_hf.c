/*
 * test_adapter_hf.c — the adapter tables beyond Nemotron-H's HF→native
 * merge: the native→HF direction (§2.3, §3.1, §3.3, §3.4), which layout a
 * checkpoint is in, Step3p5's grouped experts both ways (§4), NemotronOmni's
 * renames and its route into Nemotron-H (§5), the example tables of
 * examples/adapters/ (Mixtral, Qwen3-MoE), and the loader's messages for the
 * rule kinds those tables use.
 *
 * Each test builds a real checkpoint under /tmp (config.json and one
 * model.safetensors, written by testlib), scans it, picks the adapter the way
 * a mount does (config.json, or -o adapter_file=), asks adapter_detect which
 * layout it is in, plans that direction and asserts on the plan: the names,
 * dtypes and shapes, and the recipe that makes each tensor written out as
 * text ("(source bytes)" when there is none).  JSON in the fixtures is written
 * with ' for ".  The example tables are read from examples/adapters/ relative
 * to the current directory, which is the repository root under make.
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
	return fixture_setup(state, "adapter-hf");
}

static const struct view_opts hf_view = { .view = VIEW_HF, .dtype = SD_DTYPE_INVALID };
static const struct view_opts native_view = { .view = VIEW_NATIVE, .dtype = SD_DTYPE_INVALID };

/* The adapter must find the checkpoint in the layout of direction want. */
static void assert_detected(struct fixture *fx, int want)
{
	int dir = -1;

	if (adapter_detect(fx->adapter, &fx->src, &dir, fx->err) < 0)
		fail_msg("adapter_detect: %s", fx->err);
	assert_int_equal(dir, want);
}

/* What a mount does: scan, choose the adapter from config.json, detect the
 * layout (it must be the one of direction dir), plan. */
static int plan_checkpoint(struct fixture *fx, const char *config,
			   const struct test_tensor *t, size_t n, const char *adapter,
			   int dir, const struct view_opts *o)
{
	scan_and_choose(fx, config, t, n, adapter);
	assert_detected(fx, dir);
	return make_plan(fx, o, dir);
}

/* The same with the table of an -o adapter_file=. */
static int plan_with_table(struct fixture *fx, const char *path, const char *config,
			   const struct test_tensor *t, size_t n, int dir,
			   const struct view_opts *o)
{
	scan_checkpoint(fx, config, t, n);
	if (adapter_load_file(path, &fx->adapter, fx->err) < 0)
		fail_msg("adapter_load_file: %s (the tests run from the repository root)",
			 fx->err);
	assert_detected(fx, dir);
	return make_plan(fx, o, dir);
}

static void assert_ok(const struct fixture *fx, int rc)
{
	if (rc < 0)
		fail_msg("adapter_plan failed (%d): %s", rc, fx->err);
}

/* Which layout the adapter finds the checkpoint in. */
static int detect_checkpoint(struct fixture *fx, const char *config,
			     const struct test_tensor *t, size_t n, const char *adapter,
			     int *dir)
{
	scan_and_choose(fx, config, t, n, adapter);
	fx->err[0] = '\0';
	return adapter_detect(fx->adapter, &fx->src, dir, fx->err);
}

#define SOURCE_BYTES NULL

/* The plan holds name as dtype_shape ("BF16[3,6]"), made by recipe (text as
 * recipe_format writes it), or the source's bytes unchanged (SOURCE_BYTES). */
static void assert_planned(const struct fixture *fx, const char *name,
			   const char *dtype_shape, const char *recipe)
{
	const struct plan_tensor *t = must_plan(fx, name);
	const char *want = recipe ? recipe : "(source bytes)";

	if (strcmp(dtype_and_shape(t), dtype_shape))
		fail_msg("'%s' is %s; expected %s", name, dtype_and_shape(t), dtype_shape);
	if (strcmp(recipe_text(fx, t), want))
		fail_msg("'%s' is made by %s; expected %s", name, recipe_text(fx, t), want);
}

/* --- Nemotron-H fixtures ------------------------------------------------- */

/* E = 4 experts, I = 3 (moe_intermediate_size), H = 6. */
#define NEMOTRON(fields) \
	"{'architectures':['NemotronHForCausalLM'],'model_type':'nemotron_h'," \
	"'num_hidden_layers':2,'moe_intermediate_size':3,'torch_dtype':'bfloat16'" fields "}"
#define NEMOTRON_MOE NEMOTRON(",'n_routed_experts':4")

#define NATIVE_GU(L) "model.layers." #L ".mixer.experts.gate_and_up_projs"
#define NATIVE_DOWN(L) "model.layers." #L ".mixer.experts.down_projs"

/* --- adapter_detect ------------------------------------------------------ */

static void test_nemotron_hf_checkpoint_is_detected_as_hf(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "lm_head.weight", "BF16", { 16, 6 } },
		{ "backbone.layers.0.mixer.in_proj.weight", "BF16", { 10, 6 } },
	};
	int dir = -1;

	assert_int_equal(detect_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", &dir), 0);
	assert_int_equal(dir, DIR_TO_NATIVE);
}

static void test_nemotron_native_checkpoint_is_detected_as_native(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "lm_head.weight", "BF16", { 16, 6 } },
		{ "model.layers.0.mixer._fp32_params.A_log", "F32", { 4 } },
		{ NATIVE_GU(1), "BF16", { 4, 6, 3 } },
	};
	int dir = -1;

	assert_int_equal(detect_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", &dir), 0);
	assert_int_equal(dir, DIR_TO_HF);
}

static void test_nemotron_checkpoint_mixing_layouts_is_an_error_naming_one_key_of_each(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "backbone.layers.0.norm.weight", "BF16", { 6 } },
		{ "model.layers.0.mixer._fp32_params.A_log", "F32", { 4 } },
	};
	int dir = -1;

	assert_int_equal(detect_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", &dir), -EINVAL);
	assert_mentions(fx->err, "'backbone.layers.0.norm.weight'");
	assert_mentions(fx->err, "'model.layers.0.mixer._fp32_params.A_log'");
}

static void test_nemotron_checkpoint_of_neither_layout_is_an_error(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "transformer.h.0.attn.c_attn.weight", "BF16", { 18, 6 } },
	};
	int dir = -1;

	assert_int_equal(detect_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", &dir), -EINVAL);
	assert_mentions(fx->err, "nemotron_h");
	assert_mentions(fx->err, "transformer.h.0.attn.c_attn.weight");
}

#define STEP3P5(fields) \
	"{'architectures':['Step3p5ForCausalLM'],'model_type':'step3p5'," \
	"'moe_num_experts':4,'moe_intermediate_size':3,'torch_dtype':'bfloat16'" fields "}"
#define STEP3P5_BF16 STEP3P5("")

static void test_step3p5_hf_checkpoint_is_detected_as_hf(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.embed_tokens.weight", "BF16", { 16, 6 } },
		{ "model.layers.1.moe.gate_proj.weight", "BF16", { 4, 3, 6 } },
	};
	int dir = -1;

	assert_int_equal(detect_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", &dir), 0);
	assert_int_equal(dir, DIR_TO_NATIVE);
}

static void test_step3p5_native_checkpoint_is_detected_as_native(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.embed_tokens.weight", "BF16", { 16, 6 } },
		{ "model.layers.1.moe.experts.gate_and_up_projs", "BF16", { 4, 6, 6 } },
	};
	int dir = -1;

	assert_int_equal(detect_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", &dir), 0);
	assert_int_equal(dir, DIR_TO_HF);
}

static void test_step3p5_checkpoint_mixing_layouts_is_an_error_naming_one_key_of_each(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.layers.1.moe.router_bias", "F32", { 4 } },
		{ "model.layers.2.moe.experts.down_projs", "BF16", { 4, 3, 6 } },
	};
	int dir = -1;

	assert_int_equal(detect_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", &dir), -EINVAL);
	assert_mentions(fx->err, "'model.layers.1.moe.router_bias'");
	assert_mentions(fx->err, "'model.layers.2.moe.experts.down_projs'");
}

static void test_step3p5_checkpoint_of_neither_layout_is_an_error(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.embed_tokens.weight", "BF16", { 16, 6 } },
	};
	int dir = -1;

	assert_int_equal(detect_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", &dir), -EINVAL);
	assert_mentions(fx->err, "step3p5");
	assert_mentions(fx->err, "model.embed_tokens.weight");
}

/* The language model's parameters live under llm_config (§5, §9); the
 * top-level decoys must not be read for it. */
#define OMNI_LLM_CONFIG \
	"'llm_config':{'n_routed_experts':4,'moe_intermediate_size':3," \
	"'num_hidden_layers':2,'torch_dtype':'bfloat16'}"
#define OMNI(fields) \
	"{'architectures':['NemotronH_Nano_Omni_Reasoning_V3']," \
	"'model_type':'NemotronH_Nano_Omni_Reasoning_V3'" fields "}"
#define OMNI_MOE OMNI(",'n_routed_experts':2,'num_hidden_layers':9," OMNI_LLM_CONFIG)

static void test_omni_hf_checkpoint_is_detected_as_hf(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "vision_model.radio_model.patch_generator.embedder.weight", "BF16", { 6, 12 } },
		{ "language_model.backbone.layers.0.norm.weight", "BF16", { 6 } },
	};
	int dir = -1;

	assert_int_equal(detect_checkpoint(fx, OMNI_MOE, t, NT(t), "nemotron_omni", &dir), 0);
	assert_int_equal(dir, DIR_TO_NATIVE);
}

static void test_omni_native_checkpoint_is_detected_as_native(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "vision_model.radio_model.patch_generator.embedder.weight", "BF16", { 6, 12 } },
		{ "vision_projector.linear1.weight", "BF16", { 6, 6 } },
	};
	int dir = -1;

	assert_int_equal(detect_checkpoint(fx, OMNI_MOE, t, NT(t), "nemotron_omni", &dir), 0);
	assert_int_equal(dir, DIR_TO_HF);
}

static void test_omni_checkpoint_mixing_layouts_is_an_error_naming_one_key_of_each(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "mlp1.1.weight", "BF16", { 6, 6 } },
		{ "language_model.model.norm.weight", "BF16", { 6 } },
	};
	int dir = -1;

	assert_int_equal(detect_checkpoint(fx, OMNI_MOE, t, NT(t), "nemotron_omni", &dir), -EINVAL);
	assert_mentions(fx->err, "'mlp1.1.weight'");
	assert_mentions(fx->err, "'language_model.model.norm.weight'");
}

static void test_omni_checkpoint_of_neither_layout_is_an_error(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "vision_model.radio_model.patch_generator.embedder.weight", "BF16", { 6, 12 } },
	};
	int dir = -1;

	assert_int_equal(detect_checkpoint(fx, OMNI_MOE, t, NT(t), "nemotron_omni", &dir), -EINVAL);
	assert_mentions(fx->err, "nemotron_omni");
	assert_mentions(fx->err, "vision_model.radio_model.patch_generator.embedder.weight");
}

/* --- Nemotron-H native → HF: §3.1 renames --------------------------------- */

static void test_native_model_prefix_becomes_backbone(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.layers.0.mixer.in_proj.weight", "BF16", { 10, 6 } },
		{ "model.layers.1.mixer.q_proj.weight", "F32", { 6, 6 } },
		{ NATIVE_GU(1), "BF16", { 4, 6, 3 } },
	};

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF, &hf_view));
	assert_planned(fx, "backbone.layers.0.mixer.in_proj.weight", "BF16[10,6]", SOURCE_BYTES);
	assert_planned(fx, "backbone.layers.1.mixer.q_proj.weight", "F32[6,6]", SOURCE_BYTES);
	assert_null(planned(fx, "model.layers.0.mixer.in_proj.weight"));
	assert_string_equal(fx->plan.direction, "native->hf");
}

static void test_native_norm_becomes_norm_f(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.norm.weight", "BF16", { 6 } },
		{ "model.layers.0.norm.weight", "BF16", { 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 2);
	assert_planned(fx, "backbone.norm_f.weight", "BF16[6]", SOURCE_BYTES);
	/* Only the final norm is renamed; a layer's norm keeps its name. */
	assert_planned(fx, "backbone.layers.0.norm.weight", "BF16[6]", SOURCE_BYTES);
}

static void test_native_embed_tokens_becomes_embeddings(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.embed_tokens.weight", "BF16", { 16, 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 1);
	assert_planned(fx, "backbone.embeddings.weight", "BF16[16,6]", SOURCE_BYTES);
}

static void test_native_lm_head_is_unchanged(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "lm_head.weight", "BF16", { 16, 6 } },
		{ "model.norm.weight", "BF16", { 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 2);
	assert_planned(fx, "lm_head.weight", "BF16[16,6]", SOURCE_BYTES);
}

static void test_native_keys_outside_model_prefix_are_unchanged(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "base_model.model.model.layers.0.mixer.in_proj.lora_A.weight", "F32", { 2, 6 } },
		{ "model.norm.weight", "BF16", { 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF, &hf_view));
	assert_planned(fx, "base_model.model.model.layers.0.mixer.in_proj.lora_A.weight",
		       "F32[2,6]", SOURCE_BYTES);
}

static void test_native_fp32_holder_is_hidden_and_bf16_params_become_f32(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.layers.0.mixer._fp32_params.A_log", "BF16", { 4 } },
		{ "model.layers.0.mixer._fp32_params.dt_bias", "BF16", { 4 } },
		{ "model.layers.0.mixer._fp32_params.D", "F16", { 4 } },
	};

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 3);
	assert_planned(fx, "backbone.layers.0.mixer.A_log", "F32[4]",
		       "cast(" SRC("model.layers.0.mixer._fp32_params.A_log") ", F32)");
	assert_planned(fx, "backbone.layers.0.mixer.dt_bias", "F32[4]",
		       "cast(" SRC("model.layers.0.mixer._fp32_params.dt_bias") ", F32)");
	assert_planned(fx, "backbone.layers.0.mixer.D", "F32[4]",
		       "cast(" SRC("model.layers.0.mixer._fp32_params.D") ", F32)");
	assert_null(planned(fx, "backbone.layers.0.mixer._fp32_params.A_log"));
}

static void test_native_f32_holder_param_needs_no_recipe(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.layers.1.mixer._fp32_params.D", "F32", { 4 } },
		{ "mtp.layers.0.mixer._fp32_params.A_log", "F32", { 4 } },
	};

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF, &hf_view));
	assert_planned(fx, "backbone.layers.1.mixer.D", "F32[4]", SOURCE_BYTES);
	assert_planned(fx, "mtp.layers.0.mixer.A_log", "F32[4]", SOURCE_BYTES);
}

/* --- Nemotron-H native → HF: §2.3 / §3.3 expert split ------------------------ */

static void test_native_grouped_up_splits_into_per_expert_up_proj(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ NATIVE_GU(1), "BF16", { 4, 6, 3 } },
	};
	char name[128], recipe[256];

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 4);
	for (int e = 0; e < 4; e++) {
		snprintf(name, sizeof(name), "backbone.layers.1.mixer.experts.%d.up_proj.weight", e);
		snprintf(recipe, sizeof(recipe), "transpose_last2(index0(%s, %d))",
			 SRC(NATIVE_GU(1)), e);
		assert_planned(fx, name, "BF16[3,6]", recipe);
	}
	/* Nemotron's experts are not gated (relu2): no gate_proj is made up. */
	assert_null(planned(fx, "backbone.layers.1.mixer.experts.0.gate_proj.weight"));
	assert_null(planned(fx, "backbone.layers.1.mixer.experts.gate_and_up_projs"));
}

static void test_native_grouped_down_splits_into_per_expert_down_proj(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ NATIVE_DOWN(0), "BF16", { 4, 3, 6 } },
	};
	char name[128], recipe[256];

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 4);
	for (int e = 0; e < 4; e++) {
		snprintf(name, sizeof(name), "backbone.layers.0.mixer.experts.%d.down_proj.weight", e);
		snprintf(recipe, sizeof(recipe), "transpose_last2(index0(%s, %d))",
			 SRC(NATIVE_DOWN(0)), e);
		assert_planned(fx, name, "BF16[6,3]", recipe);
	}
	assert_null(planned(fx, "backbone.layers.0.mixer.experts.down_projs"));
}

/* §2.3: down_projs is split only when shape[1] == I; otherwise it passes
 * through under its native name, which still meets the model. → backbone.
 * rename (§3.3: every result goes through _native_key_to_hf). */
static void test_native_down_projs_of_another_inner_size_pass_through_renamed(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ NATIVE_DOWN(0), "BF16", { 4, 5, 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 1);
	assert_planned(fx, "backbone.layers.0.mixer.experts.down_projs", "BF16[4,5,6]", SOURCE_BYTES);
	assert_null(planned(fx, "backbone.layers.0.mixer.experts.0.down_proj.weight"));
}

static void test_native_grouped_tensor_without_e_experts_is_an_error_naming_it(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ NATIVE_GU(1), "BF16", { 5, 6, 3 } },
	};

	assert_int_equal(plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF,
					 &hf_view), -EINVAL);
	assert_mentions(fx->err, "'" NATIVE_GU(1) "'");
	assert_int_equal(fx->plan.n, 0);
}

/* §3.3: MTP experts split with prefix_override "mtp.", not backbone.; the
 * other MTP keys pass through 1:1. */
static void test_native_mtp_experts_split_under_the_mtp_prefix(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "mtp.layers.1.mixer.experts.gate_and_up_projs", "BF16", { 4, 6, 3 } },
		{ "mtp.layers.1.mixer.experts.down_projs", "BF16", { 4, 3, 6 } },
		{ "mtp.layers.0.enorm.weight", "BF16", { 6 } },
	};
	char name[128], recipe[256];

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 9);
	for (int e = 0; e < 4; e++) {
		snprintf(name, sizeof(name), "mtp.layers.1.mixer.experts.%d.up_proj.weight", e);
		snprintf(recipe, sizeof(recipe), "transpose_last2(index0(%s, %d))",
			 SRC("mtp.layers.1.mixer.experts.gate_and_up_projs"), e);
		assert_planned(fx, name, "BF16[3,6]", recipe);
		snprintf(name, sizeof(name), "mtp.layers.1.mixer.experts.%d.down_proj.weight", e);
		snprintf(recipe, sizeof(recipe), "transpose_last2(index0(%s, %d))",
			 SRC("mtp.layers.1.mixer.experts.down_projs"), e);
		assert_planned(fx, name, "BF16[6,3]", recipe);
	}
	assert_null(planned(fx, "backbone.layers.1.mixer.experts.0.up_proj.weight"));
	assert_planned(fx, "mtp.layers.0.enorm.weight", "BF16[6]", SOURCE_BYTES);
}

/* §3.4: the router's correction bias is stored as F32 in HF files. */
static void test_native_e_score_correction_bias_becomes_f32(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.layers.1.mixer.gate.e_score_correction_bias", "BF16", { 4 } },
		{ "model.layers.3.mixer.gate.e_score_correction_bias", "F32", { 4 } },
		{ "model.layers.1.mixer.gate.weight", "BF16", { 4, 6 } },
		{ "model.norm.weight", "BF16", { 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF, &hf_view));
	assert_planned(fx, "backbone.layers.1.mixer.gate.e_score_correction_bias", "F32[4]",
		       "cast(" SRC("model.layers.1.mixer.gate.e_score_correction_bias") ", F32)");
	assert_planned(fx, "backbone.layers.3.mixer.gate.e_score_correction_bias", "F32[4]",
		       SOURCE_BYTES);
	assert_planned(fx, "backbone.layers.1.mixer.gate.weight", "BF16[4,6]", SOURCE_BYTES);
}

/* §6: TE's _extra_state is never written to an HF checkpoint. */
static void test_native_extra_state_is_dropped(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.layers.0.mixer.in_proj._extra_state", "U8", { 8 } },
		{ "model.layers.0.mixer.experts._extra_state", "U8", { 8 } },
		{ "model.layers.0.mixer.in_proj.weight", "BF16", { 10, 6 } },
		{ "model.norm.weight", "BF16", { 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 2);
	must_plan(fx, "backbone.layers.0.mixer.in_proj.weight");
	must_plan(fx, "backbone.norm_f.weight");
}

/* §2.4: E = 8 over 3 ranks is [0,3), [3,6), [6,8); the rank's experts keep
 * their global ids. */
static void test_native_ep_rank_sees_only_its_experts_with_global_ids(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ NATIVE_GU(0), "BF16", { 8, 6, 3 } },
		{ NATIVE_DOWN(0), "BF16", { 8, 3, 6 } },
	};
	const struct view_opts rank1_of_3 = {
		.view = VIEW_HF, .dtype = SD_DTYPE_INVALID, .ep_rank = 1, .ep_size = 3,
	};
	char name[128], recipe[256];

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON(",'n_routed_experts':8"), t, NT(t),
				      "nemotron_h", DIR_TO_HF, &rank1_of_3));
	assert_int_equal(fx->plan.n, 6);
	assert_int_equal(fx->plan.ep_start, 3);
	assert_int_equal(fx->plan.ep_end, 6);
	for (int e = 3; e < 6; e++) {
		snprintf(name, sizeof(name), "backbone.layers.0.mixer.experts.%d.up_proj.weight", e);
		snprintf(recipe, sizeof(recipe), "transpose_last2(index0(%s, %d))",
			 SRC(NATIVE_GU(0)), e);
		assert_planned(fx, name, "BF16[3,6]", recipe);
		snprintf(name, sizeof(name), "backbone.layers.0.mixer.experts.%d.down_proj.weight", e);
		must_plan(fx, name);
	}
	assert_null(planned(fx, "backbone.layers.0.mixer.experts.0.up_proj.weight"));
	assert_null(planned(fx, "backbone.layers.0.mixer.experts.2.up_proj.weight"));
	assert_null(planned(fx, "backbone.layers.0.mixer.experts.6.up_proj.weight"));
	assert_null(planned(fx, "backbone.layers.0.mixer.experts.7.down_proj.weight"));
}

/* --- Nemotron-H native → HF: dtype of the view (§3.4, §11.10) ---------------- */

/* Without -o dtype= the HF view keeps every tensor's saved dtype (even F32
 * with torch_dtype bfloat16) and casts only what HF stores as F32. */
static void test_hf_view_without_dtype_casts_only_the_forced_f32_tensors(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.layers.0.mixer.in_proj.weight", "F32", { 10, 6 } },
		{ "model.layers.0.mixer._fp32_params.A_log", "BF16", { 4 } },
		{ "model.layers.1.mixer.gate.e_score_correction_bias", "BF16", { 4 } },
		{ NATIVE_GU(1), "F32", { 4, 6, 3 } },
		{ "lm_head.weight", "F32", { 16, 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF, &hf_view));
	assert_planned(fx, "backbone.layers.0.mixer.in_proj.weight", "F32[10,6]", SOURCE_BYTES);
	assert_planned(fx, "lm_head.weight", "F32[16,6]", SOURCE_BYTES);
	assert_planned(fx, "backbone.layers.1.mixer.experts.0.up_proj.weight", "F32[3,6]",
		       "transpose_last2(index0(" SRC(NATIVE_GU(1)) ", 0))");
	assert_planned(fx, "backbone.layers.0.mixer.A_log", "F32[4]",
		       "cast(" SRC("model.layers.0.mixer._fp32_params.A_log") ", F32)");
	assert_planned(fx, "backbone.layers.1.mixer.gate.e_score_correction_bias", "F32[4]",
		       "cast(" SRC("model.layers.1.mixer.gate.e_score_correction_bias") ", F32)");
}

static void test_hf_view_dtype_casts_floating_tensors_except_forced_f32(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.layers.0.mixer.in_proj.weight", "F32", { 10, 6 } },
		{ "model.layers.0.mixer._fp32_params.A_log", "F32", { 4 } },
		{ "model.layers.0.mixer._fp32_params.dt_bias", "F32", { 4 } },
		{ "model.layers.0.mixer._fp32_params.D", "F32", { 4 } },
		{ "model.layers.1.mixer.gate.e_score_correction_bias", "F32", { 4 } },
		{ NATIVE_GU(1), "F32", { 4, 6, 3 } },
		{ "lm_head.weight", "F32", { 16, 6 } },
	};
	const struct view_opts bf16 = { .view = VIEW_HF, .dtype = SD_BF16 };

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF, &bf16));
	assert_planned(fx, "backbone.layers.0.mixer.in_proj.weight", "BF16[10,6]",
		       "cast(" SRC("model.layers.0.mixer.in_proj.weight") ", BF16)");
	assert_planned(fx, "lm_head.weight", "BF16[16,6]", "cast(" SRC("lm_head.weight") ", BF16)");
	assert_planned(fx, "backbone.layers.1.mixer.experts.2.up_proj.weight", "BF16[3,6]",
		       "cast(transpose_last2(index0(" SRC(NATIVE_GU(1)) ", 2)), BF16)");
	assert_planned(fx, "backbone.layers.0.mixer.A_log", "F32[4]", SOURCE_BYTES);
	assert_planned(fx, "backbone.layers.0.mixer.dt_bias", "F32[4]", SOURCE_BYTES);
	assert_planned(fx, "backbone.layers.0.mixer.D", "F32[4]", SOURCE_BYTES);
	assert_planned(fx, "backbone.layers.1.mixer.gate.e_score_correction_bias", "F32[4]",
		       SOURCE_BYTES);
}

static void test_hf_view_dtype_leaves_integer_tensors_alone(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.layers.0.mixer.experts.tokens_per_expert", "I64", { 4 } },
		{ "model.layers.0.mixer.valid_mask", "U8", { 4 } },
		{ "model.norm.weight", "F32", { 6 } },
	};
	const struct view_opts bf16 = { .view = VIEW_HF, .dtype = SD_BF16 };

	assert_ok(fx, plan_checkpoint(fx, NEMOTRON_MOE, t, NT(t), "nemotron_h", DIR_TO_HF, &bf16));
	assert_planned(fx, "backbone.layers.0.mixer.experts.tokens_per_expert", "I64[4]", SOURCE_BYTES);
	assert_planned(fx, "backbone.layers.0.mixer.valid_mask", "U8[4]", SOURCE_BYTES);
	assert_planned(fx, "backbone.norm_f.weight", "BF16[6]",
		       "cast(" SRC("model.norm.weight") ", BF16)");
}

/* --- Step3p5 HF → native (§4) ------------------------------------------------ */

#define S_GATE(L) "model.layers." #L ".moe.gate_proj.weight"
#define S_UP(L) "model.layers." #L ".moe.up_proj.weight"
#define S_DOWN(L) "model.layers." #L ".moe.down_proj.weight"
#define S_GU(L) "model.layers." #L ".moe.experts.gate_and_up_projs"
#define S_DOWNS(L) "model.layers." #L ".moe.experts.down_projs"

static void test_step3p5_gate_and_up_join_into_transposed_gate_and_up_projs(void **state)
{
	struct fixture *fx = *state;
	/* up stored first: gate still comes first on the last dim. */
	static const struct test_tensor t[] = {
		{ S_UP(1), "BF16", { 4, 3, 6 } },
		{ S_GATE(1), "BF16", { 4, 3, 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", DIR_TO_NATIVE,
				      &native_view));
	assert_int_equal(fx->plan.n, 1);
	assert_planned(fx, S_GU(1), "BF16[4,6,6]",
		       "concat_last(" T_SRC(S_GATE(1)) ", " T_SRC(S_UP(1)) ")");
	assert_null(planned(fx, S_GATE(1)));
	assert_null(planned(fx, S_UP(1)));
}

static void test_step3p5_down_proj_becomes_transposed_down_projs(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ S_DOWN(1), "BF16", { 4, 6, 3 } },
	};

	assert_ok(fx, plan_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", DIR_TO_NATIVE,
				      &native_view));
	assert_int_equal(fx->plan.n, 1);
	assert_planned(fx, S_DOWNS(1), "BF16[4,3,6]", T_SRC(S_DOWN(1)));
}

static void test_step3p5_grouped_experts_are_cast_to_torch_dtype(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ S_GATE(1), "F32", { 4, 3, 6 } },
		{ S_UP(1), "F32", { 4, 3, 6 } },
		{ S_DOWN(1), "F32", { 4, 6, 3 } },
		{ "model.layers.1.moe.gate.weight", "F32", { 4, 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", DIR_TO_NATIVE,
				      &native_view));
	assert_planned(fx, S_GU(1), "BF16[4,6,6]",
		       "cast(concat_last(" T_SRC(S_GATE(1)) ", " T_SRC(S_UP(1)) "), BF16)");
	assert_planned(fx, S_DOWNS(1), "BF16[4,3,6]", "cast(" T_SRC(S_DOWN(1)) ", BF16)");
	/* Nothing but the grouped experts is cast. */
	assert_planned(fx, "model.layers.1.moe.gate.weight", "F32[4,6]", SOURCE_BYTES);
}

static void test_step3p5_router_bias_becomes_e_score_correction_bias_without_cast(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.layers.1.moe.router_bias", "F32", { 4 } },
		{ "model.layers.2.moe.router_bias", "BF16", { 4 } },
	};

	assert_ok(fx, plan_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", DIR_TO_NATIVE,
				      &native_view));
	assert_int_equal(fx->plan.n, 2);
	assert_planned(fx, "model.layers.1.moe.gate.e_score_correction_bias", "F32[4]", SOURCE_BYTES);
	assert_planned(fx, "model.layers.2.moe.gate.e_score_correction_bias", "BF16[4]", SOURCE_BYTES);
	assert_null(planned(fx, "model.layers.1.moe.router_bias"));
}

static void test_step3p5_other_keys_pass_through(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ S_GATE(1), "BF16", { 4, 3, 6 } },
		{ S_UP(1), "BF16", { 4, 3, 6 } },
		{ "model.layers.1.moe.gate.weight", "BF16", { 4, 6 } },
		{ "model.layers.1.share_expert.up_proj.weight", "BF16", { 3, 6 } },
		{ "model.layers.0.mlp.down_proj.weight", "BF16", { 6, 3 } },
		{ "model.embed_tokens.weight", "BF16", { 16, 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", DIR_TO_NATIVE,
				      &native_view));
	assert_int_equal(fx->plan.n, 5);
	assert_planned(fx, "model.layers.1.moe.gate.weight", "BF16[4,6]", SOURCE_BYTES);
	assert_planned(fx, "model.layers.1.share_expert.up_proj.weight", "BF16[3,6]", SOURCE_BYTES);
	assert_planned(fx, "model.layers.0.mlp.down_proj.weight", "BF16[6,3]", SOURCE_BYTES);
	assert_planned(fx, "model.embed_tokens.weight", "BF16[16,6]", SOURCE_BYTES);
}

static void test_step3p5_unprefixed_layer_keys_convert_too(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "layers.0.moe.gate_proj.weight", "BF16", { 4, 3, 6 } },
		{ "layers.0.moe.up_proj.weight", "BF16", { 4, 3, 6 } },
		{ "layers.0.moe.down_proj.weight", "BF16", { 4, 6, 3 } },
		{ "layers.0.moe.router_bias", "F32", { 4 } },
	};

	assert_ok(fx, plan_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", DIR_TO_NATIVE,
				      &native_view));
	assert_int_equal(fx->plan.n, 3);
	assert_planned(fx, "layers.0.moe.experts.gate_and_up_projs", "BF16[4,6,6]",
		       "concat_last(" T_SRC("layers.0.moe.gate_proj.weight") ", "
		       T_SRC("layers.0.moe.up_proj.weight") ")");
	assert_planned(fx, "layers.0.moe.experts.down_projs", "BF16[4,3,6]",
		       T_SRC("layers.0.moe.down_proj.weight"));
	assert_planned(fx, "layers.0.moe.gate.e_score_correction_bias", "F32[4]", SOURCE_BYTES);
}

static void test_step3p5_lone_gate_proj_emits_nothing(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ S_GATE(1), "BF16", { 4, 3, 6 } },
		{ S_UP(2), "BF16", { 4, 3, 6 } },
		{ "model.embed_tokens.weight", "BF16", { 16, 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", DIR_TO_NATIVE,
				      &native_view));
	assert_int_equal(fx->plan.n, 1);
	must_plan(fx, "model.embed_tokens.weight");
	assert_null(planned(fx, S_GU(1)));
	assert_null(planned(fx, S_GU(2)));
	assert_null(planned(fx, S_GATE(1)));
}

/* §4 EP: slice the rank's experts on dim 0 before transposing. */
static void test_step3p5_ep_rank_slices_experts_before_transposing(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ S_GATE(1), "BF16", { 4, 3, 6 } },
		{ S_UP(1), "BF16", { 4, 3, 6 } },
		{ S_DOWN(1), "BF16", { 4, 6, 3 } },
	};
	const struct view_opts rank1_of_2 = {
		.view = VIEW_NATIVE, .dtype = SD_DTYPE_INVALID, .ep_rank = 1, .ep_size = 2,
	};

	assert_ok(fx, plan_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", DIR_TO_NATIVE,
				      &rank1_of_2));
	assert_int_equal(fx->plan.ep_start, 2);
	assert_int_equal(fx->plan.ep_end, 4);
	assert_planned(fx, S_GU(1), "BF16[2,6,6]",
		       "concat_last(transpose_last2(slice0(" SRC(S_GATE(1)) ", 2, 4)), "
		       "transpose_last2(slice0(" SRC(S_UP(1)) ", 2, 4)))");
	assert_planned(fx, S_DOWNS(1), "BF16[2,3,6]",
		       "transpose_last2(slice0(" SRC(S_DOWN(1)) ", 2, 4))");
}

/* --- Step3p5 native → HF (§4) ------------------------------------------------ */

static void test_step3p5_native_gate_and_up_projs_split_into_gate_and_up_proj(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ S_GU(1), "BF16", { 4, 6, 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 2);
	assert_planned(fx, S_GATE(1), "BF16[4,3,6]",
		       "transpose_last2(slice_last(" SRC(S_GU(1)) ", 0, 3))");
	assert_planned(fx, S_UP(1), "BF16[4,3,6]",
		       "transpose_last2(slice_last(" SRC(S_GU(1)) ", 3, 6))");
}

/* The cut is at moe_intermediate_size, not at half the last dim. */
static void test_step3p5_native_split_cuts_at_moe_intermediate_size_not_half(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ S_GU(1), "BF16", { 4, 6, 8 } },
	};

	assert_ok(fx, plan_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", DIR_TO_HF, &hf_view));
	assert_planned(fx, S_GATE(1), "BF16[4,3,6]",
		       "transpose_last2(slice_last(" SRC(S_GU(1)) ", 0, 3))");
	assert_planned(fx, S_UP(1), "BF16[4,5,6]",
		       "transpose_last2(slice_last(" SRC(S_GU(1)) ", 3, 8))");
}

static void test_step3p5_native_down_projs_become_transposed_down_proj(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ S_DOWNS(1), "BF16", { 4, 3, 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 1);
	assert_planned(fx, S_DOWN(1), "BF16[4,6,3]", T_SRC(S_DOWNS(1)));
}

static void test_step3p5_native_e_score_correction_bias_becomes_router_bias(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.layers.1.moe.gate.e_score_correction_bias", "F32", { 4 } },
	};

	assert_ok(fx, plan_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 1);
	assert_planned(fx, "model.layers.1.moe.router_bias", "F32[4]", SOURCE_BYTES);
}

/* §11.6: the legacy gate.bias is written out as router_bias too. */
static void test_step3p5_native_legacy_gate_bias_becomes_router_bias(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "model.layers.2.moe.gate.bias", "F32", { 4 } },
		{ S_DOWNS(2), "BF16", { 4, 3, 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", DIR_TO_HF, &hf_view));
	assert_planned(fx, "model.layers.2.moe.router_bias", "F32[4]", SOURCE_BYTES);
	assert_null(planned(fx, "model.layers.2.moe.gate.bias"));
}

static void test_step3p5_native_key_without_layer_number_is_unchanged(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "prefix.moe.gate.e_score_correction_bias", "F32", { 4 } },
	};

	assert_ok(fx, plan_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 1);
	assert_planned(fx, "prefix.moe.gate.e_score_correction_bias", "F32[4]", SOURCE_BYTES);
}

static void test_step3p5_native_ep_rank_slices_experts_before_the_cut(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ S_GU(1), "BF16", { 4, 6, 6 } },
		{ S_DOWNS(1), "BF16", { 4, 3, 6 } },
	};
	const struct view_opts rank0_of_2 = {
		.view = VIEW_HF, .dtype = SD_DTYPE_INVALID, .ep_rank = 0, .ep_size = 2,
	};

	assert_ok(fx, plan_checkpoint(fx, STEP3P5_BF16, t, NT(t), "step3p5", DIR_TO_HF, &rank0_of_2));
	assert_planned(fx, S_GATE(1), "BF16[2,3,6]",
		       "transpose_last2(slice_last(slice0(" SRC(S_GU(1)) ", 0, 2), 0, 3))");
	assert_planned(fx, S_UP(1), "BF16[2,3,6]",
		       "transpose_last2(slice_last(slice0(" SRC(S_GU(1)) ", 0, 2), 3, 6))");
	assert_planned(fx, S_DOWN(1), "BF16[2,6,3]",
		       "transpose_last2(slice0(" SRC(S_DOWNS(1)) ", 0, 2))");
}

/* --- NemotronOmni HF → native (§5) ------------------------------------------- */

static void test_omni_mlp1_projector_layers_become_vision_projector(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "mlp1.0.weight", "BF16", { 24 } },
		{ "mlp1.1.weight", "BF16", { 6, 24 } },
		{ "mlp1.3.weight", "BF16", { 6, 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, OMNI_MOE, t, NT(t), "nemotron_omni", DIR_TO_NATIVE,
				      &native_view));
	assert_int_equal(fx->plan.n, 3);
	assert_planned(fx, "vision_projector.norm.weight", "BF16[24]", SOURCE_BYTES);
	assert_planned(fx, "vision_projector.linear1.weight", "BF16[6,24]", SOURCE_BYTES);
	assert_planned(fx, "vision_projector.linear2.weight", "BF16[6,6]", SOURCE_BYTES);
}

/* mlp1.2 is the parameter-free SquaredReLU: no table entry, so any mlp1.2
 * (and any other mlp1.*) key keeps its name. */
static void test_omni_other_mlp1_keys_are_unchanged(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "mlp1.2.weight", "BF16", { 6 } },
		{ "mlp1.1.bias", "BF16", { 6 } },
		{ "mlp1.0.weight", "BF16", { 24 } },
	};

	assert_ok(fx, plan_checkpoint(fx, OMNI_MOE, t, NT(t), "nemotron_omni", DIR_TO_NATIVE,
				      &native_view));
	assert_int_equal(fx->plan.n, 3);
	assert_planned(fx, "mlp1.2.weight", "BF16[6]", SOURCE_BYTES);
	assert_planned(fx, "mlp1.1.bias", "BF16[6]", SOURCE_BYTES);
}

static void test_omni_sound_encoder_inner_encoder_prefix_is_stripped(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "sound_encoder.encoder.layers.0.conv.weight", "BF16", { 6, 6 } },
		{ "sound_encoder.encoder.feature_projection.weight", "BF16", { 6, 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, OMNI_MOE, t, NT(t), "nemotron_omni", DIR_TO_NATIVE,
				      &native_view));
	assert_int_equal(fx->plan.n, 2);
	assert_planned(fx, "sound_encoder.layers.0.conv.weight", "BF16[6,6]", SOURCE_BYTES);
	assert_planned(fx, "sound_encoder.feature_projection.weight", "BF16[6,6]", SOURCE_BYTES);
}

static void test_omni_vision_model_and_sound_projection_pass_through(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "vision_model.radio_model.blocks.0.attn.qkv.weight", "BF16", { 18, 6 } },
		{ "sound_projection.linear1.weight", "BF16", { 6, 6 } },
		{ "mlp1.0.weight", "BF16", { 24 } },
	};

	assert_ok(fx, plan_checkpoint(fx, OMNI_MOE, t, NT(t), "nemotron_omni", DIR_TO_NATIVE,
				      &native_view));
	assert_int_equal(fx->plan.n, 3);
	assert_planned(fx, "vision_model.radio_model.blocks.0.attn.qkv.weight", "BF16[18,6]",
		       SOURCE_BYTES);
	assert_planned(fx, "sound_projection.linear1.weight", "BF16[6,6]", SOURCE_BYTES);
}

static void test_omni_language_model_goes_through_the_nemotron_h_renames(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "language_model.backbone.embeddings.weight", "BF16", { 16, 6 } },
		{ "language_model.backbone.norm_f.weight", "BF16", { 6 } },
		{ "language_model.backbone.layers.0.mixer.A_log", "BF16", { 4 } },
		{ "language_model.lm_head.weight", "BF16", { 16, 6 } },
		{ "language_model.mtp.layers.0.enorm.weight", "BF16", { 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, OMNI_MOE, t, NT(t), "nemotron_omni", DIR_TO_NATIVE,
				      &native_view));
	assert_int_equal(fx->plan.n, 5);
	assert_planned(fx, "language_model.model.embed_tokens.weight", "BF16[16,6]", SOURCE_BYTES);
	assert_planned(fx, "language_model.model.norm.weight", "BF16[6]", SOURCE_BYTES);
	assert_planned(fx, "language_model.model.layers.0.mixer._fp32_params.A_log", "F32[4]",
		       "cast(" SRC("language_model.backbone.layers.0.mixer.A_log") ", F32)");
	assert_planned(fx, "language_model.lm_head.weight", "BF16[16,6]", SOURCE_BYTES);
	assert_planned(fx, "language_model.mtp.layers.0.enorm.weight", "BF16[6]", SOURCE_BYTES);
}

#define LM_EXPERT(e, proj) "language_model.backbone.layers.1.mixer.experts." #e "." proj ".weight"

static void test_omni_language_model_experts_merge_with_llm_config(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ LM_EXPERT(0, "up_proj"), "BF16", { 3, 6 } },
		{ LM_EXPERT(1, "up_proj"), "BF16", { 3, 6 } },
		{ LM_EXPERT(2, "up_proj"), "BF16", { 3, 6 } },
		{ LM_EXPERT(3, "up_proj"), "BF16", { 3, 6 } },
		{ LM_EXPERT(0, "down_proj"), "BF16", { 6, 3 } },
		{ LM_EXPERT(1, "down_proj"), "BF16", { 6, 3 } },
		{ LM_EXPERT(2, "down_proj"), "BF16", { 6, 3 } },
		{ LM_EXPERT(3, "down_proj"), "BF16", { 6, 3 } },
	};

	assert_ok(fx, plan_checkpoint(fx, OMNI_MOE, t, NT(t), "nemotron_omni", DIR_TO_NATIVE,
				      &native_view));
	assert_int_equal(fx->plan.n, 2);
	/* llm_config.n_routed_experts (4), not the top-level decoy (2). */
	assert_int_equal(fx->plan.experts, 4);
	assert_planned(fx, "language_model.model.layers.1.mixer.experts.gate_and_up_projs",
		       "BF16[4,6,3]",
		       "stack0(" T_SRC(LM_EXPERT(0, "up_proj")) ", " T_SRC(LM_EXPERT(1, "up_proj"))
		       ", " T_SRC(LM_EXPERT(2, "up_proj")) ", " T_SRC(LM_EXPERT(3, "up_proj")) ")");
	assert_planned(fx, "language_model.model.layers.1.mixer.experts.down_projs",
		       "BF16[4,3,6]",
		       "stack0(" T_SRC(LM_EXPERT(0, "down_proj")) ", " T_SRC(LM_EXPERT(1, "down_proj"))
		       ", " T_SRC(LM_EXPERT(2, "down_proj")) ", " T_SRC(LM_EXPERT(3, "down_proj")) ")");
}

static void test_omni_language_model_layers_truncate_at_llm_config_num_hidden_layers(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "language_model.backbone.layers.1.norm.weight", "BF16", { 6 } },
		{ "language_model.backbone.layers.2.norm.weight", "BF16", { 6 } },
		{ "language_model.backbone.layers.8.norm.weight", "BF16", { 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, OMNI_MOE, t, NT(t), "nemotron_omni", DIR_TO_NATIVE,
				      &native_view));
	/* llm_config.num_hidden_layers (2), not the top-level decoy (9). */
	assert_int_equal(fx->plan.n, 1);
	must_plan(fx, "language_model.model.layers.1.norm.weight");
}

static void test_omni_without_llm_config_is_an_error_mentioning_it(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "language_model.backbone.layers.0.norm.weight", "BF16", { 6 } },
	};

	assert_int_equal(plan_checkpoint(fx, OMNI(",'n_routed_experts':4"), t, NT(t),
					 "nemotron_omni", DIR_TO_NATIVE, &native_view), -EINVAL);
	assert_mentions(fx->err, "llm_config");
	assert_mentions(fx->err, "config.json");
	assert_int_equal(fx->plan.n, 0);
}

/* --- NemotronOmni native → HF (§5) ------------------------------------------- */

static void test_omni_native_vision_projector_becomes_mlp1(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "vision_projector.norm.weight", "BF16", { 24 } },
		{ "vision_projector.linear1.weight", "BF16", { 6, 24 } },
		{ "vision_projector.linear2.weight", "BF16", { 6, 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, OMNI_MOE, t, NT(t), "nemotron_omni", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 3);
	assert_planned(fx, "mlp1.0.weight", "BF16[24]", SOURCE_BYTES);
	assert_planned(fx, "mlp1.1.weight", "BF16[6,24]", SOURCE_BYTES);
	assert_planned(fx, "mlp1.3.weight", "BF16[6,6]", SOURCE_BYTES);
}

static void test_omni_native_sound_encoder_gets_inner_encoder_prefix(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "sound_encoder.layers.0.conv.weight", "BF16", { 6, 6 } },
		{ "vision_projector.norm.weight", "BF16", { 24 } },
	};

	assert_ok(fx, plan_checkpoint(fx, OMNI_MOE, t, NT(t), "nemotron_omni", DIR_TO_HF, &hf_view));
	assert_planned(fx, "sound_encoder.encoder.layers.0.conv.weight", "BF16[6,6]", SOURCE_BYTES);
	assert_null(planned(fx, "sound_encoder.layers.0.conv.weight"));
}

static void test_omni_native_vision_model_and_sound_projection_pass_through(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "vision_model.radio_model.blocks.0.attn.qkv.weight", "BF16", { 18, 6 } },
		{ "sound_projection.linear2.weight", "BF16", { 6, 6 } },
		{ "vision_projector.norm.weight", "BF16", { 24 } },
	};

	assert_ok(fx, plan_checkpoint(fx, OMNI_MOE, t, NT(t), "nemotron_omni", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 3);
	assert_planned(fx, "vision_model.radio_model.blocks.0.attn.qkv.weight", "BF16[18,6]",
		       SOURCE_BYTES);
	assert_planned(fx, "sound_projection.linear2.weight", "BF16[6,6]", SOURCE_BYTES);
}

#define LM_NATIVE_GU "language_model.model.layers.1.mixer.experts.gate_and_up_projs"
#define LM_NATIVE_DOWN "language_model.model.layers.1.mixer.experts.down_projs"

static void test_omni_native_language_model_experts_split_under_language_model_backbone(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ LM_NATIVE_GU, "BF16", { 4, 6, 3 } },
		{ LM_NATIVE_DOWN, "BF16", { 4, 3, 6 } },
	};
	char name[128], recipe[256];

	assert_ok(fx, plan_checkpoint(fx, OMNI_MOE, t, NT(t), "nemotron_omni", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 8);
	for (int e = 0; e < 4; e++) {
		snprintf(name, sizeof(name),
			 "language_model.backbone.layers.1.mixer.experts.%d.up_proj.weight", e);
		snprintf(recipe, sizeof(recipe), "transpose_last2(index0(%s, %d))",
			 SRC(LM_NATIVE_GU), e);
		assert_planned(fx, name, "BF16[3,6]", recipe);
		snprintf(name, sizeof(name),
			 "language_model.backbone.layers.1.mixer.experts.%d.down_proj.weight", e);
		snprintf(recipe, sizeof(recipe), "transpose_last2(index0(%s, %d))",
			 SRC(LM_NATIVE_DOWN), e);
		assert_planned(fx, name, "BF16[6,3]", recipe);
	}
}

static void test_omni_native_language_model_goes_through_the_nemotron_h_renames(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ "language_model.model.embed_tokens.weight", "BF16", { 16, 6 } },
		{ "language_model.model.norm.weight", "BF16", { 6 } },
		{ "language_model.model.layers.0.mixer._fp32_params.D", "BF16", { 4 } },
		{ "language_model.lm_head.weight", "BF16", { 16, 6 } },
	};

	assert_ok(fx, plan_checkpoint(fx, OMNI_MOE, t, NT(t), "nemotron_omni", DIR_TO_HF, &hf_view));
	assert_int_equal(fx->plan.n, 4);
	assert_planned(fx, "language_model.backbone.embeddings.weight", "BF16[16,6]", SOURCE_BYTES);
	assert_planned(fx, "language_model.backbone.norm_f.weight", "BF16[6]", SOURCE_BYTES);
	assert_planned(fx, "language_model.backbone.layers.0.mixer.D", "F32[4]",
		       "cast(" SRC("language_model.model.layers.0.mixer._fp32_params.D") ", F32)");
	assert_planned(fx, "language_model.lm_head.weight", "BF16[16,6]", SOURCE_BYTES);
}

static void test_omni_native_without_llm_config_is_an_error_mentioning_it(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ LM_NATIVE_GU, "BF16", { 4, 6, 3 } },
	};

	assert_int_equal(plan_checkpoint(fx, OMNI(""), t, NT(t), "nemotron_omni", DIR_TO_HF,
					 &hf_view), -EINVAL);
	assert_mentions(fx->err, "llm_config");
}

/* --- the example tables (examples/adapters/) --------------------------------- */

#define MIXTRAL_TABLE "examples/adapters/mixtral.json"
#define QWEN3_MOE_TABLE "examples/adapters/qwen3_moe.json"

/* E = 2, I = 3, H = 4. */
#define MIXTRAL_CONFIG \
	"{'architectures':['MixtralForCausalLM'],'model_type':'mixtral','num_local_experts':2," \
	"'intermediate_size':3,'num_hidden_layers':1,'torch_dtype':'bfloat16'}"
#define MX(e, w) "model.layers.0.block_sparse_moe.experts." #e "." w ".weight"
#define MX_GU "model.layers.0.block_sparse_moe.experts.gate_and_up_projs"
#define MX_DOWN "model.layers.0.block_sparse_moe.experts.down_projs"

static void test_mixtral_example_merges_w1_and_w3_into_gate_and_up_projs(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ MX(0, "w1"), "BF16", { 3, 4 } }, { MX(0, "w2"), "BF16", { 4, 3 } },
		{ MX(0, "w3"), "BF16", { 3, 4 } }, { MX(1, "w3"), "BF16", { 3, 4 } },
		{ MX(1, "w1"), "BF16", { 3, 4 } }, { MX(1, "w2"), "BF16", { 4, 3 } },
	};

	assert_ok(fx, plan_with_table(fx, MIXTRAL_TABLE, MIXTRAL_CONFIG, t, NT(t), DIR_TO_NATIVE,
				      &native_view));
	assert_string_equal(adapter_name(fx->adapter), "mixtral");
	assert_int_equal(fx->plan.n, 2);
	assert_planned(fx, MX_GU, "BF16[2,4,6]",
		       "stack0(concat_last(" T_SRC(MX(0, "w1")) ", " T_SRC(MX(0, "w3")) "), "
		       "concat_last(" T_SRC(MX(1, "w1")) ", " T_SRC(MX(1, "w3")) "))");
	assert_planned(fx, MX_DOWN, "BF16[2,3,4]",
		       "stack0(" T_SRC(MX(0, "w2")) ", " T_SRC(MX(1, "w2")) ")");
}

static void test_mixtral_example_splits_gate_and_up_projs_back_into_w1_and_w3(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ MX_GU, "BF16", { 2, 4, 6 } },
		{ MX_DOWN, "BF16", { 2, 3, 4 } },
	};

	assert_ok(fx, plan_with_table(fx, MIXTRAL_TABLE, MIXTRAL_CONFIG, t, NT(t), DIR_TO_HF,
				      &hf_view));
	assert_int_equal(fx->plan.n, 6);
	assert_planned(fx, MX(0, "w1"), "BF16[3,4]",
		       "transpose_last2(slice_last(index0(" SRC(MX_GU) ", 0), 0, 3))");
	assert_planned(fx, MX(0, "w3"), "BF16[3,4]",
		       "transpose_last2(slice_last(index0(" SRC(MX_GU) ", 0), 3, 6))");
	assert_planned(fx, MX(1, "w1"), "BF16[3,4]",
		       "transpose_last2(slice_last(index0(" SRC(MX_GU) ", 1), 0, 3))");
	assert_planned(fx, MX(1, "w3"), "BF16[3,4]",
		       "transpose_last2(slice_last(index0(" SRC(MX_GU) ", 1), 3, 6))");
	assert_planned(fx, MX(0, "w2"), "BF16[4,3]", "transpose_last2(index0(" SRC(MX_DOWN) ", 0))");
	assert_planned(fx, MX(1, "w2"), "BF16[4,3]", "transpose_last2(index0(" SRC(MX_DOWN) ", 1))");
}

#define QWEN3_CONFIG \
	"{'architectures':['Qwen3MoeForCausalLM'],'model_type':'qwen3_moe','num_experts':2," \
	"'moe_intermediate_size':3,'num_hidden_layers':1,'torch_dtype':'bfloat16'}"
#define QX(e, p) "model.layers.0.mlp.experts." #e "." p ".weight"
#define QX_GU "model.layers.0.mlp.experts.gate_and_up_projs"
#define QX_DOWN "model.layers.0.mlp.experts.down_projs"

static void test_qwen3_moe_example_merges_gate_and_up_into_gate_and_up_projs(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ QX(0, "up_proj"), "BF16", { 3, 4 } }, { QX(0, "gate_proj"), "BF16", { 3, 4 } },
		{ QX(0, "down_proj"), "BF16", { 4, 3 } }, { QX(1, "gate_proj"), "BF16", { 3, 4 } },
		{ QX(1, "up_proj"), "BF16", { 3, 4 } }, { QX(1, "down_proj"), "BF16", { 4, 3 } },
	};

	assert_ok(fx, plan_with_table(fx, QWEN3_MOE_TABLE, QWEN3_CONFIG, t, NT(t), DIR_TO_NATIVE,
				      &native_view));
	assert_string_equal(adapter_name(fx->adapter), "qwen3_moe");
	assert_int_equal(fx->plan.n, 2);
	assert_planned(fx, QX_GU, "BF16[2,4,6]",
		       "stack0(concat_last(" T_SRC(QX(0, "gate_proj")) ", " T_SRC(QX(0, "up_proj")) "), "
		       "concat_last(" T_SRC(QX(1, "gate_proj")) ", " T_SRC(QX(1, "up_proj")) "))");
	assert_planned(fx, QX_DOWN, "BF16[2,3,4]",
		       "stack0(" T_SRC(QX(0, "down_proj")) ", " T_SRC(QX(1, "down_proj")) ")");
}

static void test_qwen3_moe_example_splits_gate_and_up_projs_back_into_gate_and_up(void **state)
{
	struct fixture *fx = *state;
	static const struct test_tensor t[] = {
		{ QX_GU, "BF16", { 2, 4, 6 } },
		{ QX_DOWN, "BF16", { 2, 3, 4 } },
	};

	assert_ok(fx, plan_with_table(fx, QWEN3_MOE_TABLE, QWEN3_CONFIG, t, NT(t), DIR_TO_HF,
				      &hf_view));
	assert_int_equal(fx->plan.n, 6);
	assert_planned(fx, QX(0, "gate_proj"), "BF16[3,4]",
		       "transpose_last2(slice_last(index0(" SRC(QX_GU) ", 0), 0, 3))");
	assert_planned(fx, QX(0, "up_proj"), "BF16[3,4]",
		       "transpose_last2(slice_last(index0(" SRC(QX_GU) ", 0), 3, 6))");
	assert_planned(fx, QX(1, "gate_proj"), "BF16[3,4]",
		       "transpose_last2(slice_last(index0(" SRC(QX_GU) ", 1), 0, 3))");
	assert_planned(fx, QX(1, "up_proj"), "BF16[3,4]",
		       "transpose_last2(slice_last(index0(" SRC(QX_GU) ", 1), 3, 6))");
	assert_planned(fx, QX(0, "down_proj"), "BF16[4,3]",
		       "transpose_last2(index0(" SRC(QX_DOWN) ", 0))");
	assert_planned(fx, QX(1, "down_proj"), "BF16[4,3]",
		       "transpose_last2(index0(" SRC(QX_DOWN) ", 1))");
}

/* --- split_last in a user's table --------------------------------------------- */

/* ep_slice is a rule's choice: a split_last without it cuts a tensor that is
 * not per-expert (here a shared expert's fused [H, 2I]) and keeps all its
 * rows, even when the view shows one EP rank's experts. */
static void test_split_last_without_ep_slice_keeps_every_row_under_ep(void **state)
{
	struct fixture *fx = *state;
	static const char table[] =
		"{'name':'fused_shared','config':{'experts':'n_experts','moe_intermediate':'inter'},"
		"'detect':{'native':'[.]fused_gate_up$'},"
		"'native_to_hf':[{'op':'split_last','transpose':true,"
		"'match':'^(.*)[.]fused_gate_up$','outputs':['$1.gate.weight','$1.up.weight']}]}";
	static const struct test_tensor t[] = {
		{ "layers.0.shared.fused_gate_up", "BF16", { 6, 6 } },
	};
	const struct view_opts rank0_of_2 = {
		.view = VIEW_HF, .dtype = SD_DTYPE_INVALID, .ep_rank = 0, .ep_size = 2,
	};
	char *json = test_json_text(table);

	scan_checkpoint(fx, "{'n_experts':4,'inter':3}", t, NT(t));
	int rc = adapter_load(json, strlen(json), "fused_shared.json", &fx->adapter, fx->err);
	free(json);
	if (rc < 0)
		fail_msg("adapter_load: %s", fx->err);
	assert_detected(fx, DIR_TO_HF);
	assert_ok(fx, make_plan(fx, &rank0_of_2, DIR_TO_HF));
	assert_planned(fx, "layers.0.shared.gate.weight", "BF16[3,6]",
		       "transpose_last2(slice_last(" SRC("layers.0.shared.fused_gate_up") ", 0, 3))");
	assert_planned(fx, "layers.0.shared.up.weight", "BF16[3,6]",
		       "transpose_last2(slice_last(" SRC("layers.0.shared.fused_gate_up") ", 3, 6))");
}

/* --- loading tables: the new rule kinds ----------------------------------------- */

/* The bad rule comes second, so its number shows the count starts at 1. */
#define HF_TO_NATIVE(rule) "{'name':'t','hf_to_native':[{'op':'drop','match':'^x$'}," rule "]}"
#define NATIVE_TO_HF(rule) "{'name':'t','native_to_hf':[{'op':'drop','match':'^x$'}," rule "]}"

static void test_load_refuses_split_experts_without_part(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING(NATIVE_TO_HF("{'op':'split_experts','match':'^l(?<layer>[0-9]+)$',"
					   "'up':'x.${expert}.up'}"),
			      "native_to_hf rule 2", "\"part\"");
}

static void test_load_refuses_split_experts_with_an_unknown_part(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING(NATIVE_TO_HF("{'op':'split_experts','part':'middle',"
					   "'match':'^l(?<layer>[0-9]+)$','up':'x.${expert}.up'}"),
			      "native_to_hf rule 2", "\"part\"", "middle");
}

static void test_load_refuses_join_without_parts(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING(HF_TO_NATIVE("{'op':'join','match':'^(?<part>a|b)$','to':'ab'}"),
			      "hf_to_native rule 2", "\"parts\"");
}

static void test_load_refuses_join_pattern_without_part_group(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING(HF_TO_NATIVE("{'op':'join','parts':['a','b'],'match':'^(a|b)$',"
					   "'to':'ab'}"),
			      "hf_to_native rule 2", "(?<part>");
}

static void test_load_refuses_split_last_without_outputs(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING(NATIVE_TO_HF("{'op':'split_last','match':'^(.*)[.]fused$'}"),
			      "native_to_hf rule 2", "\"outputs\"");
}

static void test_load_refuses_route_to_an_unknown_adapter_naming_it(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING(HF_TO_NATIVE("{'op':'route','match':'^lm[.](?<rest>.+)$',"
					   "'adapter':'no_such_family','prefix':'lm.'}"),
			      "hf_to_native rule 2", "no_such_family");
}

static void test_load_refuses_route_pattern_without_rest_group(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING(HF_TO_NATIVE("{'op':'route','match':'^lm[.](.+)$',"
					   "'adapter':'nemotron_h','prefix':'lm.'}"),
			      "hf_to_native rule 2", "(?<rest>");
}

static void test_load_refuses_cast_that_is_not_a_float_dtype(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING(HF_TO_NATIVE("{'op':'rename','match':'^y$','to':'z','cast':'I32'}"),
			      "hf_to_native rule 2", "\"cast\"", "I32");
}

static void test_load_refuses_transpose_that_is_not_a_bool(void **state)
{
	(void)state;
	LOAD_FAILS_MENTIONING(NATIVE_TO_HF("{'op':'rename','match':'^y$','to':'z',"
					   "'transpose':'yes'}"),
			      "native_to_hf rule 2", "\"transpose\"");
}

static void test_load_file_that_is_missing_names_the_path(void **state)
{
	struct fixture *fx = *state;
	char path[128];

	test_path(path, sizeof(path), fx->dir, "no_such_table.json");
	assert_int_equal(adapter_load_file(path, &fx->adapter, fx->err), -ENOENT);
	assert_null(fx->adapter);
	assert_mentions(fx->err, path);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, fixture_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_nemotron_hf_checkpoint_is_detected_as_hf),
		TEST(test_nemotron_native_checkpoint_is_detected_as_native),
		TEST(test_nemotron_checkpoint_mixing_layouts_is_an_error_naming_one_key_of_each),
		TEST(test_nemotron_checkpoint_of_neither_layout_is_an_error),
		TEST(test_step3p5_hf_checkpoint_is_detected_as_hf),
		TEST(test_step3p5_native_checkpoint_is_detected_as_native),
		TEST(test_step3p5_checkpoint_mixing_layouts_is_an_error_naming_one_key_of_each),
		TEST(test_step3p5_checkpoint_of_neither_layout_is_an_error),
		TEST(test_omni_hf_checkpoint_is_detected_as_hf),
		TEST(test_omni_native_checkpoint_is_detected_as_native),
		TEST(test_omni_checkpoint_mixing_layouts_is_an_error_naming_one_key_of_each),
		TEST(test_omni_checkpoint_of_neither_layout_is_an_error),
		TEST(test_native_model_prefix_becomes_backbone),
		TEST(test_native_norm_becomes_norm_f),
		TEST(test_native_embed_tokens_becomes_embeddings),
		TEST(test_native_lm_head_is_unchanged),
		TEST(test_native_keys_outside_model_prefix_are_unchanged),
		TEST(test_native_fp32_holder_is_hidden_and_bf16_params_become_f32),
		TEST(test_native_f32_holder_param_needs_no_recipe),
		TEST(test_native_grouped_up_splits_into_per_expert_up_proj),
		TEST(test_native_grouped_down_splits_into_per_expert_down_proj),
		TEST(test_native_down_projs_of_another_inner_size_pass_through_renamed),
		TEST(test_native_grouped_tensor_without_e_experts_is_an_error_naming_it),
		TEST(test_native_mtp_experts_split_under_the_mtp_prefix),
		TEST(test_native_e_score_correction_bias_becomes_f32),
		TEST(test_native_extra_state_is_dropped),
		TEST(test_native_ep_rank_sees_only_its_experts_with_global_ids),
		TEST(test_hf_view_without_dtype_casts_only_the_forced_f32_tensors),
		TEST(test_hf_view_dtype_casts_floating_tensors_except_forced_f32),
		TEST(test_hf_view_dtype_leaves_integer_tensors_alone),
		TEST(test_step3p5_gate_and_up_join_into_transposed_gate_and_up_projs),
		TEST(test_step3p5_down_proj_becomes_transposed_down_projs),
		TEST(test_step3p5_grouped_experts_are_cast_to_torch_dtype),
		TEST(test_step3p5_router_bias_becomes_e_score_correction_bias_without_cast),
		TEST(test_step3p5_other_keys_pass_through),
		TEST(test_step3p5_unprefixed_layer_keys_convert_too),
		TEST(test_step3p5_lone_gate_proj_emits_nothing),
		TEST(test_step3p5_ep_rank_slices_experts_before_transposing),
		TEST(test_step3p5_native_gate_and_up_projs_split_into_gate_and_up_proj),
		TEST(test_step3p5_native_split_cuts_at_moe_intermediate_size_not_half),
		TEST(test_step3p5_native_down_projs_become_transposed_down_proj),
		TEST(test_step3p5_native_e_score_correction_bias_becomes_router_bias),
		TEST(test_step3p5_native_legacy_gate_bias_becomes_router_bias),
		TEST(test_step3p5_native_key_without_layer_number_is_unchanged),
		TEST(test_step3p5_native_ep_rank_slices_experts_before_the_cut),
		TEST(test_omni_mlp1_projector_layers_become_vision_projector),
		TEST(test_omni_other_mlp1_keys_are_unchanged),
		TEST(test_omni_sound_encoder_inner_encoder_prefix_is_stripped),
		TEST(test_omni_vision_model_and_sound_projection_pass_through),
		TEST(test_omni_language_model_goes_through_the_nemotron_h_renames),
		TEST(test_omni_language_model_experts_merge_with_llm_config),
		TEST(test_omni_language_model_layers_truncate_at_llm_config_num_hidden_layers),
		TEST(test_omni_without_llm_config_is_an_error_mentioning_it),
		TEST(test_omni_native_vision_projector_becomes_mlp1),
		TEST(test_omni_native_sound_encoder_gets_inner_encoder_prefix),
		TEST(test_omni_native_vision_model_and_sound_projection_pass_through),
		TEST(test_omni_native_language_model_experts_split_under_language_model_backbone),
		TEST(test_omni_native_language_model_goes_through_the_nemotron_h_renames),
		TEST(test_omni_native_without_llm_config_is_an_error_mentioning_it),
		TEST(test_mixtral_example_merges_w1_and_w3_into_gate_and_up_projs),
		TEST(test_mixtral_example_splits_gate_and_up_projs_back_into_w1_and_w3),
		TEST(test_qwen3_moe_example_merges_gate_and_up_into_gate_and_up_projs),
		TEST(test_qwen3_moe_example_splits_gate_and_up_projs_back_into_gate_and_up),
		TEST(test_split_last_without_ep_slice_keeps_every_row_under_ep),
		TEST(test_load_refuses_split_experts_without_part),
		TEST(test_load_refuses_split_experts_with_an_unknown_part),
		TEST(test_load_refuses_join_without_parts),
		TEST(test_load_refuses_join_pattern_without_part_group),
		TEST(test_load_refuses_split_last_without_outputs),
		TEST(test_load_refuses_route_to_an_unknown_adapter_naming_it),
		TEST(test_load_refuses_route_pattern_without_rest_group),
		TEST(test_load_refuses_cast_that_is_not_a_float_dtype),
		TEST(test_load_refuses_transpose_that_is_not_a_bool),
		TEST(test_load_file_that_is_missing_names_the_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
