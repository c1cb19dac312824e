// SPDX-License-Identifier: Apache-2.0
/*
 * libfshield: a verified view of a protected tree, and writes through it.
 *
 * Protected paths are answered from the fspf alone; a file's bytes are read
 * from the host chunk by chunk and released only after the chunk verified.
 * A write seals whole chunks (merging the verified bytes around it), writes
 * them in place on the host and then records their nonces and tags in the
 * in-memory fspf; a commit writes the fspf atomically and yields the new
 * root tag. See fshield(3).
 *
 * Small writes are written back: a write within one chunk goes into the
 * node's cached plaintext of that chunk, which is sealed once when the node
 * needs another chunk, on fsync, on close of a handle that wrote, and
 * before a commit. The fspf's entry (size and records) always matches the
 * host; only the node's logical size may be ahead of it, by the dirty chunk.
 *
 * Locks: vol->lock (a rwlock) guards the fspf model, the list of open
 * nodes and the commit state; node->lock guards a file's data (its host
 * file, cache and chunk records: only a holder of node->lock changes a
 * file's records). Order: node->lock before vol->lock.
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
#include <ftw.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fshield.h"
#include "fspf.h"
#include "journal.h"
#include "pool_i.h"

#define EXPORT __attribute__((visibility("default")))

/* A write seals and writes at most this much at a time (at least a chunk). */
#define SEGMENT_BYTES (256u << 10)

/*
 * With a tag file, the newest fspf lives in a slot file between commits;
 * it is renamed into place at close and after this many commits, so that
 * the fspf itself is never far behind (for readers without the tag).
 */
#define SLOT_RENAME_COMMITS 64u

/*
 * The tag file is rewritten at every commit but synced only at every this
 * many and at close: a crash may leave it naming one of the last this
 * many states, each in the lineage of the newest (FSPF_LINEAGE_MAX), so
 * that the next open with its tag finds the newest. See commit_locked().
 */
#define TAG_SYNC_COMMITS 8u
_Static_assert(TAG_SYNC_COMMITS <= FSPF_LINEAGE_MAX,
	       "a lagging tag file must stay in the lineage");

/* A file the volume keeps open, known by its inode (see held()). */
struct held_file {
	int fd;
	dev_t dev;
	ino_t ino;
};

struct node;

struct fshield_volume {
	pthread_rwlock_t lock;
	struct fspf *fspf;
	char *fspf_path;
	char *root;
	char *tag_path;		/* where each new tag goes, or NULL */
	struct fsh_key *key;	/* kept to seal commits; NULL: zero key */
	unsigned flags;
	int lock_fd;		/* flock of <fspf>.lock, or -1; the journal */
	uint64_t journal_len;	/* bytes of journal in it */
	unsigned lock_wait_ms;	/* how long to wait for the lock */
	bool dirty;		/* the model differs from the stored fspf */
	/*
	 * The writer's lock let go by fshield_volume_suspend(): the model is
	 * kept for its regions only (fshield_is_protected()); everything
	 * else is -EBUSY until fshield_volume_resume().
	 */
	bool suspended;
	/*
	 * What the next commit makes durable on the host (see sync_changes()):
	 * host directories whose entries changed, the descriptors of files
	 * written and closed since; @sync_all when they did not fit.
	 */
	char *dirs[64];
	size_t dir_count;
	struct held_file closed[16];
	size_t closed_count;
	bool sync_all;
	/*
	 * Commits with a tag file (see commit_locked()): the two slot files
	 * <fspf>.tmp.0 and .1, the one whose state the tag file names (-1:
	 * the fspf itself), the commits since the fspf was last put in place,
	 * and the tag file once this volume wrote it, with the commits whose
	 * tag it holds unsynced. @slots_pinned: a tag write failed, so the
	 * tag file may name either slot: the next commit goes by rename.
	 */
	struct held_file slot[2], tag_file;
	int slot_cur;
	unsigned slot_commits, tag_unsynced;
	bool slots_pinned;
	uint8_t tag[FSHIELD_TAG_BYTES];
	struct node *nodes;	/* open protected files */
	struct fspf *eph;	/* ephemeral regions' entries, or NULL */
	struct reserved {	/* our own files: see host_guard() */
		dev_t dev;
		ino_t ino;
		char name[NAME_MAX + 1];
		bool prefix;
	} reserved[5];
	size_t reserved_count;
	char *eph_dir;		/* their private backing directory */
	fshield_log_fn log;
	void *log_ctx;
	bool pool_ref;		/* counted by fshield_pool_ref() */
};

/*
 * An open protected file, shared by all its handles. Once unlinked it keeps
 * its entry (@orphan) so that its handles still read and write it.
 */
struct node {
	struct node *prev, *next;	/* vol->lock */
	unsigned refs;			/* vol->lock */
	char *path;			/* vol->lock; NULL once unlinked */
	struct fspf *model;		/* vol->fspf or vol->eph */
	struct fspf_entry orphan;	/* vol->lock; valid once unlinked */
	uint8_t id[FSPF_ID_BYTES];
	const struct fspf_region *region;
	int fd;
	/*
	 * What follows and the file's data: held for writing by everything
	 * but reads of whole clean chunks, which share it (read_shared()).
	 */
	pthread_rwlock_t lock;
	struct fsh_aead *aead;
	uint8_t *cache;			/* a verified chunk's plaintext */
	uint64_t cache_index;		/* UINT64_MAX: empty */
	size_t cache_size;
	bool cache_dirty;		/* newer than the host and the records */
	bool host_dirty;		/* vol->lock; written since the commit */
	uint64_t last_bad;		/* __atomic: the chunk last logged bad */
	uint64_t size;			/* logical size; __atomic, read unlocked */
	int64_t mtime_ns;		/* __atomic; of a write not yet recorded, 0 */
	uint8_t *plain, *sealed;	/* segment buffers of a write */
	size_t seg_bytes;
	pthread_mutex_t pool_lock;	/* contexts of shared readers */
	struct fsh_aead *pool[4];
	size_t pool_count;
};

struct fshield_file {
	struct fshield_volume *vol;
	struct node *node;	/* NULL: not protected, pass-through */
	int fd;			/* pass-through only */
	int flags;
	bool written;
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

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool writable(const struct fshield_volume *vol)
{
	return vol->flags & FSHIELD_WRITABLE;
}

/* ---- volume ---- */

/*
 * One writer at a time: a writable volume holds an exclusive flock of
 * <fspf>.lock, a read-only one a shared one when it can (it still opens
 * where the lock file cannot be created, e.g. a read-only image).
 */
/*
 * flock(@fd, @op), waiting up to @wait_ms for another holder to let go
 * (polled: flock() itself cannot time out). -1 with errno EWOULDBLOCK when
 * it did not.
 */
static int lock_wait(int fd, int op, unsigned wait_ms)
{
	uint64_t waited_us = 0, step_us = 1000;

	for (;;) {
		if (flock(fd, op | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK || waited_us >= wait_ms * 1000ull)
			return -1;
		usleep((useconds_t)step_us);
		waited_us += step_us;
		if (step_us < 50000)
			step_us *= 2;
	}
}

/*
 * The tag in tag file @path (32 hex digits, white space around them, as
 * the runtime writes it: a newline after): 0, -ENOENT when there is no
 * such file, -EINVAL when it holds no tag, or the errno.
 */
static int read_tag_file(const char *path, uint8_t tag[FSHIELD_TAG_BYTES])
{
	char text[128]; /* a tag line with white space around, no more */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = pread(fd, text, sizeof(text), 0);
	close(fd);
	if (n < 0)
		return -errno;
	/* the same parser as scone-fspf's and the preload's (fuzz_hex.c) */
	if ((size_t)n == sizeof(text) ||
	    fsh_hex_decode(text, (size_t)n, tag, FSHIELD_TAG_BYTES))
		return -EINVAL;
	return 0;
}

/*
 * @fd moved near the top of the descriptor range (below RLIMIT_NOFILE's
 * soft limit and 1024), where programs do not pick numbers of their own:
 * a shell's "exec 3>file" would otherwise close a descriptor of ours
 * whose number it took for free (and with it, our lock). Unchanged when
 * there is no room.
 */
static int fd_high(int fd)
{
	struct rlimit rl;
	rlim_t top;
	int moved;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return fd;
	top = rl.rlim_cur < 1024 ? rl.rlim_cur : 1024;
	if (top < 128)
		return fd;
	moved = fcntl(fd, F_DUPFD_CLOEXEC, (int)(top - 64));
	if (moved < 0)
		return fd;
	close(fd);
	return moved;
}

static int take_lock(struct fshield_volume *vol)
{
	bool rw = writable(vol);
	char *path;
	int fd;

	if (asprintf(&path, "%s.lock", vol->fspf_path) < 0)
		return -ENOMEM;
	fd = open(path, (rw ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC |
				O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0) {
		int err = -errno;

		if (rw) {
			vol_log(vol, FSHIELD_LOG_ERR,
				"cannot create the lock file '%s': %s", path,
				strerror(-err));
			free(path);
			return err;
		}
		free(path);
		return 0;
	}
	if (lock_wait(fd, rw ? LOCK_EX : LOCK_SH, vol->lock_wait_ms) < 0) {
		int err = errno == EWOULDBLOCK ? -EBUSY : -errno;

		vol_log(vol, FSHIELD_LOG_ERR,
			"cannot lock '%s': %s", vol->fspf_path,
			err == -EBUSY ? (rw ? "it is open elsewhere (one writer at a time)"
					    : "another process is writing it")
				      : strerror(-err));
		close(fd);
		free(path);
		return err;
	}
	free(path);
	vol->lock_fd = fd_high(fd);
	return 0;
}

static void reserve(struct fshield_volume *vol, const char *path,
		    const char *suffix, bool prefix);
static void journal_replay(struct fshield_volume *vol);
static int host_mkdirs(struct fshield_volume *vol, const struct fspf *model,
		       char *host);

static int remove_one(const char *path, const struct stat *st, int type,
		      struct FTW *ftw)
{
	return (type == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? -1 : 0;
}

/* As remove_one(), going on past what cannot be removed. */
static int remove_tree(const char *path, const struct stat *st, int type,
		       struct FTW *ftw)
{
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/*
 * Ephemeral regions live in memory: each is the twin of an encrypted
 * region whose chunks go to a private directory in /dev/shm (tmpfs), under
 * keys that never leave this process, with entries in a model of its own
 * that is never stored. Empty at every open, removed at close.
 */
static int eph_setup(struct fshield_volume *vol)
{
	const char *base = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm"
								: P_tmpdir;
	bool has_root = false;
	size_t count = 0;
	int err;

	for (size_t i = 0; i < fspf_region_count(vol->fspf); i++) {
		const struct fspf_region *r = fspf_region(vol->fspf, i);

		if (r->storage == FSPF_EPHEMERAL) {
			count++;
			has_root |= !strcmp(r->path, "/");
		}
	}
	if (!count)
		return 0;
	if (asprintf(&vol->eph_dir, "%s/fshield-eph-XXXXXX", base) < 0) {
		vol->eph_dir = NULL;
		return -ENOMEM;
	}
	if (!mkdtemp(vol->eph_dir)) {
		err = -errno;
		vol_log(vol, FSHIELD_LOG_ERR,
			"cannot create the memory of the ephemeral regions in %s: %s",
			base, strerror(errno));
		free(vol->eph_dir);
		vol->eph_dir = NULL;
		return err;
	}
	vol_log(vol, FSHIELD_LOG_DEBUG, "ephemeral regions in %s", vol->eph_dir);
	err = fspf_new(&vol->eph);
	if (!err && !has_root) { /* the model's rules want "/"; never used */
		char kernel[PATH_MAX];
		struct fspf_region root = { (char *)"/", kernel,
					    FSPF_NOT_PROTECTED, FSPF_KERNEL,
					    0, 0 };
		const char *why;

		snprintf(kernel, sizeof(kernel), "%s/unused", vol->eph_dir);
		err = fspf_region_add(vol->eph, &root, &why);
	}
	for (size_t i = 0; !err && i < fspf_region_count(vol->fspf); i++) {
		const struct fspf_region *r = fspf_region(vol->fspf, i);
		char kernel[PATH_MAX];
		struct fspf_region twin = {
			r->path, kernel, FSPF_ENCRYPTED, FSPF_KERNEL,
			FSPF_DEFAULT_FILE_KEY_BYTES,
			r->chunk_size ? r->chunk_size : FSPF_DEFAULT_CHUNK_BYTES,
		};
		const char *why = NULL;

		if (r->storage != FSPF_EPHEMERAL)
			continue;
		snprintf(kernel, sizeof(kernel), "%s/r%zu", vol->eph_dir, i);
		if (mkdir(kernel, 0700) < 0)
			err = -errno;
		else if ((err = fspf_region_add(vol->eph, &twin, &why)))
			vol_log(vol, FSHIELD_LOG_ERR,
				"ephemeral region %s: %s", r->path,
				why ? why : strerror(-err));
	}
	return err;
}

static void eph_remove(struct fshield_volume *vol)
{
	if (vol->eph_dir && nftw(vol->eph_dir, remove_one, 16,
				 FTW_DEPTH | FTW_PHYS) < 0)
		vol_log(vol, FSHIELD_LOG_WARNING,
			"cannot remove the ephemeral regions' directory %s: %s",
			vol->eph_dir, strerror(errno));
	fspf_free(vol->eph);
	free(vol->eph_dir);
}

/*
 * Load the state to open at into vol->fspf and vol->tag: the fspf, or a
 * pending fspf beside it (fspf_load_pending()) that has the @expected tag
 * where the fspf does not: a writer that died between naming its new tag
 * (the tag file) and renaming the new fspf into place left it there,
 * complete and synced. With @max_depth (the expected tag is a tag file's,
 * which may lag behind the writer's last commits, see commit_locked()),
 * the state that descends furthest from @expected, up to @max_depth
 * commits, whichever file holds it. A writer puts a pending state it
 * takes in place.
 * *@depth_ret: the commits from @expected to the state taken, -1 when it
 * is not the expected one nor descends from it (the caller refuses it).
 * Return: 0, or the error of loading the fspf when no file had the state.
 */
static int load_state(struct fshield_volume *vol, const uint8_t *expected,
		      unsigned int max_depth, int *depth_ret)
{
	uint8_t ptag[FSHIELD_TAG_BYTES];
	unsigned int pdepth;
	struct fspf *pf;
	char *pending;
	int depth = -1, err;

	err = fspf_load(vol->fspf_path, vol->key, &vol->fspf, vol->tag);
	if (!err && expected) {
		depth = fspf_descent(vol->fspf, vol->tag, expected);
		if (depth > (int)max_depth)
			depth = -1;
	}
	*depth_ret = depth;
	if (!expected || (depth == 0 && !max_depth) ||
	    fspf_load_pending(vol->fspf_path, vol->key, expected, max_depth,
			      &pf, ptag, &pdepth, &pending))
		return err;
	/*
	 * Two files as far from @expected are the same state, or one whose
	 * commit never returned (a failed tag write, then a commit by
	 * rename): either will do.
	 */
	if ((int)pdepth <= depth) {
		/* the fspf is as new: the slot is one it replaced */
		fspf_free(pf);
		free(pending);
		return err;
	}
	if (writable(vol) && rename(pending, vol->fspf_path) < 0) {
		/*
		 * Refused, not opened at the older state in place: a writer
		 * would then remove the slot that holds the newer, committed
		 * one (remove_stale_commits()).
		 */
		int rerr = -errno;

		vol_log(vol, FSHIELD_LOG_ERR,
			"cannot complete the interrupted commit of '%s' (%s): %s",
			vol->fspf_path, pending, strerror(-rerr));
		fspf_free(pf);
		free(pending);
		fspf_free(vol->fspf);
		vol->fspf = NULL;
		*depth_ret = -1;
		return rerr;
	}
	vol_log(vol, FSHIELD_LOG_WARNING,
		"'%s': %s the interrupted commit of %s (%s)", vol->fspf_path,
		writable(vol) ? "completed" : "reading",
		pdepth ? "a state newer than the tag file's" : "its expected tag",
		pending);
	fspf_free(vol->fspf);
	vol->fspf = pf;
	memcpy(vol->tag, ptag, FSHIELD_TAG_BYTES);
	*depth_ret = (int)pdepth;
	free(pending);
	return 0;
}

static int write_tag_file(struct fshield_volume *vol);

/*
 * The state taken is @depth commits newer than the tag file named (a
 * writer stopped before it synced its tag file): say so, and (a writer)
 * name it there again, synced.
 */
static int tag_file_caught_up(struct fshield_volume *vol, int depth)
{
	char hex[2 * FSHIELD_TAG_BYTES + 1];

	if (depth <= 0)
		return 0;
	fsh_hex_encode(vol->tag, FSHIELD_TAG_BYTES, hex);
	vol_log(vol, FSHIELD_LOG_WARNING,
		"'%s': took its newest state %s, %d commit%s after the one its tag file names (the last writer stopped before it synced the tag file)",
		vol->fspf_path, hex, depth, depth == 1 ? "" : "s");
	return writable(vol) && vol->tag_path ? write_tag_file(vol) : 0;
}

/* Temporary files of commits that never completed: ours to remove. */
static void remove_stale_commits(struct fshield_volume *vol)
{
	const char *slash = strrchr(vol->fspf_path, '/');
	const char *base = slash ? slash + 1 : vol->fspf_path;
	char dir[PATH_MAX], path[PATH_MAX + NAME_MAX + 2];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%.*s",
		 slash ? (int)(slash - vol->fspf_path + 1) : 1,
		 slash ? vol->fspf_path : ".");
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, base, strlen(base)) ||
		    strncmp(de->d_name + strlen(base), ".tmp.", 5))
			continue;
		snprintf(path, sizeof(path), "%s%s", slash ? dir : "",
			 de->d_name);
		if (unlink(path) == 0)
			vol_log(vol, FSHIELD_LOG_INFO,
				"removed %s, left by a commit that never completed",
				path);
	}
	closedir(d);
}

EXPORT int fshield_volume_open(const struct fshield_config *cfg,
			       struct fshield_volume **vol_ret)
{
	const uint8_t *expected = cfg ? cfg->expected_tag : NULL;
	unsigned int max_depth = cfg && (cfg->flags & FSHIELD_TAG_OR_NEWER)
					 ? FSPF_LINEAGE_MAX
					 : 0;
	uint8_t file_tag[FSHIELD_TAG_BYTES];
	struct fshield_volume *vol;
	pthread_rwlockattr_t attr;
	int depth, err;

