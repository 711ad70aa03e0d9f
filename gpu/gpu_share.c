/*
 * gpu_share.c — the device by node rank, and the default bounds (see
 * gpu_share.h).
 */
#include "gpu_share.h"

#include <errno.h>
#include <stdlib.h>

#include "number.h"

bool gpu_local_rank(gpu_getenv_fn get, long *rank, long *size)
{
	static const char *const vars[][2] = {
		{ "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE" },
		{ "MPI_LOCALRANKID", "MPI_LOCALNRANKS" },        /* MPICH, Intel MPI */
		{ "MV2_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_SIZE" },
		{ "PALS_LOCAL_RANKID", "PALS_LOCAL_SIZE" },      /* Cray PALS */
		{ "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE" },
		{ "LOCAL_RANK", "LOCAL_WORLD_SIZE" },            /* torchrun */
	};

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		long r = sd_whole_number(get(vars[i][0])), n = sd_whole_number(get(vars[i][1]));
		if (r < 0)
			continue;
		*rank = r;
		*size = n > r ? n : 0;  /* a count the rank does not fit in is no count */
		return true;
	}
	return false;
}

int gpu_device_for_rank(long rank, int ndev)
{
	if (rank < 0 || ndev <= 0)
		return 0;
	return (int)(rank % ndev);
}

unsigned gpu_ranks_on_device(long rank, long size, int ndev)
{
	if (size <= 0 || ndev <= 0 || rank < 0 || rank >= size)
		return 1;
	long dev = rank % ndev, n = size / ndev + (dev < size % ndev);
	return n > 0 ? (unsigned)n : 1;
}

uint64_t gpu_default_device_bound(uint64_t free_bytes, unsigned sharing)
{
	return free_bytes / GPU_DEVICE_SHARE / (sharing ? sharing : 1);
}

uint64_t gpu_default_pinned_bound(uint64_t ram_bytes, long local)
{
	return ram_bytes / GPU_PINNED_SHARE / (uint64_t)(local > 0 ? local : 1);
}
