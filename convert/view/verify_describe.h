/*
 * verify_describe.h — verify's differences in words: headers compared
 * tensor by tensor, the index compared as JSON, bytes compared to the
 * first difference, and the report as text or JSON (verify_describe.c).
 * Only verify.c uses it.
 */
#ifndef SDAFS_VERIFY_DESCRIBE_H
#define SDAFS_VERIFY_DESCRIBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"
#include "strmap.h"
#include "verify.h"

/* Count a difference; keep it (with what, printf-style) while fewer than
 * VERIFY_KEEP are kept.  Thread-safe. */
void verify_add(struct verify_report *rep, const struct verify_diff *d, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * The directory's file (fd, size) holds a header other than the view's
 * file f: say how it differs.  When it is a valid safetensors header, h
 * and by_name get it (absolute offsets), so tensors can still be compared
 * by name; else h stays empty.  Errors only for reads that fail.
 */
int describe_header(struct verify_report *rep, uint32_t order, const struct units_file *f,
		    int fd, uint64_t size, struct st_header *h, struct strmap *by_name,
		    char *err);

/* The directory's index (got, n bytes) differs from the view's: how. */
void describe_index(struct verify_report *rep, uint32_t order, const struct units_file *f,
		    const char *got, size_t n);

/* The header entry a has the dtype and shape of tensor t. */
bool same_tensor(const struct st_tensor *a, const struct plan_tensor *t);

/* Unit u's bytes (want) against the directory's (got, n bytes read at
 * dir_off): a difference if any byte differs. */
void compare_bytes(struct verify_report *rep, uint32_t order, const struct units_file *f,
		   const struct unit *u, const unsigned char *want, const unsigned char *got,
		   size_t n, uint64_t dir_off);

/* Sort the differences by file and offset, make one of each tensor's, and
 * word the byte differences. */
void merge_diffs(struct verify_report *rep);

#endif
