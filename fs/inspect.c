/*
 * inspect.c — the plan of a view printed, as text or JSON (see inspect.h).
 */
#include "inspect.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "adapter.h"
#include "datadir.h"
#include "err.h"

/* An installed table (-o adapter=NAME finds it after the built-ins). */
static bool list_installed(void *arg, const char *path, const struct adapter *a)
{
	char arch[512];

	(void)arg;
	adapter_architectures(a, arch, sizeof(arch));
	printf("%-16s %s\n%-16s %s\n%-16s table: %s\n", adapter_name(a), adapter_description(a),
	       "", arch, "", path);
	return false;
}

void inspect_list_adapters(void)
{
	char err[SD_ERRLEN], arch[512];

	/* two lines each: the architectures lists are too long for one column */
	printf("%-16s %s\n", "NAME", "DESCRIPTION / architectures in config.json");
	for (size_t i = 0; i < adapter_builtin_count(); i++) {
		struct adapter *a;
		if (adapter_builtin(i, &a, err) < 0) {
			fprintf(stderr, "sdafs: %s\n", err);
			continue;
		}
		adapter_architectures(a, arch, sizeof(arch));
		printf("%-16s %s\n%-16s %s\n", adapter_name(a), adapter_description(a), "", arch);
		adapter_free(a);
	}
	adapter_each_installed(datadir_adapter_dirs(), list_installed, NULL);
}

/* --- --inspect ------------------------------------------------------------ */

static char *recipe_text(const struct view *v, const struct plan_tensor *t, bool full)
{
	char *buf;
	size_t n;

	if (!t->recipe) {
		const char *name = v->src.tensors[t->src].name;
		n = strlen(name) + 8;
		if ((buf = malloc(n)))
			snprintf(buf, n, "src(\"%s\")", name);
		return buf;
	}
	n = recipe_format(t->recipe, source_tensor_name, &v->src, full, NULL, 0) + 1;
	if ((buf = malloc(n)))
		recipe_format(t->recipe, source_tensor_name, &v->src, full, buf, n);
	return buf;
}

static const char *kind_name(const struct vfile *f)
{
	return f->kind == VF_WEIGHTS ? "weights" : f->edited ? "edited" :
	       f->kind == VF_MEMORY ? "index" : "passthrough";
}

static int inspect_json(const struct view *v)
{
	cJSON *root = cJSON_CreateObject(), *files = cJSON_CreateArray();

	cJSON_AddStringToObject(root, "source", v->src.dir);
	cJSON_AddStringToObject(root, "adapter", v->plan.adapter);
	cJSON_AddStringToObject(root, "direction", v->plan.direction);
	cJSON_AddStringToObject(root, "dtype", dtype_name(v->plan.dtype));
	cJSON_AddNumberToObject(root, "experts", (double)v->plan.experts);
	cJSON_AddItemToObject(root, "files", files);
	for (size_t i = 0; i < v->layout.n; i++) {
		const struct vfile *f = &v->layout.files[i];
		cJSON *jf = cJSON_CreateObject(), *ts = cJSON_CreateArray();
		cJSON_AddItemToArray(files, jf);
		cJSON_AddStringToObject(jf, "name", f->name);
		cJSON_AddStringToObject(jf, "kind", kind_name(f));
		cJSON_AddNumberToObject(jf, "size", (double)f->size);
		cJSON_AddItemToObject(jf, "tensors", ts);
		for (size_t k = 0; k < f->nslots; k++) {
			const struct plan_tensor *t = &v->plan.tensors[f->slots[k].tensor];
			cJSON *jt = cJSON_CreateObject(), *shape = cJSON_CreateArray();
			char *r = recipe_text(v, t, true);
			for (int d = 0; d < t->ndim; d++)
				cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
			cJSON_AddStringToObject(jt, "name", t->name);
			cJSON_AddStringToObject(jt, "dtype", dtype_name(t->dtype));
			cJSON_AddItemToObject(jt, "shape", shape);
			cJSON_AddNumberToObject(jt, "offset", (double)f->slots[k].off);
			cJSON_AddNumberToObject(jt, "bytes", (double)t->nbytes);
			cJSON_AddStringToObject(jt, "recipe", r ? r : "");
			cJSON_AddBoolToObject(jt, "converted", t->recipe != NULL);
			cJSON_AddItemToArray(ts, jt);
			free(r);
		}
	}
	char *text = cJSON_Print(root);
	cJSON_Delete(root);
	if (!text)
		return -1;
	puts(text);
	free(text);
	return 0;
}

static void inspect_text(const struct view *v)
{
	printf("source %s: adapter %s, %s", v->src.dir, v->plan.adapter, v->plan.direction);
	if (v->plan.experts)
		printf(", expert dtype %s, %" PRIu64 " routed experts",
		       dtype_name(v->plan.dtype), v->plan.experts);
	else
		printf(", no routed experts");
	if (v->plan.experts && v->plan.ep_end - v->plan.ep_start != v->plan.experts)
		printf(" (this view: %" PRIu64 "..%" PRIu64 ")", v->plan.ep_start,
		       v->plan.ep_end - 1);
	printf("\n");
	for (size_t i = 0; i < v->layout.n; i++) {
		const struct vfile *f = &v->layout.files[i];
		printf("\n%s  %" PRIu64 " bytes  %s\n", f->name, f->size, kind_name(f));
		for (size_t k = 0; k < f->nslots; k++) {
			const struct plan_tensor *t = &v->plan.tensors[f->slots[k].tensor];
			char shape[160], *r = recipe_text(v, t, false);
			size_t o = 0;
			shape[0] = '\0';
			for (int d = 0; d < t->ndim && o < sizeof(shape); d++)
				o += (size_t)snprintf(shape + o, sizeof(shape) - o, d ? ",%" PRIu64 : "%" PRIu64,
						      t->shape[d]);
			printf("  %-60s %-5s [%s]  %s\n", t->name, dtype_name(t->dtype), shape,
			       r ? r : "");
			free(r);
		}
	}
}

int inspect_print(const struct view *v, bool json)
{
	if (json)
		return inspect_json(v);
	inspect_text(v);
	return 0;
}
