/*
 * adapter.c — loading adapter tables and choosing one (see adapter.h).
 *
 * A table is parsed once into compiled PCRE2 patterns and plain fields;
 * every error names the table and the rule by its position, so a user's
 * -o adapter_file= mistake points at the line to fix.  The built-in tables
 * are the JSON files of convert/adapters/, compiled in as strings.
 */
#include "adapter_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json.h"
#include "builtin_adapters.h"

#define MAX_ROUTE_DEPTH 4
#define MAX_EXPERTS 65536u     /* ten times the largest MoE layer known */

static const char *const dir_keys[DIR_COUNT] = { "hf_to_native", "native_to_hf" };

/* --- fields ------------------------------------------------------------- */

struct ctx {
	const char *what;       /* the table, for messages */
	const char *list;       /* hf_to_native or native_to_hf */
	size_t idx;             /* rule number, from 1 */
	char *err;
};

static int bad(const struct ctx *c, const char *fmt, const char *a, const char *b)
{
	char msg[512];

	snprintf(msg, sizeof(msg), fmt, a, b);
	return sd_err(c->err, -EINVAL, "%s: %s rule %zu: %s", c->what, c->list, c->idx, msg);
}

static int get_string(const struct ctx *c, const cJSON *j, const char *key,
		      bool required, char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	*out = NULL;
	if (!v && !required)
		return 0;
	if (!cJSON_IsString(v))
		return bad(c, "\"%s\" must be a string%s", key, required ? "" : " when given");
	if (!(*out = strdup(v->valuestring)))
		return sd_err(c->err, -ENOMEM, "out of memory");
	return 0;
}

static int get_bool(const struct ctx *c, const cJSON *j, const char *key, bool *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	*out = false;
	if (!v)
		return 0;
	if (!cJSON_IsBool(v))
		return bad(c, "\"%s\" must be true or false", key, "");
	*out = cJSON_IsTrue(v);
	return 0;
}

static int need_groups(const struct ctx *c, const struct rule *r,
		       const char *const *groups, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (pcre2_substring_number_from_name(r->re, (PCRE2_SPTR)groups[k]) < 0)
			return bad(c, "the pattern needs a named group (?<%s>...)", groups[k], "");
	return 0;
}

/* --- rules -------------------------------------------------------------- */

static const struct { const char *name; enum rule_op op; } ops[] = {
	{ "truncate", RULE_TRUNCATE }, { "rename", RULE_RENAME }, { "drop", RULE_DROP },
	{ "merge_experts", RULE_MERGE }, { "split_experts", RULE_SPLIT },
	{ "join", RULE_JOIN }, { "split_last", RULE_SPLIT_LAST }, { "route", RULE_ROUTE },
	{ "dequant", RULE_DEQUANT },
};

static int load_cast(const struct ctx *c, const cJSON *j, struct rule *r)
{
	char *cast;
	int rc = get_string(c, j, "cast", false, &cast);

	if (rc < 0 || !cast)
		return rc;
	if (!strcmp(cast, "adapter"))
		r->cast_adapter = true;
	else if (!dtype_is_castable_float(r->cast = dtype_parse(cast)))
		rc = bad(c, "\"cast\" is \"%s\"; use \"adapter\", F16, BF16, F32 or F64", cast, "");
	free(cast);
	return rc;
}

static int load_shape_ops(const struct ctx *c, const cJSON *j, struct rule *r)
{
	int rc;

	if ((rc = load_cast(c, j, r)) < 0 || (rc = get_bool(c, j, "transpose", &r->transpose)) < 0)
		return rc;
	return get_bool(c, j, "ep_slice", &r->ep_slice);
}

