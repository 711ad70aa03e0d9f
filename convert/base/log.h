/*
 * log.h — the daemon's log.
 *
 * Before the daemon detaches, lines go to stderr, where the user who
 * mounted sees them; after, to syslog.  Messages follow err.h: they name the
 * file, the tensor and the problem.
 */
#ifndef SDAFS_LOG_H
#define SDAFS_LOG_H

/* Log a line (no trailing newline needed). */
void sd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* From now on, log to syslog: the process has left its terminal. */
void sd_log_detached(void);

#endif
