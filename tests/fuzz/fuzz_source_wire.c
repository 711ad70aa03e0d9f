/*
 * fuzz_source_wire.c — libFuzzer target: source_unpack on the bytes another
 * MPI rank sent (convert/source/source_wire.c).
 *
 * The input is the packed blob itself.  The harness makes, once per
 * process, a checkpoint directory ($TMPDIR or /tmp) whose files the seeds
 * name, each with a fixed size and the modification time 1700000000.123456789
 * (which unpack checks): model-00001-of-00002.safetensors,
 * model-00002-of-00002.safetensors and adapter_model.safetensors (16384
 * bytes each), config.json and adapter_config.json (64), tokenizer.json
 * (32) and .hf_metadata/generation_config.json (16), all of a byte pattern
 * (unpack reads no header; the seeds of make_seeds.py describe the tensors
 * of small generated checkpoints at their real offsets in them).
 *
 * Whatever unpack accepts must be a source a scan could have made, because
 * the rank that receives it uses it as one: every file open, inside the
 * directory, plainly named; every tensor's byte count its shape's, its
 * bytes inside its file, or its chunks inside the tensor, inside their
 * files, disjoint and adding up to it; names unique.  The harness then
 * reads every tensor's rows into a buffer of exactly its size (so
 * AddressSanitizer sees an overrun), packs the source again and checks
 * that the result unpacks and packs to the same bytes, and builds a view
 * on it as a receiving rank does (view_build) and reads every file of it.
 * A crash, leak, leaked descriptor or broken invariant is a bug; a refusal
 * must come with a message.  With SDAFS_FUZZ_VERBOSE set, each run says
 * how far it got (to check that the seeds open).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "source_wire.h"
#include "view.h"

#define MTIME_S  1700000000
#define MTIME_NS 123456789
#define CACHE_BYTES (1u << 20)
#define READ_LEN 65521u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct { const char *path; size_t size; } fixture[] = {
	{ "model-00001-of-00002.safetensors", 16384 },
	{ "model-00002-of-00002.safetensors", 16384 },
	{ "adapter_model.safetensors", 16384 },
	{ "config.json", 64 },
	{ "adapter_config.json", 64 },
	{ "tokenizer.json", 32 },
	{ ".hf_metadata/generation_config.json", 16 },
};

static char dir[256];
static uint8_t *readbuf;
static bool verbose;            /* SDAFS_FUZZ_VERBOSE: say how far a run got */

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "fuzz_source_wire: invariant broken: " #cond ": " \
				__VA_ARGS__);                                \
			fputc('\n', stderr);                                 \
			abort();                                             \
		}                                                            \
	} while (0)

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void remove_fixture(void)
{
	nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void make_file(const char *rel, size_t size)
{
	char path[512];
	uint8_t buf[16384];
	struct timespec times[2] = { { MTIME_S, MTIME_NS }, { MTIME_S, MTIME_NS } };
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	for (size_t i = 0; i < size; i++)
		buf[i] = (uint8_t)(i * 151 + 3);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0 && write(fd, buf, size) == (ssize_t)size, "cannot write %s", path);
	CHECK(futimens(fd, times) == 0, "cannot set the time of %s", path);
	close(fd);
}

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");
	char meta[300];

	if (dir[0])
		return;
	if (!tmp || !tmp[0] || strlen(tmp) > 200)
		tmp = "/tmp";
	snprintf(dir, sizeof(dir), "%s/sdafs-fuzz-wire-XXXXXX", tmp);
	CHECK(mkdtemp(dir), "cannot make a temporary directory");
	atexit(remove_fixture);
	snprintf(meta, sizeof(meta), "%s/.hf_metadata", dir);
	CHECK(mkdir(meta, 0755) == 0, "cannot make %s", meta);
	for (size_t i = 0; i < sizeof(fixture) / sizeof(fixture[0]); i++)
		make_file(fixture[i].path, fixture[i].size);
	CHECK((readbuf = malloc(READ_LEN)), "out of memory");
	verbose = getenv("SDAFS_FUZZ_VERBOSE") != NULL;
}

static int lowest_free_fd(void)
{
	int fd = dup(0);

	if (fd >= 0)
		close(fd);
	return fd;
}

/* Product of n dims times elem, or UINT64_MAX when it overflows. */
static uint64_t volume(const uint64_t *shape, int n, uint64_t elem)
{
	uint64_t v = elem;

	for (int d = 0; d < n; d++)
		if (__builtin_mul_overflow(v, shape[d], &v))
			return UINT64_MAX;
	return v;
}

static bool disjoint(const struct src_chunk *a, const struct src_chunk *b, int nd)
{
	for (int d = 0; d < nd; d++)
		if (a->start[d] + a->shape[d] <= b->start[d] || b->start[d] + b->shape[d] <= a->start[d])
			return true;
	return false;
}

