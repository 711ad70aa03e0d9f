/*
 * chunkmem.h — the memory behind cache chunks, recycled whatever their sizes
 * (chunkmem.c).
 *
 * A fresh page costs a kernel zero-fill and, in a VM that hands freed memory
 * back to its host, a fault in the host too; on the project's VM that was a
 * quarter of a cold converted read.  chunkmem keeps the memory of released
 * chunks (up to keep_max bytes) and builds later chunks from it, also when
 * they have another size.
 */
#ifndef SDAFS_CHUNKMEM_H
#define SDAFS_CHUNKMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Chunks of at least this many bytes live in whole blocks of it. */
#define CHUNKMEM_BLOCK ((size_t)2 << 20)

struct chunkmem_opts {
	bool reuse_blocks;      /* build a chunk from kept blocks of other sizes */
	bool hugepages;         /* ask for transparent huge pages on new blocks */
	bool prefault;          /* fault new blocks in at once (one call, not a fault a page) */
};

struct chunkmem_stats {
	uint64_t fresh_bytes;   /* newly mapped: the pages a fill will fault in */
	uint64_t reused_bytes;  /* a kept buffer of the same size, as it was */
	uint64_t moved_bytes;   /* kept blocks moved (mremap) into a new chunk */
	uint64_t kept_bytes;    /* kept now, for the next chunks */
};

struct chunkmem;

struct chunkmem *chunkmem_new(uint64_t keep_max, const struct chunkmem_opts *o);
void chunkmem_free(struct chunkmem *m);         /* every buffer must be back */

/* len bytes of writable memory (NULL: none left); its contents are garbage. */
void *chunkmem_get(struct chunkmem *m, size_t len);
/* Give back what chunkmem_get(m, len) returned. */
void chunkmem_put(struct chunkmem *m, void *p, size_t len);

void chunkmem_get_stats(struct chunkmem *m, struct chunkmem_stats *out);

#endif
