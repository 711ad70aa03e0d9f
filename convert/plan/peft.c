/*
 * peft.c — the view plan of a PEFT adapter directory (see peft.h).
 *
 * Every tensor name is classified once: native grouped expert LoRA,
 * per-expert HF PEFT (v4), ParamWrapper (v5), a DoRA magnitude in either
 * naming, or anything else.  Grouped tensors are keyed by their prefix
 * (everything up to and including the experts segment, e.g.
 * "base_model.model.model.layers.3.mixer.experts").  Which kinds occur
 * decides the direction; a directory holding both namings is refused,
 * since no single conversion gives a consistent adapter.
 *
 * The layout rules are conversion-spec §2.5: v4 keys carry expert e's
 * slice transposed, v5 ParamWrapper tensors are the grouped tensors
 * reshaped (A side, expert-major rows) or permuted so the rank is the
 * major index of the columns (B side).  Every output is a recipe over
 * source tensors, so nothing is read until the view is.  Every output
 * name, whatever made it, passes through add(), where the family's renames
 * (peft_names.c) give it its module's name in the view's layout.
 */
#include "peft.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "grow.h"
#include "peft_names.h"
#include "strmap.h"

enum kind { K_OTHER, K_NAT, K_V4, K_V5, K_DORA_NAT, K_DORA_HF, K_COUNT };
enum { NAT_GU_A, NAT_GU_B, NAT_D_A, NAT_D_B };          /* native grouped */
enum { PW_A, PW_B, PW_BASE_A, PW_BASE_B };              /* ParamWrapper */
enum { P_GATE, P_UP, P_DOWN };                          /* v4 projections */

static const char *const patterns[K_COUNT] = {
	[K_NAT] = "^(.*layers\\.\\d+\\.(?:[^.]+\\.)*?experts)\\.lora_(gate_and_up|down)_([AB])$",
	[K_V4] = "^(.*layers\\.\\d+\\.(?:[^.]+\\.)*?experts)\\.(\\d{1,9})\\.(gate|up|down)_proj\\.lora_([AB])\\.weight$",
	[K_V5] = "^(.*layers\\.\\d+\\.(?:[^.]+\\.)*?experts)\\.(base_layer\\.)?lora_([AB])\\.weight$",
	[K_DORA_NAT] = "^(.+)\\.lora_magnitude$",
	[K_DORA_HF] = "^(.+)\\.lora_magnitude_vector(?:\\.default\\.weight)?$",
};

static const char *const nat_suffix[4] = {
	"lora_gate_and_up_A", "lora_gate_and_up_B", "lora_down_A", "lora_down_B",
};
/* The ParamWrapper tensor each native one becomes: native A/B swap to PEFT
 * B/A, and down_proj is the outer wrapper (PEFT sorts target names). */
static const char *const pw_suffix[4] = {
	[PW_A] = "lora_A.weight", [PW_B] = "lora_B.weight",
	[PW_BASE_A] = "base_layer.lora_A.weight", [PW_BASE_B] = "base_layer.lora_B.weight",
};
static const int pw_of_nat[4] = {
	[NAT_GU_A] = PW_BASE_B, [NAT_GU_B] = PW_BASE_A, [NAT_D_A] = PW_B, [NAT_D_B] = PW_A,
};
static const char *const proj_name[3] = { "gate_proj", "up_proj", "down_proj" };

/* Experts split into per-expert v4 keys at most: each makes up to six
 * tensors, and a zero-sized grouped tensor costs nothing to claim a
 * billion.  No MoE model has near this many experts in a layer. */
#define PEFT_V4_MAX_EXPERTS 4096

struct tclass {
	enum kind kind;
	uint32_t group;
	int part;               /* NAT_* or PW_*; v4: proj * 2 + (B ? 1 : 0) */
	uint64_t expert;        /* v4 */
	size_t base_len;        /* DoRA: length of the module name before the suffix */
};

struct pgroup {
	char *prefix;
	long nat[4], pw[4];     /* source tensor, or -1 */
	long *v4;               /* [proj][A/B][expert] -> source tensor or -1 */
	uint64_t nv4;           /* v4 keys of this prefix */
	bool gate;              /* v4: a gate_proj key exists (gated experts) */
};

