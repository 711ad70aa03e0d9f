/*
 * adapter.c — loading adapter tables and applying them (see adapter.h).
 *
 * Every source tensor name runs down the rule list in order.  A rename
 * rewrites the name and goes on; truncate and drop end the tensor's trip; a
 * merge_experts rule claims the tensor for a grouped expert tensor, which is
 * only assembled once every tensor has been seen, because a group needs all
 * of its experts.  What remains after the last rule is an output tensor:
 * the unchanged source bytes, or a cast of them when a rule asked for one.
 */
#include "adapter.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_impl.h"
#include "err.h"
#include "builtin_adapters.h"

/* --- loading -------------------------------------------------------------- */

static int need_string(const cJSON *obj, const char *key, bool required,
		       const char *what, size_t idx, char **out, char *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	*out = NULL;
	if (!v && !required)
		return 0;
	if (!cJSON_IsString(v))
		return sd_err(err, -EINVAL, "%s: rule %zu: \"%s\" must be a string",
			      what, idx, key);
	if (!(*out = strdup(v->valuestring)))
		return sd_err(err, -ENOMEM, "out of memory");
	return 0;
}

static int compile(const char *pat, const char *what, size_t idx,
		   pcre2_code **out, char *err)
{
	int code;
	PCRE2_SIZE off;

	*out = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF,
			     &code, &off, NULL);
	if (!*out) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(code, msg, sizeof(msg));
		return sd_err(err, -EINVAL, "%s: rule %zu: pattern \"%s\" at offset %zu: %s",
			      what, idx, pat, (size_t)off, (char *)msg);
	}
	return 0;
}

static int load_rule(const cJSON *j, const char *what, size_t idx,
		     struct rule *r, char *err)
{
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(j, "op");
	const cJSON *cond = cJSON_GetObjectItemCaseSensitive(j, "if");
	char *match = NULL, *cast = NULL;
	int rc;

	memset(r, 0, sizeof(*r));
	r->cast = SD_DTYPE_INVALID;
	if (!cJSON_IsObject(j) || !cJSON_IsString(op))
		return sd_err(err, -EINVAL, "%s: rule %zu: needs an \"op\" string", what, idx);
	if (!strcmp(op->valuestring, "truncate"))
		r->op = RULE_TRUNCATE;
	else if (!strcmp(op->valuestring, "rename"))
		r->op = RULE_RENAME;
	else if (!strcmp(op->valuestring, "drop"))
		r->op = RULE_DROP;
	else if (!strcmp(op->valuestring, "merge_experts"))
		r->op = RULE_MERGE;
	else
		return sd_err(err, -EINVAL, "%s: rule %zu: unknown op \"%s\" (truncate, rename, drop, merge_experts)",
			      what, idx, op->valuestring);
	if (cond && !(cJSON_IsString(cond) && (!strcmp(cond->valuestring, "moe") ||
					       !strcmp(cond->valuestring, "dense"))))
		return sd_err(err, -EINVAL, "%s: rule %zu: \"if\" must be \"moe\" or \"dense\"",
			      what, idx);
	r->cond = !cond ? COND_ALWAYS : !strcmp(cond->valuestring, "moe") ? COND_MOE : COND_DENSE;
	if ((rc = need_string(j, "match", true, what, idx, &match, err)) < 0)
		return rc;
	rc = compile(match, what, idx, &r->re, err);
	free(match);
	if (rc < 0)
		return rc;
	switch (r->op) {
	case RULE_TRUNCATE:
		if ((rc = need_string(j, "below", true, what, idx, &r->below, err)) < 0)
			return rc;
		uint32_t captures = 0;
		pcre2_pattern_info(r->re, PCRE2_INFO_CAPTURECOUNT, &captures);
		if (captures < 1)
			return sd_err(err, -EINVAL, "%s: rule %zu: a truncate pattern captures the layer number in group 1",
				      what, idx);
		break;
	case RULE_RENAME:
		if ((rc = need_string(j, "to", true, what, idx, &r->to, err)) < 0 ||
		    (rc = need_string(j, "cast", false, what, idx, &cast, err)) < 0)
			return rc;
		if (cast) {
			r->cast = dtype_parse(cast);
			free(cast);
			if (!dtype_is_castable_float(r->cast))
				return sd_err(err, -EINVAL, "%s: rule %zu: \"cast\" must be F16, BF16, F32 or F64",
					      what, idx);
		}
		break;
	case RULE_DROP:
		break;
	case RULE_MERGE: {
		static const char *const keys[3] = { "gate", "up", "down" };
		static const char *const defaults[3] = { "gate_proj", "up_proj", "down_proj" };
		const cJSON *projs = cJSON_GetObjectItemCaseSensitive(j, "projections");
		r->gated = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "gated"));
		if ((rc = need_string(j, "gate_and_up", true, what, idx, &r->gate_and_up, err)) < 0 ||
		    (rc = need_string(j, "down", true, what, idx, &r->down, err)) < 0)
			return rc;
		for (int k = 0; k < 3; k++) {
			const char *name = defaults[k];
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(projs, keys[k]);
			if (v && !cJSON_IsString(v))
				return sd_err(err, -EINVAL, "%s: rule %zu: projections.%s must be a string",
					      what, idx, keys[k]);
			if (!(r->proj[k] = strdup(v ? v->valuestring : name)))
				return sd_err(err, -ENOMEM, "out of memory");
		}
		static const char *const groups[] = { "prefix", "layer", "expert", "proj" };
		for (size_t k = 0; k < 4; k++)
			if (pcre2_substring_number_from_name(r->re, (PCRE2_SPTR)groups[k]) < 0)
				return sd_err(err, -EINVAL, "%s: rule %zu: merge_experts pattern needs a named group (?<%s>...)",
					      what, idx, groups[k]);
		break;
	}
	}
	return 0;
}

