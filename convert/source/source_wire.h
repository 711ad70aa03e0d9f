/*
 * source_wire.h — a scanned source as bytes, so one rank scans and the
 * others rebuild it.
 *
 * In a multi-rank job only rank 0 reads config.json, the index and the
 * headers; the others get this blob and only open and stat the files (to
 * read tensor data later and to check they see the same files).
 */
#ifndef SDAFS_SOURCE_WIRE_H
#define SDAFS_SOURCE_WIRE_H

#include <stddef.h>

#include "source.h"

/* Serialize s into a malloc'ed buffer. */
int source_pack(const struct source *s, char **out, size_t *len, char *err);

/* Rebuild a source from a packed blob: opens the files in s->dir (which may
 * be a different path to the same directory), checks each has the size and
 * mtime the packing rank saw, reads no header. */
int source_unpack(const char *blob, size_t len, const char *dir,
		  struct source *out, char *err);

#endif
