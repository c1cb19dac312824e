/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libfshield: the runtime. Open a protected tree (its fspf, key and expected
 * root tag) and read and write it through the shield: every byte returned
 * verified first, every protected path answered from the fspf, not from the
 * host; every write sealed, and committed as a new fspf with a new root tag.
 *
 * Every function returns 0 (or a count) or a negative errno; the library
 * never prints and never exits: details go to the host's log callback.
 * Thread-safe: any number of threads may use one volume and one file.
 */
#ifndef FSHIELD_H
#define FSHIELD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FSHIELD_KEY_BYTES 32
#define FSHIELD_TAG_BYTES 16

/* Flags of struct fshield_config. */
#define FSHIELD_NO_ROLLBACK_PROTECTION 0x1u /* no expected tag, on purpose */
#define FSHIELD_ALLOW_UNENCRYPTED 0x2u /* debug only: a zero-key fspf */
#define FSHIELD_WRITABLE 0x4u /* writes allowed; one writer at a time */
/*
 * Commit only on fshield_fsync(), fshield_commit() and volume close, not on
 * the close of every written file (a FUSE mount: an fspf per file copied
 * would be slow).
 */
#define FSHIELD_COMMIT_EXPLICIT 0x8u
/*
 * The expected tag is the one config->tag_path holds when the lock is
 * taken (config->expected_tag when that file does not exist): a writer
 * that waited for another one (lock_wait_ms) opens at the state it left.
 */
#define FSHIELD_TAG_FROM_FILE 0x10u
/*
 * The expected tag was read from a tag file, which a writer rewrites at
 * every commit but syncs only now and then (and at close): after a crash
 * it may name a state a few commits older than the newest. The newest
 * state that descends from it within the fspf's lineage (fspf(5), at most
 * FSPF_LINEAGE_MAX commits) is taken; a writer names it in the tag file
 * again. Implied by FSHIELD_TAG_FROM_FILE when the tag file exists.
 * Without it, only exactly the expected tag opens.
 */
#define FSHIELD_TAG_OR_NEWER 0x20u
/*
 * The tag file is kept where the host cannot write it: it must name
 * exactly the last commit. It is synced at every commit (its write is
 * the commit point again: one sync more per commit), and its tag is an
 * exact one (FSHIELD_TAG_FROM_FILE does not imply FSHIELD_TAG_OR_NEWER),
 * so that a state that merely descends from it (a clone's, sealed with
 * the same key) is refused. Excludes FSHIELD_TAG_OR_NEWER.
 */
#define FSHIELD_TAG_EXACT 0x40u

/* Flags of fshield_rename(). */
#define FSHIELD_RENAME_NOREPLACE 0x1u

/* Log levels, as syslog's. */
#define FSHIELD_LOG_ERR 3
#define FSHIELD_LOG_WARNING 4
#define FSHIELD_LOG_INFO 6
#define FSHIELD_LOG_DEBUG 7

/**
 * typedef fshield_log_fn - where the library's messages go. Called from any
 * thread; must not call back into the library. errno is preserved around it.
 */
typedef void (*fshield_log_fn)(void *ctx, int level, const char *msg);

/**
 * struct fshield_config - how to open a volume.
 * @fspf_path:    the fspf
 * @root:         host directory under which absolute kernel directories
 *                resolve (NULL: "/"); relative ones resolve next to the fspf
 * @key:          the fspf key, FSHIELD_KEY_BYTES bytes (copied into locked
 *                memory; the caller wipes its copy), or NULL for an fspf
 *                that was never encrypted (needs FSHIELD_ALLOW_UNENCRYPTED)
 * @expected_tag: the root tag the fspf must have, or NULL together with
 *                FSHIELD_NO_ROLLBACK_PROTECTION
 * @flags:        FSHIELD_* flags
 * @log, @log_ctx: message sink, NULL for silence
 * @tag_path:     with FSHIELD_WRITABLE, a file that receives the new root tag
 *                (hex and a newline, replaced atomically) after each commit,
 *                or NULL
 */
struct fshield_config {
	const char *fspf_path;
	const char *root;
	const uint8_t *key;
	const uint8_t *expected_tag;
	unsigned flags;
	fshield_log_fn log;
	void *log_ctx;
	const char *tag_path;
	/*
	 * How long fshield_volume_open() and fshield_volume_resume() wait
	 * for another holder of the lock to let go; 0: -EBUSY at once.
	 */
	unsigned lock_wait_ms;
};