static int load_merge(const struct ctx *c, const cJSON *j, struct rule *r)
{
	static const char *const keys[3] = { "gate", "up", "down" };
	static const char *const defaults[3] = { "gate_proj", "up_proj", "down_proj" };
	static const char *const groups[] = { "prefix", "layer", "expert", "proj" };
	const cJSON *projs = cJSON_GetObjectItemCaseSensitive(j, "projections");
	int rc;

	if ((rc = get_bool(c, j, "gated", &r->gated)) < 0 ||
	    (rc = get_string(c, j, "gate_and_up", true, &r->groups[0])) < 0 ||
	    (rc = get_string(c, j, "down", true, &r->groups[1])) < 0)
		return rc;
	if (projs && !cJSON_IsObject(projs))
		return bad(c, "\"projections\" must be an object", "", "");
	for (int k = 0; k < 3; k++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(projs, keys[k]);
		if (v && !cJSON_IsString(v))
			return bad(c, "projections.%s must be a string", keys[k], "");
		if (!(r->names[k] = strdup(v ? v->valuestring : defaults[k])))
			return sd_err(c->err, -ENOMEM, "out of memory");
	}
	return need_groups(c, r, groups, 4);
}

static int load_split(const struct ctx *c, const cJSON *j, struct rule *r)
{
	char *part;
	int rc;

	if ((rc = get_bool(c, j, "gated", &r->gated)) < 0 ||
	    (rc = get_string(c, j, "part", true, &part)) < 0)
		return rc;
	if (!strcmp(part, "gate_and_up")) {
		free(part);
		if ((rc = get_string(c, j, "up", true, &r->names[PROJ_UP])) < 0)
			return rc;
		return get_string(c, j, "gate", r->gated, &r->names[PROJ_GATE]);
	}
	if (!strcmp(part, "down")) {
		free(part);
		return get_string(c, j, "down", true, &r->names[PROJ_DOWN]);
	}
	rc = bad(c, "\"part\" is \"%s\"; use \"gate_and_up\" or \"down\"", part, "");
	free(part);
	return rc;
}

static int load_join(const struct ctx *c, const cJSON *j, struct rule *r)
{
	static const char *const groups[] = { "part" };
	const cJSON *parts = cJSON_GetObjectItemCaseSensitive(j, "parts");
	int rc;

	if (!cJSON_IsArray(parts) || cJSON_GetArraySize(parts) != 2 ||
	    !cJSON_IsString(cJSON_GetArrayItem(parts, 0)) ||
	    !cJSON_IsString(cJSON_GetArrayItem(parts, 1)))
		return bad(c, "\"parts\" must list the two part names in order", "", "");
	for (int k = 0; k < 2; k++)
		if (!(r->names[k] = strdup(cJSON_GetArrayItem(parts, k)->valuestring)))
			return sd_err(c->err, -ENOMEM, "out of memory");
	if ((rc = get_string(c, j, "to", true, &r->to)) < 0 || (rc = load_shape_ops(c, j, r)) < 0)
		return rc;
	return need_groups(c, r, groups, 1);
}

static int load_split_last(const struct ctx *c, const cJSON *j, struct rule *r)
{
	const cJSON *outs = cJSON_GetObjectItemCaseSensitive(j, "outputs");

	if (!cJSON_IsArray(outs) || cJSON_GetArraySize(outs) != 2 ||
	    !cJSON_IsString(cJSON_GetArrayItem(outs, 0)) ||
	    !cJSON_IsString(cJSON_GetArrayItem(outs, 1)))
		return bad(c, "\"outputs\" must list the two output names (before and after the cut)", "", "");
	for (int k = 0; k < 2; k++)
		if (!(r->groups[k] = strdup(cJSON_GetArrayItem(outs, k)->valuestring)))
			return sd_err(c->err, -ENOMEM, "out of memory");
	return load_shape_ops(c, j, r);
}

/* dequant: the format, the scale's name, an optional new name and the
 * shape operations; the products are cast to the adapter dtype unless the
 * rule's "cast" names another. */
static int load_dequant(const struct ctx *c, const cJSON *j, struct rule *r)
{
	char *format;
	int rc;

	if ((rc = get_string(c, j, "format", true, &format)) < 0)
		return rc;
	if (!strcmp(format, "fp8_block"))
		r->format = DQ_FP8_BLOCK;
	else if (!strcmp(format, "mxfp4"))
		r->format = DQ_MXFP4;
	else
		rc = bad(c, "\"format\" is \"%s\"; use \"fp8_block\" or \"mxfp4\"", format, "");
	free(format);
	if (rc < 0 || (rc = get_string(c, j, "scale", true, &r->scale)) < 0 ||
	    (rc = get_string(c, j, "to", false, &r->to)) < 0 ||
	    (rc = get_bool(c, j, "need_scale", &r->need_scale)) < 0 ||
	    (rc = load_shape_ops(c, j, r)) < 0)
		return rc;
	if (r->cast == SD_DTYPE_INVALID)
		r->cast_adapter = true;
	return 0;
}

