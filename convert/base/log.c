/*
 * log.c — the daemon's log (see log.h).
 *
 * A line is formatted once, with control characters made visible (a tensor
 * name cannot forge a second line), then handed to each place it goes; the
 * ring is the one piece of shared state and takes a lock, and the file gets
 * one write(2) per line, which O_APPEND keeps whole among threads.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

#define LINE_MAX_LEN 2048
#define STAMP_LEN 48

static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static char ring[SD_LOG_RING][STAMP_LEN + LINE_MAX_LEN];
static unsigned ring_next, ring_used;

static int log_fd = -1;
static bool detached, to_syslog;

/* 2026-12-07T23:11:25.123+0100 */
static void stamp(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	char date[24], zone[8];

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	snprintf(buf, size, "%s.%03d%s", date, (int)(ts.tv_nsec / 1000000) % 1000, zone);
}

static void remember(const char *when, const char *msg)
{
	pthread_mutex_lock(&ring_lock);
	snprintf(ring[ring_next], sizeof(ring[0]), "%s %s", when, msg);
	ring_next = (ring_next + 1) % SD_LOG_RING;
	if (ring_used < SD_LOG_RING)
		ring_used++;
	pthread_mutex_unlock(&ring_lock);
}

static void append_to_file(const char *when, const char *msg)
{
	char line[LINE_MAX_LEN + STAMP_LEN + 32];
	int n = snprintf(line, sizeof(line), "%s sdafs[%ld]: %s\n", when, (long)getpid(), msg);

	if (n >= (int)sizeof(line)) {
		n = (int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (write(log_fd, line, (size_t)n) < 0) {
		/* nowhere left to say so; the ring still has it */
	}
}

void sd_log(const char *fmt, ...)
{
	char msg[LINE_MAX_LEN], when[STAMP_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	stamp(when, sizeof(when));
	remember(when, msg);
	if (log_fd >= 0)
		append_to_file(when, msg);
	if (!detached)
		fprintf(stderr, "sdafs: %s\n", msg);
	else if (to_syslog)
		syslog(LOG_ERR, "%s", msg);
}

/* Would syslog(3) reach a daemon?  glibc sends to /dev/log, datagram or
 * stream; without a listener there the lines would be lost. */
static bool syslog_socket_answers(void)
{
	static const int types[] = { SOCK_DGRAM, SOCK_STREAM };
	struct sockaddr_un addr = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
		bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
		if (fd >= 0)
			close(fd);
		if (ok)
			return true;
	}
	return false;
}

void sd_log_detached(void)
{
	to_syslog = log_fd < 0 && syslog_socket_answers();
	if (to_syslog)
		openlog("sdafs", LOG_PID, LOG_DAEMON);
	detached = true;
}

int sd_log_to_file(const char *path, char *err)
{
	struct stat st;
	/* O_NONBLOCK: a FIFO without a reader is refused instead of hanging */
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);

	if (fd < 0)
		return sd_err(err, -errno, "log=%s: cannot open it for appending: %s", path,
			      strerror(errno));
	if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode))) {
		close(fd);
		return sd_err(err, -EINVAL, "log=%s: not a regular file", path);
	}
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	return 0;
}

void sd_log_recent(void (*each)(const char *line, void *arg), void *arg)
{
	pthread_mutex_lock(&ring_lock);
	for (unsigned i = 0; i < ring_used; i++)
		each(ring[(ring_next + SD_LOG_RING - ring_used + i) % SD_LOG_RING], arg);
	pthread_mutex_unlock(&ring_lock);
}
