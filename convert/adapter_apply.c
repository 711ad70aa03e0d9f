/*
 * adapter_apply.c — running an adapter table over a source: the plan.
 *
 * One pass over the source tensors applies the rules to each name.  Tensors
 * claimed by merge_experts are filed by layer; after the pass every layer
 * must hold every expert of this view's range (Automodel refuses a
 * checkpoint with missing experts, and so do we, naming them), and each
 * layer becomes two grouped tensors whose recipes stack transposed experts.
 */
#include "adapter_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

struct xgroup {
	char *names[2];         /* gate_and_up, down */
	long *src[3];           /* [PROJ_*][expert] -> source tensor, or -1 */
	size_t anchor;          /* the first member seen: where the group sits */
	const struct rule *rule;        /* the merge rule that made it */
};

struct apply {
	const struct adapter *a;
	const struct source *s;
	struct plan *p;
	uint64_t experts, layers;
	unsigned long ep_start, ep_end;
	enum sd_dtype dtype;
	struct xgroup *groups;
	size_t ngroups, cap;
	struct strmap by_name;  /* gate_and_up name -> group */
	pcre2_match_data *md;
	char *err;
};

static int substitute(const pcre2_code *re, const char *subject, const char *repl,
		      char **out, char *err)
{
	PCRE2_SIZE len = strlen(subject) + strlen(repl) + 64;

	for (;;) {
		char *buf = malloc(len);
		if (!buf)
			return sd_err(err, -ENOMEM, "out of memory");
		PCRE2_SIZE got = len;
		int rc = pcre2_substitute(re, (PCRE2_SPTR)subject, PCRE2_ZERO_TERMINATED,
					  0, PCRE2_SUBSTITUTE_UNSET_EMPTY |
					  PCRE2_SUBSTITUTE_OVERFLOW_LENGTH, NULL, NULL,
					  (PCRE2_SPTR)repl, PCRE2_ZERO_TERMINATED,
					  (PCRE2_UCHAR *)buf, &got);
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

static bool cond_holds(const struct apply *ap, const struct rule *r)
{
	return r->cond == COND_ALWAYS || (r->cond == COND_MOE) == (ap->experts > 0);
}

/* Capture group n of the last match as a decimal number; UINT64_MAX when it
 * is unset, empty, not a number or longer than 9 digits. */
static uint64_t group_number(const struct apply *ap, const char *subject, int n)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ap->md);
	size_t i0 = ov[2 * n], i1 = ov[2 * n + 1];
	uint64_t v = 0;

	if (i0 == PCRE2_UNSET || i1 - i0 > 9 || i0 == i1)
		return UINT64_MAX;
	for (size_t i = i0; i < i1; i++) {
		if (subject[i] < '0' || subject[i] > '9')
			return UINT64_MAX;
		v = v * 10 + (uint64_t)(subject[i] - '0');
	}
	return v;
}

static void group_text(const struct apply *ap, const struct rule *r,
		       const char *subject, const char *group, char *buf, size_t len)
{
	int n = pcre2_substring_number_from_name(r->re, (PCRE2_SPTR)group);
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ap->md);
	size_t i0 = ov[2 * n], i1 = ov[2 * n + 1];

	buf[0] = '\0';
	if (i0 != PCRE2_UNSET && i1 - i0 < len) {
		memcpy(buf, subject + i0, i1 - i0);
		buf[i1 - i0] = '\0';
	}
}