static int load_route(const struct ctx *c, const cJSON *j, struct rule *r, int depth)
{
	static const char *const groups[] = { "rest" };
	char *name;
	int rc;

	if ((rc = get_string(c, j, "adapter", true, &name)) < 0)
		return rc;
	if (depth >= MAX_ROUTE_DEPTH)
		rc = bad(c, "routes nest deeper than %s levels (a loop?)", "4", "");
	else if ((rc = adapter_builtin_named(name, depth + 1, &r->sub, c->err)) < 0) {
		sd_err_prefix(c->err, "%s: %s rule %zu: route to '%s'", c->what, c->list,
			      c->idx, name);
		rc = -EINVAL;   /* a bad table, not a missing file */
	}
	free(name);
	if (rc < 0 || (rc = get_string(c, j, "prefix", true, &r->route_prefix)) < 0 ||
	    (rc = get_string(c, j, "config_root", false, &r->route_root)) < 0)
		return rc;
	return need_groups(c, r, groups, 1);
}

static int load_rule(const struct ctx *c, const cJSON *j, int depth, struct rule *r)
{
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(j, "op");
	const cJSON *cond = cJSON_GetObjectItemCaseSensitive(j, "if");
	char *match, what[256];
	size_t k;
	int rc;

	memset(r, 0, sizeof(*r));
	r->cast = SD_DTYPE_INVALID;
	if (!cJSON_IsObject(j) || !cJSON_IsString(op))
		return bad(c, "needs an \"op\" string", "", "");
	for (k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
		if (!strcmp(op->valuestring, ops[k].name))
			break;
	if (k == sizeof(ops) / sizeof(ops[0]))
		return bad(c, "unknown op \"%s\" (truncate, rename, drop, merge_experts, split_experts, join, split_last, route, dequant)",
			   op->valuestring, "");
	r->op = ops[k].op;
	if (cond && !(cJSON_IsString(cond) && (!strcmp(cond->valuestring, "moe") ||
					       !strcmp(cond->valuestring, "dense"))))
		return bad(c, "\"if\" must be \"moe\" or \"dense\"", "", "");
	r->cond = !cond ? COND_ALWAYS : !strcmp(cond->valuestring, "moe") ? COND_MOE : COND_DENSE;
	if ((rc = get_string(c, j, "match", true, &match)) < 0)
		return rc;
	snprintf(what, sizeof(what), "%s: %s rule %zu", c->what, c->list, c->idx);
	rc = adapter_compile(match, what, &r->re, c->err);
	free(match);
	if (rc < 0)
		return rc;
	switch (r->op) {
	case RULE_TRUNCATE: {
		uint32_t captures = 0;
		pcre2_pattern_info(r->re, PCRE2_INFO_CAPTURECOUNT, &captures);
		if (captures < 1)
			return bad(c, "a truncate pattern captures the layer number in group 1", "", "");
		return get_string(c, j, "below", true, &r->below);
	}
	case RULE_RENAME:
		if ((rc = get_string(c, j, "to", true, &r->to)) < 0)
			return rc;
		return load_shape_ops(c, j, r);
	case RULE_DROP:
		return 0;
	case RULE_MERGE:
		return load_merge(c, j, r);
	case RULE_SPLIT:
		return load_split(c, j, r);
	case RULE_JOIN:
		return load_join(c, j, r);
	case RULE_SPLIT_LAST:
		return load_split_last(c, j, r);
	case RULE_ROUTE:
		return load_route(c, j, r, depth);
	case RULE_DEQUANT:
		return load_dequant(c, j, r);
	}
	return 0;
}

static void free_rule(struct rule *r)
{
	pcre2_code_free(r->re);
	free(r->to);
	free(r->below);
	for (int k = 0; k < 3; k++)
		free(r->names[k]);
	free(r->groups[0]);
	free(r->groups[1]);
	free(r->route_prefix);
	free(r->route_root);
	free(r->scale);
	adapter_free(r->sub);
}

void adapter_free(struct adapter *a)
{
	if (!a)
		return;
	for (int d = 0; d < DIR_COUNT; d++) {
		for (size_t i = 0; i < a->nrules[d]; i++)
			free_rule(&a->rules[d][i]);
		free(a->rules[d]);
		pcre2_code_free(a->detect[d]);
	}
	pcre2_code_free(a->keep_f32);
	cJSON_Delete(a->table);
	free(a->what);
	free(a);
}

/* --- tables ------------------------------------------------------------- */

/* "tied_lm_head": {"lm_head": NAME, "embedding": NAME}, native names. */
static int load_tie(struct adapter *a, const char *what, char *err)
{
	const cJSON *tie = cJSON_GetObjectItemCaseSensitive(a->table, "tied_lm_head");
	const cJSON *head = cJSON_GetObjectItemCaseSensitive(tie, "lm_head");
	const cJSON *emb = cJSON_GetObjectItemCaseSensitive(tie, "embedding");

	if (!tie)
		return 0;
	if (!cJSON_IsString(head) || !cJSON_IsString(emb) || !head->valuestring[0] ||
	    !emb->valuestring[0] || !strcmp(head->valuestring, emb->valuestring))
		return sd_err(err, -EINVAL, "%s: \"tied_lm_head\" must be an object naming two different native tensors, e.g. {\"lm_head\": \"lm_head.weight\", \"embedding\": \"model.embed_tokens.weight\"}",
			      what);
	a->tied_lm_head = head->valuestring;
	a->tied_embedding = emb->valuestring;
	return 0;
}

static int load_pattern(const cJSON *j, const char *key, const char *what,
			pcre2_code **out, char *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	char where[256];

	*out = NULL;
	if (!v)
		return 0;
	snprintf(where, sizeof(where), "%s: \"%s\"", what, key);
	if (!cJSON_IsString(v))
		return sd_err(err, -EINVAL, "%s must be a pattern string", where);
	return adapter_compile(v->valuestring, where, out, err);
}

int adapter_load_depth(const char *json, size_t len, const char *what,
		       int depth, struct adapter **out, char *err)
{
	struct adapter *a = calloc(1, sizeof(*a));
	int rc = -EINVAL;

	*out = NULL;
	if (!a || !(a->what = strdup(what))) {
		free(a);
		return sd_err(err, -ENOMEM, "out of memory");
	}
	if ((rc = sd_json_parse(json, len, what, NULL, &a->table, err)) < 0)
		goto fail;
	if (!cJSON_IsObject(a->table)) {
		rc = sd_err(err, -EINVAL, "%s: not a JSON object", what);
		goto fail;
	}
	const cJSON *t = a->table;
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "name");
	const cJSON *desc = cJSON_GetObjectItemCaseSensitive(t, "description");
	const cJSON *root = cJSON_GetObjectItemCaseSensitive(t, "config_root");
	const cJSON *detect = cJSON_GetObjectItemCaseSensitive(t, "detect");
	if (!cJSON_IsString(name)) {
		rc = sd_err(err, -EINVAL, "%s: needs a \"name\" string", what);
		goto fail;
	}
	a->name = name->valuestring;
	a->description = cJSON_IsString(desc) ? desc->valuestring : "";
	a->config_root = cJSON_IsString(root) ? root->valuestring : NULL;
	a->architectures = cJSON_GetObjectItemCaseSensitive(t, "architectures");
	a->model_types = cJSON_GetObjectItemCaseSensitive(t, "model_types");
	a->config = cJSON_GetObjectItemCaseSensitive(t, "config");
	if (a->config && !cJSON_IsObject(a->config)) {
		rc = sd_err(err, -EINVAL, "%s: \"config\" must be an object", what);
		goto fail;
	}
	const cJSON *same = cJSON_GetObjectItemCaseSensitive(t, "same_names");
	if (same && !cJSON_IsBool(same)) {
		rc = sd_err(err, -EINVAL, "%s: \"same_names\" must be true or false", what);
		goto fail;
	}
	a->same_names = cJSON_IsTrue(same);
	if ((rc = load_pattern(detect, "hf", what, &a->detect[DIR_TO_NATIVE], err)) < 0 ||
	    (rc = load_pattern(detect, "native", what, &a->detect[DIR_TO_HF], err)) < 0 ||
	    (rc = load_pattern(t, "keep_f32", what, &a->keep_f32, err)) < 0 ||
	    (rc = load_tie(a, what, err)) < 0)
		goto fail;
	rc = -EINVAL;
	for (int d = 0; d < DIR_COUNT; d++) {
		const cJSON *rules = cJSON_GetObjectItemCaseSensitive(t, dir_keys[d]);
		const cJSON *j;
		if (!rules)
			continue;
		if (!cJSON_IsArray(rules)) {
			rc = sd_err(err, -EINVAL, "%s: \"%s\" must be an array of rules", what, dir_keys[d]);
			goto fail;
		}
		a->rules[d] = calloc((size_t)cJSON_GetArraySize(rules) + 1, sizeof(struct rule));
		if (!a->rules[d]) {
			rc = sd_err(err, -ENOMEM, "out of memory");
			goto fail;
		}
		cJSON_ArrayForEach(j, rules) {
			struct ctx c = { what, dir_keys[d], a->nrules[d] + 1, err };
			rc = load_rule(&c, j, depth, &a->rules[d][a->nrules[d]]);
			a->nrules[d]++;
			if (rc < 0)
				goto fail;
		}
	}
	if (!a->rules[DIR_TO_NATIVE] && !a->rules[DIR_TO_HF]) {
		rc = sd_err(err, -EINVAL, "%s: needs \"hf_to_native\" or \"native_to_hf\" rules", what);
		goto fail;
	}
	*out = a;
	return 0;
fail:
	adapter_free(a);
	return rc;
}

