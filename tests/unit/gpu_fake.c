/*
 * gpu_fake.c — a CUDA device in host memory (see gpu_fake.h).
 *
 * One lock serializes the fake's bookkeeping; kernels and copies run on the
 * calling thread, so a stream is done when its call returns.
 */
#include "gpu_fake.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

struct gpu_fake gpu_fake;

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int last_error;    /* CUDA's last error is per thread */
static int sticky;                      /* ... a sticky one is everyone's */
static struct { enum fake_call call; unsigned long nth; int error; } planned;

/* Buffers carry their size in front, for the memory counts. */
#define HEAD 256

/* Count a call of kind c: 0, or the error it fails with. */
static int enter(enum fake_call c)
{
	int e = 0;

	pthread_mutex_lock(&fake_lock);
	gpu_fake.calls[c]++;
	if (sticky) {
		e = sticky;
	} else if (planned.nth && planned.call == c && --planned.nth == 0) {
		e = planned.error;
		if (gpu_error_is_sticky(e))
			sticky = e;
	}
	pthread_mutex_unlock(&fake_lock);
	if (e)
		last_error = e;
	return e;
}

void gpu_fake_fail(enum fake_call call, unsigned long nth, int error)
{
	pthread_mutex_lock(&fake_lock);
	planned.call = call;
	planned.nth = nth;
	planned.error = error;
	pthread_mutex_unlock(&fake_lock);
}

void gpu_fake_leave_error(int error)
{
	last_error = error;
	if (gpu_error_is_sticky(error)) {
		pthread_mutex_lock(&fake_lock);
		sticky = error;
		pthread_mutex_unlock(&fake_lock);
	}
}

/* --- kernels on the CPU -------------------------------------------------------- */

void gpu_fake_run_cast(struct kx_cast a, unsigned blocks)
{
	for (unsigned b = 0; b < blocks; b++)
		for (unsigned t = 0; t < KX_THREADS; t++)
			kx_cast_thread(a, (struct kx_at){ b, blocks, t, KX_THREADS });
}

void gpu_fake_run_fp8(struct kx_fp8 a, unsigned blocks)
{
	for (unsigned b = 0; b < blocks; b++)
		for (unsigned t = 0; t < KX_THREADS; t++)
			kx_fp8_thread(a, (struct kx_at){ b, blocks, t, KX_THREADS });
}

void gpu_fake_run_mxfp4(struct kx_mxfp4 a, unsigned blocks)
{
	for (unsigned b = 0; b < blocks; b++)
		for (unsigned t = 0; t < KX_THREADS; t++)
			kx_mxfp4_thread(a, (struct kx_at){ b, blocks, t, KX_THREADS });
}

/* One block of the transpose: every thread loads, then (the barrier) every
 * thread stores, through a tile of KX_TILE x (KX_TILE + 1) elements. */
static void transpose_block(struct kx_transpose a, unsigned es, unsigned bx, unsigned by,
			    unsigned bz, const unsigned char *src, unsigned char *dst)
{
	static _Thread_local unsigned char tile[KX_TILE][KX_TILE + 1][8];
	uint64_t i;

	for (unsigned ty = 0; ty < KX_TILE_ROWS; ty++)
		for (unsigned tx = 0; tx < KX_TILE; tx++)
			for (unsigned k = ty; k < KX_TILE; k += KX_TILE_ROWS)
				if (kx_transpose_src(a, bx, by, bz, tx, k, &i))
					memcpy(tile[k][tx], src + i * es, es);
	for (unsigned ty = 0; ty < KX_TILE_ROWS; ty++)
		for (unsigned tx = 0; tx < KX_TILE; tx++)
			for (unsigned k = ty; k < KX_TILE; k += KX_TILE_ROWS)
				if (kx_transpose_dst(a, bx, by, bz, tx, k, &i))
					memcpy(dst + i * es, tile[tx][k], es);
}

void gpu_fake_run_transpose(struct kx_transpose a, unsigned es, struct kx_grid3 g,
			    const void *src, void *dst)
{
	for (unsigned bz = 0; bz < g.z; bz++)
		for (unsigned by = 0; by < g.y; by++)
			for (unsigned bx = 0; bx < g.x; bx++)
				transpose_block(a, es, bx, by, bz, src, dst);
}

