/* err.c — formatting helpers for the error convention in err.h. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sd_err(char *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		vsnprintf(err, SD_ERRLEN, fmt, ap);
		va_end(ap);
	}
	return code;
}

void sd_err_prefix(char *err, const char *fmt, ...)
{
	char old[SD_ERRLEN];
	char head[SD_ERRLEN];
	va_list ap;

	if (!err)
		return;
	memcpy(old, err, SD_ERRLEN);
	old[SD_ERRLEN - 1] = '\0';
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	snprintf(err, SD_ERRLEN, "%s: %s", head, old);
}