int adapter_load(const char *json, size_t len, const char *what,
		 struct adapter **out, char *err)
{
	return adapter_load_depth(json, len, what, 0, out, err);
}

int adapter_load_file(const char *path, struct adapter **out, char *err)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long n = -1;
	int rc;

	*out = NULL;
	if (!f)
		return sd_err(err, -errno, "adapter_file %s: %s", path, strerror(errno));
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (16l << 20) &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
	    fread(buf, 1, (size_t)n, f) == (size_t)n)
		rc = adapter_load(buf, (size_t)n, path, out, err);
	else
		rc = sd_err(err, -EINVAL, "adapter_file %s: cannot read it (or it is over 16 MiB)", path);
	free(buf);
	fclose(f);
	return rc;
}

const char *adapter_name(const struct adapter *a)
{
	return a->name;
}

bool adapter_same_names(const struct adapter *a)
{
	return a->same_names;
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

static int builtin_at(size_t i, int depth, struct adapter **out, char *err)
{
	char what[128];

	snprintf(what, sizeof(what), "built-in adapter %s", builtin_adapter_json[i].file);
	return adapter_load_depth(builtin_adapter_json[i].json,
				  strlen(builtin_adapter_json[i].json), what, depth, out, err);
}

int adapter_builtin(size_t i, struct adapter **out, char *err)
{
	return builtin_at(i, 0, out, err);
}

bool adapter_is_builtin(const char *name)
{
	for (size_t i = 0; i < adapter_builtin_count(); i++)
		if (!strcmp(builtin_adapter_json[i].file, name))
			return true;
	return false;
}

int adapter_builtin_named(const char *name, int depth, struct adapter **out, char *err)
{
	for (size_t i = 0; i < adapter_builtin_count(); i++)
		if (!strcmp(builtin_adapter_json[i].file, name))
			return builtin_at(i, depth, out, err);
	return sd_err(err, -ENOENT, "no built-in adapter called '%s'", name);
}

static bool list_has(const cJSON *list, const char *s)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, list)
		if (cJSON_IsString(v) && !strcmp(v->valuestring, s))
			return true;
	return false;
}

