/*
 * recipe_cuda.cu — the CUDA backend (see gpu.h).
 *
 * Evaluation mirrors recipe_cpu.c node by node: a node asked for rows
 * [r0, r1) asks its children for the rows it needs, here into device
 * buffers.  Source rows are read by the CPU backend itself (a one-node
 * recipe, so sharded saves work unchanged) into pinned staging and copied up
 * asynchronously; the root comes back into pinned staging and is copied
 * out.  Every FUSE worker thread has its own stream, staging and device
 * arena, so the chunks different threads convert overlap their copies and
 * kernels; all arenas together stay under one bound of device memory, and
 * a chunk that does not fit is converted on the CPU instead (-ENOMEM).
 *
 * The kernels call the CPU's own scalar code (dtype_scalar.h, quant.h), and
 * the build turns off FMA contraction and flush-to-zero, so the bits are the
 * CPU's.
 */
extern "C" {
#include "err.h"
#include "recipe.h"
}
#include "dtype_scalar.h"
#include "gpu.h"
#include "quant.h"

#include <cuda_runtime.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>

/* --- device, once ---------------------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;
static char init_msg[SD_ERRLEN], dev_name[256];
static size_t dev_limit;                        /* bytes all arenas may hold */
static std::atomic<size_t> dev_held(0);

static void init_device(void)
{
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);
	cudaDeviceProp p;
	size_t free_b = 0, total_b = 0;

	if (e != cudaSuccess || n == 0) {
		init_rc = -ENODEV;
		snprintf(init_msg, sizeof(init_msg), "no usable GPU (%s)",
			 e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device");
		return;
	}
	if ((e = cudaGetDeviceProperties(&p, 0)) != cudaSuccess ||
	    (e = cudaMemGetInfo(&free_b, &total_b)) != cudaSuccess) {
		init_rc = -ENODEV;
		snprintf(init_msg, sizeof(init_msg), "no usable GPU (%s)", cudaGetErrorString(e));
		return;
	}
	snprintf(dev_name, sizeof(dev_name), "%s", p.name);
	/* Half of what is free: the GPU may be shared with a training job. */
	dev_limit = free_b / 2;
	const char *mb = getenv("SDAFS_GPU_MEM_MB");
	if (mb && atol(mb) > 0)
		dev_limit = (size_t)atol(mb) << 20;
}

extern "C" bool gpu_compiled_in(void)
{
	return true;
}

extern "C" int gpu_init(char *name, size_t len, char *err)
{
	pthread_once(&init_once, init_device);
	if (name && len)
		snprintf(name, len, "%s", init_rc ? "" : dev_name);
	if (init_rc)
		return sd_err(err, init_rc, "%s", init_msg);
	return 0;
}

static bool gpu_dtype(enum sd_dtype t)
{
	return t == SD_BF16 || t == SD_F16 || t == SD_F32;
}

extern "C" bool gpu_supports(const struct recipe *r)
{
	for (uint32_t i = 0; i < r->nnodes; i++) {
		const struct rx_node *n = &r->nodes[i];
		const struct rx_node *c = n->nkids ? &r->nodes[r->kids[n->kids]] : NULL;
		if (n->op == RX_CAST && !(gpu_dtype(n->dtype) && gpu_dtype(c->dtype)))
			return false;
		if ((n->op == RX_DEQUANT_FP8 || n->op == RX_DEQUANT_MXFP4) && !gpu_dtype(n->dtype))
			return false;
	}
	return true;
}

/* --- per-thread memory ----------------------------------------------------- */

struct blk {
	struct blk *next;
	char *p;
	size_t cap, used;
};

struct arena {
	struct blk *head;
	size_t want;            /* the size the next first block gets */
	bool pinned;
};

struct gpu_ctx {
	cudaStream_t stream;
	struct arena dev, pin;
};

static pthread_key_t ctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

static void blk_free(struct arena *a, struct blk *b)
{
	if (a->pinned) {
		cudaFreeHost(b->p);
	} else {
		cudaFree(b->p);
		dev_held -= b->cap;
	}
	free(b);
}

static void arena_clear(struct arena *a)
{
	for (struct blk *b = a->head, *n; b; b = n) {
		n = b->next;
		blk_free(a, b);
	}
	a->head = NULL;
}

