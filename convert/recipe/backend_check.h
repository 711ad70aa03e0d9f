/*
 * backend_check.h — does another backend give the CPU's bytes?
 *
 * Before a mount lets a second backend (the GPU) convert anything, it runs
 * a dozen small recipes, one per kind of operation and path, over fixed
 * pseudo-random data that includes NaN, Inf and subnormal bit patterns,
 * through both backends and compares the bytes.  A backend that differs is
 * not used: a view must never show bytes the CPU would not.
 */
#ifndef SDAFS_BACKEND_CHECK_H
#define SDAFS_BACKEND_CHECK_H

#include <stdint.h>

#include "recipe.h"

typedef int (*rx_eval_fn)(const struct recipe *r, uint64_t r0, uint64_t r1,
			  void *dst, const struct rx_reader *rd, char *err);

/* 0 when eval gives recipe_eval_cpu's bytes for every case (and batched,
 * when not NULL: the backend's path for a chunk in batches of rows); -EIO
 * with a message naming the first operation that differs (or the
 * evaluator's own error). */
int backend_check(rx_eval_fn eval, rx_eval_fn batched, char *err);

#endif
