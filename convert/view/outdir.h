/*
 * outdir.h — a directory that appears under its final name whole, or not
 * at all.
 *
 * Files are written into a temporary directory beside the destination (so
 * on the same filesystem), called .NAME.sdafs-tmp-XXXXXX and locked with
 * flock while in use.  Once everything in it is synced it is renamed into
 * place (swapped with the old destination when one is replaced, and the
 * old one removed only then), so a failure or a kill -9 at any moment
 * leaves no partial directory under the final name.  A temporary directory
 * of the same destination that nobody holds locked is a leftover of a run
 * that died, and the next run removes it; one that is locked belongs to a
 * run still going, and the destination is refused.
 */
#ifndef SDAFS_OUTDIR_H
#define SDAFS_OUTDIR_H

#include <dirent.h>
#include <stdbool.h>

struct outdir {
	char *dst;              /* as given, for messages */
	char *parent;           /* the destination's parent directory */
	char *name;             /* the destination's name in it */
	char *tmp;              /* the temporary directory's name there */
	int parent_fd;          /* the destination's parent directory */
	int fd;                 /* the temporary directory, locked */
	bool replace;           /* an existing destination is replaced */
};

/*
 * Check dst (missing, or an empty directory, or with replace any
 * directory), remove leftovers of earlier runs, and make the locked
 * temporary directory (o->fd).  Nothing is created when it fails.
 */
int outdir_begin(struct outdir *o, const char *dst, bool replace, char *err);

/*
 * Sync the temporary directory, rename it into place, sync the parent,
 * then remove the destination it replaced.  On failure the temporary
 * directory is left for outdir_abort.
 */
int outdir_commit(struct outdir *o, char *err);

/* Remove the temporary directory and everything in it; close. */
void outdir_abort(struct outdir *o);

/* Remove dirfd/name and everything below it, following no symbolic link. */
int outdir_remove_tree(int dirfd, const char *name, char *err);

/* A listing of the directory dirfd/name ("." for dirfd itself), following
 * no symbolic link; NULL with errno set.  (verify.c lists with it too.) */
DIR *outdir_list(int dirfd, const char *name);

#endif
