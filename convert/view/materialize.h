/*
 * materialize.h — fully converted view files kept on a local disk.
 *
 * A view file's copy is named by a key that hashes everything its bytes
 * depend on: the identity (size, mtime, inode) of each source file it reads,
 * the adapter, direction, dtype and expert range, and the copy format.  A
 * source that changes gets a new key, so a stale copy is never used.  Copies
 * are written to a temporary name and renamed into place when complete, so
 * a copy that exists is whole.
 */
#ifndef SDAFS_MATERIALIZE_H
#define SDAFS_MATERIALIZE_H

#include <stddef.h>

#include "view.h"

/* The path of file's copy under dir (buf of at least 4096 bytes). */
void materialize_path(const struct view *v, const char *dir, size_t file,
		      char *buf, size_t len);

/* Open file's complete copy under dir if there is one (and make view_read
 * serve it).  1 when found, 0 when not, negative errno on error. */
int materialize_attach(struct view *v, const char *dir, size_t file, char *err);

/* Write file's copy under dir (converting what it must), then attach it. */
int materialize_write(struct view *v, const char *dir, size_t file, char *err);

#endif
