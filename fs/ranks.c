/*
 * ranks.c — which expert-parallel slice a mount shows, and what %r in its
 * mount point becomes (see ranks.h).
 *
 * The one idea: each of the two numbers has one source, decided in one
 * place.  The rank is ep_rank= when given, else the launcher's rank
 * variable; the size is ep_size=N when given, else (ep_size=auto, or %r
 * with no ep_size) the size variable of the same launcher.  Every message
 * names the variables that were actually seen, with their values, so a
 * user under srun or mpirun can tell what sdafs read.
 */
#include "ranks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "number.h"

#define LAUNCHER_RANKS "OMPI_COMM_WORLD_RANK, PMI_RANK or SLURM_PROCID"

/* A number >= min from the command line; -1 when it is not one. */
static long option_number(const char *s, long min)
{
	long v = sd_whole_number(s);

	return v < min ? -1 : v;
}

/* Parse ep_rank= and ep_size= as given: *rank -1 when absent, *size 0 when
 * absent, -1 for auto. */
static int parse_ep(const struct cmdline *c, long *rank, long *size)
{
	*rank = -1;
	*size = 0;
	if (c->ep_rank && (*rank = option_number(c->ep_rank, 0)) < 0) {
		fprintf(stderr, "sdafs: ep_rank=%s: expected a rank, a number >= 0\n", c->ep_rank);
		return -1;
	}
	if (c->ep_size && !strcmp(c->ep_size, "auto"))
		*size = -1;
	else if (c->ep_size && (*size = option_number(c->ep_size, 1)) < 0) {
		fprintf(stderr, "sdafs: ep_size=%s: expected a number of ranks >= 1, or auto (the launcher's)\n",
			c->ep_size);
		return -1;
	}
	return 0;
}

/* The rank when ep_rank= is not given: the launcher's. */
static int launcher_rank(const struct cmdline *c, const struct launcher_env *l,
			 bool has_r, long *rank)
{
	if (!l->rank_var) {
		if (has_r && !c->ep_size)
			fprintf(stderr, "sdafs: %%r in %s is the rank, but none of " LAUNCHER_RANKS
				" is set; run under mpirun or srun, use -o mpi, or give ep_rank=R\n",
				c->mountpoint);
		else if (!strcmp(c->ep_size, "auto"))
			fprintf(stderr, "sdafs: ep_size=auto takes the rank and the number of ranks from the launcher, but none of "
				LAUNCHER_RANKS " is set; give ep_rank=R,ep_size=N\n");
		else
			fprintf(stderr, "sdafs: ep_size=%s without ep_rank takes the rank from the launcher, but none of "
				LAUNCHER_RANKS " is set; give ep_rank=R\n", c->ep_size);
		return -1;
	}
	if (l->rank < 0) {
		fprintf(stderr, "sdafs: %s=%s is not a rank (a number >= 0)\n", l->rank_var, l->rank_text);
		return -1;
	}
	*rank = l->rank;
	return 0;
}

/* The size when ep_size=N is not given: the launcher's. */
static int launcher_size(const struct launcher_env *l, long *size)
{
	if (!l->rank_var) {
		fprintf(stderr, "sdafs: ep_size=auto is the launcher's number of ranks, but none of "
			"OMPI_COMM_WORLD_SIZE, PMI_SIZE or SLURM_NTASKS is set; give ep_size=N\n");
		return -1;
	}
	if (!l->size_text) {
		fprintf(stderr, "sdafs: %s=%s is set but %s is not, so the number of ranks is unknown; give ep_size=N\n",
			l->rank_var, l->rank_text, l->size_var);
		return -1;
	}
	if (l->size < 1) {
		fprintf(stderr, "sdafs: %s=%s is not a number of ranks (>= 1); give ep_size=N\n",
			l->size_var, l->size_text);
		return -1;
	}
	*size = l->size;
	return 0;
}

/* Where a number came from, for messages: "ep_rank=3" or "SLURM_PROCID=3". */
static void origin(char *buf, size_t len, bool given, const char *opt,
		   const char *var, long v)
{
	snprintf(buf, len, "%s=%ld", given ? opt : var, v);
}

int ranks_resolve(struct cmdline *c, struct view_opts *vo)
{
	bool has_r = c->mountpoint && strstr(c->mountpoint, "%r");
	struct launcher_env l;
	long rank, size;

	if (parse_ep(c, &rank, &size) < 0)
		return -1;
	if (c->mpi) {           /* MPI says rank and size; ep_size=N overrides the size */
		if (rank >= 0 && size <= 0) {
			fprintf(stderr, "sdafs: ep_rank=%s with -o mpi: each rank is its MPI rank; give ep_size=N alone, or no ep_ option\n",
				c->ep_rank);
			return -1;
		}
		vo->ep_rank = rank;
		vo->ep_size = size > 0 ? size : 0;
		return 0;
	}
	if (rank < 0 && size == 0 && !has_r)
		return 0;       /* every expert */
	if (rank >= 0 && size == 0 && !has_r) {
		fprintf(stderr, "sdafs: ep_rank=%s needs ep_size=N (or ep_size=auto under a launcher)\n",
			c->ep_rank);
		return -1;
	}
	dist_env_launcher(&l);
	if (rank < 0 && launcher_rank(c, &l, has_r, &rank) < 0)
		return -1;
	if (size <= 0 && launcher_size(&l, &size) < 0)
		return -1;
	if (rank >= size) {
		char r[96], s[96];
		origin(r, sizeof(r), c->ep_rank, "ep_rank", l.rank_var, rank);
		origin(s, sizeof(s), c->ep_size && strcmp(c->ep_size, "auto"), "ep_size", l.size_var, size);
		fprintf(stderr, "sdafs: rank %ld (%s) is not below the number of ranks %ld (%s)\n",
			rank, r, size, s);
		return -1;
	}
	vo->ep_rank = rank;
	vo->ep_size = size;
	vo->ep_from_rank = !c->ep_rank && !c->ep_size;  /* only %r asked for it */
	if (has_r) {
		char *m = options_with_rank(c->mountpoint, rank);
		if (!m)
			return -1;
		free(c->mountpoint);
		c->mountpoint = m;
	}
	return 0;
}
