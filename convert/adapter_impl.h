/*
 * adapter_impl.h — the in-memory form of an adapter table, shared by the
 * loader (adapter.c) and the engine that applies it (adapter_apply.c).
 */
#ifndef SDAFS_ADAPTER_IMPL_H
#define SDAFS_ADAPTER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "adapter.h"

enum rule_op { RULE_TRUNCATE, RULE_RENAME, RULE_DROP, RULE_MERGE };
enum rule_cond { COND_ALWAYS, COND_MOE, COND_DENSE };

struct rule {
	enum rule_op op;
	enum rule_cond cond;
	pcre2_code *re;
	char *to;               /* rename: replacement ($1, ${name}) */
	enum sd_dtype cast;     /* rename: cast floating tensors to this */
	char *below;            /* truncate: config key of the layer count */
	bool gated;             /* merge: gate and up both go into gate_and_up */
	char *gate_and_up, *down;       /* merge: output name templates */
	char *proj[3];          /* merge: names of the gate, up, down projections */
};

struct adapter {
	char *name, *description;
	cJSON *table;           /* the parsed JSON, kept for names below */
	const cJSON *architectures, *model_types, *config;
	const char *config_root;
	struct rule *rules;
	size_t nrules;
};

enum { PROJ_GATE, PROJ_UP, PROJ_DOWN };

int config_count(const struct adapter *a, const struct source *s,
		 const char *param, uint64_t *out, char *err);
int config_dtype(const struct adapter *a, const struct source *s,
		 enum sd_dtype *out, char *err);

#endif
