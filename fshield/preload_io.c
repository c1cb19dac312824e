// SPDX-License-Identifier: Apache-2.0
/*
 * libfshield-preload: descriptors and paths. Each interposer asks whether
 * its descriptor (fd_get()) or path (path_route()) is the shield's; if
 * not, it calls libc with the caller's arguments untouched. Changes of
 * protected files go to the runtime when SCONE_FSPF_MUTABLE made the
 * volume writable (and this process is the one that opened it); otherwise
 * they fail with EROFS (by path) or as on a read-only descriptor.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/xattr.h>

#include "preload_i.h"

/* Bytes moved per step of the read-write fallback of sendfile() & co. */
#define COPY_CHUNK_BYTES (128u << 10)

/* The descriptor of the shield for a protected @fd, or NULL. */
static struct pfile *pf_of(int fd)
{
	return shield_on() ? fd_get(fd) : NULL;
}

/*
 * A descriptor libc made: any stale entry of the table at its number
 * (the protected descriptor was closed behind our back) goes.
 */
static int libc_fd(int fd)
{
	if (fd >= 0 && !t_depth) {
		int saved = errno;

		fd_drop(fd);
		errno = saved;
	}
	return fd;
}

int shield_stat_path(const char *path, struct stat *st)
{
	int err;

	shield_enter();
	err = fshield_stat(g_vol, path, st);
	shield_leave();
	return err;
}

int pfile_stat(struct pfile *pf, struct stat *st)
{
	int err;

	if (!pf->file)
		return shield_stat_path(pf->path, st);
	shield_enter();
	err = fshield_fstat(pf->file, st);
	shield_leave();
	return err;
}

/*
 * The runtime returns the verified bytes before a chunk that fails and
 * fails the next read; a program would take that short count for the end
 * of the file (tar: "file shrank"). A short read that is not at the end
 * fails whole instead, with the bad chunk's error. Runtime entered.
 */
static ssize_t pread_whole(struct fshield_file *file, void *buf, size_t size,
			   uint64_t off)
{
	ssize_t n = fshield_pread(file, buf, size, off);
	struct stat st;
	char byte;

	if (n > 0 && (size_t)n < size && !fshield_fstat(file, &st) &&
	    (uint64_t)st.st_size > off + (uint64_t)n) {
		ssize_t k = fshield_pread(file, &byte, 1, off + (uint64_t)n);

		if (k < 0)
			n = k;
	}
	return n;
}

/*
 * Write at @off, or at the shared offset (advancing it) when @off < 0;
 * O_APPEND, which F_SETFL may change, is the shield's: at the end.
 */
ssize_t pfile_write(struct pfile *pf, const void *buf, size_t size,
		    int64_t off)
{
	struct stat st;
	ssize_t n;

	if (!pf->file || (pf->flags & O_ACCMODE) == O_RDONLY ||
	    (pf->flags & O_PATH))
		return -EBADF;
	if (!shield_writes())
		return -EROFS;
	if (size > SSIZE_MAX)
		size = SSIZE_MAX;
	shield_enter();
	if (off < 0) {
		uint64_t at;

		pthread_mutex_lock(&pf->lock);
		at = pf->offset;
		n = 0;
		if (pf->flags & O_APPEND) {
			n = fshield_fstat(pf->file, &st);
			at = (uint64_t)st.st_size;
		}
		if (!n)
			n = fshield_pwrite(pf->file, buf, size, at);
		if (n > 0)
			pf->offset = at + (uint64_t)n;
		pthread_mutex_unlock(&pf->lock);
	} else {
		n = fshield_pwrite(pf->file, buf, size, (uint64_t)off);
	}
	shield_leave();
	return n;
}

/* Read at @off, or at the shared offset (advancing it) when @off < 0. */
ssize_t pfile_read(struct pfile *pf, void *buf, size_t size, int64_t off)
{
	ssize_t n;

	if (pf->type == S_IFDIR && !(pf->flags & O_PATH))
		return -EISDIR;
	if (!pf->file)
		return -EBADF;
	if (size > SSIZE_MAX)
		size = SSIZE_MAX;
	shield_enter();
	if (off < 0) {
		pthread_mutex_lock(&pf->lock);
		n = pread_whole(pf->file, buf, size, pf->offset);
		if (n > 0)
			pf->offset += (uint64_t)n;
		pthread_mutex_unlock(&pf->lock);
	} else {
		n = pread_whole(pf->file, buf, size, (uint64_t)off);
	}
	shield_leave();
	return n;
}

off_t pfile_seek(struct pfile *pf, off_t off, int whence)
{
	struct stat st = { 0 };
	int64_t pos = 0;
	int err = 0;

	if (pf->flags & O_PATH)
		return -EBADF;
	/* The size before the lock: pfile_read() takes them the other way. */
	if (whence == SEEK_END || whence == SEEK_DATA || whence == SEEK_HOLE)
		err = pfile_stat(pf, &st);
	if (err)
		return err;
	pthread_mutex_lock(&pf->lock);
	switch (whence) {
	case SEEK_SET:
		pos = off;
		break;
	case SEEK_CUR:
		err = __builtin_add_overflow((int64_t)pf->offset, off, &pos)
			      ? -EOVERFLOW : 0;
		break;
	case SEEK_END:
		err = __builtin_add_overflow((int64_t)st.st_size, off, &pos)
			      ? -EOVERFLOW : 0;
		break;
	case SEEK_DATA: /* no holes: all data up to the end */
	case SEEK_HOLE:
		if (off < 0 || off >= st.st_size)
			err = -ENXIO;
		pos = whence == SEEK_DATA ? off : st.st_size;
		break;
	default:
		err = -EINVAL;
	}
	if (!err && pos < 0)
		err = -EINVAL;
	if (!err)
		pf->offset = (uint64_t)pos;
	pthread_mutex_unlock(&pf->lock);
	return err ? err : pos;
}

/*
 * The kernel's half of a protected descriptor: the root directory opened
 * read-only, so that its number, close-on-exec flag and poll() are real,
 * and a program that gets it without the shield (exec, a direct system
 * call) reads EISDIR instead of stored bytes. A writable volume's files
 * get a lock placeholder instead (lock_placeholder()), for real locks.
 */
static int placeholder(int flags)
{
	int fd = REAL(open64)("/", O_RDONLY | O_DIRECTORY | O_NOCTTY |
					   (flags & O_CLOEXEC));

	return fd < 0 ? -errno : fd;
}

/* The process's umask (not interposed; two calls, as there is no getter). */
static mode_t current_umask(void)
{
	mode_t m = umask(0);

	umask(m);
	return m;
}

/*
 * Open (or create, with @mode) protected path @rp as open(2) would.
 * Return: fd or -errno.
 */
int shield_open(const struct rpath *rp, int flags, mode_t mode)
{
	struct fshield_file *file = NULL;
	int acc = flags & O_ACCMODE, fd = -1, err;
	struct pfile *pf;
	struct stat st;

	err = shield_stat_path(rp->path, &st);
	if (err == -ENOENT && (flags & O_CREAT) && !(flags & O_PATH)) {
		if (!shield_writes())
			return -EROFS;
		if (rp->slash || (flags & O_DIRECTORY))
			return -EISDIR;
		st.st_mode = S_IFREG;
	} else if (err) {
		return err;
	} else if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
		return -EEXIST;
	}
	if (S_ISLNK(st.st_mode) && !(flags & O_PATH))
		return -ELOOP; /* O_NOFOLLOW */
	if ((rp->slash || (flags & O_DIRECTORY)) && !S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (!(flags & O_PATH)) {
		if ((flags & O_TMPFILE) == O_TMPFILE)
			return shield_writes() ? -EOPNOTSUPP : -EROFS;
		if (S_ISDIR(st.st_mode) && (acc != O_RDONLY || (flags & O_TRUNC)))
			return -EISDIR;
		if ((acc != O_RDONLY || (flags & O_TRUNC)) && !shield_writes())
			return -EROFS;
		if (S_ISREG(st.st_mode)) {
			/* O_APPEND stays the shield's: F_SETFL may change it. */
			int rflags = flags & (O_ACCMODE | O_CREAT | O_EXCL |
					      O_TRUNC);

			shield_enter();
			err = fshield_open(g_vol, rp->path, rflags,
					   (mode & 07777) & ~current_umask(),
					   &file);
			shield_leave();
			if (err)
				return err;
		}
	}
	if (file && g_mutable)
		fd = lock_placeholder(rp->path, flags);
	if (fd < 0)
		fd = placeholder(flags);
	pf = fd < 0 ? NULL
		    : pfile_new(rp->path, st.st_mode & S_IFMT, flags, file);
	if (!pf) {
		err = fd < 0 ? fd : -ENOMEM;
		if (fd >= 0)
			REAL(close)(fd);
		shield_enter();
		fshield_close(file);
		shield_leave();
		return err;
	}
	fd_install(fd, pf);
	plog(FSHIELD_LOG_DEBUG, "open %s: fd %d", rp->path, fd);
	return fd;
}

