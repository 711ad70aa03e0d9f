/*
 * adapter_apply.c — running an adapter table over a source: the plan.
 *
 * Each source tensor becomes an *item*: a name plus the recipe built so
 * far (none while the bytes are the source's).  The item runs down the
 * rules of the chosen direction in order.  A rename rewrites the name and
 * may transpose, slice or cast; a split turns one item into several that
 * carry on from the next rule, so a split grouped tensor still meets the
 * renames after it; a route hands the rest of the name to another adapter;
 * merge and join file the item into a group that is built once every
 * tensor has been seen (adapter_groups.c).  An item that reaches the end of
 * the list is an output tensor.
 */
#include "adapter_apply.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* --- names -------------------------------------------------------------- */

int apply_substitute(const pcre2_code *re, const char *subject, const char *repl,
		     char **out, char *err)
{
	PCRE2_SIZE len = strlen(subject) + strlen(repl) + 64;

	uint32_t jit = 0;       /* PCRE2_NO_JIT once the JIT's stack ran out */

	for (;;) {
		char *buf = malloc(len);
		if (!buf)
			return sd_err(err, -ENOMEM, "out of memory");
		PCRE2_SIZE got = len;
		int rc = pcre2_substitute(re, (PCRE2_SPTR)subject, PCRE2_ZERO_TERMINATED,
					  0, jit | PCRE2_SUBSTITUTE_UNSET_EMPTY |
					  PCRE2_SUBSTITUTE_EXTENDED |
					  PCRE2_SUBSTITUTE_OVERFLOW_LENGTH, NULL,
					  adapter_match_context(),
					  (PCRE2_SPTR)repl, PCRE2_ZERO_TERMINATED,
					  (PCRE2_UCHAR *)buf, &got);
		if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !jit) {
			free(buf);
			jit = PCRE2_NO_JIT;
			continue;
		}
		if (rc == PCRE2_ERROR_NOMEMORY) {
			free(buf);
			len = got + 1;
			continue;
		}
		if (rc < 0) {
			PCRE2_UCHAR msg[256];
			pcre2_get_error_message(rc, msg, sizeof(msg));
			free(buf);
			return sd_err(err, -EINVAL, "replacement \"%s\" on '%s': %s",
				      repl, subject, (char *)msg);
		}
		if (!buf[0] || strlen(buf) > ST_MAX_NAME) {
			free(buf);
			return sd_err(err, -EINVAL, "replacement \"%s\" turns '%s' into an empty or over-long name",
				      repl, subject);
		}
		*out = buf;
		return 0;
	}
}

/* A template with ${expert} replaced by e, then the rule's own groups. */
static int expert_name(const struct rule *r, const char *tmpl, const char *subject,
		       uint64_t e, char **out, char *err)
{
	const char *hole = strstr(tmpl, "${expert}");
	char *t;
	int rc;

	if (!hole)
		return apply_substitute(r->re, subject, tmpl, out, err);
	size_t n = strlen(tmpl) + 24;
	if (!(t = malloc(n)))
		return sd_err(err, -ENOMEM, "out of memory");
	snprintf(t, n, "%.*s%" PRIu64 "%s", (int)(hole - tmpl), tmpl, e, hole + 9);
	rc = expert_name(r, t, subject, e, out, err);
	free(t);
	return rc;
}

uint64_t apply_group_number(const struct apply *ap, const char *subject, int n)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ap->md);
	size_t i0 = ov[2 * n], i1 = ov[2 * n + 1];
	uint64_t v = 0;

	if (n < 0 || i0 == PCRE2_UNSET || i1 - i0 > 9 || i0 == i1)
		return UINT64_MAX;
	for (size_t i = i0; i < i1; i++) {
		if (subject[i] < '0' || subject[i] > '9')
			return UINT64_MAX;
		v = v * 10 + (uint64_t)(subject[i] - '0');
	}
	return v;
}

