/*
 * gpu_fake.h — a CUDA device in host memory, for the tests.
 *
 * It fills the GPU backend's table of CUDA calls (gpu/gpu_api.h): device
 * memory and pinned memory are malloc'd (so AddressSanitizer watches every
 * buffer the evaluator hands a kernel), copies are memcpy, streams are
 * synchronous, and each kernel launch runs the kernel's own thread functions
 * (gpu/kernel_math.h) for every block and thread of its grid, on the CPU.
 * With a small multiprocessor count the grids are small, so grid-stride
 * loops go round even on small tensors.
 *
 * It fails on request: the nth call of a given kind returns a given CUDA
 * error, and remembers it as the calling thread's last error the way CUDA
 * does (a sticky error stays, and every later call returns it), so the
 * backend's error mapping and its dead-GPU path are tested without a GPU.
 *
 * Installing it needs a build with the backend's test hook (the sanitizer
 * build: SDAFS_GPU_TEST_HOOKS); elsewhere gpu_fake_install says so.
 * gpu_fake.c is compiled into every unit test by the Makefile.
 */
#ifndef SDAFS_GPU_FAKE_H
#define SDAFS_GPU_FAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "gpu_api.h"

/* The kinds of call, for counting and for failing. */
enum fake_call {
	FAKE_DEVICE_COUNT, FAKE_SET_DEVICE, FAKE_SET_FLAGS, FAKE_DEVICE_INFO,
	FAKE_STREAM_CREATE, FAKE_STREAM_DESTROY, FAKE_STREAM_SYNC,
	FAKE_MALLOC_DEVICE, FAKE_FREE_DEVICE, FAKE_MALLOC_PINNED, FAKE_FREE_PINNED,
	FAKE_COPY, FAKE_COPY2D, FAKE_CAST, FAKE_TRANSPOSE, FAKE_FP8, FAKE_MXFP4,
	FAKE_NCALLS
};

/* What the device is and what was done to it (read it between calls). */
struct gpu_fake {
	int devices;
	unsigned multiprocessors;
	size_t free_bytes;              /* device memory it will hand out */
	int device_set;                 /* the last set_device */
	unsigned flags_set;             /* the last set_device_flags */
	unsigned long calls[FAKE_NCALLS];
	size_t device_held, device_peak, pinned_held;
	long streams;                   /* created and not destroyed */
};

extern struct gpu_fake gpu_fake;

/*
 * Make the fake (devices of multiprocessors each, free_bytes of memory)
 * the backend's device, with every GPU state of the process forgotten.
 * False, with the reason in why (SD_ERRLEN), when the build cannot.
 */
bool gpu_fake_install(int devices, unsigned multiprocessors, size_t free_bytes, char *why);

/* Back to the real table (every context freed; checks nothing leaked). */
void gpu_fake_uninstall(void);

/* The nth call of kind `call` from now on (1: the next) fails with error. */
void gpu_fake_fail(enum fake_call call, unsigned long nth, int error);

/* Leave error as the calling thread's last error, as a failed CUDA call
 * outside the backend (or before this chunk) would. */
void gpu_fake_leave_error(int error);

/* The kernels' launches on the CPU: every block and thread of the grid runs
 * its thread function (for test_kernel_math.c, and the fake's launches). */
void gpu_fake_run_cast(struct kx_cast a, unsigned blocks);
void gpu_fake_run_transpose(struct kx_transpose a, unsigned elem_size, struct kx_grid3 grid,
			    const void *src, void *dst);
void gpu_fake_run_fp8(struct kx_fp8 a, unsigned blocks);
void gpu_fake_run_mxfp4(struct kx_mxfp4 a, unsigned blocks);

#endif
