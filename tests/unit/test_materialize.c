/*
 * test_materialize.c — materialized copies are served only when they prove
 * themselves, and the directory keeps itself tidy.
 *
 * Each test writes a one-layer Llama checkpoint (config.json and one
 * safetensors file of patterned bytes) into a fresh directory whose name
 * holds a space and a newline (so the record's escaping is exercised),
 * opens its native view, and works with the copy of its weight file in a
 * 0700 directory beside it.  A copy's bytes are compared with the view
 * read from a second view that has no copy; the record is read back as
 * text.  Attacks are done the way a user would: chmod, chown, pwrite of
 * one byte, a symlink, touch -r after a rewrite.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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

#include "copy_record.h"
#include "err.h"
#include "materialize.h"
#include "testlib.h"
#include "view.h"

#define CONFIG "{'architectures':['LlamaForCausalLM'],'model_type':'llama'," \
	       "'num_hidden_layers':1,'torch_dtype':'bfloat16'}"

static const struct test_tensor TENSORS[] = {
	{ "model.embed_tokens.weight", "BF16", { 64, 32 } },
	{ "model.layers.0.self_attn.q_proj.weight", "BF16", { 32, 32 } },
	{ "model.norm.weight", "BF16", { 32 } },
};

struct fixture {
	char dir[512];          /* the test's directory */
	char src[600];          /* the checkpoint */
	char copies[600];       /* the materialize_dir */
	int dirfd;
	struct view v;
	bool open;
	size_t file;            /* the view's weight file */
	char err[SD_ERRLEN];
};

static void open_view(struct fixture *f)
{
	const struct view_opts o = { .view = VIEW_NATIVE, .dtype = SD_DTYPE_INVALID };

	if (view_open(&f->v, f->src, &o, 1 << 20, f->err) != 0)
		fail_msg("view_open: %s", f->err);
	f->open = true;
	for (f->file = 0; f->v.layout.files[f->file].kind != VF_WEIGHTS; f->file++)
		assert_true(f->file + 1 < f->v.layout.n);
}

static void close_view(struct fixture *f)
{
	if (f->open)
		view_close(&f->v);
	f->open = false;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || testdir_make(f->dir, sizeof(f->dir), "copy rec\nord") < 0)
		return -1;
	snprintf(f->src, sizeof(f->src), "%s/src", f->dir);
	snprintf(f->copies, sizeof(f->copies), "%s/copies", f->dir);
	if (mkdir(f->src, 0755) < 0 || mkdir(f->copies, 0700) < 0)
		return -1;
	test_write_json(f->src, "config.json", CONFIG);
	test_write_shard(f->src, "model.safetensors", TENSORS, 3, NULL);
	f->dirfd = open(f->copies, O_RDONLY | O_DIRECTORY);
	*state = f;
	open_view(f);
	return f->dirfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close_view(f);
	close(f->dirfd);
	int rc = testdir_remove(f->dir);
	free(f);
	return rc;
}

/* The names materialize.c gives the copy and record of f's weight file. */
static void names(struct fixture *f, char *copy, char *record, size_t len)
{
	char *desc;
	uint64_t key;

	assert_int_equal(copy_describe(&f->v, f->file, &desc, &key, f->err), 0);
	free(desc);
	snprintf(copy, len, "%s/%016" PRIx64 ".%s", f->copies, key,
		 f->v.layout.files[f->file].name);
	snprintf(record, len, "%s/%016" PRIx64 "-record", f->copies, key);
}

static void write_copy(struct fixture *f)
{
	if (materialize_write(&f->v, f->dirfd, f->file, f->err) != 0)
		fail_msg("materialize_write: %s", f->err);
	assert_true(atomic_load(&f->v.layout.files[f->file].mat_fd) >= 0);
}

/* Reopen the view (nothing attached) and try to attach the copy. */
static int reattach(struct fixture *f)
{
	close_view(f);
	open_view(f);
	return materialize_attach(&f->v, f->dirfd, f->file, f->err);
}

