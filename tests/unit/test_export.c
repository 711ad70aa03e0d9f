/*
 * test_export.c — writing a view's files into a directory without FUSE
 * (units.c, workers.c, export.c) and making that directory appear whole or
 * not at all (outdir.c).
 *
 * Each test writes a small Nemotron-H MoE checkpoint (testlib) into a fresh
 * temporary directory.  What export writes is compared, file by file, with
 * what the mount's read path (view_read, which test_view checks against
 * index arithmetic) gives for the same view; for expert-parallel ranks, with
 * a view opened for that rank on its own.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "export.h"
#include "outdir.h"
#include "testlib.h"
#include "units.h"
#include "view.h"

#define EXPERTS 8

struct fixture {
	char src[64], tmp[64];  /* the checkpoint; a directory for outputs */
	struct view v;
	bool open;
	char err[SD_ERRLEN];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || testdir_make(f->src, sizeof(f->src), "export-src") < 0 ||
	    testdir_make(f->tmp, sizeof(f->tmp), "export-out") < 0)
		return -1;
	test_write_moe_checkpoint(f->src, EXPERTS);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->open)
		view_close(&f->v);
	int rc = testdir_remove(f->src) | testdir_remove(f->tmp);
	free(f);
	return rc;
}

static void open_view(struct fixture *f, struct view *v, long ep_rank, long ep_size)
{
	struct view_opts o = { .view = VIEW_NATIVE, .dtype = SD_DTYPE_INVALID,
			       .ep_rank = ep_rank, .ep_size = ep_size };

	if (view_open(v, f->src, &o, 1 << 20, f->err) != 0)
		fail_msg("view_open: %s", f->err);
}

static void open_fixture_view(struct fixture *f)
{
	open_view(f, &f->v, 0, 0);
	f->open = true;
}

/* A file on disk (caller frees). */
static unsigned char *disk_bytes(const char *dir, const char *name, uint64_t *size)
{
	char path[512];
	struct stat st;

	test_path(path, sizeof(path), dir, name);
	int fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0)
		fail_msg("%s: %s", path, strerror(errno));
	unsigned char *buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*size = (uint64_t)st.st_size;
	return buf;
}

static size_t entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

/* dir holds exactly v's files, each byte for byte what a read of v gives. */
static void assert_dir_is_view(const char *dir, struct view *v)
{
	assert_int_equal(entries(dir), v->layout.n);
	for (size_t i = 0; i < v->layout.n; i++) {
		uint64_t a, b;
		unsigned char *want = test_view_file(v, i, &a);
		unsigned char *got = disk_bytes(dir, v->layout.files[i].name, &b);
		if (a != b || memcmp(want, got, a))
			fail_msg("%s/%s differs from the view", dir, v->layout.files[i].name);
		free(want);
		free(got);
	}
}

/* Export the trees into the new directory tmp/name; what export_write says. */
static int export_into(struct fixture *f, const char *name, const struct units_tree *trees,
		       size_t ntrees, unsigned jobs, uint64_t budget, struct units_progress *p)
{
	char dir[512];
	struct units us;
	struct units_progress own = { 0 };

	test_path(dir, sizeof(dir), f->tmp, name);
	assert_int_equal(mkdir(dir, 0755), 0);
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	if (units_build(&us, &f->v, trees, ntrees, f->err) != 0)
		fail_msg("units_build: %s", f->err);
	int rc = export_write(&us, fd, jobs, budget, p ? p : &own, f->err);
	if (!p && rc == 0)
		assert_int_equal(atomic_load(&own.done), own.total);
	units_free(&us);
	close(fd);
	return rc;
}

static int export_view(struct fixture *f, const char *name, unsigned jobs, uint64_t budget)
{
	struct units_tree tree = { &f->v.plan, &f->v.layout, "" };

	return export_into(f, name, &tree, 1, jobs, budget, NULL);
}

/* --- export --------------------------------------------------------------- */

static void test_export_writes_every_file_of_the_view_as_a_read_gives_it(void **state)
{
	struct fixture *f = *state;
	char dir[512];

	open_fixture_view(f);
	if (export_view(f, "out", 3, 1 << 20) != 0)
		fail_msg("export: %s", f->err);
	test_path(dir, sizeof(dir), f->tmp, "out");
	assert_dir_is_view(dir, &f->v);
}

