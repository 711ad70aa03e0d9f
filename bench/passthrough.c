/*
 * passthrough.c — the FUSE floor for `make bench`: a minimal read-only
 * low-level libfuse3 passthrough of one flat directory, with the same FUSE
 * settings as sdafs (fs/ops.c, fs/main.c), so the bench can tell what any
 * FUSE filesystem costs on this machine from what sdafs adds on top.
 *
 *   passthrough [-f] [-o reply=buf|data] [-o max_threads=N] SRC MOUNTPOINT
 *
 * Same as sdafs: max_write 1 MiB (so max_pages 256: 1 MiB read requests),
 * max_background 64 / congestion_threshold 48, keep_cache, attr and entry
 * timeouts of a day, negative entries cached, st_blksize 1 MiB, the bdi
 * read_ahead_kb raised to 1024 on the first request after INIT when root,
 * 16 worker threads that never exit, mounted ro.
 *
 * reply=buf (default; what sdafs did for unchanged source bytes before it spliced them): pread
 * into a per-thread buffer, then fuse_reply_buf.  reply=data: fuse_reply_data
 * with the file descriptor (libfuse reads it into a buffer of its own, or
 * splices when the kernel and libfuse agree on splice).
 *
 * The regular files of SRC are opened once at start; inode 2+i is file i.
 * It always runs in the foreground (-f is accepted for symmetry with
 * sdafs); unmount with fusermount3 -u, or SIGINT/SIGTERM.
 */
#include "bdi.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define TIMEOUT         86400.0
#define ROOT_INO        1
#define FIRST_INO       2
#define REQUEST_MAX     (1u << 20)
#define SUBTYPE         "sdafs_bench"

struct pfile {
	char *name;
	int fd;
	struct stat st;
};

struct pt {
	struct pfile *files;
	size_t n;
	bool reply_data;
	char *mnt_real;
	atomic_flag ra_raised;
};

static struct pt pt = { .ra_raised = ATOMIC_FLAG_INIT };

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct pfile *)a)->name, ((const struct pfile *)b)->name);
}

static int scan(const char *src)
{
	DIR *d = opendir(src);
	struct dirent *de;
	size_t cap = 0;
	int dfd;

	if (!d) {
		fprintf(stderr, "passthrough: %s: %s\n", src, strerror(errno));
		return -1;
	}
	dfd = dirfd(d);
	while ((de = readdir(d))) {
		struct stat st;
		int fd;
		if (de->d_name[0] == '.')
			continue;
		fd = openat(dfd, de->d_name, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			continue;
		}
		if (pt.n == cap) {
			cap = cap ? 2 * cap : 64;
			struct pfile *f = realloc(pt.files, cap * sizeof(*f));
			if (!f)
				abort();
			pt.files = f;
		}
		pt.files[pt.n].name = strdup(de->d_name);
		pt.files[pt.n].fd = fd;
		pt.files[pt.n].st = st;
		pt.n++;
	}
	closedir(d);
	qsort(pt.files, pt.n, sizeof(*pt.files), cmp_name);
	return 0;
}

static struct pfile *file_of(fuse_ino_t ino)
{
	if (ino < FIRST_INO || ino - FIRST_INO >= pt.n)
		return NULL;
	return &pt.files[ino - FIRST_INO];
}

static void fill_stat(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_blksize = REQUEST_MAX;
	if (ino == ROOT_INO) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return;
	}
	const struct pfile *f = file_of(ino);
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = f->st.st_size;
	st->st_blocks = (f->st.st_size + 511) / 512;
	st->st_mtim = f->st.st_mtim;
	st->st_atim = f->st.st_atim;
	st->st_ctim = f->st.st_ctim;
}

