/* memsrc.c — see memsrc.h. */
#include "memsrc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "grow.h"

void memsrc_init(struct memsrc *m, uint64_t seed)
{
	memset(m, 0, sizeof(*m));
	/* xorshift never leaves 0; any other state walks all 2^64 - 1 */
	m->rng = seed ? seed : 0x5DAF5;
}

void memsrc_free(struct memsrc *m)
{
	for (size_t i = 0; i < m->ntensors; i++) {
		free(m->tensors[i].name);
		free(m->bytes[i]);
	}
	free(m->tensors);
	free(m->bytes);
	memset(m, 0, sizeof(*m));
}

uint64_t memsrc_random(struct memsrc *m)
{
	m->rng ^= m->rng << 13;
	m->rng ^= m->rng >> 7;
	m->rng ^= m->rng << 17;
	return m->rng;
}

/* Eight bytes a draw: the benchmark fills hundreds of megabytes. */
static void fill_random(struct memsrc *m, unsigned char *p, uint64_t n)
{
	uint64_t i = 0, x;

	for (; i + 8 <= n; i += 8) {
		x = memsrc_random(m);
		memcpy(p + i, &x, 8);
	}
	for (x = memsrc_random(m); i < n; i++, x >>= 8)
		p[i] = (unsigned char)x;
}

int memsrc_add(struct memsrc *m, const char *name, enum sd_dtype dt, int ndim,
	       const uint64_t *shape, enum memsrc_fill fill, char *err)
{
	size_t i = m->ntensors;
	uint64_t n = dtype_size(dt);
	char auto_name[32];
	int rc;

	if (ndim < 0 || ndim > ST_MAX_DIMS)
		return sd_err(err, -EINVAL, "in-memory tensor %zu: %d dims (at most %d)",
			      i, ndim, ST_MAX_DIMS);
	if ((rc = sd_grow(&m->tensors, &m->tensors_cap, i + 1, sizeof(*m->tensors), err)) < 0 ||
	    (rc = sd_grow(&m->bytes, &m->bytes_cap, i + 1, sizeof(*m->bytes), err)) < 0)
		return rc;
	struct memsrc_tensor *t = &m->tensors[i];
	memset(t, 0, sizeof(*t));
	m->bytes[i] = NULL;
	for (int d = 0; d < ndim; d++)
		n *= t->shape[d] = shape[d];
	snprintf(auto_name, sizeof(auto_name), "t%zu", i);
	if (!(t->name = strdup(name ? name : auto_name)))
		return sd_err(err, -ENOMEM, "out of memory");
	if (fill == MEMSRC_RANDOM) {
		if (!(m->bytes[i] = malloc(n ? n : 1))) {
			free(t->name);
			return sd_err(err, -ENOMEM, "out of memory for the %" PRIu64 " bytes of '%s'",
				      n, name ? name : auto_name);
		}
		fill_random(m, m->bytes[i], n);
	}
	t->dtype = dt;
	t->ndim = ndim;
	t->nbytes = n;
	m->ntensors++;
	return (int)i;
}

int memsrc_src(struct memsrc *m, struct recipe *r, uint32_t t, char *err)
{
	if (t >= m->ntensors)
		return sd_err(err, -EINVAL, "in-memory tensor %" PRIu32 ": there are %zu",
			      t, m->ntensors);
	return rx_src(r, t, m->tensors[t].dtype, m->tensors[t].ndim, m->tensors[t].shape, err);
}

const char *memsrc_name(const void *arg, uint32_t t)
{
	const struct memsrc *m = arg;

	return t < m->ntensors ? m->tensors[t].name : "?";
}

int memsrc_read(void *arg, uint32_t tensor, uint64_t r0, uint64_t r1, void *dst,
		char *err)
{
	struct memsrc *m = arg;

	if (tensor >= m->ntensors)
		return sd_err(err, -EIO, "reading in-memory tensor %" PRIu32 ": there are %zu",
			      tensor, m->ntensors);
	const struct memsrc_tensor *t = &m->tensors[tensor];
	uint64_t rows = t->ndim ? t->shape[0] : 1;
	if (r0 > r1 || r1 > rows)
		return sd_err(err, -EIO, "reading rows [%" PRIu64 ", %" PRIu64 ") of in-memory "
			      "tensor '%s': past its end (%" PRIu64 " rows)",
			      r0, r1, t->name, rows);
	uint64_t rb = rows ? t->nbytes / rows : 0, off = r0 * rb;
	size_t len = (size_t)((r1 - r0) * rb);
	if (!m->bytes[tensor])
		return sd_err(err, -EIO, "reading in-memory tensor '%s': it was added without bytes",
			      t->name);
	memcpy(dst, m->bytes[tensor] + off, len);
	return 0;
}

struct rx_reader memsrc_reader(struct memsrc *m)
{
	return (struct rx_reader){ .rows = memsrc_read, .arg = m };
}
