/*
 * mountpoint.c — the mount point: checked before anything is scanned,
 * created for per-rank mounts, and the real cause named when mounting fails
 * (see mountpoint.h).
 *
 * The one idea: libfuse's own failure ("fuse: bad mount point", or nothing
 * at all when fusermount3 refuses) does not say what to change, but every
 * cause a user can fix is visible from here with stat() and access() on the
 * same paths the kernel and fusermount3 look at, so we look before and
 * after and say which it is.
 */
#include "mountpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mountpoint_check(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			fprintf(stderr, "sdafs: mount point %s does not exist; create it first (mkdir -p %s)\n",
				path, path);
		else if (errno == ENOTCONN)
			fprintf(stderr, "sdafs: mount point %s is a FUSE mount whose daemon is gone; unmount it first (fusermount3 -u %s)\n",
				path, path);
		else
			fprintf(stderr, "sdafs: mount point %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "sdafs: mount point %s is not a directory\n", path);
		return -1;
	}
	return 0;
}

/* True at the end of a path component of p: the prefix p[0..i) names one. */
static bool component_end(const char *p, size_t i)
{
	return i > 0 && (p[i] == '/' || p[i] == '\0') && p[i - 1] != '/';
}

int mountpoint_make(const char *path, struct made_dirs *m)
{
	char *p;
	size_t len;

	memset(m, 0, sizeof(*m));
	/* absolute: the daemon removes it after fuse_daemonize's chdir("/") */
	if (path[0] != '/') {
		char *cwd = getcwd(NULL, 0);
		int n = cwd ? asprintf(&m->path, "%s/%s", cwd, path) : -1;
		free(cwd);
		if (n < 0)
			m->path = NULL;
	} else {
		m->path = strdup(path);
	}
	if (!(p = m->path))
		return -1;
	len = strlen(p);
	/* From the top down, every component that is missing is made. */
	for (size_t i = 1; i <= len; i++) {
		if (!component_end(p, i))
			continue;
		char saved = p[i];
		p[i] = '\0';
		int rc = mkdir(p, 0755), e = errno;
		if (rc == 0 && !m->top)
			m->top = i;     /* p[0..top) is the first directory we made */
		if (rc < 0 && e != EEXIST) {
			fprintf(stderr, "sdafs: cannot create the mount point %s: %s\n", p, strerror(e));
			p[i] = saved;
			mountpoint_unmake(m);
			return -1;
		}
		p[i] = saved;
	}
	if (mountpoint_check(path) < 0) {
		mountpoint_unmake(m);
		return -1;
	}
	return 0;
}

void mountpoint_unmake(struct made_dirs *m)
{
	char *p = m->path;

	/* Deepest first; a directory someone has put something into stays. */
	for (size_t i = m->top && p ? strlen(p) : 0; m->top && i >= m->top; i--) {
		if (!component_end(p, i))
			continue;
		p[i] = '\0';
		if (rmdir(p) < 0)
			break;
	}
	free(p);
	memset(m, 0, sizeof(*m));
}

void mountpoint_explain(const char *path)
{
	struct stat st;
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT) {
		fprintf(stderr, "sdafs: there is no /dev/fuse: load the fuse module (modprobe fuse), or in a container pass the device in (--device /dev/fuse)\n");
		return;
	}
	if (fd >= 0)
		close(fd);
	else if (access("/usr/bin/fusermount3", X_OK) < 0 && access("/bin/fusermount3", X_OK) < 0) {
		fprintf(stderr, "sdafs: /dev/fuse: %s, and there is no fusermount3 to mount for this user (install fuse3, or ask for access to /dev/fuse)\n",
			strerror(errno));
		return;
	}
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		mountpoint_check(path);
		return;
	}
	if (geteuid() != 0 && access(path, W_OK) < 0) {
		fprintf(stderr, "sdafs: cannot mount on %s: this user may not write to it, and fusermount3 mounts only on directories its user owns or may write to\n",
			path);
		return;
	}
	fprintf(stderr, "sdafs: cannot mount on %s (see the fuse message above; is something else mounted there, or is /etc/fuse.conf's mount_max reached?)\n",
		path);
}