struct peft {
	const struct source *s;
	const struct view_opts *o;
	struct plan *p;
	char *err;
	struct tclass *cls;
	bool *used;             /* v4 tensors folded into a grouped one */
	struct pgroup *groups;
	size_t ngroups, gcap;
	struct strmap by_prefix;
	uint64_t experts;       /* v4: highest expert id + 1 */
	uint64_t nv4;
	uint64_t rank;          /* adapter_config.json "r"; 0: none */
	struct peft_names names;        /* the family's names of the keys */
	size_t renamed;         /* outputs whose module the family renamed */
};

/* --- classification ------------------------------------------------------ */

static int group_of(struct peft *pf, const char *name, size_t len, uint32_t *out)
{
	char key[ST_MAX_NAME + 1];
	size_t g;
	int rc;

	memcpy(key, name, len);
	key[len] = '\0';
	if (strmap_get(&pf->by_prefix, key, &g)) {
		*out = (uint32_t)g;
		return 0;
	}
	if ((rc = sd_grow(&pf->groups, &pf->gcap, pf->ngroups + 1, sizeof(*pf->groups), pf->err)) < 0)
		return rc;
	struct pgroup *gr = &pf->groups[pf->ngroups];
	memset(gr, 0, sizeof(*gr));
	for (int k = 0; k < 4; k++)
		gr->nat[k] = gr->pw[k] = -1;
	if (!(gr->prefix = strdup(key)) ||
	    strmap_put(&pf->by_prefix, gr->prefix, pf->ngroups, NULL) < 0) {
		free(gr->prefix);
		return sd_err(pf->err, -ENOMEM, "out of memory");
	}
	*out = (uint32_t)pf->ngroups++;
	return 0;
}

static bool group_is(const char *name, PCRE2_SIZE *ov, int n, const char *what)
{
	return ov[2 * n] != PCRE2_UNSET &&
	       ov[2 * n + 1] - ov[2 * n] == strlen(what) &&
	       !memcmp(name + ov[2 * n], what, strlen(what));
}

static int classify_one(struct peft *pf, size_t i, pcre2_code **re,
			pcre2_match_data *md)
{
	const char *name = pf->s->tensors[i].name;
	struct tclass *c = &pf->cls[i];
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
	int k;

	for (k = K_NAT; k < K_COUNT; k++)
		if (pcre2_match(re[k], (PCRE2_SPTR)name, PCRE2_ZERO_TERMINATED, 0, 0, md, NULL) >= 0)
			break;
	c->kind = k < K_COUNT ? (enum kind)k : K_OTHER;
	switch (c->kind) {
	case K_DORA_NAT:
	case K_DORA_HF:
		c->base_len = ov[3] - ov[2];
		return 0;
	case K_NAT:
		c->part = (group_is(name, ov, 2, "down") ? 2 : 0) + (group_is(name, ov, 3, "B") ? 1 : 0);
		break;
	case K_V5:
		c->part = (ov[4] != PCRE2_UNSET && ov[5] > ov[4] ? 2 : 0) +
			  (group_is(name, ov, 3, "B") ? 1 : 0);
		break;
	case K_V4:
		c->expert = strtoull(name + ov[4], NULL, 10);
		c->part = (group_is(name, ov, 3, "gate") ? P_GATE : group_is(name, ov, 3, "up") ?
			   P_UP : P_DOWN) * 2 + (group_is(name, ov, 4, "B") ? 1 : 0);
		if (c->expert + 1 > pf->experts)
			pf->experts = c->expert + 1;
		pf->nv4++;
		break;
	default:
		return 0;
	}
	int rc = group_of(pf, name, ov[3] - ov[2], &c->group);
	if (rc < 0)
		return rc;
	struct pgroup *g = &pf->groups[c->group];
	if (c->kind == K_NAT)
		g->nat[c->part] = (long)i;
	else if (c->kind == K_V5)
		g->pw[c->part] = (long)i;
	else {
		g->nv4++;
		g->gate = g->gate || c->part / 2 == P_GATE;
	}
	return 0;
}

