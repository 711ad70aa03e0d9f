/*
 * gpu_share.h — which GPU a daemon uses and how much of it: the device by
 * the process's rank on its node, and default bounds that leave the
 * trainer sharing the machine most of the device and of host memory.
 *
 * Pure functions of what the launcher and the machine say, so the unit
 * tests pin them down (tests/unit/test_gpu_pool.c); gpu_life.c applies
 * them when CUDA starts.  docs/design.md ("The GPU's life") states the
 * defaults.
 */
#ifndef SDAFS_GPU_SHARE_H
#define SDAFS_GPU_SHARE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Of the device's free memory at start, the share all of one process's
 * pools may hold: 1/GPU_DEVICE_SHARE, split among the node's ranks that
 * share the device. */
#define GPU_DEVICE_SHARE 4u
/* Of host RAM, the share of pinned (page-locked) staging: 1/GPU_PINNED_SHARE,
 * split among the node's ranks. */
#define GPU_PINNED_SHARE 8u

/* getenv, or a stand-in for tests. */
typedef const char *(*gpu_getenv_fn)(const char *name);

/*
 * The process's rank among the ranks on its node and their number, from
 * the launcher's environment: OpenMPI, MPICH/Intel MPI, MVAPICH, Cray PALS,
 * Slurm, torchrun (the first that sets a valid rank wins).  *size is 0 when
 * the launcher gives the rank but not the count.  False without a launcher.
 */
bool gpu_local_rank(gpu_getenv_fn get, long *rank, long *size);

/* The device of local rank `rank` among ndev visible ones (rank modulo
 * ndev; device 0 for a negative rank). */
int gpu_device_for_rank(long rank, int ndev);

/* How many of `size` local ranks use the device of local rank `rank`
 * (at least 1; size 0: unknown, 1). */
unsigned gpu_ranks_on_device(long rank, long size, int ndev);

/* The default bounds (bytes) for a process sharing its device with
 * `sharing` ranks, and host RAM with `local` ranks (0 counts as 1). */
uint64_t gpu_default_device_bound(uint64_t free_bytes, unsigned sharing);
uint64_t gpu_default_pinned_bound(uint64_t ram_bytes, long local);

#ifdef __cplusplus
}
#endif

#endif
