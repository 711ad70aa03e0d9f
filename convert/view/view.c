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
#include "log.h"

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
	view_readahead_stop(v);
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

int view_convert(struct view *v, const struct plan_tensor *t, uint64_t r0,
		 uint64_t r1, void *dst, char *err)
{
	struct rx_reader rd = { source_rows, v };
	uint64_t len = (r1 - r0) * rx_row_bytes(rx_root(t->recipe));
	int rc = -ENOTSUP;
	bool on_gpu = false;

	if (v->gpu && gpu_usable() && gpu_supports(t->recipe))
		on_gpu = (rc = recipe_eval_cuda(t->recipe, r0, r1, dst, &rd, err)) == 0;
	/* What the GPU declines (F64, out of memory, a CUDA error, a GPU given
	 * up after a fault) converts here; only the source's own errors fail. */
	if (gpu_declined(rc)) {
		if (v->gpu)
			atomic_fetch_add(&v->stats.gpu_fallbacks, 1);
		rc = recipe_eval_cpu(t->recipe, r0, r1, dst, &rd, err);
	}

	if (rc < 0) {
		sd_err_prefix(err, "converting '%s' rows %" PRIu64 "..%" PRIu64,
			      t->name, r0, r1);
		return rc;
	}
	atomic_fetch_add(&v->stats.chunks_converted, 1);
	atomic_fetch_add(&v->stats.bytes_converted, len);
	if (on_gpu)
		atomic_fetch_add(&v->stats.bytes_converted_cuda, len);
	return 0;
}

int view_fill_chunk(void *arg, uint64_t key, void *buf, size_t len, char *err)
{
	struct view *v = arg;
	const struct plan_tensor *t = &v->plan.tensors[key >> 32];
	uint64_t r0 = (key & 0xffffffffu) * t->chunk_rows;
	uint64_t rows = rx_rows(rx_root(t->recipe));
	uint64_t r1 = r0 + t->chunk_rows < rows ? r0 + t->chunk_rows : rows;

	(void)len;
	return view_convert(v, t, r0, r1, buf, err);
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

static int push_pin(struct view_io *io, struct cache_chunk *c, size_t bytes, char *err)
{
	int rc = sd_grow(&io->pins, &io->pincap, io->npin + 1, sizeof(*io->pins), err);

	if (rc < 0)
		return rc;
	io->pins[io->npin++] = (struct view_pin){ c, bytes };
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
			       view_fill_chunk, v, &chunk, err);
		if (rc < 0)
			return rc;
		uint64_t lo = a > c0 ? a : c0, hi = b < c1 ? b : c1;
		if ((rc = push_pin(io, chunk, (size_t)(hi - lo), err)) < 0) {
			cache_put(v->cache, chunk);
			return rc;
		}
		const char *data = cache_data(chunk);
		if ((rc = push_seg(io, data + (lo - c0), -1, 0, (size_t)(hi - lo), err)) < 0)
			return rc;
	}
	return 0;
}

