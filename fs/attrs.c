/*
 * attrs.c — the times of view files and the mode and times of the view's
 * directory (see attrs.h).
 *
 * The one idea: a view file is a function of its source files (and of
 * sdafs's rules), so it is as new as the newest of them, not as new as the
 * mount.  Then `rsync -a`, `cp -u` and make see an unchanged view as
 * unchanged after every remount, and a copy's times say which source it
 * came from.  The directory mirrors the source directory's mode (its
 * owner and read bits are the permission model's, fs/ops.c; its write bits
 * are added here), so a `cp -r` of the view is a tree its owner can add to
 * and remove.
 */
#include "attrs.h"

static void newer(struct timespec *t, const struct timespec *u)
{
	if (u->tv_sec > t->tv_sec || (u->tv_sec == t->tv_sec && u->tv_nsec > t->tv_nsec))
		*t = *u;
}

void attr_root(const struct sdafs *fs, struct stat *st)
{
	/* Who may list it is the source directory's business (its owner and
	 * read bits are already in st); its write bits are added, harmless on
	 * a read-only mount, so the mode is the source's. */
	st->st_mode |= fs->source_dir.st_mode & 0222;
	if (fs->source_dir.st_mtim.tv_sec) {
		st->st_mtim = st->st_atim = fs->source_dir.st_mtim;
		st->st_ctim = fs->source_dir.st_ctim;
	}
}

void attr_file_times(const struct sdafs *fs, size_t file, struct stat *st)
{
	const struct vfile *f = &fs->view.layout.files[file];
	const struct source *s = &fs->view.src;
	struct timespec m = { 0, 0 }, c = { 0, 0 };

	/* A file made of no particular source (the index) is made of them all. */
	for (size_t i = 0; i < (f->nsrcs ? f->nsrcs : s->nweights); i++) {
		const struct src_file *sf = &s->files[f->nsrcs ? f->srcs[i] : i];
		newer(&m, &sf->mtime);
		newer(&c, &sf->ctime);
	}
	if (!m.tv_sec && !m.tv_nsec) {         /* no weight file at all */
		m = fs->source_dir.st_mtim;
		c = fs->source_dir.st_ctim;
	}
	if (!m.tv_sec && !m.tv_nsec)
		return;
	st->st_mtim = st->st_atim = m;
	st->st_ctim = c;
}
