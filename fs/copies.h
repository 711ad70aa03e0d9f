/*
 * copies.h — writing materialized copies in the background (copies.c).
 */
#ifndef SDAFS_COPIES_H
#define SDAFS_COPIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "view.h"

struct copies;

/* What the writer was asked for and has done (files that were copied by an
 * earlier mount count as done from the start). */
struct copy_progress {
	uint64_t files_total, files_done, errors;
	uint64_t bytes_total, bytes_done;
	uint64_t bytes_attached;        /* of bytes_done, copies found at start */
	double bytes_per_second;        /* of the bytes this mount wrote */
	bool done;                      /* nothing waiting, nothing being written */
};

/* Attach the copies dir already holds, tidy it (materialize_tidy, with
 * max_bytes as the budget, 0: none) and start the writer; with prefetch
 * every view file is wanted at once.  NULL (after a log line) when the
 * directory is refused or the thread cannot start. */
struct copies *copies_start(struct view *v, const char *dir, uint64_t max_bytes,
			    bool prefetch);
/* File has been read to its end: copy it, if it is not copied yet. */
void copies_want(struct copies *c, size_t file);
void copies_stop(struct copies *c);     /* NULL is fine */
void copies_progress(struct copies *c, struct copy_progress *out);

/* sdafs --verify-copies: read every copy dir holds for v against its
 * record and say, one line a file, whether it is whole, missing, refused
 * or damaged.  The exit status: 1 when any was refused or damaged. */
int copies_verify(struct view *v, const char *dir, FILE *out);

#endif