static void free_rule(struct rule *r)
{
	pcre2_code_free(r->re);
	free(r->to);
	free(r->below);
	free(r->gate_and_up);
	free(r->down);
	for (int k = 0; k < 3; k++)
		free(r->proj[k]);
}

void adapter_free(struct adapter *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->nrules; i++)
		free_rule(&a->rules[i]);
	free(a->rules);
	cJSON_Delete(a->table);
	free(a);
}

int adapter_load(const char *json, size_t len, const char *what,
		 struct adapter **out, char *err)
{
	struct adapter *a = calloc(1, sizeof(*a));
	int rc = -EINVAL;

	*out = NULL;
	if (!a)
		return sd_err(err, -ENOMEM, "out of memory");
	a->table = cJSON_ParseWithLength(json, len);
	if (!cJSON_IsObject(a->table)) {
		sd_err(err, -EINVAL, "%s: not a JSON object", what);
		goto fail;
	}
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(a->table, "name");
	const cJSON *desc = cJSON_GetObjectItemCaseSensitive(a->table, "description");
	const cJSON *root = cJSON_GetObjectItemCaseSensitive(a->table, "config_root");
	const cJSON *rules = cJSON_GetObjectItemCaseSensitive(a->table, "hf_to_native");
	if (!cJSON_IsString(name)) {
		sd_err(err, -EINVAL, "%s: needs a \"name\" string", what);
		goto fail;
	}
	a->name = name->valuestring;
	a->description = cJSON_IsString(desc) ? desc->valuestring : "";
	a->config_root = cJSON_IsString(root) ? root->valuestring : NULL;
	a->architectures = cJSON_GetObjectItemCaseSensitive(a->table, "architectures");
	a->model_types = cJSON_GetObjectItemCaseSensitive(a->table, "model_types");
	a->config = cJSON_GetObjectItemCaseSensitive(a->table, "config");
	if (a->config && !cJSON_IsObject(a->config)) {
		sd_err(err, -EINVAL, "%s: \"config\" must be an object", what);
		goto fail;
	}
	if (!cJSON_IsArray(rules)) {
		sd_err(err, -EINVAL, "%s: needs an \"hf_to_native\" array of rules", what);
		goto fail;
	}
	a->rules = calloc((size_t)cJSON_GetArraySize(rules) + 1, sizeof(*a->rules));
	if (!a->rules) {
		rc = sd_err(err, -ENOMEM, "out of memory");
		goto fail;
	}
	const cJSON *j;
	cJSON_ArrayForEach(j, rules) {
		rc = load_rule(j, what, a->nrules, &a->rules[a->nrules], err);
		a->nrules++;
		if (rc < 0)
			goto fail;
	}
	*out = a;
	return 0;
fail:
	adapter_free(a);
	return rc;
}

const char *adapter_name(const struct adapter *a)
{
	return a->name;
}

const char *adapter_description(const struct adapter *a)
{
	return a->description;
}

void adapter_architectures(const struct adapter *a, char *buf, size_t len)
{
	const cJSON *v;
	size_t o = 0;

	buf[0] = '\0';
	cJSON_ArrayForEach(v, a->architectures)
		if (cJSON_IsString(v) && o < len)
			o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "",
					      v->valuestring);
}

size_t adapter_builtin_count(void)
{
	return sizeof(builtin_adapter_json) / sizeof(builtin_adapter_json[0]);
}

int adapter_builtin(size_t i, struct adapter **out, char *err)
{
	char what[128];

	snprintf(what, sizeof(what), "built-in adapter %s", builtin_adapter_json[i].file);
	return adapter_load(builtin_adapter_json[i].json,
			    strlen(builtin_adapter_json[i].json), what, out, err);
}

static bool list_has(const cJSON *list, const char *s)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, list)
		if (cJSON_IsString(v) && !strcmp(v->valuestring, s))
			return true;
	return false;
}

static int list_supported(char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < adapter_builtin_count(); i++) {
		struct adapter *a;
		char arch[256];
		if (adapter_builtin(i, &a, NULL) < 0)
			continue;
		adapter_architectures(a, arch, sizeof(arch));
		if (o < len)
			o += (size_t)snprintf(buf + o, len - o, "%s%s (%s)", o ? ", " : "",
					      a->name, arch);
		adapter_free(a);
	}
	return 0;
}