static void test_export_to_another_filesystem_gives_the_same_bytes(void **state)
{
	struct fixture *f = *state;
	struct units_tree tree;
	struct units us;
	struct units_progress p = { 0 };
	struct stat a, b;
	char dir[64];

	if (stat("/dev/shm", &b) < 0 || stat(f->src, &a) < 0 || a.st_dev == b.st_dev)
		skip();         /* copy_file_range would do; the splice path needs two */
	open_fixture_view(f);
	assert_int_equal(testdir_remove(f->tmp), 0);    /* teardown removes this one */
	snprintf(f->tmp, sizeof(f->tmp), "/dev/shm/sdafs-test-export-XXXXXX");
	assert_non_null(mkdtemp(f->tmp));
	snprintf(dir, sizeof(dir), "%s", f->tmp);
	tree = (struct units_tree){ &f->v.plan, &f->v.layout, "" };
	assert_int_equal(units_build(&us, &f->v, &tree, 1, f->err), 0);
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (export_write(&us, fd, 2, 1 << 20, &p, f->err) != 0)
		fail_msg("export: %s", f->err);
	close(fd);
	units_free(&us);
	assert_dir_is_view(dir, &f->v);
}

static void test_a_budget_smaller_than_any_unit_still_writes_everything(void **state)
{
	struct fixture *f = *state;
	char dir[512];

	open_fixture_view(f);
	if (export_view(f, "out", 8, 1) != 0)
		fail_msg("export: %s", f->err);
	test_path(dir, sizeof(dir), f->tmp, "out");
	assert_dir_is_view(dir, &f->v);
}

static void test_every_source_byte_is_read_once(void **state)
{
	struct fixture *f = *state;

	open_fixture_view(f);
	assert_int_equal(export_view(f, "out", 2, 1 << 20), 0);
	/* the native view drops nothing: every tensor byte and every other file */
	uint64_t want = 0;
	for (size_t i = 0; i < f->v.src.nfiles; i++)
		want += f->v.src.files[i].is_weights ? 0 : f->v.src.files[i].size;
	for (size_t t = 0; t < f->v.src.ntensors; t++)
		want += f->v.src.tensors[t].nbytes;
	assert_int_equal(atomic_load(&f->v.stats.source_bytes), want);
}

static void test_all_ranks_equal_each_rank_and_read_the_source_once(void **state)
{
	struct fixture *f = *state;
	struct view_opts o = { .view = VIEW_NATIVE, .dtype = SD_DTYPE_INVALID, .ep_size = 3 };
	struct plan plans[3];
	struct layout layouts[3];
	struct units_tree trees[3];
	struct units us;

	open_view(f, &f->v, 0, 3);
	f->open = true;
	trees[0] = (struct units_tree){ &f->v.plan, &f->v.layout, "rank-0" };
	for (int r = 1; r < 3; r++) {
		o.ep_rank = r;
		assert_int_equal(plan_build(&f->v.src, &o, &plans[r], f->err), 0);
		assert_int_equal(layout_build(&plans[r], &f->v.src, &layouts[r], f->err), 0);
		trees[r] = (struct units_tree){ &plans[r], &layouts[r], "" };
		snprintf(trees[r].dir, sizeof(trees[r].dir), "rank-%d", r);
	}
	/* a tensor every rank holds is one unit with three places */
	assert_int_equal(units_build(&us, &f->v, trees, 3, f->err), 0);
	size_t shared = 0, own = 0;
	for (size_t i = 0; i < us.n; i++) {
		shared += us.u[i].nplaces == 3;
		own += us.u[i].nplaces == 1 && us.u[i].kind == UNIT_ROWS;
	}
	assert_true(shared > 0);
	assert_int_equal(own, 2 * EXPERTS);     /* each expert of gate_and_up and down, once */
	units_free(&us);

	assert_int_equal(export_into(f, "ranks", trees, 3, 2, 1 << 20, NULL), 0);
	uint64_t read = atomic_load(&f->v.stats.source_bytes);
	for (int r = 0; r < 3; r++) {
		char dir[512];
		struct view alone;
		snprintf(dir, sizeof(dir), "%s/ranks/rank-%d", f->tmp, r);
		open_view(f, &alone, r, 3);
		assert_dir_is_view(dir, &alone);
		view_close(&alone);
	}
	/* as many source bytes as one whole view reads: each once */
	struct view whole;
	open_view(f, &whole, 0, 0);
	struct units_tree w = { &whole.plan, &whole.layout, "" };
	struct view keep = f->v;
	f->v = whole;
	assert_int_equal(export_into(f, "whole", &w, 1, 2, 1 << 20, NULL), 0);
	assert_int_equal(atomic_load(&f->v.stats.source_bytes), read);
	f->v = keep;
	view_close(&whole);
	for (int r = 1; r < 3; r++) {
		layout_free(&layouts[r]);
		plan_free(&plans[r]);
	}
}

