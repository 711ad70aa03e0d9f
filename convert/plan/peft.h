/*
 * peft.h — PEFT adapter directories (adapter_model.safetensors +
 * adapter_config.json) shown in the other layout.
 *
 * Automodel saves LoRA on grouped experts either in its native grouped form
 * (lora_gate_and_up_A/B, lora_down_A/B of shape [E, ., .]) or, through the
 * adapter's to_hf, as HF PEFT keys: per expert (v4) or PEFT's ParamWrapper
 * tensors (v5).  A mount converts one into the other (conversion-spec §2.5),
 * renames DoRA magnitudes (§6) and passes every other tensor through.  The
 * prefix (base_model.model. and what follows, up to layers.N.) is kept,
 * except that every key's module is named as the model family names it in
 * the view's layout (peft_names.h).
 */
#ifndef SDAFS_PEFT_H
#define SDAFS_PEFT_H

#include "adapter.h"
#include "plan.h"
#include "source.h"

/* Build the view plan of a PEFT directory (s->peft).  The direction comes
 * from the tensor names; o->view only confirms it. */
int peft_plan(const struct source *s, const struct view_opts *o,
	      struct plan *out, char *err);

#endif
