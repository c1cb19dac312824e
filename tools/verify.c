// SPDX-License-Identifier: Apache-2.0
/*
 * verify and cat: check a protected tree against its fspf. verify compares
 * the recorded entries of every protected kernel region with what lies on
 * disk (missing, extra, wrong type, wrong size, wrong symlink target), then
 * opens every chunk of every file on all cores. cat releases one file's
 * plaintext, chunk by chunk, each only after it verified.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define SEGMENT_TARGET_BYTES (8u << 20)
#define MAX_CHUNK_REPORTS_PER_FILE 8

struct problem {
	char *path;
	uint64_t chunk; /* UINT64_MAX: not about a chunk */
	char *msg;
};

struct vjob {
	const struct fspf_entry *entry;
	const struct fspf_region *region;
	char *host;
	int fd;
	pthread_mutex_t lock;
	bool opened;
	uint64_t segments_left; /* under @lock */
	uint64_t *failed; /* indices of chunks that failed, under @lock */
	size_t failed_count, failed_cap;
};

struct vseg {
	uint32_t job;
	uint64_t first, count;
};

struct verify {
	const char *fspf_path;
	const char *root;
	struct fspf *fspf;
	dev_t fspf_dev;
	ino_t fspf_ino;
	dev_t fspf_dir_dev; /* the fspf's directory, for its companions */
	ino_t fspf_dir_ino;
	const char *fspf_base;
	struct problem *problems;
	size_t problem_count, problem_cap;
	pthread_mutex_t lock;
	struct vjob *jobs;
	size_t job_count, job_cap;
	struct vseg *segs;
	size_t seg_count;
	uint8_t **buffers;
	struct progress *progress;
	uint64_t files, bytes, chunks, dirs, links;
	uint64_t checked, missing; /* entries compared, entries not found */
	bool oom;
};

__attribute__((format(printf, 4, 5))) static void
report(struct verify *v, const char *path, uint64_t chunk, const char *fmt, ...)
{
	struct problem *pr;
	va_list ap;
	char *msg = NULL;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	pthread_mutex_lock(&v->lock);
	if (v->problem_count == v->problem_cap) {
		size_t cap = v->problem_cap ? 2 * v->problem_cap : 32;

		pr = realloc(v->problems, cap * sizeof(*pr));
		if (!pr)
			goto oom;
		v->problems = pr;
		v->problem_cap = cap;
	}
	pr = &v->problems[v->problem_count];
	pr->path = strdup(path);
	pr->chunk = chunk;
	pr->msg = msg;
	if (!pr->path || !msg) {
		free(pr->path);
		goto oom;
	}
	v->problem_count++;
	pthread_mutex_unlock(&v->lock);
	return;
oom:
	free(msg);
	v->oom = true;
	pthread_mutex_unlock(&v->lock);
}

static int problem_cmp(const void *a, const void *b)
{
	const struct problem *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	if (c)
		return c;
	return x->chunk < y->chunk ? -1 : x->chunk > y->chunk;
}

/* The plural ending of a count. */
#define S(n) ((n) == 1 ? "" : "s")

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static const char *kind_of(mode_t m)
{
	return S_ISREG(m) ? "a file" : S_ISDIR(m) ? "a directory" :
	       S_ISLNK(m) ? "a symlink" : "a special file";
}

static const char *kind_of_entry(uint8_t t)
{
	return t == FSPF_FILE ? "a file" : t == FSPF_DIR ? "a directory" :
							   "a symlink";
}

static int add_job(struct verify *v, const struct fspf_entry *e,
		   const struct fspf_region *r, const char *host)
{
	struct vjob *j;

	if (v->job_count == v->job_cap) {
		size_t cap = v->job_cap ? 2 * v->job_cap : 256;

		j = realloc(v->jobs, cap * sizeof(*j));
		if (!j)
			return -ENOMEM;
		v->jobs = j;
		v->job_cap = cap;
	}
	j = &v->jobs[v->job_count];
	memset(j, 0, sizeof(*j));
	j->entry = e;
	j->region = r;
	j->fd = -1;
	j->host = strdup(host);
	if (!j->host)
		return -ENOMEM;
	pthread_mutex_init(&j->lock, NULL);
	v->job_count++;
	return 0;
}

