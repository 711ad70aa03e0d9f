/*
 * verify.h — comparing a directory with a view, file by file, header by
 * header and tensor by tensor (sdafs verify).
 *
 * The view's bytes are made as export.c makes them (units.h: the same
 * units, the same workers, the same evaluation) and compared with the
 * directory's instead of written.  Tensors are compared by name: where a
 * file's header differs, each tensor's bytes are looked for where that
 * header puts them, so a file with its tensors in another order reports
 * the order once and every tensor whose bytes are right passes.
 */
#ifndef SDAFS_VERIFY_H
#define SDAFS_VERIFY_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "units.h"

enum verify_kind {
	VD_MISSING,             /* a file of the view is not there */
	VD_EXTRA,               /* something there is not in the view */
	VD_NOT_FILE,            /* not a regular file */
	VD_SIZE,
	VD_HEADER,              /* a safetensors header */
	VD_INDEX,               /* the index's JSON */
	VD_TENSOR,              /* a tensor's bytes */
	VD_BYTES,               /* bytes of another file */
};

struct verify_diff {
	enum verify_kind kind;
	uint32_t order;         /* the file's place in the view (extra: after) */
	char *file;
	char *tensor;           /* or NULL */
	uint64_t offset;        /* VD_TENSOR: in the tensor; VD_BYTES: in the file */
	uint64_t file_offset;
	uint64_t count;         /* VD_TENSOR, VD_BYTES: bytes that differ */
	unsigned char got, want;        /* and the first of them, there and expected */
	char *what;             /* the difference in words */
};

#define VERIFY_KEEP 1000        /* differences kept; more are only counted */

struct verify_report {
	struct verify_diff *diffs;
	size_t n, cap;
	size_t total;           /* every difference found */
	uint64_t bytes_compared;
	size_t files;           /* files of the view */
	pthread_mutex_t mu;
};

/*
 * Compare the files of us (one tree) with the directory dirfd, with jobs
 * workers sharing budget bytes of buffers.  Differences go to rep (zeroed
 * here); an error (a source that cannot be read, a file of the directory
 * that cannot be) is a negative errno with a message.
 */
int verify_dir(struct units *us, int dirfd, unsigned jobs, uint64_t budget,
	       struct units_progress *p, struct verify_report *rep, char *err);
void verify_report_free(struct verify_report *rep);

/* The first max differences, one line each ("FILE: what"). */
void verify_print(const struct verify_report *rep, FILE *out, size_t max);
/* The report as JSON (caller frees), with src and dir named. */
char *verify_json(const struct verify_report *rep, const char *src, const char *dir);

#endif