	if (!cfg || !cfg->fspf_path ||
	    (!cfg->expected_tag && !(cfg->flags & FSHIELD_NO_ROLLBACK_PROTECTION)) ||
	    (cfg->tag_path && !(cfg->flags & FSHIELD_WRITABLE)) ||
	    ((cfg->flags & FSHIELD_TAG_EXACT) &&
	     (cfg->flags & FSHIELD_TAG_OR_NEWER)))
		return -EINVAL;
	vol = calloc(1, sizeof(*vol));
	if (!vol)
		return -ENOMEM;
	pthread_rwlockattr_init(&attr);
	/* Writers (record updates) must not starve behind a stream of reads. */
	pthread_rwlockattr_setkind_np(&attr,
				      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&vol->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	vol->lock_fd = -1;
	vol->lock_wait_ms = cfg->lock_wait_ms;
	vol->slot[0].fd = vol->slot[1].fd = vol->tag_file.fd = -1;
	vol->slot_cur = -1;
	vol->flags = cfg->flags;
	vol->log = cfg->log;
	vol->log_ctx = cfg->log_ctx;
	vol->fspf_path = strdup(cfg->fspf_path);
	vol->root = strdup(cfg->root ? cfg->root : "/");
	vol->tag_path = cfg->tag_path ? strdup(cfg->tag_path) : NULL;
	if (!vol->fspf_path || !vol->root || (cfg->tag_path && !vol->tag_path)) {
		err = -ENOMEM;
		goto fail;
	}
	if (cfg->key) {
		err = fsh_key_new(FSHIELD_KEY_BYTES, &vol->key);
		if (err)
			goto fail;
		memcpy(fsh_key_bytes_mut(vol->key), cfg->key, FSHIELD_KEY_BYTES);
	}
	err = take_lock(vol);
	if (err)
		goto fail;
	if ((cfg->flags & FSHIELD_TAG_FROM_FILE) && vol->tag_path) {
		err = read_tag_file(vol->tag_path, file_tag);
		if (!err) {
			expected = file_tag;
			if (!(cfg->flags & FSHIELD_TAG_EXACT))
				max_depth = FSPF_LINEAGE_MAX;
		} else if (err != -ENOENT) {
			goto fail;
		}
	}
	err = load_state(vol, expected, max_depth, &depth);
	if (err) {
		vol_log(vol, FSHIELD_LOG_ERR, "cannot open '%s': %s",
			cfg->fspf_path, fspf_strerror(err));
		goto fail;
	}
	if (!fspf_is_encrypted(vol->fspf)) {
		/* Anyone can seal one, with any tag: a key or tag proves nothing. */
		if (vol->key || expected ||
		    !(cfg->flags & FSHIELD_ALLOW_UNENCRYPTED)) {
			vol_log(vol, FSHIELD_LOG_ERR,
				"refusing '%s': it was never encrypted, so anyone could have written it%s",
				cfg->fspf_path,
				vol->key || expected
					? " (a key or an expected tag proves nothing for it)"
					: "");
			err = -EPERM;
			goto fail;
		}
		vol_log(vol, FSHIELD_LOG_WARNING,
			"DEBUG ONLY: '%s' is not encrypted: nothing read through it is protected",
			cfg->fspf_path);
	}
	if (expected && depth < 0) {
		vol_log(vol, FSHIELD_LOG_ERR,
			"refusing '%s': its tag is not the expected one%s: suspected rollback or tampering",
			cfg->fspf_path,
			max_depth ? " nor that of a state descending from it"
				  : "");
		err = -ESTALE;
		goto fail;
	}
	if (!expected)
		vol_log(vol, FSHIELD_LOG_WARNING,
			"'%s' opened without an expected tag: a rollback to an older state cannot be detected",
			cfg->fspf_path);
	err = eph_setup(vol);
	if (err)
		goto fail;
	err = tag_file_caught_up(vol, depth);
	if (err)
		goto fail;
	if (writable(vol)) { /* we hold the writer's lock */
		remove_stale_commits(vol);
		journal_replay(vol);
	}
	reserve(vol, vol->fspf_path, "", false);
	reserve(vol, vol->fspf_path, ".lock", false);
	reserve(vol, vol->fspf_path, ".tmp.", true);
	reserve(vol, vol->fspf_path, ".locks", false); /* the preload layer's */
	if (vol->tag_path) {
		reserve(vol, vol->tag_path, "", false);
		reserve(vol, vol->tag_path, ".", true);
	}
	fshield_pool_ref();
	vol->pool_ref = true;
	*vol_ret = vol;
	return 0;
fail:
	vol->dirty = false;
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
	case -EBUSY:
		return "the fspf is in use (one writer at a time)";
	case -EROFS:
		return "the volume is read-only";
	default:
		return fspf_strerror(err);
	}
}

/* syncfs() of every host file system holding a kernel region. */
static int sync_regions(struct fshield_volume *vol)
{
	dev_t done[16];
	size_t ndone = 0;
	char host[PATH_MAX];
	int err = 0;

	for (size_t i = 0; i < fspf_region_count(vol->fspf); i++) {
		const struct fspf_region *r = fspf_region(vol->fspf, i);
		struct stat st;
		bool seen = false;
		int fd;

		if (r->storage != FSPF_KERNEL ||
		    fspf_host_path(vol->root, vol->fspf_path, r, r->path, host,
				   sizeof(host)))
			continue;
		fd = open(host, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue; /* nothing written there */
		if (fstat(fd, &st) == 0)
			for (size_t k = 0; k < ndone; k++)
				seen |= done[k] == st.st_dev;
		if (!seen && syncfs(fd) < 0 && !err) {
			err = -errno;
			vol_log(vol, FSHIELD_LOG_ERR,
				"cannot flush the file system of '%s': %s", host,
				strerror(errno));
		}
		if (!seen && ndone < sizeof(done) / sizeof(*done))
			done[ndone++] = st.st_dev;
		close(fd);
	}
	return err;
}

/*
 * Host directory @host/.. changed entries (a create, unlink or rename in a
 * protected region of the stored fspf): the next commit syncs it. Too many
 * of them: the next commit syncs whole file systems instead. vol->lock
 * held for writing.
 */
static void host_changed(struct fshield_volume *vol, const struct fspf *model,
			 const char *host)
{
	const char *slash = strrchr(host, '/');
	char *dir;

	if (model != vol->fspf || !writable(vol) || vol->sync_all)
		return;
	dir = slash == host ? strdup("/")
	      : slash	    ? strndup(host, (size_t)(slash - host))
			    : strdup(".");
	for (size_t i = 0; dir && i < vol->dir_count; i++) {
		if (!strcmp(vol->dirs[i], dir)) {
			free(dir);
			return;
		}
	}
	if (dir && vol->dir_count < sizeof(vol->dirs) / sizeof(*vol->dirs)) {
		vol->dirs[vol->dir_count++] = dir;
		return;
	}
	free(dir);
	vol->sync_all = true;
}

/*
 * Host path @from was renamed to @to: the changed directories at or below
 * it are there now (the same directories, which still need their sync).
 */
static void host_moved(struct fshield_volume *vol, const char *from,
		       const char *to)
{
	size_t len = strlen(from);

	for (size_t i = 0; i < vol->dir_count; i++) {
		char *d = vol->dirs[i], *moved;

		if (strncmp(d, from, len) || (d[len] && d[len] != '/'))
			continue;
		if (asprintf(&moved, "%s%s", to, d + len) < 0) {
			vol->sync_all = true;
			continue;
		}
		free(d);
		vol->dirs[i] = moved;
	}
}

static bool held(const struct held_file *h);
static void hold(struct held_file *h, int fd);
static void drop(struct held_file *h);

static void forget_changes(struct fshield_volume *vol)
{
	for (size_t i = 0; i < vol->dir_count; i++)
		free(vol->dirs[i]);
	vol->dir_count = 0;
	for (size_t i = 0; i < vol->closed_count; i++)
		drop(&vol->closed[i]);
	vol->closed_count = 0;
	vol->sync_all = false;
}

/*
 * Make durable what the new fspf will name, before it is written: the
 * data and size of every file written since the last commit (fdatasync:
 * it covers the size, which reading the data back needs; the host's
 * times and modes are not what a program sees, the fspf's are), and the
 * entries of every host directory changed since (fsync of the directory:
 * a new or renamed file must be found where the fspf says). This is
 * exactly what syncfs() of the regions' file systems gave, without
 * flushing everything else on them (other programs' data: slow and
 * noisy). The files of the ephemeral regions are never committed.
 *
 * Every chunk write and truncate marks its node (host_dirty) under
 * vol->lock after the host call returned, and a commit holds vol->lock
 * for writing: whatever the model names was written before this runs. A
 * file closed since it was written keeps its descriptor for this, up to a
 * few (node_put() syncs it at once when there is no room). A failed sync
 * keeps everything marked and fails the commit. vol->lock held for
 * writing.
 */
static int sync_changes(struct fshield_volume *vol)
{
	int err = 0;

	if (vol->sync_all) {
		err = sync_regions(vol);
		if (!err) {
			for (struct node *n = vol->nodes; n; n = n->next)
				n->host_dirty = false;
			forget_changes(vol);
		}
		return err;
	}
	for (struct node *n = vol->nodes; n; n = n->next) {
		if (!n->host_dirty)
			continue;
		if (fdatasync(n->fd) < 0) {
			err = -errno;
			vol_log(vol, FSHIELD_LOG_ERR, "cannot flush %s: %s",
				n->path ? n->path : "an unlinked file",
				strerror(errno));
			return err;
		}
		n->host_dirty = false;
	}
	for (size_t i = 0; i < vol->closed_count; i++) {
		/* A descriptor the program took over: the file systems. */
		if (!held(&vol->closed[i]))
			err = sync_regions(vol);
		else if (fdatasync(vol->closed[i].fd) < 0)
			err = -errno;
		if (err) {
			vol_log(vol, FSHIELD_LOG_ERR,
				"cannot flush a file written since the last commit: %s",
				strerror(-err));
			return err;
		}
	}
	for (size_t i = 0; i < vol->dir_count; i++) {
		int fd = open(vol->dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		/* Gone since: its parent changed too, and is in the list. */
		if (fd < 0 && errno == ENOENT)
			continue;
		if (fd < 0 || fsync(fd) < 0) {
			err = -errno;
			vol_log(vol, FSHIELD_LOG_ERR,
				"cannot flush the host directory %s: %s",
				vol->dirs[i], strerror(errno));
			if (fd >= 0)
				close(fd);
			return err;
		}
		close(fd);
	}
	forget_changes(vol);
	return 0;
}

/*
 * @h still is the file this volume opened: a program that shares the
 * process (the preload layer) may close any descriptor, or dup2() another
 * file over it, and a file of that number must then never be written.
 */
static bool held(const struct held_file *h)
{
	struct stat st;

	return h->fd >= 0 && fstat(h->fd, &st) == 0 && st.st_dev == h->dev &&
	       st.st_ino == h->ino;
}

static void hold(struct held_file *h, int fd)
{
	struct stat st;

	h->fd = fd;
	if (fstat(fd, &st) == 0) {
		h->dev = st.st_dev;
		h->ino = st.st_ino;
	} else { /* cannot be checked: never written through */
		close(fd);
		h->fd = -1;
	}
}

static void drop(struct held_file *h)
{
	if (held(h))
		close(h->fd);
	h->fd = -1;
}

/* @path names the file @h (stat by name: nothing replaced it since). */
static bool names(const char *path, const struct held_file *h)
{
	struct stat st;

	return stat(path, &st) == 0 && st.st_dev == h->dev &&
	       st.st_ino == h->ino;
}

/* names(), not through a symlink: a slot file is ours, never a link. */
static bool names_itself(const char *path, const struct held_file *h)
{
	struct stat st;

	return lstat(path, &st) == 0 && st.st_dev == h->dev &&
	       st.st_ino == h->ino;
}

/* fsync of the directory that holds @path. */
static int sync_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, err = 0;

	dir = !slash	      ? strdup(".")
	      : slash == path ? strdup("/")
			      : strndup(path, (size_t)(slash - path));
	if (!dir)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		err = -errno;
	if (fd >= 0)
		close(fd);
	free(dir);
	return err;
}

static void tag_line(const struct fshield_volume *vol,
		     char hex[2 * FSHIELD_TAG_BYTES + 2])
{
	fsh_hex_encode(vol->tag, FSHIELD_TAG_BYTES, hex);
	strcat(hex, "\n");
}

/*
 * Replace the tag file with @tag in hex, atomically (a new file, fsync,
 * rename, fsync of its directory), and keep that file open for
 * write_tag() to rewrite in place.
 */
static int write_tag_file(struct fshield_volume *vol)
{
	char hex[2 * FSHIELD_TAG_BYTES + 2], *tmp;
	size_t len;
	int fd, err = 0;

	tag_line(vol, hex);
	len = strlen(hex);
	if (asprintf(&tmp, "%s.XXXXXX", vol->tag_path) < 0)
		return -ENOMEM;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	if (fchmod(fd, 0644) < 0 || write(fd, hex, len) != (ssize_t)len ||
	    fsync(fd) < 0)
		err = errno ? -errno : -EIO;
	if (!err && rename(tmp, vol->tag_path) < 0)
		err = -errno;
	if (err) {
		close(fd);
		unlink(tmp);
		goto out;
	}
	(void)sync_dir_of(vol->tag_path); /* the rename itself durable */
	drop(&vol->tag_file);
	hold(&vol->tag_file, fd);
	vol->tag_unsynced = 0;
out:
	if (err)
		vol_log(vol, FSHIELD_LOG_ERR, "cannot write the tag file '%s': %s",
			vol->tag_path, strerror(-err));
	free(tmp);
	return err;
}

/*
 * Name @tag in the tag file: in place (pwrite of the line at offset 0)
 * when the file at the tag path is still the one this volume wrote last,
 * with the line's size; else by write_tag_file(), synced. In place, the
 * new line is one write of 33 bytes at offset 0, inside the first sector
 * of the file: a power loss leaves one of the lines written there (on
 * devices that write a sector atomically, what PostgreSQL's pg_control
 * and LMDB's meta pages rely on too). It is synced at every
 * TAG_SYNC_COMMITS-th commit, with @sync, and at close (sync_tag()): the
 * commit point is the slot (see commit_locked()). A line torn anyway
 * names no fspf (a tag is not guessable), so the volume is refused,
 * never opened at a wrong state.
 */
static int write_tag(struct fshield_volume *vol, bool sync)
{
	char hex[2 * FSHIELD_TAG_BYTES + 2];
	struct stat st;
	size_t len;

	tag_line(vol, hex);
	len = strlen(hex);
	if (!held(&vol->tag_file) || fstat(vol->tag_file.fd, &st) < 0 ||
	    st.st_size != (off_t)len || !names(vol->tag_path, &vol->tag_file))
		return write_tag_file(vol);
	errno = 0;
	if (pwrite(vol->tag_file.fd, hex, len, 0) != (ssize_t)len ||
	    ((sync || vol->tag_unsynced + 1 >= TAG_SYNC_COMMITS) &&
	     fdatasync(vol->tag_file.fd) < 0)) {
		int err = errno ? -errno : -EIO;

		vol_log(vol, FSHIELD_LOG_ERR,
			"cannot write the tag file '%s': %s", vol->tag_path,
			strerror(-err));
		return err;
	}
	if (sync || ++vol->tag_unsynced >= TAG_SYNC_COMMITS)
		vol->tag_unsynced = 0;
	return 0;
}

/* The tag file's line durable, if a commit left it unsynced. */
static void sync_tag(struct fshield_volume *vol)
{
	if (!vol->tag_unsynced || !held(&vol->tag_file))
		return;
	if (fdatasync(vol->tag_file.fd) < 0)
		vol_log(vol, FSHIELD_LOG_WARNING,
			"cannot sync the tag file '%s': %s (after a crash, the next open takes the newest state that descends from the tag it holds)",
			vol->tag_path, strerror(errno));
	else
		vol->tag_unsynced = 0;
}

static void slot_path(const struct fshield_volume *vol, int k,
		      char path[PATH_MAX])
{
	snprintf(path, PATH_MAX, "%s.tmp.%d", vol->fspf_path, k);
}

/*
 * Slot @k open for writing; *@created when it was made now (a new file
 * from O_EXCL, never someone's file at that name or through a link).
 */
static int open_slot(struct fshield_volume *vol, int k, bool *created)
{
	char path[PATH_MAX];
	int fd;

	*created = false;
	if (held(&vol->slot[k]))
		return 0;
	vol->slot[k].fd = -1; /* gone, or not ours any more */
	slot_path(vol, k, path);
	/* Not the slot the tag file names (that is the other one): free. */
	unlink(path);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
				O_NOCTTY, 0600);
	if (fd < 0)
		return -errno;
	hold(&vol->slot[k], fd);
	if (vol->slot[k].fd < 0) {
		unlink(path);
		return -EIO;
	}
	*created = true;
	return 0;
}

/*
 * Rename the slot whose state the tag file names over the fspf, and
 * forget it (it is the fspf now, never to be rewritten). Not synced: the
 * tag file names that state, so a rename lost in a crash leaves the slot
 * where fspf_load_pending() finds it at the next open.
 */
static void put_in_place(struct fshield_volume *vol)
{
	char path[PATH_MAX];
	int k = vol->slot_cur;

	if (k < 0 || vol->slots_pinned)
		return;
	slot_path(vol, k, path);
	if (!held(&vol->slot[k]) || !names_itself(path, &vol->slot[k]) ||
	    rename(path, vol->fspf_path) < 0) {
		vol_log(vol, FSHIELD_LOG_WARNING,
			"cannot put the newest fspf '%s' in place of '%s' (the next open takes it from there)",
			path, vol->fspf_path);
		return;
	}
	drop(&vol->slot[k]);
	vol->slot_cur = -1;
	vol->slot_commits = 0;
}

/*
 * A commit with a tag file, without creating or renaming anything:
 * the new fspf is written in place into the slot the tag file does not
 * name, then the tag file names it. See commit_locked().
 */
static int commit_slot(struct fshield_volume *vol,
		       uint8_t tag[FSHIELD_TAG_BYTES])
{
	uint8_t old[FSHIELD_TAG_BYTES];
	int k = vol->slot_cur == 0 ? 1 : 0, err;
	bool created;

	err = open_slot(vol, k, &created);
	if (!err)
		err = fspf_store_fd(vol->fspf, vol->slot[k].fd, vol->key,
				    created, tag);
	/* A new name: durable, with every earlier change of the directory. */
	if (!err && created)
		err = sync_dir_of(vol->fspf_path);
	if (err) {
		vol_log(vol, FSHIELD_LOG_ERR, "cannot commit '%s': %s",
			vol->fspf_path, strerror(-err));
		return err;
	}
	memcpy(old, vol->tag, sizeof(old));
	memcpy(vol->tag, tag, FSHIELD_TAG_BYTES);
	err = write_tag(vol, vol->flags & FSHIELD_TAG_EXACT);
	if (err) {
		/* The tag file may name either slot now: keep both. */
		memcpy(vol->tag, old, sizeof(old));
		vol->slots_pinned = true;
		return err;
	}
	vol->slot_cur = k;
	if (++vol->slot_commits >= SLOT_RENAME_COMMITS)
		put_in_place(vol);
	return 0;
}

/*
 * A commit by rename: the new fspf to a new temporary file, then (with a
 * tag file, the commit point) the tag file by rename, then the fspf by
 * rename. See commit_locked().
 */
static int commit_rename(struct fshield_volume *vol,
			 uint8_t tag[FSHIELD_TAG_BYTES])
{
	uint8_t old[FSHIELD_TAG_BYTES];
	struct fspf_pending *pending;
	int err;

	err = fspf_store_begin(vol->fspf, vol->fspf_path, vol->key, &pending,
			       tag);
	if (err) {
		vol_log(vol, FSHIELD_LOG_ERR, "cannot commit '%s': %s",
			vol->fspf_path, strerror(-err));
		return err;
	}
	memcpy(old, vol->tag, sizeof(old));
	memcpy(vol->tag, tag, FSHIELD_TAG_BYTES);
	if (vol->tag_path && (err = write_tag_file(vol))) {
		fspf_store_abort(pending);
		memcpy(vol->tag, old, sizeof(old));
		return err;
	}
	err = vol->tag_path ? fspf_store_rename(pending)
			    : fspf_store_finish(pending);
	if (err) {
		vol_log(vol, FSHIELD_LOG_ERR, "cannot commit '%s': %s",
			vol->fspf_path, strerror(-err));
		memcpy(vol->tag, old, sizeof(old));
		if (vol->tag_path)
			write_tag_file(vol); /* back to the fspf in place */
		return err;
	}
	/* The tag file names the fspf: both slots are free again. */
	vol->slot_cur = -1;
	vol->slots_pinned = false;
	return 0;
}

/*
 * Called with vol->lock held for writing.
 *
 * The order of a commit, and why a crash (a power loss included) at any
 * point leaves a volume that opens at the tag file's tag, at a state at
 * least as new as the last commit that returned:
 *
 * 1. sync_changes(): the data the new fspf names is durable before
 *    anything names it (the new fspf must not name chunks not on disk).
 *
 * 2. With a tag file (commit_slot()): the new fspf is written in place
 *    into the slot file the tag file does not name, <fspf>.tmp.0 or .1
 *    (pwrite, ftruncate, fdatasync; a slot made now: fsync, then fsync of
 *    its directory, so that its name is durable): the commit point. The
 *    new fspf names the tags of the states before it, newest first (its
 *    lineage, fspf(5)). A crash while it is written tears at most that
 *    slot, which holds a state older than the other slot's or the fspf's.
 *
 * 3. The tag file names the new tag (write_tag(): in place, one 33-byte
 *    write in its first sector), synced only at every TAG_SYNC_COMMITS-th
 *    commit and at close (sync_tag()). After a crash it names one of the
 *    last TAG_SYNC_COMMITS states, all in the lineage of the newest
 *    durable one (2), so the next open with its tag takes the newest
 *    state that descends from it (FSHIELD_TAG_OR_NEWER, fspf_descent():
 *    the fspf or a slot, whichever descends furthest; a torn slot does
 *    not verify and is passed over), and a writer names that state in
 *    the tag file again, synced. No file is created or renamed and the
 *    tag file is not synced: one sync besides the data, not five (the
 *    new temporary fspf, the new tag file, the directory, each a journal
 *    commit of its own). An opener given the tag itself (not the tag
 *    file) takes exactly that state, never a newer one. With
 *    FSHIELD_TAG_EXACT (a tag file the host cannot write) the tag file
 *    is synced at every commit and read as an exact tag: its write is
 *    the commit point, as before lineages, and a slot written after the
 *    last one it names is an interrupted commit, removed at the next
 *    writable open.
 *
 * 4. The slot is renamed over the fspf only at close and every
 *    SLOT_RENAME_COMMITS commits (put_in_place(), unsynced: a lost rename
 *    leaves the slot, which descends from the fspf, for the next open).
 *    The next commit then writes the other slot, or makes a new one.
 *
 * Without a tag file, or after a failed tag write (commit_rename()), the
 * new fspf goes to a new temporary file (write, fsync: its name durable
 * with it); with a tag file, the tag file names it by rename (synced:
 * the commit point), then it is renamed over the fspf unsynced, as in 4;
 * without one, its rename over the fspf is the commit point, and synced.
 */
static int commit_locked(struct fshield_volume *vol)
{
	uint8_t tag[FSHIELD_TAG_BYTES];
	uint8_t lineage[FSPF_LINEAGE_MAX][FSHIELD_TAG_BYTES];
	const uint8_t *lineage_tags;
	char hex[2 * FSHIELD_TAG_BYTES + 1];
	size_t lineage_count;
	int err;

	if (!vol->dirty)
		return 0;
	err = sync_changes(vol);
	if (err)
		return err;
	/* The new state names the one it replaces (its lineage). */
	lineage_count = fspf_lineage(vol->fspf, &lineage_tags);
	memcpy(lineage, lineage_tags, lineage_count * FSHIELD_TAG_BYTES);
	fspf_lineage_push(vol->fspf, vol->tag);
	err = vol->tag_path && !vol->slots_pinned ? commit_slot(vol, tag)
						  : commit_rename(vol, tag);
	if (err) {
		fspf_lineage_set(vol->fspf, lineage[0], lineage_count);
		return err;
	}
	vol->dirty = false;
	if (vol->lock_fd >= 0 && vol->journal_len &&
	    ftruncate(vol->lock_fd, 0) == 0)
		vol->journal_len = 0;
	fsh_hex_encode(tag, sizeof(tag), hex);
	vol_log(vol, FSHIELD_LOG_INFO, "committed '%s': new tag %s",
		vol->fspf_path, hex);
	return 0;
}

static int flush_all(struct fshield_volume *vol);
static int flush_cache(struct fshield_volume *vol, struct node *n);
static void live_size(struct fshield_volume *vol, const struct fspf_entry *e,
		      struct stat *st);

EXPORT int fshield_commit(struct fshield_volume *vol,
			  uint8_t tag[FSHIELD_TAG_BYTES])
{
	int err = writable(vol) ? flush_all(vol) : 0;

	if (err)
		return err;
	pthread_rwlock_wrlock(&vol->lock);
	if (writable(vol))
		err = commit_locked(vol);
	if (!err && tag)
		memcpy(tag, vol->tag, FSHIELD_TAG_BYTES);
	pthread_rwlock_unlock(&vol->lock);
	return err;
}

/*
 * At close: the newest state into the fspf's place, the other slot
 * removed (neither synced: the tag file names that state, see
 * put_in_place()); after a failed tag write both stay, for the next
 * open to find the one the tag file names.
 */
static void close_slots(struct fshield_volume *vol)
{
	char path[PATH_MAX];

	sync_tag(vol);
	put_in_place(vol);
	for (int k = 0; k < 2; k++) {
		slot_path(vol, k, path);
		if (k != vol->slot_cur && !vol->slots_pinned &&
		    held(&vol->slot[k]) &&
		    names_itself(path, &vol->slot[k]))
			unlink(path);
		drop(&vol->slot[k]);
	}
	drop(&vol->tag_file);
}

EXPORT int fshield_volume_close(struct fshield_volume *vol)
{
	int err = 0;

	if (!vol)
		return 0;
	if (vol->fspf && writable(vol)) {
		pthread_rwlock_wrlock(&vol->lock);
		err = commit_locked(vol);
		close_slots(vol);
		pthread_rwlock_unlock(&vol->lock);
	}
	forget_changes(vol);
	eph_remove(vol);
	fspf_free(vol->fspf);
	fsh_key_free(vol->key);
	if (vol->lock_fd >= 0)
		close(vol->lock_fd);
	free(vol->fspf_path);
	free(vol->root);
	free(vol->tag_path);
	pthread_rwlock_destroy(&vol->lock);
	if (vol->pool_ref)
		fshield_pool_unref();
	free(vol);
	return err;
}

EXPORT void fshield_volume_tag(struct fshield_volume *vol,
			       uint8_t tag[FSHIELD_TAG_BYTES])
{
	pthread_rwlock_rdlock(&vol->lock);
	memcpy(tag, vol->tag, FSHIELD_TAG_BYTES);
	pthread_rwlock_unlock(&vol->lock);
}

EXPORT size_t fshield_volume_fds(struct fshield_volume *vol, int *fds,
				 size_t max)
{
	size_t n = 0;

#define FSHIELD_FD(x)                                                        \
	do {                                                                 \
		if ((x) >= 0 && n < max)                                     \
			fds[n] = (x);                                        \
		n += (x) >= 0;                                               \
	} while (0)
	pthread_rwlock_rdlock(&vol->lock);
	FSHIELD_FD(vol->lock_fd);
	FSHIELD_FD(vol->slot[0].fd);
	FSHIELD_FD(vol->slot[1].fd);
	FSHIELD_FD(vol->tag_file.fd);
	for (size_t i = 0; i < vol->closed_count; i++)
		FSHIELD_FD(vol->closed[i].fd);
	for (struct node *nd = vol->nodes; nd; nd = nd->next)
		FSHIELD_FD(nd->fd);
	pthread_rwlock_unlock(&vol->lock);
#undef FSHIELD_FD
	return n;
}

EXPORT int fshield_volume_suspend(struct fshield_volume *vol)
{
	int err;

	if (!writable(vol) || vol->lock_fd < 0)
		return -EINVAL;
	pthread_rwlock_wrlock(&vol->lock);
	if (vol->suspended) {
		pthread_rwlock_unlock(&vol->lock);
		return 0;
	}
	for (struct node *n = vol->nodes; n; n = n->next) {
		if (n->model == vol->fspf) { /* open: nothing to let go of */
			pthread_rwlock_unlock(&vol->lock);
			return -EBUSY;
		}
	}
	err = commit_locked(vol);
	if (!err) /* the next writer finds the fspf in place */
		close_slots(vol);
	if (!err && flock(vol->lock_fd, LOCK_UN) < 0)
		err = -errno;
	if (!err) {
		vol->suspended = true;
		vol_log(vol, FSHIELD_LOG_DEBUG, "'%s' suspended at its tag",
			vol->fspf_path);
	}
	pthread_rwlock_unlock(&vol->lock);
	return err;
}

/*
 * The fspf as another writer may have left it, checked against @expected,
 * into vol->fspf (vol->lock held for writing, the writer's lock held).
 */
static int reload(struct fshield_volume *vol, const uint8_t *expected,
		  unsigned int max_depth)
{
	struct fspf *old = vol->fspf;
	uint8_t old_tag[FSHIELD_TAG_BYTES];
	int depth, err;

	memcpy(old_tag, vol->tag, sizeof(old_tag));
	vol->fspf = NULL;
	err = load_state(vol, expected, max_depth, &depth);
	if (!err && depth < 0)
		err = -ESTALE;
	if (!err)
		err = tag_file_caught_up(vol, depth);
	if (err) {
		fspf_free(vol->fspf);
		vol->fspf = old;
		memcpy(vol->tag, old_tag, sizeof(old_tag));
		return err;
	}
	fspf_free(old);
	return 0;
}

EXPORT int fshield_volume_resume(struct fshield_volume *vol,
				 const uint8_t expected_tag[FSHIELD_TAG_BYTES])
{
	uint8_t want[FSHIELD_TAG_BYTES];
	unsigned int max_depth = 0;
	int err = 0;

	pthread_rwlock_wrlock(&vol->lock);
	if (!vol->suspended)
		goto out;
	memcpy(want, expected_tag ? expected_tag : vol->tag, sizeof(want));
	if (lock_wait(vol->lock_fd, LOCK_EX, vol->lock_wait_ms) < 0) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		vol_log(vol, FSHIELD_LOG_ERR, "cannot lock '%s' again: %s",
			vol->fspf_path,
			err == -EBUSY ? "another writer holds it" : strerror(-err));
		goto out;
	}
	/*
	 * The tag file's tag is read now, with the lock: read before, while
	 * another writer still held it, it would be a state that writer then
	 * left behind (and its newer one, not yet in place, removed below).
	 */
	if (!expected_tag && (vol->flags & FSHIELD_TAG_FROM_FILE) &&
	    vol->tag_path) {
		err = read_tag_file(vol->tag_path, want);
		if (!err && !(vol->flags & FSHIELD_TAG_EXACT))
			max_depth = FSPF_LINEAGE_MAX; /* it may lag */
		if (err == -ENOENT)
			err = 0; /* none yet: our own tag */
		if (err) {
			flock(vol->lock_fd, LOCK_UN);
			goto out;
		}
	}
	err = reload(vol, want, max_depth);
	if (err) {
		vol_log(vol, FSHIELD_LOG_ERR, "cannot resume '%s': %s",
			vol->fspf_path, fshield_strerror(err));
		flock(vol->lock_fd, LOCK_UN);
		goto out;
	}
	vol->suspended = false;
	vol->journal_len = 0;
	/* reload() left the fspf in place, the tag file naming it */
	vol->slot_cur = -1;
	vol->slots_pinned = false;
	vol->slot_commits = 0;
	remove_stale_commits(vol);
	journal_replay(vol);
	vol_log(vol, FSHIELD_LOG_DEBUG, "'%s' resumed", vol->fspf_path);
out:
	pthread_rwlock_unlock(&vol->lock);
	return err;
}