/* Compare one recorded entry with the file at @host. */
static int check_entry(struct verify *v, const struct fspf_entry *e,
		       const struct fspf_region *r, const char *host)
{
	char target[PATH_MAX];
	struct stat st;
	ssize_t n;

	v->checked++;
	if (lstat(host, &st) < 0) {
		v->missing += errno == ENOENT;
		if (errno == ENOENT)
			report(v, e->path, UINT64_MAX, "missing (%s)", host);
		else
			report(v, e->path, UINT64_MAX, "cannot stat '%s': %s",
			       host, strerror(errno));
		return 0;
	}
	switch (e->type) {
	case FSPF_DIR:
		if (!S_ISDIR(st.st_mode))
			break;
		v->dirs++;
		return 0;
	case FSPF_SYMLINK:
		if (!S_ISLNK(st.st_mode))
			break;
		n = readlink(host, target, sizeof(target) - 1);
		if (n < 0) {
			report(v, e->path, UINT64_MAX, "cannot read symlink '%s': %s",
			       host, strerror(errno));
			return 0;
		}
		target[n] = '\0';
		if (strcmp(target, e->target))
			report(v, e->path, UINT64_MAX,
			       "symlink points to '%s', expected '%s'", target,
			       e->target);
		else
			v->links++;
		return 0;
	case FSPF_FILE:
		if (!S_ISREG(st.st_mode))
			break;
		if ((uint64_t)st.st_size != e->size) {
			report(v, e->path, UINT64_MAX,
			       "size %" PRIu64 ", expected %" PRIu64 " (%s)",
			       (uint64_t)st.st_size, e->size,
			       (uint64_t)st.st_size < e->size ? "truncated"
							      : "extended");
			return 0;
		}
		return add_job(v, e, r, host);
	}
	report(v, e->path, UINT64_MAX, "is %s, expected %s", kind_of(st.st_mode),
	       kind_of_entry(e->type));
	return 0;
}

/*
 * Whether @name is one of the files the runtime keeps beside fspf @base: its
 * writer lock and the temporary files of a commit (left by a crash). The
 * runtime never lets a protected path take these names.
 */
static bool is_companion(const char *base, const char *name)
{
	size_t n = strlen(base);

	return !strncmp(name, base, n) &&
	       (!strcmp(name + n, ".lock") || !strcmp(name + n, ".locks") ||
		!strncmp(name + n, ".tmp.", 5));
}

/* Walk the host directory of a region: anything not recorded is extra. */
static int walk_extra(struct verify *v, size_t ri, const char *host,
		      const char *path)
{
	DIR *d = opendir(host);
	struct dirent *de;
	struct stat dst;
	bool fspf_dir;
	int err = 0;

	if (!d) {
		if (errno != ENOENT && errno != ENOTDIR)
			report(v, path, UINT64_MAX, "cannot read directory '%s': %s",
			       host, strerror(errno));
		return 0;
	}
	fspf_dir = fstat(dirfd(d), &dst) == 0 && v->fspf_base &&
		   dst.st_dev == v->fspf_dir_dev && dst.st_ino == v->fspf_dir_ino;
	while (!err && (de = readdir(d))) {
		char child_host[PATH_MAX], child[FSPF_PATH_MAX_BYTES + NAME_MAX];
		const struct fspf_entry *e;
		struct stat st;
		size_t cri;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fspf_dir && is_companion(v->fspf_base, de->d_name))
			continue; /* the runtime's lock and commit files */
		if (snprintf(child_host, sizeof(child_host), "%s/%s", host,
			     de->d_name) >= (int)sizeof(child_host) ||
		    snprintf(child, sizeof(child), "%s/%s",
			     strcmp(path, "/") ? path : "", de->d_name) >=
			    (int)FSPF_PATH_MAX_BYTES) {
			report(v, path, UINT64_MAX, "path too long below '%s'", host);
			continue;
		}
		if (lstat(child_host, &st) < 0)
			continue;
		if (st.st_dev == v->fspf_dev && st.st_ino == v->fspf_ino)
			continue; /* the fspf itself (a volume's volume.fspf) */
		if (fspf_region_lookup(v->fspf, child, &cri) || cri != ri)
			continue; /* another region checks it */
		e = fspf_entry_find(v->fspf, child);
		if (!e) {
			report(v, child, UINT64_MAX,
			       "not in the fspf: %s was added to a protected region (%s)",
			       kind_of(st.st_mode), child_host);
			continue;
		}
		if (e->type == FSPF_DIR && S_ISDIR(st.st_mode))
			err = walk_extra(v, ri, child_host, child);
	}
	closedir(d);
	return err;
}

