/*
 * passthrough.c — materialized view files read by the kernel itself.
 *
 * Linux 6.9+ can serve a FUSE file straight from a backing file (FUSE
 * passthrough): no request reaches the daemon, so a materialized copy reads
 * at the speed of the local disk.  libfuse 3.14 has no API for it, but the
 * protocol is small: the INIT reply asks for it (FUSE_PASSTHROUGH in flags2,
 * a stack depth of 1), a backing file is registered on /dev/fuse with an
 * ioctl that returns an id, and an OPEN reply names that id.  To patch those
 * two replies we mount /dev/fuse ourselves and hand libfuse a custom writev;
 * the op that is about to reply leaves a note in a thread-local variable,
 * since libfuse writes a reply on the thread that made it.  Needs root.
 */
#include "passthrough.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"

struct passthrough {
	struct view *view;
	char *mountpoint;
	int devfd;              /* /dev/fuse, which we mounted */
	pthread_mutex_t mu;
	bool usable;            /* until the kernel refuses a backing file */
	int32_t *backing_ids;   /* per layout file, -1 until registered */
};

/* From the kernel's <linux/fuse.h> (7.40), which Debian 12's headers predate. */
struct backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define BACKING_OPEN            _IOW(229, 1, struct backing_map)
#define FLAGS2_PASSTHROUGH      (1u << 5)       /* FUSE_PASSTHROUGH = 1 << 37 */
#define INIT_OUT_FLAGS2         32              /* offsets in fuse_init_out */
#define INIT_OUT_STACK_DEPTH    36
#define OPEN_OUT_FLAGS          8               /* offsets in fuse_open_out */
#define OPEN_OUT_BACKING_ID     12
#define FOPEN_DIRECT_IO_BIT     (1u << 0)
#define FOPEN_KEEP_CACHE_BIT    (1u << 1)
#define FOPEN_PASSTHROUGH_BIT   (1u << 7)

static _Thread_local bool patch_init;
static _Thread_local int32_t patch_backing = -1;

static void patch_u32(struct iovec *iov, size_t off, uint32_t set, uint32_t clear)
{
	uint32_t v;

	memcpy(&v, (char *)iov->iov_base + off, sizeof(v));
	v = (v & ~clear) | set;
	memcpy((char *)iov->iov_base + off, &v, sizeof(v));
}

static ssize_t pt_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)userdata;
	if (patch_init && count >= 2 && iov[1].iov_len >= INIT_OUT_STACK_DEPTH + 4) {
		patch_u32(&iov[1], INIT_OUT_FLAGS2, FLAGS2_PASSTHROUGH, 0);
		patch_u32(&iov[1], INIT_OUT_STACK_DEPTH, 1, UINT32_MAX);
		patch_init = false;
	}
	if (patch_backing >= 0 && count >= 2 && iov[1].iov_len >= OPEN_OUT_BACKING_ID + 4) {
		patch_u32(&iov[1], OPEN_OUT_FLAGS, FOPEN_PASSTHROUGH_BIT,
			  FOPEN_DIRECT_IO_BIT | FOPEN_KEEP_CACHE_BIT);
		memcpy((char *)iov[1].iov_base + OPEN_OUT_BACKING_ID, &patch_backing,
		       sizeof(patch_backing));
		patch_backing = -1;
	}
	return writev(fd, iov, count);
}

static ssize_t pt_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	return read(fd, buf, len);
}

struct passthrough *pt_mount(struct fuse_session *se, const char *mountpoint,
			     const char *fsname, bool allow_other, struct view *v, int *err)
{
	static const struct fuse_custom_io io = { .writev = pt_writev, .read = pt_read };
	struct passthrough *pt = calloc(1, sizeof(*pt));
	char opts[256];
	int fd = -1;

	*err = -ENOMEM;
	if (!pt || !(pt->mountpoint = strdup(mountpoint)) ||
	    !(pt->backing_ids = malloc((v->layout.n + 1) * sizeof(*pt->backing_ids))))
		goto fail;
	for (size_t i = 0; i < v->layout.n; i++)
		pt->backing_ids[i] = -1;
	if ((fd = open("/dev/fuse", O_RDWR | O_CLOEXEC)) < 0) {
		*err = -errno;
		goto fail;
	}
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=%u,group_id=%u,default_permissions%s",
		 fd, getuid(), getgid(), allow_other ? ",allow_other" : "");
	if (mount(fsname ? fsname : "sdafs", mountpoint, "fuse.sdafs",
		  MS_NOSUID | MS_NODEV | MS_RDONLY, opts) < 0) {
		*err = -errno;
		goto fail;
	}
	if (fuse_session_custom_io(se, &io, fd) < 0) {
		umount2(mountpoint, MNT_DETACH);
		*err = -EIO;
		goto fail;
	}
	pt->view = v;
	pt->devfd = fd;
	pt->usable = true;
	pthread_mutex_init(&pt->mu, NULL);
	return pt;
fail:
	if (fd >= 0)
		close(fd);
	if (pt) {
		free(pt->mountpoint);
		free(pt->backing_ids);
		free(pt);
	}
	return NULL;
}

void pt_unmount(struct passthrough *pt)
{
	if (!pt)
		return;
	umount2(pt->mountpoint, MNT_DETACH);    /* fine if already gone */
	pthread_mutex_destroy(&pt->mu);
	free(pt->mountpoint);
	free(pt->backing_ids);
	free(pt);               /* the session closes devfd */
}

void pt_note_init(struct passthrough *pt)
{
	if (pt)
		patch_init = true;
}

/* The backing id of file's copy, registering it the first time. */
static int32_t backing_id(struct passthrough *pt, size_t file)
{
	int32_t id;

	pthread_mutex_lock(&pt->mu);
	id = pt->backing_ids[file];
	if (id < 0 && pt->usable) {
		struct backing_map m = { atomic_load(&pt->view->layout.files[file].mat_fd), 0, 0 };
		id = ioctl(pt->devfd, BACKING_OPEN, &m);
		if (id < 0) {
			sd_log("kernel FUSE passthrough is not available (%s); materialized copies are read through the daemon",
			       strerror(errno));
			pt->usable = false;
		} else {
			pt->backing_ids[file] = id;
		}
	}
	pthread_mutex_unlock(&pt->mu);
	return id;
}

bool pt_open(fuse_req_t req, struct passthrough *pt, size_t file,
	     struct fuse_file_info *fi)
{
	int32_t id;

	if (!pt || atomic_load(&pt->view->layout.files[file].mat_fd) < 0 ||
	    (id = backing_id(pt, file)) < 0)
		return false;
	fi->keep_cache = 0;
	fi->direct_io = 0;
	patch_backing = id;
	fuse_reply_open(req, fi);
	patch_backing = -1;
	atomic_fetch_add(&pt->view->stats.passthrough_opens, 1);
	return true;
}
