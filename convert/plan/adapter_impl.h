/*
 * adapter_impl.h — the in-memory form of an adapter table, shared by the
 * loader (adapter.c) and the engine that applies it (adapter_apply.c,
 * adapter_groups.c).
 */
#ifndef SDAFS_ADAPTER_IMPL_H
#define SDAFS_ADAPTER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "adapter.h"
#include "grow.h"

enum rule_op {
	RULE_TRUNCATE,  /* drop layers at or past a config count */
	RULE_RENAME,    /* rename, optionally transpose / slice experts / cast */
	RULE_DROP,
	RULE_MERGE,     /* per-expert tensors -> grouped [E, ...] tensors */
	RULE_SPLIT,     /* grouped tensors -> per-expert tensors */
	RULE_JOIN,      /* named parts -> one tensor joined on the last dim */
	RULE_SPLIT_LAST,/* one tensor -> parts cut on the last dim */
	RULE_ROUTE,     /* a prefix handled by another adapter */
	RULE_DEQUANT,   /* a quantized weight and its sibling scales -> floats */
};
enum dequant_format { DQ_FP8_BLOCK, DQ_MXFP4 };
enum rule_cond { COND_ALWAYS, COND_MOE, COND_DENSE };
enum { PROJ_GATE, PROJ_UP, PROJ_DOWN };

struct rule {
	enum rule_op op;
	enum rule_cond cond;
	pcre2_code *re;
	char *to;               /* rename, join: output name template */
	enum sd_dtype cast;     /* cast floating tensors to this ... */
	bool cast_adapter;      /* ... or to the adapter dtype */
	bool transpose;         /* swap the last two dims */
	bool ep_slice;          /* keep this rank's experts of dim 0 */
	char *below;            /* truncate: config parameter of the layer count */
	bool gated;             /* merge, split: gate and up share gate_and_up */
	char *names[3];         /* merge: projection names; split: output
				 * templates; join: part names (2) */
	char *groups[2];        /* merge: gate_and_up and down templates;
				 * split_last: the two output templates */
	char *route_prefix;     /* route: prefix put back on the outputs */
	char *route_root;       /* route: config.json object the sub-adapter reads */
	struct adapter *sub;    /* route: the adapter the prefix goes to */
	enum dequant_format format;     /* dequant: how the weight is stored */
	char *scale;            /* dequant: template naming the scale tensor */
	bool need_scale;        /* dequant: a weight without one fails the mount */
};

struct adapter {
	char *name, *description;
	char *what;             /* the table in messages: its file, or built-in NAME */
	cJSON *table;           /* the parsed JSON; names above point into it */
	const cJSON *architectures, *model_types, *config;
	const char *config_root;
	pcre2_code *detect[DIR_COUNT];  /* keys only a checkpoint of that layout has */
	pcre2_code *keep_f32;   /* output names an explicit dtype never casts */
	bool same_names;        /* HF and native names are the same: view= picks
				 * the direction, since the names cannot */
	const char *tied_lm_head, *tied_embedding;     /* native names of a
				 * family that ties lm_head; NULL: it never does */
	struct rule *rules[DIR_COUNT];
	size_t nrules[DIR_COUNT];
};

/* The parameters of one application of a table (a route makes another). */
struct apply_cfg {
	const struct adapter *a;
	const cJSON *config;    /* the config.json object it reads */
	int dir;
	uint64_t experts, layers, moe_inter;
	enum sd_dtype dtype;    /* adapter dtype */
};

int apply_cfg_init(struct apply_cfg *c, const struct adapter *a,
		   const struct source *s, const char *root, int dir,
		   const struct view_opts *o, char *err);
int adapter_load_depth(const char *json, size_t len, const char *what,
		       int depth, struct adapter **out, char *err);
int adapter_builtin_named(const char *name, int depth, struct adapter **out,
			  char *err);

/* adapter_match.c: every pattern is compiled and run through these, so no
 * table can make a mount hang (see there). */
int adapter_compile(const char *pat, const char *what, pcre2_code **out, char *err);
/* 1 on a match (md holds the groups), 0 on none, or a negative PCRE2 error
 * (a limit hit, out of memory) that must fail the plan. */
int adapter_match(const pcre2_code *re, const char *subject, pcre2_match_data *md);
/* The message for such an error: where (table, rule), the tensor, why. */
int adapter_match_failed(int code, const char *where, const char *subject, char *err);
/* The bounded match context, for pcre2_substitute (NULL: out of memory). */
pcre2_match_context *adapter_match_context(void);

#endif
