/* grow.c — see grow.h. */
#include "grow.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

int sd_grow(void *arrp, size_t *cap, size_t need, size_t elem, char *err)
{
	void *arr;
	size_t ncap = *cap ? *cap : 8;

	if (need <= *cap)
		return 0;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / elem)
			return sd_err(err, -ENOMEM, "out of memory");
		ncap *= 2;
	}
	memcpy(&arr, arrp, sizeof(arr));
	arr = realloc(arr, ncap * elem);
	if (!arr)
		return sd_err(err, -ENOMEM, "out of memory");
	memcpy(arrp, &arr, sizeof(arr));
	*cap = ncap;
	return 0;
}
