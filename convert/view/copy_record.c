/* copy_record.c — the description and record of a materialized copy (see
 * copy_record.h).  Names are escaped (\xHH for spaces, control bytes and
 * backslashes), so every fact is one line of space-separated words. */
#include "copy_record.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

#define FORMAT_LINE "sdafs-copy 2\n"   /* bump when a copy's bytes would change */
#define FNV_BASIS 1469598103934665603ull

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* ---- identities ------------------------------------------------------------ */

void copy_ident_of(const struct stat *st, struct copy_ident *id)
{
	*id = (struct copy_ident){
		.dev = (uint64_t)st->st_dev, .ino = (uint64_t)st->st_ino,
		.size = (uint64_t)st->st_size,
		.mtime_s = st->st_mtim.tv_sec, .mtime_ns = st->st_mtim.tv_nsec,
		.ctime_s = st->st_ctim.tv_sec, .ctime_ns = st->st_ctim.tv_nsec,
	};
}

bool copy_ident_equal(const struct copy_ident *a, const struct copy_ident *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_s == b->mtime_s && a->mtime_ns == b->mtime_ns &&
	       a->ctime_s == b->ctime_s && a->ctime_ns == b->ctime_ns;
}

static void put_ident(FILE *out, const struct copy_ident *id)
{
	fprintf(out, "dev=%" PRIu64 " ino=%" PRIu64 " size=%" PRIu64
		" mtime=%" PRId64 ".%09" PRId64 " ctime=%" PRId64 ".%09" PRId64,
		id->dev, id->ino, id->size, id->mtime_s, id->mtime_ns,
		id->ctime_s, id->ctime_ns);
}

/* An identity at the start of s, which must be written exactly as put_ident
 * writes it (so nothing else parses as one); the length it took, or 0. */
static size_t get_ident(const char *s, struct copy_ident *id)
{
	char again[256];
	int n = -1;

	if (sscanf(s, "dev=%" SCNu64 " ino=%" SCNu64 " size=%" SCNu64 " mtime=%" SCNd64
		   ".%" SCNd64 " ctime=%" SCNd64 ".%" SCNd64 "%n", &id->dev, &id->ino,
		   &id->size, &id->mtime_s, &id->mtime_ns, &id->ctime_s, &id->ctime_ns,
		   &n) != 7 || n <= 0)
		return 0;
	FILE *out = fmemopen(again, sizeof(again), "w");
	if (!out)
		return 0;
	put_ident(out, id);
	fclose(out);
	return strlen(again) == (size_t)n && !memcmp(again, s, (size_t)n) ? (size_t)n : 0;
}

/* ---- the checksum ------------------------------------------------------------ */

static const uint64_t SUM_K[4] = {
	0x44dcda6a797d76dfull, 0x87751d4ca8501e2dull,
	0x598b88dbaa99e079ull, 0x61b339ff248174e5ull,
};

static uint64_t rotl(uint64_t x, int r)
{
	return x << r | x >> ((64 - r) & 63);
}

/* Each step of a lane (xor, rotate, multiply by an odd number) can be
 * undone, so two streams that differ in one word never meet again.  The
 * lanes live in locals while blocks go by: bytes may alias the state. */
static void sum_blocks(struct copy_sum *s, const unsigned char *p, size_t nblocks)
{
	uint64_t a = s->lane[0], b = s->lane[1], c = s->lane[2], d = s->lane[3], w[4];

	for (; nblocks; nblocks--, p += 32) {
		memcpy(w, p, 32);
		a = rotl(a ^ w[0], 29) * SUM_K[0];
		b = rotl(b ^ w[1], 29) * SUM_K[1];
		c = rotl(c ^ w[2], 29) * SUM_K[2];
		d = rotl(d ^ w[3], 29) * SUM_K[3];
	}
	s->lane[0] = a;
	s->lane[1] = b;
	s->lane[2] = c;
	s->lane[3] = d;
}

void copy_sum_init(struct copy_sum *s)
{
	memset(s, 0, sizeof(*s));
	for (int i = 0; i < 4; i++)
		s->lane[i] = SUM_K[(i + 1) % 4];
}

