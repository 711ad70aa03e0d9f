/*
 * source.c — scanning a checkpoint directory (see source.h).
 *
 * The weight files are those named by the index's weight_map when an index
 * exists, else every *.safetensors file.  Every other regular file is passed
 * through to the view unchanged.  The scan trusts nothing: index entries
 * must name plain files that exist, each listed tensor must really be in the
 * file the index names, and no tensor may appear twice.
 */
#include "source.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcp.h"
#include "err.h"

#define HF_METADATA ".hf_metadata"

#define JSON_FILE_MAX (64u << 20)       /* config.json or an index */

bool source_name_is_plain(const char *name)
{
	return name[0] && !strchr(name, '/') && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Open name inside the source directory, insisting on a regular file
 * (symlinks are followed: HF cache snapshots are links into ../../blobs). */
static int open_regular(struct source *s, const char *name, struct src_file *f,
			char *err)
{
	struct stat st;
	int fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return sd_err(err, -errno, "%s/%s: cannot open: %s", s->dir,
			      name, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return sd_err(err, -EINVAL, "%s/%s: not a regular file", s->dir,
			      name);
	}
	memset(f, 0, sizeof(*f));
	const char *base = strrchr(name, '/');
	f->path = strdup(name);
	f->name = strdup(base ? base + 1 : name);
	if (!f->name || !f->path) {
		free(f->name);
		free(f->path);
		close(fd);
		return sd_err(err, -ENOMEM, "out of memory");
	}
	f->fd = fd;
	f->size = (uint64_t)st.st_size;
	f->mtime = st.st_mtim;
	f->ctime = st.st_ctim;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	return 0;
}

static int read_json_file(struct source *s, const char *name, cJSON **out,
			  char *err)
{
	struct src_file f;
	char *buf;
	int rc = open_regular(s, name, &f, err);

	if (rc < 0)
		return rc;
	if (f.size > JSON_FILE_MAX) {
		rc = sd_err(err, -EFBIG, "%s/%s: %llu bytes is too large for a JSON file (limit %u)",
			    s->dir, name, (unsigned long long)f.size, JSON_FILE_MAX);
		goto out;
	}
	buf = malloc(f.size + 1);
	if (!buf) {
		rc = sd_err(err, -ENOMEM, "out of memory");
		goto out;
	}
	ssize_t n = pread(f.fd, buf, f.size, 0);
	if (n != (ssize_t)f.size) {
		rc = sd_err(err, -EIO, "%s/%s: short read", s->dir, name);
	} else {
		*out = cJSON_ParseWithLength(buf, f.size);
		if (!*out || !cJSON_IsObject(*out)) {
			cJSON_Delete(*out);
			*out = NULL;
			rc = sd_err(err, -EINVAL, "%s/%s: not a valid JSON object",
				    s->dir, name);
		}
	}
	free(buf);
out:
	close(f.fd);
	free(f.name);
	free(f.path);
	return rc;
}

/* List the directory: sorted regular-file names (symlinks included). */
static int list_dir(struct source *s, char ***names, size_t *n, char *err)
{
	int fd = dup(s->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	size_t cap = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return sd_err(err, -errno, "%s: cannot list: %s", s->dir, strerror(errno));
	}
	*names = NULL;
	*n = 0;
	while ((e = readdir(d))) {
		struct stat st;

		if (e->d_name[0] == '.' && (!e->d_name[1] || !strcmp(e->d_name, "..")))
			continue;
		if (fstatat(s->dirfd, e->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
			continue;       /* subdirectories, sockets, dangling links */
		if (*n == cap) {
			cap = cap ? cap * 2 : 32;
			char **nn = realloc(*names, cap * sizeof(*nn));
			if (!nn)
				goto nomem;
			*names = nn;
		}
		if (!((*names)[*n] = strdup(e->d_name)))
			goto nomem;
		(*n)++;
	}
	closedir(d);
	if (*n)         /* qsort(NULL, 0, ...) is undefined */
		qsort(*names, *n, sizeof(**names), name_cmp);
	return 0;
nomem:
	closedir(d);
	return sd_err(err, -ENOMEM, "out of memory");
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Pick the index: model.safetensors.index.json, else the only
 * *.safetensors.index.json; several candidates are ambiguous. */
static int find_index(struct source *s, char **names, size_t n, char *err)
{
	char **model = !n ? NULL : bsearch(&(const char *){ "model.safetensors.index.json" },
			       names, n, sizeof(*names), name_cmp);
	const char *found = model ? *model : NULL;

	for (size_t i = 0; i < n && !model; i++) {
		if (!ends_with(names[i], ".safetensors.index.json"))
			continue;
		if (found)
			return sd_err(err, -EINVAL,
				      "%s: several index files (%s, %s); keep one, or name it model.safetensors.index.json",
				      s->dir, found, names[i]);
		found = names[i];
	}
	if (found && !(s->index_name = strdup(found)))
		return sd_err(err, -ENOMEM, "out of memory");
	return 0;
}

/* The weight file names, in order: from the index, or every *.safetensors. */
static int weight_names(struct source *s, cJSON *index, char **names, size_t n,
			char ***out, size_t *nout, char *err)
{
	struct strmap seen = { 0 };
	int rc = 0;

	*out = calloc(n + 1, sizeof(**out));
	*nout = 0;
	if (!*out)
		return sd_err(err, -ENOMEM, "out of memory");
	if (!index) {
		for (size_t i = 0; i < n; i++)
			if (ends_with(names[i], ".safetensors"))
				(*out)[(*nout)++] = names[i];
		return 0;
	}
	cJSON *map = cJSON_GetObjectItemCaseSensitive(index, "weight_map");
	if (!cJSON_IsObject(map))
		return sd_err(err, -EINVAL, "%s/%s: no \"weight_map\" object",
			      s->dir, s->index_name);
	cJSON *e;
	cJSON_ArrayForEach(e, map) {
		if (!cJSON_IsString(e)) {
			rc = sd_err(err, -EINVAL, "%s/%s: weight_map entry '%s' is not a file name",
				    s->dir, s->index_name, e->string);
			break;
		}
		const char *file = e->valuestring;
		if (!source_name_is_plain(file)) {
			rc = sd_err(err, -EINVAL,
				    "%s/%s: tensor '%s' is mapped to '%s', which is not a plain file name inside the checkpoint directory",
				    s->dir, s->index_name, e->string, file);
			break;
		}
		size_t k;
		if (strmap_get(&seen, file, &k))
			continue;
		char **hit = n ? bsearch(&file, names, n, sizeof(*names), name_cmp) : NULL;
		if (!hit) {
			rc = sd_err(err, -ENOENT,
				    "%s/%s: tensor '%s' is mapped to '%s', which is not a regular file in %s",
				    s->dir, s->index_name, e->string, file, s->dir);
			break;
		}
		if ((rc = strmap_put(&seen, *hit, *nout, NULL)) < 0) {
			sd_err(err, rc, "out of memory");
			break;
		}
		(*out)[(*nout)++] = *hit;
	}
	strmap_free(&seen);
	if (rc == 0)
		qsort(*out, *nout, sizeof(**out), name_cmp);
	return rc;
}

static int add_tensors(struct source *s, uint32_t fi, struct st_header *h,
		       char *err)
{
	size_t cap = s->ntensors + h->ntensors;
	struct src_tensor *t = realloc(s->tensors, (cap ? cap : 1) * sizeof(*t));

	if (!t)
		return sd_err(err, -ENOMEM, "out of memory");
	s->tensors = t;
	if (cap > ST_MAX_TENSORS)
		return sd_err(err, -E2BIG, "%s: more than %u tensors in all",
			      s->dir, ST_MAX_TENSORS);
	for (size_t i = 0; i < h->ntensors; i++) {
		struct st_tensor *st = &h->tensors[i];
		struct src_tensor *dt = &s->tensors[s->ntensors];
		size_t other;

		memset(dt, 0, sizeof(*dt));
		dt->name = st->name;    /* ownership moves to the source */
		st->name = NULL;
		dt->dtype = st->dtype;
		dt->ndim = st->ndim;
		memcpy(dt->shape, st->shape, sizeof(dt->shape));
		dt->file = fi;
		dt->offset = st->offset;
		dt->nbytes = st->nbytes;
		s->ntensors++;
		int rc = strmap_put(&s->by_name, dt->name, s->ntensors - 1, &other);
		if (rc == -EEXIST)
			return sd_err(err, -EINVAL, "tensor '%s' appears in both %s and %s",
				      dt->name, s->files[s->tensors[other].file].name,
				      s->files[fi].name);
		if (rc < 0)
			return sd_err(err, rc, "out of memory");
	}
	return 0;
}

/* Every tensor the index lists must be in the file it names. */
static int check_index_against_headers(struct source *s, cJSON *index, char *err)
{
	cJSON *e;

	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(index, "weight_map")) {
		long t = source_find(s, e->string);
		if (t < 0)
			return sd_err(err, -EINVAL, "%s/%s: tensor '%s' is listed in %s but that file has no such tensor",
				      s->dir, s->index_name, e->string, e->valuestring);
		if (strcmp(s->files[s->tensors[t].file].name, e->valuestring) != 0)
			return sd_err(err, -EINVAL, "%s/%s: tensor '%s' is listed in %s but is stored in %s",
				      s->dir, s->index_name, e->string, e->valuestring,
				      s->files[s->tensors[t].file].name);
	}
	return 0;
}

static int scan_files(struct source *s, char **names, size_t n, char **meta,
		      size_t nmeta, cJSON *index, char *err)
{
	struct dcp_pending pending = { 0 };
	char **weights = NULL;
	size_t nw = 0;
	int rc = weight_names(s, index, names, n, &weights, &nw, err);

	if (rc < 0)
		goto out;
	s->files = calloc(n + nmeta + 1, sizeof(*s->files));
	if (!s->files) {
		rc = sd_err(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nw; i++) {
		struct src_file *f = &s->files[s->nfiles];
		struct st_header h;

		if ((rc = open_regular(s, weights[i], f, err)) < 0)
			goto out;
		s->nfiles++;
		f->is_weights = true;
		rc = st_read_header(f->fd, f->size, f->name, &h, err);
		if (rc < 0) {
			sd_err_prefix(err, "%s", s->dir);
			goto out;
		}
		s->header_bytes_read += h.data_start;
		f->metadata = h.metadata;
		h.metadata = NULL;
		cJSON *info;
		if ((rc = dcp_chunk_info(f->metadata, f->name, &info, err)) == 0) {
			if (info)
				rc = dcp_add_chunks(&pending, (uint32_t)(s->nfiles - 1), f->name,
						    &h, info, err);
			else
				rc = add_tensors(s, (uint32_t)(s->nfiles - 1), &h, err);
		}
		cJSON_Delete(info);
		st_header_free(&h);
		if (rc < 0) {
			sd_err_prefix(err, "%s", s->dir);
			goto out;
		}
	}
	s->nweights = s->nfiles;
	if (pending.n) {
		s->dcp = true;
		if ((rc = dcp_finish(s, &pending, err)) < 0) {
			sd_err_prefix(err, "%s", s->dir);
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		bool skip = (s->index_name && !strcmp(names[i], s->index_name)) ||
			    ends_with(names[i], ".safetensors") ||
			    (nw && bsearch(&names[i], weights, nw, sizeof(*weights), name_cmp));
		if (skip)
			continue;       /* weights, the index, stray shards */
		if ((rc = open_regular(s, names[i], &s->files[s->nfiles], err)) < 0)
			goto out;
		s->nfiles++;
	}
	/* An Automodel save keeps config and tokenizer in .hf_metadata/; its
	 * consolidated checkpoint holds them at the top, but the mappings. */
	for (size_t i = 0; i < nmeta; i++) {
		const char *base = meta[i] + strlen(HF_METADATA "/");
		cJSON **map = !strcmp(base, "fqn_to_file_index_mapping.json") ? &s->file_index_map :
			      !strcmp(base, "fqn_to_dtype_mapping.json") ? &s->dtype_map : NULL;
		if (map) {
			if ((rc = read_json_file(s, meta[i], map, err)) < 0)
				goto out;
			continue;
		}
		if (n && bsearch(&base, names, n, sizeof(*names), name_cmp))
			continue;       /* the top-level file of that name wins */
		if ((rc = open_regular(s, meta[i], &s->files[s->nfiles], err)) < 0)
			goto out;
		s->nfiles++;
	}
	if (index)
		rc = check_index_against_headers(s, index, err);
out:
	dcp_pending_free(&pending);
	free(weights);
	return rc;
}

/* The regular files of .hf_metadata/, as "HF_METADATA/name", sorted. */
static int list_metadata(struct source *s, char ***names, size_t *n, char *err)
{
	struct source sub = { .dir = s->dir };
	int rc;

	*names = NULL;
	*n = 0;
	sub.dirfd = openat(s->dirfd, HF_METADATA, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sub.dirfd < 0)
		return 0;       /* not an Automodel save */
	rc = list_dir(&sub, names, n, err);
	close(sub.dirfd);
	for (size_t i = 0; rc == 0 && i < *n; i++) {
		size_t len = strlen((*names)[i]) + sizeof(HF_METADATA) + 1;
		char *p = malloc(len);
		if (!p)
			return sd_err(err, -ENOMEM, "out of memory");
		snprintf(p, len, "%s/%s", HF_METADATA, (*names)[i]);
		free((*names)[i]);
		(*names)[i] = p;
	}
	return rc;
}

int source_scan(const char *dir, struct source *out, char *err)
{
	struct source *s = out;
	char **names = NULL, **meta = NULL;
	size_t n = 0, nmeta = 0;
	cJSON *index = NULL;
	int rc;

	memset(s, 0, sizeof(*s));
	s->dirfd = -1;
	if (!(s->dir = strdup(dir)))
		return sd_err(err, -ENOMEM, "out of memory");
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		rc = sd_err(err, -errno, "%s: cannot open the checkpoint directory: %s",
			    dir, strerror(errno));
		goto fail;
	}
	if ((rc = list_dir(s, &names, &n, err)) < 0 ||
	    (rc = list_metadata(s, &meta, &nmeta, err)) < 0)
		goto fail;
	if (n && bsearch(&(const char *){ "config.json" }, names, n, sizeof(*names), name_cmp))
		rc = read_json_file(s, "config.json", &s->config, err);
	else if (nmeta && bsearch(&(const char *){ HF_METADATA "/config.json" }, meta, nmeta,
				  sizeof(*meta), name_cmp))
		rc = read_json_file(s, HF_METADATA "/config.json", &s->config, err);
	if (rc < 0)
		goto fail;
	if ((rc = find_index(s, names, n, err)) < 0)
		goto fail;
	if (s->index_name && (rc = read_json_file(s, s->index_name, &index, err)) < 0)
		goto fail;
	if ((rc = scan_files(s, names, n, meta, nmeta, index, err)) < 0)
		goto fail;
	if (s->nweights == 0) {
		rc = sd_err(err, -ENOENT, "%s: no safetensors weight files found", dir);
		goto fail;
	}
	/* A PEFT adapter directory: its one weight file and adapter_config.json */
	if (!s->index_name && s->nweights == 1 && !strcmp(s->files[0].name, PEFT_WEIGHTS) &&
	    bsearch(&(const char *){ PEFT_CONFIG }, names, n, sizeof(*names), name_cmp)) {
		if (s->dcp) {   /* else it would be shown as a consolidated model */
			rc = sd_err(err, -EINVAL, "%s/%s: a PEFT adapter is one whole file, but this one carries DCP_SHARDING_INFO (a piece of a sharded save)",
				    dir, PEFT_WEIGHTS);
			goto fail;
		}
		if ((rc = read_json_file(s, PEFT_CONFIG, &s->peft_config, err)) < 0)
			goto fail;
		s->peft = true;
	}
	cJSON_Delete(index);
	free_names(names, n);
	free_names(meta, nmeta);
	return 0;
fail:
	cJSON_Delete(index);
	free_names(names, n);
	free_names(meta, nmeta);
	source_free(s);
	return rc;
}

static bool same_file(const struct src_file *f, const struct stat *st)
{
	return (uint64_t)st->st_size == f->size && st->st_ino == f->ino &&
	       st->st_dev == f->dev && st->st_mtim.tv_sec == f->mtime.tv_sec &&
	       st->st_mtim.tv_nsec == f->mtime.tv_nsec;
}

int source_check(struct source *s, uint32_t fi, bool *first, char *err)
{
	struct src_file *f = &s->files[fi];
	struct stat st;
	const char *why = NULL;

	if (first)
		*first = false;
	if (atomic_load(&f->damaged))
		why = "changed since it was mounted";
	else if (fstat(f->fd, &st) < 0 || !same_file(f, &st))
		why = "was modified or truncated since it was mounted";
	else if (fstatat(s->dirfd, f->path, &st, 0) < 0)
		why = "was deleted or renamed since it was mounted";
	else if (!same_file(f, &st))
		why = "was replaced since it was mounted";
	if (!why)
		return 0;
	if (!atomic_exchange(&f->damaged, true) && first)
		*first = true;
	return sd_err(err, -EIO, "source file %s/%s %s; its view reads fail until you remount",
		      s->dir, f->name, why);
}

long source_find(const struct source *s, const char *name)
{
	size_t v;

	return strmap_get(&s->by_name, name, &v) ? (long)v : -1;
}

void source_free(struct source *s)
{
	for (size_t i = 0; i < s->nfiles; i++) {
		if (s->files[i].fd >= 0)
			close(s->files[i].fd);
		free(s->files[i].name);
		free(s->files[i].path);
		cJSON_Delete(s->files[i].metadata);
	}
	for (size_t i = 0; i < s->ntensors; i++) {
		free(s->tensors[i].name);
		free(s->tensors[i].chunks);
	}
	cJSON_Delete(s->file_index_map);
	cJSON_Delete(s->dtype_map);
	cJSON_Delete(s->peft_config);
	free(s->files);
	free(s->tensors);
	strmap_free(&s->by_name);
	cJSON_Delete(s->config);
	free(s->index_name);
	free(s->dir);
	if (s->dirfd >= 0)
		close(s->dirfd);
	memset(s, 0, sizeof(*s));
	s->dirfd = -1;
}
