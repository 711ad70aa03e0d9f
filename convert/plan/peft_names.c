/*
 * peft_names.c — a PEFT adapter's family and its keys' names in the other
 * layout (see peft_names.h).
 *
 * The renames are the family's own table (adapter_rename); what this file
 * adds is where a key's module ends and which family it is.  The rules see
 * the module's weight with base_model.model. in front, exactly as
 * Automodel's to_hf and from_hf see an adapter's keys (conversion-spec §6),
 * so the renames anchored at the start of a model name (Nemotron-H's
 * ^model\. -> backbone.) do not fire on them, the quirk of spec §7 and
 * §11.2, while those written for base_model.model. (Nemotron-H's backbone.
 * -> model.) do.
 */
#include "peft_names.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define PEFT_PREFIX "base_model.model."
#define WEIGHT ".weight"

/* module, then the suffix PEFT or Automodel puts after it: LoRA A/B (and
 * the bias of B), ParamWrapper's base_layer. nesting, embedding LoRA, DoRA
 * magnitudes in both namings, native grouped expert LoRA. */
static const char lora_pattern[] =
	"^(.+?)(\\.(?:base_layer\\.)*lora_(?:[AB]\\.(?:weight|bias)|embedding_[AB]|"
	"magnitude(?:_vector(?:\\.default\\.weight)?)?|(?:gate_and_up|down)_[AB]))$";

/* Where key's module ends (its length), or 0 for a key with no LoRA suffix. */
static size_t module_len(const struct peft_names *n, const char *key)
{
	if (pcre2_match(n->lora, (PCRE2_SPTR)key, PCRE2_ZERO_TERMINATED, 0, 0, n->md, NULL) < 0)
		return 0;
	return pcre2_get_ovector_pointer(n->md)[3];
}

/* What the family's rules see for key: its module's weight, or key itself. */
static void rule_form(const struct peft_names *n, const char *key, char *out, size_t len)
{
	size_t m = module_len(n, key);

	if (m)
		snprintf(out, len, "%.*s" WEIGHT, (int)m, key);
	else
		snprintf(out, len, "%s", key);
}

/* --- which family --------------------------------------------------------- */

struct forms {
	char **names;
	size_t n;
};

static const char *form_at(const void *ctx, uint32_t i)
{
	return ((const struct forms *)ctx)->names[i];
}

static void forms_free(struct forms *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->names[i]);
	free(f->names);
}

static int forms_make(const struct peft_names *n, struct forms *f, char *err)
{
	char buf[ST_MAX_NAME + sizeof(WEIGHT)];

	f->n = 0;
	if (!(f->names = calloc(n->s->ntensors + 1, sizeof(*f->names))))
		return sd_err(err, -ENOMEM, "out of memory");
	for (; f->n < n->s->ntensors; f->n++) {
		rule_form(n, n->s->tensors[f->n].name, buf, sizeof(buf));
		if (!(f->names[f->n] = strdup(buf)))
			return sd_err(err, -ENOMEM, "out of memory");
	}
	return 0;
}

/* The built-in families whose names differ between the layouts and fit
 * these keys; one of them is the family, several or none leave it unknown. */
static int family_by_names(struct peft_names *n, const struct forms *f, char *err)
{
	struct adapter *found = NULL;
	long first[DIR_COUNT];
	int rc = 0;

	for (size_t i = 0; i < adapter_builtin_count() && rc == 0; i++) {
		struct adapter *a;
		if ((rc = adapter_builtin(i, &a, err)) < 0)
			break;
		if (!adapter_same_names(a) &&
		    (rc = adapter_detect_names(a, form_at, f, f->n, first, err)) == 0 &&
		    (first[DIR_TO_NATIVE] >= 0 || first[DIR_TO_HF] >= 0)) {
			if (found) {    /* they fit two families: cannot tell */
				adapter_free(a);
				adapter_free(found);
				return 0;
			}
			found = a;
			continue;
		}
		adapter_free(a);
	}
	if (rc < 0)
		adapter_free(found);
	else
		n->family = found;
	return rc;
}

static int family_by_config(struct peft_names *n, char *err)
{
	for (size_t i = 0; i < adapter_builtin_count(); i++) {
		struct adapter *a;
		int rc = adapter_builtin(i, &a, err);
		if (rc < 0)
			return rc;
		if (adapter_matches_config(a, n->s)) {
			n->family = a;
			return 0;
		}
		adapter_free(a);
	}
	return 0;               /* a family sdafs has no table for */
}

