/*
 * adapter_apply.h — one application of an adapter table, shared by the rule
 * loop (adapter_apply.c) and the groups it fills (adapter_groups.c).
 */
#ifndef SDAFS_ADAPTER_APPLY_H
#define SDAFS_ADAPTER_APPLY_H

#include "adapter_impl.h"

/* Per-expert tensors of one layer waiting to be merged. */
struct xgroup {
	char *names[2];         /* gate_and_up, down */
	long *src[3];           /* [PROJ_*][expert] -> source tensor, or -1 */
	struct recipe **rx[3];  /* [PROJ_*][expert] -> what earlier rules made of
				 * it (a dequantization), NULL: its bytes */
	size_t anchor;          /* the first member seen: where the group sits */
	const struct rule *rule;
};

/* The parts of one joined tensor. */
struct jgroup {
	char *name;
	long part[2];           /* source tensors, or -1 */
	size_t anchor;
	const struct rule *rule;
};

struct apply {
	struct apply_cfg cfg;
	const struct source *s;
	const struct view_opts *o;
	struct plan *p;
	char *prefix;           /* put before every output name (routes) */
	unsigned long ep_start, ep_end;
	struct xgroup *groups;
	size_t ngroups, gcap;
	struct strmap group_by_name;
	struct jgroup *joins;
	size_t njoins, jcap;
	struct strmap join_by_name;
	struct apply **subs;    /* per rule: the application a route made */
	pcre2_match_data *md;
	char *err;
};

int apply_new(struct apply **out, const struct adapter *a, const struct source *s,
	      const struct view_opts *o, struct plan *p, const char *root, int dir,
	      const char *prefix, char *err);
void apply_free(struct apply *ap);

int apply_substitute(const pcre2_code *re, const char *subject, const char *repl,
		     char **out, char *err);
uint64_t apply_group_number(const struct apply *ap, const char *subject, int n);
void apply_group_text(const struct apply *ap, const struct rule *r,
		      const char *subject, const char *group, char *buf, size_t len);

/* adapter_groups.c */
/* *rx (may be NULL) is the item's recipe; the group takes it. */
int apply_claim_expert(struct apply *ap, const struct rule *r, const char *name,
		       size_t src, struct recipe **rx);
int apply_claim_part(struct apply *ap, const struct rule *r, const char *name,
		     size_t src);
int apply_build_groups(struct apply *ap);
void apply_free_groups(struct apply *ap);

#endif
