/*
 * status.h — `sdafs status [--wait] [MOUNTPOINT...]`: the sdafs mounts and
 * their prefetch progress (status.c).
 */
#ifndef SDAFS_STATUS_H
#define SDAFS_STATUS_H

/* argv[0] is "status".  The exit status: 0 fine, 1 a prefetch failed or a
 * mount is not there, 2 bad arguments. */
int status_main(int argc, char **argv);

#endif
