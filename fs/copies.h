/*
 * copies.h — writing materialized copies in the background (copies.c).
 */
#ifndef SDAFS_COPIES_H
#define SDAFS_COPIES_H

#include <stdbool.h>
#include <stddef.h>

#include "view.h"

struct copies;

/* Attach the copies dir already holds and start the writer; with prefetch
 * every view file is wanted at once.  NULL when the thread cannot start. */
struct copies *copies_start(struct view *v, const char *dir, bool prefetch);
/* File has been read to its end: copy it, if it is not copied yet. */
void copies_want(struct copies *c, size_t file);
void copies_stop(struct copies *c);     /* NULL is fine */

#endif