/* ---- paths ---- */

/* What a path is to the shield. Valid while vol->lock is held. */
struct where {
	struct fspf *model;		  /* where its entry lives */
	const struct fspf_region *region; /* NULL: outside every region */
	struct fspf_entry *entry;	  /* protected and recorded */
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

static int locate_regions(struct fshield_volume *vol, const char *path,
			  struct where *w);

/* Where @path is; -EBUSY while the volume is suspended. */
static int locate(struct fshield_volume *vol, const char *path,
		  struct where *w)
{
	if (vol->suspended) {
		memset(w, 0, sizeof(*w));
		return -EBUSY;
	}
	return locate_regions(vol, path, w);
}

/* locate(), of a suspended volume too (its regions do not change). */
static int locate_regions(struct fshield_volume *vol, const char *path,
			  struct where *w)
{
	size_t ri;

	memset(w, 0, sizeof(*w));
	w->model = vol->fspf;
	if (!path || !fspf_path_valid(path, strlen(path)))
		return -EINVAL;
	if (strlen(path) >= FSPF_PATH_MAX_BYTES)
		return -ENAMETOOLONG;
	if (fspf_region_lookup(vol->fspf, path, &ri)) {
		/* No region (an fspf without "/"): only the way to an embed point. */
		if (!above_embed_point(vol->fspf, path))
			return -ENOENT;
		w->is_protected = w->synthetic_dir = true;
		return 0;
	}
	w->region = fspf_region(vol->fspf, ri);
	if (w->region->storage == FSPF_EPHEMERAL && vol->eph &&
	    !fspf_region_lookup(vol->eph, path, &ri)) {
		/* In memory: the private encrypted twin of the region. */
		w->model = vol->eph;
		w->region = fspf_region(vol->eph, ri);
	}
	if (!is_protected_region(w->region))
		return 0;
	w->is_protected = true;
	w->entry = fspf_entry_find(w->model, path);
	if (w->entry)
		return 0;
	if (!strcmp(path, w->region->path) || above_embed_point(vol->fspf, path)) {
		w->synthetic_dir = true;
		return 0;
	}
	return -ENOENT;
}

static int host_path(struct fshield_volume *vol, const struct where *w,
		     const char *path, char *out, size_t size)
{
	return fspf_host_path(w->model == vol->eph ? "/" : vol->root,
			      vol->fspf_path, w->region, path, out, size);
}

/*
 * The volume's own files (the fspf, its lock and temporary files, the tag
 * file and its temporary files) must never be written through the volume:
 * they may lie in a region's host directory (a volume keeps its fspf in
 * it). Compared by directory identity and name.
 */
static void reserve(struct fshield_volume *vol, const char *path,
		    const char *suffix, bool prefix)
{
	struct reserved *r;
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat st;

	if (vol->reserved_count == sizeof(vol->reserved) / sizeof(*vol->reserved))
		return;
	if (slash)
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path + 1), path);
	else
		snprintf(dir, sizeof(dir), ".");
	if (stat(dir, &st) < 0)
		return;
	r = &vol->reserved[vol->reserved_count++];
	r->dev = st.st_dev;
	r->ino = st.st_ino;
	snprintf(r->name, sizeof(r->name), "%s%s", slash ? slash + 1 : path,
		 suffix);
	r->prefix = prefix;
}

