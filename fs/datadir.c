/*
 * datadir.c — where sdafs finds what was installed with it (see datadir.h).
 *
 * The one idea: look relative to the running binary, not to a path fixed at
 * build time, so an installed tree works wherever it was installed
 * (PREFIX/bin/sdafs finds PREFIX/share/sdafs/adapters, whatever PREFIX or
 * DESTDIR were) and a binary run from a source checkout (build/sdafs,
 * build/asan/sdafs) finds the checkout's examples/adapters.
 */
#include "datadir.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_DIRS 4

const char *const *datadir_adapter_dirs(void)
{
	static char paths[MAX_DIRS][PATH_MAX + 64];
	static const char *dirs[MAX_DIRS + 1];
	static const char *const rel[] = {
		"../share/sdafs/adapters",      /* PREFIX/bin/sdafs: installed tables */
		"../examples/adapters",         /* build/sdafs in a source checkout */
		"../../examples/adapters",      /* build/asan/sdafs */
	};
	char exe[PATH_MAX];
	size_t n = 0;

	if (dirs[0] || !realpath("/proc/self/exe", exe))
		return dirs;
	*strrchr(exe, '/') = '\0';
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		char *real;
		snprintf(paths[n], sizeof(paths[n]), "%s/%s", exe, rel[i]);
		if (!(real = realpath(paths[n], NULL)))
			continue;       /* only directories that are there */
		snprintf(paths[n], sizeof(paths[n]), "%s", real);
		free(real);
		dirs[n] = paths[n];
		n++;
	}
	return dirs;
}