void apply_group_text(const struct apply *ap, const struct rule *r,
		      const char *subject, const char *group, char *buf, size_t len)
{
	int n = pcre2_substring_number_from_name(r->re, (PCRE2_SPTR)group);
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ap->md);

	buf[0] = '\0';
	if (n < 0)
		return;
	size_t i0 = ov[2 * n], i1 = ov[2 * n + 1];
	if (i0 != PCRE2_UNSET && i1 - i0 < len) {
		memcpy(buf, subject + i0, i1 - i0);
		buf[i1 - i0] = '\0';
	}
}

/* --- items -------------------------------------------------------------- */

struct item {
	char *name;
	size_t src;             /* the source tensor it starts from */
	struct recipe *r;       /* NULL: the source bytes unchanged */
	int node;               /* its current node in r */
};

static void item_free(struct item *it)
{
	free(it->name);
	if (it->r) {
		recipe_free(it->r);
		free(it->r);
	}
	memset(it, 0, sizeof(*it));
}

static int item_recipe(struct apply *ap, struct item *it)
{
	if (it->r)
		return 0;
	if (!(it->r = calloc(1, sizeof(*it->r))))
		return sd_err(ap->err, -ENOMEM, "out of memory");
	it->node = plan_src(it->r, ap->s, it->src, ap->err);
	return it->node < 0 ? it->node : 0;
}

static const struct rx_node *item_shape(const struct apply *ap, const struct item *it,
					struct rx_node *tmp)
{
	const struct src_tensor *t = &ap->s->tensors[it->src];

	if (it->r)
		return &it->r->nodes[it->node];
	memset(tmp, 0, sizeof(*tmp));
	tmp->dtype = t->dtype;
	tmp->ndim = t->ndim;
	memcpy(tmp->shape, t->shape, sizeof(tmp->shape));
	return tmp;
}

/* Apply one recipe operation to the item; op is one of the rx_* builders
 * taking (recipe, node, a, b). */
static int item_cast(struct apply *ap, struct item *it, enum sd_dtype to)
{
	struct rx_node tmp;
	const struct rx_node *n = item_shape(ap, it, &tmp);
	int rc;

	if (to == SD_DTYPE_INVALID || n->dtype == to || !dtype_is_float(n->dtype))
		return 0;
	if (!dtype_is_castable_float(n->dtype))
		return sd_err(ap->err, -EINVAL, "tensor '%s': cannot cast %s to %s",
			      ap->s->tensors[it->src].name, dtype_name(n->dtype), dtype_name(to));
	if ((rc = item_recipe(ap, it)) < 0)
		return rc;
	it->node = rx_cast(it->r, it->node, to, ap->err);
	return it->node < 0 ? it->node : 0;
}

static int item_transpose(struct apply *ap, struct item *it)
{
	int rc = item_recipe(ap, it);

	if (rc < 0)
		return rc;
	it->node = rx_transpose_last2(it->r, it->node, ap->err);
	return it->node < 0 ? it->node : 0;
}

/* Keep dim 0 rows [ep_start, ep_end): this rank's experts of a grouped tensor. */
static int item_ep_slice(struct apply *ap, struct item *it)
{
	struct rx_node tmp;
	const struct rx_node *n = item_shape(ap, it, &tmp);
	int rc;

	if (ap->ep_end - ap->ep_start == ap->cfg.experts)
		return 0;
	if (n->ndim < 1 || n->shape[0] != ap->cfg.experts)
		return sd_err(ap->err, -EINVAL, "tensor '%s': expected its first dimension to be the %" PRIu64 " experts, got %" PRIu64,
			      ap->s->tensors[it->src].name, ap->cfg.experts, n->ndim ? n->shape[0] : 0);
	if ((rc = item_recipe(ap, it)) < 0)
		return rc;
	it->node = rx_slice0(it->r, it->node, ap->ep_start, ap->ep_end, ap->err);
	return it->node < 0 ? it->node : 0;
}

/* The shape operations a rename, join or split_last rule asks for. */
static int apply_shape_ops(struct apply *ap, const struct rule *r, struct item *it)
{
	int rc = 0;

	if (r->ep_slice && (rc = item_ep_slice(ap, it)) < 0)
		return rc;
	if (r->transpose && (rc = item_transpose(ap, it)) < 0)
		return rc;
	return item_cast(ap, it, r->cast_adapter ? ap->cfg.dtype : r->cast);
}