static struct xgroup *find_group(struct apply *ap, const struct rule *r,
				 const char *name, size_t src, int *rc)
{
	char *names[2] = { NULL, NULL };
	size_t gi;

	*rc = substitute(r->re, name, r->gate_and_up, &names[0], ap->err);
	if (*rc < 0)
		return NULL;
	if (strmap_get(&ap->by_name, names[0], &gi)) {
		free(names[0]);
		return &ap->groups[gi];
	}
	if ((*rc = substitute(r->re, name, r->down, &names[1], ap->err)) < 0) {
		free(names[0]);
		return NULL;
	}
	if (ap->ngroups == ap->cap) {
		size_t cap = ap->cap ? ap->cap * 2 : 16;
		struct xgroup *g = realloc(ap->groups, cap * sizeof(*g));
		if (!g)
			goto nomem;
		ap->groups = g;
		ap->cap = cap;
	}
	struct xgroup *g = &ap->groups[ap->ngroups];
	memset(g, 0, sizeof(*g));
	g->names[0] = names[0];
	g->names[1] = names[1];
	g->anchor = src;
	g->rule = r;
	for (int k = 0; k < 3; k++) {
		if (!(g->src[k] = malloc(ap->experts * sizeof(long))))
			goto nomem_g;
		for (uint64_t e = 0; e < ap->experts; e++)
			g->src[k][e] = -1;
	}
	ap->ngroups++;
	if ((*rc = strmap_put(&ap->by_name, g->names[0], ap->ngroups - 1, NULL)) < 0) {
		sd_err(ap->err, *rc, "out of memory");
		return NULL;
	}
	return g;
nomem_g:
	ap->ngroups++;          /* so the partial group is freed with the rest */
	*rc = sd_err(ap->err, -ENOMEM, "out of memory");
	return NULL;
nomem:
	free(names[0]);
	free(names[1]);
	*rc = sd_err(ap->err, -ENOMEM, "out of memory");
	return NULL;
}

/* File tensor src (whose current name matched merge rule r) in its group. */
static int claim_expert(struct apply *ap, const struct rule *r, const char *name,
			size_t src)
{
	char proj[64];
	int rc, role = -1;
	int en = pcre2_substring_number_from_name(r->re, (PCRE2_SPTR)"expert");
	uint64_t e = group_number(ap, name, en);

	group_text(ap, r, name, "proj", proj, sizeof(proj));
	for (int k = 0; k < 3; k++)
		if (!strcmp(proj, r->proj[k]))
			role = k;
	if (role < 0)
		return sd_err(ap->err, -EINVAL, "tensor '%s': projection '%s' is none of %s, %s, %s",
			      ap->s->tensors[src].name, proj, r->proj[0], r->proj[1], r->proj[2]);
	if (role == PROJ_GATE && !r->gated)
		return 0;       /* non-gated experts ignore gate weights */
	if (e >= ap->experts)
		return 0;       /* not an expert of this model: Automodel skips it */
	struct xgroup *g = find_group(ap, r, name, src, &rc);
	if (!g)
		return rc;
	if (g->src[role][e] >= 0)
		return sd_err(ap->err, -EINVAL, "tensors '%s' and '%s' are both expert %" PRIu64 "'s %s of %s",
			      ap->s->tensors[g->src[role][e]].name, ap->s->tensors[src].name,
			      e, proj, g->names[0]);
	g->src[role][e] = (long)src;
	return 0;
}

static void shape_node(struct rx_node *n, const struct src_tensor *t)
{
	memset(n, 0, sizeof(*n));
	n->op = RX_SRC;
	n->dtype = t->dtype;
	n->ndim = t->ndim;
	memcpy(n->shape, t->shape, sizeof(n->shape));
}

static int emit_plain(struct apply *ap, const char *name, size_t src,
		      enum sd_dtype cast)
{
	const struct src_tensor *t = &ap->s->tensors[src];
	struct rx_node shape;
	struct recipe *r = NULL;
	int rc;

	shape_node(&shape, t);
	if (cast != SD_DTYPE_INVALID && cast != t->dtype) {
		if (!dtype_is_castable_float(t->dtype))
			return sd_err(ap->err, -EINVAL, "tensor '%s': cannot cast %s to %s",
				      t->name, dtype_name(t->dtype), dtype_name(cast));
		if (!(r = calloc(1, sizeof(*r))))
			return sd_err(ap->err, -ENOMEM, "out of memory");
		int x = rx_src(r, ap->s, src, ap->err);
		if (x < 0 || (x = rx_cast(r, x, cast, ap->err)) < 0) {
			recipe_free(r);
			free(r);
			return x;
		}
		shape = *rx_root(r);
	}
	if ((rc = plan_add(ap->p, name, &shape, (uint32_t)src, r, ap->err)) < 0 && r) {
		recipe_free(r);
		free(r);
	}
	return rc;
}

