/*
 * splice.h — read replies whose source bytes reach the kernel without a
 * copy in this process (splice.c).
 */
#ifndef SDAFS_SPLICE_H
#define SDAFS_SPLICE_H

#include <stdbool.h>
#include <stddef.h>

#include <fuse_lowlevel.h>

#include "view.h"

/* A worker thread's pipe, opened on first use.  Zeroed: none yet. */
struct splice_pipe {
	int fd[2];
	bool open;
};

/* Requests up to this size can be spliced (see splice.c). */
#define SPLICE_REQUEST_MAX (248u * 4096u)

/* Can this process make pipes of 1 MiB (pipe-max-size allows it)? */
bool splice_usable(void);

/* Is splicing io's segments worth it (enough source bytes, few pieces)? */
bool splice_worth(const struct view_io *io);

/*
 * Reply to req with io's segments of view file `file`: memory by reference,
 * source bytes spliced from their files, the sources checked after all were
 * taken.  0: replied.  1: nothing replied, the pipe could not take it all
 * (copy instead).  Negative errno with a message in err: nothing replied.
 */
int splice_reply(fuse_req_t req, struct view *v, size_t file, const struct view_io *io,
		 struct splice_pipe *p, char *err);

void splice_pipe_close(struct splice_pipe *p);

#endif
