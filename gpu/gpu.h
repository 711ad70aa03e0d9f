/*
 * gpu.h — the CUDA backend: recipes evaluated on an NVIDIA GPU, with the
 * same entry shape and the same bits as the CPU backend (recipe_cpu.c).
 *
 * The kernels compile the scalar rules the CPU uses (dtype_scalar.h for
 * casts, quant.h for dequantization), so nothing is described twice.  A
 * build without nvcc links gpu_none.c instead, and gpu_init() says so; a
 * build with it links CUDA's runtime statically, so the binary still runs
 * (on the CPU) where there is no driver or no GPU.
 *
 * gpu/ may use convert/base and convert/recipe (the IR it evaluates and the
 * scalar rules it compiles); convert/view dispatches chunks to it.
 */
#ifndef SDAFS_GPU_H
#define SDAFS_GPU_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "err.h"        /* SD_ERRLEN (C linkage for its functions in C++) */

struct recipe;
struct rx_reader;

/* True when this binary was built with the CUDA backend. */
bool gpu_compiled_in(void);

/* How CUDA is to start; see docs/design.md ("The GPU's life"). */
struct gpu_config {
	int device;             /* -1: by the process's rank on its node (gpu_share.h) */
	uint64_t device_bytes;  /* all pools' device memory; 0: the default share */
	uint64_t pinned_bytes;  /* all pools' pinned host memory; 0: the default */
};

/* Before gpu_init (later calls change nothing); without it, the defaults
 * (and SDAFS_GPU_MEM_MB, SDAFS_GPU_PINNED_MB from the environment). */
void gpu_configure(const struct gpu_config *c);

/*
 * Start CUDA in this process (once; later calls repeat the answer): 0 and
 * the device's name in name (may be NULL), or a negative errno and a message
 * saying why not (no driver, no device, built without CUDA).  Call it in the
 * process that converts: CUDA started before a fork is unusable in the
 * child (the child's calls then return -ENODEV).
 */
int gpu_init(char *name, size_t len, char *err);

/* Started, in this process, and not given up after a fault. */
bool gpu_usable(void);

/* Does the CUDA backend evaluate every node of r?  (F64 and 8-byte casts
 * stay on the CPU.) */
bool gpu_supports(const struct recipe *r);

/*
 * Rows [r0, r1) of the root into host memory dst, like recipe_eval_cpu.
 * Source rows are read on the CPU into pinned staging, copied up on the
 * calling thread's own stream, converted, and copied back; a chunk whose
 * memory cannot be had is done in smaller batches of rows.  After
 * gpu_init() == 0.  An error that gpu_declined() accepts means "convert
 * this chunk on the CPU" (the GPU cannot take it, is out of memory, or
 * failed); any other is the chunk's own (its source could not be read).
 */
int recipe_eval_cuda(const struct recipe *r, uint64_t r0, uint64_t r1,
		     void *dst, const struct rx_reader *rd, char *err);

/* The same, always in batches of at most a third of the rows: the path an
 * out-of-memory chunk takes, for the mount's self-check. */
int recipe_eval_cuda_batched(const struct recipe *r, uint64_t r0, uint64_t r1,
			     void *dst, const struct rx_reader *rd, char *err);

/* -ENOTSUP, -ENOMEM, -ENODEV: the GPU declined the chunk, the CPU takes it. */
static inline bool gpu_declined(int rc)
{
	return rc == -ENOTSUP || rc == -ENOMEM || rc == -ENODEV;
}

/* What the backend did so far, for .sdafs-stats. */
struct gpu_stats {
	bool started, dead;
	int device, devices;
	char name[256];
	char dead_reason[SD_ERRLEN];    /* what failed, when dead */
	uint64_t out_of_memory;         /* chunks (or batches) past a bound or the allocator */
	uint64_t errors;                /* other CUDA errors (the CPU took the chunk) */
	uint64_t stale_errors;          /* errors left by earlier calls, cleared */
	uint64_t row_splits;            /* chunks done in smaller batches of rows */
	uint64_t trims;                 /* idle pools given back */
	uint64_t device_bound, device_held, pinned_bound, pinned_held;
};

void gpu_get_stats(struct gpu_stats *s);

#ifdef __cplusplus
}
#endif

#endif
