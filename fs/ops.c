/*
 * ops.c — the FUSE low-level operations: a thin translation onto view.h.
 *
 * Inode 1 is the root, inode 2+i is file i of the layout, and one more
 * inode is the statistics file, which lookup finds but readdir never lists
 * (so cp -r does not copy it).  The view never changes while mounted, so
 * attributes and entries are cached by the kernel for a day and file pages
 * are kept across opens; a warm re-read never reaches this process.  A read
 * first tells the read-ahead about itself, then replies straight from pinned
 * cache chunks and header memory: with unchanged source bytes spliced from
 * their files (splice.c) when there are enough of them, else with an iovec
 * and the source bytes copied by one pread into a per-thread buffer.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "attrs.h"
#include "bdi.h"
#include "copies.h"
#include "err.h"
#include "log.h"
#include "passthrough.h"
#include "splice.h"
#include "stats.h"

#define TIMEOUT         86400.0
#define ROOT_INO        1
#define FIRST_FILE_INO  2
#define MAX_IOV         512
#define REQUEST_MAX     (1u << 20)

static struct sdafs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

fuse_ino_t sdafs_file_ino(size_t i)
{
	return FIRST_FILE_INO + i;
}

static fuse_ino_t stats_ino(const struct sdafs *fs)
{
	return FIRST_FILE_INO + fs->view.layout.n;
}

/* The layout file of an inode, or -1 for the root, the stats file or junk. */
static long file_of(const struct sdafs *fs, fuse_ino_t ino)
{
	if (ino < FIRST_FILE_INO || ino >= stats_ino(fs))
		return -1;
	return (long)(ino - FIRST_FILE_INO);
}

/* The statistics name the source and hold the log, which may name any
 * file and tensor: the mounting user reads them, and others only when they
 * may list the source directory and read every file of the view. */
static struct src_perm stats_perm(const struct sdafs *fs)
{
	struct src_perm p = { getuid(), fs->view.src.dir_perm.gid, 0444 };

	perm_narrow(&p, &fs->view.src.dir_perm, S_IROTH);
	perm_narrow(&p, &fs->view.layout.whole, S_IROTH);
	p.mode |= S_IRUSR;
	return p;
}

/* Owners and modes are the source's (perm.h), so that with allow_other
 * the kernel (default_permissions) lets no one read more than it could. */
static void set_owner(struct stat *st, mode_t type, const struct src_perm *p)
{
	st->st_uid = p->uid;
	st->st_gid = p->gid;
	st->st_mode = type | p->mode;
}

static int fill_stat(const struct sdafs *fs, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_atim = st->st_mtim = st->st_ctim = fs->mounted_at;
	st->st_blksize = REQUEST_MAX;   /* cp and cat size their buffers by it */
	if (ino == ROOT_INO) {
		set_owner(st, S_IFDIR, &fs->view.src.dir_perm);
		st->st_nlink = 2;
		attr_root(fs, st);
		return 0;
	}
	st->st_nlink = 1;
	if (ino == stats_ino(fs)) {
		struct src_perm p = stats_perm(fs);
		set_owner(st, S_IFREG, &p);
		return 0;
	}
	long f = file_of(fs, ino);
	if (f < 0)
		return -ENOENT;
	const struct vfile *vf = &fs->view.layout.files[f];
	set_owner(st, S_IFREG, &vf->perm);
	st->st_size = (off_t)vf->size;
	st->st_blocks = (blkcnt_t)((vf->size + 511) / 512);
	attr_file_times(fs, (size_t)f, st);
	return 0;
}

static void after_init(struct sdafs *fs)
{
	if (!atomic_flag_test_and_set(&fs->readahead_raised))
		bdi_raise_readahead(fs->mountpoint_real, "fuse.sdafs", fs->request_max >> 10);
}