static void verify_range(struct verify *v, size_t index, unsigned worker)
{
	struct vseg *s = &v->segs[index];
	struct vjob *j = &v->jobs[s->job];
	const struct fspf_region *r = j->region;
	uint64_t chunk = r->chunk_size, off = s->first * chunk;
	uint64_t end = off + s->count * chunk;
	uint8_t *buf = v->buffers[worker];
	struct fsh_aead *aead = NULL;
	size_t len, got = 0;
	int fd;

	if (end > j->entry->size)
		end = j->entry->size;
	len = (size_t)(end - off);
	pthread_mutex_lock(&j->lock);
	if (!j->opened) {
		j->opened = true;
		j->fd = open(j->host, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
					      O_NOCTTY | O_NONBLOCK);
		if (j->fd < 0) {
			report(v, j->entry->path, UINT64_MAX, "cannot open '%s': %s",
			       j->host, strerror(errno));
		} else {
			struct stat st;

			/* It may have been swapped since the lstat. */
			if (fstat(j->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
			    (uint64_t)st.st_size != j->entry->size) {
				report(v, j->entry->path, UINT64_MAX,
				       "changed while being verified (%s)", j->host);
				close(j->fd);
				j->fd = -1;
			}
		}
	}
	fd = j->fd;
	pthread_mutex_unlock(&j->lock);
	if (fd < 0)
		return;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			report(v, j->entry->path, UINT64_MAX,
			       "cannot read '%s': %s", j->host,
			       n < 0 ? strerror(errno) : "file shrank while being read");
			return;
		}
		got += (size_t)n;
	}
	if (fsh_aead_new(fspf_entry_key(v->fspf, j->entry), r->key_size,
			 &aead)) {
		report(v, j->entry->path, UINT64_MAX, "out of memory");
		return;
	}
	for (uint64_t i = 0; i < s->count; i++) {
		size_t co = (size_t)(i * chunk);
		size_t cl = len - co < chunk ? len - co : (size_t)chunk;
		uint64_t idx = s->first + i;
		bool lost;

		if (fspf_chunk_open(aead, r, j->entry, idx, buf + co, buf + co,
				    cl) == 0)
			continue;
		pthread_mutex_lock(&j->lock);
		if (j->failed_count == j->failed_cap) {
			size_t cap = j->failed_cap ? 2 * j->failed_cap : 8;
			uint64_t *f = realloc(j->failed, cap * sizeof(*f));

			if (f) {
				j->failed = f;
				j->failed_cap = cap;
			}
		}
		lost = j->failed_count == j->failed_cap;
		if (!lost)
			j->failed[j->failed_count++] = idx;
		pthread_mutex_unlock(&j->lock);
		if (lost) {
			pthread_mutex_lock(&v->lock);
			v->oom = true;
			pthread_mutex_unlock(&v->lock);
		}
	}
	fsh_aead_free(aead);
	fsh_wipe(buf, len);
	progress_add(v->progress, 0, len);
}

/* One segment; the last segment of a file closes it (no fd per file kept). */
static int verify_segment(void *ctx, size_t index, unsigned worker)
{
	struct verify *v = ctx;
	struct vjob *j = &v->jobs[v->segs[index].job];

	verify_range(v, index, worker);
	pthread_mutex_lock(&j->lock);
	if (--j->segments_left == 0 && j->fd >= 0) {
		close(j->fd);
		j->fd = -1;
	}
	pthread_mutex_unlock(&j->lock);
	return 0;
}