void adapter_supported(char *buf, size_t len)
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
}

bool adapter_matches_config(const struct adapter *a, const struct source *s)
{
	const cJSON *archs = cJSON_GetObjectItemCaseSensitive(s->config, "architectures");
	const cJSON *arch0 = cJSON_GetArrayItem(archs, 0);
	const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(s->config, "model_type");

	if (cJSON_IsString(arch0))
		return list_has(a->architectures, arch0->valuestring);
	return cJSON_IsString(mtype) && list_has(a->model_types, mtype->valuestring);
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
	if (name) {
		if ((rc = adapter_builtin_named(name, 0, out, err)) != -ENOENT)
			return rc;
	} else {
		for (size_t i = 0; i < adapter_builtin_count(); i++) {
			struct adapter *a;
			if ((rc = adapter_builtin(i, &a, err)) < 0)
				return rc;
			if (adapter_matches_config(a, s)) {
				*out = a;
				return 0;
			}
			adapter_free(a);
		}
	}
	adapter_supported(supported, sizeof(supported));
	if (name)
		return sd_err(err, -EINVAL, "no adapter called '%s'; supported: %s (see sdafs --list-adapters)",
			      name, supported);
	if (!s->config)
		return sd_err(err, -EINVAL,
			      "%s: no config.json, so the model family is unknown; add the model's config.json or choose one with -o adapter=NAME (supported: %s)",
			      s->dir, supported);
	return sd_err(err, -EINVAL,
		      "%s/config.json: architecture %s (model_type %s) is not supported; supported: %s; choose one with -o adapter=NAME or describe the family with -o adapter_file=PATH",
		      s->dir, cJSON_IsString(arch0) ? arch0->valuestring : "(none)",
		      cJSON_IsString(mtype) ? mtype->valuestring : "(none)", supported);
}