static void check_chunks(const struct source *s, const struct src_tensor *t)
{
	uint64_t es = dtype_size(t->dtype), total = 0;

	for (uint32_t c = 0; c < t->nchunks; c++) {
		const struct src_chunk *k = &t->chunks[c];
		CHECK(k->file < s->nweights, "'%s' chunk %u in file %u", t->name, c, k->file);
		CHECK(k->offset <= s->files[k->file].size &&
		      k->nbytes <= s->files[k->file].size - k->offset,
		      "'%s' chunk %u leaves its file", t->name, c);
		for (int d = 0; d < t->ndim; d++)
			CHECK(k->start[d] <= t->shape[d] && k->shape[d] <= t->shape[d] - k->start[d],
			      "'%s' chunk %u leaves the tensor in dim %d", t->name, c, d);
		CHECK(volume(k->shape, t->ndim, es) == k->nbytes,
		      "'%s' chunk %u: %llu bytes for its shape", t->name, c,
		      (unsigned long long)k->nbytes);
		total += k->nbytes;
		for (uint32_t o = 0; o < c && t->nchunks <= 256; o++)
			CHECK(disjoint(k, &t->chunks[o], t->ndim) || !k->nbytes || !t->chunks[o].nbytes,
			      "'%s' chunks %u and %u overlap", t->name, o, c);
	}
	CHECK(total == t->nbytes, "'%s': chunks hold %llu of %llu bytes", t->name,
	      (unsigned long long)total, (unsigned long long)t->nbytes);
}

/* What the receiving rank relies on, then every tensor's rows read. */
static void check_source(const struct source *s)
{
	CHECK(s->nweights <= s->nfiles, "%zu weight files of %zu", s->nweights, s->nfiles);
	for (size_t i = 0; i < s->nfiles; i++) {
		const struct src_file *f = &s->files[i];
		CHECK(f->fd >= 0 && source_name_is_plain(f->name), "file %zu", i);
		CHECK(f->path[0] != '/' && !strstr(f->path, ".."), "file %zu at %s", i, f->path);
	}
	for (size_t i = 0; i < s->ntensors; i++) {
		const struct src_tensor *t = &s->tensors[i];
		char err[SD_ERRLEN];

		CHECK(t->name[0] && source_find(s, t->name) == (long)i, "tensor %zu's name", i);
		CHECK(t->dtype >= 0 && t->dtype < SD_DTYPE_COUNT && t->ndim >= 0 &&
		      t->ndim <= ST_MAX_DIMS, "'%s' dtype or rank", t->name);
		CHECK(volume(t->shape, t->ndim, dtype_size(t->dtype)) == t->nbytes,
		      "'%s': %llu bytes for its shape", t->name, (unsigned long long)t->nbytes);
		if (t->nchunks)
			check_chunks(s, t);
		else
			CHECK(t->file < s->nweights && t->offset <= s->files[t->file].size &&
			      t->nbytes <= s->files[t->file].size - t->offset,
			      "'%s' leaves its file", t->name);
		uint8_t *buf = malloc(t->nbytes ? t->nbytes : 1);
		uint64_t rows = t->ndim ? t->shape[0] : 1;
		CHECK(buf, "out of memory");
		CHECK(source_read_rows(s, (uint32_t)i, 0, rows, buf, NULL, err) == 0,
		      "reading '%s': %s", t->name, err);
		free(buf);
	}
}

/* pack(unpack(blob)) unpacks and packs to itself. */
static void check_round_trip(const struct source *s)
{
	char *a = NULL, *b = NULL, err[SD_ERRLEN];
	size_t alen = 0, blen = 0;
	struct source again;

	CHECK(source_pack(s, &a, &alen, err) == 0, "pack: %s", err);
	CHECK(source_unpack(a, alen, dir, &again, err) == 0, "unpack of a pack: %s", err);
	CHECK(source_pack(&again, &b, &blen, err) == 0, "pack: %s", err);
	CHECK(alen == blen && !memcmp(a, b, alen), "a second round trip changed the bytes");
	source_free(&again);
	free(a);
	free(b);
}

/* What a receiving rank does next: the view, every file read. */
static void build_and_read(struct source *s)
{
	struct view_opts o = { .dtype = SD_DTYPE_INVALID };
	struct view_io io = { 0 };
	struct view v;
	char err[SD_ERRLEN];

	if (view_build(&v, s, &o, CACHE_BYTES, err) < 0) {
		if (verbose)
			fprintf(stderr, "fuzz_source_wire: view: %s\n", err);
		return;
	}
	if (verbose)
		fprintf(stderr, "fuzz_source_wire: view %s by %s: %zu files, %zu tensors\n",
			v.plan.direction, v.plan.adapter, v.layout.n, v.plan.n);
	for (size_t f = 0; f < v.layout.n; f++)
		for (uint64_t off = 0; off < v.layout.files[f].size; off += READ_LEN) {
			if (view_read(&v, f, off, READ_LEN, &io, err) < 0)
				break;
			int rc = view_io_gather(&v, &io, readbuf, err);
			view_io_release(&v, &io);
			if (rc < 0)
				break;
		}
	view_io_free(&io);
	view_close(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct source s;
	char err[SD_ERRLEN] = "";
	int fd_before;

	setup();
	fd_before = lowest_free_fd();
	if (source_unpack((const char *)data, size, dir, &s, err) == 0) {
		check_source(&s);
		check_round_trip(&s);
		build_and_read(&s);     /* takes s over */
	} else {
		CHECK(err[0], "a refusal without a message");
		if (verbose)
			fprintf(stderr, "fuzz_source_wire: unpack: %s\n", err);
	}
	CHECK(lowest_free_fd() == fd_before, "a file descriptor leaked");
	return 0;
}
