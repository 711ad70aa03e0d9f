/*
 * source_wire.c — packing a scanned source (see source_wire.h).
 *
 * The format is little-endian fixed-width numbers and length-prefixed
 * strings, in the order of struct source.  Unpacking bounds-checks every
 * read: a blob is trusted no further than a checkpoint is.
 */
#include "source_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "grow.h"

#define MAGIC "SDAFSRC3"

struct wbuf { char *p; size_t len, cap; int rc; char *err; };

static void put(struct wbuf *w, const void *d, size_t n)
{
	if (w->rc == 0)
		w->rc = sd_grow(&w->p, &w->cap, w->len + n, 1, w->err);
	if (w->rc == 0) {
		memcpy(w->p + w->len, d, n);
		w->len += n;
	}
}

static void put_u64(struct wbuf *w, uint64_t v)
{
	unsigned char b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	put(w, b, 8);
}

static void put_str(struct wbuf *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	put_u64(w, n);
	put(w, s ? s : "", n);
}

static void put_json(struct wbuf *w, const cJSON *j)
{
	char *text = j ? cJSON_PrintUnformatted(j) : NULL;

	if (j && !text && w->rc == 0)
		w->rc = sd_err(w->err, -ENOMEM, "out of memory");
	put_str(w, text);
	free(text);
}

int source_pack(const struct source *s, char **out, size_t *len, char *err)
{
	struct wbuf w = { .err = err };

	put(&w, MAGIC, 8);
	put_json(&w, s->config);
	put_str(&w, s->index_name);
	put_u64(&w, s->dcp);
	put_json(&w, s->file_index_map);
	put_json(&w, s->dtype_map);
	put_u64(&w, s->peft);
	put_json(&w, s->peft_config);
	put_u64(&w, s->nfiles);
	put_u64(&w, s->nweights);
	for (size_t i = 0; i < s->nfiles; i++) {
		const struct src_file *f = &s->files[i];
		put_str(&w, f->name);
		put_str(&w, f->path);
		put_u64(&w, f->size);
		put_u64(&w, (uint64_t)f->mtime.tv_sec);
		put_u64(&w, (uint64_t)f->mtime.tv_nsec);
		put_u64(&w, f->is_weights);
		put_json(&w, f->metadata);
	}
	put_u64(&w, s->ntensors);
	for (size_t i = 0; i < s->ntensors; i++) {
		const struct src_tensor *t = &s->tensors[i];
		put_str(&w, t->name);
		put_u64(&w, (uint64_t)t->dtype);
		put_u64(&w, (uint64_t)t->ndim);
		for (int d = 0; d < t->ndim; d++)
			put_u64(&w, t->shape[d]);
		put_u64(&w, t->file);
		put_u64(&w, t->offset);
		put_u64(&w, t->nbytes);
		put_u64(&w, t->nchunks);
		for (uint32_t c = 0; c < t->nchunks; c++) {
			const struct src_chunk *k = &t->chunks[c];
			put_u64(&w, k->file);
			put_u64(&w, k->offset);
			put_u64(&w, k->nbytes);
			for (int d = 0; d < t->ndim; d++) {
				put_u64(&w, k->start[d]);
				put_u64(&w, k->shape[d]);
			}
		}
	}
	if (w.rc < 0) {
		free(w.p);
		return w.rc;
	}
	*out = w.p;
	*len = w.len;
	return 0;
}

struct rbuf { const char *p; size_t len, at; bool bad; };

static uint64_t get_u64(struct rbuf *r)
{
	uint64_t v = 0;

	if (r->bad || r->len - r->at < 8) {
		r->bad = true;
		return 0;
	}
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)(unsigned char)r->p[r->at + (size_t)i] << (8 * i);
	r->at += 8;
	return v;
}

/* A malloc'ed NUL-terminated copy of the next string, or NULL when bad. */
static char *get_str(struct rbuf *r)
{
	uint64_t n = get_u64(r);
	char *s;

	if (r->bad || n > r->len - r->at || n > (64u << 20) || !(s = malloc(n + 1))) {
		r->bad = true;
		return NULL;
	}
	memcpy(s, r->p + r->at, n);
	s[n] = '\0';
	r->at += n;
	return s;
}

static cJSON *get_json(struct rbuf *r)
{
	char *text = get_str(r);
	cJSON *j = text && text[0] ? cJSON_Parse(text) : NULL;

	free(text);
	return j;
}