static void reply_entry(fuse_req_t req, const struct sdafs *fs, fuse_ino_t ino)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	if (ino)
		fill_stat(fs, ino, &e.attr);
	fuse_reply_entry(req, &e);      /* ino 0: a cached negative entry */
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sdafs *fs = fs_of(req);
	long f;

	after_init(fs);
	if (parent != ROOT_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (!strcmp(name, STATS_NAME))
		reply_entry(req, fs, stats_ino(fs));
	else if ((f = layout_find(&fs->view.layout, name)) >= 0)
		reply_entry(req, fs, FIRST_FILE_INO + (fuse_ino_t)f);
	else
		reply_entry(req, fs, 0);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int rc = fill_stat(fs_of(req), ino, &st);

	(void)fi;
	after_init(fs_of(req));
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, TIMEOUT);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct sdafs *fs = fs_of(req);
	size_t n = fs->view.layout.n + 2;       /* ".", "..", the files */
	char *buf;
	size_t used = 0;

	(void)fi;
	if (ino != ROOT_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (!(buf = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < n; i++) {
		struct stat st = { 0 };
		const char *name = i == 0 ? "." : i == 1 ? ".." :
				   fs->view.layout.files[i - 2].name;
		st.st_ino = i < 2 ? ROOT_INO : FIRST_FILE_INO + i - 2;
		st.st_mode = i < 2 ? S_IFDIR : S_IFREG;
		size_t need = fuse_add_direntry(req, buf + used, size - used, name,
						&st, (off_t)(i + 1));
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

/*
 * What an open file's fh points to: the statistics text, or a view file's
 * read-ahead stream.  Listed in fs->opens, because the kernel releases
 * nothing that is still open when the mount goes away (a lazy unmount), so
 * sdafs_free_opens frees what is left then.
 */
struct open_file {
	struct open_file *prev, *next;
	char *stats;                    /* the statistics file: its text */
	struct readahead_stream stream; /* a view file */
};

static struct open_file *open_file_new(struct sdafs *fs, char *stats)
{
	struct open_file *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->stats = stats;
	pthread_mutex_lock(&fs->opens_mu);
	o->next = fs->opens;
	if (o->next)
		o->next->prev = o;
	fs->opens = o;
	pthread_mutex_unlock(&fs->opens_mu);
	return o;
}

static void open_file_free(struct sdafs *fs, struct open_file *o)
{
	if (!o)
		return;
	pthread_mutex_lock(&fs->opens_mu);
	if (o->prev)
		o->prev->next = o->next;
	else
		fs->opens = o->next;
	if (o->next)
		o->next->prev = o->prev;
	pthread_mutex_unlock(&fs->opens_mu);
	free(o->stats);
	free(o);
}

void sdafs_free_opens(struct sdafs *fs)
{
	while (fs->opens)
		open_file_free(fs, fs->opens);
}

static struct open_file *open_file_of(const struct fuse_file_info *fi)
{
	return (struct open_file *)(uintptr_t)fi->fh;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sdafs *fs = fs_of(req);
	struct open_file *o;

	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (ino == stats_ino(fs)) {
		/* A snapshot per open, so one reader sees one consistent text. */
		char *json = fs_stats_json(fs);
		if (!json || !(o = open_file_new(fs, json))) {
			free(json);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		fi->fh = (uint64_t)(uintptr_t)o;
		fi->direct_io = 1;
		fuse_reply_open(req, fi);
		return;
	}
	if (file_of(fs, ino) < 0) {
		fuse_reply_err(req, ino == ROOT_INO ? EISDIR : ENOENT);
		return;
	}
	/* A passthrough open is read by the kernel alone: check the sources now. */
	char err[SD_ERRLEN];
	if (view_check_sources(&fs->view, (size_t)file_of(fs, ino), NULL, err) < 0) {
		view_count_failure(&fs->view, VIEW_FAULT_SOURCE_CHANGED);
		sd_log("open of %s failed: %s", fs->view.layout.files[file_of(fs, ino)].name, err);
		fuse_reply_err(req, EIO);
		return;
	}
	/* Its read-ahead stream; without one only the inode's streams are seen. */
	fi->fh = (uint64_t)(uintptr_t)open_file_new(fs, NULL);
	if (pt_open(req, fs->pt, (size_t)file_of(fs, ino), fi))
		return;
	fi->keep_cache = !fs->direct_io;
	fi->direct_io = fs->direct_io;
	fuse_reply_open(req, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	open_file_free(fs_of(req), open_file_of(fi));
	fuse_reply_err(req, 0);
}

/* Per-thread read state: segment list, pins, iovecs, a bounce buffer for
 * source bytes and a pipe to splice them.  Grown once to the largest
 * request, then reused. */
struct read_tls {
	struct view_io io;
	struct iovec *iov;
	size_t iovcap;
	char *buf;
	size_t bufcap;
	struct splice_pipe pipe;
};

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_free(void *p)
{
	struct read_tls *t = p;

	view_io_free(&t->io);
	free(t->iov);
	free(t->buf);
	splice_pipe_close(&t->pipe);
	free(t);
}

static void tls_init(void)
{
	pthread_key_create(&tls_key, tls_free);
}

static struct read_tls *tls_get(size_t bufsize)
{
	struct read_tls *t;

	pthread_once(&tls_once, tls_init);
	t = pthread_getspecific(tls_key);
	if (!t) {
		if (!(t = calloc(1, sizeof(*t))))
			return NULL;
		pthread_setspecific(tls_key, t);
	}
	if (t->bufcap < bufsize) {
		char *b = realloc(t->buf, bufsize);
		if (!b)
			return NULL;
		t->buf = b;
		t->bufcap = bufsize;
	}
	return t;
}

static void reply_stats(fuse_req_t req, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	const char *json = open_file_of(fi)->stats;
	size_t len = strlen(json);

	if ((size_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, json + off, len - (size_t)off < size ? len - (size_t)off : size);
}

/* Build the reply's iovec: memory segments in place, source segments
 * pread into the bounce buffer.  Too many pieces: flatten into the buffer. */
static int build_iov(struct sdafs *fs, struct read_tls *t, size_t *niov, char *err)
{
	struct view_io *io = &t->io;
	size_t used = 0;
	int rc;

	if (io->nseg > MAX_IOV) {
		size_t total = 0;
		for (size_t i = 0; i < io->nseg; i++)
			total += io->segs[i].len;
		if ((rc = view_io_gather(&fs->view, io, t->buf, err)) < 0)
			return rc;
		t->iov[0] = (struct iovec){ t->buf, total };
		*niov = 1;
		return 0;
	}
	for (size_t i = 0; i < io->nseg; i++) {
		const struct view_seg *s = &io->segs[i];
		if (s->mem) {
			t->iov[i] = (struct iovec){ (void *)s->mem, s->len };
			continue;
		}
		if ((rc = view_seg_pread(&fs->view, s, t->buf + used, err)) < 0)
			return rc;
		t->iov[i] = (struct iovec){ t->buf + used, s->len };
		used += s->len;
	}
	*niov = io->nseg;
	return 0;
}

/* Reply with io's segments: spliced where that pays, else by one iovec.
 * view_read, build_iov and splice_reply count their own failures; the
 * rest are counted here. */
static int reply_segments(fuse_req_t req, struct sdafs *fs, struct read_tls *t,
			  size_t file, char *err)
{
	size_t niov = 0, need = t->io.nseg > MAX_IOV ? 1 : t->io.nseg;
	int rc;

	if (fs->splice && splice_worth(&t->io) &&
	    (rc = splice_reply(req, &fs->view, file, &t->io, &t->pipe, err)) <= 0)
		return rc;      /* replied, or failed; 1: copy after all */
	if (t->iovcap < need) {
		struct iovec *v = realloc(t->iov, need * sizeof(*v));
		if (!v) {
			view_count_failure(&fs->view, VIEW_FAULT_NO_MEMORY);
			return sd_err(err, -ENOMEM, "out of memory");
		}
		t->iov = v;
		t->iovcap = need;
	}
	if ((rc = build_iov(fs, t, &niov, err)) < 0)
		return rc;
	/* changed while we read it: never reply mixed bytes */
	if ((rc = view_check_sources(&fs->view, file, NULL, err)) < 0) {
		view_count_failure(&fs->view, VIEW_FAULT_SOURCE_CHANGED);
		return rc;
	}
	fuse_reply_iov(req, t->iov, (int)niov);
	return 0;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct sdafs *fs = fs_of(req);
	char err[SD_ERRLEN];
	long f = file_of(fs, ino);
	struct read_tls *t;
	int rc;

	if (ino == stats_ino(fs)) {
		reply_stats(req, size, off, fi);
		return;
	}
	if (f < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (!(t = tls_get(size))) {
		view_count_failure(&fs->view, VIEW_FAULT_NO_MEMORY);
		sd_log("read of %s at %lld (%zu bytes) failed: out of memory",
		       fs->view.layout.files[f].name, (long long)off, size);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	struct open_file *o = open_file_of(fi);
	view_readahead_note(&fs->view, o ? &o->stream : NULL, (size_t)f, (uint64_t)off, size);
	rc = view_read(&fs->view, (size_t)f, (uint64_t)off, size, &t->io, err);
	if (rc == 0)
		rc = reply_segments(req, fs, t, (size_t)f, err);
	view_io_release(&fs->view, &t->io);
	if (rc < 0) {
		sd_log("read of %s at %lld (%zu bytes) failed: %s",
		       fs->view.layout.files[f].name, (long long)off, size, err);
		fuse_reply_err(req, EIO);
		return;
	}
	if (fs->copies && (uint64_t)off + size >= fs->view.layout.files[f].size)
		copies_want(fs->copies, (size_t)f);     /* read to its end: keep a copy */
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct sdafs *fs = fs_of(req);
	struct statvfs sv;
	uint64_t total = 0;

	(void)ino;
	for (size_t i = 0; i < fs->view.layout.n; i++)
		total += fs->view.layout.files[i].size;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = sv.f_frsize = 4096;
	sv.f_blocks = (fsblkcnt_t)((total + 4095) / 4096);
	sv.f_files = fs->view.layout.n + 1;
	sv.f_namemax = 255;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* Read-only: everything that would change the tree says so. */
static void erofs(fuse_req_t req)
{
	fuse_reply_err(req, EROFS);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	erofs(req);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	erofs(req);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	erofs(req);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	erofs(req);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	(void)link, (void)parent, (void)name;
	erofs(req);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	erofs(req);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	(void)ino, (void)newparent, (void)newname;
	erofs(req);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	(void)ino, (void)buf, (void)size, (void)off, (void)fi;
	erofs(req);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	erofs(req);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	(void)ino, (void)name, (void)value, (void)size, (void)flags;
	erofs(req);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino, (void)name;
	erofs(req);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			 off_t length, struct fuse_file_info *fi)
{
	(void)ino, (void)mode, (void)offset, (void)length, (void)fi;
	erofs(req);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct sdafs *fs = userdata;

	/* Spliced replies (splice.c) must fit a pipe, so they cap requests a
	 * little lower; never SPLICE_MOVE: the kernel could take the source
	 * file's own pages. */
	fs->request_max = REQUEST_MAX;
	if (fs->splice && (conn->capable & FUSE_CAP_SPLICE_WRITE) && splice_usable()) {
		conn->want |= FUSE_CAP_SPLICE_WRITE;
		fs->request_max = SPLICE_REQUEST_MAX;
	} else {
		fs->splice = false;
	}
	/* max_write also sets max_pages, which caps read requests. */
	conn->max_write = fs->request_max;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;      /* nothing changes */
	pt_note_init(fs->pt);
}

/* The session ends: snapshots whose release never came go too. */
const struct fuse_lowlevel_ops sdafs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.statfs = op_statfs,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_unlink,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.write = op_write,
	.create = op_create,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.fallocate = op_fallocate,
};
