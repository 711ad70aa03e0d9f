/*
 * perm.h — who may read a piece of the source, so that the view gives no
 * one more than the source does.
 *
 * A view file shows an owner, a group and read bits.  A file made from
 * several sources may be read only by those who may read every one of
 * them, and a source reached through directories the source directory does
 * not contain (a symlink out of it, .hf_metadata/) only by those who may
 * also search those directories.  One owner, group and set of bits cannot
 * always say that exactly, so the fold errs on the side of refusing: a
 * class keeps its bit only when every part grants it to that whole class.
 */
#ifndef SDAFS_PERM_H
#define SDAFS_PERM_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

struct src_perm {
	uid_t uid;
	gid_t gid;
	mode_t mode;            /* permission bits: r (files), r and x (dirs) */
};

/* What st (a file, or a directory when dir) grants, from its owner,
 * group and bits; an object with an extended ACL keeps only its owner's
 * bits, since the ACL may refuse users its mode bits let in. */
struct src_perm perm_of(const struct stat *st, bool has_acl, bool dir);

/*
 * Narrow acc to those who may also use `with` in the way `want` says
 * (S_IROTH: read it, S_IXOTH: search it).  acc keeps its owner and group;
 * its owner keeps his bit when he owns `with` and its owner may, or when
 * its group and others may; its group's members when `with` grants them
 * (its own group, or others too); others when `with`'s group and others
 * may (a member of with's group is refused when its group bit is off).
 */
void perm_narrow(struct src_perm *acc, const struct src_perm *with, mode_t want);

/* Has the open file fd (or path, when fd < 0) an extended ACL? */
bool perm_has_acl(int fd, const char *path);

#endif