static int classify(struct peft *pf)
{
	pcre2_code *re[K_COUNT] = { 0 };
	pcre2_match_data *md = pcre2_match_data_create(8, NULL);
	int rc = md ? 0 : sd_err(pf->err, -ENOMEM, "out of memory");

	for (int k = K_NAT; k < K_COUNT && rc == 0; k++) {
		int ec;
		PCRE2_SIZE eo;
		if (!(re[k] = pcre2_compile((PCRE2_SPTR)patterns[k], PCRE2_ZERO_TERMINATED, 0,
					    &ec, &eo, NULL)))
			rc = sd_err(pf->err, -EINVAL, "internal: PEFT pattern %d does not compile", k);
	}
	for (size_t i = 0; i < pf->s->ntensors && rc == 0; i++)
		rc = classify_one(pf, i, re, md);
	for (int k = K_NAT; k < K_COUNT; k++)
		pcre2_code_free(re[k]);
	pcre2_match_data_free(md);
	if (rc < 0 || !pf->nv4 || pf->experts > pf->nv4)
		return rc;      /* more ids than keys: no group can be complete */
	/* v4 experts by id, now that the count is known, for the groups with
	 * enough keys to be complete (so memory stays linear in the keys) */
	for (size_t g = 0; g < pf->ngroups; g++) {
		if (pf->groups[g].nv4 < pf->experts)
			continue;
		if (!(pf->groups[g].v4 = malloc(6 * pf->experts * sizeof(long))))
			return sd_err(pf->err, -ENOMEM, "out of memory");
		for (uint64_t j = 0; j < 6 * pf->experts; j++)
			pf->groups[g].v4[j] = -1;
	}
	for (size_t i = 0; i < pf->s->ntensors; i++) {
		const struct tclass *c = &pf->cls[i];
		if (c->kind == K_V4 && pf->groups[c->group].v4)
			pf->groups[c->group].v4[(uint64_t)c->part * pf->experts + c->expert] = (long)i;
	}
	return 0;
}

/* --- output tensors ------------------------------------------------------- */

static struct recipe *recipe_new(struct peft *pf)
{
	struct recipe *r = calloc(1, sizeof(*r));

	if (!r)
		sd_err(pf->err, -ENOMEM, "out of memory");
	return r;
}

static void recipe_drop(struct recipe *r)
{
	if (r) {
		recipe_free(r);
		free(r);
	}
}

/* Add name, in the family's names of the view's layout, := the root of r
 * (or source tensor src unchanged when r is NULL), cast to the dtype option
 * when one is given.  Takes r. */
static int add(struct peft *pf, const char *name, size_t src, struct recipe *r)
{
	const struct src_tensor *t = &pf->s->tensors[src];
	enum sd_dtype to = pf->o->dtype;
	char renamed[ST_MAX_NAME + 64];
	int rc = peft_names_rename(&pf->names, name, renamed, sizeof(renamed), pf->err);

	if (rc < 0) {
		if (strcmp(name, t->name))      /* say which tensor of the adapter */
			sd_err_prefix(pf->err, "made from '%s'", t->name);
		recipe_drop(r);
		return rc;
	}
	pf->renamed += strcmp(renamed, name) != 0;
	if (!r && (t->nchunks || (to != SD_DTYPE_INVALID && to != t->dtype &&
				  dtype_is_float(t->dtype)))) {
		if (!(r = recipe_new(pf)))
			return -ENOMEM;
		rc = plan_src(r, pf->s, src, pf->err);
	}
	if (rc >= 0 && r && to != SD_DTYPE_INVALID && rx_root(r)->dtype != to &&
	    dtype_is_float(rx_root(r)->dtype))
		rc = rx_cast(r, (int)r->nnodes - 1, to, pf->err);
	if (rc >= 0) {
		struct rx_node as_stored = { .op = RX_SRC, .dtype = t->dtype, .ndim = t->ndim };
		memcpy(as_stored.shape, t->shape, sizeof(as_stored.shape));
		rc = plan_add(pf->p, renamed, r ? rx_root(r) : &as_stored, (uint32_t)src, r, pf->err);
	}
	if (rc < 0) {
		recipe_drop(r);
		return rc;
	}
	return 0;
}