struct fshield_volume;
struct fshield_file;

/**
 * fshield_volume_open() - load, verify and check the freshness of an fspf.
 *
 * A writable volume holds an exclusive flock(2) of "<fspf_path>.lock"
 * (created 0600 if missing) until closed; a read-only one a shared lock
 * when the lock file exists, so that nobody reads a tree being written.
 *
 * Return: 0 and the volume in *@vol_ret (free with fshield_volume_close()),
 * or -EINVAL (bad config: no expected tag without
 * FSHIELD_NO_ROLLBACK_PROTECTION, a tag file without FSHIELD_WRITABLE),
 * -EBUSY (locked by another writer, or by readers for a writer),
 * -EKEYREJECTED
 * (wrong key), -EBADMSG (the fspf was tampered with), -ESTALE (its tag is
 * not the expected one: a rollback or tampering is suspected), -EPERM (never
 * encrypted, not allowed), -ENOKEY, -EUCLEAN, -EPROTONOSUPPORT,
 * -EMEDIUMTYPE (see fspf.h), or the errno of reading it.
 */
int fshield_volume_open(const struct fshield_config *config,
			struct fshield_volume **vol_ret);

/**
 * fshield_volume_fds() - the descriptors @vol holds open in this process
 * (its lock, the stored forms of open files, the files a commit writes),
 * up to @max of them into @fds, for a host that must keep a program from
 * closing or replacing them (the preload layer).
 *
 * Return: how many there are (more than @max: call again with room).
 */
size_t fshield_volume_fds(struct fshield_volume *vol, int *fds, size_t max);

/**
 * fshield_volume_suspend() - commit writable @vol and let go of its
 * writer's lock, so that another process can write the tree meanwhile
 * (a child that a program starts and waits for). Only
 * fshield_is_protected(), fshield_volume_tag(), fshield_commit() (nothing
 * to commit) and fshield_volume_resume() work on a suspended volume; the
 * other calls fail with -EBUSY.
 *
 * Return: 0, -EBUSY while a file of the fspf is open, -EINVAL when @vol is
 * not writable, or the error of the commit (the volume stays as it was).
 */
int fshield_volume_suspend(struct fshield_volume *vol);

/**
 * fshield_volume_resume() - take the writer's lock of a suspended @vol
 * again (waiting as config->lock_wait_ms says) and load its fspf afresh,
 * which must have tag @expected_tag (NULL: the tag config->tag_path holds
 * once the lock is taken, when @vol was opened with FSHIELD_TAG_FROM_FILE;
 * else the tag @vol had when it was suspended, so that any commit by
 * another process in between is refused).
 * Interrupted commits are completed and uncommitted creates undone, as at
 * fshield_volume_open().
 *
 * Return: 0 (also when @vol was not suspended), -EBUSY (the lock stayed
 * taken), -ESTALE (another tag), or an error of loading the fspf; @vol then
 * stays suspended.
 */
int fshield_volume_resume(struct fshield_volume *vol,
			  const uint8_t expected_tag[FSHIELD_TAG_BYTES]);

/**
 * fshield_strerror() - a message for an error of fshield_volume_open() and
 * the other functions (the format's errors included). Static; never NULL.
 */
const char *fshield_strerror(int err);

/**
 * fshield_volume_close() - commit what is not committed yet (a writable
 * volume) and free @vol, even when the commit fails. NULL-safe. Close its
 * files first: a file used after its volume is closed is undefined
 * behaviour.
 * Return: 0, or the error of the final commit (the changes since the last
 * commit are then lost; the fspf stays at its last committed state).
 */
int fshield_volume_close(struct fshield_volume *vol);

/**
 * fshield_commit() - make every change so far durable and name it: flush
 * the host files written since the last commit (fdatasync) and the host
 * directories whose entries changed (fsync; syncfs of the regions' file
 * systems past 64 of them), write the new fspf to a temporary file beside
 * it and sync it, then write the tag file if configured (the commit
 * point), then rename the new fspf into place (its directory synced only
 * without a tag file). A crash between the tag file and a durable rename
 * leaves the new fspf complete beside the old one, where the next open
 * with that tag finds it. Nothing to commit: the current tag.
 * @tag: the new root tag, written on success (may be NULL).
 * Return: 0, or the errno of the failed step (the fspf on disk is then the
 * previous one, untouched).
 */
