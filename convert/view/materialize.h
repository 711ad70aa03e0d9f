/*
 * materialize.h — fully converted view files kept on a local disk.
 *
 * A view file's copy is served only when it proves itself: it and its
 * record (copy_record.h) are regular files owned by this process's user and
 * writable by no one else, opened without following links, and the record
 * matches both what the mount would write today (the sources' identity
 * including their ctime, the plan, the header) and the copy's own inode,
 * size, mtime and ctime.  A copy is written unnamed (O_TMPFILE) where the
 * filesystem allows, else under a random name created exclusively; it gets
 * its name only when every byte is written and synced, and its record is
 * written the same way last, so a crash leaves either no record or a whole
 * copy, and a planted link is never written through.
 *
 * Names in the directory: <key>.<view file name> (a copy), <key>-record
 * (its record), <key>-tmp.<random> (a copy or record being written where
 * O_TMPFILE is not supported; locked while its writer lives).
 */
#ifndef SDAFS_MATERIALIZE_H
#define SDAFS_MATERIALIZE_H

#include <stddef.h>
#include <stdint.h>

#include "view.h"

/* Open the directory copies go to (every later name is taken relative to
 * it).  Refused: not a directory, not writable by us, or writable by
 * others without the sticky bit (they could swap names in it).  0 and
 * *fd, or a negative errno and a message. */
int materialize_dir_open(const char *path, int *fd, char *err);

/* Serve file from its copy in dirfd if it has one that proves itself.
 * 1: attached; 0: none usable, err says why when one was there and was
 * refused ("" when there was none); negative errno on error. */
int materialize_attach(struct view *v, int dirfd, size_t file, char *err);

/* Write file's copy and its record into dirfd (converting what it must),
 * then attach it. */
int materialize_write(struct view *v, int dirfd, size_t file, char *err);

/* Attach file's copy and read it whole against its record's checksum.
 * 1: whole; 0: no usable copy (err says why, as for attach); -EIO: the
 * bytes differ from those written (err says so); other negative errno on
 * error. */
int materialize_verify(struct view *v, int dirfd, size_t file, char *err);

/* What materialize_tidy removed. */
struct tidy_report {
	unsigned temps;         /* left by a writer that died */
	unsigned orphans;       /* copies without a record, records without a copy */
	unsigned dead;          /* of sources that changed or are gone, or damaged */
	unsigned evicted;       /* least recently used, past the budget */
	uint64_t evicted_bytes;
};

/*
 * Housekeeping of dirfd, touching only files of ours (owned by this user,
 * named as above): remove what r counts, and with max_bytes (0: none) evict
 * least recently attached copies until the copies left plus need bytes fit,
 * never one v has attached.  -ENOSPC with a message when they cannot fit.
 */
int materialize_tidy(struct view *v, int dirfd, uint64_t max_bytes, uint64_t need,
		     struct tidy_report *r, char *err);

#endif
