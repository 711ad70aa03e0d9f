/*
 * bdi.h — raising the kernel read-ahead of a FUSE mount to the largest
 * request (1 MiB, or a little less when replies are spliced).
 *
 * Buffered readers then send requests of that size.  conn->max_readahead can only
 * lower the read-ahead, and the kernel applies it when it reads the INIT
 * reply, so call this on the first request after INIT.  Needs root; the
 * mount's bdi is found through /proc/self/mountinfo, which does not touch
 * the FUSE mount itself.  Shared by sdafs and the benchmark's FUSE floor.
 */
#ifndef SDAFS_BDI_H
#define SDAFS_BDI_H

/* mountpoint: its resolved path; fstype: e.g. "fuse.sdafs"; kb: the
 * read-ahead in KiB (the largest request). */
void bdi_raise_readahead(const char *mountpoint, const char *fstype, unsigned kb);

#endif
