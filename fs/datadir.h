/*
 * datadir.h — where sdafs finds what was installed with it (datadir.c).
 */
#ifndef SDAFS_DATADIR_H
#define SDAFS_DATADIR_H

/* The directories -o adapter=NAME searches for NAME.json after the
 * built-ins, in order (NULL-terminated; computed once). */
const char *const *datadir_adapter_dirs(void);

#endif
