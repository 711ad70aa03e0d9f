/*
 * config_json.c — a view's config.json: the source's, less the keys the
 * view's weights make untrue (see layout.h, layout_config).
 *
 * The one idea: edit the text, never print it again.  Re-printing the
 * parsed config would turn 10000.0 into 10000 (a float into an int for
 * transformers), round integers above 2^53 and change every space; cutting
 * the member out of the bytes keeps every other key, its order and every
 * number exactly as written.  The cut is then checked with cJSON: the
 * edited text must parse to the source's config without the key, or the
 * mount fails rather than serve a config that says something else.
 */
#include "layout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "io.h"

static size_t skip_space(const char *t, size_t len, size_t i)
{
	while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
		i++;
	return i;
}

/* t[i] is '"': the index just past the closing quote (len if none). */
static size_t skip_string(const char *t, size_t len, size_t i)
{
	for (i++; i < len && t[i] != '"'; i++)
		if (t[i] == '\\')
			i++;
	return i < len ? i + 1 : len;
}

/* The index just past the value starting at t[i]. */
static size_t skip_value(const char *t, size_t len, size_t i)
{
	int depth = 0;

	if (i < len && t[i] == '"')
		return skip_string(t, len, i);
	for (; i < len; i++) {
		char ch = t[i];
		if (ch == '"') {
			i = skip_string(t, len, i) - 1;
		} else if (ch == '{' || ch == '[') {
			depth++;
		} else if (ch == '}' || ch == ']') {
			if (depth == 0)
				return i;
			if (--depth == 0)
				return i + 1;
		} else if (depth == 0 && (ch == ',' || ch == ' ' || ch == '\t' || ch == '\n' ||
					  ch == '\r')) {
			return i;
		}
	}
	return len;
}

/*
 * Find the top-level member `key` of the object in t: [*cut, *cut_end) is
 * the member with the comma that separates it from its neighbour.  False
 * when there is none (or the text is not an object; the check below says).
 */
static bool find_member(const char *t, size_t len, const char *key, size_t *cut,
			size_t *cut_end)
{
	size_t klen = strlen(key), i = skip_space(t, len, 0), prev_end = 0;

	if (i >= len || t[i] != '{')
		return false;
	for (i = skip_space(t, len, i + 1); i < len && t[i] == '"';) {
		size_t name = i, name_end = skip_string(t, len, i);
		size_t v = skip_space(t, len, name_end);
		if (v >= len || t[v] != ':')
			return false;
		size_t v_end = skip_value(t, len, skip_space(t, len, v + 1));
		size_t next = skip_space(t, len, v_end);
		bool match = name_end - name == klen + 2 && !memcmp(t + name + 1, key, klen);
		if (match && prev_end) {                /* ", member" after the one before */
			*cut = prev_end;
			*cut_end = v_end;
			return true;
		}
		if (match) {                            /* the first: "member, " */
			*cut = name;
			*cut_end = next < len && t[next] == ',' ? skip_space(t, len, next + 1) : v_end;
			return true;
		}
		if (next >= len || t[next] != ',')
			return false;
		prev_end = v_end;
		i = skip_space(t, len, next + 1);
	}
	return false;
}

/* The edited text must mean the source's config less key, nothing else. */
static int check_edit(const struct source *s, const char *text, const char *key,
		      const char *name, char *err)
{
	cJSON *want = cJSON_Duplicate(s->config, true), *got = cJSON_Parse(text);
	bool same;

	if (want)
		while (cJSON_HasObjectItem(want, key))
			cJSON_DeleteItemFromObjectCaseSensitive(want, key);
	same = want && got && cJSON_Compare(want, got, true);
	cJSON_Delete(want);
	cJSON_Delete(got);
	if (!same)
		return sd_err(err, -EINVAL, "%s: cannot leave \"%s\" out of it without changing the rest; the view would say the weights are quantized",
			      name, key);
	return 0;
}

int layout_config(const struct plan *p, const struct source *s, uint32_t file,
		  char **text, size_t *len, char *err)
{
	const struct src_file *f = &s->files[file];
	size_t n = (size_t)f->size, cut, cut_end;
	char *t;
	int rc;

	*text = NULL;
	*len = 0;
	if (!p->config_drop || !s->config || !cJSON_HasObjectItem(s->config, p->config_drop))
		return 0;       /* nothing to change: passed through as it is */
	if (!(t = malloc(n + 1)))
		return sd_err(err, -ENOMEM, "out of memory");
	if (sd_pread_full(f->fd, t, n, 0) != (ssize_t)n) {
		free(t);
		return sd_err(err, -EIO, "%s: cannot read it again (changed under the mount?)", f->name);
	}
	t[n] = '\0';
	/* every occurrence: a duplicate key would otherwise survive */
	while (find_member(t, n, p->config_drop, &cut, &cut_end)) {
		memmove(t + cut, t + cut_end, n - cut_end + 1);
		n -= cut_end - cut;
	}
	if ((rc = check_edit(s, t, p->config_drop, f->name, err)) < 0) {
		free(t);
		return rc;
	}
	*text = t;
	*len = n;
	return 1;
}
