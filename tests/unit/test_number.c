/* test_number.c — strict non-negative counts (convert/base/number.h). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "number.h"

static void test_a_whole_decimal_number_is_read(void **state)
{
	(void)state;
	assert_int_equal(sd_whole_number("0"), 0);
	assert_int_equal(sd_whole_number("7"), 7);
	assert_int_equal(sd_whole_number("0042"), 42);
	assert_int_equal(sd_whole_number("9223372036854775807"), LONG_MAX);
}

static void test_anything_else_is_no_number(void **state)
{
	static const char *const bad[] = {
		"", " 3", "3 ", "+3", "-3", "3x", "x3", "0x10", "1e3", "3.0",
		"9223372036854775808",  /* one past LONG_MAX */
	};

	(void)state;
	assert_int_equal(sd_whole_number(NULL), -1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sd_whole_number(bad[i]) != -1)
			fail_msg("'%s' was read as %ld", bad[i], sd_whole_number(bad[i]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_whole_decimal_number_is_read),
		cmocka_unit_test(test_anything_else_is_no_number),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
