/*
 * units.h — every byte of one or more views, cut into work units, for the
 * tools that write or check them without a mount (export.c, verify.c).
 *
 * A unit is a run of bytes with one origin: header or index bytes in
 * memory, a range of a source file (a tensor that is not converted, or a
 * file passed through), or rows of a converted tensor, evaluated by the
 * same code a mount's read uses (view_convert) but straight into the
 * worker's own buffer, without the cache.  Units are listed file by file,
 * front to back, and workers take them in that order, so reads and writes
 * stay nearly sequential.  A unit may have several places: with several
 * trees (one per expert-parallel rank), a tensor every rank holds is one
 * unit placed in each rank's file, so its source is read once.
 *
 * Workers share a memory budget (workers.c): a worker holds its buffers and
 * its evaluator's arena against it, and one that needs more than is left
 * gives back all it holds and waits, so memory stays near the budget
 * whatever the number of workers and the size of the checkpoint.
 */
#ifndef SDAFS_UNITS_H
#define SDAFS_UNITS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "view.h"

/* Source ranges are cut into pieces of this size: big enough that a
 * system call per piece costs nothing, small enough to share out. */
#define UNIT_PIECE ((uint64_t)8 << 20)

/* One tree of view files: a plan and its layout over the view's source,
 * in a subdirectory of the output ("" for the output itself). */
struct units_tree {
	const struct plan *plan;
	const struct layout *layout;
	char dir[32];
};

struct units_file {
	const struct vfile *vf;
	uint32_t tree;
	char *path;             /* "dir/name", or "name" */
	uint64_t size;
	uint32_t nunits;        /* units with a place in it */
};

enum unit_kind { UNIT_MEM, UNIT_SOURCE, UNIT_ROWS };

#define UNIT_NO_PLACE UINT32_MAX

/* Where a unit's bytes go: file and offset; the next place, or UNIT_NO_PLACE. */
struct unit_place {
	uint32_t file, next;
	uint64_t off;
};

struct unit {
	enum unit_kind kind;
	uint64_t len;
	const char *mem;                        /* UNIT_MEM */
	uint32_t src_file;                      /* UNIT_SOURCE: file and offset */
	uint64_t src_off;
	const struct plan_tensor *tensor;       /* whose bytes (NULL: a header,
						 * the index, another file) */
	uint64_t tensor_off;                    /* where in the tensor they start */
	uint64_t r0, r1;                        /* UNIT_ROWS: rows of its recipe */
	uint32_t first, last, nplaces;          /* places */
};

struct units {
	struct view *view;      /* reads the source and converts, for every tree */
	struct unit *u;
	size_t n, cap;
	struct unit_place *places;
	size_t nplaces, placecap;
	struct units_file *files;
	size_t nfiles, filecap;
	uint64_t bytes;         /* of every file of every tree */
};

/*
 * The units of trees[0..ntrees) over view v (whose source every tree's plan
 * was made from).  A tensor of a later tree with the name, shape, dtype and
 * recipe of one in tree 0 (or the same unchanged source tensor), and a file
 * passed through, are placed from tree 0's units.
 */
int units_build(struct units *us, struct view *v, const struct units_tree *trees,
		size_t ntrees, char *err);
void units_free(struct units *us);

/* --- running them (workers.c) ------------------------------------------------ */

/* Shared with whoever shows progress; stop may be set from a signal handler. */
struct units_progress {
	_Atomic uint64_t done;                  /* bytes of the files so far */
	uint64_t total;
	_Atomic(const char *) current;          /* path of the file being worked on */
	atomic_bool stop;
};

struct units_pool;

/* One worker: its two buffers and what it holds of the budget, and a pipe
 * for splicing (export.c; made when first needed, closed with the worker). */
struct unit_worker {
	struct units_pool *pool;
	struct units *us;
	char *buf[2];
	size_t cap[2];
	uint64_t held;
	int pipe[2];
};

/* Do unit i (0, or a negative errno with a message). */
typedef int (*unit_fn)(struct unit_worker *w, size_t i, void *arg, char *err);

/*
 * Run fn on every unit with jobs threads sharing budget bytes of buffers.
 * Stops at the first error (its message in err) or when p->stop is set
 * (-EINTR).  p->done counts each unit's bytes times its places.
 */
int units_run(struct units *us, unsigned jobs, uint64_t budget, unit_fn fn,
	      void *arg, struct units_progress *p, char *err);

/*
 * Make w's buffers at least len0 and len1 bytes (0: as they are), with
 * room for converting len0 bytes when converts is set.  Call before the
 * unit puts anything in them: a worker that must wait for room gives back
 * its buffers first.
 */
int unit_reserve(struct unit_worker *w, size_t len0, size_t len1, bool converts,
		 char *err);

/* The bytes of unit i: its memory, or its source range read into buffer 0,
 * or its rows converted into buffer 0. */
int unit_bytes(struct unit_worker *w, size_t i, const char **out, char *err);

#endif
