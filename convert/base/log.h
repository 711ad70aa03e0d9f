/*
 * log.h — the daemon's log.
 *
 * Every line goes to a small ring of the last SD_LOG_RING lines, which
 * .sdafs-stats shows, so the reason a read failed can always be found;
 * with -o log=FILE to that file too, with a timestamp.  Before the daemon
 * detaches, lines also go to stderr, where the user who mounted sees them;
 * after, to syslog when a syslog socket answers (a container often has
 * none) and no log file was given.  Messages follow err.h: they name the
 * file, the tensor and the problem.
 */
#ifndef SDAFS_LOG_H
#define SDAFS_LOG_H

#define SD_LOG_RING 20

/* Log a line (no trailing newline needed).  Safe from any thread. */
void sd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* From now on the process has left its terminal: no more stderr; syslog
 * when there is a syslog socket and no log file. */
void sd_log_detached(void);

/*
 * Append every line from now on to the file at path (created 0600 if it
 * does not exist), opened now so a relative path means what it meant
 * where sdafs started.  0, or a negative errno with a message.
 */
int sd_log_to_file(const char *path, char *err);

/* Call each(line, arg) on the ring's lines, oldest first. */
void sd_log_recent(void (*each)(const char *line, void *arg), void *arg);

#endif
