/*
 * adapter_groups.c — tensors that are built from several source tensors.
 *
 * merge_experts files each per-expert projection under its layer; once every
 * source tensor has been seen, every layer must hold every expert of the
 * view's range (Automodel refuses a checkpoint with missing experts, and so
 * do we, naming them), and becomes two grouped tensors whose recipes stack
 * transposed experts (an expert an earlier rule dequantized brings its
 * recipe, which the group's recipe takes in whole).  join collects the named parts of one tensor (Step3p5's
 * grouped gate and up) and concatenates them on the last dim; a lone part is
 * dropped, as Automodel drops it.
 */
#include "adapter_apply.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* --- merge_experts ------------------------------------------------------ */

static struct xgroup *find_group(struct apply *ap, const struct rule *r,
				 const char *name, size_t src, int *rc)
{
	char *names[2] = { NULL, NULL };
	size_t gi;

	if ((*rc = apply_substitute(r->re, name, r->groups[0], &names[0], ap->err)) < 0)
		return NULL;
	if (strmap_get(&ap->group_by_name, names[0], &gi)) {
		free(names[0]);
		return &ap->groups[gi];
	}
	if ((*rc = apply_substitute(r->re, name, r->groups[1], &names[1], ap->err)) < 0 ||
	    (*rc = sd_grow(&ap->groups, &ap->gcap, ap->ngroups + 1, sizeof(*ap->groups),
			   ap->err)) < 0) {
		free(names[0]);
		free(names[1]);
		return NULL;
	}
	struct xgroup *g = &ap->groups[ap->ngroups++];
	memset(g, 0, sizeof(*g));
	g->names[0] = names[0];
	g->names[1] = names[1];
	g->anchor = src;
	g->rule = r;
	for (int k = 0; k < 3; k++) {
		if (!(g->src[k] = malloc(ap->cfg.experts * sizeof(long))) ||
		    !(g->rx[k] = calloc(ap->cfg.experts, sizeof(*g->rx[k])))) {
			*rc = sd_err(ap->err, -ENOMEM, "out of memory");
			return NULL;
		}
		for (uint64_t e = 0; e < ap->cfg.experts; e++)
			g->src[k][e] = -1;
	}
	if ((*rc = strmap_put(&ap->group_by_name, g->names[0], ap->ngroups - 1, NULL)) < 0) {
		sd_err(ap->err, *rc, "out of memory");
		return NULL;
	}
	return g;
}

int apply_claim_expert(struct apply *ap, const struct rule *r, const char *name,
		       size_t src, struct recipe **rx)
{
	char proj[64];
	int rc, role = -1;
	int en = pcre2_substring_number_from_name(r->re, (PCRE2_SPTR)"expert");
	uint64_t e = apply_group_number(ap, name, en);

	apply_group_text(ap, r, name, "proj", proj, sizeof(proj));
	for (int k = 0; k < 3; k++)
		if (!strcmp(proj, r->names[k]))
			role = k;
	if (role < 0)
		return sd_err(ap->err, -EINVAL, "tensor '%s': projection '%s' is none of %s, %s, %s",
			      ap->s->tensors[src].name, proj, r->names[0], r->names[1], r->names[2]);
	if (role == PROJ_GATE && !r->gated)
		return 0;       /* non-gated experts ignore gate weights */
	if (e >= ap->cfg.experts)
		return 0;       /* not an expert of this model: Automodel skips it */
	struct xgroup *g = find_group(ap, r, name, src, &rc);
	if (!g)
		return rc;
	if (g->src[role][e] >= 0)
		return sd_err(ap->err, -EINVAL, "tensors '%s' and '%s' are both expert %" PRIu64 "'s %s of %s",
			      ap->s->tensors[g->src[role][e]].name, ap->s->tensors[src].name,
			      e, proj, g->names[0]);
	g->src[role][e] = (long)src;
	g->rx[role][e] = *rx;
	*rx = NULL;
	return 0;
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
						      missing ? "; " : "", g->rule->names[k], e);
			here++;
			missing++;
		}
	}
	if (!missing)
		return 0;
	return sd_err(ap->err, -EINVAL,
		      "expert weights missing from the checkpoint: %s%s (from tensors like '%s') lacks %zu weights: %s; every MoE layer needs experts %lu..%lu (%" PRIu64 " routed experts in config.json)",
		      ap->prefix, g->names[0], ap->s->tensors[g->anchor].name, missing, list,
		      ap->ep_start, ap->ep_end - 1, ap->cfg.experts);
}

