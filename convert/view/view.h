/*
 * view.h — a mounted view: source, plan, layout and cache, and the read path.
 *
 * view_read() turns (file, offset, length) into a list of segments without
 * copying: header and index bytes point into memory, unchanged tensors
 * point at the source file (the caller preads or splices them), and
 * converted tensors point into pinned cache chunks, converting only the
 * chunks the range touches.  Knows nothing of FUSE, so --inspect, the tests
 * and the benchmarks use it directly.
 *
 * convert/view/ owns what a view is made of once planned: the files and
 * their bytes (layout.c), the read path (view.c) and materialized copies
 * (materialize.c).  It may use every other room of convert/, the chunk
 * cache (cache/) and the CUDA backend (gpu/); the FUSE layer (fs/) and the
 * MPI cooperation (dist/) sit above it.
 */
#ifndef SDAFS_VIEW_H
#define SDAFS_VIEW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "layout.h"
#include "plan.h"
#include "readahead.h"
#include "source.h"

struct cache;
struct cache_chunk;

/* Why a read (or an open) of a view file failed: .sdafs-stats counts each
 * failed request once in read_errors and once under its cause. */
enum view_fault {
	VIEW_FAULT_SOURCE_CHANGED,      /* a source file changed, moved or vanished */
	VIEW_FAULT_SOURCE_UNREADABLE,   /* a source or copy ended early or gave EIO */
	VIEW_FAULT_CONVERSION,          /* converting a chunk failed */
	VIEW_FAULT_NO_MEMORY,
	VIEW_FAULT_COUNT
};

struct view_stats {
	_Atomic uint64_t source_bytes;          /* tensor and pass-through bytes read */
	_Atomic uint64_t chunks_converted;
	_Atomic uint64_t bytes_converted;
	_Atomic uint64_t bytes_converted_cuda;  /* of those, by the GPU */
	_Atomic uint64_t gpu_fallbacks;         /* chunks the GPU declined (gpu_declined) */
	_Atomic uint64_t reads;
	_Atomic uint64_t read_errors;
	_Atomic uint64_t read_error_causes[VIEW_FAULT_COUNT];
	_Atomic uint64_t source_changes;        /* source files found changed */
	_Atomic uint64_t copy_bytes;    /* read from materialized copies */
	_Atomic uint64_t copies_written;
	_Atomic uint64_t copy_bytes_written;    /* bytes of copies written so far */
	_Atomic uint64_t passthrough_opens;     /* opens the kernel serves itself */
	_Atomic uint64_t spliced_bytes; /* source bytes replied without a copy here */
};

struct view {
	struct source src;
	struct plan plan;
	struct layout layout;
	struct cache *cache;
	struct view_opts opts;
	struct view_stats stats;
	bool gpu;               /* convert on the GPU where it can (gpu.h) */
	char backend_note[SD_ERRLEN];   /* why the CPU converts, when gpu is false */
	struct readahead *ra;   /* NULL: no read-ahead (readahead.h) */
};

/* One piece of a read: memory (mem != NULL) or source bytes (fd, off). */
struct view_seg {
	const char *mem;
	int fd;
	uint64_t off;
	size_t len;
	bool copy;              /* fd is a materialized copy, not a source */
};

/* A cache chunk a read holds, and how many of its bytes the read hands out. */
struct view_pin {
	struct cache_chunk *chunk;
	size_t bytes;
};

/* Reusable per-thread state of reads: segments and the pins they hold. */
struct view_io {
	struct view_seg *segs;
	size_t nseg, segcap;
	struct view_pin *pins;
	size_t npin, pincap;
};

/* Scan src, choose the adapter, plan and lay out.  No data is read. */
int view_open(struct view *v, const char *src, const struct view_opts *o,
	      uint64_t cache_bytes, char *err);
/* The same from a source already scanned (or received from another rank);
 * the view takes it over, also on error. */
int view_build(struct view *v, struct source *s, const struct view_opts *o,
	       uint64_t cache_bytes, char *err);
void view_close(struct view *v);

/* Segments for bytes [off, off+len) of file (clamped at its end); the
 * total of the segment lengths is the number of bytes available. */
int view_read(struct view *v, size_t file, uint64_t off, size_t len,
	      struct view_io *io, char *err);
/*
 * Are the source files of view file `file` still the ones scanned?  view_read
 * checks before it reads; callers check again after reading source bytes
 * and before replying, so a file changed in between is never served mixed.
 * 0, or -EIO with a message; *first says this call found the change.
 */
int view_check_sources(struct view *v, size_t file, bool *first, char *err);

/* Count one failed read or open.  view_read and view_seg_pread count
 * their own failures; a caller counts only what fails outside them. */
void view_count_failure(struct view *v, enum view_fault why);

/*
 * Rows [r0, r1) of converted tensor t into dst, as a read of the view
 * converts them (on the GPU when the view uses one and it takes the
 * recipe, else on the CPU), counted in the statistics.  t may belong to
 * another plan over the same source (one expert-parallel rank of many).
 * What view_read's cache fills call, and tools that want the bytes once,
 * in their own buffer, without the cache (export.c, verify.c).
 */
int view_convert(struct view *v, const struct plan_tensor *t, uint64_t r0,
		 uint64_t r1, void *dst, char *err);

/* Release the pins of the last view_read on io (after replying). */
void view_io_release(struct view *v, struct view_io *io);
void view_io_free(struct view_io *io);

/* Read a source segment into dst: -EIO with a message naming the file if
 * the file no longer holds the bytes (truncated under the mount), counted
 * as a failed read. */
int view_seg_pread(struct view *v, const struct view_seg *seg, void *dst,
		   char *err);
/* For a caller that moved a source segment's bytes itself (splice): n
 * bytes of it arrived (or -errno); 0 and counted when all did, else -EIO
 * as view_seg_pread says it. */
int view_seg_done(struct view *v, const struct view_seg *seg, ssize_t n, char *err);

/* Convert chunk key (tensor << 32 | chunk index) of view v into buf: the
 * cache's fill function, for the read path and the read-ahead. */
int view_fill_chunk(void *v, uint64_t key, void *buf, size_t len, char *err);
/* The first slot of weight file f that ends after offset off. */
size_t view_first_slot(const struct view *v, const struct vfile *f, uint64_t off);

/* Copy every segment of io into dst (for callers that want flat bytes). */
int view_io_gather(struct view *v, const struct view_io *io, void *dst,
		   char *err);

/* The statistics as a JSON text (caller frees), with the last lines of
 * the log (log.h). */
char *view_stats_json(struct view *v);
/* The same statistics added to the object j (for a caller that adds more);
 * -ENOMEM when j could not take them. */
int view_stats_add(struct view *v, cJSON *j);

#endif