int fshield_commit(struct fshield_volume *vol, uint8_t tag[FSHIELD_TAG_BYTES]);

/** fshield_volume_tag() - the root tag of the last committed state. */
void fshield_volume_tag(struct fshield_volume *vol,
			uint8_t tag[FSHIELD_TAG_BYTES]);

/**
 * fshield_stat() - what @path is, as a protected program sees it: for a
 * protected path the fspf's type, mode, owner, size and time (a path not in
 * the fspf does not exist); for a not-protected one the host's lstat.
 * @path is absolute in the protected tree.
 * Return: 0, -ENOENT, -ENOTDIR, -EINVAL (not absolute or not normal), or
 * the host's errno.
 */
int fshield_stat(struct fshield_volume *vol, const char *path,
		 struct stat *st);

/**
 * fshield_is_protected() - whether the shield answers @path from the fspf
 * (it lies in an authenticated, encrypted or ephemeral region, or on the
 * way to an embed point where no region is) rather than passing it to the
 * host. Looks at the regions only: no host access, and the answer does not
 * depend on whether @path exists. For front ends that route paths (the
 * preload layer). @path is absolute and normal (as fshield_stat()).
 * Return: 1 protected, 0 not, -EINVAL (not absolute or not normal),
 * -ENAMETOOLONG.
 */
int fshield_is_protected(struct fshield_volume *vol, const char *path);

/**
 * typedef fshield_dir_fn - one directory entry for fshield_readdir(); a
 * non-zero return stops the listing and is returned by it.
 */
typedef int (*fshield_dir_fn)(void *ctx, const char *name,
			      const struct stat *st);

/**
 * fshield_readdir() - list directory @path: a protected directory lists
 * exactly what the fspf records below it, whatever lies on the host; a
 * not-protected one lists the host's directory. Embed points of regions
 * below it are listed as directories. "." and ".." are not listed.
 * Return: 0, what @fn returned, -ENOENT, -ENOTDIR, or the host's errno.
 */
int fshield_readdir(struct fshield_volume *vol, const char *path,
		    fshield_dir_fn fn, void *ctx);

/**
 * fshield_readlink() - the target of symlink @path into @buf (NUL
 * terminated, truncated to @size - 1 bytes).
 * Return: the target's length, -EINVAL (not a symlink), -ENOENT.
 */
ssize_t fshield_readlink(struct fshield_volume *vol, const char *path,
			 char *buf, size_t size);

/**
 * fshield_open() - open (or with O_CREAT create, with @mode) regular file
 * @path. @flags as open(2): the access mode, O_CREAT, O_EXCL, O_TRUNC and
 * O_APPEND count; a not-protected file gets all of them. Writing on a
 * read-only volume is -EROFS. Handles of one protected file share its
 * cache: a write through one is seen by the others. A protected file whose
 * stored form is missing or has not its recorded size and type gives -EIO
 * and a log line. A new protected file is owned by the process's effective
 * uid and gid (see fshield_chown()).
 * Return: 0 and the file in *@file_ret, or a negative errno (-EISDIR,
 * -ELOOP for a symlink: the caller resolves it, -EEXIST, -ENOENT, ...).
 */
int fshield_open(struct fshield_volume *vol, const char *path, int flags,
		 mode_t mode, struct fshield_file **file_ret);

/**
 * fshield_pread() - read up to @size bytes at @offset. A protected file's
 * chunks are verified before any byte of them is returned; a chunk that
 * fails gives -EIO (and a log line naming file, chunk and bytes), never data.
 * A request that spans verified chunks and then a bad one returns the
 * verified bytes (a short count); the next read, at the bad chunk, fails.
 * Return: the number of bytes read (0 at end of file), or -EIO and others.
 */
ssize_t fshield_pread(struct fshield_file *file, void *buf, size_t size,
		      uint64_t offset);

/**
 * fshield_pwrite() - write @size bytes at @offset (O_APPEND: at the end),
 * crossing chunks as needed; a write beyond the end fills the gap with
 * zeros. Each touched chunk is sealed whole with a fresh nonce: the bytes
 * around the write are read and verified first (a chunk that fails gives
 * -EIO and nothing is written over it). The host holds the new chunks in
 * place at once; the fspf names them once committed.
 * Return: the number of bytes written (short only after an error), or a
 * negative errno (-EBADF on a handle opened read-only, -EFBIG, -EIO, ...).
 */
