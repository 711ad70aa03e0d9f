/*
 * peft_names.h — the names of a PEFT adapter's keys in the other layout of
 * the model family the adapter belongs to.
 *
 * A LoRA or DoRA key is a module of the model plus a LoRA suffix
 * (base_model.model.backbone.layers.1.mixer.experts + .lora_A.weight).  The
 * module is renamed as the family renames that module's weight (the key
 * with the suffix replaced by ".weight", base_model.model. included, as
 * Automodel's to_hf / from_hf see it) and the suffix put back; a key
 * without a LoRA suffix is renamed as it is.  docs/adapters.md says what
 * this gives for each built-in family.
 */
#ifndef SDAFS_PEFT_NAMES_H
#define SDAFS_PEFT_NAMES_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "adapter.h"
#include "plan.h"
#include "source.h"

struct peft_names {
	const struct source *s;
	struct adapter *family; /* NULL: unknown, every key keeps its name */
	int dir;                /* whose renames run: DIR_TO_NATIVE or DIR_TO_HF */
	long layout[DIR_COUNT]; /* the first key the family's detect patterns
				 * call HF ([DIR_TO_NATIVE]) or native, or -1 */
	char label[56];         /* what --inspect says: "nemotron_h names (key names)" */
	pcre2_code *lora;       /* module, LoRA suffix */
	pcre2_match_data *md;
};

/* Choose the adapter's family: -o adapter_file= or adapter=, else the
 * config.json beside it, else its key names when they fit exactly one
 * built-in family whose HF and native names differ.  An unknown family is
 * no error: the names are kept.  n->dir is DIR_TO_NATIVE until set. */
int peft_names_open(struct peft_names *n, const struct source *s,
		    const struct view_opts *o, char *err);
void peft_names_close(struct peft_names *n);

/* Whose renames apply to an adapter whose LoRA layout says nothing (only
 * dense LoRA): with view=auto the layout its names are in, else the view's. */
int peft_names_default_dir(const struct peft_names *n, enum view_kind view);

/* key's name in the view, into out (len bytes). */
int peft_names_rename(const struct peft_names *n, const char *key, char *out,
		      size_t len, char *err);

#endif
