/*
 * options.h — the sdafs command line: what a user may say, parsed and
 * checked before anything is scanned or mounted (options.c).
 */
#ifndef SDAFS_OPTIONS_H
#define SDAFS_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include <fuse_lowlevel.h>

#include "plan.h"

/* Everything the command line said, as given. */
struct cmdline {
	char *src, *mountpoint;
	char *view, *adapter, *adapter_file, *dtype, *cache_size, *backend, *ep_rank, *ep_size;
	char *cpu;
	char *materialize_dir;
	char *peft;
	unsigned max_threads;
	int direct_io, mpi, foreground, debug, help, version, inspect, json,
	    list_adapters, prefetch, allow_other;
};

/* Parse argv into c; what is left in args is for libfuse.  -1 after a
 * message on stderr. */
int options_parse(struct fuse_args *args, struct cmdline *c);
void options_free(struct cmdline *c);
void options_usage(FILE *out);

/* The view options and the cache size the command line asks for; -1 after
 * a message on stderr naming the option. */
int options_view(const struct cmdline *c, struct view_opts *o, uint64_t *cache);

/* MOUNTPOINT with every %r replaced by rank (malloc'ed; NULL: no memory). */
char *options_with_rank(const char *mnt, long rank);
/* %r without -o mpi: the rank comes from the launcher's environment, and so
 * does the EP slice unless one was given.  False after a message. */
bool options_expand_rank(struct cmdline *c, struct view_opts *vo);

#endif