/* --- the table ----------------------------------------------------------------- */

static int device_count(int *n)
{
	int e = enter(FAKE_DEVICE_COUNT);

	*n = e ? 0 : gpu_fake.devices;
	return e;
}

static int set_device(int dev)
{
	int e = enter(FAKE_SET_DEVICE);

	if (!e)
		gpu_fake.device_set = dev;
	return e;
}

static int set_device_flags(unsigned flags)
{
	int e = enter(FAKE_SET_FLAGS);

	if (!e)
		gpu_fake.flags_set = flags;
	return e;
}

static int device_info(int dev, struct gpu_device_info *info)
{
	int e = enter(FAKE_DEVICE_INFO);

	if (e)
		return e;
	snprintf(info->name, sizeof(info->name), "Fake GPU %d", dev);
	info->multiprocessors = gpu_fake.multiprocessors;
	info->free_bytes = gpu_fake.free_bytes;
	info->total_bytes = gpu_fake.free_bytes;
	return 0;
}

static int stream_create(void **s)
{
	int e = enter(FAKE_STREAM_CREATE);

	if (e)
		return e;
	*s = malloc(1);         /* a stream never destroyed is a leak ASan reports */
	pthread_mutex_lock(&fake_lock);
	gpu_fake.streams++;
	pthread_mutex_unlock(&fake_lock);
	return 0;
}

static int stream_destroy(void *s)
{
	int e = enter(FAKE_STREAM_DESTROY);

	free(s);
	pthread_mutex_lock(&fake_lock);
	gpu_fake.streams--;
	pthread_mutex_unlock(&fake_lock);
	return e;
}

static int stream_sync(void *s)
{
	(void)s;
	return enter(FAKE_STREAM_SYNC);
}

static int mem_alloc(enum fake_call c, void **p, size_t n, bool device)
{
	int e = enter(c);
	unsigned char *m;

	if (e)
		return e;
	pthread_mutex_lock(&fake_lock);
	if (device && gpu_fake.device_held + n > gpu_fake.free_bytes)
		e = GPU_ERR_OUT_OF_MEMORY;
	pthread_mutex_unlock(&fake_lock);
	if (e || !(m = malloc(HEAD + n))) {
		last_error = GPU_ERR_OUT_OF_MEMORY;
		return GPU_ERR_OUT_OF_MEMORY;
	}
	memcpy(m, &n, sizeof(n));
	pthread_mutex_lock(&fake_lock);
	if (device) {
		gpu_fake.device_held += n;
		if (gpu_fake.device_held > gpu_fake.device_peak)
			gpu_fake.device_peak = gpu_fake.device_held;
	} else {
		gpu_fake.pinned_held += n;
	}
	pthread_mutex_unlock(&fake_lock);
	*p = m + HEAD;
	return 0;
}

static int mem_free(enum fake_call c, void *p, bool device)
{
	int e = enter(c);
	unsigned char *m = (unsigned char *)p - HEAD;
	size_t n;

	memcpy(&n, m, sizeof(n));
	pthread_mutex_lock(&fake_lock);
	*(device ? &gpu_fake.device_held : &gpu_fake.pinned_held) -= n;
	pthread_mutex_unlock(&fake_lock);
	free(m);
	return e;
}

static int malloc_device(void **p, size_t n) { return mem_alloc(FAKE_MALLOC_DEVICE, p, n, true); }
static int free_device(void *p) { return mem_free(FAKE_FREE_DEVICE, p, true); }
static int malloc_pinned(void **p, size_t n) { return mem_alloc(FAKE_MALLOC_PINNED, p, n, false); }
static int free_pinned(void *p) { return mem_free(FAKE_FREE_PINNED, p, false); }

static int copy(void *dst, const void *src, size_t n, enum gpu_copy_kind kind, void *s)
{
	int e = enter(FAKE_COPY);

	(void)kind, (void)s;
	if (!e)
		memcpy(dst, src, n);
	return e;
}

