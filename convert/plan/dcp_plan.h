/*
 * dcp_plan.h — the consolidated view of an Automodel sharded save.
 */
#ifndef SDAFS_DCP_PLAN_H
#define SDAFS_DCP_PLAN_H

#include "plan.h"
#include "source.h"

/*
 * The consolidated HF checkpoint of a sharded save, as Automodel's offline
 * consolidation writes it: every tensor whole under its own name, in the
 * dtype fqn_to_dtype_mapping.json gives when both are ordinary floats, in
 * the file fqn_to_file_index_mapping.json gives (keys it lacks go to the last
 * file; without it, files of about 5 GiB), with bare headers (out->files).
 */
int dcp_plan(const struct source *s, struct plan *out, char *err);

#endif