/* close(2) of protected @fd: the error of the commit it made, if any. */
int shield_close(int fd)
{
	int err = fd_drop(fd), r = REAL(close)(fd);

	return err && !r ? fail_with(err) : r;
}

/* ---- open ---- */

#define OPEN_MODE(flags, mode)                                               \
	do {                                                                 \
		if (((flags) & O_CREAT) ||                                   \
		    ((flags) & O_TMPFILE) == O_TMPFILE) {                    \
			va_list ap;                                          \
			va_start(ap, flags);                                 \
			(mode) = (mode_t)va_arg(ap, int);                    \
			va_end(ap);                                          \
		}                                                            \
	} while (0)

/* Which libc function an open call goes to when the path is not ours. */
enum open_fn {
	OPEN, OPEN64, OPENAT, OPENAT64, OPEN_2, OPEN64_2, OPENAT_2, OPENAT64_2,
	CREAT, CREAT64,
};

static int open_libc(enum open_fn fn, int dirfd, const char *path,
		     int flags, mode_t mode)
{
	switch (fn) {
	case OPEN:
		return REAL(open)(path, flags, mode);
	case OPEN64:
		return REAL(open64)(path, flags, mode);
	case OPENAT:
		return REAL(openat)(dirfd, path, flags, mode);
	case OPENAT64:
		return REAL(openat64)(dirfd, path, flags, mode);
	case OPEN_2:
		return REAL(__open_2)(path, flags);
	case OPEN64_2:
		return REAL(__open64_2)(path, flags);
	case OPENAT_2:
		return REAL(__openat_2)(dirfd, path, flags);
	case OPENAT64_2:
		return REAL(__openat64_2)(dirfd, path, flags);
	case CREAT:
		return REAL(creat)(path, mode);
	default:
		return REAL(creat64)(path, mode);
	}
}

static int open_common(enum open_fn fn, int dirfd, const char *path,
		       int flags, mode_t mode)
{
	const char *lp;
	struct rpath rp;
	int ldfd, r = path_route(dirfd, path, !(flags & O_NOFOLLOW), &rp, &lp,
				 &ldfd);

	if (!r)
		return libc_fd(open_libc(fn, ldfd, lp, flags, mode));
	if (r > 0)
		r = shield_open(&rp, flags, mode);
	return r < 0 ? fail_with(r) : r;
}

EXPORT int open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return open_common(OPEN, AT_FDCWD, path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return open_common(OPEN64, AT_FDCWD, path, flags, mode);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return open_common(OPENAT, dirfd, path, flags, mode);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	OPEN_MODE(flags, mode);
	return open_common(OPENAT64, dirfd, path, flags, mode);
}

/* The fortified variants (_FORTIFY_SOURCE): no mode by definition. */
EXPORT int __open_2(const char *path, int flags)
{
	return open_common(OPEN_2, AT_FDCWD, path, flags, 0);
}

EXPORT int __open64_2(const char *path, int flags)
{
	return open_common(OPEN64_2, AT_FDCWD, path, flags, 0);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	return open_common(OPENAT_2, dirfd, path, flags, 0);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	return open_common(OPENAT64_2, dirfd, path, flags, 0);
}

EXPORT int creat(const char *path, mode_t mode)
{
	return open_common(CREAT, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC,
			   mode);
}

EXPORT int creat64(const char *path, mode_t mode)
{
	return open_common(CREAT64, AT_FDCWD, path,
			   O_CREAT | O_WRONLY | O_TRUNC, mode);
}

/* ---- temporary files ---- */

#define TEMP_X_COUNT 6
#define TEMP_TRY_COUNT 100

/*
 * mkstemp(3) and its variants: glibc creates the file with an internal
 * open the shield does not see, so a template in a protected directory
 * (sed -i's) is filled and created here. Return: 1 done (*@ret the result),
 * 0 libc's.
 */
static int mkstemp_shield(char *tmpl, int suffix, int flags, int *ret)
{
	static const char letters[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	const char *lp;
	struct rpath rp;
	size_t len = strlen(tmpl), plen;
	int ldfd, fd = -EEXIST, r;

	r = path_route(AT_FDCWD, tmpl, false, &rp, &lp, &ldfd);
	if (!r)
		return 0;
	plen = strlen(rp.path);
	if (r > 0 && (suffix < 0 || len < (size_t)suffix + TEMP_X_COUNT ||
		      plen < (size_t)suffix + TEMP_X_COUNT ||
		      strspn(tmpl + len - suffix - TEMP_X_COUNT, "X") <
			      TEMP_X_COUNT))
		r = -EINVAL;
	for (int i = 0; r > 0 && fd == -EEXIST && i < TEMP_TRY_COUNT; i++) {
		uint8_t rnd[TEMP_X_COUNT];

		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
			fd = -errno;
			break;
		}
		for (int k = 0; k < TEMP_X_COUNT; k++) {
			char c = letters[rnd[k] % (sizeof(letters) - 1)];

			tmpl[len - suffix - TEMP_X_COUNT + k] = c;
			rp.path[plen - suffix - TEMP_X_COUNT + k] = c;
		}
		fd = shield_open(&rp, O_RDWR | O_CREAT | O_EXCL |
					      (flags & ~O_ACCMODE),
				 0600);
	}
	if (r < 0)
		fd = r;
	*ret = fd < 0 ? fail_with(fd) : fd;
	return 1;
}

EXPORT int mkostemps(char *tmpl, int suffix, int flags)
{
	int r;

	return mkstemp_shield(tmpl, suffix, flags, &r)
		       ? r
		       : libc_fd(REAL(mkostemps)(tmpl, suffix, flags));
}

EXPORT int mkostemps64(char *tmpl, int suffix, int flags)
{
	int r;

	return mkstemp_shield(tmpl, suffix, flags, &r)
		       ? r
		       : libc_fd(REAL(mkostemps64)(tmpl, suffix, flags));
}

EXPORT int mkstemp(char *tmpl)
{
	int r;

	return mkstemp_shield(tmpl, 0, 0, &r) ? r : libc_fd(REAL(mkstemp)(tmpl));
}

EXPORT int mkstemp64(char *tmpl)
{
	int r;

	return mkstemp_shield(tmpl, 0, 0, &r) ? r
					      : libc_fd(REAL(mkstemp64)(tmpl));
}

EXPORT int mkostemp(char *tmpl, int flags)
{
	int r;

	return mkstemp_shield(tmpl, 0, flags, &r)
		       ? r
		       : libc_fd(REAL(mkostemp)(tmpl, flags));
}

EXPORT int mkostemp64(char *tmpl, int flags)
{
	int r;

	return mkstemp_shield(tmpl, 0, flags, &r)
		       ? r
		       : libc_fd(REAL(mkostemp64)(tmpl, flags));
}

EXPORT int mkstemps(char *tmpl, int suffix)
{
	int r;

	return mkstemp_shield(tmpl, suffix, 0, &r)
		       ? r
		       : libc_fd(REAL(mkstemps)(tmpl, suffix));
}

EXPORT int mkstemps64(char *tmpl, int suffix)
{
	int r;

	return mkstemp_shield(tmpl, suffix, 0, &r)
		       ? r
		       : libc_fd(REAL(mkstemps64)(tmpl, suffix));
}

/* ---- read ---- */

static ssize_t read_result(struct pfile *pf, ssize_t n)
{
	pfile_put(pf);
	return n < 0 ? fail_with((int)n) : n;
}

EXPORT ssize_t read(int fd, void *buf, size_t size)
{
	struct pfile *pf = pf_of(fd);

	if (!pf)
		return REAL(read)(fd, buf, size);
	return read_result(pf, pfile_read(pf, buf, size, -1));
}

EXPORT ssize_t __read_chk(int fd, void *buf, size_t size, size_t buflen)
{
	if (size > buflen)
		__chk_fail();
	return read(fd, buf, size);
}

static ssize_t pread_common(struct pfile *pf, void *buf, size_t size,
			    off_t off)
{
	return read_result(pf, off < 0 ? -EINVAL
				       : pfile_read(pf, buf, size, off));
}

