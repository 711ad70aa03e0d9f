/*
 * dcp_plan.c — a sharded Automodel save shown as the consolidated HF
 * checkpoint its offline consolidation writes: every tensor whole under its
 * own name, in the dtype and file the .hf_metadata mappings give.  The scan
 * (convert/source/dcp.c) has already put each tensor's chunks together.
 */
#include "dcp_plan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define CONSOLIDATED_FILE_BYTES ((uint64_t)5 << 30)

static bool ordinary_float(enum sd_dtype t)
{
	return t == SD_F16 || t == SD_BF16 || t == SD_F32 || t == SD_F64;
}

int dcp_plan(const struct source *s, struct plan *out, char *err)
{
	uint64_t in_file = 0;
	uint32_t *nfiles = &out->files.nfiles, **file_of = &out->files.file_of;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	snprintf(out->adapter, sizeof(out->adapter), "consolidate");
	out->direction = "sharded->hf";
	out->dtype = SD_DTYPE_INVALID;
	out->files.bare_headers = true;
	*nfiles = 1;
	if (!(*file_of = calloc(s->ntensors + 1, sizeof(**file_of))))
		return sd_err(err, -ENOMEM, "out of memory");
	const cJSON *v;
	cJSON_ArrayForEach(v, s->file_index_map) {
		if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 100000 ||
		    v->valuedouble != (double)(uint32_t)v->valuedouble)
			return sd_err(err, -EINVAL, "%s/.hf_metadata/fqn_to_file_index_mapping.json: '%s' must map to a file number from 1",
				      s->dir, v->string);
		if ((uint32_t)v->valuedouble > *nfiles)
			*nfiles = (uint32_t)v->valuedouble;
	}
	for (size_t i = 0; i < s->ntensors && rc == 0; i++) {
		const struct src_tensor *t = &s->tensors[i];
		const cJSON *dt = cJSON_GetObjectItemCaseSensitive(s->dtype_map, t->name);
		enum sd_dtype to = cJSON_IsString(dt) ? dtype_parse(dt->valuestring) : t->dtype;
		struct recipe *r = NULL;
		struct rx_node shape = { .op = RX_SRC, .dtype = t->dtype, .ndim = t->ndim };

		memcpy(shape.shape, t->shape, sizeof(shape.shape));
		if (!ordinary_float(to) || !ordinary_float(t->dtype))
			to = t->dtype;  /* FP8 and quantised targets keep the saved dtype */
		if (t->nchunks || to != t->dtype) {
			int x;
			if (!(r = calloc(1, sizeof(*r))))
				return sd_err(err, -ENOMEM, "out of memory");
			x = plan_src(r, s, i, err);
			if (x >= 0 && to != t->dtype)
				x = rx_cast(r, x, to, err);
			if (x < 0) {
				recipe_free(r);
				free(r);
				return x;
			}
			shape = *rx_root(r);
		}
		const cJSON *fi = cJSON_GetObjectItemCaseSensitive(s->file_index_map, t->name);
		if (s->file_index_map)
			(*file_of)[out->n] = cJSON_IsNumber(fi) ? (uint32_t)fi->valuedouble - 1 : *nfiles - 1;
		else {                  /* about 5 GiB a file, in source order */
			if (in_file && in_file + t->nbytes > CONSOLIDATED_FILE_BYTES) {
				(*nfiles)++;
				in_file = 0;
			}
			in_file += t->nbytes;
			(*file_of)[out->n] = *nfiles - 1;
		}
		if ((rc = plan_add(out, t->name, &shape, (uint32_t)i, r, err)) < 0 && r) {
			recipe_free(r);
			free(r);
		}
	}
	if (rc == 0)
		plan_chunk(out);
	return rc;
}
