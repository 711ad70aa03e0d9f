/*
 * source_read.c — reading tensor bytes from the scanned files.
 *
 * A tensor stored whole is one pread of its rows.  A tensor of a sharded
 * save is put together from its chunks: each chunk's rows in range are read
 * whole (they are contiguous in its file) into per-thread scratch, then
 * copied into place run by run of its last dimension.  The chunks tile the
 * tensor (checked at scan), so every byte of the destination is written
 * once.  Evaluators see none of this: to them a tensor is rows.
 */
#include "source.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "io.h"

int source_pread(const struct source *s, uint32_t f, uint64_t off, void *dst,
		 size_t len, char *err)
{
	ssize_t n = sd_pread_full(s->files[f].fd, dst, len, off);

	if (n < 0 || (size_t)n < len)
		return sd_err(err, -EIO,
			      "source file %s/%s: %s at offset %" PRIu64 "; the file changed under the mount",
			      s->dir, s->files[f].name, n < 0 ? strerror((int)-n) : "ends early",
			      off + (n < 0 ? 0 : (uint64_t)n));
	return 0;
}

/* Per-thread scratch for chunk rows, kept between reads. */
struct scratch {
	void *buf;
	size_t cap;
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_destroy(void *p)
{
	struct scratch *sc = p;

	free(sc->buf);
	free(sc);
}

static void scratch_init(void)
{
	pthread_key_create(&scratch_key, scratch_destroy);
}

static void *scratch_get(size_t n, char *err)
{
	struct scratch *sc;

	pthread_once(&scratch_once, scratch_init);
	if (!(sc = pthread_getspecific(scratch_key))) {
		if (!(sc = calloc(1, sizeof(*sc))))
			goto oom;
		pthread_setspecific(scratch_key, sc);
	}
	if (sc->cap < n) {
		void *b = realloc(sc->buf, n);
		if (!b)
			goto oom;
		sc->buf = b;
		sc->cap = n;
	}
	return sc->buf;
oom:
	sd_err(err, -ENOMEM, "cannot allocate %zu bytes to assemble a sharded tensor", n);
	return NULL;
}

static int read_chunked(const struct source *s, const struct src_tensor *t,
			uint64_t r0, uint64_t r1, void *dst, uint64_t *bytes_read,
			char *err)
{
	size_t es = dtype_size(t->dtype);
	int nd = t->ndim;
	int rc;

	for (uint32_t k = 0; k < t->nchunks; k++) {
		const struct src_chunk *c = &t->chunks[k];
		uint64_t lo = r0 > c->start[0] ? r0 : c->start[0];
		uint64_t hi = r1 < c->start[0] + c->shape[0] ? r1 : c->start[0] + c->shape[0];
		if (lo >= hi || !c->nbytes)
			continue;
		uint64_t crow = c->nbytes / c->shape[0];      /* bytes of one chunk row */
		char *tmp = scratch_get((size_t)((hi - lo) * crow), err);
		if (!tmp)
			return -ENOMEM;
		if ((rc = source_pread(s, c->file, c->offset + (lo - c->start[0]) * crow, tmp,
				       (size_t)((hi - lo) * crow), err)) < 0)
			return rc;
		*bytes_read += (hi - lo) * crow;
		if (nd == 1) {
			memcpy((char *)dst + (lo - r0) * es, tmp, (size_t)((hi - lo) * es));
			continue;
		}
		/* Walk the chunk's index tuples over dims 0..nd-2 (an odometer),
		 * copying one run of its last dim each time. */
		uint64_t idx[ST_MAX_DIMS] = { 0 }, run = c->shape[nd - 1] * es;
		uint64_t nruns = (hi - lo) * (crow / run);
		idx[0] = lo - c->start[0];
		for (uint64_t rix = 0; rix < nruns; rix++) {
			uint64_t off = 0;       /* element offset in dst */
			for (int d = 0; d < nd - 1; d++)
				off = off * t->shape[d] + (d ? c->start[d] + idx[d]
							     : c->start[0] + idx[0] - r0);
			off = off * t->shape[nd - 1] + c->start[nd - 1];
			memcpy((char *)dst + off * es, tmp + rix * run, (size_t)run);
			for (int d = nd - 2; d >= 0; d--) {
				if (++idx[d] < (d ? c->shape[d] : hi - c->start[0]) || d == 0)
					break;
				idx[d] = 0;
			}
		}
	}
	return 0;
}

int source_read_rows(const struct source *s, uint32_t t, uint64_t r0, uint64_t r1,
		     void *dst, uint64_t *bytes_read, char *err)
{
	const struct src_tensor *st = &s->tensors[t];
	uint64_t rows = st->ndim ? st->shape[0] : 1, done = 0;
	int rc;

	if (r0 >= r1 || !rows)
		rc = 0;
	else if (st->nchunks)
		rc = read_chunked(s, st, r0, r1, dst, &done, err);
	else {
		uint64_t rb = st->nbytes / rows;
		rc = source_pread(s, st->file, st->offset + r0 * rb, dst, (size_t)((r1 - r0) * rb), err);
		done = rc == 0 ? (r1 - r0) * rb : 0;
	}
	if (bytes_read)
		*bytes_read = done;
	return rc;
}

const char *source_tensor_name(const void *s, uint32_t t)
{
	return ((const struct source *)s)->tensors[t].name;
}
