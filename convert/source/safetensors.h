/*
 * safetensors.h — reading and validating a safetensors header.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * JSON, then the data section.  Only the header is ever read here; the data
 * is reached later by absolute offset.  Everything in the header is treated
 * as hostile: every rule the format has is checked, and every size is
 * bounded before it is used.
 */
#ifndef SDAFS_SAFETENSORS_H
#define SDAFS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "dtype.h"

#define ST_MAX_HEADER   100000000ull  /* the format's own cap: 100 MB  */
#define ST_MAX_TENSORS  10000000u     /* per file                       */
#define ST_MAX_NAME     4096          /* bytes in one tensor name       */

struct st_tensor {
	char *name;
	enum sd_dtype dtype;
	int ndim;                       /* 0 for a scalar */
	uint64_t shape[ST_MAX_DIMS];
	uint64_t offset;                /* absolute byte offset in the file */
	uint64_t nbytes;
};

struct st_header {
	uint64_t header_len;            /* the JSON length N */
	uint64_t data_start;            /* 8 + N */
	uint64_t file_size;
	size_t ntensors;
	struct st_tensor *tensors;      /* in data-offset order */
	cJSON *metadata;                /* "__metadata__" object or NULL; owned */
};

/*
 * Read and validate the header of the open file fd whose size is file_size.
 * what names the file in messages.  On error *out is left empty.
 */
int st_read_header(int fd, uint64_t file_size, const char *what,
		   struct st_header *out, char *err);

/*
 * Validate a header already in memory: json/len is the JSON text (not NUL
 * terminated), file_size the size of the whole file it came from.  Used by
 * st_read_header and by the fuzzer.
 */
int st_parse_header(const char *json, size_t len, uint64_t file_size,
		    const char *what, struct st_header *out, char *err);

void st_header_free(struct st_header *h);

/*
 * Product of shape[0..ndim) times elem; -EOVERFLOW (with message) when it
 * does not fit in 63 bits.
 */
int st_shape_bytes(const uint64_t *shape, int ndim, size_t elem,
		   uint64_t *out, const char *what, char *err);

#endif
