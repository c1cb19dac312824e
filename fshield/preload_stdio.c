// SPDX-License-Identifier: Apache-2.0
/*
 * libfshield-preload: stdio streams. glibc's FILE reads with system calls
 * of its own, so a protected file gets a cookie stream (fopencookie())
 * whose functions go through the shield's descriptor. The stream's fileno
 * is that descriptor, as a program expects (fstat(fileno(fp)), fadvise):
 * glibc keeps a cookie stream's _fileno only to tell it open (any value
 * but -1) and to answer fileno().
 */
#include <stdlib.h>
#include <string.h>

#include "preload_i.h"

static ssize_t cookie_read(void *cookie, char *buf, size_t size)
{
	struct pfile *pf = fd_get((int)(intptr_t)cookie);
	ssize_t n;

	if (!pf)
		return fail_with(-EBADF);
	n = pfile_read(pf, buf, size, -1);
	pfile_put(pf);
	return n < 0 ? fail_with((int)n) : n;
}

/* fopencookie(3): the count written, or 0 and errno on error. */
static ssize_t cookie_write(void *cookie, const char *buf, size_t size)
{
	struct pfile *pf = fd_get((int)(intptr_t)cookie);
	ssize_t n;

	if (!pf) {
		errno = EBADF;
		return 0;
	}
	n = pfile_write(pf, buf, size, -1);
	pfile_put(pf);
	if (n < 0) {
		errno = (int)-n;
		return 0;
	}
	return n;
}

static int cookie_seek(void *cookie, off64_t *pos, int whence)
{
	struct pfile *pf = fd_get((int)(intptr_t)cookie);
	off_t r;

	if (!pf)
		return fail_with(-EBADF);
	r = pfile_seek(pf, *pos, whence);
	pfile_put(pf);
	if (r < 0)
		return fail_with((int)r);
	*pos = r;
	return 0;
}

static int cookie_close(void *cookie)
{
	return shield_close((int)(intptr_t)cookie);
}

static const cookie_io_functions_t g_cookie_io = {
	.read = cookie_read,
	.write = cookie_write,
	.seek = cookie_seek,
	.close = cookie_close,
};

/*
 * A stream over protected descriptor @fd, which it then owns, with the
 * access of fopen() mode @mode ("r", "w", "a", "r+", ...): the opening
 * (creating, truncating) is shield_open()'s, appending pfile_write()'s.
 */
static FILE *stream_over(int fd, const char *mode)
{
	const char *m = mode[0] == 'r' ? (strchr(mode, '+') ? "r+" : "r")
					: mode[0] == 'w' ? (strchr(mode, '+') ? "w+" : "w")
							 : (strchr(mode, '+') ? "a+" : "a");
	FILE *fp = fopencookie((void *)(intptr_t)fd, m, g_cookie_io);

	if (fp)
		fp->_fileno = fd;
	return fp;
}

/* As stream_over(), closing @fd on failure. */
static FILE *cookie_stream(int fd, const char *mode)
{
	FILE *fp = stream_over(fd, mode);

	if (!fp) {
		int saved = errno;

		shield_close(fd);
		errno = saved;
	}
	return fp;
}

/* open(2) flags of fopen() mode @mode (glibc's letters). */
static int mode_flags(const char *mode)
{
	int flags = 0;

	switch (mode[0]) {
	case 'r':
		flags = O_RDONLY;
		break;
	case 'w':
		flags = O_WRONLY | O_CREAT | O_TRUNC;
		break;
	case 'a':
		flags = O_WRONLY | O_CREAT | O_APPEND;
		break;
	default:
		return -EINVAL;
	}
	for (const char *c = mode + 1; *c && *c != ','; c++) {
		if (*c == '+')
			flags = (flags & ~O_ACCMODE) | O_RDWR;
		else if (*c == 'e')
			flags |= O_CLOEXEC;
		else if (*c == 'x')
			flags |= O_EXCL;
	}
	return flags;
}

/* fopen() of protected @rp: a cookie stream, or NULL and errno. */
static FILE *fopen_shield(const struct rpath *rp, const char *mode)
{
	int flags = mode_flags(mode), fd;

	fd = flags < 0 ? flags : shield_open(rp, flags, 0666);
	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	return cookie_stream(fd, mode);
}

static FILE *fopen_common(bool is64, const char *path, const char *mode)
{
	const char *lp;
	struct rpath rp;
	int ldfd, r = path_route(AT_FDCWD, path, true, &rp, &lp, &ldfd);

	if (!r)
		return is64 ? REAL(fopen64)(lp, mode) : REAL(fopen)(lp, mode);
	if (r < 0) {
		errno = -r;
		return NULL;
	}
	return fopen_shield(&rp, mode);
}

EXPORT FILE *fopen(const char *path, const char *mode)
{
	return fopen_common(false, path, mode);
}

EXPORT FILE *fopen64(const char *path, const char *mode)
{
	return fopen_common(true, path, mode);
}

EXPORT FILE *fdopen(int fd, const char *mode)
{
	struct pfile *pf = shield_on() ? fd_get(fd) : NULL;
	int flags = mode_flags(mode);

	if (!pf)
		return REAL(fdopen)(fd, mode);
	/* As the kernel's: the stream cannot write more than @fd. */
	if (flags < 0 || pf->type != S_IFREG ||
	    ((flags & O_ACCMODE) != O_RDONLY &&
	     (pf->flags & O_ACCMODE) == O_RDONLY) ||
	    ((flags & O_ACCMODE) != O_WRONLY &&
	     (pf->flags & O_ACCMODE) == O_WRONLY)) {
		int err = flags >= 0 && pf->type == S_IFDIR ? EISDIR : EINVAL;

		pfile_put(pf);
		errno = err;
		return NULL;
	}
	pfile_put(pf);
	return stream_over(fd, mode);
}

/*
 * freopen() onto a protected file: @stream is closed and a cookie stream
 * takes its descriptor number; the standard streams' variables follow it.
 * Callers that keep the old FILE pointer (other than stdin, stdout and
 * stderr) must use the returned one, as freopen(3) allows.
 */
static FILE *freopen_shield(const struct rpath *rp, const char *mode,
			    FILE *stream)
{
	int flags = mode_flags(mode), oldfd = stream ? fileno(stream) : -1;
	int fd;
	FILE *fp;

	if (stream)
		fclose(stream);
	fd = flags < 0 ? flags : shield_open(rp, flags, 0666);
	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	if (oldfd >= 0 && oldfd != fd &&
	    dup3(fd, oldfd, flags & O_CLOEXEC) == oldfd) {
		shield_close(fd);
		fd = oldfd;
	}
	fp = cookie_stream(fd, mode);
	if (fp && stream == stdin)
		stdin = fp;
	else if (fp && stream == stdout)
		stdout = fp;
	else if (fp && stream == stderr)
		stderr = fp;
	return fp;
}

static FILE *freopen_common(bool is64, const char *path, const char *mode,
			    FILE *stream)
{
	const char *lp;
	struct rpath rp;
	int ldfd, r = path_route(AT_FDCWD, path, true, &rp, &lp, &ldfd);

	if (!r)
		return is64 ? REAL(freopen64)(lp, mode, stream)
			    : REAL(freopen)(lp, mode, stream);
	if (r < 0) {
		errno = -r;
		return NULL;
	}
	return freopen_shield(&rp, mode, stream);
}

EXPORT FILE *freopen(const char *path, const char *mode, FILE *stream)
{
	return freopen_common(false, path, mode, stream);
}

EXPORT FILE *freopen64(const char *path, const char *mode, FILE *stream)
{
	return freopen_common(true, path, mode, stream);
}
