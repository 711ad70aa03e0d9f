/*
 * json.h — parsing JSON that comes from files we do not trust, with a
 * message that says what is wrong.
 *
 * cJSON answers every failure with NULL, keeps strings NUL-terminated and
 * stops at its nesting limit.  One pass over the text before cJSON sees it
 * finds what cJSON would hide or misreport: a \u0000 escape (which would
 * silently cut a name or value short), a raw NUL byte, and nesting deeper
 * than CJSON_NESTING_LIMIT (which cJSON reports like a syntax error).
 */
#ifndef SDAFS_JSON_H
#define SDAFS_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/*
 * Parse len bytes of text; what names the text in messages (a file, "FILE:
 * header").  With end NULL the text must hold one value and only
 * whitespace after it; else *end gets where the value ended and the caller
 * judges what follows.  0 and *out (the caller deletes it), or -EINVAL
 * with a message: not JSON (where), nested too deep, or a string holding
 * NUL (shown escaped).
 */
int sd_json_parse(const char *text, size_t len, const char *what,
		  const char **end, cJSON **out, char *err);

/*
 * s (len bytes) written into buf for a message, between double quotes:
 * printable ASCII and valid UTF-8 as they are, " and \ escaped, control
 * characters as \u00XX, bytes of invalid UTF-8 as \xHH; cut with "..."
 * to fit size.  With json_escapes, s is the inside of a JSON string token
 * and its backslash escapes are kept as written.
 */
const char *sd_quote(const char *s, size_t len, bool json_escapes,
		     char *buf, size_t size);

/* Is s (len bytes) valid UTF-8 (no overlong forms, no surrogates)? */
bool sd_utf8_valid(const char *s, size_t len);

#endif
