/*
 * options.h — the sdafs command line: what a user may say, parsed and
 * checked before anything is scanned or mounted (options.c).
 */
#ifndef SDAFS_OPTIONS_H
#define SDAFS_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include <fuse_lowlevel.h>

#include "gpu.h"
#include "plan.h"

/* Everything the command line said, as given. */
struct cmdline {
	char *src, *mountpoint;
	char *view, *adapter, *adapter_file, *dtype, *cache_size, *backend, *ep_rank, *ep_size;
	char *cpu;
	char *materialize_dir, *materialize_max;
	char *peft;
	char *log_file;         /* log=FILE */
	char *gpu_mem, *gpu_pinned;
	char *options_text;     /* every -o list, joined: for .sdafs-stats */
	char *readahead;
	unsigned max_threads;
	int direct_io, mpi, foreground, debug, help, version, inspect, json,
	    list_adapters, prefetch, allow_other, verify_copies, verbose;
};

/* Parse argv into c; what is left in args is for libfuse.  -1 after a
 * message on stderr. */
int options_parse(struct fuse_args *args, struct cmdline *c);
void options_free(struct cmdline *c);
void options_usage(FILE *out);

/* The view options and the cache size the command line asks for; -1 after
 * a message on stderr naming the option. */
int options_view(const struct cmdline *c, struct view_opts *o, uint64_t *cache);

/* materialize_dir and materialize_max: the directory must be one copies
 * can be trusted in (materialize_dir_open); *max_bytes is 0 without a
 * budget.  -1 after a message on stderr. */
int options_copies(const struct cmdline *c, uint64_t *max_bytes);

/* How CUDA should start (gpu_mem=, gpu_pinned=); -1 after a message. */
int options_gpu(const struct cmdline *c, struct gpu_config *g);

/* How far ahead of a sequential reader to convert (readahead=SIZE; 0: no
 * read-ahead); -1 after a message on stderr. */
int options_readahead(const struct cmdline *c, uint64_t *window);

/* MOUNTPOINT with every %r replaced by rank (malloc'ed; NULL: no memory). */
char *options_with_rank(const char *mnt, long rank);

#endif