/* The whole weight file as f's view serves it (caller frees). */
static unsigned char *read_view(struct fixture *f)
{
	uint64_t n = f->v.layout.files[f->file].size;
	unsigned char *buf = malloc(n);
	struct view_io io = { 0 };

	assert_non_null(buf);
	assert_int_equal(view_read(&f->v, f->file, 0, n, &io, f->err), 0);
	assert_int_equal(view_io_gather(&f->v, &io, buf, f->err), 0);
	view_io_release(&f->v, &io);
	view_io_free(&io);
	return buf;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *in = fopen(path, "rb");
	char *text = calloc(1, 1 << 16);

	assert_non_null(in);
	assert_non_null(text);
	*len = fread(text, 1, (1 << 16) - 1, in);
	fclose(in);
	return text;
}

static void spit(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* ---- the checksum and the record text ------------------------------------------ */

static uint64_t sum_in_pieces(const unsigned char *p, size_t n, size_t piece)
{
	struct copy_sum s;

	copy_sum_init(&s);
	for (size_t at = 0; at < n; at += piece)
		copy_sum_add(&s, p + at, n - at < piece ? n - at : piece);
	return copy_sum_final(&s);
}

static void test_the_checksum_is_the_same_however_the_bytes_are_cut(void **state)
{
	unsigned char buf[1000];

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 37 + 11);
	uint64_t whole = sum_in_pieces(buf, sizeof(buf), sizeof(buf));
	for (size_t piece = 1; piece < 70; piece += 3)
		assert_true(sum_in_pieces(buf, sizeof(buf), piece) == whole);
}

static void test_the_checksum_sees_any_flipped_bit_and_a_longer_stream(void **state)
{
	unsigned char buf[1000] = { 0 };

	(void)state;
	uint64_t clean = sum_in_pieces(buf, sizeof(buf), sizeof(buf));
	for (size_t bit = 0; bit < 8 * sizeof(buf); bit += 7) {
		buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		assert_true(sum_in_pieces(buf, sizeof(buf), 64) != clean);
		buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
	assert_true(sum_in_pieces(buf, sizeof(buf) - 1, 64) != clean);
}

static void test_a_record_reads_back_and_refuses_any_other_description(void **state)
{
	struct fixture *f = *state;
	struct copy_ident id = { 1, 2, 3, -4, 5, 6, 999999999 }, got;
	uint64_t key, sum;
	char *desc;

	assert_int_equal(copy_describe(&f->v, f->file, &desc, &key, f->err), 0);
	char *text = copy_record_text(desc, &id, 0x0123456789abcdefull);
	assert_non_null(text);
	size_t len = strlen(text);
	assert_int_equal(copy_record_parse(text, len, desc, &got, &sum), 0);
	assert_true(copy_ident_equal(&got, &id));
	assert_true(sum == 0x0123456789abcdefull);
	assert_int_equal(copy_record_parse(text, len, "sdafs-copy 2\nfile x\n", &got, &sum), -ESTALE);
	assert_int_equal(copy_record_parse(text, len - 4, desc, &got, &sum), -EBADMSG);
	text[len - 3] = '\0';   /* a NUL inside */
	assert_int_equal(copy_record_parse(text, len, desc, &got, &sum), -EBADMSG);
	free(text);
	free(desc);
}

static int expect_source(void *arg, const char *path, const struct copy_ident *id)
{
	const struct src_file *s = arg;
	struct stat st;

	assert_int_equal(stat(path, &st), 0);       /* the escaped name came back */
	assert_true(st.st_ino == s->ino && id->ino == (uint64_t)s->ino);
	assert_true(id->ctime_s == s->ctime.tv_sec && id->ctime_ns == s->ctime.tv_nsec);
	return 7;
}

static void test_a_record_names_its_sources_even_with_spaces_and_newlines(void **state)
{
	struct fixture *f = *state;
	const struct vfile *vf = &f->v.layout.files[f->file];
	struct copy_ident id = { 0 };
	uint64_t key;
	char *desc;

	assert_non_null(strchr(f->src, '\n'));
	assert_int_equal(copy_describe(&f->v, f->file, &desc, &key, f->err), 0);
	char *text = copy_record_text(desc, &id, 0);
	assert_int_equal(copy_record_sources(text, strlen(text), expect_source,
					     &f->v.src.files[vf->srcs[0]]), 7);
	free(text);
	free(desc);
}

/* ---- writing, attaching, verifying ------------------------------------------------ */

static void test_a_written_copy_is_served_and_holds_the_views_bytes(void **state)
{
	struct fixture *f = *state;
	uint64_t n = f->v.layout.files[f->file].size;
	unsigned char *want = read_view(f);
	char copy[1200], record[1200];
	struct stat st;

	write_copy(f);
	names(f, copy, record, sizeof(copy));
	assert_int_equal(lstat(copy, &st), 0);
	assert_true(S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600 && st.st_size == (off_t)n);
	assert_int_equal(lstat(record, &st), 0);
	assert_true((st.st_mode & 0777) == 0600);
	assert_int_equal(reattach(f), 1);
	unsigned char *got = read_view(f);
	assert_memory_equal(got, want, n);
	assert_int_equal(materialize_verify(&f->v, f->dirfd, f->file, f->err), 1);
	free(got);
	free(want);
}

static void test_a_copy_without_its_record_is_not_served(void **state)
{
	struct fixture *f = *state;
	char copy[1200], record[1200];

	write_copy(f);
	names(f, copy, record, sizeof(copy));
	assert_int_equal(unlink(record), 0);
	assert_int_equal(reattach(f), 0);
	assert_string_equal(f->err, "");
}

static void test_a_copy_writable_by_others_is_refused(void **state)
{
	struct fixture *f = *state;
	char copy[1200], record[1200];

	write_copy(f);
	names(f, copy, record, sizeof(copy));
	assert_int_equal(chmod(copy, 0620), 0);
	assert_int_equal(reattach(f), 0);
	assert_non_null(strstr(f->err, "writable by other users"));
}

static void test_a_copy_changed_after_it_was_written_is_refused(void **state)
{
	struct fixture *f = *state;
	char copy[1200], record[1200], byte;

	write_copy(f);
	names(f, copy, record, sizeof(copy));
	int fd = open(copy, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &byte, 1, 100), 1);
	assert_int_equal(pwrite(fd, &byte, 1, 100), 1);    /* the same byte: only ctime moves */
	close(fd);
	assert_int_equal(reattach(f), 0);
	assert_non_null(strstr(f->err, "was changed after it was written"));
}