static void ctx_destroy(void *p)
{
	struct gpu_ctx *c = (struct gpu_ctx *)p;

	cudaStreamSynchronize(c->stream);
	arena_clear(&c->dev);
	arena_clear(&c->pin);
	cudaStreamDestroy(c->stream);
	free(c);
}

static void ctx_key_init(void)
{
	pthread_key_create(&ctx_key, ctx_destroy);
}

static struct gpu_ctx *ctx_get(char *err)
{
	pthread_once(&ctx_once, ctx_key_init);
	struct gpu_ctx *c = (struct gpu_ctx *)pthread_getspecific(ctx_key);
	cudaError_t e;

	if (c)
		return c;
	if (!(c = (struct gpu_ctx *)calloc(1, sizeof(*c)))) {
		sd_err(err, -ENOMEM, "out of memory");
		return NULL;
	}
	c->pin.pinned = true;
	if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
		sd_err(err, -EIO, "CUDA: cannot create a stream: %s", cudaGetErrorString(e));
		free(c);
		return NULL;
	}
	pthread_setspecific(ctx_key, c);
	return c;
}

/* n bytes (256-aligned) from the arena; NULL with err set when the device
 * bound or the allocator says no. */
static char *arena_get(struct arena *a, size_t n, char *err)
{
	n = (n + 255) & ~(size_t)255;
	if (!a->head || a->head->cap - a->head->used < n) {
		size_t cap = a->head ? a->head->cap * 2 : (a->want ? a->want : (size_t)16 << 20);
		if (cap < n)
			cap = n;
		struct blk *b = (struct blk *)calloc(1, sizeof(*b));
		cudaError_t e;
		if (!b) {
			sd_err(err, -ENOMEM, "out of memory");
			return NULL;
		}
		if (!a->pinned && (dev_held += cap) > dev_limit) {
			dev_held -= cap;
			free(b);
			sd_err(err, -ENOMEM, "GPU memory bound of %zu MiB reached", dev_limit >> 20);
			return NULL;
		}
		e = a->pinned ? cudaMallocHost((void **)&b->p, cap) : cudaMalloc((void **)&b->p, cap);
		if (e != cudaSuccess) {
			if (!a->pinned)
				dev_held -= cap;
			free(b);
			sd_err(err, -ENOMEM, "CUDA: cannot allocate %zu bytes: %s", cap, cudaGetErrorString(e));
			return NULL;
		}
		b->cap = cap;
		b->next = a->head;
		a->head = b;
	}
	char *p = a->head->p + a->head->used;
	a->head->used += n;
	return p;
}

/* After a call (stream idle): one block big enough for what the call used. */
static void arena_reset(struct arena *a)
{
	size_t total = 0;

	if (!a->head)
		return;
	if (!a->head->next) {
		a->head->used = 0;
		return;
	}
	for (struct blk *b = a->head; b; b = b->next)
		total += b->cap;
	arena_clear(a);
	a->want = total;
}

/* --- kernels --------------------------------------------------------------- */

#define THREADS 256

static unsigned blocks_for(uint64_t n)
{
	uint64_t b = (n + THREADS - 1) / THREADS;

	return (unsigned)(b > 65535 * 16 ? 65535 * 16 : b ? b : 1);
}

__device__ __forceinline__ float load_as_f32(int dt, const char *p, uint64_t i)
{
	if (dt == SD_BF16)
		return widen_bf16(((const uint16_t *)p)[i]);
	if (dt == SD_F16)
		return widen_f16(((const uint16_t *)p)[i]);
	return ((const float *)p)[i];
}

__device__ __forceinline__ void store_from_f32(int dt, char *p, uint64_t i, float v)
{
	if (dt == SD_BF16)
		((uint16_t *)p)[i] = narrow_bf16(v);
	else if (dt == SD_F16)
		((uint16_t *)p)[i] = narrow_f16(v);
	else
		((float *)p)[i] = v;
}

__global__ void k_cast(char *dst, int to, const char *src, int from, uint64_t n)
{
	for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n;
	     i += (uint64_t)gridDim.x * blockDim.x)
		store_from_f32(to, dst, i, load_as_f32(from, src, i));
}

/* dst[b][c][r] = src[b][r][c0 + c] for r < R, c < cw: a 32x32 tile through
 * shared memory, so both the reads and the writes are coalesced. */
