/*
 * adapter_match.c — compiling and running a table's patterns within bounds.
 *
 * A table may come from a user (-o adapter_file=) and tensor names from the
 * checkpoint, so a pattern that backtracks catastrophically must fail the
 * mount quickly and say so, never hang it and never count as "no match"
 * (which would silently change the plan).  Every match runs under one
 * read-only match context with match and depth limits far above what a
 * sane pattern needs on the longest name (ST_MAX_NAME bytes), JIT-compiled
 * where PCRE2 has a JIT.  The JIT keeps its backtracking on a small stack;
 * a match that outgrows it runs again in the interpreter, under the same
 * limits, so only a runaway pattern fails.
 */
#include "adapter_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "err.h"

/* valgrind cannot follow the JIT's machine code, which reads whole words
 * past a name's end by design: under valgrind the interpreter runs. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND RUNNING_ON_VALGRIND
#endif
#endif
#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND 0
#endif

/* A 4096-byte name with four lazy groups needs about 4,000 steps; the
 * catastrophic ^(x+x+)+$ on 40 x and a y hits this in 3 ms (JIT). */
#define MATCH_LIMIT 1000000u
#define DEPTH_LIMIT 50000u

static pcre2_match_context *context;
static pthread_once_t context_once = PTHREAD_ONCE_INIT;

static void context_init(void)
{
	context = pcre2_match_context_create(NULL);
	if (context) {
		pcre2_set_match_limit(context, MATCH_LIMIT);
		pcre2_set_depth_limit(context, DEPTH_LIMIT);
	}
}

pcre2_match_context *adapter_match_context(void)
{
	pthread_once(&context_once, context_init);
	return context;
}

int adapter_compile(const char *pat, const char *what, pcre2_code **out, char *err)
{
	int code;
	PCRE2_SIZE off;

	*out = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF,
			     &code, &off, NULL);
	if (!*out) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(code, msg, sizeof(msg));
		return sd_err(err, -EINVAL, "%s: pattern \"%s\" at offset %zu: %s",
			      what, pat, (size_t)off, (char *)msg);
	}
	if (!UNDER_VALGRIND)
		pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE);    /* else the interpreter */
	return 0;
}

int adapter_match(const pcre2_code *re, const char *subject, pcre2_match_data *md)
{
	pcre2_match_context *mc = adapter_match_context();
	int rc;

	if (!mc)
		return PCRE2_ERROR_NOMEMORY;
	rc = pcre2_match(re, (PCRE2_SPTR)subject, PCRE2_ZERO_TERMINATED, 0, 0, md, mc);
	if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
		rc = pcre2_match(re, (PCRE2_SPTR)subject, PCRE2_ZERO_TERMINATED, 0,
				 PCRE2_NO_JIT, md, mc);
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	return rc < 0 ? rc : 1;
}

int adapter_match_failed(int code, const char *where, const char *subject, char *err)
{
	PCRE2_UCHAR msg[256];
	const char *hint = "";

	pcre2_get_error_message(code, msg, sizeof(msg));
	if (code == PCRE2_ERROR_MATCHLIMIT || code == PCRE2_ERROR_DEPTHLIMIT ||
	    code == PCRE2_ERROR_HEAPLIMIT)
		hint = "; the pattern backtracks too much (nested repeats such as (x+)+ try exponentially many ways): rewrite it so each part of a name can match only one way";
	return sd_err(err, code == PCRE2_ERROR_NOMEMORY ? -ENOMEM : -EINVAL,
		      "%s: matching tensor '%.200s' failed: %s%s", where, subject, (char *)msg, hint);
}
