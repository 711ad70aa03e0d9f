/* log.c — the daemon's log (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <syslog.h>

static bool detached;

void sd_log_detached(void)
{
	detached = true;
	openlog("sdafs", LOG_PID, LOG_DAEMON);
}

void sd_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (detached) {
		vsyslog(LOG_ERR, fmt, ap);
	} else {
		fputs("sdafs: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}