void copy_sum_add(struct copy_sum *s, const void *bytes, size_t n)
{
	const unsigned char *p = bytes;

	s->total += n;
	if (s->ntail) {
		size_t k = 32 - s->ntail < n ? 32 - s->ntail : n;
		memcpy(s->tail + s->ntail, p, k);
		s->ntail += k;
		p += k;
		n -= k;
		if (s->ntail < 32)
			return;
		sum_blocks(s, s->tail, 1);
		s->ntail = 0;
	}
	sum_blocks(s, p, n / 32);
	p += n / 32 * 32;
	n %= 32;
	memcpy(s->tail, p, n);
	s->ntail = n;
}

static uint64_t avalanche(uint64_t x)
{
	x ^= x >> 32;
	x *= 0xff22a27b02c7bff3ull;
	x ^= x >> 29;
	x *= SUM_K[0];
	return x ^ x >> 32;
}

uint64_t copy_sum_final(const struct copy_sum *s)
{
	struct copy_sum last = *s;
	uint64_t h = s->total;

	if (last.ntail) {
		memset(last.tail + last.ntail, 0, 32 - last.ntail);
		sum_blocks(&last, last.tail, 1);
	}
	for (int i = 0; i < 4; i++)
		h = avalanche(h ^ rotl(last.lane[i], 16 * i));
	return h;
}

/* ---- the description ----------------------------------------------------------- */

static void put_escaped(FILE *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == '\\' || *p == 0x7f)
			fprintf(out, "\\x%02x", *p);
		else
			fputc(*p, out);
}

/* Where the source directory is, as the kernel names it: the daemon has
 * changed directory since a relative path was given. */
static void source_dir_path(const struct view *v, char *buf, size_t len)
{
	char proc[64];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", v->src.dirfd);
	n = readlink(proc, buf, len - 1);
	if (n <= 0 || buf[0] != '/')
		snprintf(buf, len, "%s", v->src.dir);
	else
		buf[n] = '\0';
}

/* One digest of every tensor the file holds: name, dtype, shape and how its
 * bytes are made, so a change of adapter table shows even where the
 * header would not. */
static int recipes_digest(const struct view *v, const struct vfile *f, uint64_t *out,
			  char *err)
{
	uint64_t h = FNV_BASIS;

	for (size_t i = 0; i < f->nslots; i++) {
		const struct plan_tensor *t = &v->plan.tensors[f->slots[i].tensor];
		char head[96];
		int n = snprintf(head, sizeof(head), "|%d|%d|%" PRIu32 "|", (int)t->dtype,
				 t->ndim, t->src);
		h = fnv(h, t->name, strlen(t->name) + 1);
		h = fnv(h, head, (size_t)n);
		h = fnv(h, t->shape, sizeof(t->shape));
		if (!t->recipe)
			continue;
		size_t len = recipe_format(t->recipe, source_tensor_name, &v->src, true, NULL, 0) + 1;
		char *text = malloc(len);
		if (!text)
			return sd_err(err, -ENOMEM, "out of memory");
		recipe_format(t->recipe, source_tensor_name, &v->src, true, text, len);
		h = fnv(h, text, strlen(text));
		free(text);
	}
	*out = h;
	return 0;
}

