/*
 * inspect.h — sdafs --inspect and --list-adapters: the plan and the known
 * families, printed, nothing mounted (inspect.c).
 */
#ifndef SDAFS_INSPECT_H
#define SDAFS_INSPECT_H

#include "view.h"

/* The view's files and tensors with dtype, shape and recipe: as text, or
 * as JSON.  0, or -1 when out of memory. */
int inspect_print(const struct view *v, bool json);
void inspect_list_adapters(void);

#endif