/* [E, X, R] -> [X, R*E], column k*E + e = t[e, x, k]: ParamWrapper's B. */
static int to_rank_major(struct recipe *r, int x, char *err)
{
	uint64_t E = r->nodes[x].shape[0], X = r->nodes[x].shape[1], R = r->nodes[x].shape[2];

	if ((x = rx_reshape(r, x, 2, (uint64_t[]){ E, X * R }, err)) >= 0 &&
	    (x = rx_transpose_last2(r, x, err)) >= 0)
		x = rx_reshape(r, x, 2, (uint64_t[]){ X, R * E }, err);
	return x;
}

/* The inverse: [X, R*E] -> [E, X, R]. */
static int from_rank_major(struct recipe *r, int x, uint64_t R, char *err)
{
	uint64_t X = r->nodes[x].shape[0], E = r->nodes[x].shape[1] / R;

	if ((x = rx_reshape(r, x, 2, (uint64_t[]){ X * R, E }, err)) >= 0 &&
	    (x = rx_transpose_last2(r, x, err)) >= 0)
		x = rx_reshape(r, x, 3, (uint64_t[]){ E, X, R }, err);
	return x;
}

static int add_named(struct peft *pf, const char *prefix, const char *mid,
		     const char *suffix, size_t src, struct recipe *r)
{
	char name[ST_MAX_NAME + 64];

	snprintf(name, sizeof(name), "%s.%s%s", prefix, mid, suffix);
	return add(pf, name, src, r);
}

/* --- native grouped -> HF ------------------------------------------------- */

static const uint64_t *nat_shape(const struct peft *pf, const struct pgroup *g, int part)
{
	return g->nat[part] < 0 ? NULL : pf->s->tensors[g->nat[part]].shape;
}

/* The grouped tensors of one prefix must agree on E, r and H. */
static int nat_check(struct peft *pf, const struct pgroup *g)
{
	uint64_t E = 0, R = 0, H = 0;
	/* which dim holds r, and H, in each native tensor */
	static const int rdim[4] = { 2, 1, 2, 1 }, hdim[4] = { 1, 0, 0, 2 };

	for (int k = 0; k < 4; k++) {
		if (g->nat[k] < 0)
			continue;
		const struct src_tensor *t = &pf->s->tensors[g->nat[k]];
		if (t->ndim != 3)
			return sd_err(pf->err, -EINVAL, "tensor '%s': grouped expert LoRA must be [experts, ., .], got %d dims",
				      t->name, t->ndim);
		bool bad = (E && t->shape[0] != E) || (R && t->shape[rdim[k]] != R) ||
			   (H && hdim[k] && t->shape[hdim[k]] != H);
		if (bad)
			return sd_err(pf->err, -EINVAL, "tensor '%s' [%" PRIu64 ",%" PRIu64 ",%" PRIu64 "] does not fit the other LoRA tensors of %s (experts %" PRIu64 ", rank %" PRIu64 ")",
				      t->name, t->shape[0], t->shape[1], t->shape[2], g->prefix, E, R);
		E = t->shape[0];
		R = t->shape[rdim[k]];
		if (hdim[k])
			H = t->shape[hdim[k]];
	}
	return 0;
}

/* v4 needs to know whether gate and up share lora_gate_and_up: its last
 * dim is 2I when gated, I (lora_down_A's dim 1) when not. */
static int nat_gated(struct peft *pf, const struct pgroup *g, bool *gated)
{
	const uint64_t *gu = nat_shape(pf, g, NAT_GU_B), *d = nat_shape(pf, g, NAT_D_A);

	if (!gu || !d)
		return sd_err(pf->err, -EINVAL, "%s: cannot tell whether the experts are gated without both %s.lora_gate_and_up_B and %s.lora_down_A; use peft=v5, which does not need it",
			      g->prefix, g->prefix, g->prefix);
	if (gu[2] != d[1] && gu[2] != 2 * d[1])
		return sd_err(pf->err, -EINVAL, "%s: lora_gate_and_up_B's last dim %" PRIu64 " is neither the intermediate size %" PRIu64 " (lora_down_A) nor twice it",
			      g->prefix, gu[2], d[1]);
	*gated = gu[2] == 2 * d[1];
	return 0;
}

