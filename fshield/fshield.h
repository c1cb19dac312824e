/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libfshield: the runtime. Open a protected tree (its fspf, key and expected
 * root tag) and read it through the shield: every byte returned verified
 * first, every protected path answered from the fspf, not from the host.
 *
 * This first version is read-only: writes and commits come next (issue 3).
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
 */
struct fshield_config {
	const char *fspf_path;
	const char *root;
	const uint8_t *key;
	const uint8_t *expected_tag;
	unsigned flags;
	fshield_log_fn log;
	void *log_ctx;
};

struct fshield_volume;
struct fshield_file;

/**
 * fshield_volume_open() - load, verify and check the freshness of an fspf.
 *
 * Return: 0 and the volume in *@vol_ret (free with fshield_volume_close()),
 * or -EINVAL (bad config: no expected tag without
 * FSHIELD_NO_ROLLBACK_PROTECTION, a key of the wrong size), -EKEYREJECTED
 * (wrong key), -EBADMSG (the fspf was tampered with), -ESTALE (its tag is
 * not the expected one: a rollback or tampering is suspected), -EPERM (never
 * encrypted, not allowed), -ENOKEY, -EUCLEAN, -EPROTONOSUPPORT,
 * -EMEDIUMTYPE (see fspf.h), or the errno of reading it.
 */
int fshield_volume_open(const struct fshield_config *config,
			struct fshield_volume **vol_ret);

/**
 * fshield_strerror() - a message for an error of fshield_volume_open() and
 * the other functions (the format's errors included). Static; never NULL.
 */
const char *fshield_strerror(int err);

/**
 * fshield_volume_close() - free @vol. NULL-safe. Close its files first:
 * a file used after its volume is closed is undefined behaviour.
 */
void fshield_volume_close(struct fshield_volume *vol);

/** fshield_volume_tag() - the root tag of the state @vol shows. */
void fshield_volume_tag(const struct fshield_volume *vol,
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
 * fshield_open() - open regular file @path for reading (@flags: O_RDONLY,
 * other flags ignored; O_WRONLY, O_RDWR, O_CREAT, O_TRUNC or O_APPEND is
 * -EROFS in this version). A protected file whose stored form is missing
 * or has not its recorded size and type gives -EIO and a log line.
 * Return: 0 and the file in *@file_ret, or a negative errno.
 */
int fshield_open(struct fshield_volume *vol, const char *path, int flags,
		 struct fshield_file **file_ret);

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

/** fshield_fstat() - fshield_stat() of an open file. */
int fshield_fstat(struct fshield_file *file, struct stat *st);

/** fshield_close() - close @file. NULL-safe. */
void fshield_close(struct fshield_file *file);

#ifdef __cplusplus
}
#endif

#endif /* FSHIELD_H */