/* One expert's part: its source (or the recipe an earlier rule made of it)
 * transposed, cast on its own so that experts stored in different dtypes
 * end up as PyTorch's promoting stack + .to() makes them. */
static int expert_part(struct apply *ap, struct recipe *r, const struct xgroup *g,
		       int proj, uint64_t e)
{
	size_t src = (size_t)g->src[proj][e];
	const struct recipe *made = g->rx[proj][e];
	int x = made ? rx_append(r, made, ap->err) : plan_src(r, ap->s, src, ap->err);

	if (x >= 0 && r->nodes[x].ndim != 2)
		return sd_err(ap->err, -EINVAL, "expert tensor '%s' has %d dims; a 2-D [out, in] weight is expected",
			      ap->s->tensors[src].name, r->nodes[x].ndim);
	if (x >= 0)
		x = rx_transpose_last2(r, x, ap->err);
	if (x >= 0 && r->nodes[x].dtype != ap->cfg.dtype)
		x = rx_cast(r, x, ap->cfg.dtype, ap->err);
	return x;
}

static int add_output(struct apply *ap, const char *name, size_t anchor,
		      struct recipe *r, int x)
{
	char *full = NULL;
	int rc = x;

	if (x >= 0) {
		size_t n = strlen(ap->prefix) + strlen(name) + 1;
		if (!(full = malloc(n)))
			rc = sd_err(ap->err, -ENOMEM, "out of memory");
		else {
			snprintf(full, n, "%s%s", ap->prefix, name);
			rc = plan_add(ap->p, full, rx_root(r), (uint32_t)anchor, r, ap->err);
		}
	} else {
		sd_err_prefix(ap->err, "cannot build '%s%s'", ap->prefix, name);
	}
	free(full);
	if (rc < 0) {
		recipe_free(r);
		free(r);
	}
	return rc;
}

static int build_group(struct apply *ap, const struct xgroup *g)
{
	bool gated = g->rule->gated;
	uint64_t n = ap->ep_end - ap->ep_start;

	for (int which = 0; which < 2; which++) {
		struct recipe *r = calloc(1, sizeof(*r));
		int *kids = calloc(n + 1, sizeof(int));
		int x = 0, rc;

		if (!r || !kids) {
			free(r);
			free(kids);
			return sd_err(ap->err, -ENOMEM, "out of memory");
		}
		for (uint64_t e = ap->ep_start; e < ap->ep_end && x >= 0; e++) {
			if (which)
				x = expert_part(ap, r, g, PROJ_DOWN, e);
			else if (!gated)
				x = expert_part(ap, r, g, PROJ_UP, e);
			else {
				int part[2];
				part[0] = x = expert_part(ap, r, g, PROJ_GATE, e);
				if (x >= 0)
					part[1] = x = expert_part(ap, r, g, PROJ_UP, e);
				if (x >= 0)
					x = rx_concat_last(r, part, 2, ap->err);
			}
			kids[e - ap->ep_start] = x;
		}
		if (x >= 0)
			x = rx_stack0(r, kids, (uint32_t)n, ap->err);
		free(kids);
		if ((rc = add_output(ap, g->names[which], g->anchor, r, x)) < 0)
			return rc;
	}
	return 0;
}

/* --- join --------------------------------------------------------------- */