/* One per-expert v4 tensor: t[e] (its columns [a, b) when b), transposed. */
static int add_v4_slice(struct peft *pf, const struct pgroup *g, size_t src,
			uint64_t e, int proj, char ab, uint64_t a, uint64_t b)
{
	struct recipe *r = recipe_new(pf);
	char mid[64];
	int x;

	if (!r)
		return -ENOMEM;
	x = plan_src(r, pf->s, src, pf->err);
	if (x >= 0)
		x = rx_index0(r, x, e, pf->err);
	if (x >= 0 && b)
		x = rx_slice_last(r, x, a, b, pf->err);
	if (x >= 0)
		x = rx_transpose_last2(r, x, pf->err);
	if (x < 0) {
		recipe_drop(r);
		return x;
	}
	snprintf(mid, sizeof(mid), "%" PRIu64 ".%s.lora_%c.weight", e, proj_name[proj], ab);
	return add_named(pf, g->prefix, mid, "", src, r);
}

static int nat_to_v4(struct peft *pf, const struct pgroup *g, int part, size_t src)
{
	const struct src_tensor *t = &pf->s->tensors[src];
	bool gated = false;
	int rc = 0;

	if (t->shape[0] > PEFT_V4_MAX_EXPERTS)
		return sd_err(pf->err, -E2BIG, "tensor '%s' holds %" PRIu64 " experts, more than the %d sdafs splits into per-expert PEFT v4 keys; use peft=v5, which keeps them grouped",
			      t->name, t->shape[0], PEFT_V4_MAX_EXPERTS);
	if ((part == NAT_GU_A || part == NAT_GU_B) && (rc = nat_gated(pf, g, &gated)) < 0)
		return rc;
	uint64_t I = gated ? t->shape[2] / 2 : 0;
	for (uint64_t e = 0; e < t->shape[0] && rc == 0; e++) {
		switch (part) {
		case NAT_GU_A:  /* one A for both: gate and up get the same values */
			if (gated)
				rc = add_v4_slice(pf, g, src, e, P_GATE, 'A', 0, 0);
			if (rc == 0)
				rc = add_v4_slice(pf, g, src, e, P_UP, 'A', 0, 0);
			break;
		case NAT_GU_B:
			if (gated && (rc = add_v4_slice(pf, g, src, e, P_GATE, 'B', 0, I)) == 0)
				rc = add_v4_slice(pf, g, src, e, P_UP, 'B', I, t->shape[2]);
			else if (!gated)
				rc = add_v4_slice(pf, g, src, e, P_UP, 'B', 0, 0);
			break;
		default:
			rc = add_v4_slice(pf, g, src, e, P_DOWN, part == NAT_D_A ? 'A' : 'B', 0, 0);
		}
	}
	return rc;
}

static int nat_to_pw(struct peft *pf, const struct pgroup *g, int part, size_t src)
{
	const struct src_tensor *t = &pf->s->tensors[src];
	struct recipe *r = recipe_new(pf);
	int x;

	if (!r)
		return -ENOMEM;
	x = plan_src(r, pf->s, src, pf->err);
	if (x >= 0 && (part == NAT_GU_A || part == NAT_D_A))
		x = to_rank_major(r, x, pf->err);
	else if (x >= 0)        /* [E, R, X] -> [R*E, X]: rows e*R + k, as stored */
		x = rx_reshape(r, x, 2, (uint64_t[]){ t->shape[0] * t->shape[1], t->shape[2] },
			       pf->err);
	if (x < 0) {
		recipe_drop(r);
		return x;
	}
	return add_named(pf, g->prefix, pw_suffix[pw_of_nat[part]], "", src, r);
}

/* --- HF -> native grouped ------------------------------------------------- */