/* Run one source tensor down the rules. */
static int apply_rules(struct apply *ap, size_t src)
{
	const struct src_tensor *t = &ap->s->tensors[src];
	char *name = strdup(t->name);
	enum sd_dtype cast = SD_DTYPE_INVALID;
	int rc = 0;

	if (!name)
		return sd_err(ap->err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < ap->a->nrules; i++) {
		const struct rule *r = &ap->a->rules[i];
		if (!cond_holds(ap, r))
			continue;
		if (pcre2_match(r->re, (PCRE2_SPTR)name, PCRE2_ZERO_TERMINATED, 0, 0,
				ap->md, NULL) < 0)
			continue;
		switch (r->op) {
		case RULE_TRUNCATE:
			if (ap->layers > 0 && group_number(ap, name, 1) >= ap->layers)
				goto out;       /* a layer the model does not have */
			break;
		case RULE_RENAME: {
			char *renamed;
			if ((rc = substitute(r->re, name, r->to, &renamed, ap->err)) < 0)
				goto out;
			free(name);
			name = renamed;
			if (r->cast != SD_DTYPE_INVALID && dtype_is_float(t->dtype))
				cast = r->cast;
			break;
		}
		case RULE_DROP:
			goto out;
		case RULE_MERGE:
			rc = claim_expert(ap, r, name, src);
			goto out;
		}
	}
	rc = emit_plain(ap, name, src, cast);
out:
	free(name);
	return rc;
}

/* Name the experts a group lacks, or return 0. */
static int check_complete(struct apply *ap, const struct xgroup *g)
{
	char list[768];
	size_t o = 0, missing = 0;

	list[0] = '\0';
	for (int k = g->rule->gated ? PROJ_GATE : PROJ_UP; k <= PROJ_DOWN; k++) {
		size_t here = 0;
		for (uint64_t e = ap->ep_start; e < ap->ep_end; e++) {
			if (g->src[k][e] >= 0)
				continue;
			if (o >= sizeof(list))
				;
			else if (here)
				o += (size_t)snprintf(list + o, sizeof(list) - o,
						      ", %" PRIu64, e);
			else
				o += (size_t)snprintf(list + o, sizeof(list) - o,
						      "%s%s of experts %" PRIu64,
						      missing ? "; " : "", g->rule->proj[k], e);
			here++;
			missing++;
		}
	}
	if (!missing)
		return 0;
	return sd_err(ap->err, -EINVAL,
		      "expert weights missing from the checkpoint: %s (from tensors like '%s') lacks %zu weights: %s; every MoE layer needs experts %lu..%lu (n_routed_experts = %" PRIu64 ")",
		      g->names[0], ap->s->tensors[g->anchor].name, missing, list,
		      ap->ep_start, ap->ep_end - 1, ap->experts);
}