/* The same read-ahead raise as sdafs, on the first request after INIT. */
static void after_init(void)
{
	if (!atomic_flag_test_and_set(&pt.ra_raised))
		bdi_raise_readahead(pt.mnt_real, "fuse." SUBTYPE, REQUEST_MAX >> 10);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_write = REQUEST_MAX;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	struct pfile key = { .name = (char *)name };
	struct pfile *f;

	after_init();
	if (parent != ROOT_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	f = bsearch(&key, pt.files, pt.n, sizeof(*pt.files), cmp_name);
	if (f) {
		e.ino = FIRST_INO + (fuse_ino_t)(f - pt.files);
		fill_stat(e.ino, &e.attr);
	}
	fuse_reply_entry(req, &e);      /* ino 0: cached negative entry */
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	after_init();
	if (ino != ROOT_INO && !file_of(ino)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_stat(ino, &st);
	fuse_reply_attr(req, &st, TIMEOUT);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	size_t n = pt.n + 2, used = 0;
	char *buf;

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
		const char *name = i == 0 ? "." : i == 1 ? ".." : pt.files[i - 2].name;
		st.st_ino = i < 2 ? ROOT_INO : FIRST_INO + i - 2;
		st.st_mode = i < 2 ? S_IFDIR : S_IFREG;
		size_t need = fuse_add_direntry(req, buf + used, size - used, name, &st,
						(off_t)(i + 1));
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (!file_of(ino)) {
		fuse_reply_err(req, ino == ROOT_INO ? EISDIR : ENOENT);
		return;
	}
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;

static void buf_key_init(void)
{
	pthread_key_create(&buf_key, free);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct pfile *f = file_of(ino);
	char *buf;
	size_t got = 0;

	(void)fi;
	if (!f) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (pt.reply_data) {
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = f->fd;
		bv.buf[0].pos = off;
		fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
		return;
	}
	pthread_once(&buf_once, buf_key_init);
	if (size > REQUEST_MAX)
		size = REQUEST_MAX;
	buf = pthread_getspecific(buf_key);
	if (!buf) {
		if (!(buf = malloc(REQUEST_MAX))) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		pthread_setspecific(buf_key, buf);
	}
	while (got < size) {
		ssize_t r = pread(f->fd, buf + got, size - got, off + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fuse_reply_err(req, errno);
			return;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	fuse_reply_buf(req, buf, got);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = sv.f_frsize = 4096;
	sv.f_files = pt.n + 1;
	sv.f_namemax = 255;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.open = op_open,
	.read = op_read,
	.statfs = op_statfs,
};

static void usage(void)
{
	fprintf(stderr, "usage: passthrough [-f] [-o reply=buf|data] [-o max_threads=N] SRC MOUNTPOINT\n");
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *cfg;
	struct fuse_session *se;
	const char *src = NULL, *mnt = NULL;
	unsigned threads = 16;
	int rc = 1;

	if (fuse_opt_add_arg(&args, argv[0]) < 0)
		return 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-f"))
			continue;
		if (!strcmp(a, "-o") && i + 1 < argc) {
			char *opts = strdup(argv[++i]), *save = NULL;
			for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
				if (!strcmp(o, "reply=data"))
					pt.reply_data = true;
				else if (!strcmp(o, "reply=buf"))
					pt.reply_data = false;
				else if (!strncmp(o, "max_threads=", 12))
					threads = (unsigned)strtoul(o + 12, NULL, 10);
				else {
					fprintf(stderr, "passthrough: unknown option %s\n", o);
					return 1;
				}
			}
			free(opts);
		} else if (a[0] == '-') {
			usage();
			return 1;
		} else if (!src) {
			src = a;
		} else if (!mnt) {
			mnt = a;
		} else {
			usage();
			return 1;
		}
	}
	if (!src || !mnt || threads < 1) {
		usage();
		return 1;
	}
	if (scan(src) < 0)
		return 1;
	pt.mnt_real = realpath(mnt, NULL);
	if (fuse_opt_add_arg(&args, "-oro,default_permissions,subtype=" SUBTYPE) < 0 ||
	    fuse_opt_add_arg(&args, "-ofsname=" SUBTYPE) < 0)
		return 1;
	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se) < 0)
		goto out;
	if (fuse_session_mount(se, mnt) < 0)
		goto out_signals;
	cfg = fuse_loop_cfg_create();
	if (cfg) {
		fuse_loop_cfg_set_max_threads(cfg, threads);
		fuse_loop_cfg_set_idle_threads(cfg, threads);
		rc = fuse_session_loop_mt(se, cfg) ? 1 : 0;
		fuse_loop_cfg_destroy(cfg);
	}
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out:
	fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	for (size_t i = 0; i < pt.n; i++) {
		close(pt.files[i].fd);
		free(pt.files[i].name);
	}
	free(pt.files);
	free(pt.mnt_real);
	return rc;
}