static int emit(struct apply *ap, struct item *it)
{
	struct rx_node tmp;
	char *name = it->name;
	int rc;

	/* An explicit dtype in an HF view casts every floating tensor, except
	 * those Automodel keeps in F32. */
	if (ap->cfg.dir == DIR_TO_HF && ap->o->dtype != SD_DTYPE_INVALID) {
		int keep = ap->cfg.a->keep_f32 ? adapter_match(ap->cfg.a->keep_f32, name, ap->md) : 0;
		if (keep < 0) {
			char where[SD_ERRLEN];
			snprintf(where, sizeof(where), "%s: \"keep_f32\"", ap->cfg.a->what);
			return adapter_match_failed(keep, where, name, ap->err);
		}
		if (!keep && (rc = item_cast(ap, it, ap->o->dtype)) < 0)
			return rc;
	}
	if (!it->r && ap->s->tensors[it->src].nchunks && (rc = item_recipe(ap, it)) < 0)
		return rc;      /* stored in chunks: assembled on read */
	if (ap->prefix[0]) {
		size_t n = strlen(ap->prefix) + strlen(it->name) + 1;
		if (!(name = malloc(n)))
			return sd_err(ap->err, -ENOMEM, "out of memory");
		snprintf(name, n, "%s%s", ap->prefix, it->name);
	}
	rc = plan_add(ap->p, name, item_shape(ap, it, &tmp), (uint32_t)it->src, it->r, ap->err);
	if (name != it->name)
		free(name);
	if (rc == 0)
		it->r = NULL;   /* the plan owns the recipe now */
	return rc;
}

/* --- the rule loop ------------------------------------------------------ */

static int run_item(struct apply *ap, struct item *it, size_t from);

/* A pattern that hit a limit fails the plan, naming the table and rule. */
static int rule_match_failed(struct apply *ap, size_t i, int code, const char *name)
{
	char where[SD_ERRLEN];

	snprintf(where, sizeof(where), "%s: %s rule %zu", ap->cfg.a->what,
		 ap->cfg.dir == DIR_TO_NATIVE ? "hf_to_native" : "native_to_hf", i + 1);
	return adapter_match_failed(code, where, name, ap->err);
}

static bool cond_holds(const struct apply *ap, const struct rule *r)
{
	return r->cond == COND_ALWAYS || (r->cond == COND_MOE) == (ap->cfg.experts > 0);
}

static int need_source(struct apply *ap, const struct item *it)
{
	if (it->r)
		return sd_err(ap->err, -EINVAL, "tensor '%s': a rule that groups or splits experts must come before any transpose or cast of it",
			      ap->s->tensors[it->src].name);
	return 0;
}

/* One per-expert tensor of a split: expert e of it, the gate (part 0) or up
 * (part 1) half when gated, transposed back to [out, in]. */
static int split_one(struct apply *ap, const struct rule *r, const struct item *it,
		     uint64_t e, int proj, size_t next)
{
	const struct src_tensor *t = &ap->s->tensors[it->src];
	uint64_t I = ap->cfg.moe_inter;
	struct item d = { .src = it->src };
	int rc;

	if ((rc = expert_name(r, r->names[proj], it->name, e, &d.name, ap->err)) < 0 ||
	    (rc = item_recipe(ap, &d)) < 0)
		goto out;
	d.node = rx_index0(d.r, d.node, e, ap->err);
	if (d.node >= 0 && r->gated && proj != PROJ_DOWN)
		d.node = proj == PROJ_GATE ? rx_slice_last(d.r, d.node, 0, I, ap->err) :
			 rx_slice_last(d.r, d.node, I, t->shape[2], ap->err);
	if (d.node >= 0)
		d.node = rx_transpose_last2(d.r, d.node, ap->err);
	rc = d.node < 0 ? d.node : run_item(ap, &d, next);
out:
	item_free(&d);
	return rc;
}

/* split_experts: one grouped [E, H, X] tensor -> per-expert tensors with
 * global expert ids, gate before up.  *passed: the rule let it through. */
