/*
 * perm.c — the read permission of source files (see perm.h), and of the
 * directories between a file and the source directory.
 *
 * The source directory itself is what the mount shows as its root, as a
 * bind mount of it would: the directories above it are the mounting user's
 * choice.  A file opened through a symlink is the link's target, whose
 * directories may keep out users the source directory lets in (a link to
 * a 0644 file under a 0700 home), so each directory on the way from the
 * target up to the first one that also holds the source directory narrows
 * who may read it.
 */
#include "source.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#define ACL_XATTR "system.posix_acl_access"

struct src_perm perm_of(const struct stat *st, bool has_acl, bool dir)
{
	mode_t bits = dir ? 0555 : 0444;

	if (has_acl)
		bits &= 0700;
	return (struct src_perm){ st->st_uid, st->st_gid, st->st_mode & bits };
}

void perm_narrow(struct src_perm *acc, const struct src_perm *with, mode_t want)
{
	bool wu = with->mode & (want << 6), wg = with->mode & (want << 3),
	     wo = with->mode & want;
	bool user = with->uid == acc->uid ? wu : wg && wo;
	bool group = wg && (with->gid == acc->gid || wo);
	bool other = wg && wo;

	if (!user)
		acc->mode &= ~(mode_t)S_IRUSR;
	if (!group)
		acc->mode &= ~(mode_t)S_IRGRP;
	if (!other)
		acc->mode &= ~(mode_t)S_IROTH;
}

bool perm_has_acl(int fd, const char *path)
{
	ssize_t n = fd >= 0 ? fgetxattr(fd, ACL_XATTR, NULL, 0) : getxattr(path, ACL_XATTR, NULL, 0);

	return n >= 0;
}

/* Does directory dir (a real path) hold the real path sub, or is it sub? */
static bool holds(const char *dir, const char *sub)
{
	size_t n = strlen(dir);

	if (n == 1 && dir[0] == '/')
		return true;
	return !strncmp(dir, sub, n) && (sub[n] == '\0' || sub[n] == '/');
}

void source_file_perm(const struct source *s, struct src_file *f, const struct stat *st)
{
	char proc[64], real[PATH_MAX];
	ssize_t n;

	f->perm = perm_of(st, perm_has_acl(f->fd, NULL), false);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
	n = readlink(proc, real, sizeof(real) - 1);
	if (n <= 0 || n >= (ssize_t)sizeof(real) - 1 || real[0] != '/' || !s->real_dir) {
		f->perm.mode &= S_IRUSR;        /* where it is is unknown: its owner only */
		return;
	}
	real[n] = '\0';
	for (char *slash = strrchr(real, '/'); slash; slash = strrchr(real, '/')) {
		struct stat dst;
		slash[slash == real] = '\0';    /* the parent; "/" stays "/" */
		if (holds(real, s->real_dir))
			return;
		if (stat(real, &dst) < 0) {
			f->perm.mode &= S_IRUSR;
			return;
		}
		struct src_perm d = perm_of(&dst, perm_has_acl(-1, real), true);
		perm_narrow(&f->perm, &d, S_IXOTH);
	}
}
