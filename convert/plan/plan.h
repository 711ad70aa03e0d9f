/*
 * plan.h — the view's output tensors, each with the recipe that makes it.
 *
 * A plan is pure metadata: names, dtypes, shapes and recipes.  Building one
 * touches no tensor data, so sizes are exact before anything is converted.
 */
#ifndef SDAFS_PLAN_H
#define SDAFS_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "recipe.h"
#include "strmap.h"

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

struct plan {
	struct plan_tensor *tensors;
	size_t n, cap;
	struct strmap by_name;
	char adapter[64];       /* which adapter made it */
	const char *direction;  /* "hf->native" or "native->hf" */
	enum sd_dtype dtype;    /* the adapter dtype used for merged experts */
	uint64_t ep_start, ep_end, experts;    /* expert range shown; experts 0 if dense */
};

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
