/*
 * splice.c — read replies whose source bytes reach the kernel without a copy
 * in this process (see splice.h).
 *
 * The one idea: a reply is put together in the worker thread's own pipe —
 * header and cache memory by vmsplice (page references), unchanged source
 * bytes by splice from the source file (references to its page-cache
 * pages) — then the sources are checked, and only then does libfuse splice
 * the pipe into /dev/fuse, where the kernel copies each byte once, into the
 * reader's page.  The pread into a bounce buffer is the copy saved.
 *
 * Pipes hold 1 MiB (pipe-max-size; more needs CAP_SYS_RESOURCE), in 256
 * page-sized slots, and a reply must fit whole in ours and, behind its
 * header, in libfuse's, or libfuse silently copies it after all.  So when
 * splicing, requests are capped at SPLICE_REQUEST_MAX (248 pages): the
 * pages a reply's pieces span, plus the header, then fit in 256 slots for
 * up to six unaligned pieces; a reply that does not is copied.  Everything
 * is non-blocking: a pipe that fills up means copy instead.
 *
 * A source changed under the mount: a splice that comes up short fails the
 * read with EIO; the check after taking every piece catches a file replaced,
 * truncated or rewritten before that point.  A write into the source file in
 * place during the microseconds between that check and the kernel's copy out
 * of the pipe is not caught (spliced pages are the file's own), where a copy
 * checked after its pread is exact.
 */
#include "splice.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#define PIPE_BYTES      ((int)(1 << 20))
#define PIPE_SLOTS      256             /* PIPE_BYTES in pages */
#define PAGE            4096u
#define MAX_PIECES      64
#define MIN_SOURCE_BYTES ((size_t)64 << 10)

bool splice_usable(void)
{
	int fd[2];
	bool ok;

	if (pipe2(fd, O_CLOEXEC) < 0)
		return false;
	ok = fcntl(fd[0], F_SETPIPE_SZ, PIPE_BYTES) >= PIPE_BYTES;
	close(fd[0]);
	close(fd[1]);
	return ok;
}

/* Pipe slots a piece takes: the pages it spans. */
static size_t slots_of(uint64_t start, size_t len)
{
	return (size_t)((start + len + PAGE - 1) / PAGE - start / PAGE);
}

bool splice_worth(const struct view_io *io)
{
	size_t from_files = 0, slots = 1;       /* libfuse's header */

	if (io->nseg > MAX_PIECES)
		return false;
	for (size_t i = 0; i < io->nseg; i++) {
		const struct view_seg *s = &io->segs[i];
		slots += slots_of(s->mem ? (uintptr_t)s->mem : s->off, s->len);
		if (!s->mem)
			from_files += s->len;
	}
	return from_files >= MIN_SOURCE_BYTES && slots <= PIPE_SLOTS;
}

void splice_pipe_close(struct splice_pipe *p)
{
	if (!p->open)
		return;
	close(p->fd[0]);
	close(p->fd[1]);
	p->open = false;
}

static bool pipe_ready(struct splice_pipe *p)
{
	if (p->open)
		return true;
	if (pipe2(p->fd, O_CLOEXEC | O_NONBLOCK) < 0)
		return false;
	p->open = true;
	if (fcntl(p->fd[0], F_SETPIPE_SZ, PIPE_BYTES) < PIPE_BYTES) {
		splice_pipe_close(p);
		return false;
	}
	return true;
}

/* All of iov[0..n) into the pipe by reference; false when it is full. */
static bool vmsplice_all(int wfd, struct iovec *iov, size_t n)
{
	while (n) {
		ssize_t k = vmsplice(wfd, iov, n, SPLICE_F_NONBLOCK);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		while (n && (size_t)k >= iov->iov_len) {
			k -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (char *)iov->iov_base + k;
			iov->iov_len -= (size_t)k;
		}
	}
	return true;
}

/* A source segment into the pipe: 0, 1 (pipe full) or -EIO (file short). */
static int splice_seg(struct view *v, const struct view_seg *s, int wfd, char *err)
{
	loff_t off = (loff_t)s->off;
	size_t left = s->len;
	int rc;

	while (left) {
		ssize_t k = splice(s->fd, &off, wfd, NULL, left, SPLICE_F_NONBLOCK);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return 1;
		if (k < 0)
			return view_seg_done(v, s, -errno, err);
		if (k == 0)
			break;          /* end of file: the source was cut short */
		left -= (size_t)k;
	}
	if ((rc = view_seg_done(v, s, (ssize_t)(s->len - left), err)) == 0)
		atomic_fetch_add(&v->stats.spliced_bytes, s->len);
	return rc;
}

static int fill_pipe(struct view *v, const struct view_io *io, int wfd, char *err)
{
	struct iovec iov[MAX_PIECES];
	int rc;

	for (size_t i = 0; i < io->nseg;) {
		size_t n = 0;
		while (i < io->nseg && io->segs[i].mem && n < MAX_PIECES) {
			iov[n++] = (struct iovec){ (void *)io->segs[i].mem, io->segs[i].len };
			i++;
		}
		if (n && !vmsplice_all(wfd, iov, n))
			return 1;
		if (i < io->nseg && !io->segs[i].mem) {
			if ((rc = splice_seg(v, &io->segs[i], wfd, err)) != 0)
				return rc;
			i++;
		}
	}
	return 0;
}

int splice_reply(fuse_req_t req, struct view *v, size_t file, const struct view_io *io,
		 struct splice_pipe *p, char *err)
{
	size_t total = 0;
	int rc, left = 0;

	if (!pipe_ready(p))
		return 1;
	for (size_t i = 0; i < io->nseg; i++)
		total += io->segs[i].len;
	rc = fill_pipe(v, io, p->fd[1], err);
	/* Every piece is taken: a file changed before now is never served. */
	if (rc == 0 && (rc = view_check_sources(v, file, NULL, err)) < 0)
		view_count_failure(v, VIEW_FAULT_SOURCE_CHANGED);
	if (rc != 0) {
		splice_pipe_close(p);   /* drops whatever it holds */
		return rc;
	}
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(total);
	bv.buf[0].flags = FUSE_BUF_IS_FD;
	bv.buf[0].fd = p->fd[0];
	fuse_reply_data(req, &bv, 0);
	/* libfuse leaves bytes behind only when the reply failed */
	if (ioctl(p->fd[0], FIONREAD, &left) < 0 || left > 0)
		splice_pipe_close(p);
	return 0;
}