static int open_file(struct source *s, struct src_file *f, uint64_t mtime_s,
		     uint64_t mtime_ns, char *err)
{
	struct stat st;

	f->fd = openat(s->dirfd, f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (f->fd < 0)
		return sd_err(err, -errno, "%s/%s: cannot open: %s", s->dir, f->name,
			      strerror(errno));
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != f->size || (uint64_t)st.st_mtim.tv_sec != mtime_s ||
	    (uint64_t)st.st_mtim.tv_nsec != mtime_ns)
		return sd_err(err, -EINVAL,
			      "%s/%s: this rank sees a different file than rank 0 did (size or modification time differ); is the checkpoint on storage every rank shares?",
			      s->dir, f->name);
	f->mtime = st.st_mtim;
	f->ctime = st.st_ctim;
	f->dev = st.st_dev;     /* this node's identity, for later checks */
	f->ino = st.st_ino;
	return 0;
}

int source_unpack(const char *blob, size_t len, const char *dir,
		  struct source *out, char *err)
{
	struct source *s = out;
	struct rbuf r = { blob, len, 0, false };
	int rc = -EINVAL;

	memset(s, 0, sizeof(*s));
	s->dirfd = -1;
	if (len < 8 || memcmp(blob, MAGIC, 8) != 0)
		return sd_err(err, -EINVAL, "the source description from rank 0 is not in this version's format");
	r.at = 8;
	if (!(s->dir = strdup(dir)))
		return sd_err(err, -ENOMEM, "out of memory");
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		rc = sd_err(err, -errno, "%s: cannot open the checkpoint directory: %s", dir,
			    strerror(errno));
		goto fail;
	}
	s->config = get_json(&r);
	s->index_name = get_str(&r);
	if (s->index_name && !s->index_name[0]) {
		free(s->index_name);
		s->index_name = NULL;
	}
	s->dcp = get_u64(&r) != 0;
	s->file_index_map = get_json(&r);
	s->dtype_map = get_json(&r);
	s->peft = get_u64(&r) != 0;
	s->peft_config = get_json(&r);
	uint64_t nfiles = get_u64(&r), nweights = get_u64(&r);
	if (r.bad || nfiles > 10000000 || nweights > nfiles ||
	    !(s->files = calloc(nfiles + 1, sizeof(*s->files))))
		goto bad;
	for (uint64_t i = 0; i < nfiles; i++) {
		struct src_file *f = &s->files[i];
		f->fd = -1;
		f->name = get_str(&r);
		f->path = get_str(&r);
		f->size = get_u64(&r);
		uint64_t ms = get_u64(&r), mns = get_u64(&r);
		f->is_weights = get_u64(&r) != 0;
		f->metadata = get_json(&r);
		s->nfiles++;
		if (r.bad || !f->name || !f->path || !source_name_is_plain(f->name) ||
		    f->path[0] == '/' || strstr(f->path, ".."))
			goto bad;
		if ((rc = open_file(s, f, ms, mns, err)) < 0)
			goto fail;
	}
	s->nweights = (size_t)nweights;
	uint64_t nt = get_u64(&r);
	if (r.bad || nt > ST_MAX_TENSORS || !(s->tensors = calloc(nt + 1, sizeof(*s->tensors))))
		goto bad;
	for (uint64_t i = 0; i < nt; i++) {
		struct src_tensor *t = &s->tensors[i];
		t->name = get_str(&r);
		t->dtype = (enum sd_dtype)get_u64(&r);
		t->ndim = (int)get_u64(&r);
		s->ntensors++;
		if (r.bad || !t->name || (unsigned)t->dtype >= SD_DTYPE_COUNT ||
		    t->ndim < 0 || t->ndim > ST_MAX_DIMS)
			goto bad;
		for (int d = 0; d < t->ndim; d++)
			t->shape[d] = get_u64(&r);
		t->file = (uint32_t)get_u64(&r);
		t->offset = get_u64(&r);
		t->nbytes = get_u64(&r);
		uint64_t nchunks = get_u64(&r);
		if (r.bad || t->file >= s->nweights || t->offset > s->files[t->file].size ||
		    nchunks > 65536 ||
		    (!nchunks && t->nbytes > s->files[t->file].size - t->offset))
			goto bad;
		if (nchunks && !(t->chunks = calloc(nchunks, sizeof(*t->chunks))))
			goto bad;
		t->nchunks = (uint32_t)nchunks;
		for (uint32_t c = 0; c < t->nchunks; c++) {
			struct src_chunk *k = &t->chunks[c];
			k->file = (uint32_t)get_u64(&r);
			k->offset = get_u64(&r);
			k->nbytes = get_u64(&r);
			for (int d = 0; d < t->ndim; d++) {
				k->start[d] = get_u64(&r);
				k->shape[d] = get_u64(&r);
			}
			if (r.bad || k->file >= s->nweights || k->offset > s->files[k->file].size ||
			    k->nbytes > s->files[k->file].size - k->offset)
				goto bad;
		}
		if (strmap_put(&s->by_name, t->name, (size_t)i, NULL) < 0)
			goto bad;
	}
	if (r.at != r.len)
		goto bad;
	return 0;
bad:
	rc = sd_err(err, -EINVAL, "the source description from rank 0 is damaged");
fail:
	source_free(s);
	return rc;
}