EXPORT ssize_t pread(int fd, void *buf, size_t size, off_t off)
{
	struct pfile *pf = pf_of(fd);

	if (!pf)
		return REAL(pread)(fd, buf, size, off);
	return pread_common(pf, buf, size, off);
}

EXPORT ssize_t pread64(int fd, void *buf, size_t size, off64_t off)
{
	struct pfile *pf = pf_of(fd);

	if (!pf)
		return REAL(pread64)(fd, buf, size, off);
	return pread_common(pf, buf, size, off);
}

EXPORT ssize_t __pread_chk(int fd, void *buf, size_t size, off_t off,
			   size_t buflen)
{
	if (size > buflen)
		__chk_fail();
	return pread(fd, buf, size, off);
}

EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t size, off64_t off,
			     size_t buflen)
{
	if (size > buflen)
		__chk_fail();
	return pread64(fd, buf, size, off);
}

/*
 * Fill (or, with @write, write out) @iov in turn from @off (< 0: the
 * shared offset); short at the end, or at an error after some bytes.
 * Drops the reference to @pf.
 */
static ssize_t pfile_iov(struct pfile *pf, const struct iovec *iov,
			 int count, int64_t off, bool write)
{
	ssize_t done = 0;

	if (count < 0 || count > IOV_MAX)
		return read_result(pf, -EINVAL);
	for (int i = 0; i < count; i++) {
		int64_t at = off < 0 ? -1 : off + done;
		ssize_t n = write ? pfile_write(pf, iov[i].iov_base,
						iov[i].iov_len, at)
				  : pfile_read(pf, iov[i].iov_base,
					       iov[i].iov_len, at);

		if (n < 0)
			return read_result(pf, done ? done : n);
		done += n;
		if ((size_t)n < iov[i].iov_len)
			break;
	}
	return read_result(pf, done);
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int count)
{
	struct pfile *pf = pf_of(fd);

	if (!pf)
		return REAL(readv)(fd, iov, count);
	return pfile_iov(pf, iov, count, -1, false);
}

EXPORT ssize_t preadv(int fd, const struct iovec *iov, int count, off_t off)
{
	struct pfile *pf = pf_of(fd);

	if (!pf)
		return REAL(preadv)(fd, iov, count, off);
	return off < 0 ? read_result(pf, -EINVAL)
		       : pfile_iov(pf, iov, count, off, false);
}

EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int count,
			off64_t off)
{
	struct pfile *pf = pf_of(fd);

	if (!pf)
		return REAL(preadv64)(fd, iov, count, off);
	return off < 0 ? read_result(pf, -EINVAL)
		       : pfile_iov(pf, iov, count, off, false);
}

/* preadv2(): an offset of -1 reads at the shared offset; flags are hints. */
EXPORT ssize_t preadv2(int fd, const struct iovec *iov, int count, off_t off,
		       int flags)
{
	struct pfile *pf = pf_of(fd);

	if (!pf)
		return REAL(preadv2)(fd, iov, count, off, flags);
	return off < -1 ? read_result(pf, -EINVAL)
			: pfile_iov(pf, iov, count, off, false);
}

EXPORT ssize_t preadv64v2(int fd, const struct iovec *iov, int count,
			  off64_t off, int flags)
{
	struct pfile *pf = pf_of(fd);

	if (!pf)
		return REAL(preadv64v2)(fd, iov, count, off, flags);
	return off < -1 ? read_result(pf, -EINVAL)
			: pfile_iov(pf, iov, count, off, false);
}

EXPORT off_t lseek(int fd, off_t off, int whence)
{
	struct pfile *pf = pf_of(fd);
	off_t pos;

	if (!pf)
		return REAL(lseek)(fd, off, whence);
	pos = pfile_seek(pf, off, whence);
	pfile_put(pf);
	return pos < 0 ? fail_with((int)pos) : pos;
}

EXPORT off64_t lseek64(int fd, off64_t off, int whence)
{
	return lseek(fd, off, whence);
}

/* ---- write ---- */

EXPORT ssize_t write(int fd, const void *buf, size_t size)
{
	struct pfile *pf = pf_of(fd);

	if (!pf)
		return REAL(write)(fd, buf, size);
	return read_result(pf, pfile_write(pf, buf, size, -1));
}

static ssize_t pwrite_common(struct pfile *pf, const void *buf, size_t size,
			     off_t off)
{
	return read_result(pf, off < 0 ? -EINVAL
				       : pfile_write(pf, buf, size, off));
}

EXPORT ssize_t pwrite(int fd, const void *buf, size_t size, off_t off)
{
	struct pfile *pf = pf_of(fd);

	if (!pf)
		return REAL(pwrite)(fd, buf, size, off);
	return pwrite_common(pf, buf, size, off);
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t size, off64_t off)
{
	struct pfile *pf = pf_of(fd);

	if (!pf)
		return REAL(pwrite64)(fd, buf, size, off);
	return pwrite_common(pf, buf, size, off);
}

/*
 * Write @iov in turn from @off (< 0: the shared offset), gathered into one
 * buffer when small so that the chunks are sealed once.
 */
static ssize_t pfile_writev(struct pfile *pf, const struct iovec *iov,
			    int count, int64_t off)
{
	size_t total = 0, done = 0;
	ssize_t n;
	char *buf;

	if (count < 0 || count > IOV_MAX)
		return read_result(pf, -EINVAL);
	for (int i = 0; i < count; i++)
		total += iov[i].iov_len;
	if (count < 2 || total > COPY_CHUNK_BYTES || !(buf = malloc(total)))
		return pfile_iov(pf, iov, count, off, true);
	for (int i = 0; i < count; i++) {
		memcpy(buf + done, iov[i].iov_base, iov[i].iov_len);
		done += iov[i].iov_len;
	}
	n = pfile_write(pf, buf, total, off);
	free(buf);
	return read_result(pf, n);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int count)
{
	struct pfile *pf = pf_of(fd);

	if (!pf)
		return REAL(writev)(fd, iov, count);
	return pfile_writev(pf, iov, count, -1);
}

EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int count, off_t off)
{
	struct pfile *pf = pf_of(fd);

	if (!pf)
		return REAL(pwritev)(fd, iov, count, off);
	return off < 0 ? read_result(pf, -EINVAL)
		       : pfile_writev(pf, iov, count, off);
}

EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int count,
			 off64_t off)
{
	struct pfile *pf = pf_of(fd);

	if (!pf)
		return REAL(pwritev64)(fd, iov, count, off);
	return off < 0 ? read_result(pf, -EINVAL)
		       : pfile_writev(pf, iov, count, off);
}

EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int count,
			off_t off, int flags)
{
	struct pfile *pf = pf_of(fd);

	if (!pf)
		return REAL(pwritev2)(fd, iov, count, off, flags);
	return off < -1 ? read_result(pf, -EINVAL)
			: pfile_writev(pf, iov, count, off);
}

EXPORT ssize_t pwritev64v2(int fd, const struct iovec *iov, int count,
			   off64_t off, int flags)
{
	struct pfile *pf = pf_of(fd);

	if (!pf)
		return REAL(pwritev64v2)(fd, iov, count, off, flags);
	return off < -1 ? read_result(pf, -EINVAL)
			: pfile_writev(pf, iov, count, off);
}

/*
 * fsync(2) of a protected descriptor commits the volume (a file: flushed
 * first). Nothing to do on a read-only volume or in a forked child.
 */
static int sync_common(int fd, bool datasync)
{
	struct pfile *pf = pf_of(fd);
	int err = 0;

	if (!pf)
		return datasync ? REAL(fdatasync)(fd) : REAL(fsync)(fd);
	if (shield_writes()) {
		shield_enter();
		err = pf->file ? fshield_fsync(pf->file, datasync)
			       : fshield_commit(g_vol, NULL);
		shield_leave();
	}
	pfile_put(pf);
	return err ? fail_with(err) : 0;
}

EXPORT int fsync(int fd)
{
	return sync_common(fd, false);
}

EXPORT int fdatasync(int fd)
{
	return sync_common(fd, true);
}

/* ---- descriptors ---- */

/*
 * The runtime's own descriptors (its lock, the stored forms of open files,
 * the files of a commit), sorted, into @buf (of SHIELD_FDS entries) or,
 * when there are more, a malloc'd array in *@fds (then freed with
 * shield_fds_free()). A program must not close or replace them: to it
 * they are not open. No allocation in the common case: close() and dup2()
 * run in vfork()ed children too.
 */
#define SHIELD_FDS 256

