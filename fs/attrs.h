/*
 * attrs.h — the times of view files and the mode and times of the view's
 * directory, taken from the source (attrs.c).
 */
#ifndef SDAFS_ATTRS_H
#define SDAFS_ATTRS_H

#include <stddef.h>
#include <sys/stat.h>

#include "fs.h"

/* The root directory: the source directory's write bits (its owner and
 * read bits are set already) and times. */
void attr_root(const struct sdafs *fs, struct stat *st);
/* View file `file`: the newest mtime and ctime of the source files it is
 * made from (atime = mtime). */
void attr_file_times(const struct sdafs *fs, size_t file, struct stat *st);

#endif
