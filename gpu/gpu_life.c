/*
 * gpu_life.c — CUDA's life in one process (see gpu_life.h).
 *
 * CUDA starts the first time a chunk or the mount asks for it, in the
 * process that serves (fs/mount.c makes sure that is after the daemon
 * detached): on the device of the process's rank on its node, with worker
 * threads sleeping while they wait, and with bounds on the device memory
 * and pinned host memory all pools may hold.  From then on every CUDA error
 * becomes one of three errnos, each of which sends the chunk to the CPU:
 * out of memory (-ENOMEM), a fault that poisons the context (-ENODEV: the
 * GPU is given up for good, once, with a log line), anything else
 * (-ENOTSUP).  A trimmer thread gives the memory of threads idle for a
 * while back, so a mount that has stopped converting holds no GPU memory.
 */
#include "gpu_life.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "gpu.h"
#include "gpu_share.h"
#include "log.h"

#define GPU_MIN_BLOCK ((size_t)4 << 20)         /* a pool's smallest block */
#define GPU_IDLE_MS 10000u                      /* idle this long: pools freed */

/* Guards starting, the configuration, the reason the GPU was given up, the
 * context list and the trimmer. */
static pthread_mutex_t life_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct gpu_api *table;             /* NULL: gpu_cuda_api() */
static struct gpu_config config = { .device = -1 };
static bool started;                    /* start() ran, whatever it found */
static atomic_bool ready;               /* ... and found a device */
static atomic_bool dead;                /* given up after a sticky fault */
static atomic_bool forked;              /* this process is a fork of the one that started */
static int start_rc;
static char start_msg[SD_ERRLEN], dead_msg[SD_ERRLEN], dev_name[256];
static int device, devices;
static unsigned max_blocks = 1;
static uint64_t idle_ns;
static struct gpu_bound dev_bound, pin_bound;
static atomic_uint_fast64_t n_oom, n_errors, n_stale, n_splits, n_trims;
static atomic_uint_fast64_t logged[16];         /* error codes < 1024 already logged */

static pthread_key_t ctx_key;
static bool key_made;
static struct gpu_ctx *contexts;

static pthread_t trimmer;
static bool trimmer_on, trimmer_stop;
static pthread_cond_t trimmer_wake;

const struct gpu_api *gpu_api(void)
{
	return table ? table : gpu_cuda_api();
}

