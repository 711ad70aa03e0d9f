/*
 * gpu_life.h — CUDA's life in one process, inside gpu/: starting on the
 * right device with the right bounds, each worker thread's stream and
 * pools, turning CUDA errors into errnos, giving the GPU up after a fault,
 * and giving idle memory back.  recipe_cuda.c evaluates on top of it.
 *
 * Every CUDA call goes through gpu_api() (gpu_api.h), so all of this is
 * plain C that the tests run against a fake device.
 */
#ifndef SDAFS_GPU_LIFE_H
#define SDAFS_GPU_LIFE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "gpu_api.h"
#include "gpu_pool.h"

/* A worker thread's own: its stream and pools. */
struct gpu_ctx {
	void *stream;
	struct gpu_pool dev, pin;
	pthread_mutex_t lock;   /* its thread's during a chunk, the trimmer's while it trims */
	uint64_t last_ns;       /* when its last chunk ended */
	struct gpu_ctx *next;   /* every context, for the trimmer */
};

/* The table every CUDA call goes through. */
const struct gpu_api *gpu_api(void);

/* Blocks of a grid-stride launch that fill the device once. */
unsigned gpu_max_blocks(void);

/*
 * Before a chunk: start CUDA if needed, refuse when it cannot take chunks
 * (-ENODEV: none, given up after a fault, or inherited across a fork),
 * clear an error an earlier call left behind, and lock the calling thread's
 * context into *c.  gpu_leave() after the chunk.
 */
int gpu_enter(struct gpu_ctx **c, char *err);
void gpu_leave(struct gpu_ctx *c);

/*
 * The errno for CUDA error e (not GPU_OK) from `what`, with a message:
 * -ENOMEM for out of memory, -ENODEV for a fault that poisons the context
 * (the GPU is given up, once, logged), -ENOTSUP for the rest (logged once
 * per kind).  The error is cleared where CUDA lets it be.  Each is a reason
 * to convert the chunk on the CPU (gpu_declined).
 */
int gpu_error(int e, const char *what, char *err);

/* n bytes of device memory / pinned host memory from c's pools: 0, or a
 * negative errno (-ENOMEM past a bound) with a message. */
int gpu_device_get(struct gpu_ctx *c, uint64_t n, char **p, char *err);
int gpu_pinned_get(struct gpu_ctx *c, uint64_t n, char **p, char *err);

/* A chunk was done in smaller batches of rows. */
void gpu_count_split(void);

#endif
