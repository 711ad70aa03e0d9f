/*
 * cuda_api.cu — the one file nvcc compiles: the kernels, and the real
 * table of CUDA calls the backend makes (gpu_api.h).
 *
 * Each kernel passes its block and thread indices to the thread functions
 * of kernel_math.h, which hold all of its arithmetic, and only moves bytes
 * itself; each table entry is one CUDA call.  The build turns off FMA
 * contraction and flush-to-zero, so the bits are the CPU's.
 */
extern "C" {
#include "dtype.h"
}
#include "gpu.h"
#include "gpu_api.h"
#include "kernel_math.h"

#include <cuda_runtime.h>
#include <stdio.h>

/* gpu_api.h names these errors without CUDA's header. */
static_assert((int)GPU_ERR_INVALID_VALUE == (int)cudaErrorInvalidValue, "");
static_assert((int)GPU_ERR_OUT_OF_MEMORY == (int)cudaErrorMemoryAllocation, "");
static_assert((int)GPU_ERR_INITIALIZATION == (int)cudaErrorInitializationError, "");
static_assert((int)GPU_ERR_CUDART_UNLOADING == (int)cudaErrorCudartUnloading, "");
static_assert((int)GPU_ERR_INSUFFICIENT_DRIVER == (int)cudaErrorInsufficientDriver, "");
static_assert((int)GPU_ERR_DEVICES_UNAVAILABLE == (int)cudaErrorDevicesUnavailable, "");
static_assert((int)GPU_ERR_NO_DEVICE == (int)cudaErrorNoDevice, "");
static_assert((int)GPU_ERR_DEVICE_UNINITIALIZED == (int)cudaErrorDeviceUninitialized, "");
static_assert((int)GPU_ERR_ECC_UNCORRECTABLE == (int)cudaErrorECCUncorrectable, "");
static_assert((int)GPU_ERR_NVLINK_UNCORRECTABLE == (int)cudaErrorNvlinkUncorrectable, "");
static_assert((int)GPU_ERR_ILLEGAL_ADDRESS == (int)cudaErrorIllegalAddress, "");
static_assert((int)GPU_ERR_LAUNCH_TIMEOUT == (int)cudaErrorLaunchTimeout, "");
static_assert((int)GPU_ERR_CONTEXT_IS_DESTROYED == (int)cudaErrorContextIsDestroyed, "");
static_assert((int)GPU_ERR_ASSERT == (int)cudaErrorAssert, "");
static_assert((int)GPU_ERR_HARDWARE_STACK == (int)cudaErrorHardwareStackError, "");
static_assert((int)GPU_ERR_ILLEGAL_INSTRUCTION == (int)cudaErrorIllegalInstruction, "");
static_assert((int)GPU_ERR_MISALIGNED_ADDRESS == (int)cudaErrorMisalignedAddress, "");
static_assert((int)GPU_ERR_INVALID_ADDRESS_SPACE == (int)cudaErrorInvalidAddressSpace, "");
static_assert((int)GPU_ERR_INVALID_PC == (int)cudaErrorInvalidPc, "");
static_assert((int)GPU_ERR_LAUNCH_FAILURE == (int)cudaErrorLaunchFailure, "");
static_assert((int)GPU_ERR_UNKNOWN == (int)cudaErrorUnknown, "");
static_assert(GPU_SCHEDULE_BLOCKING_SYNC == cudaDeviceScheduleBlockingSync, "");

/* --- kernels ----------------------------------------------------------------- */

__device__ __forceinline__ struct kx_at here(void)
{
	struct kx_at at = { blockIdx.x, gridDim.x, threadIdx.x, blockDim.x };

	return at;
}

__global__ void k_cast(struct kx_cast a)
{
	kx_cast_thread(a, here());
}

__global__ void k_dequant_fp8(struct kx_fp8 a)
{
	kx_fp8_thread(a, here());
}

__global__ void k_dequant_mxfp4(struct kx_mxfp4 a)
{
	kx_mxfp4_thread(a, here());
}

/* A KX_TILE square through shared memory (one column of padding, so the
 * column reads hit distinct banks): rows in, columns out. */
template <typename T>
__global__ void k_transpose(struct kx_transpose a, const T *src, T *dst)
{
	__shared__ T tile[KX_TILE][KX_TILE + 1];
	uint64_t i;

	for (unsigned k = threadIdx.y; k < KX_TILE; k += blockDim.y)
		if (kx_transpose_src(a, blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, k, &i))
			tile[k][threadIdx.x] = src[i];
	__syncthreads();
	for (unsigned k = threadIdx.y; k < KX_TILE; k += blockDim.y)
		if (kx_transpose_dst(a, blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, k, &i))
			dst[i] = tile[threadIdx.x][k];
}

