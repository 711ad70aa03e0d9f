/*
 * err.h — the one error convention of sdafs.
 *
 * Every fallible function returns 0 on success or a negative errno, and
 * writes a human-readable message into a caller-supplied buffer of
 * SD_ERRLEN bytes.  Messages name the file, the tensor and the problem in
 * words a user can act on; callers add context by prefixing, never by
 * overwriting.
 *
 * convert/base/ is the floor every other room stands on: this error
 * convention, growable arrays (grow.h), a string map (strmap.h), the
 * element types and their bit-exact casts (dtype.h, dtype_scalar.h), whole
 * reads and writes (io.h) and the daemon's log (log.h).  It uses nothing of
 * sdafs.
 */
#ifndef SDAFS_ERR_H
#define SDAFS_ERR_H

#include <stddef.h>

#define SD_ERRLEN 1024

/* Format a message into err (may be NULL) and return code (a negative errno). */
int sd_err(char *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix an existing message in err with "fmt...: ", keeping the old text. */
void sd_err_prefix(char *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