template <typename T>
__global__ void k_transpose(const T *src, T *dst, uint64_t R, uint64_t C, uint64_t c0,
			    uint64_t cw, uint64_t sbatch, uint64_t dbatch)
{
	__shared__ T tile[32][33];
	const T *s = src + blockIdx.z * sbatch;
	T *d = dst + blockIdx.z * dbatch;
	uint64_t cb = (uint64_t)blockIdx.x * 32, rb = (uint64_t)blockIdx.y * 32;

	for (unsigned k = threadIdx.y; k < 32; k += blockDim.y) {
		uint64_t r = rb + k, c = cb + threadIdx.x;
		if (r < R && c < cw)
			tile[k][threadIdx.x] = s[r * C + c0 + c];
	}
	__syncthreads();
	for (unsigned k = threadIdx.y; k < 32; k += blockDim.y) {
		uint64_t c = cb + k, r = rb + threadIdx.x;
		if (c < cw && r < R)
			d[c * R + r] = tile[threadIdx.x][k];
	}
}

__global__ void k_dequant_fp8(char *out, int to, const uint8_t *q, const float *scale,
			      uint64_t rows, uint64_t cols, uint64_t bcols, uint64_t r0,
			      uint64_t s0)
{
	for (uint64_t x = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; x < rows * cols;
	     x += (uint64_t)gridDim.x * blockDim.x) {
		uint64_t i = x / cols, j = x % cols;
		float w = f32_from_bits(sd_fp8e4m3_to_f32_bits(q[x]));
		float s = scale[((r0 + i) / SD_FP8_BLOCK - s0) * bcols + j / SD_FP8_BLOCK];
		store_from_f32(to, out, x, sd_dequant_mul(w, s));
	}
}

__global__ void k_dequant_mxfp4(char *out, int to, const uint8_t *blocks,
				const uint8_t *scales, uint64_t groups, uint64_t bytes)
{
	for (uint64_t x = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; x < groups * bytes;
	     x += (uint64_t)gridDim.x * blockDim.x) {
		float sc = f32_from_bits(sd_e8m0_to_f32_bits(scales[x / bytes]));
		uint8_t b = blocks[x];
		store_from_f32(to, out, 2 * x,
			       sd_dequant_mul(f32_from_bits(sd_fp4_to_f32_bits(b & 0xF)), sc));
		store_from_f32(to, out, 2 * x + 1,
			       sd_dequant_mul(f32_from_bits(sd_fp4_to_f32_bits((uint8_t)(b >> 4))), sc));
	}
}

/* --- evaluation ------------------------------------------------------------ */

struct gev {
	const struct recipe *r;
	const struct rx_reader *rd;
	struct gpu_ctx *c;
	char *err;
};

static int geval(struct gev *g, uint32_t i, uint64_t r0, uint64_t r1, char *d);

static int cuda_check(struct gev *g, cudaError_t e, const char *what)
{
	if (e == cudaSuccess)
		return 0;
	return sd_err(g->err, -EIO, "CUDA: %s: %s", what, cudaGetErrorString(e));
}

static uint32_t kid_of(const struct gev *g, const struct rx_node *n, uint32_t k)
{
	return g->r->kids[n->kids + k];
}

static const struct rx_node *kid_node(const struct gev *g, const struct rx_node *n, uint32_t k)
{
	return &g->r->nodes[kid_of(g, n, k)];
}

static char *dtemp(struct gev *g, uint64_t bytes)
{
	return arena_get(&g->c->dev, bytes ? (size_t)bytes : 1, g->err);
}

/* Source rows: the reader puts them (chunked sources included) into
 * pinned staging, and the copy up is queued on the stream. */
static int gsrc(struct gev *g, const struct rx_node *n, uint64_t r0, uint64_t r1, char *d)
{
	uint64_t bytes = (r1 - r0) * rx_row_bytes(n);
	char *h = arena_get(&g->c->pin, (size_t)bytes, g->err);
	int rc;

	if (!h)
		return -ENOMEM;
	if ((rc = g->rd->rows(g->rd->arg, (uint32_t)n->a, r0, r1, h, g->err)) < 0)
		return rc;
	return cuda_check(g, cudaMemcpyAsync(d, h, bytes, cudaMemcpyHostToDevice, g->c->stream),
			  "copying source rows up");
}