/* --- config parameters ------------------------------------------------------ */

/* The value named by the table's config.<param>: a key, or a list of keys
 * tried in order, looked up in the object cfg. */
static const cJSON *config_param(const struct adapter *a, const cJSON *cfg,
				 const char *param)
{
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(a->config, param);
	const cJSON *k;

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

/* A non-negative integer parameter; 0 when absent or null. */
static int config_count(const struct adapter *a, const struct source *s,
			const cJSON *cfg, const char *param, uint64_t *out, char *err)
{
	const cJSON *v = config_param(a, cfg, param);

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

static int config_dtype(const struct adapter *a, const struct source *s,
			const cJSON *cfg, enum sd_dtype *out, char *err)
{
	static const struct { const char *name; enum sd_dtype t; } names[] = {
		{ "bfloat16", SD_BF16 }, { "float16", SD_F16 }, { "half", SD_F16 },
		{ "float32", SD_F32 }, { "float", SD_F32 }, { "float64", SD_F64 },
	};
	const cJSON *v = config_param(a, cfg, "dtype");

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

int apply_cfg_init(struct apply_cfg *c, const struct adapter *a,
		   const struct source *s, const char *root, int dir,
		   const struct view_opts *o, char *err)
{
	int rc;

	memset(c, 0, sizeof(*c));
	c->a = a;
	c->dir = dir;
	c->config = s->config;
	if (!root)
		root = a->config_root;
	if (root) {
		c->config = cJSON_GetObjectItemCaseSensitive(s->config, root);
		if (!cJSON_IsObject(c->config))
			return sd_err(err, -EINVAL, "%s/config.json: adapter %s reads \"%s\", which is missing or not an object",
				      s->dir, a->name, root);
	}
	if ((rc = config_count(a, s, c->config, "experts", &c->experts, err)) < 0 ||
	    (rc = config_count(a, s, c->config, "layers", &c->layers, err)) < 0 ||
	    (rc = config_count(a, s, c->config, "moe_intermediate", &c->moe_inter, err)) < 0 ||
	    (rc = config_dtype(a, s, c->config, &c->dtype, err)) < 0)
		return rc;
	/* A split makes one tensor per expert from a tensor that may hold no
	 * bytes at all, so the count itself must stay sane. */
	if (c->experts > MAX_EXPERTS)
		return sd_err(err, -EINVAL, "%s/config.json: %" PRIu64 " routed experts is more than sdafs handles (%u)",
			      s->dir, c->experts, MAX_EXPERTS);
	if (o->dtype != SD_DTYPE_INVALID)
		c->dtype = o->dtype;
	return 0;
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
