/*
 * grow.h — growing an array by doubling, the one way sdafs does it.
 */
#ifndef SDAFS_GROW_H
#define SDAFS_GROW_H

#include <stddef.h>

/*
 * Make the array *arrp (elements of elem bytes, *cap of them allocated) hold
 * at least need elements, doubling from 8.  0, or -ENOMEM with a message.
 * arrp is the address of the array pointer (e.g. &p->tensors).
 */
int sd_grow(void *arrp, size_t *cap, size_t need, size_t elem, char *err);

#endif