static int gtranspose(struct gev *g, const struct rx_node *n, uint64_t r0, uint64_t r1, char *d)
{
	const struct rx_node *c = kid_node(g, n, 0);
	size_t es = dtype_size(n->dtype);
	uint64_t R = c->shape[c->ndim - 2], C = c->shape[c->ndim - 1];
	uint64_t batches, c0 = 0, cw = C, sbatch = R * C, dbatch = R * C;
	char *t;
	int rc;

	if (n->ndim == 2) {     /* output rows are input columns: all input rows */
		batches = 1;
		c0 = r0;
		cw = r1 - r0;
		if (!(t = dtemp(g, R * C * es)))
			return -ENOMEM;
		if ((rc = geval(g, kid_of(g, n, 0), 0, R, t)) < 0)
			return rc;
	} else {
		batches = (r1 - r0) * (rx_row_bytes(n) / (R * C * es));
		if (!(t = dtemp(g, batches * R * C * es)))
			return -ENOMEM;
		if ((rc = geval(g, kid_of(g, n, 0), r0, r1, t)) < 0)
			return rc;
	}
	if ((R + 31) / 32 > 65535)
		return sd_err(g->err, -ENOTSUP, "transpose of %llu rows is too tall for one grid",
			      (unsigned long long)R);
	for (uint64_t b0 = 0; b0 < batches; b0 += 65535) {
		uint64_t nb = batches - b0 < 65535 ? batches - b0 : 65535;
		dim3 grid((unsigned)((cw + 31) / 32), (unsigned)((R + 31) / 32), (unsigned)nb);
		dim3 block(32, 8);
		const char *s = t + b0 * sbatch * es;
		char *o = d + b0 * cw * R * es;
		switch (es) {
		case 1:
			k_transpose<uint8_t><<<grid, block, 0, g->c->stream>>>(
				(const uint8_t *)s, (uint8_t *)o, R, C, c0, cw, sbatch, dbatch);
			break;
		case 2:
			k_transpose<uint16_t><<<grid, block, 0, g->c->stream>>>(
				(const uint16_t *)s, (uint16_t *)o, R, C, c0, cw, sbatch, dbatch);
			break;
		case 4:
			k_transpose<uint32_t><<<grid, block, 0, g->c->stream>>>(
				(const uint32_t *)s, (uint32_t *)o, R, C, c0, cw, sbatch, dbatch);
			break;
		default:
			k_transpose<uint64_t><<<grid, block, 0, g->c->stream>>>(
				(const uint64_t *)s, (uint64_t *)o, R, C, c0, cw, sbatch, dbatch);
		}
	}
	return cuda_check(g, cudaGetLastError(), "transpose kernel");
}

static int gconcat(struct gev *g, const struct rx_node *n, uint64_t r0, uint64_t r1, char *d)
{
	size_t es = dtype_size(n->dtype);
	int rc;

	if (n->ndim == 1) {     /* concatenating along dim 0: rows span children */
		uint64_t base = 0;
		char *out = d;
		for (uint32_t k = 0; k < n->nkids && base < r1; k++) {
			uint64_t len = kid_node(g, n, k)->shape[0];
			uint64_t a = r0 > base ? r0 - base : 0;
			uint64_t b = r1 - base < len ? r1 - base : len;
			if (r1 > base && a < len) {
				if ((rc = geval(g, kid_of(g, n, k), a, b, out)) < 0)
					return rc;
				out += (b - a) * es;
			}
			base += len;
		}
		return 0;
	}
	uint64_t last = n->shape[n->ndim - 1];
	uint64_t outer = (r1 - r0) * (rx_row_bytes(n) / es / last);
	uint64_t col = 0;
	for (uint32_t k = 0; k < n->nkids; k++) {
		const struct rx_node *c = kid_node(g, n, k);
		uint64_t w = c->shape[c->ndim - 1] * es;
		char *t = dtemp(g, outer * w);
		if (!t)
			return -ENOMEM;
		if ((rc = geval(g, kid_of(g, n, k), r0, r1, t)) < 0)
			return rc;
		if (w && outer &&
		    (rc = cuda_check(g, cudaMemcpy2DAsync(d + col, last * es, t, w, w, outer,
							  cudaMemcpyDeviceToDevice, g->c->stream),
				     "concat copy")) < 0)
			return rc;
		col += w;
	}
	return 0;
}

