/*
 * dcp.h — NeMo Automodel's sharded saves: tensors in chunks across files.
 *
 * A training checkpoint's model/ directory holds one safetensors file per
 * writing rank.  A tensor sharded across ranks appears as a chunk in several
 * of them, and each file's __metadata__ DCP_SHARDING_INFO gives every
 * chunk's start in each dimension of the whole tensor.  The scan turns the
 * chunks of a name into one logical tensor, after checking that they tile it
 * exactly: same dtype and rank, inside the whole, no gap, no overlap.
 */
#ifndef SDAFS_DCP_H
#define SDAFS_DCP_H

#include "safetensors.h"
#include "source.h"

struct dcp_pending {
	struct dcp_piece *pieces;
	size_t n, cap;
};

/* The file's chunk table (parsed DCP_SHARDING_INFO), or NULL when the file
 * is not part of a sharded save. */
int dcp_chunk_info(const cJSON *metadata, const char *file, cJSON **info, char *err);

/* Set aside every tensor of header h (file fi) as a chunk. */
int dcp_add_chunks(struct dcp_pending *p, uint32_t fi, const char *file,
		   struct st_header *h, const cJSON *info, char *err);

/* Do t's chunks tile it exactly: each inside it, its byte count its
 * shape's, none overlapping another, together all of it?  For a tensor
 * whose chunks came from elsewhere (another rank's description). */
bool dcp_chunks_tile(const struct src_tensor *t);

/* Turn the pending chunks into logical tensors of s. */
int dcp_finish(struct source *s, struct dcp_pending *p, char *err);
void dcp_pending_free(struct dcp_pending *p);

#endif