int apply_claim_part(struct apply *ap, const struct rule *r, const char *name,
		     size_t src)
{
	char part[64], *out;
	size_t ji;
	int k, rc;

	apply_group_text(ap, r, name, "part", part, sizeof(part));
	k = !strcmp(part, r->names[0]) ? 0 : !strcmp(part, r->names[1]) ? 1 : -1;
	if (k < 0)
		return sd_err(ap->err, -EINVAL, "tensor '%s': part '%s' is neither %s nor %s",
			      ap->s->tensors[src].name, part, r->names[0], r->names[1]);
	if ((rc = apply_substitute(r->re, name, r->to, &out, ap->err)) < 0)
		return rc;
	if (!strmap_get(&ap->join_by_name, out, &ji)) {
		if ((rc = sd_grow(&ap->joins, &ap->jcap, ap->njoins + 1, sizeof(*ap->joins),
				  ap->err)) < 0) {
			free(out);
			return rc;
		}
		ji = ap->njoins++;
		ap->joins[ji] = (struct jgroup){ out, { -1, -1 }, src, r };
		if ((rc = strmap_put(&ap->join_by_name, out, ji, NULL)) < 0)
			return sd_err(ap->err, rc, "out of memory");
	} else {
		free(out);
	}
	struct jgroup *j = &ap->joins[ji];
	if (j->part[k] >= 0)
		return sd_err(ap->err, -EINVAL, "tensors '%s' and '%s' are both the %s of %s",
			      ap->s->tensors[j->part[k]].name, ap->s->tensors[src].name,
			      part, j->name);
	j->part[k] = (long)src;
	return 0;
}

static int build_join(struct apply *ap, const struct jgroup *j)
{
	struct recipe *r;
	int part[2], x = 0;

	if (j->part[0] < 0 || j->part[1] < 0)
		return 0;       /* a lone part: Automodel emits nothing */
	if (!(r = calloc(1, sizeof(*r))))
		return sd_err(ap->err, -ENOMEM, "out of memory");
	for (int k = 0; k < 2 && x >= 0; k++) {
		const struct src_tensor *t = &ap->s->tensors[j->part[k]];
		x = plan_src(r, ap->s, (size_t)j->part[k], ap->err);
		if (x >= 0 && j->rule->ep_slice && ap->ep_end - ap->ep_start != ap->cfg.experts) {
			if (t->ndim < 1 || t->shape[0] != ap->cfg.experts)
				x = sd_err(ap->err, -EINVAL, "tensor '%s': expected its first dimension to be the %" PRIu64 " experts",
					   t->name, ap->cfg.experts);
			else
				x = rx_slice0(r, x, ap->ep_start, ap->ep_end, ap->err);
		}
		if (x >= 0 && j->rule->transpose)
			x = rx_transpose_last2(r, x, ap->err);
		part[k] = x;
	}
	if (x >= 0)
		x = rx_concat_last(r, part, 2, ap->err);
	enum sd_dtype to = j->rule->cast_adapter ? ap->cfg.dtype : j->rule->cast;
	if (x >= 0 && to != SD_DTYPE_INVALID && r->nodes[x].dtype != to)
		x = rx_cast(r, x, to, ap->err);
	return add_output(ap, j->name, j->anchor, r, x);
}

int apply_build_groups(struct apply *ap)
{
	int rc = 0;

	for (size_t i = 0; i < ap->ngroups && rc == 0; i++)
		if ((rc = check_complete(ap, &ap->groups[i])) == 0)
			rc = build_group(ap, &ap->groups[i]);
	for (size_t i = 0; i < ap->njoins && rc == 0; i++)
		rc = build_join(ap, &ap->joins[i]);
	return rc;
}

void apply_free_groups(struct apply *ap)
{
	for (size_t i = 0; i < ap->ngroups; i++) {
		free(ap->groups[i].names[0]);
		free(ap->groups[i].names[1]);
		for (int k = 0; k < 3; k++) {
			for (uint64_t e = 0; ap->groups[i].rx[k] && e < ap->cfg.experts; e++)
				if (ap->groups[i].rx[k][e]) {
					recipe_free(ap->groups[i].rx[k][e]);
					free(ap->groups[i].rx[k][e]);
				}
			free(ap->groups[i].src[k]);
			free(ap->groups[i].rx[k]);
		}
	}
	free(ap->groups);
	strmap_free(&ap->group_by_name);
	for (size_t i = 0; i < ap->njoins; i++)
		free(ap->joins[i].name);
	free(ap->joins);
	strmap_free(&ap->join_by_name);
}