unsigned gpu_max_blocks(void)
{
	return max_blocks;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *env(const char *name)
{
	return getenv(name);
}

/* A positive whole number from the environment times unit, or 0. */
static uint64_t env_number(const char *name, uint64_t unit)
{
	const char *s = getenv(name);
	char *end;
	unsigned long long v;

	if (!s || !*s)
		return 0;
	v = strtoull(s, &end, 10);
	return *end || v == 0 || v > UINT64_MAX / unit ? 0 : (uint64_t)v * unit;
}

static uint64_t host_ram(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

	return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : (uint64_t)8 << 30;
}

static void in_forked_child(void)
{
	atomic_store(&forked, true);
}

/* start() could not get a device: rc and a message. */
static void start_failed(int rc, const char *fmt, const char *detail)
{
	start_rc = rc;
	snprintf(start_msg, sizeof(start_msg), fmt, detail);
}

/* Find the device and set the bounds; life_lock held. */
static void start(void)
{
	static bool atfork_set;
	const struct gpu_api *a = gpu_api();
	struct gpu_device_info info;
	long rank = -1, local = 0;
	int n = 0, e;
	char what[64];

	started = true;
	if (!a) {
		start_failed(-ENOSYS, "%s", "this sdafs was built without CUDA (no nvcc at build time; "
			     "rebuild where /usr/local/cuda/bin/nvcc exists, or name it with make NVCC=)");
		return;
	}
	if ((e = a->device_count(&n)) != GPU_OK || n <= 0) {
		a->get_last_error();
		start_failed(-ENODEV, "no usable GPU (%s)", e ? a->error_string(e) : "no CUDA device");
		return;
	}
	bool have_rank = gpu_local_rank(env, &rank, &local);
	device = config.device >= 0 ? config.device : gpu_device_for_rank(have_rank ? rank : 0, n);
	if (device >= n) {
		snprintf(what, sizeof(what), "GPU %d asked for, %d visible", device, n);
		start_failed(-ENODEV, "no usable GPU (%s)", what);
		return;
	}
	memset(&info, 0, sizeof(info));
	if ((e = a->set_device(device)) != GPU_OK)
		goto fail;
	/* Before the context exists: a thread waiting for its chunk sleeps
	 * instead of spinning a core (16 FUSE workers would spin 16). */
	if ((e = a->set_device_flags(GPU_SCHEDULE_BLOCKING_SYNC)) != GPU_OK) {
		a->get_last_error();
		sd_log("GPU %d: waiting threads will spin (cannot set blocking sync: %s)", device,
		       a->error_string(e));
	}
	if ((e = a->device_info(device, &info)) != GPU_OK)
		goto fail;
	devices = n;
	max_blocks = info.multiprocessors ? info.multiprocessors * (2048u / KX_THREADS) : 1;
	unsigned sharing = gpu_ranks_on_device(have_rank ? rank : 0, local, n);
	dev_bound.limit = config.device_bytes ? config.device_bytes :
			  env_number("SDAFS_GPU_MEM_MB", 1u << 20) ? env_number("SDAFS_GPU_MEM_MB", 1u << 20) :
			  gpu_default_device_bound(info.free_bytes, sharing);
	pin_bound.limit = config.pinned_bytes ? config.pinned_bytes :
			  env_number("SDAFS_GPU_PINNED_MB", 1u << 20) ? env_number("SDAFS_GPU_PINNED_MB", 1u << 20) :
			  gpu_default_pinned_bound(host_ram(), local);
	idle_ns = env_number("SDAFS_GPU_IDLE_MS", 1000000u);
	if (!idle_ns)
		idle_ns = (uint64_t)GPU_IDLE_MS * 1000000u;
	snprintf(dev_name, sizeof(dev_name), "%.200s, GPU %d of %d", info.name, device, n);
	if (!atfork_set)
		atfork_set = pthread_atfork(NULL, NULL, in_forked_child) == 0;
	start_rc = 0;
	atomic_store(&ready, true);
	return;
fail:
	a->get_last_error();
	start_failed(-ENODEV, "no usable GPU (%s)", a->error_string(e));
}

void gpu_configure(const struct gpu_config *c)
{
	pthread_mutex_lock(&life_lock);
	if (!started)
		config = *c;
	pthread_mutex_unlock(&life_lock);
}

int gpu_init(char *name, size_t len, char *err)
{
	pthread_mutex_lock(&life_lock);
	if (!started)
		start();
	pthread_mutex_unlock(&life_lock);
	if (name && len)
		snprintf(name, len, "%s", start_rc ? "" : dev_name);
	if (start_rc)
		return sd_err(err, start_rc, "%s", start_msg);
	return 0;
}

bool gpu_usable(void)
{
	return atomic_load(&ready) && !atomic_load(&dead) && !atomic_load(&forked);
}

/* --- errors ----------------------------------------------------------------- */

/* The first sticky fault: the GPU is not used again in this process. */
static void give_up(int e, const char *what)
{
	bool first = false;

	pthread_mutex_lock(&life_lock);
	if (!atomic_load(&dead)) {
		snprintf(dead_msg, sizeof(dead_msg), "%s: %s", what, gpu_api()->error_string(e));
		atomic_store(&dead, true);
		first = true;
	}
	pthread_mutex_unlock(&life_lock);
	if (first)
		sd_log("the GPU (%s) failed: %s; it is given up and every chunk converts on the CPU "
		       "from now on (remount to use it again)", dev_name, dead_msg);
}

/* Log the first error of each kind: one that repeats would flood the log. */
static void log_once(int e, const char *what)
{
	unsigned k = (unsigned)e & 1023u;
	uint_fast64_t bit = (uint_fast64_t)1 << (k % 64);

	if (!(atomic_fetch_or(&logged[k / 64], bit) & bit))
		sd_log("CUDA error in %s: %s; such chunks convert on the CPU (logged once)", what,
		       gpu_api()->error_string(e));
}

int gpu_error(int e, const char *what, char *err)
{
	const struct gpu_api *a = gpu_api();
	int later = a->get_last_error();       /* clears e where CUDA lets it be cleared */

	if (gpu_error_is_sticky(e) || gpu_error_is_sticky(later) || a->peek_last_error() != GPU_OK) {
		give_up(e, what);
		return sd_err(err, -ENODEV, "the GPU failed (%s: %s)", what, a->error_string(e));
	}
	if (e == GPU_ERR_OUT_OF_MEMORY) {
		atomic_fetch_add(&n_oom, 1);
		return sd_err(err, -ENOMEM, "out of GPU memory (%s)", what);
	}
	atomic_fetch_add(&n_errors, 1);
	log_once(e, what);
	return sd_err(err, -ENOTSUP, "CUDA: %s: %s", what, a->error_string(e));
}

/* An error an earlier call of this thread left behind (a failed allocation
 * outside a chunk, say) must not fail this chunk: cleared, counted. */
static int clear_stale(char *err)
{
	const struct gpu_api *a = gpu_api();
	int e = a->get_last_error();

	if (e == GPU_OK)
		return 0;
	if (!gpu_error_is_sticky(e) && a->peek_last_error() == GPU_OK) {
		atomic_fetch_add(&n_stale, 1);
		return 0;
	}
	return gpu_error(e, "an earlier CUDA call", err);
}

/* --- contexts ---------------------------------------------------------------- */

static int device_alloc(void **p, size_t n) { return gpu_api()->malloc_device(p, n); }
static int device_release(void *p) { return gpu_api()->free_device(p); }
static int pinned_alloc(void **p, size_t n) { return gpu_api()->malloc_pinned(p, n); }
static int pinned_release(void *p) { return gpu_api()->free_pinned(p); }

/* Give c's memory and stream back (only a process that may still use
 * CUDA calls it). */
static void ctx_free(struct gpu_ctx *c)
{
	if (atomic_load(&forked)) {
		gpu_pool_abandon(&c->dev);
		gpu_pool_abandon(&c->pin);
	} else {
		if (!atomic_load(&dead))
			gpu_api()->stream_sync(c->stream);
		gpu_pool_release(&c->dev);
		gpu_pool_release(&c->pin);
		gpu_api()->stream_destroy(c->stream);
		gpu_api()->get_last_error();
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* A worker thread ends: its context goes. */
static void ctx_exit(void *p)
{
	struct gpu_ctx *c = p;

	pthread_mutex_lock(&life_lock);
	for (struct gpu_ctx **i = &contexts; *i; i = &(*i)->next)
		if (*i == c) {
			*i = c->next;
			break;
		}
	pthread_mutex_unlock(&life_lock);
	ctx_free(c);
}

static void *trim_loop(void *arg);

/* life_lock held. */
static void start_trimmer(void)
{
	pthread_condattr_t ca;

	if (trimmer_on)
		return;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&trimmer_wake, &ca);
	pthread_condattr_destroy(&ca);
	trimmer_stop = false;
	trimmer_on = pthread_create(&trimmer, NULL, trim_loop, NULL) == 0;
}

static int ctx_get(struct gpu_ctx **out, char *err)
{
	struct gpu_ctx *c;
	int e;

	pthread_mutex_lock(&life_lock);
	if (!key_made)
		key_made = pthread_key_create(&ctx_key, ctx_exit) == 0;
	pthread_mutex_unlock(&life_lock);
	if (!key_made)
		return sd_err(err, -ENOMEM, "out of thread-specific keys");
	if ((c = pthread_getspecific(ctx_key))) {
		*out = c;
		return 0;
	}
	if (!(c = calloc(1, sizeof(*c))))
		return sd_err(err, -ENOMEM, "out of memory");
	if ((e = gpu_api()->stream_create(&c->stream)) != GPU_OK) {
		free(c);
		return gpu_error(e, "creating a stream", err);
	}
	c->dev = (struct gpu_pool){ .bound = &dev_bound, .min_block = GPU_MIN_BLOCK,
				    .alloc = device_alloc, .release = device_release };
	c->pin = (struct gpu_pool){ .bound = &pin_bound, .min_block = GPU_MIN_BLOCK,
				    .alloc = pinned_alloc, .release = pinned_release };
	pthread_mutex_init(&c->lock, NULL);
	pthread_setspecific(ctx_key, c);
	pthread_mutex_lock(&life_lock);
	c->next = contexts;
	contexts = c;
	start_trimmer();
	pthread_mutex_unlock(&life_lock);
	*out = c;
	return 0;
}

int gpu_enter(struct gpu_ctx **out, char *err)
{
	struct gpu_ctx *c = NULL;
	int rc;

	if (!atomic_load(&ready) && (rc = gpu_init(NULL, 0, err)) < 0)
		return rc;
	if (atomic_load(&forked))
		return sd_err(err, -ENODEV, "CUDA was started by the process this one forked from; "
			      "it cannot be used here");
	if (atomic_load(&dead)) {
		pthread_mutex_lock(&life_lock);
		rc = sd_err(err, -ENODEV, "the GPU was given up after a fault (%s)", dead_msg);
		pthread_mutex_unlock(&life_lock);
		return rc;
	}
	if ((rc = ctx_get(&c, err)) < 0)
		return rc;
	pthread_mutex_lock(&c->lock);
	if ((rc = clear_stale(err)) < 0) {
		pthread_mutex_unlock(&c->lock);
		return rc;
	}
	*out = c;
	return 0;
}

void gpu_leave(struct gpu_ctx *c)
{
	c->last_ns = now_ns();
	pthread_mutex_unlock(&c->lock);
}

/* A pool said no: past its bound (alloc_err 0) or the allocator's error. */
static int pool_refused(int alloc_err, const struct gpu_bound *b, const char *kind,
			const char *option, uint64_t n, char *err)
{
	char what[96];

	if (alloc_err) {
		snprintf(what, sizeof(what), "allocating %llu bytes of %s", (unsigned long long)n, kind);
		return gpu_error(alloc_err, what, err);
	}
	atomic_fetch_add(&n_oom, 1);
	return sd_err(err, -ENOMEM, "%llu bytes more of %s would pass its bound of %llu MiB (%s)",
		      (unsigned long long)n, kind, (unsigned long long)(b->limit >> 20), option);
}

int gpu_device_get(struct gpu_ctx *c, uint64_t n, char **p, char *err)
{
	int alloc_err;

	if (n > SIZE_MAX || gpu_pool_get(&c->dev, (size_t)n, (void **)p, &alloc_err) < 0)
		return pool_refused(n > SIZE_MAX ? 0 : alloc_err, &dev_bound, "GPU memory", "gpu_mem=", n, err);
	return 0;
}

int gpu_pinned_get(struct gpu_ctx *c, uint64_t n, char **p, char *err)
{
	int alloc_err;

	if (n > SIZE_MAX || gpu_pool_get(&c->pin, (size_t)n, (void **)p, &alloc_err) < 0)
		return pool_refused(n > SIZE_MAX ? 0 : alloc_err, &pin_bound, "pinned host memory",
				    "gpu_pinned=", n, err);
	return 0;
}

void gpu_count_split(void)
{
	atomic_fetch_add(&n_splits, 1);
}

/* --- giving idle memory back --------------------------------------------------- */

/* Release the pools of every context idle for idle (ns) at now; life_lock
 * held.  A context in use is skipped (its lock is taken). */
static void trim_pass(uint64_t now, uint64_t idle)
{
	if (atomic_load(&dead) || atomic_load(&forked))
		return;
	for (struct gpu_ctx *c = contexts; c; c = c->next) {
		if (pthread_mutex_trylock(&c->lock) != 0)
			continue;
		if (gpu_pool_idle(&c->dev, c->last_ns, now, idle) ||
		    gpu_pool_idle(&c->pin, c->last_ns, now, idle)) {
			gpu_api()->stream_sync(c->stream);
			gpu_pool_release(&c->dev);
			gpu_pool_release(&c->pin);
			atomic_fetch_add(&n_trims, 1);
		}
		pthread_mutex_unlock(&c->lock);
	}
}

static void *trim_loop(void *arg)
{
	uint64_t period = idle_ns / 2;

	(void)arg;
	if (period > 1000000000u)
		period = 1000000000u;
	if (period < 10000000u)
		period = 10000000u;
	pthread_mutex_lock(&life_lock);
	while (!trimmer_stop) {
		uint64_t at = now_ns() + period;
		struct timespec ts = { (time_t)(at / 1000000000u), (long)(at % 1000000000u) };
		pthread_cond_timedwait(&trimmer_wake, &life_lock, &ts);
		if (!trimmer_stop)
			trim_pass(now_ns(), idle_ns);
	}
	pthread_mutex_unlock(&life_lock);
	return NULL;
}

void gpu_get_stats(struct gpu_stats *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&life_lock);
	s->started = atomic_load(&ready);
	s->dead = atomic_load(&dead);
	s->device = device;
	s->devices = devices;
	snprintf(s->name, sizeof(s->name), "%s", dev_name);
	snprintf(s->dead_reason, sizeof(s->dead_reason), "%s", s->dead ? dead_msg : "");
	pthread_mutex_unlock(&life_lock);
	s->out_of_memory = atomic_load(&n_oom);
	s->errors = atomic_load(&n_errors);
	s->stale_errors = atomic_load(&n_stale);
	s->row_splits = atomic_load(&n_splits);
	s->trims = atomic_load(&n_trims);
	s->device_bound = dev_bound.limit;
	s->device_held = gpu_bound_held(&dev_bound);
	s->pinned_bound = pin_bound.limit;
	s->pinned_held = gpu_bound_held(&pin_bound);
}

/* --- test builds ------------------------------------------------------------- */

#ifdef SDAFS_GPU_TEST_HOOKS
static void stop_trimmer(void)
{
	pthread_mutex_lock(&life_lock);
	bool on = trimmer_on;
	trimmer_stop = true;
	if (on)
		pthread_cond_signal(&trimmer_wake);
	pthread_mutex_unlock(&life_lock);
	if (on) {
		pthread_join(trimmer, NULL);
		pthread_cond_destroy(&trimmer_wake);
	}
	trimmer_on = false;
}

int gpu_test_use_api(const struct gpu_api *api)
{
	stop_trimmer();
	pthread_mutex_lock(&life_lock);
	while (contexts) {
		struct gpu_ctx *c = contexts;
		contexts = c->next;
		ctx_free(c);
	}
	if (key_made)
		pthread_key_delete(ctx_key);
	key_made = false;
	table = api;
	config = (struct gpu_config){ .device = -1 };
	started = false;
	atomic_store(&ready, false);
	atomic_store(&dead, false);
	atomic_store(&forked, false);
	start_rc = 0;
	start_msg[0] = dead_msg[0] = dev_name[0] = '\0';
	device = devices = 0;
	max_blocks = 1;
	dev_bound = (struct gpu_bound){ 0, 0 };
	pin_bound = (struct gpu_bound){ 0, 0 };
	atomic_store(&n_oom, 0);
	atomic_store(&n_errors, 0);
	atomic_store(&n_stale, 0);
	atomic_store(&n_splits, 0);
	atomic_store(&n_trims, 0);
	for (int i = 0; i < 16; i++)
		atomic_store(&logged[i], 0);
	pthread_mutex_unlock(&life_lock);
	return 0;
}

void gpu_test_trim_now(void)
{
	pthread_mutex_lock(&life_lock);
	trim_pass(UINT64_MAX, 0);
	pthread_mutex_unlock(&life_lock);
}
#endif
