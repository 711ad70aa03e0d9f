/*
 * gpu.h — the CUDA backend: recipes evaluated on an NVIDIA GPU, with the
 * same entry shape and the same bits as the CPU backend (recipe_cpu.c).
 *
 * The kernels compile the scalar rules the CPU uses (dtype_scalar.h for
 * casts, quant.h for dequantization), so nothing is described twice.  A
 * build without nvcc links gpu_none.c instead, whose gpu_init() says so; a
 * build with it links CUDA's runtime statically, so the binary still runs
 * (on the CPU) where there is no driver or no GPU.
 *
 * gpu/ may use convert/base and convert/recipe (the IR it evaluates and the
 * scalar rules it compiles); convert/view dispatches chunks to it.
 */
#ifndef SDAFS_GPU_H
#define SDAFS_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct recipe;
struct rx_reader;

/* True when this binary was built with the CUDA backend. */
bool gpu_compiled_in(void);

/*
 * Find a usable GPU (once; later calls repeat the answer): 0 and the
 * device's name in name (may be NULL), or a negative errno and a message
 * saying why not (no driver, no device, built without CUDA).
 */
int gpu_init(char *name, size_t len, char *err);

/* Does the CUDA backend evaluate every node of r?  (F64 and 8-byte casts
 * stay on the CPU.) */
bool gpu_supports(const struct recipe *r);

/*
 * Rows [r0, r1) of the root into host memory dst, like recipe_eval_cpu.
 * Source rows are read on the CPU into pinned staging, copied up on the
 * calling thread's own stream, converted, and copied back; device memory
 * per thread is bounded and reused between calls.  After gpu_init() == 0.
 */
int recipe_eval_cuda(const struct recipe *r, uint64_t r0, uint64_t r1,
		     void *dst, const struct rx_reader *rd, char *err);

#ifdef __cplusplus
}
#endif

#endif
