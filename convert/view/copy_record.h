/*
 * copy_record.h — what ties a materialized copy to what it was made from.
 *
 * Everything a copy's bytes depend on is written out as a description: one
 * fact a line (the view file's name and size, the plan, a digest of its
 * header and recipes, and each source file's path and identity: device,
 * inode, size, mtime and ctime).  The copy is named by a hash of the
 * description.  The record, a small file written after the copy is whole
 * and on disk, holds the description, the copy's own identity as it was
 * once placed under its name, and a checksum of its bytes.
 *
 * Attaching a copy compares the record's description byte for byte with the
 * one the mount computes and the copy's identity with one fstat, so it costs
 * no read of the copy; any change to the copy since (a write, truncate,
 * chmod or rename moves its ctime) makes it refused.  The checksum needs a
 * whole read and is there for `sdafs --verify-copies`.
 */
#ifndef SDAFS_COPY_RECORD_H
#define SDAFS_COPY_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "view.h"

#define COPY_RECORD_MAX ((size_t)1 << 20)      /* larger is not ours */

/* A file's identity as the kernel keeps it: what no one can set back. */
struct copy_ident {
	uint64_t dev, ino, size;
	int64_t mtime_s, mtime_ns, ctime_s, ctime_ns;
};

void copy_ident_of(const struct stat *st, struct copy_ident *id);
bool copy_ident_equal(const struct copy_ident *a, const struct copy_ident *b);

/* A fast 64-bit checksum of a byte stream, the same however it is cut into
 * calls: four independent multiply-rotate lanes over 32-byte blocks.  It
 * finds damage (bit rot, a stray write by root), not an attacker. */
struct copy_sum {
	uint64_t lane[4];
	unsigned char tail[32];
	size_t ntail;
	uint64_t total;
};

void copy_sum_init(struct copy_sum *s);
void copy_sum_add(struct copy_sum *s, const void *bytes, size_t n);
uint64_t copy_sum_final(const struct copy_sum *s);

/* The description of view file `file` (malloc'ed text, every line ending
 * in '\n') and the key its copy is named by. */
int copy_describe(const struct view *v, size_t file, char **desc, uint64_t *key,
		  char *err);

/* The record of a copy: desc, then the copy's identity and checksum
 * (malloc'ed; NULL when out of memory). */
char *copy_record_text(const char *desc, const struct copy_ident *copy, uint64_t sum);

/*
 * Read a record's text (len bytes, need not end in NUL).  With want set, its
 * description must be exactly want.  0 and the copy's identity and
 * checksum; -ESTALE: a well-formed record of another description; -EBADMSG:
 * not a record.
 */
int copy_record_parse(const char *text, size_t len, const char *want,
		      struct copy_ident *copy, uint64_t *sum);

/* Call fn with each source file (its path and identity at description
 * time) a record's text names; stops at the first nonzero return, which it
 * returns.  -EBADMSG when a source line cannot be read. */
int copy_record_sources(const char *text, size_t len,
			int (*fn)(void *arg, const char *path, const struct copy_ident *id),
			void *arg);

#endif
