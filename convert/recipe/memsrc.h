/*
 * memsrc.h — source tensors held in memory, for code that evaluates recipes
 * without files: the backend check a mount runs, the unit tests and the
 * operation benchmark.
 *
 * A recipe knows its source tensors only by index, dtype and shape, and
 * reads them through an rx_reader, so a table of malloc'd arrays and a
 * reader that copies rows out of them is all it takes.  The bytes come from
 * a generator seeded by the caller: a run is repeatable, and a failure
 * found with one seed is found again.
 */
#ifndef SDAFS_MEMSRC_H
#define SDAFS_MEMSRC_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "recipe.h"

struct memsrc_tensor {
	char *name;
	enum sd_dtype dtype;
	int ndim;
	uint64_t shape[ST_MAX_DIMS];
	uint64_t nbytes;
};

struct memsrc {
	struct memsrc_tensor *tensors;  /* [0..ntensors) */
	size_t ntensors;
	unsigned char **bytes;  /* bytes[i]: tensor i's data, or NULL */
	size_t tensors_cap, bytes_cap;
	uint64_t rng;           /* the generator's state */
};

enum memsrc_fill {
	MEMSRC_RANDOM,          /* pseudo-random bytes */
	MEMSRC_NO_BYTES,        /* shape only: for plans, which read nothing,
				 * over tensors larger than a test should allocate */
};

/* An empty source whose generator starts from seed (any value). */
void memsrc_init(struct memsrc *m, uint64_t seed);
void memsrc_free(struct memsrc *m);

/*
 * Add a tensor of dtype dt and shape[0..ndim); name NULL calls it "t<index>".
 * Its index, or a negative errno with a message.  Its bytes, when it has
 * some, are m->bytes[index], for the caller to overwrite with special
 * values where random ones would not reach them.
 */
int memsrc_add(struct memsrc *m, const char *name, enum sd_dtype dt, int ndim,
	       const uint64_t *shape, enum memsrc_fill fill, char *err);

/* A recipe leaf reading tensor t of m (rx_src with its dtype and shape). */
int memsrc_src(struct memsrc *m, struct recipe *r, uint32_t t, char *err);

/*
 * rx_reader.rows over the memsrc in arg.  A read outside a tensor or of
 * one without bytes is an evaluator's bug, never data: -EIO naming it,
 * where a plain memcpy would hand over whatever lies beyond.
 */
int memsrc_read(void *arg, uint32_t tensor, uint64_t r0, uint64_t r1, void *dst,
		char *err);

/* Tensor t's name (arg is a struct memsrc *): recipe_format's namer. */
const char *memsrc_name(const void *arg, uint32_t t);

/* A reader of m's tensors (m must stay where it is while it is used). */
struct rx_reader memsrc_reader(struct memsrc *m);

/* The next 64 bits of m's generator (xorshift64), for callers that need
 * random values of their own: scales in a range, which case to pick. */
uint64_t memsrc_random(struct memsrc *m);

#endif
