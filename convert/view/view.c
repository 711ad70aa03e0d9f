/*
 * view.c — the read path of a view (see view.h).
 *
 * A converted tensor is cut into chunks of whole rows (one expert of a
 * grouped tensor); a read pins the chunks it overlaps, converting the
 * missing ones through the cache's single-flight fill, and hands back
 * pointers into them.  Nothing on this path allocates once the per-thread
 * view_io has grown to the largest request.
 */
#include "view.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "err.h"
#include "gpu.h"
#include "grow.h"
#include "io.h"
#include "kernels.h"

int view_open(struct view *v, const char *src, const struct view_opts *o,
	      uint64_t cache_bytes, char *err)
{
	struct source s;
	int rc = source_scan(src, &s, err);

	if (rc < 0) {
		memset(v, 0, sizeof(*v));
		return rc;
	}
	return view_build(v, &s, o, cache_bytes, err);
}

int view_build(struct view *v, struct source *s, const struct view_opts *o,
	       uint64_t cache_bytes, char *err)
{
	int rc;

	memset(v, 0, sizeof(*v));
	v->opts = *o;
	v->src = *s;            /* the view owns the source from here on */
	memset(s, 0, sizeof(*s));
	s->dirfd = -1;
	if ((rc = plan_build(&v->src, o, &v->plan, err)) < 0)
		goto fail;
	if ((rc = layout_build(&v->plan, &v->src, &v->layout, err)) < 0) {
		sd_err_prefix(err, "%s", v->src.dir);
		goto fail;
	}
	if (!(v->cache = cache_new(cache_bytes))) {
		rc = sd_err(err, -ENOMEM, "out of memory");
		goto fail;
	}
	return 0;
fail:
	view_close(v);
	return rc;
}

void view_close(struct view *v)
{
	if (v->cache)
		cache_free(v->cache);
	layout_free(&v->layout);
	plan_free(&v->plan);
	source_free(&v->src);
	memset(v, 0, sizeof(*v));
}

/* --- converting one chunk --------------------------------------------------- */

/* The evaluators' reader: rows of a source tensor, counted. */
static int source_rows(void *arg, uint32_t tensor, uint64_t r0, uint64_t r1,
		       void *dst, char *err)
{
	struct view *v = arg;
	uint64_t n = 0;
	int rc = source_read_rows(&v->src, tensor, r0, r1, dst, &n, err);

	atomic_fetch_add(&v->stats.source_bytes, n);
	return rc;
}

static int fill_chunk(void *arg, uint64_t key, void *buf, size_t len, char *err)
{
	struct view *v = arg;
	const struct plan_tensor *t = &v->plan.tensors[key >> 32];
	uint64_t r0 = (key & 0xffffffffu) * t->chunk_rows;
	uint64_t rows = rx_rows(rx_root(t->recipe));
	uint64_t r1 = r0 + t->chunk_rows < rows ? r0 + t->chunk_rows : rows;
	struct rx_reader rd = { source_rows, v };
	int rc = -ENOTSUP;
	bool on_gpu = false;

	if (v->gpu && gpu_supports(t->recipe))
		on_gpu = (rc = recipe_eval_cuda(t->recipe, r0, r1, buf, &rd, err)) == 0;
	/* what the GPU does not take (F64, past its memory bound) converts here */
	if (rc == -ENOTSUP || rc == -ENOMEM)
		rc = recipe_eval_cpu(t->recipe, r0, r1, buf, &rd, err);

	if (rc < 0) {
		sd_err_prefix(err, "converting '%s' rows %" PRIu64 "..%" PRIu64,
			      t->name, r0, r1);
		return rc;
	}
	(void)len;
	atomic_fetch_add(&v->stats.chunks_converted, 1);
	atomic_fetch_add(&v->stats.bytes_converted, len);
	if (on_gpu)
		atomic_fetch_add(&v->stats.bytes_converted_cuda, len);
	return 0;
}

/* --- segments --------------------------------------------------------------- */

static int push_seg(struct view_io *io, const char *mem, int fd, uint64_t off,
		    size_t len, char *err)
{
	if (!len)
		return 0;
	int rc = sd_grow(&io->segs, &io->segcap, io->nseg + 1, sizeof(*io->segs), err);

	if (rc < 0)
		return rc;
	io->segs[io->nseg++] = (struct view_seg){ mem, fd, off, len, false };
	return 0;
}

static int push_pin(struct view_io *io, struct cache_chunk *c, char *err)
{
	int rc = sd_grow(&io->pins, &io->pincap, io->npin + 1, sizeof(*io->pins), err);

	if (rc < 0)
		return rc;
	io->pins[io->npin++] = c;
	return 0;
}

