/*
 * ranks.h — the expert-parallel slice of a mount and %r in its mount point,
 * from ep_rank=/ep_size= or the launcher's environment (ranks.c).
 */
#ifndef SDAFS_RANKS_H
#define SDAFS_RANKS_H

#include "options.h"

/*
 * Settle vo->ep_rank/ep_size from the command line and the launcher:
 * the rank is ep_rank= or else OMPI_COMM_WORLD_RANK, PMI_RANK, SLURM_PROCID
 * (the first set); the size is ep_size=N, or with ep_size=auto or %r (and
 * no ep_size) that launcher's OMPI_COMM_WORLD_SIZE, PMI_SIZE or
 * SLURM_NTASKS.  Without -o mpi every %r in c->mountpoint is replaced by
 * the rank.  With -o mpi only the options are checked (MPI gives the rank;
 * vo->ep_rank -1 means "this MPI rank").  0, or -1 after a message.
 */
int ranks_resolve(struct cmdline *c, struct view_opts *vo);

#endif