static int gslice_last(struct gev *g, const struct rx_node *n, uint64_t r0, uint64_t r1, char *d)
{
	const struct rx_node *c = kid_node(g, n, 0);
	size_t es = dtype_size(n->dtype);
	uint64_t cw = c->shape[c->ndim - 1] * es, w = (n->b - n->a) * es;
	uint64_t outer = (r1 - r0) * rx_row_bytes(c) / cw;
	int rc;

	if (n->ndim == 1)
		return geval(g, kid_of(g, n, 0), n->a + r0, n->a + r1, d);
	char *t = dtemp(g, outer * cw);
	if (!t)
		return -ENOMEM;
	if ((rc = geval(g, kid_of(g, n, 0), r0, r1, t)) < 0)
		return rc;
	if (!w || !outer)
		return 0;
	return cuda_check(g, cudaMemcpy2DAsync(d, w, t + n->a * es, cw, w, outer,
					       cudaMemcpyDeviceToDevice, g->c->stream),
			  "slice copy");
}

static int gcopy_part(struct gev *g, uint32_t kid, uint64_t c0, uint64_t c1, uint64_t cb,
		      uint64_t skip, uint64_t len, char *d)
{
	char *t = dtemp(g, (c1 - c0) * cb);
	int rc;

	if (!t)
		return -ENOMEM;
	if ((rc = geval(g, kid, c0, c1, t)) < 0)
		return rc;
	return cuda_check(g, cudaMemcpyAsync(d, t + skip, len, cudaMemcpyDeviceToDevice,
					     g->c->stream), "copy");
}

static int greshape(struct gev *g, const struct rx_node *n, uint64_t r0, uint64_t r1, char *d)
{
	const struct rx_node *c = kid_node(g, n, 0);
	uint64_t c0, c1, skip;

	if (rx_reshape_rows(n, c, r0, r1, &c0, &c1, &skip))
		return geval(g, kid_of(g, n, 0), c0, c1, d);
	return gcopy_part(g, kid_of(g, n, 0), c0, c1, rx_row_bytes(c), skip,
			  (r1 - r0) * rx_row_bytes(n), d);
}

static int gdequant_fp8(struct gev *g, const struct rx_node *n, uint64_t r0, uint64_t r1, char *d)
{
	uint64_t cols = n->shape[1], bcols = kid_node(g, n, 1)->shape[1];
	uint64_t s0 = r0 / SD_FP8_BLOCK, s1 = (r1 - 1) / SD_FP8_BLOCK + 1;
	char *q = dtemp(g, (r1 - r0) * cols), *s = dtemp(g, (s1 - s0) * bcols * 4);
	int rc;

	if (!q || !s)
		return -ENOMEM;
	if ((rc = geval(g, kid_of(g, n, 0), r0, r1, q)) < 0 ||
	    (rc = geval(g, kid_of(g, n, 1), s0, s1, s)) < 0)
		return rc;
	k_dequant_fp8<<<blocks_for((r1 - r0) * cols), THREADS, 0, g->c->stream>>>(
		d, (int)n->dtype, (const uint8_t *)q, (const float *)s, r1 - r0, cols, bcols, r0, s0);
	return cuda_check(g, cudaGetLastError(), "dequant_fp8_block kernel");
}

static int gdequant_mxfp4(struct gev *g, const struct rx_node *n, uint64_t r0, uint64_t r1, char *d)
{
	const struct rx_node *b = kid_node(g, n, 0), *s = kid_node(g, n, 1);
	uint64_t bytes = b->shape[b->ndim - 1];
	uint64_t groups = (r1 - r0) * rx_row_bytes(s);
	char *bb = dtemp(g, groups * bytes), *sb = dtemp(g, groups);
	int rc;

	if (!bb || !sb)
		return -ENOMEM;
	if ((rc = geval(g, kid_of(g, n, 0), r0, r1, bb)) < 0 ||
	    (rc = geval(g, kid_of(g, n, 1), r0, r1, sb)) < 0)
		return rc;
	k_dequant_mxfp4<<<blocks_for(groups * bytes), THREADS, 0, g->c->stream>>>(
		d, (int)n->dtype, (const uint8_t *)bb, (const uint8_t *)sb, groups, bytes);
	return cuda_check(g, cudaGetLastError(), "dequant_mxfp4 kernel");
}