static void test_a_symlink_in_place_of_a_copy_is_refused(void **state)
{
	struct fixture *f = *state;
	char copy[1200], record[1200], moved[1300];

	write_copy(f);
	names(f, copy, record, sizeof(copy));
	snprintf(moved, sizeof(moved), "%s.elsewhere", copy);
	assert_int_equal(rename(copy, moved), 0);
	assert_int_equal(symlink(moved, copy), 0);
	assert_int_equal(reattach(f), 0);
	assert_non_null(strstr(f->err, "symbolic link"));
}

static void test_a_copy_owned_by_another_user_is_refused(void **state)
{
	struct fixture *f = *state;
	char copy[1200], record[1200];

	if (geteuid() != 0)
		skip();
	write_copy(f);
	names(f, copy, record, sizeof(copy));
	assert_int_equal(chown(record, 65534, 65534), 0);
	assert_int_equal(reattach(f), 0);
	assert_non_null(strstr(f->err, "owned by uid 65534"));
}

/* Write the copy, then overwrite the record's text, skip bytes after the
 * first `at`, with put (in place: the record's own identity is not checked). */
static void write_and_edit_record(struct fixture *f, const char *at, size_t skip,
				  const char *put)
{
	char copy[1200], record[1200];
	size_t len;

	write_copy(f);
	names(f, copy, record, sizeof(copy));
	char *text = slurp(record, &len);
	char *where = strstr(text, at);
	assert_non_null(where);
	memcpy(where + skip, put, strlen(put));
	spit(record, text);
	free(text);
}

static void test_a_record_of_another_description_is_refused(void **state)
{
	struct fixture *f = *state;

	write_and_edit_record(f, "dtype=BF16", 0, "dtype=F16 ");
	assert_int_equal(reattach(f), 0);
	assert_non_null(strstr(f->err, "describes other sources"));
}

static void test_verify_finds_bytes_other_than_those_written(void **state)
{
	struct fixture *f = *state;

	write_and_edit_record(f, "\nchecksum ", 10, "0000000000000000");
	assert_int_equal(reattach(f), 1);      /* attach reads no bytes */
	assert_int_equal(materialize_verify(&f->v, f->dirfd, f->file, f->err), -EIO);
	assert_non_null(strstr(f->err, "other bytes than were written"));
}