/* Bytes [a, b) of plan tensor ti (relative to the tensor). */
static int read_tensor(struct view *v, uint32_t ti, uint64_t a, uint64_t b,
		       struct view_io *io, char *err)
{
	const struct plan_tensor *t = &v->plan.tensors[ti];
	int rc;

	if (t->preload)         /* delivered by another rank */
		return push_seg(io, t->preload + a, -1, 0, (size_t)(b - a), err);
	if (!t->recipe) {
		const struct src_tensor *s = &v->src.tensors[t->src];
		return push_seg(io, NULL, v->src.files[s->file].fd, s->offset + a,
				(size_t)(b - a), err);
	}
	uint64_t cb = plan_chunk_bytes(t);
	for (uint64_t c = a / cb; c * cb < b; c++) {
		uint64_t c0 = c * cb, c1 = c0 + cb < t->nbytes ? c0 + cb : t->nbytes;
		struct cache_chunk *chunk;
		rc = cache_get(v->cache, ((uint64_t)ti << 32) | c, (size_t)(c1 - c0),
			       fill_chunk, v, &chunk, err);
		if (rc < 0)
			return rc;
		if ((rc = push_pin(io, chunk, err)) < 0) {
			cache_put(v->cache, chunk);
			return rc;
		}
		uint64_t lo = a > c0 ? a : c0, hi = b < c1 ? b : c1;
		const char *data = cache_data(chunk);
		if ((rc = push_seg(io, data + (lo - c0), -1, 0, (size_t)(hi - lo), err)) < 0)
			return rc;
	}
	return 0;
}

static int read_weights(struct view *v, const struct vfile *f, uint64_t off,
			uint64_t end, struct view_io *io, char *err)
{
	int rc;

	if (off < f->mem_len) {
		uint64_t e = end < f->mem_len ? end : f->mem_len;
		if ((rc = push_seg(io, f->mem + off, -1, 0, (size_t)(e - off), err)) < 0)
			return rc;
		off = e;
	}
	/* First slot that ends after off. */
	size_t lo = 0, hi = f->nslots;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct vslot *s = &f->slots[mid];
		if (s->off + v->plan.tensors[s->tensor].nbytes <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < f->nslots && off < end; i++) {
		const struct vslot *s = &f->slots[i];
		uint64_t n = v->plan.tensors[s->tensor].nbytes;
		uint64_t a = off - s->off, b = (end < s->off + n ? end : s->off + n) - s->off;
		if (n == 0)
			continue;
		if ((rc = read_tensor(v, s->tensor, a, b, io, err)) < 0)
			return rc;
		off = s->off + b;
	}
	return 0;
}

