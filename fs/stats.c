/*
 * stats.c — the text of MOUNTPOINT/.sdafs-stats (see stats.h).
 *
 * What the mount is comes first (source, mount point, view, options: what
 * findmnt cannot show), then the view's counters, then the progress of
 * background work.  `sdafs status` reads nothing else, so whatever it shows
 * a user can also read here.
 */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copies.h"

/* "hf->native" shows the native view, "native->hf (PEFT v5)" the HF one. */
static void view_name(const char *direction, char *buf, size_t len)
{
	const char *to = strstr(direction, "->");
	size_t n;

	to = to ? to + 2 : direction;
	n = strcspn(to, " ");
	snprintf(buf, len, "%.*s", (int)n, to);
}

static cJSON *copies_json(struct copies *copies)
{
	struct copy_progress p;
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	copies_progress(copies, &p);
	cJSON_AddStringToObject(o, "kind", "copies");
	cJSON_AddNumberToObject(o, "files_total", (double)p.files_total);
	cJSON_AddNumberToObject(o, "files_done", (double)p.files_done);
	cJSON_AddNumberToObject(o, "bytes_total", (double)p.bytes_total);
	cJSON_AddNumberToObject(o, "bytes_done", (double)p.bytes_done);
	cJSON_AddNumberToObject(o, "bytes_per_second", p.bytes_per_second);
	cJSON_AddNumberToObject(o, "errors", (double)p.errors);
	cJSON_AddBoolToObject(o, "done", p.done);
	return o;
}

/* -o mpi,prefetch: the shared tensors were broadcast before the mount. */
static cJSON *broadcast_json(const struct view *v)
{
	cJSON *o = cJSON_CreateObject();
	uint64_t tensors = 0, bytes = 0;

	if (!o)
		return NULL;
	for (size_t i = 0; i < v->plan.n; i++)
		if (v->plan.tensors[i].preload) {
			tensors++;
			bytes += v->plan.tensors[i].nbytes;
		}
	cJSON_AddStringToObject(o, "kind", "broadcast");
	cJSON_AddNumberToObject(o, "files_total", 0);
	cJSON_AddNumberToObject(o, "files_done", 0);
	cJSON_AddNumberToObject(o, "tensors", (double)tensors);
	cJSON_AddNumberToObject(o, "bytes_total", (double)bytes);
	cJSON_AddNumberToObject(o, "bytes_done", (double)bytes);
	cJSON_AddNumberToObject(o, "bytes_per_second", 0);
	cJSON_AddNumberToObject(o, "errors", 0);
	cJSON_AddBoolToObject(o, "done", true);
	return o;
}

char *fs_stats_json(struct sdafs *fs)
{
	cJSON *j = cJSON_CreateObject(), *pre = NULL;
	char view[32], *text = NULL;

	if (!j)
		return NULL;
	view_name(fs->view.plan.direction, view, sizeof(view));
	cJSON_AddStringToObject(j, "source", fs->source ? fs->source : fs->view.src.dir);
	cJSON_AddStringToObject(j, "mountpoint", fs->mountpoint_real ? fs->mountpoint_real :
				fs->mountpoint ? fs->mountpoint : "");
	cJSON_AddStringToObject(j, "view", view);
	cJSON_AddStringToObject(j, "options", fs->options ? fs->options : "");
	cJSON_AddNumberToObject(j, "mounted_at", (double)fs->mounted_at.tv_sec);
	if (view_stats_add(&fs->view, j) < 0)
		goto out;
	if (fs->copies)
		pre = copies_json(fs->copies);
	else if (fs->prefetch_broadcast)
		pre = broadcast_json(&fs->view);
	if (pre)
		cJSON_AddItemToObject(j, "prefetch", pre);
	text = cJSON_Print(j);
out:
	cJSON_Delete(j);
	return text;
}
