/*
 * verify.c — comparing a directory with a view (see verify.h).
 *
 * First, on one thread, what needs no tensor bytes: which files are there,
 * their sizes, each safetensors header (parsed with the reader that checks
 * every source, and compared tensor by tensor) and the index (compared as
 * JSON); that decides where in the directory each unit's bytes must be.
 * Then the workers make each unit's bytes and compare them with those.
 */
#include "verify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "io.h"
#include "outdir.h"
#include "safetensors.h"
#include "verify_describe.h"

#define SKIP UINT64_MAX

/* A file of the view, as the directory has it. */
struct dir_file {
	int fd;                 /* -1: missing or not a file */
	uint64_t size;
	bool remap;             /* its header differs: tensors where it says */
	struct st_header h;     /* that header, when remap */
	struct strmap by_name;  /* its tensors' names */
};

struct verify {
	struct units *us;
	struct dir_file *files;
	uint64_t *dir_off;      /* per unit: where its bytes are, or SKIP */
	struct verify_report *rep;
};

/* --- what is there ---------------------------------------------------------- */

static int list_extra(struct verify *vf, int dirfd, char *err)
{
	struct strmap names = { 0 };
	DIR *d = outdir_list(dirfd, ".");
	struct dirent *e;
	int rc = 0;

	if (!d)
		return sd_err(err, -errno, "cannot list it: %s", strerror(errno));
	for (size_t i = 0; i < vf->us->nfiles && rc == 0; i++)
		rc = strmap_put(&names, vf->us->files[i].path, i, NULL) == -ENOMEM ?
		     sd_err(err, -ENOMEM, "out of memory") : 0;
	while (rc == 0 && (e = readdir(d))) {
		size_t i;
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    strmap_get(&names, e->d_name, &i))
			continue;
		bool dir = fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
		struct verify_diff x = { .kind = VD_EXTRA, .order = (uint32_t)vf->us->nfiles,
					 .file = e->d_name };
		verify_add(vf->rep, &x, "not in the view (an extra %s)", dir ? "directory" : "file");
	}
	closedir(d);
	strmap_free(&names);
	return rc;
}

/* The tensor byte off of view file f falls in, or NULL (verify compares
 * one tree: the view's own plan). */
static const char *tensor_at(const struct units *us, const struct vfile *f, uint64_t off)
{
	const struct plan *p = &us->view->plan;

	for (size_t k = 0; k < f->nslots; k++) {
		const struct plan_tensor *t = &p->tensors[f->slots[k].tensor];
		if (off >= f->slots[k].off && off < f->slots[k].off + t->nbytes)
			return t->name;
	}
	return NULL;
}

