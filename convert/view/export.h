/*
 * export.h — writing the files of one or more views into a directory, byte
 * for byte what a mount shows, with worker threads (sdafs convert).
 *
 * Each unit (units.h) is produced once and written at each of its places:
 * an unchanged source range with copy_file_range (no copy through user
 * memory; a reflink where the filesystem can), converted rows evaluated
 * into the worker's buffer and written from there.  Files are created new
 * and preallocated, so a full disk shows before anything is converted;
 * each file is synced as soon as its last unit is written.
 */
#ifndef SDAFS_EXPORT_H
#define SDAFS_EXPORT_H

#include <stdint.h>

#include "units.h"

/*
 * Write every file of us under the directory dirfd (making the trees'
 * subdirectories), with jobs workers sharing budget bytes of buffers.  0
 * only when every file and subdirectory is written and synced and the
 * source files are still those scanned; else a negative errno with a
 * message, and whatever was written stays for the caller to remove.
 */
int export_write(struct units *us, int dirfd, unsigned jobs, uint64_t budget,
		 struct units_progress *p, char *err);

#endif
