// SPDX-License-Identifier: Apache-2.0
/*
 * addf: walk a source tree, record it in the fspf and write its protected
 * form. Files are cut into segments of whole chunks that all cores seal in
 * parallel, so neither many small files nor one huge file leaves a core idle
 * and no file is ever held in memory whole. Outputs go to temporary names
 * and are renamed only once everything succeeded: a failed addf leaves the
 * output tree and the fspf as they were.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define SEGMENT_TARGET_BYTES (8u << 20)

struct item {
	char *rel; /* "" for the top directory, else "a/b" */
	struct stat st;
	char *target;
};

struct items {
	struct item *v;
	size_t count, cap;
};

/*
 * One output put in place by rename(2). A file it replaces is kept as a
 * hard-linked backup until the whole command succeeded, so that a failure
 * after some renames (the fspf cannot be committed, say) can put every
 * old file back.
 */
struct place {
	char *tmp;
	char *dst;
	char *bak;
	bool tmp_made, bak_made, renamed;
};

struct job {
	struct fspf_entry *entry;
	char *src;
	struct place pl; /* tmp is NULL without an output */
	struct stat st;
	pthread_mutex_t lock;
	atomic_uint segments_left;
	int src_fd, dst_fd;
	bool opened;
};

struct segment {
	uint32_t job;
	uint64_t first, count; /* chunks */
};

struct protect {
	struct fspf *fspf;
	const struct fspf_region *region;
	struct job *jobs;
	size_t job_count;
	struct segment *segs;
	size_t seg_count;
	size_t seg_bytes;
	uint8_t **buffers; /* one per worker */
	struct progress *progress;
	pthread_mutex_t err_lock;
	bool failed;
};

static int items_push(struct items *it, const char *rel, const struct stat *st,
		      char *target)
{
	if (it->count == it->cap) {
		size_t cap = it->cap ? 2 * it->cap : 256;
		struct item *v = realloc(it->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		it->v = v;
		it->cap = cap;
	}
	it->v[it->count].rel = strdup(rel);
	if (!it->v[it->count].rel)
		return -ENOMEM;
	it->v[it->count].st = *st;
	it->v[it->count].target = target;
	it->count++;
	return 0;
}

static void items_free(struct items *it)
{
	for (size_t i = 0; i < it->count; i++) {
		free(it->v[i].rel);
		free(it->v[i].target);
	}
	free(it->v);
}

struct walk {
	struct items items;
	const char *source;
	const char *skip_name;
	dev_t skip_dev;
	ino_t skip_ino;
	bool skip_dir;
};

/* Recursively collect @dfd (the directory at @rel). Return: 0 or 1 (printed). */
static int walk_dir(struct walk *w, int dfd, const char *rel)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	int ret = 0;

	if (!d) {
		cli_error("cannot read directory '%s/%s': %s", w->source, rel,
			  strerror(errno));
		close(dfd);
		return 1;
	}
	while (!ret) {
		char child[PATH_MAX];
		struct stat st;
		char *target = NULL;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno) {
				cli_error("cannot read directory '%s/%s': %s",
					  w->source, rel, strerror(errno));
				ret = 1;
			}
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!*rel && w->skip_name && !strcmp(de->d_name, w->skip_name))
			continue;
		if (snprintf(child, sizeof(child), "%s%s%s", rel, *rel ? "/" : "",
			     de->d_name) >= (int)sizeof(child) - 1) {
			cli_error("path too long in '%s': '%s'", w->source, rel);
			ret = 1;
			break;
		}
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			cli_error("cannot stat '%s/%s': %s", w->source, child,
				  strerror(errno));
			ret = 1;
			break;
		}
		if (S_ISDIR(st.st_mode) && w->skip_dir &&
		    st.st_dev == w->skip_dev && st.st_ino == w->skip_ino)
			continue; /* the output tree inside the source */
		if (S_ISLNK(st.st_mode)) {
			target = calloc(1, PATH_MAX);
			ssize_t n = target ? readlinkat(dirfd(d), de->d_name,
							target, PATH_MAX - 1)
					   : -1;

			if (n <= 0) {
				cli_error("cannot read symlink '%s/%s': %s",
					  w->source, child,
					  strerror(target ? errno : ENOMEM));
				free(target);
				ret = 1;
				break;
			}
		} else if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
			cli_warn("skipping '%s/%s': not a regular file, directory or symlink",
				 w->source, child);
			continue;
		}
		if (items_push(&w->items, child, &st, target)) {
			free(target);
			cli_error("out of memory");
			ret = 1;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			int cfd = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC);

			if (cfd < 0) {
				cli_error("cannot open directory '%s/%s': %s",
					  w->source, child, strerror(errno));
				ret = 1;
				break;
			}
			ret = walk_dir(w, cfd, child);
		}
	}
	closedir(d);
	return ret;
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* The first error of any worker is printed; the others stop quietly. */
static void set_error(struct protect *p, const char *what, const char *path,
		      const char *why)
{
	pthread_mutex_lock(&p->err_lock);
	if (!p->failed) {
		p->failed = true;
		cli_error("%s '%s': %s", what, path, why);
	}
	pthread_mutex_unlock(&p->err_lock);
}

