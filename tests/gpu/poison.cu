/*
 * poison.cu — one deliberately bad kernel for the GPU stress driver: a
 * write to an address no allocation has, which leaves the process's CUDA
 * context unusable ("sticky"), as a fault in a real kernel would.
 */
#include <cuda_runtime.h>

__global__ void k_write_nowhere(int *p)
{
	*p = 1;
}

/* The error the fault leaves (cudaErrorIllegalAddress on a healthy GPU). */
extern "C" int stress_poison_context(void)
{
	k_write_nowhere<<<1, 1>>>((int *)0x10);
	return (int)cudaDeviceSynchronize();
}
