/*
 * plan_build.c — which planner makes a source's plan.
 *
 * A sharded Automodel save is shown as its consolidation (unless the native
 * view is asked for, which the adapter engine makes from the chunked
 * tensors), a PEFT adapter directory by its own planner (LoRA keys are the
 * same for every family), and every other checkpoint by its family's rule
 * table, in the direction its tensor names call for.
 */
#include "plan.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "adapter.h"
#include "dcp_plan.h"
#include "err.h"
#include "peft.h"

/* The source's layout decides the direction; view= only confirms it. */
static int choose_direction(const struct adapter *a, const struct source *s,
			    enum view_kind view, int *dir, char *err)
{
	int rc = adapter_detect(a, s, dir, err);

	if (rc < 0)
		return rc;
	if (adapter_same_names(a)) {
		/* the source is in both layouts: view= decides, auto meaning native */
		*dir = view == VIEW_HF ? DIR_TO_HF : DIR_TO_NATIVE;
		return 0;
	}
	if (view == VIEW_NATIVE && *dir == DIR_TO_HF)
		return sd_err(err, -EINVAL, "%s is already in the native layout of %s; use view=hf (or view=auto) to see it as HF",
			      s->dir, adapter_name(a));
	if (view == VIEW_HF && *dir == DIR_TO_NATIVE)
		return sd_err(err, -EINVAL, "%s is already in the HF layout of %s; use view=native (or view=auto) to see it as native",
			      s->dir, adapter_name(a));
	return 0;
}

/* The family's table: adapter_file=, a built-in (by name or config.json),
 * or an installed table by name.  A family only an installed table
 * describes is not chosen by itself, but the message names the table. */
static int choose_table(const struct source *s, const struct view_opts *o,
			struct adapter **a, char *err)
{
	char path[4096], name[128];
	int rc;

	if (o->adapter_file)
		return adapter_load_file(o->adapter_file, a, err);
	if (o->adapter && !adapter_is_builtin(o->adapter) &&
	    adapter_find_installed(o->adapter_dirs, o->adapter, path, sizeof(path)))
		return adapter_load_file(path, a, err);
	rc = adapter_choose(s, o->adapter, a, err);
	if (rc < 0 && o->adapter) {
		char names[512];
		adapter_installed_names(o->adapter_dirs, names, sizeof(names));
		size_t n = strlen(err);
		if (names[0])
			snprintf(err + n, SD_ERRLEN - n, "; installed tables: %s", names);
	} else if (rc < 0 && s->config &&
		   adapter_installed_for(o->adapter_dirs, s, name, sizeof(name), path, sizeof(path))) {
		const cJSON *arch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(s->config,
											 "architectures"), 0);
		rc = sd_err(err, rc, "%s/config.json: architecture %s is not supported by a built-in adapter, but the example table %s describes it: mount with -o adapter=%s",
			    s->dir, cJSON_IsString(arch) ? arch->valuestring : "(none)", path, name);
	}
	return rc;
}

static int plan_by_table(const struct source *s, const struct view_opts *o,
			 struct plan *out, char *err)
{
	struct adapter *a = NULL;
	int rc, dir;

	if ((rc = choose_table(s, o, &a, err)) < 0)
		return rc;
	if ((rc = choose_direction(a, s, o->view, &dir, err)) == 0)
		rc = adapter_plan(a, s, o, dir, out, err);
	adapter_free(a);
	if (rc < 0)
		sd_err_prefix(err, "%s", s->dir);
	return rc;
}

int plan_build(const struct source *s, const struct view_opts *o,
	       struct plan *out, char *err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (s->dcp && o->view != VIEW_NATIVE)
		rc = dcp_plan(s, out, err);
	else if (s->peft)
		rc = peft_plan(s, o, out, err);
	else
		return plan_by_table(s, o, out, err);
	if (rc < 0)
		sd_err_prefix(err, "%s", s->dir);
	return rc;
}
