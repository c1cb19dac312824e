// SPDX-License-Identifier: Apache-2.0
/*
 * libfshield, read-only: a verified view of a protected tree. Protected
 * paths are answered from the fspf alone; a file's bytes are read from the
 * host chunk by chunk and released only after the chunk verified. One
 * verified chunk per open file is cached, so sequential small reads do not
 * verify the same chunk twice.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fshield.h"
#include "fspf.h"

#define EXPORT __attribute__((visibility("default")))

struct fshield_volume {
	struct fspf *fspf;
	char *fspf_path;
	char *root;
	uint8_t tag[FSHIELD_TAG_BYTES];
	fshield_log_fn log;
	void *log_ctx;
};

struct fshield_file {
	struct fshield_volume *vol;
	const struct fspf_entry *entry; /* NULL: not protected, pass-through */
	const struct fspf_region *region;
	int fd;
	pthread_mutex_t lock; /* the context and the cache below */
	struct fsh_aead *aead;
	uint8_t *cache;
	uint64_t cache_index; /* UINT64_MAX: empty */
	size_t cache_size;
};

__attribute__((format(printf, 3, 4))) static void
vol_log(const struct fshield_volume *vol, int level, const char *fmt, ...)
{
	int saved = errno;
	char msg[1024];
	va_list ap;

	if (vol->log) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		vol->log(vol->log_ctx, level, msg);
	}
	errno = saved;
}

EXPORT int fshield_volume_open(const struct fshield_config *cfg,
			       struct fshield_volume **vol_ret)
{
	struct fshield_volume *vol;
	struct fsh_key *key = NULL;
	int err;

	if (!cfg || !cfg->fspf_path ||
	    (!cfg->expected_tag && !(cfg->flags & FSHIELD_NO_ROLLBACK_PROTECTION)))
		return -EINVAL;
	vol = calloc(1, sizeof(*vol));
	if (!vol)
		return -ENOMEM;
	vol->log = cfg->log;
	vol->log_ctx = cfg->log_ctx;
	vol->fspf_path = strdup(cfg->fspf_path);
	vol->root = strdup(cfg->root ? cfg->root : "/");
	if (!vol->fspf_path || !vol->root) {
		err = -ENOMEM;
		goto fail;
	}
	if (cfg->key) {
		err = fsh_key_new(FSHIELD_KEY_BYTES, &key);
		if (err)
			goto fail;
		memcpy(fsh_key_bytes_mut(key), cfg->key, FSHIELD_KEY_BYTES);
	}
	err = fspf_load(cfg->fspf_path, key, &vol->fspf, vol->tag);
	if (err) {
		vol_log(vol, FSHIELD_LOG_ERR, "cannot open '%s': %s",
			cfg->fspf_path, fspf_strerror(err));
		goto fail;
	}
	if (!fspf_is_encrypted(vol->fspf)) {
		/* Anyone can seal one, with any tag: a key or tag proves nothing. */
		if (key || cfg->expected_tag ||
		    !(cfg->flags & FSHIELD_ALLOW_UNENCRYPTED)) {
			vol_log(vol, FSHIELD_LOG_ERR,
				"refusing '%s': it was never encrypted, so anyone could have written it%s",
				cfg->fspf_path,
				key || cfg->expected_tag
					? " (a key or an expected tag proves nothing for it)"
					: "");
			err = -EPERM;
			goto fail;
		}
		vol_log(vol, FSHIELD_LOG_WARNING,
			"DEBUG ONLY: '%s' is not encrypted: nothing read through it is protected",
			cfg->fspf_path);
	}
	if (cfg->expected_tag &&
	    !fsh_memeq(cfg->expected_tag, vol->tag, FSHIELD_TAG_BYTES)) {
		vol_log(vol, FSHIELD_LOG_ERR,
			"refusing '%s': its tag is not the expected one: suspected rollback or tampering",
			cfg->fspf_path);
		err = -ESTALE;
		goto fail;
	}
	if (!cfg->expected_tag)
		vol_log(vol, FSHIELD_LOG_WARNING,
			"'%s' opened without an expected tag: a rollback to an older state cannot be detected",
			cfg->fspf_path);
	fsh_key_free(key);
	*vol_ret = vol;
	return 0;
fail:
	fsh_key_free(key);
	fshield_volume_close(vol);
	return err;
}

EXPORT const char *fshield_strerror(int err)
{
	switch (err) {
	case -ESTALE:
		return "its tag is not the expected one: suspected rollback or tampering";
	case -EPERM:
		return "the fspf was never encrypted: anyone could have written it";
	case -EIO:
		return "verification failed";
	default:
		return fspf_strerror(err);
	}
}

