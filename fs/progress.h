/*
 * progress.h — how far sdafs convert or verify has got, on stderr
 * (progress.c): on a terminal a bar redrawn in place (bytes done of the
 * total, rate, time left, the file being worked on), otherwise a plain
 * line every few seconds, so a log stays readable.
 */
#ifndef SDAFS_PROGRESS_H
#define SDAFS_PROGRESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "units.h"

struct progress {
	struct units_progress *p;
	const char *verb;       /* "convert", "verify" */
	bool quiet, tty, running, stop;
	unsigned interval_ms;
	struct timespec start;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

/* Start showing p (nothing when quiet); the clock starts here. */
void progress_start(struct progress *pr, const char *verb, struct units_progress *p,
		    bool quiet);
/* Show the last state and stop. */
void progress_stop(struct progress *pr);
/* Seconds since progress_start. */
double progress_seconds(const struct progress *pr);

/* n bytes in words: "512 B", "3.1 MiB", "1.25 GiB". */
void progress_bytes(char *buf, size_t len, double n);

#endif