static int host_guard(struct fshield_volume *vol, const char *host)
{
	const char *slash = strrchr(host, '/'), *name;
	char dir[PATH_MAX];
	struct stat st;

	if (!slash || !vol->reserved_count)
		return 0;
	name = slash + 1;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - host + 1), host);
	if (stat(dir, &st) < 0)
		return 0; /* a new directory holds nothing of ours */
	for (size_t i = 0; i < vol->reserved_count; i++) {
		const struct reserved *r = &vol->reserved[i];

		if (r->dev == st.st_dev && r->ino == st.st_ino &&
		    (r->prefix ? !strncmp(name, r->name, strlen(r->name))
			       : !strcmp(name, r->name))) {
			vol_log(vol, FSHIELD_LOG_ERR,
				"refusing to change %s through the volume: it is the volume's own file",
				host);
			return -EPERM;
		}
	}
	return 0;
}

/* host_path() of a path about to be changed: never one of our own files. */
static int host_path_w(struct fshield_volume *vol, const struct where *w,
		       const char *path, char *out, size_t size)
{
	int err = host_path(vol, w, path, out, size);

	return err ? err : host_guard(vol, out);
}

/*
 * The journal of what was created or renamed on the host since the last
 * commit, kept in the lock file, which only the writer holds: records
 * "C" path and "R" from to, NUL-terminated, appended as the changes are
 * made (not synced: it must outlive the process, as the page cache does),
 * emptied by each commit. At the next writable open it is replayed
 * backwards to undo on the host what the fspf never recorded, so that a
 * crash leaves no stray files in a protected region. vol->lock held.
 */
static void journal(struct fshield_volume *vol, const struct fspf *model,
		    char op, const char *a, const char *b)
{
	size_t la = strlen(a) + 1, lb = b ? strlen(b) + 1 : 0;
	uint8_t *rec;
	ssize_t n;

	if (model != vol->fspf || vol->lock_fd < 0 || !writable(vol))
		return;
	rec = malloc(1 + la + lb);
	if (!rec)
		return;
	rec[0] = (uint8_t)op;
	memcpy(rec + 1, a, la);
	if (b)
		memcpy(rec + 1 + la, b, lb);
	n = pwrite(vol->lock_fd, rec, 1 + la + lb, (off_t)vol->journal_len);
	if (n == (ssize_t)(1 + la + lb))
		vol->journal_len += (uint64_t)n;
	else
		vol_log(vol, FSHIELD_LOG_WARNING,
			"cannot journal a change of %s: a crash before the next commit may leave it on the host",
			a);
	free(rec);
}

static int remove_tree(const char *path, const struct stat *st, int type,
		       struct FTW *ftw);

/*
 * Whether host path @host, whose last component is not followed, lies in
 * the host directory of @w's region once every symlink above it is
 * resolved. The journal is the host's to write: without this, a symlink
 * planted in a region's directory would point the undoing elsewhere.
 */
static bool host_within_region(struct fshield_volume *vol,
			       const struct where *w, const char *host)
{
	char root[PATH_MAX], real_root[PATH_MAX], dir[PATH_MAX];
	char real_dir[PATH_MAX];
	const char *slash = strrchr(host, '/');
	size_t n;

	if (!slash || host_path(vol, w, w->region->path, root, sizeof(root)) ||
	    !realpath(root, real_root))
		return false;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - host + 1), host);
	if (!realpath(dir, real_dir))
		return false;
	n = strlen(real_root);
	return !strncmp(real_dir, real_root, n) &&
	       (real_dir[n] == '\0' || real_dir[n] == '/' || n == 1);
}

/* Remove the host object of unrecorded @path (a tree: all uncommitted). */
static void undo_on_host(struct fshield_volume *vol, const char *path)
{
	char host[PATH_MAX];
	struct where w;
	struct stat st;

	if (locate(vol, path, &w) != -ENOENT || !w.region || !w.is_protected ||
	    w.model != vol->fspf || host_path(vol, &w, path, host, sizeof(host)) ||
	    host_guard(vol, host) || lstat(host, &st) < 0 ||
	    !host_within_region(vol, &w, host))
		return;
	if (S_ISDIR(st.st_mode))
		nftw(host, remove_tree, 16, FTW_DEPTH | FTW_PHYS);
	else
		unlink(host);
	vol_log(vol, FSHIELD_LOG_INFO,
		"removed %s (%s): made after the last commit", path, host);
}

static void journal_replay(struct fshield_volume *vol)
{
	struct journal_rec *recs = NULL, r;
	size_t count = 0, cap = 0, off = 0;
	struct stat st;
	char *buf = NULL;

	if (fstat(vol->lock_fd, &st) < 0 || !st.st_size ||
	    (uint64_t)st.st_size > (64u << 20))
		goto out; /* nothing, or not a journal of ours: dropped */
	buf = malloc((size_t)st.st_size);
	if (!buf || pread(vol->lock_fd, buf, (size_t)st.st_size, 0) != st.st_size)
		goto out;
	/* A record cut short by the crash is the last one: ignored. */
	while (journal_next(buf, (size_t)st.st_size, &off, &r)) {
		if (count == cap) {
			void *v = realloc(recs, (cap = cap ? 2 * cap : 64) *
							sizeof(*recs));

			if (!v)
				break;
			recs = v;
		}
		recs[count++] = r;
	}
	while (count--) {
		const char *a = recs[count].a, *b = recs[count].b;
		char ha[PATH_MAX], hb[PATH_MAX];
		struct where wa, wb;
		struct stat sa, sb;

		if (recs[count].op == 'C') {
			undo_on_host(vol, a);
			continue;
		}
		/* A rename the fspf never saw: back, or away if all new. */
		if (locate(vol, b, &wb) != -ENOENT || !wb.region)
			continue;
		if (locate(vol, a, &wa) == -ENOENT) {
			undo_on_host(vol, b);
			continue;
		}
		if (wa.entry && wa.model == vol->fspf && wb.model == vol->fspf &&
		    !host_path(vol, &wa, a, ha, sizeof(ha)) &&
		    !host_path(vol, &wb, b, hb, sizeof(hb)) &&
		    lstat(ha, &sa) < 0 && lstat(hb, &sb) == 0 &&
		    host_within_region(vol, &wb, hb) &&
		    host_within_region(vol, &wa, ha) && rename(hb, ha) == 0) {
			/* The fspf's path again: durable with the next commit. */
			host_changed(vol, vol->fspf, ha);
			host_changed(vol, vol->fspf, hb);
			vol_log(vol, FSHIELD_LOG_INFO,
				"moved %s back to %s: renamed after the last commit",
				b, a);
		}
	}
out:
	free(recs);
	free(buf);
	if (ftruncate(vol->lock_fd, 0) == 0)
		vol->journal_len = 0;
}

/* Where a new protected entry at @path would go: its region, writable. */
static int locate_new(struct fshield_volume *vol, const char *path,
		      struct where *w)
{
	int err = locate(vol, path, w);

	if (!err)
		return -EEXIST;
	if (err != -ENOENT || !w->region)
		return err;
	if (w->region->storage != FSPF_KERNEL)
		return -EROFS; /* ephemeral regions: not writable yet */
	return 0;
}

static const char *parent_path(const char *path, char *buf)
{
	char *slash;

	snprintf(buf, FSPF_PATH_MAX_BYTES, "%s", path);
	slash = strrchr(buf, '/');
	if (slash == buf)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	return buf;
}

/* Changes to be committed, unless they are in memory only. */
static void mark_dirty(struct fshield_volume *vol, const struct fspf *model)
{
	if (model == vol->fspf)
		vol->dirty = true;
}

/* A recorded parent directory's time follows the changes in it. */
static void touch_parent(struct fspf *model, const char *path, int64_t t)
{
	char parent[FSPF_PATH_MAX_BYTES];
	struct fspf_entry *e = fspf_entry_find(model, parent_path(path, parent));

	if (e && e->type == FSPF_DIR)
		e->mtime_ns = t;
}

/*
 * mkdir -p of the host directories above host path @host of @model, each
 * made to be synced by the next commit (host_changed()).
 */
static int host_mkdirs(struct fshield_volume *vol, const struct fspf *model,
		       char *host)
{
	char *slash = strrchr(host, '/');
	struct stat st;
	int err = 0;

	if (!slash || slash == host)
		return 0;
	*slash = '\0';
	if (stat(host, &st) == 0) {
		err = S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	} else if (errno != ENOENT) {
		err = -errno;
	} else {
		err = host_mkdirs(vol, model, host);
		if (!err && mkdir(host, 0700) < 0 && errno != EEXIST)
			err = -errno;
		if (!err)
			host_changed(vol, model, host);
	}
	*slash = '/';
	return err;
}