size_t view_first_slot(const struct view *v, const struct vfile *f, uint64_t off)
{
	size_t lo = 0, hi = f->nslots;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct vslot *s = &f->slots[mid];
		if (s->off + v->plan.tensors[s->tensor].nbytes <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
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
	for (size_t i = view_first_slot(v, f, off); i < f->nslots && off < end; i++) {
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

void view_count_failure(struct view *v, enum view_fault why)
{
	atomic_fetch_add(&v->stats.read_errors, 1);
	atomic_fetch_add(&v->stats.read_error_causes[why], 1);
}

/* The cause of a failure inside view_read, from what the pieces return:
 * the source reads say -EIO, the allocations -ENOMEM, recipes the rest. */
static enum view_fault fault_of(int rc)
{
	return rc == -ENOMEM ? VIEW_FAULT_NO_MEMORY :
	       rc == -EIO ? VIEW_FAULT_SOURCE_UNREADABLE : VIEW_FAULT_CONVERSION;
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
		view_count_failure(v, VIEW_FAULT_SOURCE_CHANGED);
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
		view_count_failure(v, fault_of(rc));
		sd_err_prefix(err, "%s", f->name);
		view_io_release(v, io);
	}
	return rc;
}

void view_io_release(struct view *v, struct view_io *io)
{
	for (size_t i = 0; i < io->npin; i++)
		cache_put_read(v->cache, io->pins[i].chunk, io->pins[i].bytes);
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

int view_seg_done(struct view *v, const struct view_seg *seg, ssize_t n, char *err)
{
	if (n < 0 || (size_t)n < seg->len) {
		view_count_failure(v, VIEW_FAULT_SOURCE_UNREADABLE);
		return sd_err(err, -EIO,
			      "source file %s/%s: %s at offset %" PRIu64 "; the file changed under the mount",
			      v->src.dir, fd_name(v, seg->fd),
			      n < 0 ? strerror((int)-n) : "ends early",
			      seg->off + (n < 0 ? 0 : (uint64_t)n));
	}
	atomic_fetch_add(seg->copy ? &v->stats.copy_bytes : &v->stats.source_bytes, seg->len);
	return 0;
}

int view_seg_pread(struct view *v, const struct view_seg *seg, void *dst,
		   char *err)
{
	return view_seg_done(v, seg, sd_pread_full(seg->fd, dst, seg->len, seg->off), err);
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

static const char *const fault_names[VIEW_FAULT_COUNT] = {
	[VIEW_FAULT_SOURCE_CHANGED] = "source_changed",
	[VIEW_FAULT_SOURCE_UNREADABLE] = "source_unreadable",
	[VIEW_FAULT_CONVERSION] = "conversion_failed",
	[VIEW_FAULT_NO_MEMORY] = "out_of_memory",
};

static void add_log_line(const char *line, void *arg)
{
	cJSON_AddItemToArray(arg, cJSON_CreateString(line));
}

static void add_causes(cJSON *j, struct view *v)
{
	cJSON *causes = cJSON_AddObjectToObject(j, "read_error_causes");

	for (int i = 0; causes && i < VIEW_FAULT_COUNT; i++)
		cJSON_AddNumberToObject(causes, fault_names[i],
					(double)atomic_load(&v->stats.read_error_causes[i]));
}

/* Which backend converts, why the CPU does when it does, and the GPU's
 * own figures (gpu.h) on a mount that uses one. */
static void add_backend(cJSON *j, struct view *v)
{
	struct gpu_stats g;
	cJSON *o;

	gpu_get_stats(&g);
	bool on_gpu = v->gpu && g.started && !g.dead;
	cJSON_AddNumberToObject(j, "pid", (double)getpid());
	cJSON_AddStringToObject(j, "backend", on_gpu ? "cuda" : "cpu");
	if (v->gpu && g.dead) {
		char why[SD_ERRLEN + 32];
		snprintf(why, sizeof(why), "the GPU failed: %s", g.dead_reason);
		cJSON_AddStringToObject(j, "backend_reason", why);
	} else if (!on_gpu) {
		cJSON_AddStringToObject(j, "backend_reason", v->backend_note);
	}
	if (!v->gpu || !(o = cJSON_AddObjectToObject(j, "gpu")))
		return;
	cJSON_AddStringToObject(o, "device", g.name);
	cJSON_AddBoolToObject(o, "given_up", g.dead);
	cJSON_AddNumberToObject(o, "fallback_chunks", (double)atomic_load(&v->stats.gpu_fallbacks));
	cJSON_AddNumberToObject(o, "out_of_memory", (double)g.out_of_memory);
	cJSON_AddNumberToObject(o, "errors", (double)g.errors);
	cJSON_AddNumberToObject(o, "stale_errors_cleared", (double)g.stale_errors);
	cJSON_AddNumberToObject(o, "row_splits", (double)g.row_splits);
	cJSON_AddNumberToObject(o, "idle_trims", (double)g.trims);
	cJSON_AddNumberToObject(o, "memory_bound", (double)g.device_bound);
	cJSON_AddNumberToObject(o, "memory_held", (double)g.device_held);
	cJSON_AddNumberToObject(o, "pinned_bound", (double)g.pinned_bound);
	cJSON_AddNumberToObject(o, "pinned_held", (double)g.pinned_held);
}

int view_stats_add(struct view *v, cJSON *j)
{
	struct cache_stats cs;
	cJSON *c = cJSON_CreateObject();

	if (!c)
		return -ENOMEM;
	cache_get_stats(v->cache, &cs);
	cJSON_AddStringToObject(j, "adapter", v->plan.adapter);
	cJSON_AddStringToObject(j, "direction", v->plan.direction);
	add_backend(j, v);
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
	add_causes(j, v);
	cJSON_AddNumberToObject(j, "source_changes", (double)atomic_load(&v->stats.source_changes));
	cJSON_AddNumberToObject(j, "copies_written", (double)atomic_load(&v->stats.copies_written));
	cJSON_AddNumberToObject(j, "copy_bytes_written", (double)atomic_load(&v->stats.copy_bytes_written));
	cJSON_AddNumberToObject(j, "copy_bytes_read", (double)atomic_load(&v->stats.copy_bytes));
	cJSON_AddNumberToObject(j, "passthrough_opens", (double)atomic_load(&v->stats.passthrough_opens));
	cJSON_AddNumberToObject(j, "spliced_bytes", (double)atomic_load(&v->stats.spliced_bytes));
	cJSON_AddItemToObject(j, "cache", c);
	cJSON_AddNumberToObject(c, "hits", (double)cs.hits);
	cJSON_AddNumberToObject(c, "misses", (double)cs.misses);
	cJSON_AddNumberToObject(c, "evictions", (double)cs.evictions);
	cJSON_AddNumberToObject(c, "recycled", (double)cs.recycled);
	cJSON_AddNumberToObject(c, "bytes", (double)cs.bytes);
	cJSON_AddNumberToObject(c, "entries", (double)cs.entries);
	cJSON_AddNumberToObject(c, "max_bytes", (double)cs.max_bytes);
	cJSON_AddNumberToObject(c, "ahead_fills", (double)cs.ahead_fills);
	cJSON_AddNumberToObject(c, "ahead_hits", (double)cs.ahead_hits);
	cJSON_AddNumberToObject(c, "ahead_wasted", (double)cs.ahead_wasted);
	cJSON_AddNumberToObject(c, "ahead_bytes", (double)cs.ahead_bytes);
	cJSON_AddNumberToObject(c, "fresh_bytes", (double)cs.mem.fresh_bytes);
	cJSON_AddNumberToObject(c, "reused_bytes", (double)cs.mem.reused_bytes);
	cJSON_AddNumberToObject(c, "moved_bytes", (double)cs.mem.moved_bytes);
	cJSON_AddNumberToObject(c, "kept_bytes", (double)cs.mem.kept_bytes);
	view_readahead_stats(v, j);
	cJSON *log = cJSON_AddArrayToObject(j, "log");    /* its last lines */
	if (log)
		sd_log_recent(add_log_line, log);
	return 0;
}

char *view_stats_json(struct view *v)
{
	cJSON *j = cJSON_CreateObject();
	char *text = NULL;

	if (j && view_stats_add(v, j) == 0)
		text = cJSON_Print(j);
	cJSON_Delete(j);
	return text;
}