int cmd_verify(int argc, char **argv)
{
	enum { OPT_ROOT = OPT_FIRST_FREE };
	static const struct option opts[] = {
		{ "root", required_argument, NULL, OPT_ROOT },
		{ "help", no_argument, NULL, 'h' },
		{ "allow-unencrypted", no_argument, NULL, OPT_ALLOW_UNENCRYPTED },
		KEY_LONG_OPTIONS,
		{ 0 },
	};
	struct key_opts ko = KEY_OPTS_CHECKER;
	struct verify v = { .root = "/" };
	uint8_t tag[FSH_TAG_BYTES];
	struct fsh_key *key = NULL;
	unsigned threads = cli_cpu_count();
	bool have_expected = false;
	struct stat st;
	int c, ret;
	size_t seg_bytes = 0, total;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_ROOT:
			v.root = optarg;
			break;
		case 'h':
			printf("Usage: scone-fspf verify FSPF [--root DIR] [key and tag options]\n");
			return 0;
		default:
			if ((ret = key_opts_option(&ko, c, "verify", argv)))
				return ret;
		}
	}
	if (argc - optind < 1)
		return cli_usage("verify: missing FSPF");
	if (argc - optind > 1)
		return cli_unexpected("verify", argv[optind + 1]);
	v.fspf_path = argv[optind];
	if ((ret = cli_open_fspf(v.fspf_path, &ko, &v.fspf, &key, tag,
				 &have_expected)))
		return ret;
	ret = 1;
	pthread_mutex_init(&v.lock, NULL);
	if (stat(v.fspf_path, &st) == 0) {
		char *slash = strrchr(v.fspf_path, '/');
		char dir[PATH_MAX];

		v.fspf_dev = st.st_dev;
		v.fspf_ino = st.st_ino;
		snprintf(dir, sizeof(dir), "%.*s",
			 slash ? (int)(slash - v.fspf_path + 1) : 1,
			 slash ? v.fspf_path : ".");
		if (stat(dir, &st) == 0) {
			v.fspf_dir_dev = st.st_dev;
			v.fspf_dir_ino = st.st_ino;
			v.fspf_base = slash ? slash + 1 : v.fspf_path;
		}
	}
	if (!fspf_is_encrypted(v.fspf))
		cli_note("'%s' is not encrypted yet (sealed under the all-zero key): its tag is a checksum, not a secret",
			 v.fspf_path);
	if (!have_expected)
		cli_note("no expected tag given (--expected-tag, --tag-file or SCONE_FSPF_TAG): a rollback of the whole tree to an older state cannot be detected");

	/* Structure: every recorded entry, then whatever is extra on disk. */
	for (size_t ri = 0; ri < fspf_region_count(v.fspf); ri++) {
		const struct fspf_region *r = fspf_region(v.fspf, ri);
		char host[PATH_MAX];
		size_t first, end, er;

		if (r->protection == FSPF_NOT_PROTECTED || r->storage != FSPF_KERNEL)
			continue;
		fspf_entry_range(v.fspf, r->path, &first, &end);
		for (size_t i = first; i < end; i++) {
			const struct fspf_entry *e = fspf_entry(v.fspf, i);

			if (fspf_region_lookup(v.fspf, e->path, &er) || er != ri)
				continue;
			if (fspf_host_path(v.root, v.fspf_path, r, e->path, host,
					  sizeof(host))) {
				report(&v, e->path, UINT64_MAX, "host path too long");
				continue;
			}
			if (check_entry(&v, e, r, host)) {
				cli_error("out of memory");
				goto out;
			}
		}
		if (fspf_host_path(v.root, v.fspf_path, r, r->path, host,
				  sizeof(host)) == 0)
			walk_extra(&v, ri, host, r->path);
	}

	/* Chunks, on all cores. */
	for (size_t i = 0; i < v.job_count; i++) {
		uint32_t cs = v.jobs[i].region->chunk_size;
		size_t sb = SEGMENT_TARGET_BYTES / cs * cs;

		if (sb < cs)
			sb = cs;
		if (sb > seg_bytes)
			seg_bytes = sb;
	}
	{
		size_t cap = 0;

		for (size_t i = 0; i < v.job_count; i++) {
			uint64_t per = seg_bytes / v.jobs[i].region->chunk_size;
			uint64_t n = v.jobs[i].entry->chunk_count;

			cap += n ? (n + per - 1) / per : 0;
		}
		v.segs = calloc(cap ? cap : 1, sizeof(*v.segs));
		v.buffers = calloc(threads, sizeof(*v.buffers));
		if (!v.segs || !v.buffers) {
			cli_error("out of memory");
			goto out;
		}
		for (unsigned t = 0; t < threads && seg_bytes; t++)
			if (!(v.buffers[t] = malloc(seg_bytes))) {
				cli_error("out of memory");
				goto out;
			}
	}
	for (size_t i = 0; i < v.job_count; i++) {
		const struct fspf_entry *e = v.jobs[i].entry;
		uint64_t per = seg_bytes / v.jobs[i].region->chunk_size;

		for (uint64_t first = 0; first < e->chunk_count; first += per) {
			uint64_t n = e->chunk_count - first < per
					     ? e->chunk_count - first
					     : per;

			v.segs[v.seg_count++] = (struct vseg){ (uint32_t)i, first, n };
			v.jobs[i].segments_left++;
		}
		v.files++;
		v.bytes += e->size;
		v.chunks += e->chunk_count;
	}
	v.progress = progress_start("verify", v.job_count, v.bytes);
	if (run_parallel(v.seg_count, threads, verify_segment, &v)) {
		cli_error("cannot verify '%s': out of memory", v.fspf_path);
		goto out;
	}
	progress_end(v.progress);

	/* The first few failed chunks of each file, in order; then a count. */
	total = v.problem_count;
	for (size_t i = 0; i < v.job_count; i++) {
		struct vjob *j = &v.jobs[i];
		uint64_t cs = j->region->chunk_size;

		if (!j->failed_count)
			continue;
		total += j->failed_count;
		qsort(j->failed, j->failed_count, sizeof(*j->failed), u64_cmp);
		for (size_t k = 0; k < j->failed_count &&
				   k < MAX_CHUNK_REPORTS_PER_FILE; k++) {
			uint64_t idx = j->failed[k], a = idx * cs;
			uint64_t b = a + cs < j->entry->size ? a + cs : j->entry->size;

			report(&v, j->entry->path, idx,
			       "chunk %" PRIu64 " (bytes %" PRIu64 " to %" PRIu64
			       "): verification failed",
			       idx, a, b - 1);
		}
		if (j->failed_count > MAX_CHUNK_REPORTS_PER_FILE)
			report(&v, j->entry->path, UINT64_MAX - 1,
			       "... and %zu more chunks failed verification",
			       j->failed_count - MAX_CHUNK_REPORTS_PER_FILE);
	}
	if (v.oom) {
		cli_error("out of memory while verifying");
		goto out;
	}
	if (v.problem_count)
		qsort(v.problems, v.problem_count, sizeof(*v.problems),
		      problem_cmp);
	for (size_t i = 0; i < v.problem_count; i++) {
		const struct problem *pr = &v.problems[i];

		printf("%s: %s\n", pr->path, pr->msg);
	}
	if (total && v.missing == v.checked && !strcmp(v.root, "/"))
		cli_note("nothing recorded was found below '/': if the tree lies elsewhere, name its root with --root DIR");
	if (total) {
		fflush(stdout);
		cli_error("verification of '%s' failed: %zu problem%s",
			  v.fspf_path, total, total == 1 ? "" : "s");
		goto out;
	}
	{
		char hex[FSH_TAG_HEX_BYTES + 1];

		cli_tag_hex(tag, hex);
		printf("Verified %s (tag %s): %" PRIu64 " file%s, %" PRIu64
		       " byte%s in %" PRIu64 " chunk%s, %" PRIu64
		       " director%s, %" PRIu64 " symlink%s: OK\n",
		       v.fspf_path, hex, v.files, S(v.files), v.bytes,
		       S(v.bytes), v.chunks, S(v.chunks), v.dirs,
		       v.dirs == 1 ? "y" : "ies", v.links, S(v.links));
	}
	ret = 0;