static uint64_t path_ino(const char *path)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

	for (; *path; path++)
		h = (h ^ (uint8_t)*path) * 0x100000001b3ull;
	return h | 1;
}

/* A protected entry records one time: access, change and modification. */
static void stat_time(struct stat *st, int64_t ns)
{
	st->st_mtim.tv_sec = ns / 1000000000;
	st->st_mtim.tv_nsec = ns % 1000000000;
	if (st->st_mtim.tv_nsec < 0) {
		st->st_mtim.tv_sec--;
		st->st_mtim.tv_nsec += 1000000000;
	}
	st->st_atim = st->st_ctim = st->st_mtim;
}
static void entry_stat(const struct where *w, const char *path,
		       struct stat *st)
{
	const struct fspf_entry *e = w->entry;

	memset(st, 0, sizeof(*st));
	if (!e) {
		st->st_ino = path_ino(path);
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		st->st_blksize = 4096;
		return;
	}
	if (e->type == FSPF_FILE) /* stable across renames */
		memcpy(&st->st_ino, e->id, sizeof(st->st_ino));
	else
		st->st_ino = path_ino(path);
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
	stat_time(st, e->mtime_ns);
}

static int stat_locked(struct fshield_volume *vol, const char *path,
		       struct stat *st)
{
	char host[PATH_MAX];
	struct where w;
	int err = locate(vol, path, &w);

	if (err)
		return err;
	if (w.is_protected) {
		entry_stat(&w, path, st);
		if (w.entry && w.entry->type == FSPF_FILE)
			live_size(vol, w.entry, st);
		return 0;
	}
	err = host_path(vol, &w, path, host, sizeof(host));
	if (err)
		return err;
	if (lstat(host, st) == 0)
		return 0;
	err = -errno;
	if (err == -ENOENT && above_embed_point(vol->fspf, path)) {
		/* The way to a region exists whatever the host holds. */
		w.is_protected = w.synthetic_dir = true;
		entry_stat(&w, path, st);
		return 0;
	}
	return err;
}

EXPORT int fshield_stat(struct fshield_volume *vol, const char *path,
			struct stat *st)
{
	int err;

	pthread_rwlock_rdlock(&vol->lock);
	err = stat_locked(vol, path, st);
	pthread_rwlock_unlock(&vol->lock);
	return err;
}

