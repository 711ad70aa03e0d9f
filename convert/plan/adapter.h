/*
 * adapter.h — model families as data: rule tables and the engine that
 * turns a source checkpoint into a view plan.
 *
 * An adapter is a JSON table (docs/adapters.md): which config.json it
 * matches, which config fields hold the expert count and dtype, and an
 * ordered list of rules (truncate, rename, drop, merge_experts) applied to
 * every source tensor name.  The built-in tables live in convert/adapters/
 * and are compiled in; they go through the same loader as a user's file.
 */
#ifndef SDAFS_ADAPTER_H
#define SDAFS_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "plan.h"
#include "source.h"

/* Directions of conversion: the rule list a plan is made with. */
enum { DIR_TO_NATIVE, DIR_TO_HF, DIR_COUNT };

struct adapter;

/* Parse a table; what names it in messages (a file name). */
int adapter_load(const char *json, size_t len, const char *what,
		 struct adapter **out, char *err);
/* Read and parse the table in a file (-o adapter_file=). */
int adapter_load_file(const char *path, struct adapter **out, char *err);
void adapter_free(struct adapter *a);
const char *adapter_name(const struct adapter *a);

/* Pick a built-in by name (when name is set) or by the source's config.json
 * (architectures, then model_type). */
int adapter_choose(const struct source *s, const char *name,
		   struct adapter **out, char *err);

/* Installed tables (adapter_dirs.c): dirs is a NULL-terminated list of
 * directories holding NAME.json files, searched in order after the
 * built-ins.  1 with the file's path when `name` is one, else 0. */
int adapter_find_installed(const char *const *dirs, const char *name, char *path,
			   size_t len);
/* Call fn(arg, path, table) for every table installed in dirs, until it
 * returns true; files that are not tables are skipped. */
typedef bool (*adapter_visit)(void *arg, const char *path, const struct adapter *a);
void adapter_each_installed(const char *const *dirs, adapter_visit fn, void *arg);
/* The installed tables' names, comma-separated ("" when none). */
void adapter_installed_names(const char *const *dirs, char *buf, size_t len);
/* Is there an installed table for s's config.json?  Its name and path. */
bool adapter_installed_for(const char *const *dirs, const struct source *s,
			   char *name, size_t len, char *path, size_t plen);
/* True when name is a built-in table's name. */
bool adapter_is_builtin(const char *name);

/* True when the table's architectures / model_types match config.json. */
bool adapter_matches_config(const struct adapter *a, const struct source *s);

/* The built-in tables, for --list-adapters and messages. */
size_t adapter_builtin_count(void);
void adapter_supported(char *buf, size_t len);
int adapter_builtin(size_t i, struct adapter **out, char *err);
const char *adapter_description(const struct adapter *a);
/* Comma-separated architectures the table matches (static buffer per call). */
void adapter_architectures(const struct adapter *a, char *buf, size_t len);

/* Which layout the source is in, from its tensor names alone: *dir is
 * DIR_TO_NATIVE for an HF checkpoint, DIR_TO_HF for a native one.  A
 * checkpoint with keys of both layouts, or of neither, is an error. */
int adapter_detect(const struct adapter *a, const struct source *s, int *dir,
		   char *err);

/* The detection behind adapter_detect, over any n names (name_at(ctx, i)):
 * first[d] is the first name that only a checkpoint of layout d has
 * (DIR_TO_NATIVE: an HF name, DIR_TO_HF: a native one), or -1. */
int adapter_detect_names(const struct adapter *a,
			 const char *(*name_at)(const void *ctx, uint32_t i),
			 const void *ctx, size_t n, long first[DIR_COUNT], char *err);

/* True for a family whose HF and native names are the same (Llama): every
 * source reads as both layouts, so the view asked for decides the direction
 * (adapter_detect only checks that the names are the family's). */
bool adapter_same_names(const struct adapter *a);

/*
 * The name the table's renames alone give name in direction dir
 * (adapter_names.c): every plain rename (one without transpose or ep_slice)
 * whose pattern matches is applied, in order, and a route hands the rest of
 * the name to its table; no other rule touches it (a tensor that is
 * dropped, merged, split, joined or dequantized keeps its name).  Used for
 * PEFT keys, whose tensors are not the model's.  "if" conditions read the
 * expert count from s's config.json (none: dense).  *out is malloc'd.
 */
int adapter_rename(const struct adapter *a, const struct source *s, int dir,
		   const char *name, char **out, char *err);

/* Build the view plan for source s in direction dir. */
int adapter_plan(const struct adapter *a, const struct source *s,
		 const struct view_opts *o, int dir, struct plan *out, char *err);

/* Automodel's expert range of one EP rank: the first E mod size ranks get
 * one expert more.  size 0 means all experts. */
void ep_range(unsigned long experts, long rank, long size,
	      unsigned long *start, unsigned long *end);

#endif
