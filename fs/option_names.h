/*
 * option_names.h — which -o names sdafs takes, and the message for one it
 * does not (option_names.c).
 */
#ifndef SDAFS_OPTION_NAMES_H
#define SDAFS_OPTION_NAMES_H

#include <stdbool.h>

#include <fuse_opt.h>

/* A mount option libfuse takes itself (ro, allow_root, noatime, ...). */
bool options_for_libfuse(const char *arg);
/* Say that arg (an -o option or a flag) is unknown: the nearest name of
 * table, if one is close, and every -o name of table. */
void options_unknown(const struct fuse_opt *table, const char *arg);
/* Every -o list of argv joined with commas (malloc'ed; NULL: no memory). */
char *options_given(int argc, char **argv);

#endif
