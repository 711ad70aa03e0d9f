/* number.c — strict non-negative counts (see number.h). */
#include "number.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

long sd_whole_number(const char *s)
{
	char *end;
	long v;

	if (!s || !isdigit((unsigned char)*s))
		return -1;      /* no sign, no leading space, not empty */
	errno = 0;
	v = strtol(s, &end, 10);
	return errno || *end ? -1 : v;
}