EXPORT void fshield_volume_close(struct fshield_volume *vol)
{
	if (!vol)
		return;
	fspf_free(vol->fspf);
	free(vol->fspf_path);
	free(vol->root);
	free(vol);
}

EXPORT void fshield_volume_tag(const struct fshield_volume *vol,
			       uint8_t tag[FSHIELD_TAG_BYTES])
{
	memcpy(tag, vol->tag, FSHIELD_TAG_BYTES);
}

/* What a path is to the shield. */
struct where {
	const struct fspf_region *region; /* NULL: outside every region */
	const struct fspf_entry *entry;   /* protected and recorded */
	size_t entry_index;
	bool is_protected;		  /* answered from the fspf */
	bool synthetic_dir;		  /* an embed point or above one */
};

static bool is_protected_region(const struct fspf_region *r)
{
	return r->protection != FSPF_NOT_PROTECTED || r->storage != FSPF_KERNEL;
}

/* True when some region's embed point lies strictly below @path. */
static bool above_embed_point(const struct fspf *f, const char *path)
{
	for (size_t i = 0; i < fspf_region_count(f); i++) {
		const char *rp = fspf_region(f, i)->path;

		if (strcmp(rp, path) && fspf_path_contains(path, rp))
			return true;
	}
	return false;
}

static int locate(struct fshield_volume *vol, const char *path,
		  struct where *w)
{
	size_t ri;

	memset(w, 0, sizeof(*w));
	if (!fspf_path_valid(path, strlen(path)))
		return -EINVAL;
	if (fspf_region_lookup(vol->fspf, path, &ri)) {
		/* No region (an fspf without "/"): only the way to an embed point. */
		if (!above_embed_point(vol->fspf, path))
			return -ENOENT;
		w->is_protected = w->synthetic_dir = true;
		return 0;
	}
	w->region = fspf_region(vol->fspf, ri);
	if (!is_protected_region(w->region))
		return 0;
	w->is_protected = true;
	w->entry = fspf_entry_find(vol->fspf, path);
	if (w->entry) {
		w->entry_index = (size_t)(w->entry - fspf_entry(vol->fspf, 0));
		return 0;
	}
	if (!strcmp(path, w->region->path) || above_embed_point(vol->fspf, path)) {
		w->synthetic_dir = true;
		return 0;
	}
	return -ENOENT;
}

static int host_path(struct fshield_volume *vol, const struct where *w,
		     const char *path, char *out, size_t size)
{
	return fspf_host_path(vol->root, vol->fspf_path, w->region, path, out,
			      size);
}

static void entry_stat(const struct where *w, struct stat *st)
{
	const struct fspf_entry *e = w->entry;

	memset(st, 0, sizeof(*st));
	if (!e) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		st->st_blksize = 4096;
		return;
	}
	st->st_ino = w->entry_index + 1;
	st->st_mode = (e->type == FSPF_FILE  ? S_IFREG :
		       e->type == FSPF_DIR ? S_IFDIR :
					     S_IFLNK) |
		      e->mode;
	st->st_nlink = e->type == FSPF_DIR ? 2 : 1;
	st->st_uid = e->uid;
	st->st_gid = e->gid;
	st->st_size = (off_t)e->size;
	st->st_blksize = w->region && w->region->chunk_size
				 ? (blksize_t)w->region->chunk_size
				 : 4096;
	st->st_blocks = (blkcnt_t)((e->size + 511) / 512);
	st->st_mtim.tv_sec = e->mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = e->mtime_ns % 1000000000;
	if (st->st_mtim.tv_nsec < 0) {
		st->st_mtim.tv_sec--;
		st->st_mtim.tv_nsec += 1000000000;
	}
	st->st_atim = st->st_ctim = st->st_mtim;
}

EXPORT int fshield_stat(struct fshield_volume *vol, const char *path,
			struct stat *st)
{
	char host[PATH_MAX];
	struct where w;
	int err = locate(vol, path, &w);

	if (err)
		return err;
	if (w.is_protected) {
		entry_stat(&w, st);
		return 0;
	}
	err = host_path(vol, &w, path, host, sizeof(host));
	if (err)
		return err;
	return lstat(host, st) < 0 ? -errno : 0;
}

struct names {
	char **v;
	size_t count, cap;
};