static size_t shield_fds(int *buf, int **fds)
{
	size_t n = 0;
	int *v = buf;

	*fds = buf;
	if (t_depth || !__atomic_load_n(&g_vol, __ATOMIC_ACQUIRE))
		return 0;
	shield_enter_regions();
	n = fshield_volume_fds(g_vol, v, SHIELD_FDS);
	if (n > SHIELD_FDS) {
		size_t max = n + 16;

		v = malloc(max * sizeof(*v));
		n = v ? fshield_volume_fds(g_vol, v, max) : 0;
		if (n > max)
			n = max;
	}
	shield_leave();
	for (size_t i = 1; i < n; i++) /* a few: insertion sort */
		for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
			int t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	*fds = v ? v : buf;
	return n;
}

static void shield_fds_free(int *buf, int *fds)
{
	if (fds != buf)
		free(fds);
}

static bool shield_owns(int fd)
{
	int buf[SHIELD_FDS], *fds;
	size_t n = shield_fds(buf, &fds);
	bool owned = false;

	for (size_t i = 0; i < n && !owned; i++)
		owned = fds[i] == fd;
	shield_fds_free(buf, fds);
	return owned;
}

EXPORT int close(int fd)
{
	int err, r;

	if (shield_owns(fd))
		return fail_with(-EBADF);
	err = t_depth ? 0 : fd_drop(fd);
	r = REAL(close)(fd);
	return err && !r ? fail_with(err) : r;
}

/* close_range() of [@first, @last] but the runtime's descriptors. */
static int close_around(unsigned int first, unsigned int last, int flags)
{
	int buf[SHIELD_FDS], *fds, r = 0;
	size_t n = shield_fds(buf, &fds);
	bool done = false;

	for (size_t i = 0; i < n && !done; i++) {
		unsigned int fd = (unsigned int)fds[i];

		if (fd < first || fd > last)
			continue;
		if (fd > first && REAL(close_range)(first, fd - 1, flags) < 0)
			r = -1;
		done = fd == last; /* nothing after it */
		first = fd + 1;
	}
	if (!done && REAL(close_range)(first, last, flags) < 0)
		r = -1;
	shield_fds_free(buf, fds);
	return r;
}

EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	if (!t_depth && !(flags & CLOSE_RANGE_CLOEXEC))
		fd_drop_range(first, last);
	if (t_depth || (flags & CLOSE_RANGE_CLOEXEC))
		return REAL(close_range)(first, last, flags);
	return close_around(first, last, flags);
}

EXPORT void closefrom(int lowfd)
{
	if (t_depth || lowfd < 0) {
		REAL(closefrom)(lowfd);
		return;
	}
	fd_drop_range((unsigned int)lowfd, ~0u);
	close_around((unsigned int)lowfd, ~0u, 0);
}

/* @fd (made by libc from @old) now shares @pf, or is nobody's. */
static int dup_result(int fd, struct pfile *pf)
{
	int saved = errno;

	if (fd >= 0 && !t_depth) {
		if (pf)
			fd_install(fd, pf);
		else
			fd_drop(fd);
	}
	pfile_put(pf);
	errno = saved;
	return fd;
}

EXPORT int dup(int old)
{
	struct pfile *pf = pf_of(old);

	return dup_result(REAL(dup)(old), pf);
}

EXPORT int dup2(int old, int new)
{
	struct pfile *pf;
	int fd;

	if (old != new && shield_owns(new)) {
		plog(FSHIELD_LOG_WARNING, "dup2 onto descriptor %d refused: the shield uses it", new);
		return fail_with(-EBUSY);
	}
	pf = pf_of(old);
	fd = REAL(dup2)(old, new);

	if (old == new) { /* nothing changed */
		pfile_put(pf);
		return fd;
	}
	return dup_result(fd, pf);
}

EXPORT int dup3(int old, int new, int flags)
{
	struct pfile *pf;

	if (old != new && shield_owns(new)) {
		plog(FSHIELD_LOG_WARNING, "dup3 onto descriptor %d refused: the shield uses it", new);
		return fail_with(-EBUSY);
	}
	pf = pf_of(old);

	return dup_result(REAL(dup3)(old, new, flags), pf);
}

/* The status flags F_GETFL reports for a description opened with @flags. */
static int status_flags(int flags)
{
	return (flags & (O_ACCMODE | O_APPEND | O_NONBLOCK | O_DIRECT |
			 O_NOATIME | O_PATH | O_SYNC | O_DSYNC | O_ASYNC)) |
	       O_LARGEFILE;
}

static int fcntl_common(bool is64, int fd, int cmd, void *arg)
{
	struct pfile *pf = pf_of(fd);
	int r;

	if (pf && cmd == F_GETFL) {
		r = status_flags(pf->flags);
		pfile_put(pf);
		return r;
	}
	if (pf && cmd == F_SETFL) {
		/* As the kernel: only these change; the access mode stays. */
		int mask = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME |
			   O_ASYNC;

		pthread_mutex_lock(&pf->lock);
		pf->flags = (pf->flags & ~mask) | ((int)(intptr_t)arg & mask);
		pthread_mutex_unlock(&pf->lock);
		pfile_put(pf);
		return 0;
	}
	/* Close-on-exec, locks and the rest: the kernel's descriptor. */
	r = is64 ? REAL(fcntl64)(fd, cmd, arg) : REAL(fcntl)(fd, cmd, arg);
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
		return dup_result(r, pf);
	pfile_put(pf);
	return r;
}

EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(false, fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(true, fd, cmd, arg);
}

/* ---- stat ---- */

static int fstat_result(struct pfile *pf, struct stat *st)
{
	int err = pfile_stat(pf, st);

	pfile_put(pf);
	return err ? fail_with(err) : 0;
}

/* Which libc function a stat call goes to when the path is not ours. */
enum stat_fn {
	STAT, STAT64, LSTAT, LSTAT64, FSTATAT, FSTATAT64, XSTAT, XSTAT64,
	LXSTAT, LXSTAT64, FXSTATAT, FXSTATAT64,
};

static int stat_libc(enum stat_fn fn, int ver, int dirfd, const char *path,
		     void *st, int flags)
{
	switch (fn) {
	case STAT:
		return REAL(stat)(path, st);
	case STAT64:
		return REAL(stat64)(path, st);
	case LSTAT:
		return REAL(lstat)(path, st);
	case LSTAT64:
		return REAL(lstat64)(path, st);
	case FSTATAT:
		return REAL(fstatat)(dirfd, path, st, flags);
	case FSTATAT64:
		return REAL(fstatat64)(dirfd, path, st, flags);
	case XSTAT:
		return REAL(__xstat)(ver, path, st);
	case XSTAT64:
		return REAL(__xstat64)(ver, path, st);
	case LXSTAT:
		return REAL(__lxstat)(ver, path, st);
	case LXSTAT64:
		return REAL(__lxstat64)(ver, path, st);
	case FXSTATAT:
		return REAL(__fxstatat)(ver, dirfd, path, st, flags);
	default:
		return REAL(__fxstatat64)(ver, dirfd, path, st, flags);
	}
}

/*
 * fstatat() of @path relative to @dirfd with @flags: 1 the shield's, done
 * into *@ret; 0 libc's, with *@lp and *@ldfd.
 */
static int stat_route(int dirfd, const char *path, struct stat *st,
		      int flags, struct rpath *rp, const char **lp, int *ldfd,
		      int *ret)
{
	int r;

	if ((flags & AT_EMPTY_PATH) && path && !*path) {
		struct pfile *pf = dirfd == AT_FDCWD ? NULL : pf_of(dirfd);

		*lp = path;
		*ldfd = dirfd;
		if (!pf)
			return 0;
		*ret = fstat_result(pf, st);
		return 1;
	}
	r = path_route(dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW), rp, lp,
		       ldfd);
	if (!r)
		return 0;
	if (r > 0) {
		r = shield_stat_path(rp->path, st);
		if (!r && rp->slash && !S_ISDIR(st->st_mode))
			r = -ENOTDIR;
	}
	*ret = r ? fail_with(r) : 0;
	return 1;
}

static int stat_common(enum stat_fn fn, int ver, int dirfd,
		       const char *path, void *st, int flags)
{
	const char *lp;
	struct rpath rp;
	int ldfd, r;

	if (stat_route(dirfd, path, st, flags, &rp, &lp, &ldfd, &r))
		return r;
	return stat_libc(fn, ver, ldfd, lp, st, flags);
}

EXPORT int stat(const char *path, struct stat *st)
{
	return stat_common(STAT, 0, AT_FDCWD, path, st, 0);
}

EXPORT int stat64(const char *path, struct stat64 *st)
{
	return stat_common(STAT64, 0, AT_FDCWD, path, st, 0);
}

