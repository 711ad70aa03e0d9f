/*
 * gpu_pool.c — per-thread GPU memory that grows to need and is freed only
 * when idle (see gpu_pool.h).
 */
#include "gpu_pool.h"

#include <errno.h>
#include <stdlib.h>

bool gpu_bound_take(struct gpu_bound *b, uint64_t n)
{
	uint64_t held = __atomic_load_n(&b->held, __ATOMIC_RELAXED);

	do {
		if (n > b->limit || held > b->limit - n)
			return false;
	} while (!__atomic_compare_exchange_n(&b->held, &held, held + n, true,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return true;
}

void gpu_bound_give(struct gpu_bound *b, uint64_t n)
{
	__atomic_fetch_sub(&b->held, n, __ATOMIC_RELAXED);
}

uint64_t gpu_bound_held(const struct gpu_bound *b)
{
	return __atomic_load_n(&b->held, __ATOMIC_RELAXED);
}

size_t gpu_block_size(size_t n, size_t min_block)
{
	size_t size = n > min_block ? n : min_block;

	if (size > SIZE_MAX - GPU_POOL_GRAIN)
		return size;
	return (size + GPU_POOL_GRAIN - 1) / GPU_POOL_GRAIN * GPU_POOL_GRAIN;
}

size_t gpu_pool_round(size_t n)
{
	if (n == 0)
		return GPU_POOL_ALIGN;
	if (n > SIZE_MAX - GPU_POOL_ALIGN)
		return SIZE_MAX & ~(size_t)(GPU_POOL_ALIGN - 1);
	return (n + GPU_POOL_ALIGN - 1) & ~(size_t)(GPU_POOL_ALIGN - 1);
}

/* A new block of size bytes at the end of the list. */
static int pool_grow(struct gpu_pool *p, size_t size, int *alloc_err)
{
	struct gpu_block *b, **tail;
	void *mem = NULL;
	int e;

	*alloc_err = 0;
	if (!gpu_bound_take(p->bound, size))
		return -ENOMEM;
	if (!(b = calloc(1, sizeof(*b)))) {
		gpu_bound_give(p->bound, size);
		return -ENOMEM;
	}
	if ((e = p->alloc(&mem, size)) != 0) {
		gpu_bound_give(p->bound, size);
		free(b);
		*alloc_err = e;
		return -ENOMEM;
	}
	b->p = mem;
	b->cap = size;
	for (tail = &p->first; *tail; tail = &(*tail)->next)
		;
	*tail = b;
	p->cur = b;
	return 0;
}

int gpu_pool_get(struct gpu_pool *p, size_t n, void **out, int *alloc_err)
{
	struct gpu_block *b;
	int rc;

	*alloc_err = 0;
	n = gpu_pool_round(n);
	/* from the current block on: the blocks after it are untouched this chunk */
	for (b = p->cur ? p->cur : p->first; b && b->cap - b->used < n; b = b->next)
		;
	if (!b) {
		if ((rc = pool_grow(p, gpu_block_size(n, p->min_block), alloc_err)) < 0)
			return rc;
		b = p->cur;
	}
	p->cur = b;
	*out = b->p + b->used;
	b->used += n;
	return 0;
}

void gpu_pool_reset(struct gpu_pool *p)
{
	for (struct gpu_block *b = p->first; b; b = b->next)
		b->used = 0;
	p->cur = p->first;
}

void gpu_pool_release(struct gpu_pool *p)
{
	for (struct gpu_block *b = p->first, *next; b; b = next) {
		next = b->next;
		p->release(b->p);
		gpu_bound_give(p->bound, b->cap);
		free(b);
	}
	p->first = p->cur = NULL;
}

void gpu_pool_abandon(struct gpu_pool *p)
{
	for (struct gpu_block *b = p->first, *next; b; b = next) {
		next = b->next;
		free(b);
	}
	p->first = p->cur = NULL;
}

size_t gpu_pool_held(const struct gpu_pool *p)
{
	size_t held = 0;

	for (const struct gpu_block *b = p->first; b; b = b->next)
		held += b->cap;
	return held;
}

bool gpu_pool_idle(const struct gpu_pool *p, uint64_t last_ns, uint64_t now_ns, uint64_t idle_ns)
{
	return p->first && now_ns >= last_ns && now_ns - last_ns >= idle_ns;
}