static int names_add(struct names *n, const char *name, size_t len)
{
	if (n->count == n->cap) {
		size_t cap = n->cap ? 2 * n->cap : 32;
		char **v = realloc(n->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		n->v = v;
		n->cap = cap;
	}
	n->v[n->count] = strndup(name, len);
	if (!n->v[n->count])
		return -ENOMEM;
	n->count++;
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The name of the first component of @path below @dir. */
static const char *child_name(const char *dir, const char *path, size_t *len)
{
	const char *rest, *slash;

	if (!fspf_path_contains(dir, path))
		return NULL;
	rest = path + (strcmp(dir, "/") ? strlen(dir) : 0);
	if (*rest != '/' || !rest[1])
		return NULL;
	rest++;
	slash = strchr(rest, '/');
	*len = slash ? (size_t)(slash - rest) : strlen(rest);
	return rest;
}

EXPORT int fshield_readdir(struct fshield_volume *vol, const char *path,
			   fshield_dir_fn fn, void *ctx)
{
	struct names names = { 0 };
	char host[PATH_MAX], child[FSPF_PATH_MAX_BYTES + NAME_MAX + 2];
	struct where w;
	struct stat st;
	int err = locate(vol, path, &w);
	size_t len;

	if (err)
		return err;
	if (w.is_protected) {
		size_t first, end;

		if (w.entry && w.entry->type != FSPF_DIR)
			return -ENOTDIR;
		fspf_entry_range(vol->fspf, path, &first, &end);
		for (size_t i = first; !err && i < end; i++) {
			const char *name = child_name(
				path, fspf_entry(vol->fspf, i)->path, &len);

			if (name && !name[len])
				err = names_add(&names, name, len);
		}
	} else {
		DIR *d;
		struct dirent *de;

		err = host_path(vol, &w, path, host, sizeof(host));
		if (err)
			return err;
		d = opendir(host);
		if (!d)
			return -errno;
		while (!err && (errno = 0, de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				err = names_add(&names, de->d_name,
						strlen(de->d_name));
		if (!err && errno)
			err = -errno;
		closedir(d);
	}
	/* Embed points below: the way to every region is listed. */
	for (size_t i = 0; !err && i < fspf_region_count(vol->fspf); i++) {
		const char *rp = fspf_region(vol->fspf, i)->path;
		const char *name = child_name(path, rp, &len);

		if (name)
			err = names_add(&names, name, len);
	}
	if (!err && names.count)
		qsort(names.v, names.count, sizeof(*names.v), name_cmp);
	for (size_t i = 0; !err && i < names.count; i++) {
		if (i && !strcmp(names.v[i], names.v[i - 1]))
			continue;
		snprintf(child, sizeof(child), "%s/%s",
			 strcmp(path, "/") ? path : "", names.v[i]);
		if (fshield_stat(vol, child, &st))
			continue; /* vanished from the host, or not valid */
		err = fn(ctx, names.v[i], &st);
	}
	for (size_t i = 0; i < names.count; i++)
		free(names.v[i]);
	free(names.v);
	return err;
}

EXPORT ssize_t fshield_readlink(struct fshield_volume *vol, const char *path,
				char *buf, size_t size)
{
	char host[PATH_MAX];
	struct where w;
	int err = locate(vol, path, &w);
	ssize_t n;

	if (err)
		return err;
	if (!size)
		return -EINVAL;
	if (w.is_protected) {
		size_t len;

		if (!w.entry || w.entry->type != FSPF_SYMLINK)
			return -EINVAL;
		len = strlen(w.entry->target);
		snprintf(buf, size, "%s", w.entry->target);
		return (ssize_t)len;
	}
	err = host_path(vol, &w, path, host, sizeof(host));
	if (err)
		return err;
	n = readlink(host, buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return n;
}

EXPORT int fshield_open(struct fshield_volume *vol, const char *path,
			int flags, struct fshield_file **file_ret)
{
	char host[PATH_MAX];
	struct fshield_file *f;
	struct where w;
	struct stat st;
	int err;

	if ((flags & O_ACCMODE) != O_RDONLY ||
	    (flags & (O_CREAT | O_TRUNC | O_APPEND)))
		return -EROFS;
	err = locate(vol, path, &w);
	if (err)
		return err;
	if (w.is_protected && (!w.entry || w.entry->type == FSPF_DIR))
		return -EISDIR;
	if (w.is_protected && w.entry->type != FSPF_FILE)
		return -ELOOP; /* a symlink: the caller resolves it */
	err = host_path(vol, &w, path, host, sizeof(host));
	if (err)
		return err;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->vol = vol;
	f->fd = -1;
	f->cache_index = UINT64_MAX;
	pthread_mutex_init(&f->lock, NULL);
	f->fd = open(host, O_RDONLY | O_CLOEXEC | O_NOCTTY |
				   (w.is_protected ? O_NOFOLLOW | O_NONBLOCK : 0));
	if (f->fd < 0) {
		err = -errno;
		if (w.is_protected) {
			/* Recorded but gone or unopenable: the store was changed. */
			vol_log(vol, FSHIELD_LOG_ERR,
				"verification of file %s failed: cannot open its stored form %s: %s",
				path, host, strerror(-err));
			err = -EIO;
		}
		goto fail;
	}
	if (w.is_protected) {
		f->entry = w.entry;
		f->region = w.region;
		if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    (uint64_t)st.st_size != w.entry->size) {
			vol_log(vol, FSHIELD_LOG_ERR,
				"verification of file %s failed: its stored size or type is not the recorded one (%s)",
				path, host);
			err = -EIO;
			goto fail;
		}
		err = fsh_aead_new(fspf_entry_key(vol->fspf, w.entry),
				   w.region->key_size, &f->aead);
		if (err)
			goto fail;
		f->cache = malloc(w.region->chunk_size);
		if (!f->cache) {
			err = -ENOMEM;
			goto fail;
		}
	}
	*file_ret = f;
	return 0;
fail:
	fshield_close(f);
	return err;
}

/* Chunk @idx of @f, verified, in f->cache. Called with f->lock held. */
static int load_chunk(struct fshield_file *f, uint64_t idx)
{
	const struct fspf_region *r = f->region;
	uint64_t off = idx * r->chunk_size;
	size_t len = f->entry->size - off < r->chunk_size
			     ? (size_t)(f->entry->size - off)
			     : r->chunk_size;
	size_t got = 0;
	int err;

	if (f->cache_index == idx)
		return 0;
	f->cache_index = UINT64_MAX;
	while (got < len) {
		ssize_t n = pread(f->fd, f->cache + got, len - got,
				  (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			vol_log(f->vol, FSHIELD_LOG_ERR,
				"cannot read chunk %llu of file %s: %s",
				(unsigned long long)idx, f->entry->path,
				strerror(-err));
			return -EIO;
		}
		got += (size_t)n;
	}
	err = fspf_chunk_open(f->aead, r, f->entry, idx, f->cache, f->cache,
			      len);
	if (err) {
		vol_log(f->vol, FSHIELD_LOG_ERR,
			"Verification of file chunk %llu (bytes %llu to %llu) of file %s failed.",
			(unsigned long long)idx, (unsigned long long)off,
			(unsigned long long)(off + len - 1), f->entry->path);
		return -EIO;
	}
	f->cache_index = idx;
	f->cache_size = len;
	return 0;
}

EXPORT ssize_t fshield_pread(struct fshield_file *f, void *buf, size_t size,
			     uint64_t offset)
{
	uint8_t *out = buf;
	size_t done = 0;
	int err = 0;

	if (!f->entry) {
		ssize_t n;

		do
			n = pread(f->fd, buf, size, (off_t)offset);
		while (n < 0 && errno == EINTR);
		return n < 0 ? -errno : n;
	}
	if (offset >= f->entry->size)
		return 0;
	if (size > f->entry->size - offset)
		size = (size_t)(f->entry->size - offset);
	pthread_mutex_lock(&f->lock);
	while (done < size) {
		uint64_t pos = offset + done;
		uint64_t idx = pos / f->region->chunk_size;
		size_t in = (size_t)(pos % f->region->chunk_size), n;

		err = load_chunk(f, idx);
		if (err)
			break;
		n = f->cache_size - in < size - done ? f->cache_size - in
						     : size - done;
		memcpy(out + done, f->cache + in, n);
		done += n;
	}
	pthread_mutex_unlock(&f->lock);
	/* Verified bytes before a bad chunk are returned; the next read fails. */
	return done ? (ssize_t)done : err;
}

EXPORT int fshield_fstat(struct fshield_file *f, struct stat *st)
{
	if (!f->entry)
		return fstat(f->fd, st) < 0 ? -errno : 0;
	{
		struct where w = { f->region, f->entry,
				   (size_t)(f->entry - fspf_entry(f->vol->fspf, 0)),
				   true, false };

		entry_stat(&w, st);
	}
	return 0;
}

EXPORT void fshield_close(struct fshield_file *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	fsh_aead_free(f->aead);
	if (f->cache && f->region)
		fsh_wipe(f->cache, f->region->chunk_size);
	free(f->cache);
	pthread_mutex_destroy(&f->lock);
	free(f);
}
