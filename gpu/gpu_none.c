/*
 * gpu_none.c — the CUDA calls of a build without nvcc: there are none.
 * The backend (gpu_life.c, recipe_cuda.c) is built all the same and says,
 * when asked to start, that this sdafs was built without CUDA.
 */
#include "gpu.h"
#include "gpu_api.h"

bool gpu_compiled_in(void)
{
	return false;
}

const struct gpu_api *gpu_cuda_api(void)
{
	return NULL;
}
