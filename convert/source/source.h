/*
 * source.h — the scanned source checkpoint: its files and its tensors.
 *
 * A scan reads config.json, the index (if any) and the header of every
 * weight file, and nothing else: tensor data is reached later by absolute
 * offset through the open descriptors kept here.  Every name that comes from
 * the checkpoint (index entries) must be a plain file name inside the
 * source directory.
 *
 * convert/source/ owns what the checkpoint holds and reading it: the
 * directory scan (source.c), the safetensors header reader
 * (safetensors.c), the chunks of sharded saves (dcp.c), reading a tensor's
 * rows (source_read.c) and the MPI wire form of a scan (source_wire.c).  It
 * may use only convert/base; it knows nothing of plans, recipes or views.
 */
#ifndef SDAFS_SOURCE_H
#define SDAFS_SOURCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "dtype.h"
#include "perm.h"
#include "safetensors.h"
#include "strmap.h"

/* The files of a PEFT adapter directory, in both layouts. */
#define PEFT_WEIGHTS "adapter_model.safetensors"
#define PEFT_CONFIG "adapter_config.json"

struct src_file {
	char *name;             /* plain name, as the view shows it */
	char *path;             /* where it is, relative to the source directory */
	int fd;                 /* open read-only */
	uint64_t size;
	struct timespec mtime;  /* identity at scan time, to notice changes */
	struct timespec ctime;  /* the kernel sets it (touch cannot restore it); the view's times follow it */
	dev_t dev;
	ino_t ino;
	struct src_perm perm;   /* who may read it (perm.h) */
	bool is_weights;        /* a safetensors file whose tensors we use */
	cJSON *metadata;        /* its __metadata__, or NULL */
	atomic_bool damaged;    /* changed, replaced or deleted since the scan */
};

/* One piece of a tensor that a sharded (DCP) save split across files. */
struct src_chunk {
	uint32_t file;
	uint64_t offset, nbytes;                /* absolute, in that file */
	uint64_t start[ST_MAX_DIMS];            /* where it sits in the tensor */
	uint64_t shape[ST_MAX_DIMS];
};

struct src_tensor {
	char *name;
	enum sd_dtype dtype;
	int ndim;
	uint64_t shape[ST_MAX_DIMS];
	uint32_t file;          /* index into source.files (the first chunk's) */
	uint64_t offset;        /* absolute, in that file */
	uint64_t nbytes;        /* of the whole tensor */
	struct src_chunk *chunks;       /* NULL: stored whole at file/offset */
	uint32_t nchunks;
};

struct source {
	char *dir;
	int dirfd;
	char *real_dir;         /* dir with every link resolved, or NULL */
	struct src_perm dir_perm;       /* who may list and search dir */
	cJSON *config;          /* config.json, or NULL when absent */
	char *index_name;       /* the index file's name, or NULL */
	struct src_file *files; /* weight files first (in shard order), then the rest */
	size_t nfiles;
	size_t nweights;        /* files[0..nweights) are weight files */
	struct src_tensor *tensors;   /* grouped by file, in data order */
	size_t ntensors;
	struct strmap by_name;
	uint64_t header_bytes_read;   /* for the statistics: bytes of headers read */
	/* NeMo Automodel sharded (DCP) saves */
	bool dcp;               /* tensors are chunked across shard files */
	cJSON *file_index_map;  /* .hf_metadata/fqn_to_file_index_mapping.json */
	cJSON *dtype_map;       /* .hf_metadata/fqn_to_dtype_mapping.json */
	/* PEFT adapter directories: adapter_model.safetensors + adapter_config.json */
	bool peft;
	cJSON *peft_config;     /* adapter_config.json */
};

int source_scan(const char *dir, struct source *out, char *err);
void source_free(struct source *s);
/* Start s (zeroed by the caller) on directory dir: its name, descriptor,
 * real path and permission.  0, or a negative errno with a message. */
int source_open_dir(struct source *s, const char *dir, char *err);
/* Set f->perm from st (the fstat of f->fd) and the directories between
 * the file f->fd really is and s's directory (perm.c). */
void source_file_perm(const struct source *s, struct src_file *f, const struct stat *st);
/*
 * Is file f still the file that was scanned?  Compares size, mtime, ctime
 * and inode of the open descriptor and of the name in the directory (a file
 * truncated, rewritten, replaced by rename or deleted all fail; so do a
 * rewrite whose mtime was put back with touch -r, and a chmod or chown).
 * Once a file has failed it stays failed.  0, or -EIO with a message naming it;
 * *first (may be NULL) says whether this call found the change.
 */
int source_check(struct source *s, uint32_t f, bool *first, char *err);

/*
 * Read len bytes at absolute offset off of file f: 0, or -EIO with a
 * message naming the file when it no longer holds them (truncated or
 * changed under the mount).
 */
int source_pread(const struct source *s, uint32_t f, uint64_t off, void *dst,
		 size_t len, char *err);
/*
 * Rows [r0, r1) of dimension 0 of tensor t (a scalar has one row), as
 * stored, into dst.  A tensor stored in chunks (a sharded save) is put
 * together from its chunks.  *bytes_read (may be NULL) gets the number of
 * source bytes read.
 */
int source_read_rows(const struct source *s, uint32_t t, uint64_t r0, uint64_t r1,
		     void *dst, uint64_t *bytes_read, char *err);
/* Tensor t's name (s is a const struct source *): recipe_format's namer. */
const char *source_tensor_name(const void *s, uint32_t t);

/* Index of the tensor called name, or -1. */
long source_find(const struct source *s, const char *name);
/* True when name is a plain file name: no '/', not "." or "..", not empty. */
bool source_name_is_plain(const char *name);

#endif