int copy_describe(const struct view *v, size_t file, char **desc, uint64_t *key,
		  char *err)
{
	const struct vfile *f = &v->layout.files[file];
	char dir[PATH_MAX];
	size_t len = 0;
	uint64_t recipes = 0;
	int rc;

	*desc = NULL;
	if ((rc = recipes_digest(v, f, &recipes, err)) < 0)
		return rc;
	source_dir_path(v, dir, sizeof(dir));
	FILE *out = open_memstream(desc, &len);
	if (!out)
		return sd_err(err, -ENOMEM, "out of memory");
	fputs(FORMAT_LINE "file ", out);
	put_escaped(out, f->name);
	fprintf(out, " size=%" PRIu64 "\nplan %s adapter=", f->size, v->plan.direction);
	put_escaped(out, v->plan.adapter);
	fprintf(out, " dtype=%s experts=%" PRIu64 "-%" PRIu64 "/%" PRIu64 "\n",
		dtype_name(v->plan.dtype), v->plan.ep_start, v->plan.ep_end, v->plan.experts);
	fprintf(out, "header fnv64=%016" PRIx64 "\nrecipes fnv64=%016" PRIx64 "\n",
		fnv(FNV_BASIS, f->mem, f->mem_len), recipes);
	for (size_t i = 0; i < f->nsrcs; i++) {
		const struct src_file *s = &v->src.files[f->srcs[i]];
		struct copy_ident id = {
			.dev = (uint64_t)s->dev, .ino = (uint64_t)s->ino, .size = s->size,
			.mtime_s = s->mtime.tv_sec, .mtime_ns = s->mtime.tv_nsec,
			.ctime_s = s->ctime.tv_sec, .ctime_ns = s->ctime.tv_nsec,
		};
		fputs("source ", out);
		put_escaped(out, dir);
		fputc('/', out);
		put_escaped(out, s->path);
		fputc(' ', out);
		put_ident(out, &id);
		fputc('\n', out);
	}
	if (fclose(out) != 0 || !*desc) {
		free(*desc);
		*desc = NULL;
		return sd_err(err, -ENOMEM, "out of memory");
	}
	*key = fnv(FNV_BASIS, *desc, len);
	return 0;
}

/* ---- the record ------------------------------------------------------------------ */

char *copy_record_text(const char *desc, const struct copy_ident *copy, uint64_t sum)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	if (!out)
		return NULL;
	fputs(desc, out);
	fputs("copy ", out);
	put_ident(out, copy);
	fprintf(out, "\nchecksum %016" PRIx64 "\nend\n", sum);
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* text as a string, or NULL when it holds a NUL byte (or no memory). */
static char *record_string(const char *text, size_t len)
{
	return memchr(text, '\0', len) ? NULL : strndup(text, len);
}

int copy_record_parse(const char *text, size_t len, const char *want,
		      struct copy_ident *copy, uint64_t *sum)
{
	char *s = record_string(text, len), *tail, again[64];
	uint64_t x;
	size_t n;
	int rc = -EBADMSG;

	if (!s || strncmp(s, FORMAT_LINE, strlen("sdafs-copy ")) != 0 ||
	    !(tail = strstr(s, "\ncopy ")))
		goto out;
	tail++;
	if (want && ((size_t)(tail - s) != strlen(want) || memcmp(s, want, strlen(want)))) {
		rc = -ESTALE;
		goto out;
	}
	if (!(n = get_ident(tail + 5, copy)))
		goto out;
	tail += 5 + n;
	if (sscanf(tail, "\nchecksum %16" SCNx64, &x) != 1)
		goto out;
	snprintf(again, sizeof(again), "\nchecksum %016" PRIx64 "\nend\n", x);
	if (strcmp(tail, again) == 0) {
		*sum = x;
		rc = 0;
	}
out:
	free(s);
	return rc;
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* s with every \xHH turned back into its byte (malloc'ed), or NULL. */
static char *unescape(const char *s, size_t len)
{
	char *out = malloc(len + 1), *o = out;

	for (size_t i = 0; out && i < len; i++) {
		int hi = i + 3 < len && s[i] == '\\' && s[i + 1] == 'x' ? hex_digit(s[i + 2]) : -1;
		int lo = hi >= 0 ? hex_digit(s[i + 3]) : -1;
		if (lo >= 0 && (hi | lo)) {
			*o++ = (char)(hi << 4 | lo);
			i += 3;
		} else {
			*o++ = s[i];
		}
	}
	if (out)
		*o = '\0';
	return out;
}

int copy_record_sources(const char *text, size_t len,
			int (*fn)(void *arg, const char *path, const struct copy_ident *id),
			void *arg)
{
	char *s = record_string(text, len);
	int rc = s ? 0 : -EBADMSG;

	for (char *line = s; rc == 0 && line && *line; line = strchr(line, '\n')) {
		line += *line == '\n';
		if (strncmp(line, "source ", 7) != 0)
			continue;
		char *path = line + 7, *space = strchr(path, ' '), *name;
		struct copy_ident id;
		if (!space || !get_ident(space + 1, &id) || !(name = unescape(path, (size_t)(space - path)))) {
			rc = -EBADMSG;
			break;
		}
		rc = fn(arg, name, &id);
		free(name);
	}
	free(s);
	return rc;
}
