/*
 * adapter_names.c — a name through a table's renames alone (see
 * adapter_rename in adapter.h).
 *
 * A PEFT adapter holds LoRA tensors, not the model's, so of a family's
 * rules only the ones that change a name and nothing else say anything
 * about them: a plain rename, and a route, which hands the rest of the name
 * to another table.  A rename that also transposes or slices experts
 * belongs to a change of layout the LoRA tensors do not have, and a drop,
 * merge, split, join or dequantization is about the model's own tensors;
 * the walk passes over all of them and goes on, so a rename after a split
 * (Nemotron-H's model. -> backbone.) still applies.  The rules are the same
 * compiled rules adapter_apply.c runs: no second list of renames.
 */
#include "adapter_apply.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

struct walk {
	const struct source *s;
	int dir;
	pcre2_match_data *md;   /* a one-pair block: enough to say "matched" */
	char *err;
};

static bool names_only(const struct rule *r)
{
	return (r->op == RULE_RENAME && !r->transpose && !r->ep_slice) || r->op == RULE_ROUTE;
}

/* An "if" of a table read at root: the expert count of config.json (the
 * model is dense without one). */
static int condition_holds(const struct walk *w, const struct adapter *a,
			   const char *root, const struct rule *r, bool *holds)
{
	struct view_opts o = { .dtype = SD_DTYPE_INVALID };
	struct apply_cfg c;
	int rc;

	*holds = true;
	if (r->cond == COND_ALWAYS)
		return 0;
	c.experts = 0;
	if (w->s->config && (rc = apply_cfg_init(&c, a, w->s, root, w->dir, &o, w->err)) < 0)
		return rc;
	*holds = (r->cond == COND_MOE) == (c.experts > 0);
	return 0;
}

static int walk(const struct walk *w, const struct adapter *a, const char *root, char **name);

/* 1 when rule i of a matches name, 0 when not; a match limit hit fails the
 * rename naming the table and the rule (never taken for "no match"). */
static int match_rule(const struct walk *w, const struct adapter *a, size_t i,
		      const char *name, pcre2_match_data *md)
{
	int m = adapter_match(a->rules[w->dir][i].re, name, md);

	if (m < 0) {
		char where[SD_ERRLEN];
		snprintf(where, sizeof(where), "%s: %s rule %zu", a->what,
			 w->dir == DIR_TO_NATIVE ? "hf_to_native" : "native_to_hf", i + 1);
		return adapter_match_failed(m, where, name, w->err);
	}
	return m;
}

/* The route's "rest" through its table, with the route's prefix put back. */
static int route(const struct walk *w, const struct adapter *a, size_t i, char **name)
{
	const struct rule *r = &a->rules[w->dir][i];
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->re, NULL);
	PCRE2_SIZE *ov;
	char *rest = NULL, *joined = NULL;
	int n, rc = 0;

	if (!md)
		return sd_err(w->err, -ENOMEM, "out of memory");
	n = pcre2_substring_number_from_name(r->re, (PCRE2_SPTR)"rest");
	ov = pcre2_get_ovector_pointer(md);
	if ((rc = match_rule(w, a, i, *name, md)) <= 0 ||
	    n < 0 || ov[2 * n] == PCRE2_UNSET || ov[2 * n + 1] == ov[2 * n]) {
		rc = rc < 0 ? rc : 0;
		goto out;       /* nothing to hand on: the name stays */
	}
	rc = 0;
	if (!(rest = strndup(*name + ov[2 * n], ov[2 * n + 1] - ov[2 * n]))) {
		rc = sd_err(w->err, -ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = walk(w, r->sub, r->route_root, &rest)) < 0)
		goto out;
	size_t len = strlen(r->route_prefix) + strlen(rest) + 1;
	if (!(joined = malloc(len))) {
		rc = sd_err(w->err, -ENOMEM, "out of memory");
		goto out;
	}
	snprintf(joined, len, "%s%s", r->route_prefix, rest);
	free(*name);
	*name = joined;
out:
	free(rest);
	pcre2_match_data_free(md);
	return rc;
}

static int walk(const struct walk *w, const struct adapter *a, const char *root, char **name)
{
	for (size_t i = 0; i < a->nrules[w->dir]; i++) {
		const struct rule *r = &a->rules[w->dir][i];
		bool holds;
		char *renamed;
		int rc;

		if (!names_only(r))
			continue;
		if ((rc = match_rule(w, a, i, *name, w->md)) < 0)
			return rc;
		if (rc == 0)
			continue;
		if ((rc = condition_holds(w, a, root, r, &holds)) < 0)
			return rc;
		if (!holds)
			continue;
		if (r->op == RULE_ROUTE)
			return route(w, a, i, name);    /* the routed table has the rest */
		if ((rc = apply_substitute(r->re, *name, r->to, &renamed, w->err)) < 0)
			return rc;
		free(*name);
		*name = renamed;
	}
	return 0;
}

int adapter_rename(const struct adapter *a, const struct source *s, int dir,
		   const char *name, char **out, char *err)
{
	struct walk w = { .s = s, .dir = dir, .err = err };
	int rc;

	*out = NULL;
	if (!(w.md = pcre2_match_data_create(1, NULL)) || !(*out = strdup(name))) {
		pcre2_match_data_free(w.md);
		return sd_err(err, -ENOMEM, "out of memory");
	}
	if ((rc = walk(&w, a, NULL, out)) < 0) {
		sd_err_prefix(err, "'%s' through the renames of %s", name, a->name);
		free(*out);
		*out = NULL;
	}
	pcre2_match_data_free(w.md);
	return rc;
}