static int split_experts(struct apply *ap, const struct rule *r, struct item *it,
			 size_t next, bool *passed)
{
	const struct src_tensor *t = &ap->s->tensors[it->src];
	uint64_t I = ap->cfg.moe_inter;
	bool down = r->names[PROJ_DOWN] != NULL;
	int rc;

	*passed = false;
	if ((rc = need_source(ap, it)) < 0)
		return rc;
	if (down && !(t->ndim == 3 && t->shape[1] == I)) {
		*passed = true;         /* Automodel passes it through unchanged */
		return 0;
	}
	if (t->ndim != 3 || t->shape[0] != ap->cfg.experts)
		return sd_err(ap->err, -EINVAL, "tensor '%s': expected [%" PRIu64 " experts, ., .], got %d dims with first dimension %" PRIu64,
			      t->name, ap->cfg.experts, t->ndim, t->ndim ? t->shape[0] : 0);
	if (r->gated && !down && !(I > 0 && I < t->shape[2]))
		return sd_err(ap->err, -EINVAL, "tensor '%s': cannot split gate and up at moe_intermediate_size %" PRIu64 " of a last dimension of %" PRIu64,
			      t->name, I, t->shape[2]);
	for (uint64_t e = ap->ep_start; e < ap->ep_end; e++) {
		if (down)
			rc = split_one(ap, r, it, e, PROJ_DOWN, next);
		else if (r->gated && (rc = split_one(ap, r, it, e, PROJ_GATE, next)) == 0)
			rc = split_one(ap, r, it, e, PROJ_UP, next);
		else if (!r->gated)
			rc = split_one(ap, r, it, e, PROJ_UP, next);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* split_last: one tensor -> the parts before and after moe_intermediate_size
 * on the last dim. */
static int split_last(struct apply *ap, const struct rule *r, struct item *it, size_t next)
{
	const struct src_tensor *t = &ap->s->tensors[it->src];
	uint64_t I = ap->cfg.moe_inter, last = t->ndim ? t->shape[t->ndim - 1] : 0;
	int rc;

	if ((rc = need_source(ap, it)) < 0)
		return rc;
	if (!(I > 0 && I < last))
		return sd_err(ap->err, -EINVAL, "tensor '%s': cannot cut its last dimension of %" PRIu64 " at moe_intermediate_size %" PRIu64,
			      t->name, last, I);
	for (int k = 0; k < 2; k++) {
		struct item d = { .src = it->src };
		if ((rc = apply_substitute(r->re, it->name, r->groups[k], &d.name, ap->err)) < 0 ||
		    (rc = item_recipe(ap, &d)) < 0 ||
		    (r->ep_slice && (rc = item_ep_slice(ap, &d)) < 0)) {
			item_free(&d);
			return rc;
		}
		d.node = rx_slice_last(d.r, d.node, k ? I : 0, k ? last : I, ap->err);
		if (d.node < 0) {
			rc = d.node;
			item_free(&d);
			return rc;
		}
		struct rule ops = *r;
		ops.ep_slice = false;   /* done above, before the cut */
		if ((rc = apply_shape_ops(ap, &ops, &d)) == 0)
			rc = run_item(ap, &d, next);
		item_free(&d);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * dequant: the weight and the sibling its "scale" template names (a source
 * tensor) become one dequantizing recipe; then the optional rename and the
 * shape operations.  A weight without its scale goes on unchanged, as
 * Automodel dequantizes only weights that have one, unless the rule needs it.
 */
static int dequant(struct apply *ap, const struct rule *r, struct item *it)
{
	const char *wname = ap->s->tensors[it->src].name;
	char *sname, *renamed;
	int q, sc, rc;

	if ((rc = apply_substitute(r->re, it->name, r->scale, &sname, ap->err)) < 0)
		return rc;
	long s = source_find(ap->s, sname);
	if (s < 0) {
		rc = r->need_scale ? sd_err(ap->err, -EINVAL, "tensor '%s': its scales '%s' are not in the checkpoint",
					    wname, sname) : 0;
		free(sname);
		return rc;
	}
	if (it->r) {
		free(sname);
		return sd_err(ap->err, -EINVAL, "tensor '%s': a dequant rule must come before any transpose or cast of it",
			      wname);
	}
	enum sd_dtype to = r->cast_adapter ? ap->cfg.dtype : r->cast;
	if ((rc = item_recipe(ap, it)) < 0 ||
	    (sc = rc = plan_src(it->r, ap->s, (size_t)s, ap->err)) < 0)
		goto out;
	q = it->node;
	it->node = rc = r->format == DQ_FP8_BLOCK ? rx_dequant_fp8_block(it->r, q, sc, to, ap->err)
						   : rx_dequant_mxfp4(it->r, q, sc, to, ap->err);
	if (rc < 0) {
		sd_err_prefix(ap->err, "tensor '%s' with its scales '%s'", wname, sname);
		goto out;
	}
	if (r->to) {
		if ((rc = apply_substitute(r->re, it->name, r->to, &renamed, ap->err)) < 0)
			goto out;
		free(it->name);
		it->name = renamed;
	}
	struct rule ops = *r;
	ops.cast = SD_DTYPE_INVALID;    /* the products already have it */
	ops.cast_adapter = false;
	rc = apply_shape_ops(ap, &ops, it);
out:
	free(sname);
	return rc;
}

static int route(struct apply *ap, size_t ri, const struct rule *r, struct item *it)
{
	char rest[ST_MAX_NAME + 1];
	int rc;

	if (!ap->subs[ri]) {
		char prefix[512];
		snprintf(prefix, sizeof(prefix), "%s%s", ap->prefix, r->route_prefix);
		if ((rc = apply_new(&ap->subs[ri], r->sub, ap->s, ap->o, ap->p, r->route_root,
				    ap->cfg.dir, prefix, ap->err)) < 0)
			return rc;
	}
	apply_group_text(ap, r, it->name, "rest", rest, sizeof(rest));
	if (!rest[0])
		return sd_err(ap->err, -EINVAL, "tensor '%s': nothing left after the route prefix",
			      ap->s->tensors[it->src].name);
	free(it->name);
	if (!(it->name = strdup(rest)))
		return sd_err(ap->err, -ENOMEM, "out of memory");
	return run_item(ap->subs[ri], it, 0);
}

static int run_item(struct apply *ap, struct item *it, size_t from)
{
	const struct adapter *a = ap->cfg.a;
	int d = ap->cfg.dir;
	int rc;

	for (size_t i = from; i < a->nrules[d]; i++) {
		const struct rule *r = &a->rules[d][i];
		bool passed;
		if (!cond_holds(ap, r))
			continue;
		int matched = adapter_match(r->re, it->name, ap->md);
		if (matched < 0)
			return rule_match_failed(ap, i, matched, it->name);
		if (!matched)
			continue;
		switch (r->op) {
		case RULE_TRUNCATE:
			if (ap->cfg.layers > 0 &&
			    apply_group_number(ap, it->name, 1) >= ap->cfg.layers)
				return 0;       /* a layer the model does not have */
			break;
		case RULE_RENAME: {
			char *renamed;
			if ((rc = apply_substitute(r->re, it->name, r->to, &renamed, ap->err)) < 0)
				return rc;
			free(it->name);
			it->name = renamed;
			if ((rc = apply_shape_ops(ap, r, it)) < 0)
				return rc;
			break;
		}
		case RULE_DROP:
			return 0;
		case RULE_MERGE:        /* takes a dequantized expert's recipe along */
			return apply_claim_expert(ap, r, it->name, it->src, &it->r);
		case RULE_JOIN:
			if ((rc = need_source(ap, it)) < 0)
				return rc;
			return apply_claim_part(ap, r, it->name, it->src);
		case RULE_SPLIT:
			if ((rc = split_experts(ap, r, it, i + 1, &passed)) < 0 || !passed)
				return rc;
			break;
		case RULE_SPLIT_LAST:
			return split_last(ap, r, it, i + 1);
		case RULE_ROUTE:
			return route(ap, i, r, it);
		case RULE_DEQUANT:
			if ((rc = dequant(ap, r, it)) < 0)
				return rc;
			break;
		}
	}
	return emit(ap, it);
}

/* --- one application ---------------------------------------------------- */

int apply_new(struct apply **out, const struct adapter *a, const struct source *s,
	      const struct view_opts *o, struct plan *p, const char *root, int dir,
	      const char *prefix, char *err)
{
	struct apply *ap = calloc(1, sizeof(*ap));
	uint32_t maxgroups = 1;
	int rc;

	*out = NULL;
	if (!ap)
		return sd_err(err, -ENOMEM, "out of memory");
	ap->s = s;
	ap->o = o;
	ap->p = p;
	ap->err = err;
	ap->subs = calloc(a->nrules[dir] + 1, sizeof(*ap->subs));
	ap->prefix = strdup(prefix);
	if (!ap->subs || !ap->prefix) {
		apply_free(ap);
		return sd_err(err, -ENOMEM, "out of memory");
	}
	if ((rc = apply_cfg_init(&ap->cfg, a, s, root, dir, o, err)) < 0) {
		apply_free(ap);
		return rc;
	}
	ep_range(ap->cfg.experts, o->ep_rank, ap->cfg.experts ? o->ep_size : 0,
		 &ap->ep_start, &ap->ep_end);
	if (ap->cfg.experts && ap->ep_end == ap->ep_start) {
		rc = sd_err(err, -EINVAL, "ep_rank=%ld of ep_size=%ld holds no expert (the model has %" PRIu64 "); use an ep_size of at most the expert count",
			    o->ep_rank, o->ep_size, ap->cfg.experts);
		apply_free(ap);
		return rc;
	}
	for (size_t i = 0; i < a->nrules[dir]; i++) {
		uint32_t c = 0;
		pcre2_pattern_info(a->rules[dir][i].re, PCRE2_INFO_CAPTURECOUNT, &c);
		if (c + 1 > maxgroups)
			maxgroups = c + 1;
	}
	if (!(ap->md = pcre2_match_data_create(maxgroups, NULL))) {
		apply_free(ap);
		return sd_err(err, -ENOMEM, "out of memory");
	}
	if (!p->experts && ap->cfg.experts) {
		p->experts = ap->cfg.experts;
		p->ep_start = ap->ep_start;
		p->ep_end = ap->ep_end;
		p->dtype = ap->cfg.dtype;
	}
	*out = ap;
	return 0;
}

/* Build the groups of this application and of its routes. */
static int finish(struct apply *ap)
{
	int rc = apply_build_groups(ap);

	for (size_t i = 0; rc == 0 && i < ap->cfg.a->nrules[ap->cfg.dir]; i++)
		if (ap->subs[i])
			rc = finish(ap->subs[i]);
	return rc;
}

void apply_free(struct apply *ap)
{
	if (!ap)
		return;
	for (size_t i = 0; ap->subs && ap->cfg.a && i < ap->cfg.a->nrules[ap->cfg.dir]; i++)
		apply_free(ap->subs[i]);
	free(ap->subs);
	apply_free_groups(ap);
	pcre2_match_data_free(ap->md);
	free(ap->prefix);
	free(ap);
}

int adapter_detect_names(const struct adapter *a,
			 const char *(*name_at)(const void *ctx, uint32_t i),
			 const void *ctx, size_t n, long first[DIR_COUNT], char *err)
{
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);

	first[DIR_TO_NATIVE] = first[DIR_TO_HF] = -1;
	if (!md)
		return sd_err(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		for (int d = 0; d < DIR_COUNT; d++) {
			const char *name = name_at(ctx, (uint32_t)i);
			int m = first[d] < 0 && a->detect[d] ? adapter_match(a->detect[d], name, md) : 0;
			if (m < 0) {
				char where[SD_ERRLEN];
				pcre2_match_data_free(md);
				snprintf(where, sizeof(where), "%s: \"detect\" \"%s\"", a->what,
					 d == DIR_TO_NATIVE ? "hf" : "native");
				return adapter_match_failed(m, where, name, err);
			}
			if (m)
				first[d] = (long)i;
		}
	pcre2_match_data_free(md);
	return 0;
}

int adapter_detect(const struct adapter *a, const struct source *s, int *dir,
		   char *err)
{
	long seen[DIR_COUNT];
	int rc = adapter_detect_names(a, source_tensor_name, s, s->ntensors, seen, err);

	if (rc < 0)
		return rc;
	/* With the same names in both layouts, a source is in both; its names
	 * need only be the family's (any detect pattern matches some key). */
	bool family_names = seen[DIR_TO_NATIVE] >= 0 || seen[DIR_TO_HF] >= 0 ||
			    (!a->detect[DIR_TO_NATIVE] && !a->detect[DIR_TO_HF]);
	if (a->same_names && family_names)
		*dir = DIR_TO_NATIVE;
	else if (!a->same_names && seen[DIR_TO_NATIVE] >= 0 && seen[DIR_TO_HF] < 0)
		*dir = DIR_TO_NATIVE;
	else if (!a->same_names && seen[DIR_TO_HF] >= 0 && seen[DIR_TO_NATIVE] < 0)
		*dir = DIR_TO_HF;
	else {
		char supported[1024];
		adapter_supported(supported, sizeof(supported));
		if (seen[DIR_TO_NATIVE] >= 0)
			return sd_err(err, -EINVAL,
				      "%s: the checkpoint mixes HF keys (e.g. '%s') and native keys (e.g. '%s') of %s, so it is in neither layout; supported adapters: %s",
				      s->dir, s->tensors[seen[DIR_TO_NATIVE]].name,
				      s->tensors[seen[DIR_TO_HF]].name, a->name, supported);
		return sd_err(err, -EINVAL,
			      "%s: no tensor name fits %s in either the HF or the native layout (first key: '%s'); supported adapters: %s (choose with -o adapter=, or describe the family with -o adapter_file=)",
			      s->dir, a->name, s->ntensors ? s->tensors[0].name : "(none)", supported);
	}
	return 0;
}

/* --- tied lm_head ------------------------------------------------------- */

/* Automodel's tie flag (spec §6): tie_word_embeddings of the config, else of
 * its thinker_config, else of its text_config.  Absent everywhere means
 * untied, the default of every family that declares a tie. */
static int tie_flag(const struct apply *ap, bool *tied)
{
	static const char *const under[] = { NULL, "thinker_config", "text_config" };

	*tied = false;
	for (size_t i = 0; i < sizeof(under) / sizeof(under[0]); i++) {
		const cJSON *obj = under[i] ?
			cJSON_GetObjectItemCaseSensitive(ap->cfg.config, under[i]) : ap->cfg.config;
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "tie_word_embeddings");
		if (!v || cJSON_IsNull(v))
			continue;
		if (!cJSON_IsBool(v))
			return sd_err(ap->err, -EINVAL, "%s/config.json: \"%s%stie_word_embeddings\" must be true or false",
				      ap->s->dir, under[i] ? under[i] : "", under[i] ? "." : "");
		*tied = cJSON_IsTrue(v);
		return 0;
	}
	return 0;
}

/* A copy of r (rx_append into an empty recipe copies every node). */
static int copy_recipe(struct recipe **out, const struct recipe *r, char *err)
{
	struct recipe *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return sd_err(err, -ENOMEM, "out of memory");
	if ((rc = rx_append(c, r, err)) < 0) {
		recipe_free(c);
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* A tied family's checkpoint is saved without lm_head and loading fills it
 * from the embedding (spec §6), so when the flag is set and lm_head is
 * missing the view gets one that reads the embedding's source bytes: an
 * alias, not a copy.  An embedding that is converted (a sharded save's
 * chunks) gives the alias the same recipe. */
static int alias_tied_lm_head(struct apply *ap)
{
	const struct adapter *a = ap->cfg.a;
	struct plan *p = ap->p;
	struct recipe *r = NULL;
	struct rx_node shape;
	size_t emb, head;
	bool tied;
	int rc;

	if ((rc = tie_flag(ap, &tied)) < 0 || !tied ||
	    strmap_get(&p->by_name, a->tied_lm_head, &head) ||
	    !strmap_get(&p->by_name, a->tied_embedding, &emb))
		return rc;
	const struct plan_tensor *e = &p->tensors[emb];
	uint32_t src = e->src;
	memset(&shape, 0, sizeof(shape));
	shape.dtype = e->dtype;
	shape.ndim = e->ndim;
	memcpy(shape.shape, e->shape, sizeof(shape.shape));
	if (e->recipe && (rc = copy_recipe(&r, e->recipe, ap->err)) < 0)
		return rc;
	/* plan_add may move p->tensors: e is not used past here */
	if ((rc = plan_add(p, a->tied_lm_head, &shape, src, r, ap->err)) < 0 && r) {
		recipe_free(r);
		free(r);
	}
	return rc;
}

/* The other half of the tie: Automodel's save pops a tied lm_head (it is the
 * embedding's storage), so an HF view of a tied native checkpoint that holds
 * both leaves lm_head out.  Returns the source tensor to skip, or -1. */
static int tied_lm_head_to_skip(struct apply *ap, long *skip)
{
	const struct adapter *a = ap->cfg.a;
	bool tied;
	int rc;

	*skip = -1;
	if (!a->tied_lm_head || source_find(ap->s, a->tied_embedding) < 0)
		return 0;
	if ((rc = tie_flag(ap, &tied)) == 0 && tied)
		*skip = source_find(ap->s, a->tied_lm_head);
	return rc;
}

/* Does the family's table dequantize (in any direction, routes included)?
 * Then no view of it holds quantized weights. */
static bool table_dequantizes(const struct adapter *a)
{
	for (int d = 0; d < DIR_COUNT; d++)
		for (size_t i = 0; i < a->nrules[d]; i++)
			if (a->rules[d][i].op == RULE_DEQUANT ||
			    (a->rules[d][i].sub && table_dequantizes(a->rules[d][i].sub)))
				return true;
	return false;
}

int adapter_plan(const struct adapter *a, const struct source *s,
		 const struct view_opts *o, int dir, struct plan *out, char *err)
{
	long skip = -1;
	struct apply *ap;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(out->adapter, sizeof(out->adapter), "%s", a->name);
	out->direction = dir == DIR_TO_NATIVE ? "hf->native" : "native->hf";
	out->dtype = SD_DTYPE_INVALID;
	if (o->ep_size < 0 || o->ep_rank < 0 || (o->ep_size && o->ep_rank >= o->ep_size))
		return sd_err(err, -EINVAL, "ep_rank=%ld, ep_size=%ld: need 0 <= ep_rank < ep_size",
			      o->ep_rank, o->ep_size);
	if (!a->rules[dir])
		return sd_err(err, -ENOTSUP, "adapter %s has no %s rules", a->name,
			      dir == DIR_TO_NATIVE ? "hf_to_native" : "native_to_hf");
	if ((rc = apply_new(&ap, a, s, o, out, NULL, dir, "", err)) < 0)
		return rc;
	if (out->dtype == SD_DTYPE_INVALID)
		out->dtype = ap->cfg.dtype;
	if (dir == DIR_TO_HF)
		rc = tied_lm_head_to_skip(ap, &skip);
	for (size_t i = 0; i < s->ntensors && rc == 0; i++) {
		if ((long)i == skip)
			continue;
		struct item it = { .name = strdup(s->tensors[i].name), .src = i };
		rc = it.name ? run_item(ap, &it, 0) : sd_err(err, -ENOMEM, "out of memory");
		item_free(&it);
	}
	if (rc == 0)
		rc = finish(ap);
	if (rc == 0 && dir == DIR_TO_NATIVE && a->tied_lm_head)
		rc = alias_tied_lm_head(ap);
	apply_free(ap);
	if (rc < 0) {
		plan_free(out);
		return rc;
	}
	plan_chunk(out);
	/* Automodel's save leaves quantization_config out of dequantized
	 * weights' config.json (docs/conversion-spec.md §7), and so does the view */
	if (table_dequantizes(a))
		out->config_drop = "quantization_config";
	return 0;
}