int adapter_choose(const struct source *s, const char *name,
		   struct adapter **out, char *err)
{
	const cJSON *archs = cJSON_GetObjectItemCaseSensitive(s->config, "architectures");
	const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(s->config, "model_type");
	const cJSON *arch0 = cJSON_GetArrayItem(archs, 0);
	char supported[1024];
	int rc;

	*out = NULL;
	for (int pass = 0; pass < 3; pass++) {
		for (size_t i = 0; i < adapter_builtin_count(); i++) {
			struct adapter *a;
			if ((rc = adapter_builtin(i, &a, err)) < 0)
				return rc;
			bool hit = pass == 0 ? name && !strcmp(a->name, name) :
				   pass == 1 ? !name && cJSON_IsString(arch0) &&
					       list_has(a->architectures, arch0->valuestring) :
				   !name && cJSON_IsString(mtype) &&
					       list_has(a->model_types, mtype->valuestring);
			if (hit) {
				*out = a;
				return 0;
			}
			adapter_free(a);
		}
	}
	list_supported(supported, sizeof(supported));
	if (name)
		return sd_err(err, -EINVAL, "no adapter called '%s'; supported: %s",
			      name, supported);
	if (!s->config)
		return sd_err(err, -EINVAL,
			      "%s: no config.json, so the model family is unknown; add the model's config.json or choose one with -o adapter=NAME (supported: %s)",
			      s->dir, supported);
	return sd_err(err, -EINVAL,
		      "%s/config.json: architecture %s (model_type %s) is not supported; supported: %s; choose one with -o adapter=NAME",
		      s->dir, cJSON_IsString(arch0) ? arch0->valuestring : "(none)",
		      cJSON_IsString(mtype) ? mtype->valuestring : "(none)", supported);
}

/* --- config parameters ------------------------------------------------------ */

/* The config.json value named by the table's config.<param>: a key, or a list
 * of keys tried in order, looked up under config_root when there is one. */
static const cJSON *config_param(const struct adapter *a, const struct source *s,
				 const char *param)
{
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(a->config, param);
	const cJSON *cfg = s->config;
	const cJSON *k;

	if (a->config_root)
		cfg = cJSON_GetObjectItemCaseSensitive(cfg, a->config_root);
	if (cJSON_IsString(keys))
		return cJSON_GetObjectItemCaseSensitive(cfg, keys->valuestring);
	cJSON_ArrayForEach(k, keys) {
		const cJSON *v = cJSON_IsString(k) ?
			cJSON_GetObjectItemCaseSensitive(cfg, k->valuestring) : NULL;
		if (v && !cJSON_IsNull(v))
			return v;
	}
	return NULL;
}

/* A non-negative integer parameter; *out = 0 when absent or null. */
int config_count(const struct adapter *a, const struct source *s,
			const char *param, uint64_t *out, char *err)
{
	const cJSON *v = config_param(a, s, param);

	*out = 0;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e9 ||
	    v->valuedouble != (double)(uint64_t)v->valuedouble)
		return sd_err(err, -EINVAL, "%s/config.json: \"%s\" must be a non-negative integer",
			      s->dir, v->string ? v->string : param);
	*out = (uint64_t)v->valuedouble;
	return 0;
}

int config_dtype(const struct adapter *a, const struct source *s,
			enum sd_dtype *out, char *err)
{
	static const struct { const char *name; enum sd_dtype t; } names[] = {
		{ "bfloat16", SD_BF16 }, { "float16", SD_F16 }, { "half", SD_F16 },
		{ "float32", SD_F32 }, { "float", SD_F32 }, { "float64", SD_F64 },
	};
	const cJSON *v = config_param(a, s, "dtype");

	*out = SD_BF16;         /* Automodel's default when the config says nothing */
	if (!v || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsString(v)) {
		const char *n = v->valuestring;
		if (!strncmp(n, "torch.", 6))
			n += 6;
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!strcmp(n, names[i].name)) {
				*out = names[i].t;
				return 0;
			}
	}
	return sd_err(err, -EINVAL, "%s/config.json: \"%s\" is not a dtype sdafs knows (bfloat16, float16, float32); override it with -o dtype=",
		      s->dir, v->string ? v->string : "torch_dtype");
}

void ep_range(unsigned long experts, long rank, long size,
	      unsigned long *start, unsigned long *end)
{
	if (size <= 0) {
		*start = 0;
		*end = experts;
		return;
	}
	unsigned long q = experts / (unsigned long)size;
	unsigned long rem = experts % (unsigned long)size;
	unsigned long rk = (unsigned long)rank;
	if (rk < rem) {
		*start = rk * (q + 1);
		*end = *start + q + 1;
	} else {
		*start = rk * q + rem;
		*end = *start + q;
	}
}
