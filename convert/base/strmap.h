/*
 * strmap.h — an open-addressing hash map from borrowed C strings to indices.
 *
 * Tables of 100,000 tensor names are looked up by name during planning and
 * validation; this keeps that linear.  Keys are not copied: they must
 * outlive the map (they are the names held by the source or plan).
 */
#ifndef SDAFS_STRMAP_H
#define SDAFS_STRMAP_H

#include <stddef.h>

struct strmap {
	const char **keys;
	size_t *vals;
	size_t cap;     /* power of two, 0 when empty */
	size_t len;
};

/* Insert key -> val.  Returns 0, -EEXIST when key is present (*old gets its
 * value if old is not NULL), or -ENOMEM. */
int strmap_put(struct strmap *m, const char *key, size_t val, size_t *old);
/* Returns 1 and sets *val when found, else 0. */
int strmap_get(const struct strmap *m, const char *key, size_t *val);
void strmap_free(struct strmap *m);

#endif
