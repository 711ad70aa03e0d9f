/* bdi.c — see bdi.h. */
#include "bdi.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void bdi_raise_readahead(const char *mountpoint, const char *fstype, unsigned kb)
{
	char line[4096], path[128], type[128];
	unsigned maj = 0, min = 0;
	bool found = false;
	FILE *f;

	if (!mountpoint || geteuid() != 0 || !(f = fopen("/proc/self/mountinfo", "r")))
		return;
	snprintf(type, sizeof(type), " - %s ", fstype);
	while (fgets(line, sizeof(line), f)) {
		char mnt[4096];
		unsigned a, b;
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &a, &b, mnt) == 3 &&
		    !strcmp(mnt, mountpoint) && strstr(line, type)) {
			maj = a;
			min = b;
			found = true;
		}
	}
	fclose(f);
	if (!found)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", maj, min);
	if ((f = fopen(path, "w"))) {
		fprintf(f, "%u", kb);
		fclose(f);
	}
}