EXPORT int lstat(const char *path, struct stat *st)
{
	return stat_common(LSTAT, 0, AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}

EXPORT int lstat64(const char *path, struct stat64 *st)
{
	return stat_common(LSTAT64, 0, AT_FDCWD, path, st,
			   AT_SYMLINK_NOFOLLOW);
}

EXPORT int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	return stat_common(FSTATAT, 0, dirfd, path, st, flags);
}

EXPORT int fstatat64(int dirfd, const char *path, struct stat64 *st,
		     int flags)
{
	return stat_common(FSTATAT64, 0, dirfd, path, st, flags);
}

EXPORT int fstat(int fd, struct stat *st)
{
	struct pfile *pf = pf_of(fd);

	return pf ? fstat_result(pf, st) : REAL(fstat)(fd, st);
}

EXPORT int fstat64(int fd, struct stat64 *st)
{
	struct pfile *pf = pf_of(fd);

	return pf ? fstat_result(pf, (struct stat *)st) : REAL(fstat64)(fd, st);
}

/* The stat functions of binaries built before glibc 2.33. */
EXPORT int __xstat(int ver, const char *path, struct stat *st)
{
	return stat_common(XSTAT, ver, AT_FDCWD, path, st, 0);
}

EXPORT int __xstat64(int ver, const char *path, struct stat64 *st)
{
	return stat_common(XSTAT64, ver, AT_FDCWD, path, st, 0);
}

EXPORT int __lxstat(int ver, const char *path, struct stat *st)
{
	return stat_common(LXSTAT, ver, AT_FDCWD, path, st,
			   AT_SYMLINK_NOFOLLOW);
}

EXPORT int __lxstat64(int ver, const char *path, struct stat64 *st)
{
	return stat_common(LXSTAT64, ver, AT_FDCWD, path, st,
			   AT_SYMLINK_NOFOLLOW);
}

EXPORT int __fxstat(int ver, int fd, struct stat *st)
{
	struct pfile *pf = pf_of(fd);

	return pf ? fstat_result(pf, st) : REAL(__fxstat)(ver, fd, st);
}

EXPORT int __fxstat64(int ver, int fd, struct stat64 *st)
{
	struct pfile *pf = pf_of(fd);

	return pf ? fstat_result(pf, (struct stat *)st)
		  : REAL(__fxstat64)(ver, fd, st);
}

EXPORT int __fxstatat(int ver, int dirfd, const char *path, struct stat *st,
		      int flags)
{
	return stat_common(FXSTATAT, ver, dirfd, path, st, flags);
}

EXPORT int __fxstatat64(int ver, int dirfd, const char *path,
			struct stat64 *st, int flags)
{
	return stat_common(FXSTATAT64, ver, dirfd, path, st, flags);
}

static struct statx_timestamp stx_time(struct timespec ts)
{
	return (struct statx_timestamp){ .tv_sec = ts.tv_sec,
					 .tv_nsec = (uint32_t)ts.tv_nsec };
}

static void statx_of(const struct stat *st, struct statx *stx)
{
	memset(stx, 0, sizeof(*stx));
	stx->stx_mask = STATX_BASIC_STATS;
	stx->stx_blksize = (uint32_t)st->st_blksize;
	stx->stx_nlink = (uint32_t)st->st_nlink;
	stx->stx_uid = st->st_uid;
	stx->stx_gid = st->st_gid;
	stx->stx_mode = (uint16_t)st->st_mode;
	stx->stx_ino = st->st_ino;
	stx->stx_size = (uint64_t)st->st_size;
	stx->stx_blocks = (uint64_t)st->st_blocks;
	stx->stx_atime = stx_time(st->st_atim);
	stx->stx_ctime = stx_time(st->st_ctim);
	stx->stx_mtime = stx_time(st->st_mtim);
	stx->stx_dev_major = major(st->st_dev);
	stx->stx_dev_minor = minor(st->st_dev);
}

EXPORT int statx(int dirfd, const char *path, int flags, unsigned int mask,
		 struct statx *stx)
{
	const char *lp;
	struct rpath rp;
	struct stat st;
	int ldfd, r;

	if (!stat_route(dirfd, path, &st, flags, &rp, &lp, &ldfd, &r))
		return REAL(statx)(ldfd, lp, flags, mask, stx);
	if (!r)
		statx_of(&st, stx);
	return r;
}

/*
 * syscall(2), the C library's function, as libuv (node) uses it: statx is
 * routed to the shield (libuv asks for it this way rather than through
 * statx(3)), and io_uring_setup fails with ENOSYS, as on a kernel without
 * io_uring: the kernel would do the ring's opens and reads on the host's
 * files behind the shield's back (node with UV_USE_IO_URING=1 read the
 * ciphertext of an encrypted file that way); libuv then does them on its
 * thread pool, through the C library. Every other number goes to the
 * kernel as the program asked. System calls made without this function
 * (inline, as liburing makes them) are not seen.
 */