out:
	for (size_t i = 0; i < v.problem_count; i++) {
		free(v.problems[i].path);
		free(v.problems[i].msg);
	}
	for (size_t i = 0; i < v.job_count; i++) {
		if (v.jobs[i].fd >= 0)
			close(v.jobs[i].fd);
		free(v.jobs[i].host);
		free(v.jobs[i].failed);
		pthread_mutex_destroy(&v.jobs[i].lock);
	}
	for (unsigned t = 0; v.buffers && t < threads; t++)
		free(v.buffers[t]);
	free(v.buffers);
	free(v.segs);
	free(v.jobs);
	free(v.problems);
	pthread_mutex_destroy(&v.lock);
	fspf_free(v.fspf);
	fsh_key_free(key);
	return ret;
}

/*
 * Write the verified plaintext of file @e (stored at @host) to @out_fd,
 * chunk by chunk: a chunk's bytes are written only after it verified, and
 * nothing after a chunk that failed. Return: 0, or 1 after printing an error.
 */
static int release_file(const struct fspf *fspf, const struct fspf_entry *e,
			const char *host, int out_fd, const char *out_name)
{
	const struct fspf_region *r = fspf_entry_region(fspf, e);
	struct fsh_aead *aead = NULL;
	uint8_t *buf = NULL;
	size_t buf_size;
	struct stat st;
	int fd, ret = 1, err;

	/* O_NONBLOCK: a FIFO put in a file's place must not hang us. */
	fd = open(host, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0) {
		cli_error("cannot open '%s': %s", host, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size) {
		cli_error("'%s' (%s) failed verification: %s", e->path, host,
			  !S_ISREG(st.st_mode) ? "not a regular file"
					       : "its size is not the recorded size");
		goto out;
	}
	buf_size = (SEGMENT_TARGET_BYTES / r->chunk_size) * r->chunk_size;
	if (buf_size < r->chunk_size)
		buf_size = r->chunk_size;
	if (buf_size > e->chunk_count * r->chunk_size)
		buf_size = e->chunk_count * r->chunk_size; /* small files */
	buf = malloc(buf_size ? buf_size : 1);
	if (!buf || fsh_aead_new(fspf_entry_key(fspf, e), r->key_size, &aead)) {
		cli_error("out of memory");
		goto out;
	}
	for (uint64_t off = 0; off < e->size;) {
		size_t len = e->size - off < buf_size ? (size_t)(e->size - off)
						      : buf_size;
		size_t got = 0, ok = 0;

		while (got < len) {
			ssize_t n = pread(fd, buf + got, len - got,
					  (off_t)(off + got));

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				cli_error("cannot read '%s': %s", host,
					  n < 0 ? strerror(errno) : "file shrank");
				goto out;
			}
			got += (size_t)n;
		}
		for (; ok < len; ok += r->chunk_size) {
			size_t cl = len - ok < r->chunk_size ? len - ok
							     : r->chunk_size;
			uint64_t idx = (off + ok) / r->chunk_size;

			if (fspf_chunk_open(aead, r, e, idx, buf + ok, buf + ok,
					    cl) == 0)
				continue;
			/* Release what verified, nothing of the bad chunk. */
			cli_write_all(out_fd, buf, ok);
			cli_error("'%s': chunk %" PRIu64 " (bytes %" PRIu64
				  " to %" PRIu64 ") of '%s' failed verification",
				  e->path, idx, off + ok, off + ok + cl - 1, host);
			goto out;
		}
		err = cli_write_all(out_fd, buf, len);
		if (err) {
			cli_error("cannot write to '%s': %s", out_name,
				  strerror(-err));
			goto out;
		}
		off += len;
	}
	ret = 0;
out:
	if (buf)
		fsh_wipe(buf, buf_size);
	free(buf);
	fsh_aead_free(aead);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* A PATH argument of cat and extract, normalised. Return: 0 or 1 (printed). */
static int tree_path_arg(const char *arg, char *path)
{
	if (fspf_path_normalize(arg, path) == 0)
		return 0;
	cli_error("bad path '%s': must be absolute, without '.' or '..'", arg);
	return 1;
}

/* Why nothing is recorded at @path, for cat and extract. */
static const char *why_absent(const struct fspf *fspf, const char *path)
{
	size_t ri;

	if (fspf_region_lookup(fspf, path, &ri) == 0 &&
	    fspf_region(fspf, ri)->protection == FSPF_NOT_PROTECTED)
		return "it lies in a not-protected region: nothing to verify";
	return "nothing is recorded there in the fspf";
}

/* Parse the options shared by cat and extract. Return: -1 to go on, else exit code. */
static int parse_read_opts(int argc, char **argv, const char *cmd,
			   const char *usage, struct key_opts *ko,
			   const char **root, const char **output)
{
	enum { OPT_ROOT = OPT_FIRST_FREE };
	static const struct option opts[] = {
		{ "root", required_argument, NULL, OPT_ROOT },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ "allow-unencrypted", no_argument, NULL, OPT_ALLOW_UNENCRYPTED },
		KEY_LONG_OPTIONS,
		{ 0 },
	};
	int c, ret;

	while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_ROOT:
			*root = optarg;
			break;
		case 'o':
			if (!output)
				return cli_usage("%s: unknown option '%s'", cmd,
						 argv[optind - 1]);
			*output = optarg;
			break;
		case 'h':
			printf("Usage: scone-fspf %s\n", usage);
			return 0;
		default:
			if ((ret = key_opts_option(ko, c, cmd, argv)))
				return ret;
		}
	}
	return -1;
}

