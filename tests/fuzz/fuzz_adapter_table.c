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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct adapter *a = NULL;
	char err[SD_ERRLEN], archs[256];

	err[0] = '\0';
	if (adapter_load((const char *)data, size, "fuzz", &a, err) < 0) {
		if (a || !err[0]) {
			fprintf(stderr, "fuzz_adapter_table: failed load left a table or no message\n");
			abort();
		}
		return 0;
	}
	if (!a || !adapter_name(a) || !adapter_description(a))
		abort();
	adapter_architectures(a, archs, sizeof(archs));
	if (strlen(archs) >= sizeof(archs))
		abort();
	adapter_free(a);
	return 0;
}
