/*
 * gpu_api.h — every CUDA call the backend makes, as one table of function
 * pointers.
 *
 * The backend (recipe_cuda.c, gpu_life.c: plain C) never calls the CUDA
 * runtime by name: it calls through a struct gpu_api, whose real entries
 * (cuda_api.cu, the one file nvcc compiles) are one-line wrappers of
 * cudaMalloc, cudaMemcpyAsync, the kernel launches and the rest.  A test
 * build (SDAFS_GPU_TEST_HOOKS, the sanitizer build) can swap the table for
 * one of its own: a device in host memory whose kernels run the very
 * thread functions of kernel_math.h, and which fails the calls a test
 * chooses with the errors it chooses.  So the evaluator, its pools, its
 * error mapping and its dead-GPU path all run and are tested on a machine
 * without a GPU (tests/unit/gpu_fake.c).
 *
 * The table uses no CUDA type: errors are cudaError_t's values as ints
 * (the ones the tests use are named below, and cuda_api.cu checks that
 * they match), streams are void pointers.
 */
#ifndef SDAFS_GPU_API_H
#define SDAFS_GPU_API_H

#include <stdbool.h>
#include <stddef.h>

#include "kernel_math.h"

#ifdef __cplusplus
extern "C" {
#endif

/* cudaError_t values the backend tells apart (cuda_api.cu checks them). */
enum {
	GPU_OK = 0,
	GPU_ERR_INVALID_VALUE = 1,
	GPU_ERR_OUT_OF_MEMORY = 2,              /* -ENOMEM: the CPU converts */
	/* The rest leave the context unusable ("sticky"): the GPU is given up. */
	GPU_ERR_INITIALIZATION = 3,
	GPU_ERR_CUDART_UNLOADING = 4,
	GPU_ERR_INSUFFICIENT_DRIVER = 35,
	GPU_ERR_DEVICES_UNAVAILABLE = 46,
	GPU_ERR_NO_DEVICE = 100,
	GPU_ERR_DEVICE_UNINITIALIZED = 201,
	GPU_ERR_ECC_UNCORRECTABLE = 214,
	GPU_ERR_NVLINK_UNCORRECTABLE = 220,
	GPU_ERR_ILLEGAL_ADDRESS = 700,
	GPU_ERR_LAUNCH_TIMEOUT = 702,
	GPU_ERR_CONTEXT_IS_DESTROYED = 709,
	GPU_ERR_ASSERT = 710,
	GPU_ERR_HARDWARE_STACK = 714,
	GPU_ERR_ILLEGAL_INSTRUCTION = 715,
	GPU_ERR_MISALIGNED_ADDRESS = 716,
	GPU_ERR_INVALID_ADDRESS_SPACE = 717,
	GPU_ERR_INVALID_PC = 718,
	GPU_ERR_LAUNCH_FAILURE = 719,
	GPU_ERR_UNKNOWN = 999,
};

/* Does error e leave the CUDA context unusable? */
static inline bool gpu_error_is_sticky(int e)
{
	switch (e) {
	case GPU_ERR_INITIALIZATION: case GPU_ERR_CUDART_UNLOADING:
	case GPU_ERR_INSUFFICIENT_DRIVER: case GPU_ERR_DEVICES_UNAVAILABLE:
	case GPU_ERR_NO_DEVICE: case GPU_ERR_DEVICE_UNINITIALIZED:
	case GPU_ERR_ECC_UNCORRECTABLE: case GPU_ERR_NVLINK_UNCORRECTABLE:
	case GPU_ERR_ILLEGAL_ADDRESS: case GPU_ERR_LAUNCH_TIMEOUT:
	case GPU_ERR_CONTEXT_IS_DESTROYED: case GPU_ERR_ASSERT:
	case GPU_ERR_HARDWARE_STACK: case GPU_ERR_ILLEGAL_INSTRUCTION:
	case GPU_ERR_MISALIGNED_ADDRESS: case GPU_ERR_INVALID_ADDRESS_SPACE:
	case GPU_ERR_INVALID_PC: case GPU_ERR_LAUNCH_FAILURE: case GPU_ERR_UNKNOWN:
		return true;
	}
	return false;
}

/* cudaDeviceScheduleBlockingSync: a waiting thread sleeps, not spins. */
#define GPU_SCHEDULE_BLOCKING_SYNC 0x04u

/* What the backend learns of a device. */
struct gpu_device_info {
	char name[256];
	unsigned multiprocessors;
	size_t free_bytes, total_bytes;
};

enum gpu_copy_kind { GPU_HOST_TO_DEVICE, GPU_DEVICE_TO_HOST, GPU_DEVICE_TO_DEVICE };

struct gpu_api {
	int (*device_count)(int *n);
	int (*set_device)(int dev);
	int (*set_device_flags)(unsigned flags);
	/* of the current device (after set_device) */
	int (*device_info)(int dev, struct gpu_device_info *info);
	int (*stream_create)(void **stream);
	int (*stream_destroy)(void *stream);
	int (*stream_sync)(void *stream);
	int (*malloc_device)(void **p, size_t n);
	int (*free_device)(void *p);
	int (*malloc_pinned)(void **p, size_t n);
	int (*free_pinned)(void *p);
	int (*copy)(void *dst, const void *src, size_t n, enum gpu_copy_kind kind, void *stream);
	int (*copy2d)(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
		      size_t height, enum gpu_copy_kind kind, void *stream);
	/* the error the last failed call left (cleared unless it is sticky) */
	int (*get_last_error)(void);
	/* the same without clearing it */
	int (*peek_last_error)(void);
	const char *(*error_string)(int e);
	/* Kernel launches on a stream; each returns the launch's error. */
	int (*cast)(struct kx_cast a, unsigned blocks, void *stream);
	int (*transpose)(struct kx_transpose a, unsigned elem_size, struct kx_grid3 grid,
			 const void *src, void *dst, void *stream);
	int (*dequant_fp8)(struct kx_fp8 a, unsigned blocks, void *stream);
	int (*dequant_mxfp4)(struct kx_mxfp4 a, unsigned blocks, void *stream);
};

/* The real table (cuda_api.cu), or NULL in a build without nvcc (gpu_none.c). */
const struct gpu_api *gpu_cuda_api(void);

/*
 * Test builds only (SDAFS_GPU_TEST_HOOKS): make api the backend's table
 * (NULL: the real one) and forget every GPU state (the device found, a dead
 * GPU, pools, streams, counters), as a fresh process would have.  Declared
 * weak here so a test can tell, at run time, whether the build has it.
 */
int gpu_test_use_api(const struct gpu_api *api) __attribute__((weak));
/* One pass of the idle trimmer, as if every pool had been idle long enough. */
void gpu_test_trim_now(void) __attribute__((weak));

#ifdef __cplusplus
}
#endif

#endif