EXPORT long syscall(long number, ...)
{
	long a[6];
	va_list ap;

	/* Six arguments whatever the number: the x86-64 and AArch64 ABIs allow it. */
	va_start(ap, number);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (number == SYS_statx && shield_on())
		return statx((int)a[0], (const char *)a[1], (int)a[2],
			     (unsigned int)a[3], (struct statx *)a[4]);
	if (number == SYS_io_uring_setup && shield_on()) {
		plog(FSHIELD_LOG_INFO, "io_uring_setup refused (ENOSYS): the shield cannot see a ring's file operations");
		return fail_with(-ENOSYS);
	}
	return REAL(syscall)(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* ---- access ---- */

static bool in_group(gid_t gid, bool effective)
{
	gid_t groups[256];
	int n;

	if (gid == (effective ? getegid() : getgid()))
		return true;
	n = getgroups((int)(sizeof(groups) / sizeof(*groups)), groups);
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/* access(2) of protected @path for the real (or effective) ids. */
static int access_shield(const char *path, int mode, bool effective)
{
	uid_t uid = effective ? geteuid() : getuid();
	struct stat st;
	int err = shield_stat_path(path, &st), bits;

	if (err)
		return err;
	if ((mode & W_OK) && !shield_writes())
		return -EROFS;
	mode &= R_OK | W_OK | X_OK;
	if (!mode)
		return 0;
	if (uid == 0) /* root: executing still needs an x bit somewhere */
		return !(mode & X_OK) || S_ISDIR(st.st_mode) ||
				       (st.st_mode & 0111)
			       ? 0
			       : -EACCES;
	bits = st.st_uid == uid			    ? (int)(st.st_mode >> 6) & 7
	       : in_group(st.st_gid, effective) ? (int)(st.st_mode >> 3) & 7
						  : (int)st.st_mode & 7;
	return (bits & mode) == mode ? 0 : -EACCES;
}

static int access_route(int dirfd, const char *path, int mode, int flags,
			struct rpath *rp, const char **lp, int *ldfd,
			int *ret)
{
	int r = path_route(dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW), rp, lp,
			   ldfd);

	if (!r)
		return 0;
	if (r > 0)
		r = access_shield(rp->path, mode, flags & AT_EACCESS);
	*ret = r ? fail_with(r) : 0;
	return 1;
}

EXPORT int access(const char *path, int mode)
{
	const char *lp;
	struct rpath rp;
	int ldfd, r;

	if (access_route(AT_FDCWD, path, mode, 0, &rp, &lp, &ldfd, &r))
		return r;
	return REAL(access)(lp, mode);
}

EXPORT int faccessat(int dirfd, const char *path, int mode, int flags)
{
	const char *lp;
	struct rpath rp;
	int ldfd, r;

	if (access_route(dirfd, path, mode, flags, &rp, &lp, &ldfd, &r))
		return r;
	return REAL(faccessat)(ldfd, lp, mode, flags);
}

EXPORT int euidaccess(const char *path, int mode)
{
	const char *lp;
	struct rpath rp;
	int ldfd, r;

	if (access_route(AT_FDCWD, path, mode, AT_EACCESS, &rp, &lp, &ldfd, &r))
		return r;
	return REAL(euidaccess)(lp, mode);
}

EXPORT int eaccess(const char *path, int mode)
{
	const char *lp;
	struct rpath rp;
	int ldfd, r;

	if (access_route(AT_FDCWD, path, mode, AT_EACCESS, &rp, &lp, &ldfd, &r))
		return r;
	return REAL(eaccess)(lp, mode);
}

/* ---- symlinks and names ---- */

static ssize_t readlink_shield(const char *path, char *buf, size_t size)
{
	char target[PATH_MAX];
	ssize_t n;

	shield_enter();
	n = fshield_readlink(g_vol, path, target, sizeof(target));
	shield_leave();
	if (n < 0)
		return fail_with((int)n);
	if ((size_t)n > size)
		n = (ssize_t)size;
	memcpy(buf, target, (size_t)n); /* no NUL, as readlink(2) */
	return n;
}

EXPORT ssize_t readlinkat(int dirfd, const char *path, char *buf,
			  size_t size)
{
	const char *lp;
	struct rpath rp;
	int ldfd, r = path_route(dirfd, path, false, &rp, &lp, &ldfd);

	if (r < 0)
		return fail_with(r);
	if (r)
		return readlink_shield(rp.path, buf, size);
	return REAL(readlinkat)(ldfd, lp, buf, size);
}

EXPORT ssize_t readlink(const char *path, char *buf, size_t size)
{
	const char *lp;
	struct rpath rp;
	int ldfd, r = path_route(AT_FDCWD, path, false, &rp, &lp, &ldfd);

	if (r < 0)
		return fail_with(r);
	if (r)
		return readlink_shield(rp.path, buf, size);
	return REAL(readlink)(lp, buf, size);
}

EXPORT ssize_t __readlink_chk(const char *path, char *buf, size_t size,
			      size_t buflen)
{
	if (size > buflen)
		__chk_fail();
	return readlink(path, buf, size);
}

EXPORT ssize_t __readlinkat_chk(int dirfd, const char *path, char *buf,
				size_t size, size_t buflen)
{
	if (size > buflen)
		__chk_fail();
	return readlinkat(dirfd, path, buf, size);
}

EXPORT char *realpath(const char *path, char *resolved)
{
	const char *lp;
	struct rpath rp;
	struct stat st;
	int ldfd, r = path_route(AT_FDCWD, path, true, &rp, &lp, &ldfd);

	if (!r)
		return REAL(realpath)(lp, resolved);
	if (r > 0)
		r = shield_stat_path(rp.path, &st);
	if (!r && rp.slash && !S_ISDIR(st.st_mode))
		r = -ENOTDIR;
	if (r) {
		errno = -r;
		return NULL;
	}
	if (!resolved)
		return strdup(rp.path);
	return strcpy(resolved, rp.path);
}

EXPORT char *__realpath_chk(const char *path, char *resolved, size_t buflen)
{
	if (buflen < PATH_MAX)
		__chk_fail();
	return realpath(path, resolved);
}

EXPORT char *canonicalize_file_name(const char *path)
{
	return realpath(path, NULL);
}

/* ---- mmap ---- */

/*
 * A private copy of a protected file: anonymous memory filled with its
 * verified plaintext. A shared writable mapping cannot be kept in step
 * with the shield: refused. A shared read-only one is a copy too (nothing
 * writes a read-only volume).
 */
static void *mmap_shield(struct pfile *pf, void *addr, size_t len, int prot,
			 int flags, off_t off)
{
	int type = flags & MAP_TYPE, err = 0;
	long page = sysconf(_SC_PAGESIZE);
	size_t done = 0;
	void *p;

	if (!pf->file)
		err = pf->flags & O_PATH ? -EBADF : -ENODEV;
	else if ((type == MAP_SHARED || type == MAP_SHARED_VALIDATE) &&
		 (prot & PROT_WRITE)) {
		plog(FSHIELD_LOG_ERR,
		     "refusing a shared writable mapping of %s: protected files cannot be mapped so",
		     pf->path);
		err = -EACCES;
	} else if (!len || off < 0 || off % page) {
		err = -EINVAL;
	}
	if (err) {
		pfile_put(pf);
		errno = -err;
		return MAP_FAILED;
	}
	flags &= MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_NORESERVE |
		 MAP_POPULATE | MAP_LOCKED | MAP_32BIT | MAP_STACK;
	p = REAL(mmap64)(addr, len, PROT_READ | PROT_WRITE,
			 flags | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	while (p != MAP_FAILED && done < len) {
		ssize_t n = pfile_read(pf, (char *)p + done, len - done,
				       off + (off_t)done);

		if (n < 0)
			err = (int)n;
		if (n <= 0)
			break; /* the rest, past the end, stays zero */
		done += (size_t)n;
	}
	if (p != MAP_FAILED && !err && prot != (PROT_READ | PROT_WRITE) &&
	    REAL(mprotect)(p, len, prot) < 0)
		err = -errno;
	pfile_put(pf);
	if (p != MAP_FAILED && err) {
		REAL(munmap)(p, len);
		errno = -err;
		return MAP_FAILED;
	}
	if (p != MAP_FAILED)
		plog(FSHIELD_LOG_DEBUG, "mmap %s: %zu bytes from %lld, a copy",
		     pf->path, len, (long long)off);
	return p;
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd,
		  off_t off)
{
	struct pfile *pf = (flags & MAP_ANONYMOUS) ? NULL : pf_of(fd);

	if (!pf)
		return REAL(mmap)(addr, len, prot, flags, fd, off);
	return mmap_shield(pf, addr, len, prot, flags, off);
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd,
		    off64_t off)
{
	struct pfile *pf = (flags & MAP_ANONYMOUS) ? NULL : pf_of(fd);

	if (!pf)
		return REAL(mmap64)(addr, len, prot, flags, fd, off);
	return mmap_shield(pf, addr, len, prot, flags, off);
}

/* ---- copies between descriptors ---- */

/*
 * sendfile(), copy_file_range() and splice() with a protected end: read
 * through the shield, write with libc. @in_off, @out_off: NULL for the
 * descriptors' offsets. A protected @out is written through the shield.
 */
static ssize_t copy_fallback(struct pfile *in, int in_fd, off64_t *in_off,
			     struct pfile *out, int out_fd, off64_t *out_off,
			     size_t count)
{
	size_t done = 0, step = count < COPY_CHUNK_BYTES ? count
							  : COPY_CHUNK_BYTES;
	char *buf = NULL;
	ssize_t err = 0;

	if ((in_off && *in_off < 0) || (out_off && *out_off < 0))
		err = -EINVAL;
	else if (step && !(buf = malloc(step)))
		err = -ENOMEM;
	while (!err && done < count) {
		size_t want = count - done < step ? count - done : step;
		ssize_t n, w = 0;

		n = in ? pfile_read(in, buf, want, in_off ? *in_off : -1)
		       : in_off ? REAL(pread64)(in_fd, buf, want, *in_off)
				: REAL(read)(in_fd, buf, want);
		if (n < 0 && !in)
			n = -errno;
		if (n <= 0) {
			err = n;
			break;
		}
		while (w < n) {
			ssize_t k = out ? pfile_write(out, buf + w,
						      (size_t)(n - w),
						      out_off ? *out_off + w : -1)
				    : out_off
					    ? REAL(pwrite64)(out_fd, buf + w,
							     (size_t)(n - w),
							     *out_off + w)
					    : REAL(write)(out_fd, buf + w,
							  (size_t)(n - w));

			if (out && k < 0) {
				err = k;
				break;
			}
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				err = -errno;
				break;
			}
			w += k;
		}
		if (in_off)
			*in_off += w;
		if (out_off)
			*out_off += w;
		done += (size_t)w;
		if (w < n) { /* the unwritten rest: back to where it was */
			if (!in_off && in)
				pfile_seek(in, w - n, SEEK_CUR);
			else if (!in_off)
				REAL(lseek64)(in_fd, w - n, SEEK_CUR);
			break;
		}
	}
	free(buf);
	pfile_put(in);
	pfile_put(out);
	if (done)
		return (ssize_t)done;
	return err ? fail_with((int)err) : 0;
}

EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t *off, size_t count)
{
	struct pfile *in = pf_of(in_fd), *out = in ? pf_of(out_fd) : NULL;

	if (!in && !(out = pf_of(out_fd)))
		return REAL(sendfile64)(out_fd, in_fd, off, count);
	return copy_fallback(in, in_fd, off, out, out_fd, NULL, count);
}

EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *off, size_t count)
{
	return sendfile64(out_fd, in_fd, off, count);
}

EXPORT ssize_t copy_file_range(int in_fd, off64_t *in_off, int out_fd,
			       off64_t *out_off, size_t count,
			       unsigned int flags)
{
	struct pfile *in = pf_of(in_fd), *out = pf_of(out_fd);

	if (!in && !out)
		return REAL(copy_file_range)(in_fd, in_off, out_fd, out_off,
					     count, flags);
	if (flags) {
		pfile_put(in);
		pfile_put(out);
		return fail_with(-EINVAL);
	}
	return copy_fallback(in, in_fd, in_off, out, out_fd, out_off, count);
}