/* --- the table --------------------------------------------------------------- */

static cudaMemcpyKind kind_of(enum gpu_copy_kind k)
{
	return k == GPU_HOST_TO_DEVICE ? cudaMemcpyHostToDevice :
	       k == GPU_DEVICE_TO_HOST ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
}

static int device_count(int *n) { return cudaGetDeviceCount(n); }
static int set_device(int dev) { return cudaSetDevice(dev); }
static int set_device_flags(unsigned flags) { return cudaSetDeviceFlags(flags); }

static int device_info(int dev, struct gpu_device_info *info)
{
	cudaDeviceProp p;
	cudaError_t e;

	if ((e = cudaGetDeviceProperties(&p, dev)) != cudaSuccess ||
	    (e = cudaMemGetInfo(&info->free_bytes, &info->total_bytes)) != cudaSuccess)
		return e;
	snprintf(info->name, sizeof(info->name), "%s", p.name);
	info->multiprocessors = (unsigned)p.multiProcessorCount;
	return cudaSuccess;
}

static int stream_create(void **s)
{
	return cudaStreamCreateWithFlags((cudaStream_t *)s, cudaStreamNonBlocking);
}

static int stream_destroy(void *s) { return cudaStreamDestroy((cudaStream_t)s); }
static int stream_sync(void *s) { return cudaStreamSynchronize((cudaStream_t)s); }
static int malloc_device(void **p, size_t n) { return cudaMalloc(p, n); }
static int free_device(void *p) { return cudaFree(p); }
static int malloc_pinned(void **p, size_t n) { return cudaMallocHost(p, n); }
static int free_pinned(void *p) { return cudaFreeHost(p); }

static int copy(void *dst, const void *src, size_t n, enum gpu_copy_kind k, void *s)
{
	return cudaMemcpyAsync(dst, src, n, kind_of(k), (cudaStream_t)s);
}

static int copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
		  size_t height, enum gpu_copy_kind k, void *s)
{
	return cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, kind_of(k),
				 (cudaStream_t)s);
}

static int get_last_error(void) { return cudaGetLastError(); }
static int peek_last_error(void) { return cudaPeekAtLastError(); }
static const char *error_string(int e) { return cudaGetErrorString((cudaError_t)e); }

static int cast(struct kx_cast a, unsigned blocks, void *s)
{
	k_cast<<<blocks, KX_THREADS, 0, (cudaStream_t)s>>>(a);
	return cudaGetLastError();
}

static int transpose(struct kx_transpose a, unsigned es, struct kx_grid3 g, const void *src,
		     void *dst, void *s)
{
	dim3 grid(g.x, g.y, g.z), block(KX_TILE, KX_TILE_ROWS);
	cudaStream_t st = (cudaStream_t)s;

	switch (es) {
	case 1:
		k_transpose<uint8_t><<<grid, block, 0, st>>>(a, (const uint8_t *)src, (uint8_t *)dst);
		break;
	case 2:
		k_transpose<uint16_t><<<grid, block, 0, st>>>(a, (const uint16_t *)src, (uint16_t *)dst);
		break;
	case 4:
		k_transpose<uint32_t><<<grid, block, 0, st>>>(a, (const uint32_t *)src, (uint32_t *)dst);
		break;
	default:
		k_transpose<uint64_t><<<grid, block, 0, st>>>(a, (const uint64_t *)src, (uint64_t *)dst);
	}
	return cudaGetLastError();
}

static int dequant_fp8(struct kx_fp8 a, unsigned blocks, void *s)
{
	k_dequant_fp8<<<blocks, KX_THREADS, 0, (cudaStream_t)s>>>(a);
	return cudaGetLastError();
}

static int dequant_mxfp4(struct kx_mxfp4 a, unsigned blocks, void *s)
{
	k_dequant_mxfp4<<<blocks, KX_THREADS, 0, (cudaStream_t)s>>>(a);
	return cudaGetLastError();
}

static const struct gpu_api cuda_table = {
	device_count, set_device, set_device_flags, device_info,
	stream_create, stream_destroy, stream_sync,
	malloc_device, free_device, malloc_pinned, free_pinned,
	copy, copy2d, get_last_error, peek_last_error, error_string,
	cast, transpose, dequant_fp8, dequant_mxfp4,
};

extern "C" const struct gpu_api *gpu_cuda_api(void)
{
	return &cuda_table;
}

extern "C" bool gpu_compiled_in(void)
{
	return true;
}