static int open_job(struct protect *p, struct job *j)
{
	struct stat st;

	j->src_fd = open(j->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
					 O_NONBLOCK);
	if (j->src_fd < 0) {
		set_error(p, "cannot open", j->src, strerror(errno));
		return 1;
	}
	if (fstat(j->src_fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != j->entry->size) {
		set_error(p, "cannot protect", j->src, "changed while it was read");
		return 1;
	}
	posix_fadvise(j->src_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	if (j->pl.tmp) {
		j->dst_fd = open(j->pl.tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
				 0600);
		if (j->dst_fd < 0) {
			set_error(p, "cannot create", j->pl.tmp, strerror(errno));
			return 1;
		}
		j->pl.tmp_made = true;
	}
	return 0;
}

static int finish_job(struct protect *p, struct job *j)
{
	struct stat st;
	int ret = 0;

	/* A source that changed under us would not match what we recorded. */
	if (fstat(j->src_fd, &st) < 0 ||
	    (uint64_t)st.st_size != j->entry->size ||
	    st.st_mtim.tv_sec != j->st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != j->st.st_mtim.tv_nsec) {
		set_error(p, "cannot protect", j->src, "changed while it was read");
		ret = 1;
	}
	if (j->dst_fd >= 0) {
		struct timespec ts[2] = { j->st.st_atim, j->st.st_mtim };

		if (!ret && geteuid() == 0 &&
		    fchown(j->dst_fd, j->st.st_uid, j->st.st_gid) < 0) {
			set_error(p, "cannot set the owner of", j->pl.tmp, strerror(errno));
			ret = 1;
		}
		if (!ret && (fchmod(j->dst_fd, j->st.st_mode & 07777) < 0 ||
			     futimens(j->dst_fd, ts) < 0)) {
			set_error(p, "cannot set the mode of", j->pl.tmp, strerror(errno));
			ret = 1;
		}
		if (close(j->dst_fd) < 0 && !ret) {
			set_error(p, "cannot write", j->pl.tmp, strerror(errno));
			ret = 1;
		}
		j->dst_fd = -1;
	}
	close(j->src_fd);
	j->src_fd = -1;
	return ret;
}

static int seal_segment(void *ctx, size_t index, unsigned worker)
{
	struct protect *p = ctx;
	struct segment *s = &p->segs[index];
	struct job *j = &p->jobs[s->job];
	const struct fspf_region *r = p->region;
	uint64_t chunk = r->chunk_size;
	uint64_t off = s->first * chunk;
	uint64_t end = off + s->count * chunk;
	uint8_t *buf = p->buffers[worker];
	struct fsh_aead *aead = NULL;
	size_t len, got = 0;
	int err;

	if (end > j->entry->size)
		end = j->entry->size;
	len = (size_t)(end - off);
	pthread_mutex_lock(&j->lock);
	err = j->opened ? 0 : open_job(p, j);
	j->opened = true;
	pthread_mutex_unlock(&j->lock);
	if (err || (j->src_fd < 0))
		return 1;
	while (got < len) {
		ssize_t n = pread(j->src_fd, buf + got, len - got,
				  (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			set_error(p, "cannot read", j->src,
				  n < 0 ? strerror(errno) : "changed while it was read");
			return 1;
		}
		got += (size_t)n;
	}
	err = fsh_aead_new(fspf_entry_key(p->fspf, j->entry), r->key_size,
			   &aead);
	if (!err && len)
		err = fspf_chunks_seal(aead, r, j->entry, s->first, buf, buf,
				       len);
	fsh_aead_free(aead);
	if (err) {
		set_error(p, "cannot protect", j->src, strerror(-err));
		return 1;
	}
	for (size_t done = 0; j->dst_fd >= 0 && done < len;) {
		ssize_t n = pwrite(j->dst_fd, buf + done, len - done,
				   (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_error(p, "cannot write", j->pl.tmp, strerror(errno));
			return 1;
		}
		done += (size_t)n;
	}
	progress_add(p->progress, 0, len);
	if (atomic_fetch_sub(&j->segments_left, 1) == 1) {
		progress_add(p->progress, 1, 0);
		return finish_job(p, j);
	}
	return 0;
}

static char *join(const char *a, const char *b)
{
	char *s;

	if (asprintf(&s, "%s%s%s", a, *b ? "/" : "", b) < 0)
		return NULL;
	return s;
}

/* The fspf path of @rel below @embed. */
static char *entry_path(const char *embed, const char *rel)
{
	char *s;

	if (!*rel)
		return strdup(embed);
	if (asprintf(&s, "%s/%s", strcmp(embed, "/") ? embed : "", rel) < 0)
		return NULL;
	return s;
}

static char *tmp_name(const char *dst, size_t n)
{
	const char *slash = strrchr(dst, '/');
	int dlen = slash ? (int)(slash - dst) + 1 : 0;
	char *s;

	if (asprintf(&s, "%.*s.fshield-%ld-%zu.tmp", dlen, dst, (long)getpid(),
		     n) < 0)
		return NULL;
	return s;
}

static char *bak_name(const char *dst, size_t n)
{
	char *t = tmp_name(dst, n), *b = NULL;

	if (t && asprintf(&b, "%.*sbak", (int)strlen(t) - 3, t) < 0)
		b = NULL;
	free(t);
	return b;
}

/* Keep what lies at pl->dst, if anything, under a backup name. Return: 0 or 1. */
static int place_backup(struct place *pl, size_t n)
{
	struct stat st;

	if (lstat(pl->dst, &st) < 0)
		return errno == ENOENT ? 0 : (cli_error("cannot stat '%s': %s",
							pl->dst, strerror(errno)), 1);
	pl->bak = bak_name(pl->dst, n);
	if (!pl->bak) {
		cli_error("out of memory");
		return 1;
	}
	if (link(pl->dst, pl->bak) < 0) {
		cli_error("cannot keep a backup of '%s' as '%s': %s", pl->dst,
			  pl->bak, strerror(errno));
		return 1;
	}
	pl->bak_made = true;
	return 0;
}

static int place_commit(struct place *pl)
{
	if (rename(pl->tmp, pl->dst) < 0) {
		cli_error("cannot rename '%s' to '%s': %s", pl->tmp, pl->dst,
			  strerror(errno));
		return 1;
	}
	pl->renamed = true;
	return 0;
}

/* Put back what was there before (best effort: nothing left to report to). */
static void place_undo(struct place *pl)
{
	if (pl->renamed) {
		if (pl->bak_made) {
			if (rename(pl->bak, pl->dst) == 0)
				pl->bak_made = false;
		} else {
			unlink(pl->dst);
		}
	} else if (pl->tmp_made) {
		unlink(pl->tmp);
	}
	if (pl->bak_made)
		unlink(pl->bak);
	pl->renamed = pl->tmp_made = pl->bak_made = false;
}

static void place_free(struct place *pl, bool succeeded)
{
	if (succeeded && pl->bak_made)
		unlink(pl->bak);
	free(pl->tmp);
	free(pl->dst);
	free(pl->bak);
}

struct made_dir {
	char *path;
	bool created;
	struct stat st;
};

/* Create the output directories; remember which we made, to undo on failure. */
static int make_output_dirs(const char *output, const struct items *it,
			    struct made_dir *dirs, size_t *count)
{
	for (size_t i = 0; i < it->count; i++) {
		const struct item *x = &it->v[i];
		struct made_dir *d = &dirs[*count];
		struct stat st;

		if (!S_ISDIR(x->st.st_mode))
			continue;
		d->path = join(output, x->rel);
		d->st = x->st;
		if (!d->path) {
			cli_error("out of memory");
			return 1;
		}
		(*count)++;
		if (mkdir(d->path, 0700) == 0) {
			d->created = true;
			continue;
		}
		/* A symlink inside the output tree is not followed. */
		if (errno != EEXIST ||
		    (*x->rel ? lstat(d->path, &st) : stat(d->path, &st)) < 0 ||
		    !S_ISDIR(st.st_mode)) {
			cli_error("cannot create directory '%s': %s", d->path,
				  errno == EEXIST ? "exists and is not a directory"
						  : strerror(errno));
			return 1;
		}
	}
	return 0;
}

static int backup_job(void *ctx, size_t i, unsigned worker)
{
	struct protect *p = ctx;

	return place_backup(&p->jobs[i].pl, i) ? 1 : 0;
}

static int commit_job(void *ctx, size_t i, unsigned worker)
{
	struct protect *p = ctx;

	return place_commit(&p->jobs[i].pl) ? 1 : 0;
}

static void undo(struct protect *p, struct made_dir *dirs, size_t dir_count,
		 struct place *links, size_t link_count)
{
	for (size_t i = 0; i < p->job_count; i++) {
		struct job *j = &p->jobs[i];

		if (j->src_fd >= 0)
			close(j->src_fd);
		if (j->dst_fd >= 0)
			close(j->dst_fd);
		j->src_fd = j->dst_fd = -1;
		place_undo(&j->pl);
	}
	for (size_t i = 0; i < link_count; i++)
		place_undo(&links[i]);
	for (size_t i = dir_count; i-- > 0;)
		if (dirs[i].created)
			rmdir(dirs[i].path);
}

int protect_tree(struct fspf *fspf, const char *embed_arg, const char *source,
		 const char *output, const char *skip_name,
		 const struct protect_hooks *hooks)
{
	struct walk w = { .source = source, .skip_name = skip_name };
	struct protect p = { .fspf = fspf };
	struct fspf_entry *entries = NULL;
	struct made_dir *dirs = NULL;
	struct place *links = NULL;
	size_t dir_count = 0, link_count = 0, region_index, n_entries = 0;
	size_t files = 0;
	char embed[FSPF_PATH_MAX_BYTES];
	const char *why, *bad_path;
	unsigned threads = cli_cpu_count();
	struct stat st, out_st;
	bool made_output = false;
	uint64_t total_bytes = 0;
	int sfd, ret = 1, err;

	pthread_mutex_init(&p.err_lock, NULL);
	if (fspf_path_normalize(embed_arg, embed)) {
		cli_error("bad embed point '%s': must be an absolute path without '.' or '..'",
			  embed_arg);
		return 1;
	}
	if (fspf_region_lookup(fspf, embed, &region_index)) {
		cli_error("cannot add files at '%s': no region contains it (add one with addr)",
			  embed_arg);
		return 1;
	}
	p.region = fspf_region(fspf, region_index);
	if (p.region->protection == FSPF_NOT_PROTECTED ||
	    p.region->storage != FSPF_KERNEL) {
		cli_error("cannot add files at '%s': region '%s' is %s: only authenticated and encrypted kernel regions record files",
			  embed_arg, p.region->path,
			  p.region->storage != FSPF_KERNEL ? "ephemeral"
							   : "not protected");
		return 1;
	}
	if (strcmp(embed, p.region->path) != 0) {
		struct fspf_entry *e = fspf_entry_find(fspf, embed);

		if (!e || e->type != FSPF_DIR) {
			cli_error("cannot add files at '%s': it is neither the embed point of region '%s' nor a directory recorded in it",
				  embed_arg, p.region->path);
			return 1;
		}
	}
	if (p.region->protection == FSPF_ENCRYPTED && !output) {
		cli_error("cannot add files to encrypted region '%s': an OUTPUT_DIR for the ciphertext is required",
			  p.region->path);
		return 1;
	}
	sfd = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0 || fstat(sfd, &st) < 0) {
		cli_error("cannot open source directory '%s': %s", source,
			  strerror(errno));
		if (sfd >= 0)
			close(sfd);
		return 1;
	}
	if (output) {
		if (mkdir(output, 0700) == 0)
			made_output = true;
		else if (errno != EEXIST) {
			cli_error("cannot create output directory '%s': %s",
				  output, strerror(errno));
			close(sfd);
			return 1;
		}
		if (stat(output, &out_st) < 0 || !S_ISDIR(out_st.st_mode)) {
			bool exists = errno == EEXIST;

			cli_error("cannot use output directory '%s': %s", output,
				  exists ? "not a directory" : strerror(errno));
			close(sfd);
			goto out;
		}
		/* An output inside the source must not be walked into. */
		if (out_st.st_dev != st.st_dev || out_st.st_ino != st.st_ino) {
			w.skip_dir = true;
			w.skip_dev = out_st.st_dev;
			w.skip_ino = out_st.st_ino;
		}
	}
	if (items_push(&w.items, "", &st, NULL)) {
		cli_error("out of memory");
		close(sfd);
		goto out;
	}
	if (walk_dir(&w, sfd, ""))
		goto out;

	/* Record everything in the fspf model. */
	entries = calloc(w.items.count, sizeof(*entries));
	if (!entries) {
		cli_error("out of memory");
		goto out;
	}
	for (size_t i = 0; i < w.items.count; i++) {
		const struct item *x = &w.items.v[i];
		struct fspf_entry *e = &entries[n_entries++];
		size_t ri;

		e->path = entry_path(embed, x->rel);
		if (!e->path) {
			cli_error("out of memory");
			goto out;
		}
		if (!fspf_path_valid(e->path, strlen(e->path))) {
			cli_error("cannot record '%s/%s': not a valid path", source,
				  x->rel);
			goto out;
		}
		if (fspf_region_lookup(fspf, e->path, &ri) || ri != region_index) {
			cli_error("cannot record '%s/%s' as '%s': it belongs to region '%s', not '%s'",
				  source, x->rel, e->path,
				  fspf_region(fspf, ri)->path, p.region->path);
			goto out;
		}
		e->type = S_ISDIR(x->st.st_mode) ? FSPF_DIR :
			  S_ISLNK(x->st.st_mode) ? FSPF_SYMLINK :
						   FSPF_FILE;
		e->mode = x->st.st_mode & 07777;
		e->uid = x->st.st_uid;
		e->gid = x->st.st_gid;
		e->size = e->type == FSPF_FILE ? (uint64_t)x->st.st_size : 0;
		e->mtime_ns = mtime_ns(&x->st);
		if (x->target && !(e->target = strdup(x->target))) {
			cli_error("out of memory");
			goto out;
		}
		files += e->type == FSPF_FILE;
	}
	err = fspf_entries_put(fspf, entries, n_entries, &why, &bad_path);
	if (err) {
		cli_error("cannot record '%s': %s", bad_path ? bad_path : source,
			  why ? why : strerror(-err));
		goto out;
	}

	/* Plan the work: one job per file, segments of whole chunks. */
	p.seg_bytes = SEGMENT_TARGET_BYTES / p.region->chunk_size *
		      p.region->chunk_size;
	if (p.seg_bytes < p.region->chunk_size)
		p.seg_bytes = p.region->chunk_size;
	p.jobs = calloc(files ? files : 1, sizeof(*p.jobs));
	dirs = calloc(w.items.count, sizeof(*dirs));
	links = calloc(w.items.count, sizeof(*links));
	if (!p.jobs || !dirs || !links) {
		cli_error("out of memory");
		goto out;
	}
	for (size_t i = 0; i < w.items.count; i++) {
		const struct item *x = &w.items.v[i];
		struct job *j;
		char *path;
		uint64_t segs;

		if (!S_ISREG(x->st.st_mode))
			continue;
		j = &p.jobs[p.job_count++];
		j->src_fd = j->dst_fd = -1;
		pthread_mutex_init(&j->lock, NULL);
		path = entry_path(embed, x->rel);
		j->entry = path ? fspf_entry_find(fspf, path) : NULL;
		free(path);
		j->st = x->st;
		j->src = join(source, x->rel);
		if (output) {
			j->pl.dst = join(output, x->rel);
			j->pl.tmp = j->pl.dst ? tmp_name(j->pl.dst, i) : NULL;
		}
		if (!j->entry || !j->src || (output && !j->pl.tmp)) {
			cli_error("out of memory");
			goto out;
		}
		segs = j->entry->chunk_count
			       ? (j->entry->chunk_count * p.region->chunk_size +
				  p.seg_bytes - 1) / p.seg_bytes
			       : 1;
		atomic_init(&j->segments_left, (unsigned)segs);
		p.seg_count += segs;
		total_bytes += j->entry->size;
	}
	p.segs = calloc(p.seg_count ? p.seg_count : 1, sizeof(*p.segs));
	p.buffers = calloc(threads, sizeof(*p.buffers));
	if (!p.segs || !p.buffers) {
		cli_error("out of memory");
		goto out;
	}
	for (size_t i = 0, k = 0; i < p.job_count; i++) {
		uint64_t per = p.seg_bytes / p.region->chunk_size;
		uint64_t left = p.jobs[i].entry->chunk_count, first = 0;

		do {
			uint64_t n = left < per ? left : per;

			p.segs[k++] = (struct segment){ (uint32_t)i, first, n };
			first += n;
			left -= n;
		} while (left);
	}
	for (unsigned t = 0; t < threads; t++) {
		p.buffers[t] = malloc(p.seg_bytes);
		if (!p.buffers[t]) {
			cli_error("out of memory");
			goto out;
		}
	}
	if (output) {
		/*
		 * Renames cannot be undone once done: find every one that would
		 * fail (a file or symlink where a directory stands) first.
		 */
		for (size_t i = 0; i < w.items.count; i++) {
			const struct item *x = &w.items.v[i];
			char *dst;
			struct stat dst_st;
			bool bad;

			if (S_ISDIR(x->st.st_mode))
				continue;
			dst = join(output, x->rel);
			if (!dst) {
				cli_error("out of memory");
				goto out;
			}
			bad = lstat(dst, &dst_st) == 0 && S_ISDIR(dst_st.st_mode);
			if (bad)
				cli_error("cannot replace directory '%s' with %s",
					  dst, S_ISLNK(x->st.st_mode) ? "a symlink"
								      : "a file");
			free(dst);
			if (bad)
				goto out;
		}
		if (make_output_dirs(output, &w.items, dirs, &dir_count))
			goto out;
		for (size_t i = 0; i < w.items.count; i++) {
			const struct item *x = &w.items.v[i];

			if (!S_ISLNK(x->st.st_mode))
				continue;
			links[link_count].dst = join(output, x->rel);
			links[link_count].tmp = links[link_count].dst
				? tmp_name(links[link_count].dst, i) : NULL;
			if (!links[link_count].tmp) {
				cli_error("out of memory");
				link_count++;
				goto out;
			}
			if (symlink(x->target, links[link_count].tmp) < 0) {
				cli_error("cannot create symlink '%s': %s",
					  links[link_count].tmp, strerror(errno));
				link_count++;
				goto out;
			}
			links[link_count].tmp_made = true;
			link_count++;
		}
	}

	/* Seal. */
	p.progress = progress_start("addf", p.job_count, total_bytes);
	err = run_parallel(p.seg_count, threads, seal_segment, &p);
	progress_end(p.progress);
	if (err || p.failed) {
		if (!p.failed)
			cli_error("cannot protect '%s': %s", source, strerror(-err));
		goto out;
	}

	if (hooks && hooks->before_rename && hooks->before_rename(hooks->arg))
		goto out;
	/* Keep what the outputs replace, then put the outputs in place. */
	/* Metadata-bound, one system call each: on all cores too. */
	if (output && (run_parallel(p.job_count, threads, backup_job, &p) ||
		       run_parallel(p.job_count, threads, commit_job, &p)))
		goto out;
	for (size_t i = 0; i < link_count; i++)
		if (place_backup(&links[i], p.job_count + i))
			goto out;
	for (size_t i = 0; i < link_count; i++)
		if (place_commit(&links[i]))
			goto out;
	for (size_t i = dir_count; i-- > 0;) {
		struct timespec ts[2] = { dirs[i].st.st_atim, dirs[i].st.st_mtim };

		if ((geteuid() == 0 &&
		     chown(dirs[i].path, dirs[i].st.st_uid, dirs[i].st.st_gid) < 0) ||
		    chmod(dirs[i].path, dirs[i].st.st_mode & 07777) < 0 ||
		    utimensat(AT_FDCWD, dirs[i].path, ts, 0) < 0) {
			cli_error("cannot set the mode of '%s': %s", dirs[i].path,
				  strerror(errno));
			goto out;
		}
	}
	/* The commit point: after it, nothing is undone. */
	if (hooks && hooks->after_rename && hooks->after_rename(hooks->arg))
		goto out;
	for (size_t i = 0; i < dir_count; i++)
		dirs[i].created = false; /* keep it */
	ret = 0;
out:
	if (ret) {
		undo(&p, dirs, dir_count, links, link_count);
		if (made_output)
			rmdir(output);
	}
	for (size_t i = 0; i < p.job_count; i++) {
		free(p.jobs[i].src);
		place_free(&p.jobs[i].pl, ret == 0);
		pthread_mutex_destroy(&p.jobs[i].lock);
	}
	for (size_t i = 0; p.buffers && i < threads; i++) {
		if (p.buffers[i])
			fsh_wipe(p.buffers[i], p.seg_bytes); /* plaintext */
		free(p.buffers[i]);
	}
	for (size_t i = 0; dirs && i < dir_count; i++)
		free(dirs[i].path);
	for (size_t i = 0; links && i < link_count; i++)
		place_free(&links[i], ret == 0);
	if (entries) {
		for (size_t i = 0; i < n_entries; i++) {
			free(entries[i].path);
			free(entries[i].target);
		}
	}
	free(entries);
	free(links);
	free(dirs);
	free(p.buffers);
	free(p.segs);
	free(p.jobs);
	items_free(&w.items);
	pthread_mutex_destroy(&p.err_lock);
	return ret;
}
