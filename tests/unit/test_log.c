/*
 * test_log.c — the daemon's log keeps its last lines in a ring, appends
 * timestamped lines to a log file, refuses a file it cannot append to, and
 * never lets a message forge a line.
 *
 * The log is process-wide state, so the tests run in order and each reads
 * only what it logged itself (the ring's newest lines, the file's new
 * tail).
 */
#include <errno.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "log.h"
#include "testlib.h"

struct lines {
	char *line[SD_LOG_RING + 1];
	size_t n;
};

static void collect(const char *line, void *arg)
{
	struct lines *l = arg;

	assert_true(l->n < SD_LOG_RING);
	assert_non_null(l->line[l->n++] = strdup(line));
}

static void free_lines(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->line[i]);
}

/* The ring's line i, with its timestamp cut off. */
static const char *message(const struct lines *l, size_t i)
{
	const char *space = strchr(l->line[i], ' ');

	assert_non_null(space);
	return space + 1;
}

static void test_the_ring_keeps_the_last_twenty_lines_oldest_first(void **state)
{
	struct lines l = { 0 };
	char want[32];

	(void)state;
	for (int i = 0; i < 25; i++)
		sd_log("ring line %d", i);
	sd_log_recent(collect, &l);
	assert_int_equal(l.n, SD_LOG_RING);
	for (size_t i = 0; i < l.n; i++) {
		snprintf(want, sizeof(want), "ring line %zu", i + 5);
		assert_string_equal(message(&l, i), want);
	}
	free_lines(&l);
}

static void test_a_message_cannot_forge_a_second_line(void **state)
{
	struct lines l = { 0 };

	(void)state;
	sd_log("tensor 'a\nsdafs: all is well\x1b[2J'");
	sd_log_recent(collect, &l);
	assert_string_equal(message(&l, l.n - 1), "tensor 'a?sdafs: all is well?[2J'");
	free_lines(&l);
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = calloc(1, 65536);

	assert_non_null(f);
	assert_non_null(text);
	assert_true(fread(text, 1, 65535, f) < 65535);
	fclose(f);
	return text;
}

/* Appended after what the file held, one timestamped line each. */
static void test_a_log_file_gets_each_line_appended_with_a_timestamp(void **state)
{
	char dir[128], path[256], err[SD_ERRLEN];
	regex_t re;

	(void)state;
	assert_int_equal(testdir_make(dir, sizeof(dir), "log"), 0);
	test_path(path, sizeof(path), dir, "sdafs.log");
	test_write_file(dir, "sdafs.log", "earlier line\n", 13);
	assert_int_equal(sd_log_to_file(path, err), 0);
	sd_log("read of model-00001-of-00002.safetensors failed: %s", "because");
	sd_log("second");
	char *text = read_text(path);
	assert_int_equal(regcomp(&re, "^earlier line\n"
				 "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}[-+][0-9]{4} "
				 "sdafs\\[[0-9]+\\]: read of model-00001-of-00002.safetensors failed: because\n"
				 "[^\n]* sdafs\\[[0-9]+\\]: second\n$", REG_EXTENDED), 0);
	if (regexec(&re, text, 0, NULL, 0) != 0)
		fail_msg("log file:\n%s", text);
	regfree(&re);
	free(text);
	assert_int_equal(testdir_remove(dir), 0);
	sd_log("after the file is gone");       /* still no crash: it stays open */
}

static void test_a_log_file_that_cannot_be_opened_is_refused_saying_why(void **state)
{
	char err[SD_ERRLEN];

	(void)state;
	assert_int_equal(sd_log_to_file("/nonexistent-dir/sdafs.log", err), -ENOENT);
	assert_non_null(strstr(err, "log=/nonexistent-dir/sdafs.log"));
	assert_non_null(strstr(err, "No such file or directory"));
	assert_int_equal(sd_log_to_file("/tmp", err), -EISDIR);
	assert_non_null(strstr(err, "log=/tmp"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_ring_keeps_the_last_twenty_lines_oldest_first),
		cmocka_unit_test(test_a_message_cannot_forge_a_second_line),
		cmocka_unit_test(test_a_log_file_gets_each_line_appended_with_a_timestamp),
		cmocka_unit_test(test_a_log_file_that_cannot_be_opened_is_refused_saying_why),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
