/*
 * mount.h — scanning, mounting and serving one view (mount.c).
 */
#ifndef SDAFS_MOUNT_H
#define SDAFS_MOUNT_H

#include <fuse_lowlevel.h>

#include "options.h"

/* Open the view c asks for and mount and serve it until unmounted (under
 * -o mpi, one rank of the job), or print it with --inspect.  The exit
 * status: 0, or 1 after a message on stderr. */
int mount_run(struct cmdline *c, struct fuse_args *args);

/* Shared with sdafs convert and verify (commands.c), which open a view the
 * same way without mounting it.  The open-file limit raised to its hard
 * limit (a checkpoint of many shards keeps one descriptor per shard). */
void raise_fd_limit(void);
/* backend=: whether v converts on the GPU (v->gpu, and why not in
 * v->backend_note); -1 after a message when backend=cuda cannot be had.
 * In the process that converts only (CUDA does not survive a fork). */
struct view;
int choose_backend(const struct cmdline *c, struct view *v);
/* cpu=, else SDAFS_CPU, else auto: the CPU kernel path (kernels.h); -1
 * after a message when the CPU lacks it. */
int choose_cpu(const struct cmdline *c);

#endif
