/*
 * dist.c — MPI cooperation between the daemons of a job (see dist.h).
 *
 * Collectives are started non-blocking and polled against a deadline, so a
 * rank that died or hangs turns into a clear message and MPI_Abort rather
 * than a job that never mounts.  Without MPI at build time, the same calls
 * say so.
 */
#include "dist.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "number.h"
#include "source_wire.h"

void dist_env_launcher(struct launcher_env *e)
{
	/* The rank's variable decides the launcher; its size is that launcher's. */
	static const char *const vars[][2] = {
		{ "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE" },
		{ "PMI_RANK", "PMI_SIZE" },
		{ "SLURM_PROCID", "SLURM_NTASKS" },
	};

	memset(e, 0, sizeof(*e));
	e->rank = e->size = -1;
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *r = getenv(vars[i][0]);
		if (!r)
			continue;
		e->rank_var = vars[i][0];
		e->size_var = vars[i][1];
		e->rank_text = r;
		e->size_text = getenv(vars[i][1]);
		e->rank = sd_whole_number(r);
		e->size = sd_whole_number(e->size_text);
		return;
	}
}

#ifndef HAVE_MPI

bool dist_available(void) { return false; }

int dist_init(struct dist *d, int *argc, char ***argv, char *err)
{
	(void)argc, (void)argv;
	memset(d, 0, sizeof(*d));
	return sd_err(err, -ENOTSUP, "-o mpi: this sdafs was built without MPI (install libopenmpi-dev and rebuild)");
}

void dist_finish(struct dist *d) { (void)d; }
void dist_abort(struct dist *d) { (void)d; exit(1); }

int dist_open_view(struct dist *d, struct view *v, const char *src,
		   struct view_opts *o, uint64_t cache_bytes, char *err)
{
	(void)d, (void)v, (void)src, (void)o, (void)cache_bytes;
	return sd_err(err, -ENOTSUP, "built without MPI");
}

int dist_agree(struct dist *d, bool ok, char *err)
{
	(void)d, (void)err;
	return ok ? 0 : -1;
}

int dist_prefetch(struct dist *d, struct view *v, char *err)
{
	(void)d, (void)v;
	return sd_err(err, -ENOTSUP, "built without MPI");
}

#else
#include <mpi.h>

#define PIECE ((size_t)1 << 30)     /* MPI counts are ints */

bool dist_available(void) { return true; }

int dist_init(struct dist *d, int *argc, char ***argv, char *err)
{
	int provided;

	memset(d, 0, sizeof(*d));
	d->timeout = 120;
	const char *t = getenv("SDAFS_MPI_TIMEOUT");
	if (t && atof(t) > 0)
		d->timeout = atof(t);
	if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
		return sd_err(err, -EIO, "-o mpi: MPI_Init failed (run under mpirun or srun)");
	d->active = true;
	MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
	MPI_Comm_size(MPI_COMM_WORLD, &d->size);
	return 0;
}

void dist_finish(struct dist *d)
{
	if (d->active)
		MPI_Finalize();
	d->active = false;
}

