/*
 * gpu_pool.h — the memory a GPU worker thread converts in: blocks that grow
 * to what a chunk needs, are reused from chunk to chunk without being
 * freed, stay under a bound shared by every thread, and are given back
 * when the thread has been idle.
 *
 * A chunk's evaluation asks for the same sequence of buffers every time a
 * chunk of that tensor comes, so a pool that hands them out in order from
 * its blocks, starting over at the first block after each chunk, allocates
 * only while it grows: a new block is as big as the request that did not
 * fit (at least a minimum), never a multiple of the last one, and freeing
 * (cudaFree synchronizes the whole device) happens only when the thread
 * has been idle a while (gpu_pool_release, from the idle trimmer).
 *
 * The arithmetic is plain C with the allocator passed in, so the unit
 * tests run it with malloc (tests/unit/test_gpu_pool.c); gpu_life.c
 * runs it with cudaMalloc and cudaMallocHost.
 */
#ifndef SDAFS_GPU_POOL_H
#define SDAFS_GPU_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GPU_POOL_ALIGN 256u                     /* every buffer's alignment */
#define GPU_POOL_GRAIN ((size_t)2 << 20)        /* blocks are whole 2 MiB */

/* Bytes all pools of one kind may hold together (the device's share, or
 * pinned host memory); held is changed atomically. */
struct gpu_bound {
	uint64_t held;
	uint64_t limit;
};

/* Take n bytes of the bound: false (and nothing taken) when they would
 * pass the limit.  Give them back with gpu_bound_give. */
bool gpu_bound_take(struct gpu_bound *b, uint64_t n);
void gpu_bound_give(struct gpu_bound *b, uint64_t n);
uint64_t gpu_bound_held(const struct gpu_bound *b);

struct gpu_block {
	struct gpu_block *next;
	char *p;
	size_t cap, used;
};

/* An allocator: 0 or an error code of its own (a cudaError_t). */
typedef int (*gpu_alloc_fn)(void **p, size_t n);
typedef int (*gpu_release_fn)(void *p);

struct gpu_pool {
	struct gpu_block *first, *cur;  /* blocks in the order they were made */
	struct gpu_bound *bound;
	size_t min_block;
	gpu_alloc_fn alloc;
	gpu_release_fn release;
};

/* The size of a new block for a request of n bytes: n rounded up to
 * GPU_POOL_GRAIN, at least min_block. */
size_t gpu_block_size(size_t n, size_t min_block);

/* Bytes a request of n takes from a block (n rounded up to GPU_POOL_ALIGN;
 * a request of 0 takes one unit, so every buffer has an address of its own). */
size_t gpu_pool_round(size_t n);

/*
 * n bytes from the pool into *out: 0; -ENOMEM when the bound would be
 * passed (*alloc_err = 0) or the allocator said no (*alloc_err = its code).
 */
int gpu_pool_get(struct gpu_pool *p, size_t n, void **out, int *alloc_err);

/* After a chunk (nothing of it in use any more): start over at the first
 * block.  Frees nothing. */
void gpu_pool_reset(struct gpu_pool *p);

/* Free every block (the thread was idle); the bound gets their bytes back. */
void gpu_pool_release(struct gpu_pool *p);

/* Forget every block without freeing it: its memory belongs to a CUDA
 * context this process cannot use (it forked).  The bound is left as is. */
void gpu_pool_abandon(struct gpu_pool *p);

/* Bytes the pool's blocks hold. */
size_t gpu_pool_held(const struct gpu_pool *p);

/* Should a pool last used at last_ns (a monotonic clock) be released at
 * now_ns, after idle_ns without a chunk?  Never while it holds nothing. */
bool gpu_pool_idle(const struct gpu_pool *p, uint64_t last_ns, uint64_t now_ns, uint64_t idle_ns);

#ifdef __cplusplus
}
#endif

#endif