int cmd_cat(int argc, char **argv)
{
	struct key_opts ko = KEY_OPTS_CHECKER;
	char path[FSPF_PATH_MAX_BYTES], host[PATH_MAX];
	const char *root = "/", *fspf_path;
	uint8_t tag[FSH_TAG_BYTES];
	struct fsh_key *key = NULL;
	struct fspf *fspf = NULL;
	const struct fspf_entry *e;
	int ret;

	ret = parse_read_opts(argc, argv, "cat",
			      "cat FSPF PATH [--root DIR] [key and tag options]",
			      &ko, &root, NULL);
	if (ret >= 0)
		return ret;
	if (argc - optind != 2)
		return cli_usage("cat: expected FSPF and PATH");
	fspf_path = argv[optind];
	if (tree_path_arg(argv[optind + 1], path))
		return 1;
	if ((ret = cli_open_fspf(fspf_path, &ko, &fspf, &key, tag, NULL)))
		return ret;
	ret = 1;
	e = fspf_entry_find(fspf, path);
	if (!e) {
		cli_error("cannot cat '%s': %s", path, why_absent(fspf, path));
		goto out;
	}
	if (e->type != FSPF_FILE) {
		cli_error("cannot cat '%s': it is %s", path, kind_of_entry(e->type));
		goto out;
	}
	if (fspf_host_path(root, fspf_path, fspf_entry_region(fspf, e), path,
			  host, sizeof(host))) {
		cli_error("cannot cat '%s': host path too long", path);
		goto out;
	}
	ret = release_file(fspf, e, host, STDOUT_FILENO, "standard output");
out:
	fspf_free(fspf);
	fsh_key_free(key);
	return ret;
}

