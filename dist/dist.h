/*
 * dist.h — one sdafs daemon per rank of an MPI job (-o mpi).
 *
 * Rank 0 scans the checkpoint and broadcasts it, so shared storage sees one
 * set of header reads per job instead of one per rank; each rank then shows
 * its own expert-parallel slice.  With prefetch, every tensor all ranks
 * share is read from storage by one rank and broadcast to the others.  Every
 * collective has a deadline: a rank that does not answer makes the others
 * exit with a message instead of waiting forever.
 *
 * dist/ is the MPI cooperation of the ranks of a job; it may use every room
 * of convert/, cache/ and gpu/, and only fs/ sits above it.
 */
#ifndef SDAFS_DIST_H
#define SDAFS_DIST_H

#include <stdbool.h>
#include <stdint.h>

#include "view.h"

struct dist {
	int rank, size;
	bool active;            /* MPI initialised */
	double timeout;         /* seconds any collective may take */
};

/* True when this build can run -o mpi. */
bool dist_available(void);

int dist_init(struct dist *d, int *argc, char ***argv, char *err);
void dist_finish(struct dist *d);

/* Rank 0 scans src and sends it; the others rebuild it without reading any
 * header.  Then every rank builds its view with its own EP slice. */
int dist_open_view(struct dist *d, struct view *v, const char *src,
		   struct view_opts *o, uint64_t cache_bytes, char *err);

/* Every rank says whether it is fine; 0 when all are, else -1 with a
 * message naming the first rank that is not. */
int dist_agree(struct dist *d, bool ok, char *err);

/* Read each shared tensor on one rank and broadcast it to all. */
int dist_prefetch(struct dist *d, struct view *v, char *err);

/* Abort the whole job (after a timeout or a lost rank). */
void dist_abort(struct dist *d);

/* What the launcher's environment says about this process, for %r and EP
 * slices without -o mpi: the first of OMPI_COMM_WORLD_RANK, PMI_RANK and
 * SLURM_PROCID that is set, and that launcher's size variable
 * (OMPI_COMM_WORLD_SIZE, PMI_SIZE, SLURM_NTASKS), as set, so that messages
 * can name what was seen. */
struct launcher_env {
	const char *rank_var, *size_var;        /* NULL: no launcher rank is set */
	const char *rank_text, *size_text;      /* their values; NULL: unset */
	long rank, size;                        /* -1: unset or not a number >= 0 */
};
void dist_env_launcher(struct launcher_env *e);

#endif