static int open_file(struct verify *vf, int dirfd, uint32_t i, char *err)
{
	const struct units_file *f = &vf->us->files[i];
	struct dir_file *df = &vf->files[i];
	struct verify_diff x = { .order = i, .file = f->path };
	struct stat st;

	df->fd = openat(dirfd, f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (df->fd < 0 && errno == ENOENT) {
		x.kind = VD_MISSING;
		verify_add(vf->rep, &x, "missing");
		return 0;
	}
	if (df->fd < 0 || fstat(df->fd, &st) < 0)
		return sd_err(err, -errno, "%s: %s", f->path, strerror(errno));
	if (!S_ISREG(st.st_mode)) {
		close(df->fd);
		df->fd = -1;
		x.kind = VD_NOT_FILE;
		verify_add(vf->rep, &x, "not a regular file");
		return 0;
	}
	df->size = (uint64_t)st.st_size;
	if (df->size != f->size) {
		const char *t = df->size < f->size ? tensor_at(vf->us, f->vf, df->size) : NULL;
		x.kind = VD_SIZE;
		x.file_offset = df->size;
		x.tensor = (char *)t;
		verify_add(vf->rep, &x, "%" PRIu64 " bytes, expected %" PRIu64 "%s%s%s", df->size,
			   f->size, df->size > f->size ? " (longer)" : t ? " (truncated inside tensor '" :
			   " (shorter)", t ? t : "", t ? "')" : "");
	}
	return 0;
}

/* --- headers and the index ------------------------------------------------ */

/* Read the header of the directory's file i and compare it; remap when it
 * differs but is a valid header. */
static int check_header(struct verify *vf, uint32_t i, char *err)
{
	const struct units_file *f = &vf->us->files[i];
	struct dir_file *df = &vf->files[i];
	size_t n = f->vf->mem_len;
	char *got = malloc(n ? n : 1);
	int rc = 0;

	if (!got)
		return sd_err(err, -ENOMEM, "out of memory");
	ssize_t r = sd_pread_full(df->fd, got, n, 0);
	if (r < 0)
		rc = sd_err(err, (int)r, "%s: %s", f->path, strerror((int)-r));
	else if ((size_t)r != n || memcmp(got, f->vf->mem, n)) {
		df->remap = true;
		rc = describe_header(vf->rep, i, f, df->fd, df->size, &df->h, &df->by_name, err);
	}
	free(got);
	return rc;
}

static int check_index(struct verify *vf, uint32_t i, char *err)
{
	const struct units_file *f = &vf->us->files[i];
	struct dir_file *df = &vf->files[i];
	uint64_t n = df->size < ((uint64_t)256 << 20) ? df->size : 0;
	char *got = malloc(n + 1);
	int rc = 0;

	if (!got)
		return sd_err(err, -ENOMEM, "out of memory");
	ssize_t r = sd_pread_full(df->fd, got, (size_t)n, 0);
	if (r < 0)
		rc = sd_err(err, (int)r, "%s: %s", f->path, strerror((int)-r));
	else if ((uint64_t)r != f->size || memcmp(got, f->vf->mem, (size_t)r))
		describe_index(vf->rep, i, f, got, (size_t)r);
	free(got);
	df->remap = true;       /* compared here; no unit compares it again */
	return rc;
}

/* Where in the directory's file each unit's bytes must be. */
static void place_units(struct verify *vf)
{
	const struct units *us = vf->us;

	for (size_t i = 0; i < us->n; i++) {
		const struct unit *u = &us->u[i];
		const struct unit_place *pl = &us->places[u->first];
		const struct dir_file *df = &vf->files[pl->file];
		size_t k;
		vf->dir_off[i] = SKIP;
		if (df->fd < 0)
			continue;
		if (!df->remap)
			vf->dir_off[i] = pl->off;
		else if (u->tensor && df->h.tensors && strmap_get(&df->by_name, u->tensor->name, &k) &&
			 same_tensor(&df->h.tensors[k], u->tensor))
			vf->dir_off[i] = df->h.tensors[k].offset + u->tensor_off;
	}
}

/* --- bytes ------------------------------------------------------------------ */

static int verify_unit(struct unit_worker *w, size_t i, void *arg, char *err)
{
	struct verify *vf = arg;
	const struct unit *u = &vf->us->u[i];
	const struct unit_place *pl = &vf->us->places[u->first];
	const char *want;
	int rc;

	if (vf->dir_off[i] == SKIP)
		return 0;
	const struct units_file *f = &vf->us->files[pl->file];
	if ((rc = unit_reserve(w, u->kind == UNIT_MEM ? 0 : (size_t)u->len, (size_t)u->len,
			       u->kind == UNIT_ROWS, err)) < 0 ||
	    (rc = unit_bytes(w, i, &want, err)) < 0)
		return rc;
	ssize_t n = sd_pread_full(vf->files[pl->file].fd, w->buf[1], (size_t)u->len, vf->dir_off[i]);
	if (n < 0)
		return sd_err(err, (int)n, "%s: %s", f->path, strerror((int)-n));
	pthread_mutex_lock(&vf->rep->mu);
	vf->rep->bytes_compared += (uint64_t)n;
	pthread_mutex_unlock(&vf->rep->mu);
	compare_bytes(vf->rep, pl->file, f, u, (const unsigned char *)want,
		      (const unsigned char *)w->buf[1], (size_t)n, vf->dir_off[i]);
	return 0;
}

static int look_at_files(struct verify *vf, int dirfd, char *err)
{
	int rc = list_extra(vf, dirfd, err);

	for (uint32_t i = 0; i < vf->us->nfiles && rc == 0; i++) {
		const struct vfile *f = vf->us->files[i].vf;
		vf->files[i].fd = -1;
		if ((rc = open_file(vf, dirfd, i, err)) < 0 || vf->files[i].fd < 0)
			continue;
		if (f->kind == VF_WEIGHTS)
			rc = check_header(vf, i, err);
		else if (f->kind == VF_MEMORY)
			rc = check_index(vf, i, err);
	}
	return rc;
}

int verify_dir(struct units *us, int dirfd, unsigned jobs, uint64_t budget,
	       struct units_progress *p, struct verify_report *rep, char *err)
{
	struct verify vf = { .us = us, .rep = rep };
	int rc;

	memset(rep, 0, sizeof(*rep));
	pthread_mutex_init(&rep->mu, NULL);
	rep->files = us->nfiles;
	vf.files = calloc(us->nfiles + 1, sizeof(*vf.files));
	vf.dir_off = malloc((us->n + 1) * sizeof(*vf.dir_off));
	if (!vf.files || !vf.dir_off)
		rc = sd_err(err, -ENOMEM, "out of memory");
	else if ((rc = look_at_files(&vf, dirfd, err)) == 0) {
		place_units(&vf);
		rc = units_run(us, jobs, budget, verify_unit, &vf, p, err);
	}
	for (size_t i = 0; vf.files && i < us->nfiles; i++) {
		if (vf.files[i].fd >= 0)
			close(vf.files[i].fd);
		st_header_free(&vf.files[i].h);
		strmap_free(&vf.files[i].by_name);
	}
	free(vf.files);
	free(vf.dir_off);
	if (rc == 0)
		merge_diffs(rep);
	return rc;
}

void verify_report_free(struct verify_report *rep)
{
	for (size_t i = 0; i < rep->n; i++) {
		free(rep->diffs[i].file);
		free(rep->diffs[i].tensor);
		free(rep->diffs[i].what);
	}
	free(rep->diffs);
	pthread_mutex_destroy(&rep->mu);
	memset(rep, 0, sizeof(*rep));
}
