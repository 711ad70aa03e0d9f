/*
 * bdi.h — raising the kernel read-ahead of a FUSE mount to 1 MiB.
 *
 * Buffered readers then send 1 MiB requests.  conn->max_readahead can only
 * lower the read-ahead, and the kernel applies it when it reads the INIT
 * reply, so call this on the first request after INIT.  Needs root; the
 * mount's bdi is found through /proc/self/mountinfo, which does not touch
 * the FUSE mount itself.  Shared by sdafs and the benchmark's FUSE floor.
 */
#ifndef SDAFS_BDI_H
#define SDAFS_BDI_H

/* mountpoint: its resolved path; fstype: e.g. "fuse.sdafs". */
void bdi_raise_readahead(const char *mountpoint, const char *fstype);

#endif
