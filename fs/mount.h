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

#endif