static int pw_to_nat(struct peft *pf, const struct pgroup *g, int part, size_t src)
{
	const struct src_tensor *t = &pf->s->tensors[src];
	uint64_t R = pf->rank;
	bool b_side = part == PW_B || part == PW_BASE_B;
	/* the dim holding R*E: columns for the B side, rows for the A side */
	uint64_t re = t->ndim == 2 ? t->shape[b_side ? 1 : 0] : 0;
	struct recipe *r;
	int x;

	if (t->ndim != 2)
		return sd_err(pf->err, -EINVAL, "tensor '%s': a ParamWrapper LoRA tensor must be 2-D, got %d dims",
			      t->name, t->ndim);
	if (!R)
		return sd_err(pf->err, -EINVAL, "tensor '%s': splitting ParamWrapper tensors needs the LoRA rank, and %s has no positive integer \"r\"",
			      t->name, PEFT_CONFIG);
	if (re == 0 || re % R)
		return sd_err(pf->err, -EINVAL, "tensor '%s': its %s (%" PRIu64 ") is not a multiple of the rank r=%" PRIu64 " from %s",
			      t->name, b_side ? "column count" : "row count", re, R, PEFT_CONFIG);
	for (int k = 0; k < 4; k++) {   /* every tensor of the group: the same E */
		const struct src_tensor *o = g->pw[k] < 0 ? NULL : &pf->s->tensors[g->pw[k]];
		bool ob = k == PW_B || k == PW_BASE_B;
		if (o && o->ndim == 2 && o->shape[ob ? 1 : 0] != re)
			return sd_err(pf->err, -EINVAL, "tensor '%s' holds %" PRIu64 " rank-expert rows or columns, but '%s' holds %" PRIu64,
				      t->name, re, o->name, o->shape[ob ? 1 : 0]);
	}
	if (!(r = recipe_new(pf)))
		return -ENOMEM;
	x = plan_src(r, pf->s, src, pf->err);
	if (x >= 0 && b_side)
		x = from_rank_major(r, x, R, pf->err);
	else if (x >= 0)
		x = rx_reshape(r, x, 3, (uint64_t[]){ re / R, R, t->shape[1] }, pf->err);
	if (x < 0) {
		recipe_drop(r);
		return x;
	}
	for (int k = 0; k < 4; k++)
		if (pw_of_nat[k] == part)
			return add_named(pf, g->prefix, nat_suffix[k], "", src, r);
	recipe_drop(r);
	return sd_err(pf->err, -EINVAL, "internal: ParamWrapper part %d", part);
}

static long *v4_list(const struct peft *pf, const struct pgroup *g, int proj, int ab)
{
	return g->v4 + (uint64_t)(proj * 2 + ab) * pf->experts;
}

/* All E experts present: the group can be rebuilt (else its keys pass
 * through unchanged, as Automodel leaves them). */
static bool v4_complete(const struct peft *pf, const struct pgroup *g, int proj, int ab)
{
	if (!g->v4)
		return false;
	const long *l = v4_list(pf, g, proj, ab);
	for (uint64_t e = 0; e < pf->experts; e++)
		if (l[e] < 0)
			return false;
	return true;
}

static void v4_use(struct peft *pf, const struct pgroup *g, int proj, int ab)
{
	const long *l = v4_list(pf, g, proj, ab);

	for (uint64_t e = 0; e < pf->experts; e++)
		if (l[e] >= 0)
			pf->used[l[e]] = true;
}

/* stack over experts of each one transposed: [E, in, out] from [out, in]. */
static int v4_stack(struct peft *pf, struct recipe *r, const struct pgroup *g,
		    int proj, int ab)
{
	const long *l = v4_list(pf, g, proj, ab);
	int *xs = malloc(pf->experts * sizeof(*xs));
	int x = 0;

	if (!xs)
		return sd_err(pf->err, -ENOMEM, "out of memory");
	for (uint64_t e = 0; e < pf->experts && x >= 0; e++)
		if ((x = plan_src(r, pf->s, (size_t)l[e], pf->err)) >= 0)
			x = xs[e] = rx_transpose_last2(r, x, pf->err);
	if (x >= 0)
		x = rx_stack0(r, xs, (uint32_t)pf->experts, pf->err);
	free(xs);
	return x;
}