int view_check_sources(struct view *v, size_t file, bool *first, char *err)
{
	const struct vfile *f = &v->layout.files[file];
	bool found = false;

	if (first)
		*first = false;
	for (size_t i = 0; i < f->nsrcs; i++) {
		int rc = source_check(&v->src, f->srcs[i], &found, err);
		if (found) {
			atomic_fetch_add(&v->stats.source_changes, 1);
			if (first)
				*first = true;
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

int view_read(struct view *v, size_t file, uint64_t off, size_t len,
	      struct view_io *io, char *err)
{
	const struct vfile *f = &v->layout.files[file];
	uint64_t end = off + len;
	int rc = 0;

	io->nseg = 0;
	io->npin = 0;
	atomic_fetch_add(&v->stats.reads, 1);
	if ((rc = view_check_sources(v, file, NULL, err)) < 0) {
		atomic_fetch_add(&v->stats.read_errors, 1);
		return rc;
	}
	if (off >= f->size)
		return 0;
	if (end > f->size || end < off)
		end = f->size;
	int mat_fd = atomic_load(&f->mat_fd);
	if (mat_fd >= 0) {      /* converted once already: the copy on disk */
		rc = push_seg(io, NULL, mat_fd, off, (size_t)(end - off), err);
		if (rc == 0 && io->nseg)
			io->segs[io->nseg - 1].copy = true;
		goto out;
	}
	switch (f->kind) {
	case VF_MEMORY:
		rc = push_seg(io, f->mem + off, -1, 0, (size_t)(end - off), err);
		break;
	case VF_SOURCE:
		rc = push_seg(io, NULL, v->src.files[f->src_file].fd, off,
			      (size_t)(end - off), err);
		break;
	case VF_WEIGHTS:
		rc = read_weights(v, f, off, end, io, err);
		break;
	}
out:
	if (rc < 0) {
		atomic_fetch_add(&v->stats.read_errors, 1);
		sd_err_prefix(err, "%s", f->name);
		view_io_release(v, io);
	}
	return rc;
}

void view_io_release(struct view *v, struct view_io *io)
{
	for (size_t i = 0; i < io->npin; i++)
		cache_put(v->cache, io->pins[i]);
	io->npin = 0;
	io->nseg = 0;
}

void view_io_free(struct view_io *io)
{
	free(io->segs);
	free(io->pins);
	memset(io, 0, sizeof(*io));
}

static const char *fd_name(const struct view *v, int fd)
{
	for (size_t i = 0; i < v->src.nfiles; i++)
		if (v->src.files[i].fd == fd)
			return v->src.files[i].name;
	return "?";
}

int view_seg_pread(struct view *v, const struct view_seg *seg, void *dst,
		   char *err)
{
	ssize_t n = sd_pread_full(seg->fd, dst, seg->len, seg->off);

	if (n < 0 || (size_t)n < seg->len)
		return sd_err(err, -EIO,
			      "source file %s/%s: %s at offset %" PRIu64 "; the file changed under the mount",
			      v->src.dir, fd_name(v, seg->fd),
			      n < 0 ? strerror((int)-n) : "ends early",
			      seg->off + (n < 0 ? 0 : (uint64_t)n));
	atomic_fetch_add(seg->copy ? &v->stats.copy_bytes : &v->stats.source_bytes, seg->len);
	return 0;
}

int view_io_gather(struct view *v, const struct view_io *io, void *dst,
		   char *err)
{
	char *out = dst;

	for (size_t i = 0; i < io->nseg; i++) {
		const struct view_seg *s = &io->segs[i];
		if (s->mem)
			memcpy(out, s->mem, s->len);
		else {
			int rc = view_seg_pread(v, s, out, err);
			if (rc < 0)
				return rc;
		}
		out += s->len;
	}
	return 0;
}

char *view_stats_json(struct view *v)
{
	struct cache_stats cs;
	cJSON *j = cJSON_CreateObject(), *c = cJSON_CreateObject();
	char *text;

	if (!j || !c) {
		cJSON_Delete(j);
		cJSON_Delete(c);
		return NULL;
	}
	cache_get_stats(v->cache, &cs);
	cJSON_AddStringToObject(j, "adapter", v->plan.adapter);
	cJSON_AddStringToObject(j, "direction", v->plan.direction);
	cJSON_AddStringToObject(j, "backend", v->gpu ? "cuda" : "cpu");
	cJSON_AddStringToObject(j, "cpu_kernels", sd_kernels()->name);
	cJSON_AddNumberToObject(j, "header_bytes_read", (double)v->src.header_bytes_read);
	cJSON_AddNumberToObject(j, "source_bytes_read", (double)atomic_load(&v->stats.source_bytes));
	cJSON_AddNumberToObject(j, "chunks_converted", (double)atomic_load(&v->stats.chunks_converted));
	cJSON_AddNumberToObject(j, "bytes_converted", (double)atomic_load(&v->stats.bytes_converted));
	uint64_t on_gpu = atomic_load(&v->stats.bytes_converted_cuda);
	cJSON_AddNumberToObject(j, "bytes_converted_cpu",
				(double)(atomic_load(&v->stats.bytes_converted) - on_gpu));
	cJSON_AddNumberToObject(j, "bytes_converted_cuda", (double)on_gpu);
	cJSON_AddNumberToObject(j, "reads", (double)atomic_load(&v->stats.reads));
	cJSON_AddNumberToObject(j, "read_errors", (double)atomic_load(&v->stats.read_errors));
	cJSON_AddNumberToObject(j, "source_changes", (double)atomic_load(&v->stats.source_changes));
	cJSON_AddNumberToObject(j, "copies_written", (double)atomic_load(&v->stats.copies_written));
	cJSON_AddNumberToObject(j, "copy_bytes_read", (double)atomic_load(&v->stats.copy_bytes));
	cJSON_AddNumberToObject(j, "passthrough_opens", (double)atomic_load(&v->stats.passthrough_opens));
	cJSON_AddItemToObject(j, "cache", c);
	cJSON_AddNumberToObject(c, "hits", (double)cs.hits);
	cJSON_AddNumberToObject(c, "misses", (double)cs.misses);
	cJSON_AddNumberToObject(c, "evictions", (double)cs.evictions);
	cJSON_AddNumberToObject(c, "bytes", (double)cs.bytes);
	cJSON_AddNumberToObject(c, "entries", (double)cs.entries);
	cJSON_AddNumberToObject(c, "max_bytes", (double)cs.max_bytes);
	text = cJSON_Print(j);
	cJSON_Delete(j);
	return text;
}