int peft_names_open(struct peft_names *n, const struct source *s,
		    const struct view_opts *o, char *err)
{
	struct forms f = { 0 };
	const char *how;
	int code, rc;
	PCRE2_SIZE off;

	memset(n, 0, sizeof(*n));
	n->s = s;
	n->dir = DIR_TO_NATIVE;
	n->layout[DIR_TO_NATIVE] = n->layout[DIR_TO_HF] = -1;
	if (!(n->lora = pcre2_compile((PCRE2_SPTR)lora_pattern, PCRE2_ZERO_TERMINATED, 0,
				      &code, &off, NULL)) ||
	    !(n->md = pcre2_match_data_create_from_pattern(n->lora, NULL)))
		return sd_err(err, -ENOMEM, "internal: the LoRA key pattern does not compile");
	if ((rc = forms_make(n, &f, err)) < 0)
		goto out;
	if (o->adapter_file) {
		how = "adapter_file";
		rc = adapter_load_file(o->adapter_file, &n->family, err);
	} else if (o->adapter) {
		how = "adapter=";
		rc = adapter_choose(s, o->adapter, &n->family, err);
	} else if (s->config) {
		how = "config.json";
		rc = family_by_config(n, err);
	} else {
		how = "key names";
		rc = family_by_names(n, &f, err);
	}
	if (rc == 0 && n->family)
		rc = adapter_detect_names(n->family, form_at, &f, f.n, n->layout, err);
	if (n->family)
		snprintf(n->label, sizeof(n->label), "%s names (%s)", adapter_name(n->family), how);
	else
		snprintf(n->label, sizeof(n->label), "family unknown: names kept");
out:
	forms_free(&f);
	return rc;
}

void peft_names_close(struct peft_names *n)
{
	adapter_free(n->family);
	pcre2_match_data_free(n->md);
	pcre2_code_free(n->lora);
	memset(n, 0, sizeof(*n));
}

int peft_names_default_dir(const struct peft_names *n, enum view_kind view)
{
	bool hf = n->layout[DIR_TO_NATIVE] >= 0, native = n->layout[DIR_TO_HF] >= 0;

	if (view == VIEW_AUTO && hf != native)
		return hf ? DIR_TO_NATIVE : DIR_TO_HF;
	return view == VIEW_HF ? DIR_TO_HF : DIR_TO_NATIVE;
}

/* --- renaming -------------------------------------------------------------- */

static bool starts_with(const char *s, const char *p)
{
	return !strncmp(s, p, strlen(p));
}

static bool ends_with(const char *s, const char *p)
{
	size_t a = strlen(s), b = strlen(p);

	return a >= b && !strcmp(s + a - b, p);
}

int peft_names_rename(const struct peft_names *n, const char *key, char *out,
		      size_t len, char *err)
{
	char form[ST_MAX_NAME + sizeof(WEIGHT)], *renamed;
	size_t m;
	int rc;

	if (!n->family) {
		if ((size_t)snprintf(out, len, "%s", key) >= len)
			return sd_err(err, -ENAMETOOLONG, "tensor '%s': name too long", key);
		return 0;
	}
	m = module_len(n, key);
	rule_form(n, key, form, sizeof(form));
	if ((rc = adapter_rename(n->family, n->s, n->dir, form, &renamed, err)) < 0)
		return rc;
	const char *lost = starts_with(key, PEFT_PREFIX) && !starts_with(renamed, PEFT_PREFIX) ?
			   "drops the " PEFT_PREFIX " prefix" :
			   m && !ends_with(renamed, WEIGHT) ? "is not a module's weight" : NULL;
	if (lost) {
		rc = sd_err(err, -EINVAL, "tensor '%s': %s's renames make '%s' into '%s', which %s, so the key has no name in the %s layout",
			    key, adapter_name(n->family), form, renamed, lost,
			    n->dir == DIR_TO_HF ? "HF" : "native");
	} else if (m) {
		size_t keep = strlen(renamed) - strlen(WEIGHT);
		if ((size_t)snprintf(out, len, "%.*s%s", (int)keep, renamed, key + m) >= len)
			rc = sd_err(err, -ENAMETOOLONG, "tensor '%s': renamed, its name is too long", key);
	} else if ((size_t)snprintf(out, len, "%s", renamed) >= len) {
		rc = sd_err(err, -ENAMETOOLONG, "tensor '%s': renamed, its name is too long", key);
	}
	free(renamed);
	return rc;
}
