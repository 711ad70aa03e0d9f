/*
 * fuzz_adapter_table.c — libFuzzer target: adapter_load on arbitrary text.
 *
 * An adapter table comes from the user (-o adapter_file=) or is built in;
 * either way the loader must turn any text into a table or a message,
 * never a crash, a leak or undefined behaviour.  The input is the table
 * (not NUL terminated, as a file read into memory would not be); seeds are
 * the built-in and example tables.  A loaded table's accessors are called
 * too, since they walk the parsed JSON the loader only checked.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *err)
{
	fprintf(stderr, "fuzz_adapter_table: %s (message: \"%s\")\n", what, err);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct adapter *a = NULL;
	char err[SD_ERRLEN], archs[256];
	int rc;

	err[0] = '\0';
	rc = adapter_load((const char *)data, size, "fuzz", &a, err);
	if (rc < 0) {
		if (a)
			fail("a failed load left a table in *out", err);
		if (!err[0])
			fail("a failed load gave no message", err);
		return 0;
	}
	if (rc > 0)
		fail("adapter_load returned a positive value", err);
	if (!a)
		fail("adapter_load returned 0 without a table", err);
	if (!adapter_name(a) || !adapter_description(a))
		fail("a loaded table has no name or description", err);
	adapter_architectures(a, archs, sizeof(archs));
	if (strlen(archs) >= sizeof(archs))
		fail("adapter_architectures overran its buffer", err);
	adapter_free(a);
	return 0;
}