/* Rewrite the source's first data byte in place (same size) and put its
 * mtime back, as touch -r, rsync -a or cp -p would leave it. */
static void rewrite_source_keeping_mtime(struct fixture *f)
{
	char path[700];
	struct stat st;
	unsigned char byte;

	snprintf(path, sizeof(path), "%s/model.safetensors", f->src);
	assert_int_equal(stat(path, &st), 0);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &byte, 1, st.st_size - 1), 1);
	byte ^= 0xff;
	assert_int_equal(pwrite(fd, &byte, 1, st.st_size - 1), 1);
	const struct timespec times[2] = { st.st_atim, st.st_mtim };
	assert_int_equal(futimens(fd, times), 0);
	close(fd);
}

static void test_a_source_rewritten_with_its_mtime_put_back_gets_a_new_copy(void **state)
{
	struct fixture *f = *state;
	uint64_t n = f->v.layout.files[f->file].size;
	unsigned char *before = read_view(f);

	write_copy(f);
	rewrite_source_keeping_mtime(f);
	assert_int_equal(reattach(f), 0);
	assert_string_equal(f->err, "");        /* a new key: no copy for it */
	unsigned char *now = read_view(f);      /* converted from the new bytes */
	assert_true(memcmp(now, before, n) != 0);
	write_copy(f);
	assert_int_equal(reattach(f), 1);
	unsigned char *copy = read_view(f);
	assert_memory_equal(copy, now, n);
	free(copy);
	free(now);
	free(before);
}

