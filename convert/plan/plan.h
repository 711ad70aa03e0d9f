/*
 * plan.h — the view's output tensors, each with the recipe that makes it.
 *
 * A plan is pure metadata: names, dtypes, shapes and recipes, and which
 * file each tensor goes to.  Building one touches no tensor data, so sizes
 * are exact before anything is converted.
 *
 * convert/plan/ owns planning: the adapter engine and its rule tables
 * (adapter*.c and the tables in adapters/), PEFT adapter directories (peft.c), the
 * consolidation of sharded saves (dcp_plan.c), and plan_build(), which
 * picks among them.  It may use convert/base, convert/source (what the
 * checkpoint holds) and convert/recipe (how a tensor is computed); it never
 * reads tensor data.
 */
#ifndef SDAFS_PLAN_H
#define SDAFS_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "recipe.h"
#include "source.h"
#include "strmap.h"

enum view_kind { VIEW_AUTO, VIEW_NATIVE, VIEW_HF };

/* What the user asked the view to be. */
struct view_opts {
	enum view_kind view;
	const char *adapter;    /* a built-in's name, or NULL: from config.json */
	const char *adapter_file;       /* a table to use instead of a built-in */
	const char *const *adapter_dirs;        /* where installed tables NAME.json
				 * are (NULL-terminated), after the built-ins */
	enum sd_dtype dtype;    /* SD_DTYPE_INVALID: auto (config torch_dtype) */
	long ep_rank, ep_size;  /* ep_size 0: every expert */
	bool ep_from_rank;      /* ep_* are the job's rank and size, not asked for */
	bool peft_v4;           /* PEFT adapters: per-expert HF keys, not ParamWrapper */
};

struct plan_tensor {
	char *name;
	enum sd_dtype dtype;
	int ndim;
	uint64_t shape[ST_MAX_DIMS];
	uint64_t nbytes;
	uint32_t src;           /* identity: the source; else the one it sits beside */
	struct recipe *recipe;  /* NULL when the bytes are the source's, unchanged */
	uint64_t chunk_rows;    /* rows of dim 0 per cached chunk (converted only) */
	char *preload;          /* identity: its bytes, held in memory (dist/) */
};

/* Which file each tensor goes to.  By default (file_of NULL, single NULL)
 * one shard per source weight file, mirroring the source; a consolidated
 * checkpoint says file_of[t] for plan tensor t among nfiles, with bare
 * headers (no __metadata__, no padding) as Automodel writes them; a PEFT
 * adapter puts every tensor into the one file named single, with no index. */
struct plan_files {
	uint32_t *file_of;      /* owned */
	uint32_t nfiles;
	bool bare_headers;
	const char *single;
};

struct plan {
	struct plan_tensor *tensors;
	size_t n, cap;
	struct strmap by_name;
	char adapter[64];       /* which adapter made it */
	const char *direction;  /* "hf->native" or "native->hf" */
	enum sd_dtype dtype;    /* the adapter dtype used for merged experts */
	uint64_t ep_start, ep_end, experts;    /* expert range shown; experts 0 if dense */
	struct plan_files files;
	/* A top-level config.json key the view leaves out because its weights
	 * make it untrue ("quantization_config": a family whose table
	 * dequantizes, in either direction, since sdafs never quantizes), or
	 * NULL: config.json is passed through. */
	const char *config_drop;
};

/*
 * The plan of source s: a sharded save's consolidation (unless view=native),
 * a PEFT adapter directory's other key layout, or else the model family's
 * adapter table in the direction the source's names call for.  o->view only
 * confirms the direction.  Errors name the source.
 */
int plan_build(const struct source *s, const struct view_opts *o,
	       struct plan *out, char *err);

/* A recipe leaf reading source tensor t of s as stored. */
int plan_src(struct recipe *r, const struct source *s, size_t t, char *err);

/* Append a tensor (name is copied).  -EEXIST with a message if the name is
 * taken. */
int plan_add(struct plan *p, const char *name, const struct rx_node *shape,
	     uint32_t src, struct recipe *recipe, char *err);
/* Choose chunk_rows for every converted tensor. */
void plan_chunk(struct plan *p);
void plan_free(struct plan *p);

/* Bytes of one chunk of t, and how many chunks it has. */
uint64_t plan_chunk_bytes(const struct plan_tensor *t);
uint64_t plan_nchunks(const struct plan_tensor *t);

#endif
