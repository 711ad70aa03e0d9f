/*
 * io.h — whole reads and writes at an offset.
 *
 * pread and pwrite may move fewer bytes than asked (a signal, a file that
 * ends, a disk that fills for a moment), and a short write sets no errno.
 * These loop until every byte has moved, so a caller never mistakes part of
 * a transfer for all of it.
 */
#ifndef SDAFS_IO_H
#define SDAFS_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read len bytes at off: the number read, which is less than len only where
 * the file ends, or -errno. */
ssize_t sd_pread_full(int fd, void *dst, size_t len, uint64_t off);

/* Write len bytes at off: 0, or -errno (-EIO for a write that moved nothing
 * and gave no reason). */
int sd_pwrite_full(int fd, const void *src, size_t len, uint64_t off);

#endif
