/*
 * layout.h — the view's files: safetensors shards, their index, and the
 * source's other files passed through.
 *
 * Each weight file is its header bytes followed by tensor slots laid end to
 * end, so every file's size is known before anything is converted.  Output
 * tensors go to the shard that mirrors the source file their first source
 * tensor lives in, in source order, so reading a view file front to back
 * reads its source front to back.
 */
#ifndef SDAFS_LAYOUT_H
#define SDAFS_LAYOUT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plan.h"
#include "source.h"
#include "strmap.h"

enum vfile_kind { VF_SOURCE, VF_WEIGHTS, VF_MEMORY };

struct vslot {
	uint64_t off;           /* where the tensor's bytes start in the file */
	uint32_t tensor;        /* plan index */
};

struct vfile {
	char *name;
	uint64_t size;
	enum vfile_kind kind;
	uint32_t src_file;      /* VF_SOURCE: the file passed through;
				 * VF_MEMORY with edited: the file edited */
	bool edited;            /* VF_MEMORY: a source file's text, changed */
	char *mem;              /* VF_MEMORY: the content; VF_WEIGHTS: the header */
	size_t mem_len;
	struct vslot *slots;    /* VF_WEIGHTS: by offset */
	size_t nslots;
	uint32_t *srcs;         /* the source files its bytes come from */
	size_t nsrcs;
	struct src_perm perm;   /* who may read it: all of srcs (the index:
				 * every weight file) */
	atomic_int mat_fd;      /* its materialized copy, or -1 (materialize.c) */
};

struct layout {
	struct vfile *files;
	size_t n;
	struct strmap by_name;
	struct src_perm whole;  /* who may read every file */
};

/* Lay out p's tensors in the files p->files says, plus s's other files. */
int layout_build(const struct plan *p, const struct source *s,
		 struct layout *out, char *err);
void layout_free(struct layout *l);

/*
 * The view's text of source file `file` (its config.json) when the plan
 * leaves a key out of it (p->config_drop): 1 with *text (malloc'ed) and
 * *len, 0 when nothing changes (pass it through), or a negative errno with
 * a message (config_json.c).
 */
int layout_config(const struct plan *p, const struct source *s, uint32_t file,
		  char **text, size_t *len, char *err);
long layout_find(const struct layout *l, const char *name);

#endif