static void test_a_source_changed_since_the_scan_fails_naming_it(void **state)
{
	struct fixture *f = *state;
	char path[512];
	struct timespec times[2] = { { 0, UTIME_OMIT }, { 12345, 0 } };

	open_fixture_view(f);
	test_path(path, sizeof(path), f->src, "model-00002-of-00002.safetensors");
	assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
	assert_int_equal(export_view(f, "out", 2, 1 << 20), -EIO);
	assert_non_null(strstr(f->err, "model-00002-of-00002.safetensors"));
}

static void test_a_source_cut_short_fails_the_export(void **state)
{
	struct fixture *f = *state;
	char path[512];

	open_fixture_view(f);
	test_path(path, sizeof(path), f->src, "model-00001-of-00002.safetensors");
	assert_int_equal(truncate(path, 100), 0);
	assert_int_equal(export_view(f, "out", 1, 1 << 20), -EIO);
	assert_non_null(strstr(f->err, "model-00001-of-00002.safetensors"));
}

static void test_a_stop_request_ends_the_run_with_eintr(void **state)
{
	struct fixture *f = *state;
	struct units_tree tree;
	struct units_progress p = { 0 };

	open_fixture_view(f);
	tree = (struct units_tree){ &f->v.plan, &f->v.layout, "" };
	atomic_store(&p.stop, true);
	assert_int_equal(export_into(f, "out", &tree, 1, 2, 1 << 20, &p), -EINTR);
	assert_int_equal(atomic_load(&p.done), 0);
}

/* --- outdir ----------------------------------------------------------------- */

/* The names in dir, sorted, joined by spaces. */
static char *listing(const char *dir)
{
	struct dirent **list;
	int n = scandir(dir, &list, NULL, alphasort);
	char *out = calloc(4096, 1);

	assert_true(n >= 0);
	assert_non_null(out);
	for (int i = 0; i < n; i++) {
		if (strcmp(list[i]->d_name, ".") && strcmp(list[i]->d_name, "..")) {
			strcat(out, out[0] ? " " : "");
			strcat(out, list[i]->d_name);
		}
		free(list[i]);
	}
	free(list);
	return out;
}

static void put(const char *dir, const char *name, const char *text)
{
	test_write_file(dir, name, text, strlen(text));
}

static void assert_listing(const char *dir, const char *want)
{
	char *got = listing(dir);

	assert_string_equal(got, want);
	free(got);
}

static void test_outdir_appears_whole_under_its_name_at_commit(void **state)
{
	struct fixture *f = *state;
	struct outdir od;
	char dst[512];

	test_path(dst, sizeof(dst), f->tmp, "dst");
	assert_int_equal(outdir_begin(&od, dst, false, f->err), 0);
	assert_int_equal(access(dst, F_OK), -1);        /* nothing under the name yet */
	char *names = listing(f->tmp);
	assert_int_equal(strncmp(names, ".dst.sdafs-tmp-", 15), 0);
	assert_int_equal(strlen(names), 21);
	free(names);
	assert_int_equal(faccessat(od.fd, ".", W_OK, 0), 0);
	int fd = openat(od.fd, "a.txt", O_WRONLY | O_CREAT, 0644);
	assert_int_equal(write(fd, "abc", 3), 3);
	close(fd);
	assert_int_equal(outdir_commit(&od, f->err), 0);
	assert_listing(f->tmp, "dst");
	assert_listing(dst, "a.txt");
}

static void test_outdir_refuses_a_destination_that_is_not_empty(void **state)
{
	struct fixture *f = *state;
	struct outdir od;
	char dst[512];

	test_path(dst, sizeof(dst), f->tmp, "dst");
	assert_int_equal(mkdir(dst, 0755), 0);
	put(dst, "mine.txt", "keep");
	assert_int_equal(outdir_begin(&od, dst, false, f->err), -ENOTEMPTY);
	assert_non_null(strstr(f->err, "--force"));
	assert_listing(f->tmp, "dst");          /* no temporary directory either */
	assert_listing(dst, "mine.txt");
}

static void test_outdir_fills_an_empty_destination(void **state)
{
	struct fixture *f = *state;
	struct outdir od;
	char dst[512];

	test_path(dst, sizeof(dst), f->tmp, "dst");
	assert_int_equal(mkdir(dst, 0755), 0);
	assert_int_equal(outdir_begin(&od, dst, false, f->err), 0);
	put(f->tmp, "unrelated", "x");
	assert_int_equal(outdir_commit(&od, f->err), 0);
	assert_listing(f->tmp, "dst unrelated");
}