EXPORT int fshield_is_protected(struct fshield_volume *vol,
				const char *path)
{
	struct where w;
	int err;

	pthread_rwlock_rdlock(&vol->lock);
	err = locate_regions(vol, path, &w);
	pthread_rwlock_unlock(&vol->lock);
	if (err && err != -ENOENT)
		return err;
	return w.is_protected ? 1 : 0;
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

/*
 * The names are gathered and stat'ed under the lock, the callback is
 * called without it (it may take long, or call back into the volume).
 */
EXPORT int fshield_readdir(struct fshield_volume *vol, const char *path,
			   fshield_dir_fn fn, void *ctx)
{
	struct names names = { 0 };
	char host[PATH_MAX], child[FSPF_PATH_MAX_BYTES + NAME_MAX + 2];
	struct stat *sts = NULL;
	bool *ok = NULL;
	struct where w;
	size_t len;
	int err;

	pthread_rwlock_rdlock(&vol->lock);
	err = locate(vol, path, &w);
	if (err)
		goto unlock;
	if (w.is_protected) {
		size_t first, end;

		if (w.entry && w.entry->type != FSPF_DIR) {
			err = -ENOTDIR;
			goto unlock;
		}
		fspf_entry_range(w.model, path, &first, &end);
		for (size_t i = first; !err && i < end; i++) {
			const char *name = child_name(
				path, fspf_entry(w.model, i)->path, &len);

			if (name && !name[len])
				err = names_add(&names, name, len);
		}
	} else {
		DIR *d;
		struct dirent *de;

		err = host_path(vol, &w, path, host, sizeof(host));
		if (err)
			goto unlock;
		d = opendir(host);
		if (!d && !(errno == ENOENT &&
			    above_embed_point(vol->fspf, path))) {
			err = -errno;
			goto unlock;
		}
		while (d && !err && (errno = 0, de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				err = names_add(&names, de->d_name,
						strlen(de->d_name));
		if (d && !err && errno)
			err = -errno;
		if (d)
			closedir(d);
	}
	/* Embed points below: the way to every region is listed. */
	for (size_t i = 0; !err && i < fspf_region_count(vol->fspf); i++) {
		const char *rp = fspf_region(vol->fspf, i)->path;
		const char *name = child_name(path, rp, &len);

		if (name)
			err = names_add(&names, name, len);
	}
	if (!err && names.count) {
		qsort(names.v, names.count, sizeof(*names.v), name_cmp);
		sts = calloc(names.count, sizeof(*sts));
		ok = calloc(names.count, sizeof(*ok));
		if (!sts || !ok)
			err = -ENOMEM;
	}
	for (size_t i = 0; !err && i < names.count; i++) {
		if (i && !strcmp(names.v[i], names.v[i - 1]))
			continue;
		snprintf(child, sizeof(child), "%s/%s",
			 strcmp(path, "/") ? path : "", names.v[i]);
		/* Gone from the host, or not valid: not listed. */
		ok[i] = stat_locked(vol, child, &sts[i]) == 0;
	}
unlock:
	pthread_rwlock_unlock(&vol->lock);
	for (size_t i = 0; !err && i < names.count; i++)
		if (ok[i])
			err = fn(ctx, names.v[i], &sts[i]);
	for (size_t i = 0; i < names.count; i++)
		free(names.v[i]);
	free(names.v);
	free(sts);
	free(ok);
	return err;
}

EXPORT ssize_t fshield_readlink(struct fshield_volume *vol, const char *path,
				char *buf, size_t size)
{
	char host[PATH_MAX];
	struct where w;
	ssize_t n;
	int err;

	if (!size)
		return -EINVAL;
	pthread_rwlock_rdlock(&vol->lock);
	err = locate(vol, path, &w);
	if (!err && w.is_protected) {
		n = -EINVAL;
		if (w.entry && w.entry->type == FSPF_SYMLINK) {
			n = (ssize_t)strlen(w.entry->target);
			snprintf(buf, size, "%s", w.entry->target);
		}
		pthread_rwlock_unlock(&vol->lock);
		return n;
	}
	if (!err)
		err = host_path(vol, &w, path, host, sizeof(host));
	pthread_rwlock_unlock(&vol->lock);
	if (err)
		return err;
	n = readlink(host, buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return n;
}

/* ---- nodes ---- */

/* The entry of @n: in the fspf, or its own once unlinked. vol->lock held. */
static struct fspf_entry *node_entry(struct fshield_volume *vol,
				     struct node *n)
{
	struct fspf_entry *e;

	if (!n->path)
		return &n->orphan;
	e = fspf_entry_find(n->model, n->path);
	return e && !memcmp(e->id, n->id, FSPF_ID_BYTES) ? e : NULL;
}

static void node_free(struct node *n)
{
	if (n->fd >= 0)
		close(n->fd);
	fsh_aead_free(n->aead);
	for (size_t i = 0; i < n->pool_count; i++)
		fsh_aead_free(n->pool[i]);
	if (n->cache)
		fsh_wipe(n->cache, n->region->chunk_size);
	if (n->plain)
		fsh_wipe(n->plain, n->seg_bytes);
	free(n->cache);
	free(n->plain);
	free(n->sealed);
	free(n->path);
	free(n->orphan.path);
	free(n->orphan.target);
	free(n->orphan.chunks);
	pthread_rwlock_destroy(&n->lock);
	pthread_mutex_destroy(&n->pool_lock);
	free(n);
}

/*
 * The node of file entry @w->entry at @path, shared with its other
 * handles, or a new one that opens the stored form and checks its size.
 * Called with vol->lock held for writing.
 */
static int node_get(struct fshield_volume *vol, const struct where *w,
		    const char *path, bool truncating, struct node **node_ret)
{
	const struct fspf_entry *e = w->entry;
	char host[PATH_MAX];
	struct node *n;
	struct stat st;
	int err;

	for (n = vol->nodes; n; n = n->next) {
		if (!memcmp(n->id, e->id, FSPF_ID_BYTES) && n->path) {
			n->refs++;
			*node_ret = n;
			return 0;
		}
	}
	err = host_path(vol, w, path, host, sizeof(host));
	if (err)
		return err;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	pthread_rwlock_init(&n->lock, NULL);
	pthread_mutex_init(&n->pool_lock, NULL);
	n->refs = 1;
	n->region = w->region;
	n->cache_index = UINT64_MAX;
	n->last_bad = UINT64_MAX;
	n->size = e->size;
	memcpy(n->id, e->id, FSPF_ID_BYTES);
	n->fd = open(host, (writable(vol) || w->model == vol->eph ? O_RDWR
								  : O_RDONLY) |
				   O_CLOEXEC |
				   O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	if (n->fd < 0 && errno == ENOENT && truncating && !host_guard(vol, host)) {
		n->fd = open(host, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY |
					   O_NOFOLLOW | O_NONBLOCK,
			     0600);
		if (n->fd >= 0)
			host_changed(vol, w->model, host);
	}
	if (n->fd >= 0)
		n->fd = fd_high(n->fd);
	if (n->fd < 0) {
		/* Recorded but gone or unopenable: the store was changed. */
		vol_log(vol, FSHIELD_LOG_ERR,
			"verification of file %s failed: cannot open its stored form %s: %s",
			path, host, strerror(errno));
		err = -EIO;
		goto fail;
	}
	if (fstat(n->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    ((uint64_t)st.st_size != e->size && !truncating)) {
		vol_log(vol, FSHIELD_LOG_ERR,
			"verification of file %s failed: its stored size or type is not the recorded one (%s)",
			path, host);
		err = -EIO;
		goto fail;
	}
	n->model = w->model;
	err = fsh_aead_new(fspf_entry_key(w->model, e), w->region->key_size,
			   &n->aead);
	if (err)
		goto fail;
	n->seg_bytes = w->region->chunk_size > SEGMENT_BYTES
			       ? w->region->chunk_size
			       : SEGMENT_BYTES / w->region->chunk_size *
					 w->region->chunk_size;
	n->cache = malloc(w->region->chunk_size);
	n->path = strdup(path);
	if (!n->cache || !n->path) {
		err = -ENOMEM;
		goto fail;
	}
	n->next = vol->nodes;
	if (n->next)
		n->next->prev = n;
	vol->nodes = n;
	*node_ret = n;
	return 0;
fail:
	node_free(n);
	return err;
}

static void node_put(struct fshield_volume *vol, struct node *n)
{
	pthread_rwlock_wrlock(&vol->lock);
	if (--n->refs) {
		pthread_rwlock_unlock(&vol->lock);
		return;
	}
	if (n->prev)
		n->prev->next = n->next;
	else
		vol->nodes = n->next;
	if (n->next)
		n->next->prev = n->prev;
	/*
	 * Written since the last commit, which will name it: the commit
	 * syncs it (sync_changes()). No room to keep it for that (many files
	 * written between two commits: cp -r through the mount), the commit
	 * syncs whole file systems, once, instead of a sync at every close.
	 * Unlinked, nothing names it any more.
	 */
	if (n->host_dirty && n->path && n->fd >= 0) {
		if (vol->closed_count <
		    sizeof(vol->closed) / sizeof(*vol->closed)) {
			hold(&vol->closed[vol->closed_count++], n->fd);
			n->fd = -1;
		} else {
			vol->sync_all = true;
		}
	}
	pthread_rwlock_unlock(&vol->lock);
	node_free(n);
}

/* The open node of @path, if any. vol->lock held. */
static struct node *node_at(struct fshield_volume *vol, const char *path)
{
	for (struct node *n = vol->nodes; n; n = n->next)
		if (n->path && !strcmp(n->path, path))
			return n;
	return NULL;
}

static void node_put(struct fshield_volume *vol, struct node *n);

/* Seal the written-back chunks of every open file. */
static int flush_all(struct fshield_volume *vol)
{
	struct node **v = NULL;
	size_t count = 0, i = 0;
	int err = 0;

	pthread_rwlock_wrlock(&vol->lock);
	for (struct node *n = vol->nodes; n; n = n->next)
		count++;
	if (count && !(v = calloc(count, sizeof(*v))))
		err = -ENOMEM;
	for (struct node *n = vol->nodes; !err && n; n = n->next) {
		n->refs++;
		v[i++] = n;
	}
	pthread_rwlock_unlock(&vol->lock);
	for (i = 0; v && i < count; i++) {
		int e;

		pthread_rwlock_wrlock(&v[i]->lock);
		e = flush_cache(vol, v[i]);
		pthread_rwlock_unlock(&v[i]->lock);
		err = err ? err : e;
		node_put(vol, v[i]);
	}
	free(v);
	return err;
}

/* Remove file or directory entry @path; an open file keeps its entry. */
static int remove_entry(struct fshield_volume *vol, struct fspf *model,
			const char *path)
{
	struct node *n = node_at(vol, path);
	int err;

	err = fspf_entry_remove(model, path, n ? &n->orphan : NULL);
	if (!err && n) {
		free(n->path);
		n->path = NULL;
	}
	return err;
}

static uint64_t size_of(const struct node *n)
{
	return __atomic_load_n(&n->size, __ATOMIC_RELAXED);
}

static void set_size(struct node *n, uint64_t size)
{
	__atomic_store_n(&n->size, size, __ATOMIC_RELAXED);
}

/* The size of @n's file, written-back bytes included. n->lock held. */
static int node_size(struct fshield_volume *vol, struct node *n,
		     uint64_t *size)
{
	*size = size_of(n);
	return 0;
}

/* What an open file has beyond its entry: size and time of a write. */
static void node_stat(struct node *n, struct stat *st)
{
	int64_t t = __atomic_load_n(&n->mtime_ns, __ATOMIC_RELAXED);

	st->st_size = (off_t)size_of(n);
	st->st_blocks = (blkcnt_t)((size_of(n) + 511) / 512);
	if (t)
		stat_time(st, t);
}

/* The size and time an open file has beyond entry @e. vol->lock held. */
static void live_size(struct fshield_volume *vol, const struct fspf_entry *e,
		      struct stat *st)
{
	for (struct node *n = vol->nodes; n; n = n->next) {
		if (n->path && !memcmp(n->id, e->id, FSPF_ID_BYTES)) {
			node_stat(n, st);
			return;
		}
	}
}

static int write_all_at(int fd, const uint8_t *p, size_t len, uint64_t off);

static bool encrypted(const struct node *n)
{
	return n->region->protection == FSPF_ENCRYPTED;
}

static int seg_buffers(struct node *n)
{
	if (!n->plain) {
		n->plain = malloc(n->seg_bytes);
		n->sealed = malloc(n->seg_bytes);
	}
	return n->plain && n->sealed ? 0 : -ENOMEM;
}

/* Seal and write the dirty chunk, then record it. n->lock held. */
static int flush_cache(struct fshield_volume *vol, struct node *n)
{
	const uint32_t C = n->region->chunk_size;
	uint64_t idx = n->cache_index, end = idx * C + n->cache_size;
	struct fspf_chunk rec;
	struct fspf_entry *e;
	int err;

	if (!n->cache_dirty)
		return 0;
	err = seg_buffers(n);
	if (!err)
		err = fspf_chunks_seal_rec(n->aead, n->region, n->id, idx, &rec,
					   n->cache,
					   encrypted(n) ? n->sealed : NULL,
					   n->cache_size);
	if (!err)
		err = write_all_at(n->fd, encrypted(n) ? n->sealed : n->cache,
				   n->cache_size, idx * C);
	if (err) {
		vol_log(vol, FSHIELD_LOG_ERR, "cannot write chunk %llu: %s",
			(unsigned long long)idx, strerror(-err));
		return err == -EINVAL ? -EIO : err;
	}
	pthread_rwlock_wrlock(&vol->lock);
	e = node_entry(vol, n);
	err = !e ? -EIO : end > e->size ? fspf_entry_resize(e, C, end) : 0;
	if (!err) {
		int64_t t = __atomic_exchange_n(&n->mtime_ns, 0,
						__ATOMIC_RELAXED);

		e->chunks[idx] = rec;
		if (t) /* 0: a time set since the write stands */
			e->mtime_ns = t;
		mark_dirty(vol, n->model);
		n->host_dirty = n->model == vol->fspf;
	}
	pthread_rwlock_unlock(&vol->lock);
	if (!err)
		n->cache_dirty = false;
	return err;
}

/*
 * The host's log line for a chunk that failed verification; once per open
 * file and chunk, not at every retry of the kernel's.
 */
static void log_bad_chunk(struct fshield_volume *vol, struct node *n,
			  uint64_t idx, size_t len)
{
	uint64_t off = idx * n->region->chunk_size;

	if (__atomic_exchange_n(&n->last_bad, idx, __ATOMIC_RELAXED) == idx)
		return;
	pthread_rwlock_rdlock(&vol->lock); /* n->path */
	vol_log(vol, FSHIELD_LOG_ERR,
		"Verification of file chunk %llu (bytes %llu to %llu) of file %s failed.",
		(unsigned long long)idx, (unsigned long long)off,
		(unsigned long long)(off + len - 1),
		n->path ? n->path : "(deleted)");
	pthread_rwlock_unlock(&vol->lock);
}

/* Chunk @idx of @n, verified, in n->cache. n->lock held. */
static int load_chunk(struct fshield_volume *vol, struct node *n,
		      uint64_t idx)
{
	const struct fspf_region *r = n->region;
	uint64_t off = idx * r->chunk_size, size = 0;
	struct fspf_chunk rec;
	struct fspf_entry *e;
	size_t len, got = 0;
	int err;

	if (n->cache_index == idx)
		return 0;
	err = flush_cache(vol, n);
	if (err)
		return err;
	n->cache_index = UINT64_MAX;
	pthread_rwlock_rdlock(&vol->lock);
	e = node_entry(vol, n);
	if (e && idx < e->chunk_count) {
		size = e->size;
		rec = e->chunks[idx];
	}
	pthread_rwlock_unlock(&vol->lock);
	if (!size)
		return -EIO;
	len = size - off < r->chunk_size ? (size_t)(size - off) : r->chunk_size;
	while (got < len) {
		ssize_t k = pread(n->fd, n->cache + got, len - got,
				  (off_t)(off + got));

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			err = k < 0 ? -errno : -EIO;
			pthread_rwlock_rdlock(&vol->lock);
			vol_log(vol, FSHIELD_LOG_ERR,
				"cannot read chunk %llu of file %s: %s",
				(unsigned long long)idx,
				n->path ? n->path : "(deleted)", strerror(-err));
			pthread_rwlock_unlock(&vol->lock);
			return -EIO;
		}
		got += (size_t)k;
	}
	err = fspf_chunk_open_rec(n->aead, r, n->id, idx, &rec, n->cache,
				  n->cache, len);
	if (err) {
		log_bad_chunk(vol, n, idx, len);
		return -EIO;
	}
	n->cache_index = idx;
	n->cache_size = len;
	return 0;
}

/* A context for a shared reader of @n: pooled, or new from its key. */
static struct fsh_aead *ctx_get(struct fshield_volume *vol, struct node *n)
{
	struct fsh_aead *a = NULL;
	struct fspf_entry *e;
	uint8_t key[FSH_KEY_MAX_BYTES];
	bool have_key = false;

	pthread_mutex_lock(&n->pool_lock);
	if (n->pool_count)
		a = n->pool[--n->pool_count];
	pthread_mutex_unlock(&n->pool_lock);
	if (a)
		return a;
	pthread_rwlock_rdlock(&vol->lock);
	e = n->path ? node_entry(vol, n) : NULL; /* unlinked: no key left */
	if (e) {
		memcpy(key, fspf_entry_key(n->model, e), n->region->key_size);
		have_key = true;
	}
	pthread_rwlock_unlock(&vol->lock);
	if (have_key && fsh_aead_new(key, n->region->key_size, &a))
		a = NULL;
	fsh_wipe(key, sizeof(key));
	return a;
}

static void ctx_put(struct node *n, struct fsh_aead *a)
{
	pthread_mutex_lock(&n->pool_lock);
	if (n->pool_count < sizeof(n->pool) / sizeof(*n->pool)) {
		n->pool[n->pool_count++] = a;
		a = NULL;
	}
	pthread_mutex_unlock(&n->pool_lock);
	fsh_aead_free(a);
}

/*
 * pread() of the host file, never through an interposer: read_shared()
 * also runs on the runtime's own threads (pool_i.h), which a preload layer
 * in the same process does not know to be inside the runtime.
 */
static ssize_t host_pread(int fd, void *buf, size_t size, uint64_t off)
{
#if defined(SYS_pread64) && __SIZEOF_LONG__ == 8
	return syscall(SYS_pread64, fd, buf, size, (off_t)off);
#else
	return pread(fd, buf, size, (off_t)off);
#endif
}

/*
 * Whole chunks from @idx, as many as fit in @size bytes and a segment,
 * read straight into @out and verified there, with n->lock shared: the
 * kernel's parallel readahead of one file runs on all cores. Only clean
 * chunks (no written-back chunk pending) and a file with a key at hand.
 * It logs nothing (it runs on the runtime's threads too): the index of a
 * chunk that fails goes to *@bad for the caller to log.
 * Return: bytes verified, 0 when the caller must take the exclusive path,
 * or -EIO (chunk *@bad failed: it and what follows are wiped).
 */
static ssize_t read_shared(struct fshield_volume *vol, struct node *n,
			   uint64_t idx, uint8_t *out, size_t size,
			   uint64_t *bad)
{
	const uint32_t C = n->region->chunk_size;
	struct fspf_chunk recs[SEGMENT_BYTES / FSPF_MIN_CHUNK_BYTES];
	size_t count = (size < n->seg_bytes ? size : n->seg_bytes) / C, got = 0;
	struct fspf_entry *e;
	struct fsh_aead *a;
	ssize_t ret;

	if (!count || n->cache_dirty)
		return 0;
	pthread_rwlock_rdlock(&vol->lock);
	e = node_entry(vol, n);
	if (e && idx < e->chunk_count) {
		if (count > e->chunk_count - idx)
			count = (size_t)(e->chunk_count - idx);
		/* The file's last chunk may be short: not whole, not here. */
		if ((idx + count) * C > e->size)
			count = e->size / C > idx ? (size_t)(e->size / C - idx) : 0;
		memcpy(recs, &e->chunks[idx], count * sizeof(*recs));
	} else {
		count = 0;
	}
	pthread_rwlock_unlock(&vol->lock);
	if (!count || !(a = ctx_get(vol, n)))
		return 0;
	while (got < count * C) {
		ssize_t k = host_pread(n->fd, out + got, count * C - got,
				       idx * C + got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	count = got / C;
	ret = (ssize_t)(count * C);
	for (size_t i = 0; i < count; i++) {
		if (!fspf_chunk_open_rec(a, n->region, n->id, idx + i, &recs[i],
					 out + i * C, out + i * C, C))
			continue;
		/* Nothing of a chunk that failed, nor of what follows it. */
		fsh_wipe(out + i * C, got - i * C);
		*bad = idx + i;
		ret = i ? (ssize_t)(i * C) : -EIO;
		break;
	}
	if (ret >= 0 && got % C)
		fsh_wipe(out + count * C, got % C); /* unverified tail */
	ctx_put(n, a);
	return ret;
}

/*
 * A large read of whole chunks is cut into pieces that the caller and the
 * runtime's idle threads (pool_i.h) take in turn, each with read_shared():
 * one core verifies about 4 GB/s of AES-GCM, the copy out of the page
 * cache and the crypto of a piece then run beside the next one's.
 */
#define PIECE_BYTES (128u << 10)
#define PAR_MIN_BYTES (2 * PIECE_BYTES)
#define PAR_MAX_PIECES 32

struct par_read {
	struct fshield_volume *vol;
	struct node *n;
	uint8_t *out;
	uint64_t idx;		/* the first piece's first chunk */
	size_t size;		/* bytes, of whole chunks */
	size_t piece;		/* bytes per piece (the last may be less) */
	size_t count;		/* pieces */
	size_t next;		/* __atomic: the next piece to take */
	size_t stop;		/* __atomic: the first piece that came short */
	struct {
		ssize_t got;	/* read_shared()'s; 0: not taken */
		uint64_t bad;	/* a chunk that failed, or UINT64_MAX */
	} res[PAR_MAX_PIECES];
};

static size_t piece_size(const struct par_read *p, size_t i)
{
	size_t off = i * p->piece;

	return p->size - off < p->piece ? p->size - off : p->piece;
}

static void par_read_run(void *arg)
{
	struct par_read *p = arg;
	const uint32_t C = p->n->region->chunk_size;
	size_t i, s;

	while ((i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED)) <
	       p->count) {
		size_t off = i * p->piece;
		ssize_t got;

		if (i > __atomic_load_n(&p->stop, __ATOMIC_RELAXED))
			continue; /* after a short piece: would be wiped */
		got = read_shared(p->vol, p->n, p->idx + off / C, p->out + off,
				  piece_size(p, i), &p->res[i].bad);
		p->res[i].got = got;
		if (got == (ssize_t)piece_size(p, i))
			continue;
		s = __atomic_load_n(&p->stop, __ATOMIC_RELAXED);
		while (i < s && !__atomic_compare_exchange_n(&p->stop, &s, i,
							     false,
							     __ATOMIC_RELAXED,
							     __ATOMIC_RELAXED))
			;
	}
}

/*
 * read_shared() of up to PAR_MAX_PIECES pieces from chunk @idx, on every
 * idle core, with the result of the pieces read one after the other: the
 * bytes verified up to the first piece that came short, which is itself
 * cut at its first bad chunk (*@bad); what any later piece read is wiped.
 * n->lock shared. Return: bytes verified, 0 when the caller must take the
 * exclusive path, or -EIO (the first chunk failed).
 */
static ssize_t read_parallel(struct fshield_volume *vol, struct node *n,
			     uint64_t idx, uint8_t *out, size_t size,
			     uint64_t *bad)
{
	const uint32_t C = n->region->chunk_size;
	struct par_read p = { .vol = vol, .n = n, .out = out, .idx = idx };
	size_t done = 0, i;
	ssize_t ret;

	p.piece = PIECE_BYTES > C ? PIECE_BYTES / C * C : C;
	if (p.piece > n->seg_bytes)
		p.piece = n->seg_bytes;
	size = size / C * C;
	if (size > p.piece * PAR_MAX_PIECES)
		size = p.piece * PAR_MAX_PIECES;
	p.size = size;
	p.count = (size + p.piece - 1) / p.piece;
	p.stop = p.count;
	for (i = 0; i < p.count; i++)
		p.res[i].bad = UINT64_MAX;
	fshield_pool_run(par_read_run, &p);
	for (i = 0; i < p.count; i++) {
		if (p.res[i].got != (ssize_t)piece_size(&p, i))
			break;
		done += piece_size(&p, i);
	}
	if (i == p.count)
		return (ssize_t)done;
	/* Piece i came short: what follows it is not returned. */
	ret = p.res[i].got;
	*bad = p.res[i].bad;
	for (size_t j = i + 1; j < p.count; j++)
		if (p.res[j].got > 0)
			fsh_wipe(out + j * p.piece, (size_t)p.res[j].got);
	if (ret > 0)
		done += (size_t)ret;
	return done || ret >= 0 ? (ssize_t)done : ret;
}

static int write_all_at(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t k = pwrite(fd, p, len, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		len -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

/*
 * Write @len bytes of @src (NULL: zeros) at @off <= *@size, within one
 * segment: whole chunks are sealed, the verified bytes around the write
 * merged in, written in place on the host, and only then recorded.
 * n->lock held. Updates *@size.
 */
static int write_segment(struct fshield_volume *vol, struct node *n,
			 const uint8_t *src, size_t len, uint64_t off,
			 uint64_t *size)
{
	const uint32_t C = n->region->chunk_size;
	uint64_t idx0 = off / C, idx1 = (off + len - 1) / C;
	uint64_t start = idx0 * C, end = off + len, new_size, count;
	struct fspf_chunk recs[SEGMENT_BYTES / FSPF_MIN_CHUNK_BYTES];
	struct fspf_entry *e;
	int err;

	new_size = end > *size ? end : *size;
	if ((idx1 + 1) * C < new_size)
		end = (idx1 + 1) * C;
	else
		end = new_size;
	/* From here the entry matches the node: no chunk is dirty. */
	err = flush_cache(vol, n);
	if (!err)
		err = seg_buffers(n);
	if (err)
		return err;
	if (off > start) { /* the head of the first chunk is kept */
		err = load_chunk(vol, n, idx0);
		if (err)
			return err;
		memcpy(n->plain, n->cache, (size_t)(off - start));
	}
	if (src)
		memcpy(n->plain + (off - start), src, len);
	else
		memset(n->plain + (off - start), 0, len);
	if (off + len < end) { /* and the tail of the last */
		uint64_t base = idx1 * C;

		err = load_chunk(vol, n, idx1);
		if (err)
			return err;
		memcpy(n->plain + (off + len - start), n->cache + (off + len - base),
		       (size_t)(end - (off + len)));
	}
	count = idx1 - idx0 + 1;
	n->cache_index = UINT64_MAX;
	err = fspf_chunks_seal_rec(n->aead, n->region, n->id, idx0, recs,
				   n->plain,
				   n->region->protection == FSPF_ENCRYPTED
					   ? n->sealed
					   : NULL,
				   (size_t)(end - start));
	if (!err)
		err = write_all_at(n->fd,
				   n->region->protection == FSPF_ENCRYPTED
					   ? n->sealed
					   : n->plain,
				   (size_t)(end - start), start);
	if (err) {
		/* The host may hold part of it: the chunks read EIO, not wrong. */
		vol_log(vol, FSHIELD_LOG_ERR, "cannot write chunks %llu to %llu: %s",
			(unsigned long long)idx0, (unsigned long long)idx1,
			strerror(-err));
		return err == -EINVAL ? -EIO : err;
	}
	pthread_rwlock_wrlock(&vol->lock);
	e = node_entry(vol, n);
	err = !e ? -EIO : new_size != e->size ? fspf_entry_resize(e, C, new_size) : 0;
	if (!err) {
		memcpy(&e->chunks[idx0], recs, (size_t)count * sizeof(*recs));
		e->mtime_ns = now_ns();
		mark_dirty(vol, n->model);
		n->host_dirty = n->model == vol->fspf;
	}
	pthread_rwlock_unlock(&vol->lock);
	if (err)
		return err;
	*size = new_size;
	set_size(n, new_size);
	/* The last chunk written stays cached: the next small write needs it. */
	memcpy(n->cache, n->plain + (idx1 - idx0) * C,
	       (size_t)(end - idx1 * C));
	n->cache_index = idx1;
	n->cache_size = (size_t)(end - idx1 * C);
	return 0;
}

/* Write @len bytes of @src (NULL: zeros) at @off. n->lock held. */
static ssize_t node_write(struct fshield_volume *vol, struct node *n,
			  const uint8_t *src, size_t len, uint64_t off)
{
	const uint32_t C = n->region->chunk_size;
	uint64_t size;
	size_t done = 0;
	int err = node_size(vol, n, &size);

	if (err)
		return err;
	if (off + len < off || off + len > (uint64_t)INT64_MAX)
		return -EFBIG;
	/* Within one chunk, no gap: into the cache, sealed later. */
	if (src && len && off <= size && off / C == (off + len - 1) / C) {
		uint64_t idx = off / C;
		size_t in = (size_t)(off - idx * C);

		if (n->cache_index != idx) {
			if (idx * C < size) {
				err = load_chunk(vol, n, idx);
			} else { /* a new chunk at the end */
				err = flush_cache(vol, n);
				n->cache_index = idx;
				n->cache_size = 0;
			}
			if (err)
				return err;
		}
		memcpy(n->cache + in, src, len);
		if (in + len > n->cache_size)
			n->cache_size = in + len;
		n->cache_dirty = true;
		/* The time of the write, not of the flush (cp -p sets one after). */
		__atomic_store_n(&n->mtime_ns, now_ns(), __ATOMIC_RELAXED);
		if (off + len > size)
			set_size(n, off + len);
		return (ssize_t)len;
	}
	/* Beyond the end: zeros first (no holes in the format yet). */
	while (!err && size < off) {
		uint64_t seg_end = size / C * C + n->seg_bytes;
		size_t k = (size_t)((seg_end < off ? seg_end : off) - size);

		err = write_segment(vol, n, NULL, k, size, &size);
	}
	while (!err && done < len) {
		uint64_t pos = off + done, seg_end = pos / C * C + n->seg_bytes;
		size_t k = seg_end - pos < len - done ? (size_t)(seg_end - pos)
						      : len - done;

		err = write_segment(vol, n, src ? src + done : NULL, k, pos,
				    &size);
		if (!err)
			done += k;
	}
	return done ? (ssize_t)done : err;
}

static int node_truncate(struct fshield_volume *vol, struct node *n,
			 uint64_t new_size)
{
	const uint32_t C = n->region->chunk_size;
	uint64_t size, idx = new_size / C;
	size_t tail = (size_t)(new_size % C);
	struct fspf_chunk rec;
	struct fspf_entry *e;
	int err = flush_cache(vol, n);

	if (err)
		return err;
	node_size(vol, n, &size);
	if (new_size > (uint64_t)INT64_MAX)
		return -EFBIG;
	if (new_size > size) {
		ssize_t k = node_write(vol, n, NULL, 0, new_size);

		return k < 0 ? (int)k : 0;
	}
	if (new_size == size)
		return 0;
	if (tail) { /* the new last chunk, shorter: sealed again */
		err = load_chunk(vol, n, idx);
		if (!err)
			err = fspf_chunks_seal_rec(
				n->aead, n->region, n->id, idx, &rec, n->cache,
				n->region->protection == FSPF_ENCRYPTED ? n->cache
									: NULL,
				tail);
		n->cache_index = UINT64_MAX;
		if (!err)
			err = write_all_at(n->fd, n->cache, tail, idx * C);
		if (err)
			return err == -EINVAL ? -EIO : err;
	}
	n->cache_index = UINT64_MAX;
	if (ftruncate(n->fd, (off_t)new_size) < 0)
		return -errno;
	pthread_rwlock_wrlock(&vol->lock);
	e = node_entry(vol, n);
	err = e ? fspf_entry_resize(e, C, new_size) : -EIO;
	if (!err) {
		if (tail)
			e->chunks[idx] = rec;
		e->mtime_ns = now_ns();
		mark_dirty(vol, n->model);
		n->host_dirty = n->model == vol->fspf;
	}
	pthread_rwlock_unlock(&vol->lock);
	if (!err)
		set_size(n, new_size);
	return err;
}

/* ---- files ---- */

/* Record a new entry at free path @path of @model. vol->lock held. */
static int new_entry(struct fspf *model, const char *path, uint8_t type,
		     mode_t mode, const char *target)
{
	struct fspf_entry e = { 0 };
	const char *why;
	int err;

	e.path = strdup(path);
	e.target = target ? strdup(target) : NULL;
	e.type = type;
	e.mode = type == FSPF_SYMLINK ? 0777 : mode & 07777;
	e.uid = geteuid();
	e.gid = getegid();
	e.mtime_ns = now_ns();
	err = e.path && (e.target || !target) ? fspf_entry_insert(model, &e, &why)
					      : -ENOMEM;
	free(e.path);
	free(e.target);
	return err;
}

static int open_protected(struct fshield_volume *vol, const char *path,
			  int flags, mode_t mode, struct node **node_ret,
			  bool *created)
{
	char host[PATH_MAX];
	struct where w;
	int fd, err;

	*created = false;
	err = locate(vol, path, &w);
	if (!err && (flags & O_CREAT) && (flags & O_EXCL))
		return -EEXIST;
	if (err == -ENOENT && (flags & O_CREAT) && w.region) {

		err = locate_new(vol, path, &w);
		if (!err)
			err = host_path_w(vol, &w, path, host, sizeof(host));
		if (err)
			return err;
		err = new_entry(w.model, path, FSPF_FILE, mode, NULL);
		if (err)
			return err;
		/* A stray host file at a free path is not ours: replaced. */
		journal(vol, w.model, 'C', path, NULL);
		host_changed(vol, w.model, host);
		err = host_mkdirs(vol, w.model, host);
		if (!err) {
			fd = open(host, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW |
						O_CLOEXEC | O_NOCTTY, 0600);
			if (fd < 0)
				err = -errno;
			else
				close(fd);
		}
		if (err) {
			fspf_entry_remove(w.model, path, NULL);
			return err;
		}
		touch_parent(w.model, path, now_ns());
		mark_dirty(vol, w.model);
		*created = true;
		err = locate(vol, path, &w);
	}
	if (err)
		return err;
	if (!w.entry || w.entry->type == FSPF_DIR)
		return -EISDIR;
	if (w.entry->type != FSPF_FILE)
		return -ELOOP; /* a symlink: the caller resolves it */
	/* A file about to be emptied need not read back: O_TRUNC repairs. */
	return node_get(vol, &w, path,
			(flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY,
			node_ret);
}

EXPORT int fshield_open(struct fshield_volume *vol, const char *path,
			int flags, mode_t mode, struct fshield_file **file_ret)
{
	bool wants_write = (flags & O_ACCMODE) != O_RDONLY ||
			   (flags & (O_CREAT | O_TRUNC));
	char host[PATH_MAX];
	struct fshield_file *f;
	struct where w;
	bool created = false;
	int err;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->vol = vol;
	f->fd = -1;
	f->flags = flags;
	pthread_rwlock_wrlock(&vol->lock);
	err = locate(vol, path, &w);
	/* Memory is writable whatever the volume; the rest only when writable. */
	if (wants_write && !writable(vol) && (err != 0 && err != -ENOENT ? 0 :
					      w.model != vol->eph)) {
		pthread_rwlock_unlock(&vol->lock);
		err = -EROFS;
		goto out;
	}
	if ((!err || err == -ENOENT) && w.region && !w.is_protected) {
		/* Not protected: the host's file, as asked. */
		err = wants_write ? host_path_w(vol, &w, path, host, sizeof(host))
				  : host_path(vol, &w, path, host, sizeof(host));
		pthread_rwlock_unlock(&vol->lock);
		if (!err) {
			f->fd = open(host, (flags & ~O_NOFOLLOW) | O_CLOEXEC |
						   O_NOCTTY,
				     mode);
			err = f->fd < 0 ? -errno : 0;
		}
		goto out;
	}
	if (!err && w.synthetic_dir)
		err = -EISDIR;
	if (!err || err == -ENOENT)
		err = open_protected(vol, path, flags, mode, &f->node, &created);
	pthread_rwlock_unlock(&vol->lock);
	if (!err && (flags & O_TRUNC) && !created) {
		pthread_rwlock_wrlock(&f->node->lock);
		err = node_truncate(vol, f->node, 0);
		pthread_rwlock_unlock(&f->node->lock);
	}
	f->written = created || (flags & O_TRUNC);
out:
	if (err) {
		fshield_close(f);
		return err;
	}
	*file_ret = f;
	return 0;
}

EXPORT ssize_t fshield_pread(struct fshield_file *f, void *buf, size_t size,
			     uint64_t offset)
{
	struct node *n = f->node;
	uint8_t *out = buf;
	uint64_t fsize;
	size_t done = 0;
	int err;

	if (!n) {
		ssize_t k;

		do
			k = pread(f->fd, buf, size, (off_t)offset);
		while (k < 0 && errno == EINTR);
		return k < 0 ? -errno : k;
	}
	if ((f->flags & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	if (!(offset % n->region->chunk_size)) {
		const uint32_t C = n->region->chunk_size;
		uint64_t bad = UINT64_MAX;
		ssize_t got = 0;

		pthread_rwlock_rdlock(&n->lock);
		while (done < size && bad == UINT64_MAX) {
			got = size - done >= PAR_MIN_BYTES
				      ? read_parallel(f->vol, n, (offset + done) / C,
						      out + done, size - done, &bad)
				      : read_shared(f->vol, n, (offset + done) / C,
						    out + done, size - done, &bad);
			if (got <= 0)
				break;
			done += (size_t)got;
		}
		pthread_rwlock_unlock(&n->lock);
		if (bad != UINT64_MAX)
			log_bad_chunk(f->vol, n, bad, C);
		/* A bad chunk was logged once: not again below. */
		if (bad != UINT64_MAX || got < 0 || done == size)
			return done ? (ssize_t)done : got;
		/* The rest (a short last chunk, a written-back one) below. */
	}
	pthread_rwlock_wrlock(&n->lock);
	err = node_size(f->vol, n, &fsize);
	if (!err && offset < fsize && size > fsize - offset)
		size = (size_t)(fsize - offset);
	while (!err && offset < fsize && done < size) {
		uint64_t pos = offset + done;
		uint64_t idx = pos / n->region->chunk_size;
		size_t in = (size_t)(pos % n->region->chunk_size), k;

		err = load_chunk(f->vol, n, idx);
		if (err)
			break;
		k = n->cache_size - in < size - done ? n->cache_size - in
						     : size - done;
		memcpy(out + done, n->cache + in, k);
		done += k;
	}
	pthread_rwlock_unlock(&n->lock);
	/* Verified bytes before a bad chunk are returned; the next read fails. */
	return done ? (ssize_t)done : err;
}

EXPORT ssize_t fshield_pwrite(struct fshield_file *f, const void *buf,
			      size_t size, uint64_t offset)
{
	struct node *n = f->node;
	ssize_t k;

	if ((f->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	if (size > SSIZE_MAX)
		size = SSIZE_MAX;
	f->written = true;
	if (!n) {
		do
			k = (f->flags & O_APPEND)
				    ? write(f->fd, buf, size)
				    : pwrite(f->fd, buf, size, (off_t)offset);
		while (k < 0 && errno == EINTR);
		return k < 0 ? -errno : k;
	}
	if (!size)
		return 0;
	pthread_rwlock_wrlock(&n->lock);
	if (f->flags & O_APPEND) {
		k = node_size(f->vol, n, &offset);
		if (k < 0) {
			pthread_rwlock_unlock(&n->lock);
			return k;
		}
	}
	k = node_write(f->vol, n, buf, size, offset);
	pthread_rwlock_unlock(&n->lock);
	return k;
}

EXPORT int fshield_ftruncate(struct fshield_file *f, uint64_t size)
{
	int err;

	if ((f->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	f->written = true;
	if (!f->node)
		return ftruncate(f->fd, (off_t)size) < 0 ? -errno : 0;
	pthread_rwlock_wrlock(&f->node->lock);
	err = node_truncate(f->vol, f->node, size);
	pthread_rwlock_unlock(&f->node->lock);
	return err;
}

EXPORT int fshield_fsync(struct fshield_file *f, int datasync)
{
	int fd = f->node ? f->node->fd : f->fd;

	if (f->node) {
		int err;

		pthread_rwlock_wrlock(&f->node->lock);
		err = flush_cache(f->vol, f->node);
		pthread_rwlock_unlock(&f->node->lock);
		if (err)
			return err;
	}
	/* A protected file's data is synced by the commit (sync_changes()). */
	if (!f->node && (datasync ? fdatasync(fd) : fsync(fd)) < 0 &&
	    errno != EINVAL && errno != EBADF)
		return -errno;
	return fshield_commit(f->vol, NULL);
}

EXPORT int fshield_fstat(struct fshield_file *f, struct stat *st)
{
	struct fspf_entry *e;
	struct where w;
	int err = 0;

	if (!f->node)
		return fstat(f->fd, st) < 0 ? -errno : 0;
	pthread_rwlock_rdlock(&f->vol->lock);
	e = node_entry(f->vol, f->node);
	if (e) {
		w = (struct where){ f->node->model, f->node->region, e, true,
				    false };
		entry_stat(&w, e->path ? e->path : "", st);
		node_stat(f->node, st);
	} else {
		err = -EIO;
	}
	pthread_rwlock_unlock(&f->vol->lock);
	return err;
}

EXPORT int fshield_close(struct fshield_file *f)
{
	int err = 0;

	if (!f)
		return 0;
	if (f->fd >= 0 && close(f->fd) < 0 && f->written)
		err = -errno;
	if (f->node && f->written) {
		pthread_rwlock_wrlock(&f->node->lock);
		err = flush_cache(f->vol, f->node);
		pthread_rwlock_unlock(&f->node->lock);
	}
	if (f->node)
		node_put(f->vol, f->node);
	if (f->written && !(f->vol->flags & FSHIELD_COMMIT_EXPLICIT)) {
		int e = fshield_commit(f->vol, NULL);

		err = err ? err : e;
	}
	free(f);
	return err;
}

/* ---- changes by path ---- */

/*
 * The common start of a change by path: the volume writable, @path
 * located under the write lock (held on success).
 */
static int change_begin(struct fshield_volume *vol, const char *path,
			struct where *w)
{
	int err;

	pthread_rwlock_wrlock(&vol->lock);
	err = locate(vol, path, w);
	if (err && err != -ENOENT) {
		pthread_rwlock_unlock(&vol->lock);
		return err;
	}
	/* Memory is writable whatever the volume; the rest only when writable. */
	if ((!writable(vol) && w->model != vol->eph) ||
	    (w->is_protected && w->region && w->region->storage != FSPF_KERNEL)) {
		pthread_rwlock_unlock(&vol->lock);
		return -EROFS;
	}
	return err == -ENOENT ? 1 : 0;
}

static int change_end(struct fshield_volume *vol, int err)
{
	pthread_rwlock_unlock(&vol->lock);
	return err;
}

/*
 * The common start of creating @path, its host path in @host: the write
 * lock is held on a return >= 0, which is 1 for a not-protected path (the
 * host's to create) and 0 for a free protected one.
 */
static int create_begin(struct fshield_volume *vol, const char *path,
			struct where *w, char *host, size_t size)
{
	int err = change_begin(vol, path, w);

	if (err < 0)
		return err;
	if (w->region && !w->is_protected) {
		err = host_path_w(vol, w, path, host, size);
		return err ? change_end(vol, err) : 1;
	}
	if (!err)
		return change_end(vol, -EEXIST);
	err = locate_new(vol, path, w);
	if (!err)
		err = host_path_w(vol, w, path, host, size);
	return err ? change_end(vol, err) : 0;
}

EXPORT int fshield_mkdir(struct fshield_volume *vol, const char *path,
			 mode_t mode)
{
	char host[PATH_MAX];
	struct where w;
	struct stat st;
	int err = create_begin(vol, path, &w, host, sizeof(host));

	if (err < 0)
		return err;
	if (err)
		return change_end(vol, mkdir(host, mode) < 0 ? -errno : 0);
	err = new_entry(w.model, path, FSPF_DIR, mode, NULL);
	if (err)
		return change_end(vol, err);
	journal(vol, w.model, 'C', path, NULL);
	host_changed(vol, w.model, host);
	err = host_mkdirs(vol, w.model, host);
	if (!err && lstat(host, &st) == 0 && !S_ISDIR(st.st_mode))
		unlink(host); /* a stray host file at a free path */
	if (!err && mkdir(host, 0700) < 0 && errno != EEXIST)
		err = -errno;
	if (err) {
		fspf_entry_remove(w.model, path, NULL);
		return change_end(vol, err);
	}
	touch_parent(w.model, path, now_ns());
	mark_dirty(vol, w.model);
	return change_end(vol, err);
}

EXPORT int fshield_symlink(struct fshield_volume *vol, const char *target,
			   const char *path)
{
	char host[PATH_MAX];
	struct where w;
	int err;

	if (!target || !*target || strlen(target) >= FSPF_PATH_MAX_BYTES)
		return !target || !*target ? -ENOENT : -ENAMETOOLONG;
	err = create_begin(vol, path, &w, host, sizeof(host));
	if (err < 0)
		return err;
	if (err)
		return change_end(vol, symlink(target, host) < 0 ? -errno : 0);
	err = new_entry(w.model, path, FSPF_SYMLINK, 0777, target);
	if (!err) {
		/* The host's copy is for show only: the fspf's target counts. */
		journal(vol, w.model, 'C', path, NULL);
		host_changed(vol, w.model, host);
		if (!host_mkdirs(vol, w.model, host)) {
			unlink(host);
			if (symlink(target, host) < 0)
				vol_log(vol, FSHIELD_LOG_DEBUG,
					"no host copy of symlink %s: %s", path,
					strerror(errno));
		}
		touch_parent(w.model, path, now_ns());
		mark_dirty(vol, w.model);
	}
	return change_end(vol, err);
}

/* unlink (@dir false) or rmdir (@dir true) of @path. */
static int remove_path(struct fshield_volume *vol, const char *path, bool dir)
{
	char host[PATH_MAX];
	size_t first, end;
	struct where w;
	int err = change_begin(vol, path, &w);

	if (err < 0)
		return err;
	if (w.region && !w.is_protected) {
		if (dir && above_embed_point(vol->fspf, path))
			return change_end(vol, -EBUSY); /* the way to a region */
		err = host_path_w(vol, &w, path, host, sizeof(host));
		if (!err && (dir ? rmdir(host) : unlink(host)) < 0)
			err = -errno;
		return change_end(vol, err);
	}
	if (err)
		return change_end(vol, -ENOENT);
	if (!dir && (!w.entry || w.entry->type == FSPF_DIR))
		return change_end(vol, -EISDIR);
	if (dir && w.synthetic_dir)
		return change_end(vol, -EBUSY);
	if (dir && w.entry->type != FSPF_DIR)
		return change_end(vol, -ENOTDIR);
	fspf_entry_range(w.model, path, &first, &end);
	if (dir && end - first > 1)
		return change_end(vol, -ENOTEMPTY);
	err = host_path_w(vol, &w, path, host, sizeof(host));
	/*
	 * A removed file need not be gone for good before the commit: the
	 * new fspf does not name it, and a stored form that a crash brings
	 * back is a stray host file, which nothing reads and a create there
	 * replaces (sqlite removes its journal at every transaction: one sync
	 * less). A removed directory is synced: a file could not be created
	 * at its path.
	 */
	if (!err && dir)
		host_changed(vol, w.model, host);
	if (!err && !dir && unlink(host) < 0 && errno != ENOENT)
		err = -errno;
	if (!err && dir && rmdir(host) < 0 && errno != ENOENT)
		/* Stray host files there are not ours; the fspf says empty. */
		vol_log(vol, FSHIELD_LOG_DEBUG, "host directory %s stays: %s",
			host, strerror(errno));
	if (!err)
		err = remove_entry(vol, w.model, path);
	if (!err) {
		touch_parent(w.model, path, now_ns());
		mark_dirty(vol, w.model);
	}
	return change_end(vol, err);
}

EXPORT int fshield_unlink(struct fshield_volume *vol, const char *path)
{
	return remove_path(vol, path, false);
}

EXPORT int fshield_rmdir(struct fshield_volume *vol, const char *path)
{
	return remove_path(vol, path, true);
}

EXPORT int fshield_rename(struct fshield_volume *vol, const char *from,
			  const char *to, unsigned int flags)
{
	char hfrom[PATH_MAX], hto[PATH_MAX];
	struct where wf, wt;
	size_t first, end, from_len = from ? strlen(from) : 0;
	char **paths = NULL;
	size_t npaths = 0;
	int err, to_err;

	if (flags & ~FSHIELD_RENAME_NOREPLACE)
		return -EINVAL;
	err = change_begin(vol, from, &wf);
	if (err < 0)
		return err;
	to_err = locate(vol, to, &wt);
	if (to_err && to_err != -ENOENT)
		return change_end(vol, to_err);
	if (wf.region && !wf.is_protected) {
		if (!wt.region || wt.is_protected)
			return change_end(vol, -EXDEV);
		/* The way to an embed point stays where the fspf puts it. */
		if (above_embed_point(vol->fspf, from) ||
		    above_embed_point(vol->fspf, to))
			return change_end(vol, -EBUSY);
		err = host_path_w(vol, &wf, from, hfrom, sizeof(hfrom));
		if (!err)
			err = host_path_w(vol, &wt, to, hto, sizeof(hto));
		if (!err && renameat2(AT_FDCWD, hfrom, AT_FDCWD, hto,
				      flags & FSHIELD_RENAME_NOREPLACE
					      ? RENAME_NOREPLACE
					      : 0) < 0)
			err = -errno;
		return change_end(vol, err);
	}
	if (err)
		return change_end(vol, -ENOENT);
	if (wf.synthetic_dir || wt.synthetic_dir)
		return change_end(vol, -EBUSY);
	if (!wt.region || wt.region != wf.region)
		return change_end(vol, -EXDEV);
	if (!strcmp(from, to))
		return change_end(vol, 0);
	if (wf.entry->type == FSPF_DIR && fspf_path_contains(from, to))
		return change_end(vol, -EINVAL);
	if (!to_err) {
		if (flags & FSHIELD_RENAME_NOREPLACE)
			return change_end(vol, -EEXIST);
		if (wf.entry->type == FSPF_DIR && wt.entry->type != FSPF_DIR)
			return change_end(vol, -ENOTDIR);
		if (wf.entry->type != FSPF_DIR && wt.entry->type == FSPF_DIR)
			return change_end(vol, -EISDIR);
		fspf_entry_range(wf.model, to, &first, &end);
		if (end - first > 1)
			return change_end(vol, -ENOTEMPTY);
	} else {
		err = locate_new(vol, to, &wt);
		if (err)
			return change_end(vol, err);
	}
	/* New paths of open files below @from, before anything changes. */
	for (struct node *n = vol->nodes; n; n = n->next)
		npaths += n->path && fspf_path_contains(from, n->path);
	if (npaths && !(paths = calloc(npaths, sizeof(*paths))))
		return change_end(vol, -ENOMEM);
	npaths = 0;
	for (struct node *n = vol->nodes; !err && n; n = n->next) {
		if (!n->path || !fspf_path_contains(from, n->path))
			continue;
		if (asprintf(&paths[npaths++], "%s%s", to,
			     n->path + from_len) < 0) {
			paths[--npaths] = NULL;
			err = -ENOMEM;
		}
	}
	if (!err)
		err = host_path_w(vol, &wf, from, hfrom, sizeof(hfrom));
	if (!err)
		err = host_path_w(vol, &wt, to, hto, sizeof(hto));
	if (!err)
		err = host_mkdirs(vol, wf.model, hto);
	if (err)
		goto out;
	host_changed(vol, wf.model, hfrom);
	host_changed(vol, wf.model, hto);
	/* A file whose stored form is gone moves all the same (it reads EIO). */
	journal(vol, wf.model, 'R', from, to);
	if (rename(hfrom, hto) < 0 && errno != ENOENT) {
		err = -errno;
		goto out;
	}
	host_moved(vol, hfrom, hto);
	if (!to_err) {
		err = remove_entry(vol, wf.model, to);
		if (err)
			goto undo;
	}
	err = fspf_entry_move(wf.model, from, to);
	if (err) {
		vol_log(vol, FSHIELD_LOG_ERR,
			"rename of %s to %s failed half-way (%s): %s is gone",
			from, to, strerror(-err), to);
		goto undo;
	}
	npaths = 0;
	for (struct node *n = vol->nodes; n; n = n->next) {
		if (!n->path || !fspf_path_contains(from, n->path))
			continue;
		free(n->path);
		n->path = paths[npaths];
		paths[npaths++] = NULL;
	}
	touch_parent(wf.model, from, now_ns());
	touch_parent(wf.model, to, now_ns());
	mark_dirty(vol, wf.model);
	goto out;
undo:
	mark_dirty(vol, wf.model);
	if (rename(hto, hfrom) < 0)
		vol_log(vol, FSHIELD_LOG_ERR, "cannot move %s back: %s", hto,
			strerror(errno));
	else
		host_moved(vol, hto, hfrom);
out:
	for (size_t i = 0; paths && i < npaths; i++)
		free(paths[i]);
	free(paths);
	return change_end(vol, err);
}

static void set_times(struct fspf_entry *e, const void *arg);

/*
 * A time set replaces that of the writes before it, still in open files'
 * caches. vol->lock held for writing.
 */
static void times_set(struct fshield_volume *vol, const uint8_t *id,
		      void (*fn)(struct fspf_entry *, const void *),
		      const void *arg)
{
	if (fn != set_times ||
	    ((const struct timespec *)arg)[1].tv_nsec == UTIME_OMIT)
		return;
	for (struct node *n = vol->nodes; n; n = n->next)
		if (!memcmp(n->id, id, FSPF_ID_BYTES))
			__atomic_store_n(&n->mtime_ns, 0, __ATOMIC_RELAXED);
}

/* Change the attributes of protected entry @path with @fn. */
static int set_attr(struct fshield_volume *vol, const char *path,
		    void (*fn)(struct fspf_entry *, const void *),
		    const void *arg, int (*host_fn)(const char *, const void *))
{
	char host[PATH_MAX];
	struct where w;
	int err = change_begin(vol, path, &w);

	if (err < 0)
		return err;
	if (w.region && !w.is_protected) {
		err = host_path_w(vol, &w, path, host, sizeof(host));
		if (!err)
			err = host_fn(host, arg);
		return change_end(vol, err);
	}
	if (err)
		return change_end(vol, -ENOENT);
	if (!w.entry)
		return change_end(vol, -EPERM); /* an embed point: not recorded */
	fn(w.entry, arg);
	if (w.entry->type == FSPF_FILE)
		times_set(vol, w.entry->id, fn, arg);
	mark_dirty(vol, w.model);
	return change_end(vol, 0);
}

/*
 * Change the attributes of the file open as @f with @fn, whatever its name
 * now (renamed, or unlinked: then only the open file sees it).
 */
static int set_attr_file(struct fshield_file *f,
			 void (*fn)(struct fspf_entry *, const void *),
			 const void *arg, int (*fd_fn)(int, const void *))
{
	struct fshield_volume *vol = f->vol;
	struct node *n = f->node;
	struct fspf_entry *e;
	int err = 0;

	if (!n)
		return fd_fn(f->fd, arg);
	pthread_rwlock_wrlock(&vol->lock);
	e = node_entry(vol, n);
	if (!writable(vol) && n->model != vol->eph)
		err = -EROFS;
	else if (!e)
		err = -EIO;
	if (!err) {
		fn(e, arg);
		times_set(vol, n->id, fn, arg);
		if (n->path)
			mark_dirty(vol, n->model);
	}
	pthread_rwlock_unlock(&vol->lock);
	return err;
}

static void set_mode(struct fspf_entry *e, const void *arg)
{
	if (e->type != FSPF_SYMLINK)
		e->mode = *(const mode_t *)arg & 07777;
}

static int host_chmod(const char *host, const void *arg)
{
	return fchmodat(AT_FDCWD, host, *(const mode_t *)arg, 0) < 0 ? -errno
								      : 0;
}

EXPORT int fshield_chmod(struct fshield_volume *vol, const char *path,
			 mode_t mode)
{
	return set_attr(vol, path, set_mode, &mode, host_chmod);
}

static int fd_chmod(int fd, const void *arg)
{
	return fchmod(fd, *(const mode_t *)arg) < 0 ? -errno : 0;
}

EXPORT int fshield_fchmod(struct fshield_file *file, mode_t mode)
{
	return set_attr_file(file, set_mode, &mode, fd_chmod);
}

struct owner {
	uid_t uid;
	gid_t gid;
};

static void set_owner(struct fspf_entry *e, const void *arg)
{
	const struct owner *o = arg;

	if (o->uid != (uid_t)-1)
		e->uid = o->uid;
	if (o->gid != (gid_t)-1)
		e->gid = o->gid;
}

static int host_chown(const char *host, const void *arg)
{
	const struct owner *o = arg;

	return lchown(host, o->uid, o->gid) < 0 ? -errno : 0;
}

EXPORT int fshield_chown(struct fshield_volume *vol, const char *path,
			 uid_t uid, gid_t gid)
{
	struct owner o = { uid, gid };

	return set_attr(vol, path, set_owner, &o, host_chown);
}

static int fd_chown(int fd, const void *arg)
{
	const struct owner *o = arg;

	return fchown(fd, o->uid, o->gid) < 0 ? -errno : 0;
}

EXPORT int fshield_fchown(struct fshield_file *file, uid_t uid, gid_t gid)
{
	struct owner o = { uid, gid };

	return set_attr_file(file, set_owner, &o, fd_chown);
}

static void set_times(struct fspf_entry *e, const void *arg)
{
	const struct timespec *ts = arg;

	if (ts[1].tv_nsec == UTIME_NOW)
		e->mtime_ns = now_ns();
	else if (ts[1].tv_nsec != UTIME_OMIT)
		e->mtime_ns = (int64_t)ts[1].tv_sec * 1000000000 + ts[1].tv_nsec;
}

static int host_utimens(const char *host, const void *arg)
{
	return utimensat(AT_FDCWD, host, arg, AT_SYMLINK_NOFOLLOW) < 0 ? -errno
									: 0;
}

EXPORT int fshield_utimens(struct fshield_volume *vol, const char *path,
			   const struct timespec times[2])
{
	struct timespec now[2] = { { 0, UTIME_NOW }, { 0, UTIME_NOW } };

	return set_attr(vol, path, set_times, times ? times : now,
			host_utimens);
}

static int fd_utimens(int fd, const void *arg)
{
	return futimens(fd, arg) < 0 ? -errno : 0;
}

EXPORT int fshield_futimens(struct fshield_file *file,
			    const struct timespec times[2])
{
	struct timespec now[2] = { { 0, UTIME_NOW }, { 0, UTIME_NOW } };

	return set_attr_file(file, set_times, times ? times : now, fd_utimens);
}

EXPORT int fshield_truncate(struct fshield_volume *vol, const char *path,
			    uint64_t size)
{
	struct fshield_file *f;
	int err;

	err = fshield_open(vol, path, O_WRONLY | (size ? 0 : O_TRUNC), 0, &f);
	if (err)
		return err;
	err = fshield_ftruncate(f, size);
	f->written = true;
	{
		int e = fshield_close(f);

		return err ? err : e;
	}
}
