/*
 * hints.h — what to try instead, when a source cannot be mounted (hints.c).
 */
#ifndef SDAFS_HINTS_H
#define SDAFS_HINTS_H

/* After a source failed to open: if it is the wrong directory of a
 * checkpoint a user plausibly meant (an Automodel epoch_*_step_* directory
 * holding model/), say which one to mount. */
void hint_source(const char *src);

#endif