void dist_abort(struct dist *d)
{
	if (d->active)
		MPI_Abort(MPI_COMM_WORLD, 1);
	exit(1);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Wait for a non-blocking collective, at most the job's timeout. */
static int wait_for(struct dist *d, MPI_Request *req, const char *what, char *err)
{
	double until = now() + d->timeout;
	int done = 0;

	for (;;) {
		MPI_Test(req, &done, MPI_STATUS_IGNORE);
		if (done)
			return 0;
		if (now() > until)
			return sd_err(err, -ETIMEDOUT,
				      "rank %d: %s: another rank did not answer within %.0f s (it died or hangs); giving up",
				      d->rank, what, d->timeout);
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
	}
}

static int bcast(struct dist *d, void *buf, size_t len, int root, const char *what,
		 char *err)
{
	for (size_t off = 0; off < len; off += PIECE) {
		MPI_Request req;
		size_t n = len - off < PIECE ? len - off : PIECE;
		MPI_Ibcast((char *)buf + off, (int)n, MPI_BYTE, root, MPI_COMM_WORLD, &req);
		int rc = wait_for(d, &req, what, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int dist_agree(struct dist *d, bool ok, char *err)
{
	int mine = ok ? d->size : d->rank, first;
	MPI_Request req;

	MPI_Iallreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD, &req);
	if (wait_for(d, &req, "agreeing that every rank is ready", err) < 0)
		return -1;
	if (first == d->size)
		return 0;
	if (ok)
		sd_err(err, -EIO, "rank %d failed (see its message); every rank exits", first);
	return -1;
}

int dist_open_view(struct dist *d, struct view *v, const char *src,
		   struct view_opts *o, uint64_t cache_bytes, char *err)
{
	struct source s;
	char *blob = NULL, msg[SD_ERRLEN] = "";
	size_t len = 0;
	int rc = 0;

	memset(v, 0, sizeof(*v));
	if (d->rank == 0) {
		if ((rc = source_scan(src, &s, msg)) == 0 &&
		    (rc = source_pack(&s, &blob, &len, msg)) < 0)
			source_free(&s);
	}
	/* The length says whether rank 0 succeeded; on failure its message
	 * follows instead, so every rank can say why. */
	uint64_t hdr[2] = { rc == 0 ? len : 0, rc == 0 ? 1 : 0 };
	if ((rc = bcast(d, hdr, sizeof(hdr), 0, "receiving the checkpoint description", err)) < 0)
		goto out;
	if (!hdr[1]) {
		rc = bcast(d, msg, sizeof(msg), 0, "receiving rank 0's error", err);
		if (rc == 0)
			rc = sd_err(err, -EINVAL, "rank 0 cannot use the checkpoint: %s", msg);
		goto out;
	}
	if (d->rank != 0 && !(blob = malloc(hdr[0] ? hdr[0] : 1))) {
		rc = sd_err(err, -ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = bcast(d, blob, hdr[0], 0, "receiving the checkpoint description", err)) < 0)
		goto out;
	if (d->rank != 0 && (rc = source_unpack(blob, hdr[0], src, &s, err)) < 0)
		goto out;
	if (!o->ep_size) {      /* each rank shows its own experts */
		o->ep_rank = d->rank;
		o->ep_size = d->size;
		o->ep_from_rank = true;
	} else if (o->ep_rank < 0) {    /* ep_size=N: this rank's slice of N */
		o->ep_rank = d->rank;
	}
	rc = view_build(v, &s, o, cache_bytes, err);
out:
	if (d->rank == 0 && rc < 0 && msg[0] && !err[0])
		snprintf(err, SD_ERRLEN, "%s", msg);
	free(blob);
	return rc;
}

int dist_prefetch(struct dist *d, struct view *v, char *err)
{
	struct view_io io = { 0 };
	size_t k = 0;
	int rc = 0;

	/* The unchanged tensors are the same on every rank and in the same
	 * order (the plan follows the source), whatever each rank's experts. */
	for (size_t i = 0; i < v->plan.n && rc == 0; i++) {
		struct plan_tensor *t = &v->plan.tensors[i];
		const struct src_tensor *s = &v->src.tensors[t->src];
		if (t->recipe || !t->nbytes)
			continue;
		int owner = (int)(k++ % (size_t)d->size);
		if (!(t->preload = malloc(t->nbytes))) {
			rc = sd_err(err, -ENOMEM, "prefetch: cannot hold %s (%llu bytes)", t->name,
				    (unsigned long long)t->nbytes);
			break;
		}
		if (d->rank == owner) {
			struct view_seg seg = { NULL, v->src.files[s->file].fd, s->offset,
						(size_t)t->nbytes, false };
			if ((rc = view_seg_pread(v, &seg, t->preload, err)) < 0)
				break;
		}
		rc = bcast(d, t->preload, t->nbytes, owner, "prefetching shared tensors", err);
	}
	view_io_free(&io);
	return rc;
}

#endif