static int build_group(struct apply *ap, const struct xgroup *g)
{
	bool gated = g->rule->gated;

	for (int which = 0; which < 2; which++) {
		struct recipe *r = calloc(1, sizeof(*r));
		uint64_t n = ap->ep_end - ap->ep_start;
		int *kids = calloc(n + 1, sizeof(int));
		int x = 0, rc = 0;

		if (!r || !kids) {
			free(r);
			free(kids);
			return sd_err(ap->err, -ENOMEM, "out of memory");
		}
		for (uint64_t e = ap->ep_start; e < ap->ep_end && x >= 0; e++) {
			int part[2], nparts = 0;
			int roles[2] = { which ? PROJ_DOWN : gated ? PROJ_GATE : PROJ_UP, PROJ_UP };
			int count = (!which && gated) ? 2 : 1;
			for (int k = 0; k < count && x >= 0; k++) {
				size_t src = (size_t)g->src[roles[k]][e];
				if (ap->s->tensors[src].ndim != 2) {
					x = sd_err(ap->err, -EINVAL, "expert tensor '%s' has %d dims; a 2-D [out, in] weight is expected",
						   ap->s->tensors[src].name, ap->s->tensors[src].ndim);
					break;
				}
				x = rx_src(r, ap->s, src, ap->err);
				if (x >= 0)
					x = rx_transpose_last2(r, x, ap->err);
				part[nparts++] = x;
			}
			/* Cast each part on its own: experts stored in different
			 * dtypes end up as PyTorch's promoting stack + .to() makes
			 * them, and chunks stay one expert each. */
			for (int k = 0; k < nparts && x >= 0; k++)
				if (r->nodes[part[k]].dtype != ap->dtype)
					x = part[k] = rx_cast(r, part[k], ap->dtype, ap->err);
			if (x >= 0 && nparts == 2)
				x = rx_concat_last(r, part, 2, ap->err);
			else if (x >= 0)
				x = part[0];
			kids[e - ap->ep_start] = x;
		}
		if (x >= 0)
			x = rx_stack0(r, kids, (uint32_t)n, ap->err);
		free(kids);
		if (x < 0) {
			sd_err_prefix(ap->err, "cannot build '%s'", g->names[which]);
			rc = x;
		} else {
			rc = plan_add(ap->p, g->names[which], rx_root(r),
				      (uint32_t)g->anchor, r, ap->err);
		}
		if (rc < 0) {
			recipe_free(r);
			free(r);
			return rc;
		}
	}
	return 0;
}

static void free_groups(struct apply *ap)
{
	for (size_t i = 0; i < ap->ngroups; i++) {
		free(ap->groups[i].names[0]);
		free(ap->groups[i].names[1]);
		for (int k = 0; k < 3; k++)
			free(ap->groups[i].src[k]);
	}
	free(ap->groups);
	strmap_free(&ap->by_name);
}

int adapter_plan(const struct adapter *a, const struct source *s,
		 const struct view_opts *o, struct plan *out, char *err)
{
	struct apply ap = { .a = a, .s = s, .p = out, .err = err };
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(out->adapter, sizeof(out->adapter), "%s", a->name);
	out->direction = "hf->native";
	if ((rc = config_count(a, s, "experts", &ap.experts, err)) < 0 ||
	    (rc = config_count(a, s, "layers", &ap.layers, err)) < 0 ||
	    (rc = config_dtype(a, s, &ap.dtype, err)) < 0)
		return rc;
	if (o->dtype != SD_DTYPE_INVALID)
		ap.dtype = o->dtype;
	if (o->ep_size < 0 || o->ep_rank < 0 || (o->ep_size && o->ep_rank >= o->ep_size))
		return sd_err(err, -EINVAL, "ep_rank=%ld, ep_size=%ld: need 0 <= ep_rank < ep_size",
			      o->ep_rank, o->ep_size);
	ep_range(ap.experts, o->ep_rank, ap.experts ? o->ep_size : 0,
		 &ap.ep_start, &ap.ep_end);
	out->dtype = ap.dtype;
	out->experts = ap.experts;
	out->ep_start = ap.ep_start;
	out->ep_end = ap.ep_end;
	if (ap.experts && ap.ep_end == ap.ep_start)
		return sd_err(err, -EINVAL, "ep_rank=%ld of ep_size=%ld holds no expert (the model has %" PRIu64 ")",
			      o->ep_rank, o->ep_size, ap.experts);
	uint32_t maxgroups = 1;
	for (size_t i = 0; i < a->nrules; i++) {
		uint32_t c = 0;
		pcre2_pattern_info(a->rules[i].re, PCRE2_INFO_CAPTURECOUNT, &c);
		if (c + 1 > maxgroups)
			maxgroups = c + 1;
	}
	if (!(ap.md = pcre2_match_data_create(maxgroups, NULL)))
		return sd_err(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < s->ntensors && rc == 0; i++)
		rc = apply_rules(&ap, i);
	for (size_t i = 0; i < ap.ngroups && rc == 0; i++)
		if ((rc = check_complete(&ap, &ap.groups[i])) == 0)
			rc = build_group(&ap, &ap.groups[i]);
	pcre2_match_data_free(ap.md);
	free_groups(&ap);
	if (rc < 0) {
		plan_free(out);
		return rc;
	}
	plan_chunk(out);
	return 0;
}
