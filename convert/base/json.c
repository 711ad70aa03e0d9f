/*
 * json.c — checked JSON parsing and quoting for messages (see json.h).
 *
 * The pre-scan is not a parser: it only tracks whether it is inside a
 * string (honouring backslash escapes) and how deep the brackets outside
 * strings go, which is all it takes to find a raw NUL, a \u0000 escape and
 * nesting past cJSON's limit.  Everything else is left to cJSON.
 */
#include "json.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1fu;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0fu;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07u;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;       /* overlong, past Unicode, or a surrogate */
	return len;
}

bool sd_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0, k; i < len; i += k)
		if (!(k = utf8_seq(p + i, len - i)))
			return false;
	return true;
}

const char *sd_quote(const char *s, size_t len, bool json_escapes,
		     char *buf, size_t size)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, i = 0;

	if (size < 8) {
		if (size)
			buf[0] = '\0';
		return buf;
	}
	buf[o++] = '"';
	while (i < len) {
		char piece[8];
		size_t n = utf8_seq(p + i, len - i), take = n;
		if (n == 1 && p[i] >= 0x20 && p[i] != 0x7f &&
		    (json_escapes || (p[i] != '"' && p[i] != '\\'))) {
			piece[0] = (char)p[i];
			piece[1] = '\0';
		} else if (n == 1 && (p[i] == '"' || p[i] == '\\')) {
			snprintf(piece, sizeof(piece), "\\%c", p[i]);
		} else if (n == 1) {
			snprintf(piece, sizeof(piece), "\\u%04x", p[i]);
		} else if (n) {
			memcpy(piece, p + i, n);
			piece[n] = '\0';
		} else {
			snprintf(piece, sizeof(piece), "\\x%02x", p[i]);
			take = 1;
		}
		size_t pl = strlen(piece);
		if (o + pl + 5 > size) {        /* room for ..." and the NUL */
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(buf + o, piece, pl);
		o += pl;
		i += take;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* What the pre-scan found: the first of each problem, or SIZE_MAX. */
struct scan {
	size_t raw_nul;         /* a NUL byte */
	size_t too_deep;        /* the bracket that passes cJSON's limit */
	size_t nul_string;      /* the opening quote of a string with \u0000 */
};

static bool is_nul_escape(const char *t, size_t len, size_t i)
{
	/* t[i] is the 'u' after a backslash */
	return len - i > 4 && !memcmp(t + i + 1, "0000", 4);
}

static void prescan(const char *t, size_t len, struct scan *sc)
{
	size_t depth = 0, open = 0;
	bool in_string = false;

	sc->raw_nul = sc->too_deep = sc->nul_string = SIZE_MAX;
	for (size_t i = 0; i < len; i++) {
		char c = t[i];
		if (c == '\0') {
			sc->raw_nul = i;
			return;
		}
		if (in_string) {
			if (c == '\\' && i + 1 < len) {
				if (t[++i] == 'u' && is_nul_escape(t, len, i) &&
				    sc->nul_string == SIZE_MAX)
					sc->nul_string = open;
			} else if (c == '"') {
				in_string = false;
			}
		} else if (c == '"') {
			in_string = true;
			open = i;
		} else if (c == '[' || c == '{') {
			if (++depth > CJSON_NESTING_LIMIT && sc->too_deep == SIZE_MAX)
				sc->too_deep = i;
		} else if ((c == ']' || c == '}') && depth) {
			depth--;
		}
	}
}

/* The string token whose opening quote is at t[at], for a message. */
static int nul_string_error(const char *t, size_t len, size_t at, const char *what,
			    char *err)
{
	size_t e = at + 1;
	char shown[256];

	while (e < len && t[e] != '"')
		e += t[e] == '\\' ? 2 : 1;
	if (e > len)
		e = len;
	size_t k = e + 1;
	while (k < len && (t[k] == ' ' || t[k] == '\t' || t[k] == '\n' || t[k] == '\r'))
		k++;
	bool key = k < len && t[k] == ':';
	sd_quote(t + at + 1, e - at - 1, true, shown, sizeof(shown));
	return sd_err(err, -EINVAL,
		      "%s: the %s %s (byte %zu) holds \\u0000, a NUL character, which sdafs cannot keep (it would cut the %s short); %s",
		      what, key ? "name" : "string", shown, at, key ? "name" : "string",
		      key ? "rename it" : "remove the NUL");
}

static bool json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int sd_json_parse(const char *text, size_t len, const char *what,
		  const char **end, cJSON **out, char *err)
{
	struct scan sc;
	const char *stop = NULL;

	*out = NULL;
	prescan(text, len, &sc);
	if (sc.raw_nul != SIZE_MAX)
		return sd_err(err, -EINVAL, "%s: contains a NUL byte at position %zu; not valid JSON",
			      what, sc.raw_nul);
	if (sc.too_deep != SIZE_MAX)
		return sd_err(err, -EINVAL,
			      "%s: JSON nested deeper than %d levels (at byte %zu), more than sdafs's JSON reader (cJSON) takes; this is not a syntax error",
			      what, CJSON_NESTING_LIMIT, sc.too_deep);
	*out = cJSON_ParseWithLengthOpts(text, len, &stop, 0);
	if (!*out) {
		size_t at = stop && stop >= text && stop <= text + len ? (size_t)(stop - text) : 0;
		return sd_err(err, -EINVAL, "%s: not valid JSON (syntax error near byte %zu of %zu)",
			      what, at, len);
	}
	if (sc.nul_string != SIZE_MAX) {
		cJSON_Delete(*out);
		*out = NULL;
		return nul_string_error(text, len, sc.nul_string, what, err);
	}
	if (end) {
		*end = stop;
		return 0;
	}
	for (const char *p = stop; p < text + len; p++)
		if (!json_space(*p)) {
			cJSON_Delete(*out);
			*out = NULL;
			return sd_err(err, -EINVAL,
				      "%s: not valid JSON (unexpected bytes after the value, at byte %zu of %zu)",
				      what, (size_t)(p - text), len);
		}
	return 0;
}