static void test_a_planted_symlink_under_the_copys_name_is_not_written_through(void **state)
{
	struct fixture *f = *state;
	char copy[1200], record[1200], victim[700];
	struct stat st;

	names(f, copy, record, sizeof(copy));
	snprintf(victim, sizeof(victim), "%s/victim", f->dir);
	test_write_file(f->dir, "victim", "keep", 4);
	assert_int_equal(symlink(victim, copy), 0);
	assert_int_equal(symlink(victim, record), 0);
	write_copy(f);
	assert_int_equal(stat(victim, &st), 0);
	assert_int_equal(st.st_size, 4);
	assert_int_equal(lstat(copy, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(reattach(f), 1);
}

static void test_a_directory_others_can_write_to_is_refused_unless_sticky(void **state)
{
	struct fixture *f = *state;
	int fd;

	assert_int_equal(chmod(f->copies, 0777), 0);
	assert_int_equal(materialize_dir_open(f->copies, &fd, f->err), -EPERM);
	assert_non_null(strstr(f->err, "other users can write to it"));
	assert_int_equal(chmod(f->copies, 0775), 0);
	assert_int_equal(materialize_dir_open(f->copies, &fd, f->err), -EPERM);
	assert_int_equal(chmod(f->copies, 01777), 0);
	assert_int_equal(materialize_dir_open(f->copies, &fd, f->err), 0);
	close(fd);
}

/* ---- housekeeping ------------------------------------------------------------------ */

static int count_files(struct fixture *f)
{
	char cmd[1400], line[64];
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", f->copies);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	if (fgets(line, sizeof(line), p))
		n = atoi(line);
	pclose(p);
	return n;
}

static void test_tidy_removes_dead_temporaries_but_not_a_living_writers(void **state)
{
	struct fixture *f = *state;
	struct tidy_report r;

	test_write_file(f->copies, "00000000000000aa-tmp.0000000000000001", "dead", 4);
	test_write_file(f->copies, "00000000000000aa-tmp.0000000000000002", "live", 4);
	char path[1200];
	snprintf(path, sizeof(path), "%s/00000000000000aa-tmp.0000000000000002", f->copies);
	int held = open(path, O_RDONLY);
	assert_int_equal(flock(held, LOCK_EX), 0);
	test_write_file(f->copies, "not-ours.tmp.1234", "x", 1);
	assert_int_equal(materialize_tidy(&f->v, f->dirfd, 0, 0, &r, f->err), 0);
	assert_int_equal(r.temps, 1);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(count_files(f), 2);
	close(held);
}

static void test_tidy_removes_copies_of_changed_sources_and_half_pairs(void **state)
{
	struct fixture *f = *state;
	struct tidy_report r;
	char copy[1200], record[1200];

	write_copy(f);
	names(f, copy, record, sizeof(copy));
	assert_int_equal(materialize_tidy(&f->v, f->dirfd, 0, 0, &r, f->err), 0);
	assert_int_equal(r.dead + r.orphans + r.temps, 0);
	assert_int_equal(count_files(f), 2);
	rewrite_source_keeping_mtime(f);
	assert_int_equal(materialize_tidy(&f->v, f->dirfd, 0, 0, &r, f->err), 0);
	assert_int_equal(r.dead, 1);
	assert_int_equal(count_files(f), 0);
	/* a record alone, and an old copy alone */
	close_view(f);
	open_view(f);
	write_copy(f);
	names(f, copy, record, sizeof(copy));
	assert_int_equal(unlink(copy), 0);
	test_write_file(f->copies, "00000000000000bb.model.safetensors", "old", 3);
	char old[1200];
	snprintf(old, sizeof(old), "%s/00000000000000bb.model.safetensors", f->copies);
	const struct timespec hour_ago[2] = { { time(NULL) - 3600, 0 }, { time(NULL) - 3600, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, old, hour_ago, 0), 0);
	assert_int_equal(materialize_tidy(&f->v, f->dirfd, 0, 0, &r, f->err), 0);
	assert_int_equal(r.orphans, 2);
	assert_int_equal(count_files(f), 0);
}

static void test_tidy_leaves_files_of_other_users_alone(void **state)
{
	struct fixture *f = *state;
	struct tidy_report r;
	char copy[1200], record[1200];

	if (geteuid() != 0)
		skip();
	write_copy(f);
	names(f, copy, record, sizeof(copy));
	assert_int_equal(chown(copy, 65534, 65534), 0);
	assert_int_equal(chown(record, 65534, 65534), 0);
	rewrite_source_keeping_mtime(f);
	assert_int_equal(materialize_tidy(&f->v, f->dirfd, 1, 0, &r, f->err), 0);
	assert_int_equal(r.dead + r.orphans + r.evicted, 0);
	assert_int_equal(count_files(f), 2);
}

static void test_a_budget_evicts_unused_copies_but_never_one_in_use(void **state)
{
	struct fixture *f = *state;
	struct tidy_report r;
	uint64_t n = f->v.layout.files[f->file].size;

	write_copy(f);          /* attached: in use */
	assert_int_equal(materialize_tidy(&f->v, f->dirfd, n, 0, &r, f->err), 0);
	assert_int_equal(materialize_tidy(&f->v, f->dirfd, n, 1, &r, f->err), -ENOSPC);
	assert_non_null(strstr(f->err, "materialize_max"));
	assert_int_equal(r.evicted, 0);
	assert_int_equal(count_files(f), 2);
	close_view(f);
	open_view(f);           /* nothing attached */
	assert_int_equal(materialize_tidy(&f->v, f->dirfd, n, 1, &r, f->err), 0);
	assert_int_equal(r.evicted, 1);
	assert_true(r.evicted_bytes == n);
	assert_int_equal(count_files(f), 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_checksum_is_the_same_however_the_bytes_are_cut),
		cmocka_unit_test(test_the_checksum_sees_any_flipped_bit_and_a_longer_stream),
		T(test_a_record_reads_back_and_refuses_any_other_description),
		T(test_a_record_names_its_sources_even_with_spaces_and_newlines),
		T(test_a_written_copy_is_served_and_holds_the_views_bytes),
		T(test_a_copy_without_its_record_is_not_served),
		T(test_a_copy_writable_by_others_is_refused),
		T(test_a_copy_changed_after_it_was_written_is_refused),
		T(test_a_symlink_in_place_of_a_copy_is_refused),
		T(test_a_copy_owned_by_another_user_is_refused),
		T(test_a_record_of_another_description_is_refused),
		T(test_verify_finds_bytes_other_than_those_written),
		T(test_a_source_rewritten_with_its_mtime_put_back_gets_a_new_copy),
		T(test_a_planted_symlink_under_the_copys_name_is_not_written_through),
		T(test_a_directory_others_can_write_to_is_refused_unless_sticky),
		T(test_tidy_removes_dead_temporaries_but_not_a_living_writers),
		T(test_tidy_removes_copies_of_changed_sources_and_half_pairs),
		T(test_tidy_leaves_files_of_other_users_alone),
		T(test_a_budget_evicts_unused_copies_but_never_one_in_use),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
