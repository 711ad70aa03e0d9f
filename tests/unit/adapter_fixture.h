/*
 * adapter_fixture.h — the fixture test_adapter.c and test_adapter_hf.c share:
 * a checkpoint directory under /tmp, its scan, the chosen adapter and the
 * plan made from them, and the helpers that build and inspect that plan.
 *
 * The helpers fail the running cmocka test when anything goes wrong.
 * adapter_fixture.c is compiled into every unit test by the Makefile; it is
 * not a test itself.
 */
#ifndef SDAFS_ADAPTER_FIXTURE_H
#define SDAFS_ADAPTER_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "adapter.h"
#include "err.h"
#include "plan.h"
#include "source.h"
#include "testlib.h"

struct fixture {
	char dir[64];
	struct source src;
	struct adapter *adapter;
	struct plan plan;
	bool scanned, planned;
	char err[SD_ERRLEN];
};

/* A cmocka setup's body: a fresh fixture in *state, its directory
 * /tmp/sdafs-test-<tag>-XXXXXX.  Returns 0, or -1. */
int fixture_setup(void **state, const char *tag);

/* The cmocka teardown: frees the plan, adapter and scan, removes the dir. */
int fixture_teardown(void **state);

#define NT(a) (sizeof(a) / sizeof((a)[0]))

#define SRC(name) "src(\"" name "\")"
#define T_SRC(name) "transpose_last2(" SRC(name) ")"

/* Write config.json (unless config is NULL) and model.safetensors, scan. */
void scan_checkpoint(struct fixture *fx, const char *config,
		     const struct test_tensor *t, size_t n);

/* Scan, and choose the built-in adapter from config.json; it must be want. */
void scan_and_choose(struct fixture *fx, const char *config,
		     const struct test_tensor *t, size_t n, const char *want);

/* Plan direction dir with the adapter already chosen; replaces an earlier plan. */
int make_plan(struct fixture *fx, const struct view_opts *o, int dir);

/* The planned tensor called name, or NULL. */
const struct plan_tensor *planned(const struct fixture *fx, const char *name);

/* The planned tensor called name; the test fails when there is none. */
const struct plan_tensor *must_plan(const struct fixture *fx, const char *name);

/* "BF16[4,6,3]" (a static buffer, overwritten by the next call) */
const char *dtype_and_shape(const struct plan_tensor *t);

/* The recipe written out in full, or "(source bytes)" when there is none
 * (a static buffer, overwritten by the next call). */
const char *recipe_text(const struct fixture *fx, const struct plan_tensor *t);

/* The test fails unless msg contains words. */
void assert_mentions(const char *msg, const char *words);

/* Loading table (with ' for ") fails with -EINVAL and a message naming the
 * file and every one of words (a NULL-terminated list). */
void assert_load_fails(const char *table, const char *const *words);

#define LOAD_FAILS_MENTIONING(table, ...) \
	assert_load_fails(table, (const char *const[]){ __VA_ARGS__, NULL })

#endif
