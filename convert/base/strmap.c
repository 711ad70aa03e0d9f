/* strmap.c — linear-probing string map; see strmap.h. */
#include "strmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;    /* FNV-1a */

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ull;
	}
	return h;
}

static size_t probe(const struct strmap *m, const char *key)
{
	size_t i = (size_t)str_hash(key) & (m->cap - 1);

	while (m->keys[i] && strcmp(m->keys[i], key) != 0)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static int grow(struct strmap *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 64;
	struct strmap n = { calloc(ncap, sizeof(*n.keys)),
			    calloc(ncap, sizeof(*n.vals)), ncap, 0 };

	if (!n.keys || !n.vals) {
		free(n.keys);
		free(n.vals);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t j = probe(&n, m->keys[i]);
		n.keys[j] = m->keys[i];
		n.vals[j] = m->vals[i];
		n.len++;
	}
	strmap_free(m);
	*m = n;
	return 0;
}

int strmap_put(struct strmap *m, const char *key, size_t val, size_t *old)
{
	if ((m->len + 1) * 2 > m->cap && grow(m) < 0)
		return -ENOMEM;
	size_t i = probe(m, key);
	if (m->keys[i]) {
		if (old)
			*old = m->vals[i];
		return -EEXIST;
	}
	m->keys[i] = key;
	m->vals[i] = val;
	m->len++;
	return 0;
}

int strmap_get(const struct strmap *m, const char *key, size_t *val)
{
	if (!m->cap)
		return 0;
	size_t i = probe(m, key);
	if (!m->keys[i])
		return 0;
	*val = m->vals[i];
	return 1;
}

void strmap_free(struct strmap *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}