/*
 * Create the missing parents of @dst below its first @base bytes (the
 * output directory), refusing to go through anything but real directories:
 * a symlink in the output tree must not lead a write elsewhere.
 * Return: 0, or 1 after printing an error.
 */
static int make_parents(char *dst, size_t base)
{
	char *slash = dst + base;
	struct stat st;

	while ((slash = strchr(slash + 1, '/')) != NULL) {
		*slash = '\0';
		if (mkdir(dst, 0755) < 0 && errno != EEXIST) {
			cli_error("cannot create directory '%s': %s", dst,
				  strerror(errno));
			*slash = '/';
			return 1;
		}
		if (lstat(dst, &st) < 0 || !S_ISDIR(st.st_mode)) {
			cli_error("cannot extract below '%s': not a directory (a symlink is not followed)",
				  dst);
			*slash = '/';
			return 1;
		}
		*slash = '/';
	}
	return 0;
}

/* Extract one entry to @dst (files via a temporary name). Return: 0 or 1. */
static int extract_entry(const struct fspf *fspf, const struct fspf_entry *e,
			 const char *host, const char *dst)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT },
				  { e->mtime_ns / 1000000000,
				    e->mtime_ns % 1000000000 } };
	char *tmp = NULL;
	int fd, ret = 1;

	if (ts[1].tv_nsec < 0) {
		ts[1].tv_sec--;
		ts[1].tv_nsec += 1000000000;
	}
	switch (e->type) {
	case FSPF_DIR:
		if (mkdir(dst, 0700) < 0 && errno != EEXIST) {
			cli_error("cannot create directory '%s': %s", dst,
				  strerror(errno));
			return 1;
		}
		return 0; /* mode and time once its contents are in */
	case FSPF_SYMLINK:
		if (symlink(e->target, dst) < 0) {
			cli_error("cannot create symlink '%s': %s", dst,
				  strerror(errno));
			return 1;
		}
		return 0;
	}
	if (asprintf(&tmp, "%s.fshield-%ld.tmp", dst, (long)getpid()) < 0)
		return 1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		cli_error("cannot create '%s': %s", tmp, strerror(errno));
		free(tmp);
		return 1;
	}
	if (!release_file(fspf, e, host, fd, dst)) {
		if (fchmod(fd, e->mode) < 0 || futimens(fd, ts) < 0)
			cli_error("cannot set the mode of '%s': %s", tmp,
				  strerror(errno));
		else if (close(fd) < 0)
			cli_error("cannot write '%s': %s", tmp, strerror(errno));
		else if (rename(tmp, dst) < 0)
			cli_error("cannot rename '%s': %s", tmp, strerror(errno));
		else
			ret = 0;
		fd = -1;
	}
	if (fd >= 0)
		close(fd);
	if (ret)
		unlink(tmp);
	free(tmp);
	return ret;
}