static int geval(struct gev *g, uint32_t i, uint64_t r0, uint64_t r1, char *d)
{
	const struct rx_node *n = &g->r->nodes[i];
	uint64_t rb = rx_row_bytes(n);
	int rc;

	if (r0 >= r1 || rb == 0)
		return 0;
	switch (n->op) {
	case RX_SRC:
		return gsrc(g, n, r0, r1, d);
	case RX_CAST: {
		const struct rx_node *c = kid_node(g, n, 0);
		uint64_t count = (r1 - r0) * rb / dtype_size(n->dtype);
		if (c->dtype == n->dtype)
			return geval(g, kid_of(g, n, 0), r0, r1, d);
		char *t = dtemp(g, count * dtype_size(c->dtype));
		if (!t)
			return -ENOMEM;
		if ((rc = geval(g, kid_of(g, n, 0), r0, r1, t)) < 0)
			return rc;
		k_cast<<<blocks_for(count), THREADS, 0, g->c->stream>>>(d, (int)n->dtype, t,
									   (int)c->dtype, count);
		return cuda_check(g, cudaGetLastError(), "cast kernel");
	}
	case RX_STACK0:
		for (uint64_t e = r0; e < r1; e++) {
			uint32_t k = kid_of(g, n, (uint32_t)e);
			if ((rc = geval(g, k, 0, rx_rows(&g->r->nodes[k]), d + (e - r0) * rb)) < 0)
				return rc;
		}
		return 0;
	case RX_INDEX0: {
		const struct rx_node *c = kid_node(g, n, 0);
		return gcopy_part(g, kid_of(g, n, 0), n->a, n->a + 1, rx_row_bytes(c), r0 * rb,
				  (r1 - r0) * rb, d);
	}
	case RX_SLICE0:
		return geval(g, kid_of(g, n, 0), n->a + r0, n->a + r1, d);
	case RX_SLICE_LAST:
		return gslice_last(g, n, r0, r1, d);
	case RX_TRANSPOSE_LAST2:
		return gtranspose(g, n, r0, r1, d);
	case RX_CONCAT_LAST:
		return gconcat(g, n, r0, r1, d);
	case RX_RESHAPE:
		return greshape(g, n, r0, r1, d);
	case RX_DEQUANT_FP8:
		return gdequant_fp8(g, n, r0, r1, d);
	case RX_DEQUANT_MXFP4:
		return gdequant_mxfp4(g, n, r0, r1, d);
	}
	return sd_err(g->err, -EINVAL, "unknown recipe operation %d", (int)n->op);
}

extern "C" int recipe_eval_cuda(const struct recipe *r, uint64_t r0, uint64_t r1,
				void *dst, const struct rx_reader *rd, char *err)
{
	struct gev g = { r, rd, NULL, err };
	uint64_t len = (r1 - r0) * rx_row_bytes(rx_root(r));
	char *dev = NULL, *host = NULL;
	int rc;

	if ((rc = gpu_init(NULL, 0, err)) < 0)
		return rc;
	if (!gpu_supports(r))
		return sd_err(err, -ENOTSUP, "the CUDA backend does not evaluate this recipe (F64)");
	if (!(g.c = ctx_get(err)))
		return -ENOMEM;
	if (!len)
		return 0;
	if (!(dev = dtemp(&g, len)) || !(host = arena_get(&g.c->pin, (size_t)len, err)))
		rc = -ENOMEM;
	else if ((rc = geval(&g, r->nnodes - 1, r0, r1, dev)) == 0)
		rc = cuda_check(&g, cudaMemcpyAsync(host, dev, len, cudaMemcpyDeviceToHost,
						    g.c->stream), "copying the result down");
	/* Always drain the stream: the arenas are reused by the next call. */
	cudaError_t e = cudaStreamSynchronize(g.c->stream);
	if (rc == 0)
		rc = cuda_check(&g, e, "converting");
	if (rc == 0)
		memcpy(dst, host, (size_t)len);
	arena_reset(&g.c->dev);
	arena_reset(&g.c->pin);
	return rc;
}