EXPORT ssize_t splice(int in_fd, off64_t *in_off, int out_fd,
		      off64_t *out_off, size_t count, unsigned int flags)
{
	struct pfile *in = pf_of(in_fd), *out = pf_of(out_fd);

	if (!in && !out)
		return REAL(splice)(in_fd, in_off, out_fd, out_off, count,
				    flags);
	return copy_fallback(in, in_fd, in_off, out, out_fd, out_off, count);
}

/* ---- changes ---- */

/* True when @fd is a protected descriptor. */
static bool fd_protected(int fd)
{
	struct pfile *pf = pf_of(fd);

	pfile_put(pf);
	return pf != NULL;
}

/* The result of a change the runtime made (or refused: EROFS). */
static int change_result(int err)
{
	return err < 0 ? fail_with(err) : 0;
}

/*
 * A change by path: @libc_call for a path of the host, @shield_call (with
 * rp.path, runtime entered) for a protected one when this process writes
 * the volume, EROFS otherwise.
 */
#define CHANGE_PATH(dirfd, path, follow, shield_call, libc_call)          \
	do {                                                                 \
		const char *lp;                                              \
		struct rpath rp;                                             \
		int ldfd, r = path_route(dirfd, path, follow, &rp, &lp,      \
					 &ldfd);                             \
		(void)ldfd;                                                  \
		if (!r)                                                      \
			return libc_call;                                    \
		if (r > 0 && !shield_writes())                               \
			r = -EROFS;                                          \
		else if (r > 0) {                                            \
			shield_enter();                                      \
			r = shield_call;                                     \
			shield_leave();                                      \
		}                                                            \
		return change_result(r);                                     \
	} while (0)

/* The same for a protected descriptor's path (@pf). */
#define CHANGE_FD(fd, shield_call, libc_call)                                \
	do {                                                                 \
		struct pfile *pf = pf_of(fd);                                \
		int r;                                                       \
		if (!pf)                                                     \
			return libc_call;                                    \
		r = -EROFS;                                                  \
		if (shield_writes()) {                                       \
			shield_enter();                                      \
			r = shield_call;                                     \
			shield_leave();                                      \
		}                                                            \
		pfile_put(pf);                                               \
		return change_result(r);                                     \
	} while (0)

static mode_t creation_mode(mode_t mode)
{
	return (mode & 07777) & ~current_umask();
}

EXPORT int mkdir(const char *path, mode_t mode)
{
	CHANGE_PATH(AT_FDCWD, path, false,
		    fshield_mkdir(g_vol, rp.path, creation_mode(mode)),
		    REAL(mkdir)(lp, mode));
}

EXPORT int mkdirat(int dirfd, const char *path, mode_t mode)
{
	CHANGE_PATH(dirfd, path, false,
		    fshield_mkdir(g_vol, rp.path, creation_mode(mode)),
		    REAL(mkdirat)(ldfd, lp, mode));
}

EXPORT int rmdir(const char *path)
{
	CHANGE_PATH(AT_FDCWD, path, false, fshield_rmdir(g_vol, rp.path),
		    REAL(rmdir)(lp));
}

/* unlink(2) refuses a trailing slash or a directory as the kernel does. */
static int unlink_shield(const struct rpath *rp)
{
	struct stat st;
	int err = fshield_stat(g_vol, rp->path, &st);

	if (!err && S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!err && rp->slash)
		return -ENOTDIR;
	return err ? err : fshield_unlink(g_vol, rp->path);
}

EXPORT int unlink(const char *path)
{
	CHANGE_PATH(AT_FDCWD, path, false, unlink_shield(&rp),
		    REAL(unlink)(lp));
}

EXPORT int unlinkat(int dirfd, const char *path, int flags)
{
	CHANGE_PATH(dirfd, path, false,
		    (flags & AT_REMOVEDIR) ? fshield_rmdir(g_vol, rp.path)
					   : unlink_shield(&rp),
		    REAL(unlinkat)(ldfd, lp, flags));
}

/* Device nodes and FIFOs: the fspf records none. */
EXPORT int mknod(const char *path, mode_t mode, dev_t dev)
{
	CHANGE_PATH(AT_FDCWD, path, false, -EPERM, REAL(mknod)(lp, mode, dev));
}

EXPORT int mknodat(int dirfd, const char *path, mode_t mode, dev_t dev)
{
	CHANGE_PATH(dirfd, path, false, -EPERM,
		    REAL(mknodat)(ldfd, lp, mode, dev));
}

EXPORT int symlink(const char *target, const char *path)
{
	CHANGE_PATH(AT_FDCWD, path, false,
		    fshield_symlink(g_vol, target, rp.path),
		    REAL(symlink)(target, lp));
}

EXPORT int symlinkat(const char *target, int dirfd, const char *path)
{
	CHANGE_PATH(dirfd, path, false, fshield_symlink(g_vol, target, rp.path),
		    REAL(symlinkat)(target, ldfd, lp));
}

static int truncate_shield(const char *path, int64_t size)
{
	return size < 0 ? -EINVAL : fshield_truncate(g_vol, path, (uint64_t)size);
}

EXPORT int truncate(const char *path, off_t size)
{
	CHANGE_PATH(AT_FDCWD, path, true, truncate_shield(rp.path, size),
		    REAL(truncate)(lp, size));
}

EXPORT int truncate64(const char *path, off64_t size)
{
	CHANGE_PATH(AT_FDCWD, path, true, truncate_shield(rp.path, size),
		    REAL(truncate64)(lp, size));
}

EXPORT int chmod(const char *path, mode_t mode)
{
	CHANGE_PATH(AT_FDCWD, path, true,
		    fshield_chmod(g_vol, rp.path, mode & 07777),
		    REAL(chmod)(lp, mode));
}

EXPORT int fchmodat(int dirfd, const char *path, mode_t mode, int flags)
{
	CHANGE_PATH(dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW),
		    fshield_chmod(g_vol, rp.path, mode & 07777),
		    REAL(fchmodat)(ldfd, lp, mode, flags));
}

EXPORT int chown(const char *path, uid_t uid, gid_t gid)
{
	CHANGE_PATH(AT_FDCWD, path, true, fshield_chown(g_vol, rp.path, uid, gid),
		    REAL(chown)(lp, uid, gid));
}

EXPORT int lchown(const char *path, uid_t uid, gid_t gid)
{
	CHANGE_PATH(AT_FDCWD, path, false,
		    fshield_chown(g_vol, rp.path, uid, gid),
		    REAL(lchown)(lp, uid, gid));
}

/*
 * Attributes by descriptor: a regular file's go to the open file, whatever
 * its name now (renamed or unlinked since); a directory's by its path.
 */
static int pf_chown(struct pfile *pf, uid_t uid, gid_t gid)
{
	return pf->file ? fshield_fchown(pf->file, uid, gid)
			: fshield_chown(g_vol, pf->path, uid, gid);
}

static int pf_chmod(struct pfile *pf, mode_t mode)
{
	return pf->file ? fshield_fchmod(pf->file, mode)
			: fshield_chmod(g_vol, pf->path, mode);
}

static int pf_utimens(struct pfile *pf, const struct timespec t[2])
{
	return pf->file ? fshield_futimens(pf->file, t)
			: fshield_utimens(g_vol, pf->path, t);
}

EXPORT int fchown(int fd, uid_t uid, gid_t gid)
{
	CHANGE_FD(fd, pf_chown(pf, uid, gid), REAL(fchown)(fd, uid, gid));
}

EXPORT int fchownat(int dirfd, const char *path, uid_t uid, gid_t gid,
		    int flags)
{
	if ((flags & AT_EMPTY_PATH) && !*path && fd_protected(dirfd))
		return fchown(dirfd, uid, gid);
	CHANGE_PATH(dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW),
		    fshield_chown(g_vol, rp.path, uid, gid),
		    REAL(fchownat)(ldfd, lp, uid, gid, flags));
}

EXPORT int fchmod(int fd, mode_t mode)
{
	CHANGE_FD(fd, pf_chmod(pf, mode & 07777), REAL(fchmod)(fd, mode));
}

EXPORT int futimens(int fd, const struct timespec t[2])
{
	CHANGE_FD(fd, pf_utimens(pf, t), REAL(futimens)(fd, t));
}

EXPORT int utimensat(int dirfd, const char *path, const struct timespec t[2],
		     int flags)
{
	CHANGE_PATH(dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW),
		    fshield_utimens(g_vol, rp.path, t),
		    REAL(utimensat)(ldfd, lp, t, flags));
}

