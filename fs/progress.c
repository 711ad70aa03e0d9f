/*
 * progress.c — the progress display of sdafs convert and verify (see
 * progress.h).
 *
 * A thread of its own reads the workers' counters (atomics, so the workers
 * never wait for it) and draws; on a terminal it redraws one line in place
 * with \r and erase-to-end-of-line, elsewhere it prints a whole line now
 * and then.
 */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define TTY_MS 200              /* redraw a terminal's bar this often */
#define LOG_MS 5000             /* a plain line this often */
#define BAR 12                  /* characters of the bar itself */

/* The unit to show n in, and how many bytes it is. */
static const char *unit_of(double n, double *scale)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;

	for (*scale = 1; n >= 1024 && u < 4; u++) {
		n /= 1024;
		*scale *= 1024;
	}
	return unit[u];
}

/* n in the unit scale says, with three significant digits or so. */
static void in_unit(char *buf, size_t len, double n, double scale)
{
	double v = n / scale;

	snprintf(buf, len, "%.*f", scale == 1 ? 0 : v < 10 ? 2 : v < 100 ? 1 : 0, v);
}

void progress_bytes(char *buf, size_t len, double n)
{
	double scale;
	const char *unit = unit_of(n, &scale);
	char v[32];

	in_unit(v, sizeof(v), n, scale);
	snprintf(buf, len, "%s %s", v, unit);
}

double progress_seconds(const struct progress *pr)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - pr->start.tv_sec) + (now.tv_nsec - pr->start.tv_nsec) / 1e9;
}

static int term_width(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
		return ws.ws_col;
	return 80;
}

/* Time left at the rate so far, as ", ETA m:ss", or "" when unknown. */
static void eta(char *buf, size_t len, uint64_t done, uint64_t total, double rate)
{
	buf[0] = '\0';
	if (rate > 0 && done < total) {
		unsigned long left = (unsigned long)((total - done) / rate + 0.5);
		snprintf(buf, len, ", ETA %lu:%02lu", left / 60, left % 60);
	}
}

/* A log line's "1.31 GiB of 2.90 GiB (45%), 412 MiB/s, ETA 0:04", or a
 * bar's shorter "45%  1.31/2.90 GiB  412 MiB/s  ETA 0:04". */
static void status(const struct progress *pr, char *buf, size_t len, int *percent)
{
	uint64_t done = atomic_load(&pr->p->done), total = pr->p->total;
	double secs = progress_seconds(pr), rate = secs > 0 ? done / secs : 0;
	char d[32], t[32], r[32], e[32];

	*percent = total ? (int)(done * 100 / total) : 100;
	progress_bytes(d, sizeof(d), (double)done);
	progress_bytes(t, sizeof(t), (double)total);
	progress_bytes(r, sizeof(r), rate);
	eta(e, sizeof(e), done, total, rate);
	if (!pr->tty) {
		snprintf(buf, len, "%s of %s (%d%%), %s/s%s", d, t, *percent, r, e);
		return;
	}
	/* done in the total's unit: "1.31/2.90 GiB" */
	double scale;
	const char *unit = unit_of((double)total, &scale);
	in_unit(d, sizeof(d), (double)done, scale);
	in_unit(t, sizeof(t), (double)total, scale);
	snprintf(buf, len, "%3d%%  %s/%s %s  %s/s%s%s", *percent, d, t, unit, r, e[0] ? "  " : "",
		 e[0] ? e + 2 : "");
}

/* On a terminal: "[#####...] 1.31 GiB of 2.90 GiB (45%), ...  FILE" in one
 * line of the terminal's width, the file name cut from the left if need be
 * (its end tells the shards apart). */
static void draw_bar(int percent, const char *line, const char *file)
{
	char out[1024], bar[BAR + 1];
	int width = term_width(), room;

	for (int i = 0; i < BAR; i++)
		bar[i] = i < percent * BAR / 100 ? '#' : '.';
	bar[BAR] = '\0';
	int n = snprintf(out, sizeof(out), "[%s] %s", bar, line);
	room = width - 1 - n - 2;
	if (file && room >= 8) {
		size_t len = strlen(file);
		if ((int)len > room)
			snprintf(out + n, sizeof(out) - (size_t)n, "  ...%s", file + len - (size_t)(room - 3));
		else
			snprintf(out + n, sizeof(out) - (size_t)n, "  %s", file);
	}
	fprintf(stderr, "\r%s\033[K", out);
	fflush(stderr);
}

static void draw(struct progress *pr)
{
	char line[256];
	const char *file = atomic_load(&pr->p->current);
	int percent;

	status(pr, line, sizeof(line), &percent);
	if (pr->tty)
		draw_bar(percent, line, file);
	else
		fprintf(stderr, "sdafs %s: %s%s%s\n", pr->verb, line, file ? ", " : "", file ? file : "");
}

static void *run(void *arg)
{
	struct progress *pr = arg;

	pthread_mutex_lock(&pr->mu);
	if (pr->tty)
		draw(pr);
	while (!pr->stop) {
		struct timespec at;
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_sec += pr->interval_ms / 1000;
		at.tv_nsec += (long)(pr->interval_ms % 1000) * 1000000;
		if (at.tv_nsec >= 1000000000) {
			at.tv_sec++;
			at.tv_nsec -= 1000000000;
		}
		while (!pr->stop && pthread_cond_timedwait(&pr->cv, &pr->mu, &at) == 0)
			;
		if (!pr->stop)
			draw(pr);
	}
	pthread_mutex_unlock(&pr->mu);
	return NULL;
}

void progress_start(struct progress *pr, const char *verb, struct units_progress *p,
		    bool quiet)
{
	pthread_condattr_t ca;

	memset(pr, 0, sizeof(*pr));
	pr->p = p;
	pr->verb = verb;
	pr->quiet = quiet;
	pr->tty = isatty(STDERR_FILENO);
	pr->interval_ms = pr->tty ? TTY_MS : LOG_MS;
	clock_gettime(CLOCK_MONOTONIC, &pr->start);
	if (quiet)
		return;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pr->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&pr->mu, NULL);
	pr->running = pthread_create(&pr->thread, NULL, run, pr) == 0;
}

void progress_stop(struct progress *pr)
{
	if (!pr->running)
		return;
	pthread_mutex_lock(&pr->mu);
	pr->stop = true;
	pthread_cond_signal(&pr->cv);
	pthread_mutex_unlock(&pr->mu);
	pthread_join(pr->thread, NULL);
	pthread_mutex_destroy(&pr->mu);
	pthread_cond_destroy(&pr->cv);
	pr->running = false;
	if (pr->tty) {
		draw(pr);       /* where it ended */
		fputc('\n', stderr);
	}
}