/* One grouped native tensor from complete v4 lists: proj (and, for a gated
 * lora_B, up beside it on the last dim). */
static int v4_build(struct peft *pf, const struct pgroup *g, int proj, int ab,
		    bool with_up, int part)
{
	struct recipe *r = recipe_new(pf);
	int x, y = -1;

	if (!r)
		return -ENOMEM;
	x = v4_stack(pf, r, g, proj, ab);
	if (x >= 0 && with_up && (y = v4_stack(pf, r, g, P_UP, ab)) >= 0)
		x = rx_concat_last(r, (int[]){ x, y }, 2, pf->err);
	else if (x >= 0 && with_up)
		x = y;
	if (x < 0) {
		recipe_drop(r);
		sd_err_prefix(pf->err, "%s.%s (from per-expert %s keys)", g->prefix,
			      nat_suffix[part], proj_name[proj]);
		return x;
	}
	v4_use(pf, g, proj, ab);
	if (with_up)
		v4_use(pf, g, P_UP, ab);
	return add_named(pf, g->prefix, nat_suffix[part], "", (size_t)v4_list(pf, g, proj, ab)[0], r);
}

static int v4_to_nat(struct peft *pf, const struct pgroup *g)
{
	int rc = 0;

	if (g->gate) {
		/* lora_A from gate alone; up's copy of it is a duplicate */
		if (v4_complete(pf, g, P_GATE, 0) && (rc = v4_build(pf, g, P_GATE, 0, false, NAT_GU_A)) == 0)
			v4_use(pf, g, P_UP, 0);
		if (rc == 0 && v4_complete(pf, g, P_GATE, 1) && v4_complete(pf, g, P_UP, 1))
			rc = v4_build(pf, g, P_GATE, 1, true, NAT_GU_B);
	} else {
		if (v4_complete(pf, g, P_UP, 0))
			rc = v4_build(pf, g, P_UP, 0, false, NAT_GU_A);
		if (rc == 0 && v4_complete(pf, g, P_UP, 1))
			rc = v4_build(pf, g, P_UP, 1, false, NAT_GU_B);
	}
	if (rc == 0 && v4_complete(pf, g, P_DOWN, 0))
		rc = v4_build(pf, g, P_DOWN, 0, false, NAT_D_A);
	if (rc == 0 && v4_complete(pf, g, P_DOWN, 1))
		rc = v4_build(pf, g, P_DOWN, 1, false, NAT_D_B);
	return rc;
}

/* --- the plan -------------------------------------------------------------- */

/* The LoRA rank from adapter_config.json, 0 when it has none. */
static uint64_t config_rank(const cJSON *cfg)
{
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(cfg, "r");

	if (!cJSON_IsNumber(r) || r->valuedouble < 1 || r->valuedouble > 1e9 ||
	    r->valuedouble != (double)(uint64_t)r->valuedouble)
		return 0;
	return (uint64_t)r->valuedouble;
}

static int direction(struct peft *pf, bool *to_hf, bool *to_native)
{
	long nat = -1, hf = -1;

	for (size_t i = 0; i < pf->s->ntensors; i++) {
		enum kind k = pf->cls[i].kind;
		if (nat < 0 && (k == K_NAT || k == K_DORA_NAT))
			nat = (long)i;
		if (hf < 0 && (k == K_V4 || k == K_V5 || k == K_DORA_HF))
			hf = (long)i;
	}
	if (nat >= 0 && hf >= 0)
		return sd_err(pf->err, -EINVAL, "the adapter mixes native LoRA keys (e.g. '%s') and HF PEFT keys (e.g. '%s'), so it is in neither layout",
			      pf->s->tensors[nat].name, pf->s->tensors[hf].name);
	*to_hf = nat >= 0;
	*to_native = hf >= 0;
	if (pf->o->view == VIEW_NATIVE && *to_hf)
		return sd_err(pf->err, -EINVAL, "the adapter is already in the native layout ('%s'); use view=hf (or view=auto) to see it as HF PEFT",
			      pf->s->tensors[nat].name);
	if (pf->o->view == VIEW_HF && *to_native)
		return sd_err(pf->err, -EINVAL, "the adapter is already in the HF PEFT layout ('%s'); use view=native (or view=auto) to see it as native",
			      pf->s->tensors[hf].name);
	return 0;
}