static int copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
		  size_t height, enum gpu_copy_kind kind, void *s)
{
	int e = enter(FAKE_COPY2D);

	(void)kind, (void)s;
	if (e)
		return e;
	if (width > dpitch || width > spitch)
		return last_error = GPU_ERR_INVALID_VALUE;      /* as cudaMemcpy2D says */
	for (size_t i = 0; i < height; i++)
		memcpy((char *)dst + i * dpitch, (const char *)src + i * spitch, width);
	return 0;
}

static int get_last_error(void)
{
	int e = last_error;

	pthread_mutex_lock(&fake_lock);
	if (sticky)
		e = sticky;
	pthread_mutex_unlock(&fake_lock);
	if (!gpu_error_is_sticky(e))
		last_error = 0;
	return e;
}

static int peek_last_error(void)
{
	int e = last_error;

	pthread_mutex_lock(&fake_lock);
	if (sticky)
		e = sticky;
	pthread_mutex_unlock(&fake_lock);
	return e;
}

static const char *error_string(int e)
{
	switch (e) {
	case GPU_OK: return "no error";
	case GPU_ERR_INVALID_VALUE: return "invalid argument";
	case GPU_ERR_OUT_OF_MEMORY: return "out of memory";
	case GPU_ERR_ILLEGAL_ADDRESS: return "an illegal memory access was encountered";
	case GPU_ERR_ECC_UNCORRECTABLE: return "uncorrectable ECC error encountered";
	default: return "a fake CUDA error";
	}
}

static int cast(struct kx_cast a, unsigned blocks, void *s)
{
	int e = enter(FAKE_CAST);

	(void)s;
	if (e)
		return e;
	gpu_fake_run_cast(a, blocks);
	return get_last_error();        /* as after kernel<<<...>>>: also an older error */
}

static int transpose(struct kx_transpose a, unsigned es, struct kx_grid3 g, const void *src,
		     void *dst, void *s)
{
	int e = enter(FAKE_TRANSPOSE);

	(void)s;
	if (e)
		return e;
	if (g.y > KX_GRID_YZ || g.z > KX_GRID_YZ || !g.x || !g.y || !g.z)
		return last_error = GPU_ERR_INVALID_VALUE;      /* an invalid grid */
	gpu_fake_run_transpose(a, es, g, src, dst);
	return get_last_error();
}

static int dequant_fp8(struct kx_fp8 a, unsigned blocks, void *s)
{
	int e = enter(FAKE_FP8);

	(void)s;
	if (e)
		return e;
	gpu_fake_run_fp8(a, blocks);
	return get_last_error();        /* as after kernel<<<...>>>: also an older error */
}

static int dequant_mxfp4(struct kx_mxfp4 a, unsigned blocks, void *s)
{
	int e = enter(FAKE_MXFP4);

	(void)s;
	if (e)
		return e;
	gpu_fake_run_mxfp4(a, blocks);
	return get_last_error();        /* as after kernel<<<...>>>: also an older error */
}

static const struct gpu_api fake_table = {
	device_count, set_device, set_device_flags, device_info,
	stream_create, stream_destroy, stream_sync,
	malloc_device, free_device, malloc_pinned, free_pinned,
	copy, copy2d, get_last_error, peek_last_error, error_string,
	cast, transpose, dequant_fp8, dequant_mxfp4,
};

bool gpu_fake_install(int devices, unsigned multiprocessors, size_t free_bytes, char *why)
{
	if (!gpu_test_use_api) {
		sd_err(why, -ENOSYS, "this build has no GPU test hook (the sanitizer build has: make asan)");
		return false;
	}
	gpu_test_use_api(NULL);
	pthread_mutex_lock(&fake_lock);
	memset(&gpu_fake, 0, sizeof(gpu_fake));
	gpu_fake.devices = devices;
	gpu_fake.multiprocessors = multiprocessors;
	gpu_fake.free_bytes = free_bytes;
	gpu_fake.device_set = -1;
	sticky = 0;
	planned.nth = 0;
	pthread_mutex_unlock(&fake_lock);
	last_error = 0;
	gpu_test_use_api(&fake_table);
	return true;
}

void gpu_fake_uninstall(void)
{
	if (gpu_test_use_api)
		gpu_test_use_api(NULL);
	sticky = 0;
	last_error = 0;
}