/* struct timeval times of utimes(2) as utimensat(2)'s; NULL: now. */
static const struct timespec *timespecs(const struct timeval *tv,
					struct timespec ts[2])
{
	if (!tv)
		return NULL;
	for (int i = 0; i < 2; i++) {
		ts[i].tv_sec = tv[i].tv_sec;
		ts[i].tv_nsec = tv[i].tv_usec * 1000;
	}
	return ts;
}

EXPORT int utimes(const char *path, const struct timeval tv[2])
{
	struct timespec ts[2];

	CHANGE_PATH(AT_FDCWD, path, true,
		    fshield_utimens(g_vol, rp.path, timespecs(tv, ts)),
		    REAL(utimes)(lp, tv));
}

EXPORT int utime(const char *path, const struct utimbuf *t)
{
	struct timespec ts[2];

	if (t) {
		ts[0] = (struct timespec){ t->actime, 0 };
		ts[1] = (struct timespec){ t->modtime, 0 };
	}
	CHANGE_PATH(AT_FDCWD, path, true,
		    fshield_utimens(g_vol, rp.path, t ? ts : NULL),
		    REAL(utime)(lp, t));
}

EXPORT int lutimes(const char *path, const struct timeval tv[2])
{
	struct timespec ts[2];

	CHANGE_PATH(AT_FDCWD, path, false,
		    fshield_utimens(g_vol, rp.path, timespecs(tv, ts)),
		    REAL(lutimes)(lp, tv));
}

EXPORT int futimes(int fd, const struct timeval tv[2])
{
	struct timespec ts[2];

	CHANGE_FD(fd, pf_utimens(pf, timespecs(tv, ts)), REAL(futimes)(fd, tv));
}

/* As on a descriptor opened read-only: EINVAL. */
static int ftruncate_shield(struct pfile *pf, int64_t size)
{
	if (!pf->file || (pf->flags & O_ACCMODE) == O_RDONLY)
		return -EINVAL;
	if (size < 0)
		return -EINVAL;
	return fshield_ftruncate(pf->file, (uint64_t)size);
}

EXPORT int ftruncate(int fd, off_t size)
{
	CHANGE_FD(fd, ftruncate_shield(pf, size), REAL(ftruncate)(fd, size));
}

EXPORT int ftruncate64(int fd, off64_t size)
{
	CHANGE_FD(fd, ftruncate_shield(pf, size), REAL(ftruncate64)(fd, size));
}

/*
 * Two paths: both the host's go to libc; both protected to the runtime
 * (which wants them in one region: EXDEV, which mv answers by copying);
 * one of each is EXDEV too.
 */
#define CHANGE_PATHS(dfd1, p1, dfd2, p2, shield_call, libc_call)            \
	do {                                                                 \
		const char *lp, *lp2;                                        \
		struct rpath rp, rp2;                                        \
		int ldfd, ldfd2, r, r2;                                      \
		r = path_route(dfd1, p1, false, &rp, &lp, &ldfd);            \
		r2 = r < 0 ? 0 : path_route(dfd2, p2, false, &rp2, &lp2,     \
					    &ldfd2);                         \
		(void)ldfd;                                                  \
		(void)ldfd2;                                                 \
		if (!r && !r2)                                               \
			return libc_call;                                    \
		if (r >= 0 && r2 >= 0 && !shield_writes())                   \
			r = -EROFS;                                          \
		else if (r >= 0 && r2 >= 0 && r != r2)                       \
			r = -EXDEV;                                          \
		else if (r > 0 && r2 > 0) {                                  \
			shield_enter();                                      \
			r = shield_call;                                     \
			shield_leave();                                      \
		}                                                            \
		return change_result(r < 0 ? r : r2);                        \
	} while (0)

EXPORT int rename(const char *from, const char *to)
{
	CHANGE_PATHS(AT_FDCWD, from, AT_FDCWD, to,
		     fshield_rename(g_vol, rp.path, rp2.path, 0),
		     REAL(rename)(lp, lp2));
}

EXPORT int renameat(int fromfd, const char *from, int tofd, const char *to)
{
	CHANGE_PATHS(fromfd, from, tofd, to,
		     fshield_rename(g_vol, rp.path, rp2.path, 0),
		     REAL(renameat)(ldfd, lp, ldfd2, lp2));
}

/* RENAME_EXCHANGE and RENAME_WHITEOUT: the runtime has neither. */
static int rename2_shield(const char *from, const char *to,
			  unsigned int flags)
{
	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL;
	return fshield_rename(g_vol, from, to,
			      flags ? FSHIELD_RENAME_NOREPLACE : 0);
}

EXPORT int renameat2(int fromfd, const char *from, int tofd, const char *to,
		     unsigned int flags)
{
	CHANGE_PATHS(fromfd, from, tofd, to,
		     rename2_shield(rp.path, rp2.path, flags),
		     REAL(renameat2)(ldfd, lp, ldfd2, lp2, flags));
}

/* Hard links: the fspf records none (EPERM, as file systems without). */
EXPORT int link(const char *from, const char *to)
{
	CHANGE_PATHS(AT_FDCWD, from, AT_FDCWD, to, -EPERM,
		     REAL(link)(lp, lp2));
}

EXPORT int linkat(int fromfd, const char *from, int tofd, const char *to,
		  int flags)
{
	CHANGE_PATHS(fromfd, from, tofd, to, -EPERM,
		     REAL(linkat)(ldfd, lp, ldfd2, lp2, flags));
}

/*
 * Extended attributes: the fspf records none, so a protected path has
 * none to read (ENOTSUP, which tells ls and cp to stop asking) and none
 * can be set (EROFS).
 */
static int xattr_route(const char *path, bool follow, int err,
		       struct rpath *rp, const char **lp, int *ret)
{
	int ldfd, r = path_route(AT_FDCWD, path, follow, rp, lp, &ldfd);

	if (!r)
		return 0;
	*ret = fail_with(r < 0 ? r : err);
	return 1;
}

#define XATTR_PATH(path, follow, err, call)                                  \
	do {                                                                 \
		const char *lp;                                              \
		struct rpath rp;                                             \
		int r;                                                       \
		if (xattr_route(path, follow, err, &rp, &lp, &r))            \
			return r;                                            \
		return call;                                                 \
	} while (0)

EXPORT ssize_t getxattr(const char *path, const char *name, void *value,
			size_t size)
{
	XATTR_PATH(path, true, -ENOTSUP,
		   REAL(getxattr)(lp, name, value, size));
}

EXPORT ssize_t lgetxattr(const char *path, const char *name, void *value,
			 size_t size)
{
	XATTR_PATH(path, false, -ENOTSUP,
		   REAL(lgetxattr)(lp, name, value, size));
}

EXPORT ssize_t listxattr(const char *path, char *list, size_t size)
{
	XATTR_PATH(path, true, -ENOTSUP, REAL(listxattr)(lp, list, size));
}

EXPORT ssize_t llistxattr(const char *path, char *list, size_t size)
{
	XATTR_PATH(path, false, -ENOTSUP, REAL(llistxattr)(lp, list, size));
}

EXPORT int setxattr(const char *path, const char *name, const void *value,
		    size_t size, int flags)
{
	XATTR_PATH(path, true, -EROFS,
		   REAL(setxattr)(lp, name, value, size, flags));
}

EXPORT int lsetxattr(const char *path, const char *name, const void *value,
		     size_t size, int flags)
{
	XATTR_PATH(path, false, -EROFS,
		   REAL(lsetxattr)(lp, name, value, size, flags));
}

EXPORT int removexattr(const char *path, const char *name)
{
	XATTR_PATH(path, true, -EROFS, REAL(removexattr)(lp, name));
}

EXPORT int lremovexattr(const char *path, const char *name)
{
	XATTR_PATH(path, false, -EROFS, REAL(lremovexattr)(lp, name));
}

EXPORT ssize_t fgetxattr(int fd, const char *name, void *value, size_t size)
{
	return fd_protected(fd) ? fail_with(-ENOTSUP)
				: REAL(fgetxattr)(fd, name, value, size);
}

EXPORT ssize_t flistxattr(int fd, char *list, size_t size)
{
	return fd_protected(fd) ? fail_with(-ENOTSUP)
				: REAL(flistxattr)(fd, list, size);
}

EXPORT int fsetxattr(int fd, const char *name, const void *value,
		     size_t size, int flags)
{
	return fd_protected(fd) ? fail_with(-EROFS)
				: REAL(fsetxattr)(fd, name, value, size, flags);
}

EXPORT int fremovexattr(int fd, const char *name)
{
	return fd_protected(fd) ? fail_with(-EROFS)
				: REAL(fremovexattr)(fd, name);
}
