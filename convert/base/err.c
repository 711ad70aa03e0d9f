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
	char head[SD_ERRLEN];
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	/* The prefix gets at most half the buffer; the old text keeps the rest. */
	size_t hn = strnlen(head, SD_ERRLEN / 2);
	size_t keep = strnlen(err, SD_ERRLEN - 1);
	if (hn + 2 + keep > SD_ERRLEN - 1)
		keep = SD_ERRLEN - 1 - hn - 2;
	memmove(err + hn + 2, err, keep);
	memcpy(err, head, hn);
	err[hn] = ':';
	err[hn + 1] = ' ';
	err[hn + 2 + keep] = '\0';
}
