/*
 * gpu_none.c — the CUDA backend of a build without nvcc: there is none,
 * and gpu_init() says how to get one.
 */
#include "gpu.h"

#include <errno.h>
#include <stddef.h>

#include "err.h"

bool gpu_compiled_in(void)
{
	return false;
}

int gpu_init(char *name, size_t len, char *err)
{
	if (name && len)
		name[0] = '\0';
	return sd_err(err, -ENOSYS, "this sdafs was built without CUDA (no nvcc at build time; "
		      "rebuild where /usr/local/cuda/bin/nvcc exists, or name it with make NVCC=)");
}

bool gpu_supports(const struct recipe *r)
{
	(void)r;
	return false;
}

int recipe_eval_cuda(const struct recipe *r, uint64_t r0, uint64_t r1,
		     void *dst, const struct rx_reader *rd, char *err)
{
	(void)r;
	(void)r0;
	(void)r1;
	(void)dst;
	(void)rd;
	return sd_err(err, -ENOSYS, "this sdafs was built without CUDA");
}