static void test_force_replaces_only_at_commit_and_removes_the_old_one(void **state)
{
	struct fixture *f = *state;
	struct outdir od;
	char dst[512], sub[600];

	test_path(dst, sizeof(dst), f->tmp, "dst");
	assert_int_equal(mkdir(dst, 0755), 0);
	put(dst, "old.txt", "old");
	snprintf(sub, sizeof(sub), "%s/deep", dst);
	assert_int_equal(mkdir(sub, 0755), 0);
	put(sub, "older.txt", "older");
	assert_int_equal(symlink("/etc", strcat(sub, "/link")), 0);
	assert_int_equal(outdir_begin(&od, dst, true, f->err), 0);
	int fd = openat(od.fd, "new.txt", O_WRONLY | O_CREAT, 0644);
	close(fd);
	assert_listing(dst, "deep old.txt");    /* the old one stays until commit */
	assert_int_equal(outdir_commit(&od, f->err), 0);
	assert_listing(dst, "new.txt");
	assert_listing(f->tmp, "dst");
	assert_int_equal(access("/etc/passwd", F_OK), 0);       /* links not followed */
}

static void test_abort_removes_the_temporary_directory(void **state)
{
	struct fixture *f = *state;
	struct outdir od;
	char dst[512];

	test_path(dst, sizeof(dst), f->tmp, "dst");
	assert_int_equal(outdir_begin(&od, dst, false, f->err), 0);
	assert_int_equal(mkdirat(od.fd, "rank-00001", 0755), 0);
	close(openat(od.fd, "rank-00001/x", O_WRONLY | O_CREAT, 0644));
	outdir_abort(&od);
	assert_listing(f->tmp, "");
}

static void test_a_leftover_nobody_holds_is_cleaned_one_held_is_refused(void **state)
{
	struct fixture *f = *state;
	struct outdir od;
	char dst[512], left[512];

	test_path(dst, sizeof(dst), f->tmp, "dst");
	test_path(left, sizeof(left), f->tmp, ".dst.sdafs-tmp-AbC123");
	assert_int_equal(mkdir(left, 0755), 0);
	put(left, "partial.safetensors", "half");
	/* other names are not ours: another destination, another suffix */
	put(f->tmp, ".dst.sdafs-tmp-AbC1234", "keep");
	put(f->tmp, ".dsx.sdafs-tmp-AbC123", "keep");
	assert_int_equal(outdir_begin(&od, dst, false, f->err), 0);
	outdir_abort(&od);
	assert_listing(f->tmp, ".dst.sdafs-tmp-AbC1234 .dsx.sdafs-tmp-AbC123");

	/* a run still going holds its directory locked */
	assert_int_equal(mkdir(left, 0755), 0);
	int fd = open(left, O_RDONLY | O_DIRECTORY);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	assert_int_equal(outdir_begin(&od, dst, false, f->err), -EBUSY);
	assert_non_null(strstr(f->err, "another sdafs convert is writing it"));
	assert_int_equal(access(left, F_OK), 0);
	close(fd);
}

static void test_a_destination_that_is_a_file_or_has_no_parent_is_refused(void **state)
{
	struct fixture *f = *state;
	struct outdir od;
	char dst[512];

	test_path(dst, sizeof(dst), f->tmp, "file");
	put(f->tmp, "file", "x");
	assert_int_equal(outdir_begin(&od, dst, true, f->err), -EEXIST);
	assert_non_null(strstr(f->err, "not a directory"));
	test_path(dst, sizeof(dst), f->tmp, "no/such/dst");
	assert_int_equal(outdir_begin(&od, dst, false, f->err), -ENOENT);
	assert_int_equal(outdir_begin(&od, "/", false, f->err), -EINVAL);
	assert_listing(f->tmp, "file");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_export_writes_every_file_of_the_view_as_a_read_gives_it),
		T(test_export_to_another_filesystem_gives_the_same_bytes),
		T(test_a_budget_smaller_than_any_unit_still_writes_everything),
		T(test_every_source_byte_is_read_once),
		T(test_all_ranks_equal_each_rank_and_read_the_source_once),
		T(test_a_source_changed_since_the_scan_fails_naming_it),
		T(test_a_source_cut_short_fails_the_export),
		T(test_a_stop_request_ends_the_run_with_eintr),
		T(test_outdir_appears_whole_under_its_name_at_commit),
		T(test_outdir_refuses_a_destination_that_is_not_empty),
		T(test_outdir_fills_an_empty_destination),
		T(test_force_replaces_only_at_commit_and_removes_the_old_one),
		T(test_abort_removes_the_temporary_directory),
		T(test_a_leftover_nobody_holds_is_cleaned_one_held_is_refused),
		T(test_a_destination_that_is_a_file_or_has_no_parent_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