ssize_t fshield_pwrite(struct fshield_file *file, const void *buf,
		       size_t size, uint64_t offset);

/**
 * fshield_ftruncate() - set the size of @file: shorter (the new last chunk
 * sealed again) or longer (zeros).
 */
int fshield_ftruncate(struct fshield_file *file, uint64_t size);

/**
 * fshield_fsync() - flush @file to the host and commit the volume
 * (fshield_commit(), which syncs a protected file's host data; a
 * not-protected file: fsync, or fdatasync with @datasync).
 */
int fshield_fsync(struct fshield_file *file, int datasync);

/** fshield_fstat() - fshield_stat() of an open file (also once unlinked). */
int fshield_fstat(struct fshield_file *file, struct stat *st);

/**
 * fshield_close() - close @file. NULL-safe. Unless the volume was opened
 * with FSHIELD_COMMIT_EXPLICIT, closing a handle that wrote commits.
 * Return: 0, or the error of that commit or of close(2).
 */
int fshield_close(struct fshield_file *file);

/*
 * Changes by path. All return 0 or a negative errno as their system calls
 * do (-EEXIST, -ENOENT, -ENOTDIR, -EISDIR, -ENOTEMPTY, ...), and -EROFS on
 * a read-only volume (except in ephemeral regions). In a protected region
 * they change the fspf (committed later) and mirror the change on the host;
 * a not-protected path is passed to the host as is. Ephemeral regions live
 * in memory: empty at open, writable on any volume, never committed (their
 * files are sealed under process-only keys into a private tmpfs directory
 * that is removed at close).
 * The embed point of a region (or a directory above one) cannot be
 * removed, renamed or changed: -EBUSY or -EPERM.
 */

/** fshield_mkdir() - create directory @path. */
int fshield_mkdir(struct fshield_volume *vol, const char *path, mode_t mode);

/** fshield_rmdir() - remove empty directory @path. */
int fshield_rmdir(struct fshield_volume *vol, const char *path);

/** fshield_unlink() - remove @path; its open handles keep working. */
int fshield_unlink(struct fshield_volume *vol, const char *path);

/**
 * fshield_rename() - rename @from to @to, replacing a file or an empty
 * directory there (not with FSHIELD_RENAME_NOREPLACE: -EEXIST). Both must
 * lie in the same region (-EXDEV). A file keeps its id and key: nothing is
 * sealed again.
 */
int fshield_rename(struct fshield_volume *vol, const char *from,
		   const char *to, unsigned int flags);

/** fshield_symlink() - create symlink @path pointing to @target. */
int fshield_symlink(struct fshield_volume *vol, const char *target,
		    const char *path);

/** fshield_chmod() - set the permission bits (07777) of @path. */
int fshield_chmod(struct fshield_volume *vol, const char *path, mode_t mode);

/** fshield_chown() - set the owner of @path; (uid_t)-1 keeps one. */
int fshield_chown(struct fshield_volume *vol, const char *path, uid_t uid,
		  gid_t gid);

/**
 * fshield_utimens() - set the modification time of @path as utimensat(2)
 * (@times[1]; UTIME_NOW, UTIME_OMIT; NULL: now). A protected entry records
 * one time, which stat() shows as access, change and modification time.
 */
int fshield_utimens(struct fshield_volume *vol, const char *path,
		    const struct timespec times[2]);

/**
 * fshield_fchmod(), fshield_fchown(), fshield_futimens() - the same for the
 * file open as @file, whatever its name now: renamed, or unlinked (then
 * only the open file sees the change).
 */
int fshield_fchmod(struct fshield_file *file, mode_t mode);
int fshield_fchown(struct fshield_file *file, uid_t uid, gid_t gid);
int fshield_futimens(struct fshield_file *file,
		     const struct timespec times[2]);

/** fshield_truncate() - fshield_ftruncate() of @path. */
int fshield_truncate(struct fshield_volume *vol, const char *path,
		     uint64_t size);

#ifdef __cplusplus
}
#endif

#endif /* FSHIELD_H */