int cmd_extract(int argc, char **argv)
{
	struct key_opts ko = KEY_OPTS_CHECKER;
	char path[FSPF_PATH_MAX_BYTES], host[PATH_MAX], dst[PATH_MAX];
	const char *root = "/", *output = NULL, *fspf_path;
	uint8_t tag[FSH_TAG_BYTES];
	struct fsh_key *key = NULL;
	struct fspf *fspf = NULL;
	size_t first, end, failed = 0, done = 0;
	int ret;

	ret = parse_read_opts(argc, argv, "extract",
			      "extract FSPF [PATH] -o OUTPUT_DIR [--root DIR] [key and tag options]",
			      &ko, &root, &output);
	if (ret >= 0)
		return ret;
	if (argc - optind < 1 || argc - optind > 2)
		return cli_usage("extract: expected FSPF and an optional PATH");
	if (!output)
		return cli_usage("extract: give the output directory with -o DIR");
	fspf_path = argv[optind];
	if (tree_path_arg(argc - optind == 2 ? argv[optind + 1] : "/", path))
		return 1;
	if ((ret = cli_open_fspf(fspf_path, &ko, &fspf, &key, tag, NULL)))
		return ret;
	ret = 1;
	fspf_entry_range(fspf, path, &first, &end);
	if (first == end) {
		cli_error("cannot extract '%s': %s", path, why_absent(fspf, path));
		goto out;
	}
	if (mkdir(output, 0700) < 0 && errno != EEXIST) {
		cli_error("cannot create output directory '%s': %s", output,
			  strerror(errno));
		goto out;
	}
	for (size_t i = first; i < end; i++) {
		const struct fspf_entry *e = fspf_entry(fspf, i);

		if (fspf_host_path(root, fspf_path, fspf_entry_region(fspf, e),
				  e->path, host, sizeof(host)) ||
		    snprintf(dst, sizeof(dst), "%s%s", output, e->path) >=
			    (int)sizeof(dst)) {
			cli_error("cannot extract '%s': path too long", e->path);
			failed++;
			continue;
		}
		if (make_parents(dst, strlen(output))) {
			failed++;
			continue;
		}
		if (extract_entry(fspf, e, host, dst))
			failed++;
		else
			done++;
	}
	/* Directory modes and times last, deepest first. */
	for (size_t i = end; i-- > first;) {
		const struct fspf_entry *e = fspf_entry(fspf, i);
		struct timespec ts[2] = { { 0, UTIME_OMIT },
					  { e->mtime_ns / 1000000000,
					    e->mtime_ns % 1000000000 } };

		if (e->type != FSPF_DIR || ts[1].tv_nsec < 0)
			continue;
		if (snprintf(dst, sizeof(dst), "%s%s", output, e->path) >=
		    (int)sizeof(dst))
			continue; /* reported as too long above */
		if (chmod(dst, e->mode) < 0 ||
		    utimensat(AT_FDCWD, dst, ts, 0) < 0) {
			cli_error("cannot set the mode of '%s': %s", dst,
				  strerror(errno));
			failed++;
		}
	}
	if (failed) {
		cli_error("extracted %zu entr%s of '%s' to '%s'; %zu failed and %s left out",
			  done, done == 1 ? "y" : "ies", fspf_path, output,
			  failed, failed == 1 ? "was" : "were");
		ret = 1;
	} else {
		printf("Extracted %zu verified entr%s of %s to %s\n", done,
		       done == 1 ? "y" : "ies", fspf_path, output);
		ret = 0;
	}
out:
	fspf_free(fspf);
	fsh_key_free(key);
	return ret ? 1 : 0;
}
