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
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/uio.h>
#include <unistd.h>

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

int pt_mount(struct sdafs *fs, bool allow_other)
{
	static const struct fuse_custom_io io = { .writev = pt_writev, .read = pt_read };
	char opts[256];
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=%u,group_id=%u,default_permissions%s",
		 fd, getuid(), getgid(), allow_other ? ",allow_other" : "");
	if (mount("sdafs", fs->mountpoint_real, "fuse.sdafs",
		  MS_NOSUID | MS_NODEV | MS_RDONLY, opts) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (fuse_session_custom_io(fs->se, &io, fd) < 0) {
		umount2(fs->mountpoint_real, MNT_DETACH);
		return -EIO;
	}
	fs->devfd = fd;
	return 0;
}

void pt_unmount(struct sdafs *fs)
{
	umount2(fs->mountpoint_real, MNT_DETACH);       /* fine if already gone */
}

void pt_note_init(struct sdafs *fs)
{
	if (fs->devfd >= 0)
		patch_init = true;
}

/* The backing id of file's copy, registering it the first time. */
static int32_t backing_id(struct sdafs *fs, size_t file)
{
	int32_t id;

	pthread_mutex_lock(&fs->pt_mu);
	id = fs->backing_ids[file];
	if (id < 0 && fs->passthrough) {
		struct backing_map m = { atomic_load(&fs->view.layout.files[file].mat_fd), 0, 0 };
		id = ioctl(fs->devfd, BACKING_OPEN, &m);
		if (id < 0) {
			sd_log("kernel FUSE passthrough is not available (%s); materialized copies are read through the daemon",
			       strerror(errno));
			fs->passthrough = false;
		} else {
			fs->backing_ids[file] = id;
		}
	}
	pthread_mutex_unlock(&fs->pt_mu);
	return id;
}

bool pt_open(fuse_req_t req, struct sdafs *fs, size_t file, struct fuse_file_info *fi)
{
	int32_t id;

	if (fs->devfd < 0 || !fs->backing_ids ||
	    atomic_load(&fs->view.layout.files[file].mat_fd) < 0 ||
	    (id = backing_id(fs, file)) < 0)
		return false;
	fi->keep_cache = 0;
	fi->direct_io = 0;
	patch_backing = id;
	fuse_reply_open(req, fi);
	patch_backing = -1;
	atomic_fetch_add(&fs->view.stats.passthrough_opens, 1);
	return true;
}