static int one_tensor(struct peft *pf, size_t i)
{
	const struct tclass *c = &pf->cls[i];
	const char *name = pf->s->tensors[i].name;
	const struct pgroup *g = c->kind == K_NAT || c->kind == K_V5 ? &pf->groups[c->group] : NULL;
	char renamed[ST_MAX_NAME + 64];

	switch (c->kind) {
	case K_NAT:
		return pf->o->peft_v4 ? nat_to_v4(pf, g, c->part, i) : nat_to_pw(pf, g, c->part, i);
	case K_V5:
		return pw_to_nat(pf, g, c->part, i);
	case K_DORA_NAT:
	case K_DORA_HF:
		snprintf(renamed, sizeof(renamed), "%.*s.%s", (int)c->base_len, name,
			 c->kind == K_DORA_NAT ? "lora_magnitude_vector" : "lora_magnitude");
		return add(pf, renamed, i, NULL);
	case K_V4:      /* unless folded into a grouped tensor, as is */
		return pf->used[i] ? 0 : add(pf, name, i, NULL);
	default:
		return add(pf, name, i, NULL);
	}
}

int peft_plan(const struct source *s, const struct view_opts *o,
	      struct plan *out, char *err)
{
	struct peft pf = { .s = s, .o = o, .p = out, .err = err };
	bool to_hf = false, to_native = false;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->dtype = o->dtype;
	out->files.single = PEFT_WEIGHTS;       /* one file in both layouts, no index */
	/* LoRA recombination needs every expert (spec §2.5), so an adapter is
	 * shown whole, also on each rank of a job; only asking for a slice is
	 * an error. */
	if (o->ep_size > 0 && !o->ep_from_rank)
		return sd_err(err, -EINVAL, "a PEFT adapter directory is shown whole; drop ep_rank/ep_size for it");
	pf.rank = config_rank(s->peft_config);
	pf.cls = calloc(s->ntensors + 1, sizeof(*pf.cls));
	pf.used = calloc(s->ntensors + 1, sizeof(*pf.used));
	if (!pf.cls || !pf.used)
		rc = sd_err(err, -ENOMEM, "out of memory");
	if (rc == 0)
		rc = peft_names_open(&pf.names, s, o, err);
	snprintf(out->adapter, sizeof(out->adapter), "peft, %s", pf.names.label);
	if (rc == 0)
		rc = classify(&pf);
	if (rc == 0)
		rc = direction(&pf, &to_hf, &to_native);
	/* the LoRA layout says which renames apply; only dense LoRA: the names */
	pf.names.dir = to_hf ? DIR_TO_HF : to_native ? DIR_TO_NATIVE :
		       peft_names_default_dir(&pf.names, o->view);
	for (size_t g = 0; rc == 0 && to_hf && g < pf.ngroups; g++)
		rc = nat_check(&pf, &pf.groups[g]);
	for (size_t g = 0; rc == 0 && to_native && g < pf.ngroups; g++)
		rc = v4_to_nat(&pf, &pf.groups[g]);
	for (size_t i = 0; rc == 0 && i < s->ntensors; i++)
		rc = one_tensor(&pf, i);
	out->direction = to_hf ? (o->peft_v4 ? "native->hf (PEFT v4)" : "native->hf (PEFT v5)") :
			 to_native || (pf.renamed && pf.names.dir == DIR_TO_NATIVE) ? "hf->native (PEFT)" :
			 pf.renamed ? "native->hf (PEFT)" : "identity (PEFT)";
	peft_names_close(&pf.names);
	strmap_free(&pf.by_prefix);      /* before the names it points at */
	for (size_t g = 0; g < pf.ngroups; g++) {
		free(pf.groups[g].prefix);
		free(pf.groups[g].v4);
	}
	free(pf.groups);
	free(pf.cls);
	free(pf.used);
	if (rc < 0) {
		plan_free(out);
		return rc;
	}
	plan_chunk(out);
	return 0;
}
