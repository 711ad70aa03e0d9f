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

/* Attach the copies dir already holds, tidy it (materialize_tidy, with
 * max_bytes as the budget, 0: none) and start the writer; with prefetch
 * every view file is wanted at once.  NULL (after a log line) when the
 * directory is refused or the thread cannot start. */
struct copies *copies_start(struct view *v, const char *dir, uint64_t max_bytes,
			    bool prefetch);
/* File has been read to its end: copy it, if it is not copied yet. */
void copies_want(struct copies *c, size_t file);
void copies_stop(struct copies *c);     /* NULL is fine */

/* sdafs --verify-copies: read every copy dir holds for v against its
 * record and say, one line a file, whether it is whole, missing, refused
 * or damaged.  The exit status: 1 when any was refused or damaged. */
int copies_verify(struct view *v, const char *dir, FILE *out);

#endif
