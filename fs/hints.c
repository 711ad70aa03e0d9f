/*
 * hints.c — what to try instead, when a source cannot be mounted (see
 * hints.h).
 *
 * An Automodel training run saves epoch_E_step_S/ with the weights in
 * model/ beside optim/, dataloader/ and rng/; pointing sdafs at the epoch
 * directory is the natural mistake, and the scan's own message (no
 * safetensors here) does not say where they are.
 */
#include "hints.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Does dir hold a *.safetensors file? */
static bool holds_safetensors(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;

	if (!d)
		return false;
	while (!found && (e = readdir(d))) {
		size_t n = strlen(e->d_name);
		found = n > 12 && !strcmp(e->d_name + n - 12, ".safetensors");
	}
	closedir(d);
	return found;
}

void hint_source(const char *src)
{
	char model[4096];
	size_t n = strlen(src);

	while (n > 1 && src[n - 1] == '/')
		n--;
	if (snprintf(model, sizeof(model), "%.*s/model", (int)n, src) >= (int)sizeof(model))
		return;
	if (holds_safetensors(model))
		fprintf(stderr, "sdafs: %.*s holds an Automodel checkpoint in model/ (as epoch_*_step_* directories do): mount %s\n",
			(int)n, src, model);
}
