/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libfshield-preload internals: the state shared by its files (preload.c:
 * start-up, logging, the table of protected descriptors; preload_path.c:
 * path resolution and the current directory; preload_io.c: descriptors and
 * paths; preload_dir.c: directory streams; preload_stdio.c: stdio streams;
 * preload_dl.c: dlopen() and SCONE_ALLOW_DLOPEN).
 *
 * Built without _FILE_OFFSET_BITS=64 so that every libc name (open and
 * open64, stat and stat64, ...) can be defined as itself; on the LP64
 * targets it supports, both names of each pair share one layout.
 */
#ifndef FSHIELD_PRELOAD_I_H
#define FSHIELD_PRELOAD_I_H

#ifdef _FILE_OFFSET_BITS
#error "build the preload layer without _FILE_OFFSET_BITS"
#endif

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utime.h>

#include "fshield.h"

_Static_assert(sizeof(off_t) == 8 && sizeof(off_t) == sizeof(off64_t),
	       "the preload layer supports LP64 targets only");
_Static_assert(sizeof(struct stat) == sizeof(struct stat64),
	       "stat and stat64 must share one layout");
_Static_assert(sizeof(struct dirent) == sizeof(struct dirent64),
	       "dirent and dirent64 must share one layout");

/* What the preload library exports: the libc names it interposes. */
#define EXPORT __attribute__((visibility("default")))

/*
 * The libc functions behind ours, found with dlsym(RTLD_NEXT) on first use.
 * Our own code calls libc only through REAL(): a plain call would come
 * back into our interposer.
 */
#define REAL_FNS(X)                                                          \
	X(int, open, (const char *, int, ...))                               \
	X(int, open64, (const char *, int, ...))                             \
	X(int, openat, (int, const char *, int, ...))                        \
	X(int, openat64, (int, const char *, int, ...))                      \
	X(int, __open_2, (const char *, int))                                \
	X(int, __open64_2, (const char *, int))                              \
	X(int, __openat_2, (int, const char *, int))                         \
	X(int, __openat64_2, (int, const char *, int))                       \
	X(int, creat, (const char *, mode_t))                                \
	X(int, creat64, (const char *, mode_t))                              \
	X(ssize_t, read, (int, void *, size_t))                              \
	X(ssize_t, __read_chk, (int, void *, size_t, size_t))                \
	X(ssize_t, pread, (int, void *, size_t, off_t))                      \
	X(ssize_t, pread64, (int, void *, size_t, off64_t))                  \
	X(ssize_t, __pread_chk, (int, void *, size_t, off_t, size_t))        \
	X(ssize_t, __pread64_chk, (int, void *, size_t, off64_t, size_t))    \
	X(ssize_t, readv, (int, const struct iovec *, int))                  \
	X(ssize_t, preadv, (int, const struct iovec *, int, off_t))          \
	X(ssize_t, preadv64, (int, const struct iovec *, int, off64_t))      \
	X(ssize_t, preadv2, (int, const struct iovec *, int, off_t, int))    \
	X(ssize_t, preadv64v2, (int, const struct iovec *, int, off64_t, int)) \
	X(ssize_t, write, (int, const void *, size_t))                       \
	X(ssize_t, pwrite, (int, const void *, size_t, off_t))               \
	X(ssize_t, pwrite64, (int, const void *, size_t, off64_t))           \
	X(ssize_t, writev, (int, const struct iovec *, int))                 \
	X(ssize_t, pwritev, (int, const struct iovec *, int, off_t))         \
	X(ssize_t, pwritev64, (int, const struct iovec *, int, off64_t))     \
	X(ssize_t, pwritev2, (int, const struct iovec *, int, off_t, int))   \
	X(ssize_t, pwritev64v2, (int, const struct iovec *, int, off64_t, int)) \
	X(int, fsync, (int))                                                 \
	X(int, mkstemp, (char *))                                            \
	X(int, mkstemp64, (char *))                                          \
	X(int, mkostemp, (char *, int))                                      \
	X(int, mkostemp64, (char *, int))                                    \
	X(int, mkstemps, (char *, int))                                      \
	X(int, mkstemps64, (char *, int))                                    \
	X(int, mkostemps, (char *, int, int))                                \
	X(int, mkostemps64, (char *, int, int))                              \
	X(int, fdatasync, (int))                                             \
	X(int, utimes, (const char *, const struct timeval *))               \
	X(int, lutimes, (const char *, const struct timeval *))              \
	X(int, futimes, (int, const struct timeval *))                       \
	X(off_t, lseek, (int, off_t, int))                                   \
	X(off64_t, lseek64, (int, off64_t, int))                             \
	X(int, close, (int))                                                 \
	X(int, close_range, (unsigned int, unsigned int, int))               \
	X(void, closefrom, (int))                                            \
	X(int, dup, (int))                                                   \
	X(int, dup2, (int, int))                                             \
	X(int, dup3, (int, int, int))                                        \
	X(int, fcntl, (int, int, ...))                                       \
	X(int, fcntl64, (int, int, ...))                                     \
	X(int, stat, (const char *, struct stat *))                          \
	X(int, stat64, (const char *, struct stat64 *))                      \
	X(int, lstat, (const char *, struct stat *))                         \
	X(int, lstat64, (const char *, struct stat64 *))                     \
	X(int, fstat, (int, struct stat *))                                  \
	X(int, fstat64, (int, struct stat64 *))                              \
	X(int, fstatat, (int, const char *, struct stat *, int))             \
	X(int, fstatat64, (int, const char *, struct stat64 *, int))         \
	X(int, __xstat, (int, const char *, struct stat *))                  \
	X(int, __xstat64, (int, const char *, struct stat64 *))              \
	X(int, __lxstat, (int, const char *, struct stat *))                 \
	X(int, __lxstat64, (int, const char *, struct stat64 *))             \
	X(int, __fxstat, (int, int, struct stat *))                          \
	X(int, __fxstat64, (int, int, struct stat64 *))                      \
	X(int, __fxstatat, (int, int, const char *, struct stat *, int))     \
	X(int, __fxstatat64, (int, int, const char *, struct stat64 *, int)) \
	X(int, statx, (int, const char *, int, unsigned int, struct statx *)) \
	X(int, access, (const char *, int))                                  \
	X(int, faccessat, (int, const char *, int, int))                     \
	X(int, euidaccess, (const char *, int))                              \
	X(int, eaccess, (const char *, int))                                 \
	X(ssize_t, readlink, (const char *, char *, size_t))                 \
	X(ssize_t, readlinkat, (int, const char *, char *, size_t))          \
	X(ssize_t, __readlink_chk, (const char *, char *, size_t, size_t))   \
	X(ssize_t, __readlinkat_chk, (int, const char *, char *, size_t, size_t)) \
	X(char *, realpath, (const char *, char *))                          \
	X(char *, __realpath_chk, (const char *, char *, size_t))            \
	X(char *, canonicalize_file_name, (const char *))                    \
	X(char *, getcwd, (char *, size_t))                                  \
	X(char *, __getcwd_chk, (char *, size_t, size_t))                    \
	X(char *, get_current_dir_name, (void))                              \
	X(int, chdir, (const char *))                                        \
	X(int, fchdir, (int))                                                \
	X(void *, mmap, (void *, size_t, int, int, int, off_t))              \
	X(void *, mmap64, (void *, size_t, int, int, int, off64_t))          \
	X(int, munmap, (void *, size_t))                                     \
	X(int, mprotect, (void *, size_t, int))                              \
	X(ssize_t, sendfile, (int, int, off_t *, size_t))                    \
	X(ssize_t, sendfile64, (int, int, off64_t *, size_t))                \
	X(ssize_t, copy_file_range, (int, off64_t *, int, off64_t *, size_t, unsigned int)) \
	X(ssize_t, splice, (int, off64_t *, int, off64_t *, size_t, unsigned int)) \
	X(int, mkdir, (const char *, mode_t))                                \
	X(int, mkdirat, (int, const char *, mode_t))                         \
	X(int, rmdir, (const char *))                                        \
	X(int, unlink, (const char *))                                       \
	X(int, unlinkat, (int, const char *, int))                           \
	X(int, rename, (const char *, const char *))                         \
	X(int, renameat, (int, const char *, int, const char *))             \
	X(int, renameat2, (int, const char *, int, const char *, unsigned int)) \
	X(int, link, (const char *, const char *))                           \
	X(int, linkat, (int, const char *, int, const char *, int))          \
	X(int, symlink, (const char *, const char *))                        \
	X(int, symlinkat, (const char *, int, const char *))                 \
	X(int, truncate, (const char *, off_t))                              \
	X(int, truncate64, (const char *, off64_t))                          \
	X(int, ftruncate, (int, off_t))                                      \
	X(int, ftruncate64, (int, off64_t))                                  \
	X(int, chmod, (const char *, mode_t))                                \
	X(int, fchmod, (int, mode_t))                                        \
	X(int, fchmodat, (int, const char *, mode_t, int))                   \
	X(int, chown, (const char *, uid_t, gid_t))                          \
	X(int, lchown, (const char *, uid_t, gid_t))                         \
	X(int, fchown, (int, uid_t, gid_t))                                  \
	X(int, fchownat, (int, const char *, uid_t, gid_t, int))             \
	X(int, utimensat, (int, const char *, const struct timespec *, int)) \
	X(int, futimens, (int, const struct timespec *))                     \
	X(int, mknod, (const char *, mode_t, dev_t))                         \
	X(int, mknodat, (int, const char *, mode_t, dev_t))                  \
	X(ssize_t, getxattr, (const char *, const char *, void *, size_t))   \
	X(ssize_t, lgetxattr, (const char *, const char *, void *, size_t))  \
	X(ssize_t, fgetxattr, (int, const char *, void *, size_t))           \
	X(ssize_t, listxattr, (const char *, char *, size_t))                \
	X(ssize_t, llistxattr, (const char *, char *, size_t))               \
	X(ssize_t, flistxattr, (int, char *, size_t))                        \
	X(int, setxattr, (const char *, const char *, const void *, size_t, int)) \
	X(int, lsetxattr, (const char *, const char *, const void *, size_t, int)) \
	X(int, fsetxattr, (int, const char *, const void *, size_t, int))    \
	X(int, removexattr, (const char *, const char *))                    \
	X(int, lremovexattr, (const char *, const char *))                   \
	X(int, fremovexattr, (int, const char *))                            \
	X(DIR *, opendir, (const char *))                                    \
	X(DIR *, fdopendir, (int))                                           \
	X(struct dirent *, readdir, (DIR *))                                 \
	X(struct dirent64 *, readdir64, (DIR *))                             \
	X(int, readdir_r, (DIR *, struct dirent *, struct dirent **))        \
	X(int, readdir64_r, (DIR *, struct dirent64 *, struct dirent64 **))  \
	X(int, closedir, (DIR *))                                            \
	X(int, dirfd, (DIR *))                                               \
	X(void, rewinddir, (DIR *))                                          \
	X(long, telldir, (DIR *))                                            \
	X(void, seekdir, (DIR *, long))                                      \
	X(int, scandirat, (int, const char *, struct dirent ***,             \
			   int (*)(const struct dirent *),                   \
			   int (*)(const struct dirent **,                   \
				   const struct dirent **)))                 \
	X(int, scandirat64, (int, const char *, struct dirent64 ***,         \
			     int (*)(const struct dirent64 *),               \
			     int (*)(const struct dirent64 **,               \
				     const struct dirent64 **)))             \
	X(int, glob, (const char *, int, int (*)(const char *, int), glob_t *)) \
	X(int, glob64, (const char *, int, int (*)(const char *, int),       \
			glob64_t *))                                         \
	X(int, utime, (const char *, const struct utimbuf *))                \
	X(pid_t, wait, (int *))                                              \
	X(pid_t, waitpid, (pid_t, int *, int))                               \
	X(int, waitid, (idtype_t, id_t, siginfo_t *, int))                   \
	X(pid_t, wait3, (int *, int, struct rusage *))                       \
	X(pid_t, wait4, (pid_t, int *, int, struct rusage *))                \
	X(int, system, (const char *))                                       \
	X(int, pclose, (FILE *))                                             \
	X(int, nftw, (const char *,                                          \
		      int (*)(const char *, const struct stat *, int,        \
			      struct FTW *),                                 \
		      int, int))                                             \
	X(int, nftw64, (const char *,                                        \
			int (*)(const char *, const struct stat64 *, int,    \
				struct FTW *),                               \
			int, int))                                           \
	X(int, ftw, (const char *, int (*)(const char *, const struct stat *, \
					   int),                             \
		     int))                                                   \
	X(int, ftw64, (const char *,                                         \
		       int (*)(const char *, const struct stat64 *, int), int)) \
	X(FILE *, fopen, (const char *, const char *))                       \
	X(FILE *, fopen64, (const char *, const char *))                     \
	X(FILE *, fdopen, (int, const char *))                               \
	X(FILE *, freopen, (const char *, const char *, FILE *))             \
	X(FILE *, freopen64, (const char *, const char *, FILE *))           \
	X(void *, dlopen, (const char *, int))                               \
	X(void *, dlmopen, (Lmid_t, const char *, int))                      \
	X(long, syscall, (long, ...))

#define REAL_FIELD(ret, name, params) ret(*name) params;
struct real_fns {
	REAL_FNS(REAL_FIELD)
};
#undef REAL_FIELD

extern struct real_fns g_real;
void *real_resolve(void **slot, const char *name);

#define REAL(name)                                                           \
	((__typeof__(g_real.name))(                                          \
		__atomic_load_n(&g_real.name, __ATOMIC_ACQUIRE)              \
			? (void *)g_real.name                                \
			: real_resolve((void **)&g_real.name, #name)))

/*
 * Names of libc that its headers no longer declare (the stat functions of
 * binaries built before glibc 2.33, the fortified ones).
 */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
ssize_t __read_chk(int fd, void *buf, size_t size, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t size, off_t off, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t size, off64_t off,
		      size_t buflen);
int __xstat(int ver, const char *path, struct stat *st);
int __xstat64(int ver, const char *path, struct stat64 *st);
int __lxstat(int ver, const char *path, struct stat *st);
int __lxstat64(int ver, const char *path, struct stat64 *st);
int __fxstat(int ver, int fd, struct stat *st);
int __fxstat64(int ver, int fd, struct stat64 *st);
int __fxstatat(int ver, int dirfd, const char *path, struct stat *st,
	       int flags);
int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st,
		 int flags);
ssize_t __readlink_chk(const char *path, char *buf, size_t size,
		       size_t buflen);
ssize_t __readlinkat_chk(int dirfd, const char *path, char *buf, size_t size,
			 size_t buflen);
char *__realpath_chk(const char *path, char *resolved, size_t buflen);
char *__getcwd_chk(char *buf, size_t size, size_t buflen);
void __chk_fail(void) __attribute__((noreturn));

/* ---- preload.c ---- */

/* The volume, or NULL: SCONE_FSPF is not set, everything passes through. */
extern struct fshield_volume *g_vol;
/* SCONE_FSPF_MUTABLE, SCONE_FSPF_STRICT; a forked child of the writer. */
extern bool g_mutable;
extern bool g_strict;
extern bool g_forked;
/* SCONE_ALLOW_DLOPEN: 0 (unset), 1 or 2 (preload_dl.c). */
extern int g_dlopen_mode;

/* True when this process may change protected files. */
static inline bool shield_writes(void)
{
	return g_mutable && !g_forked;
}

/*
 * Non-zero while this thread runs inside the shield (the runtime, our own
 * start-up): every interposed call then goes straight to libc.
 */
extern __thread int t_depth __attribute__((tls_model("initial-exec")));

void preload_init(void);
extern int g_ready;

/* True when the shield is on for this call (starting it on first use). */
static inline bool shield_on(void)
{
	if (t_depth)
		return false;
	if (!__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE))
		preload_init();
	return g_vol != NULL;
}

/*
 * Around every call into the runtime (fork waits for them to end); a
 * volume let go for a child is taken back first, except by
 * shield_enter_regions(), for fshield_is_protected() alone.
 */
void shield_enter(void);
void shield_enter_regions(void);
void shield_leave(void);
/* SCONE_FSPF_MUTABLE: let go of the volume before waiting for a child. */
void volume_yield(void);

__attribute__((format(printf, 2, 3))) void plog(int level,
						 const char *fmt, ...);

/* -1 with errno set from negative errno @err (always negative). */
static inline int fail_with(int err)
{
	errno = -err;
	return -1;
}

/*
 * An open file description of the shield: a protected file, directory or
 * O_PATH handle. Descriptors made by dup() share one; the offset is
 * shared, as POSIX wants.
 */
struct pfile {
	unsigned refs;			/* g_table_lock */
	pthread_mutex_t lock;		/* @offset */
	struct fshield_file *file;	/* a regular file opened for reading */
	char *path;			/* in the protected tree */
	mode_t type;			/* S_IFREG, S_IFDIR, S_IFLNK */
	int flags;			/* as open(2) got them (F_GETFL) */
	uint64_t offset;
};

struct pfile *fd_get(int fd);
/* Return: 0, or the error of the commit that closing a written file made. */
int pfile_put(struct pfile *pf);
void fd_install(int fd, struct pfile *pf);
int fd_drop(int fd);
/* At exit: the runtime files of every protected descriptor closed. */
void fd_close_files(void);
/* A lock placeholder for protected @path (see preload.c). fd or -errno. */
int lock_placeholder(const char *path, int flags);
/* Drop the protected descriptors from @first to @last. */
void fd_drop_range(unsigned int first, unsigned int last);
struct pfile *pfile_new(const char *path, mode_t type, int flags,
			struct fshield_file *file);

/* ---- preload_path.c ---- */

/*
 * A path as the shield sees it: absolute, normal, the protected symlinks
 * on the way followed.
 */
struct rpath {
	char path[PATH_MAX];
	bool prot;		/* the shield answers it */
	bool rewritten;		/* libc must get @path, not the caller's */
	bool slash;		/* the caller's path ended with '/' */
};

/*
 * Resolve @path (relative to @dirfd) for an interposed call. Return: 1 the
 * shield's (rp->prot), 0 libc's (with *@libc_path and *@libc_dirfd to
 * pass it), or a negative errno for the caller to fail with.
 */
int path_route(int dirfd, const char *path, bool follow, struct rpath *rp,
	       const char **libc_path, int *libc_dirfd);

/* The shield's current directory, a protected one, or NULL. */
bool vcwd_get(char *buf, size_t size);
void vcwd_set(const char *path);
void vcwd_atfork_prepare(void);
void vcwd_atfork_release(bool child);

/* ---- preload_io.c ---- */

int shield_stat_path(const char *path, struct stat *st);
int pfile_stat(struct pfile *pf, struct stat *st);
ssize_t pfile_read(struct pfile *pf, void *buf, size_t size, int64_t off);
ssize_t pfile_write(struct pfile *pf, const void *buf, size_t size,
		    int64_t off);
off_t pfile_seek(struct pfile *pf, off_t off, int whence);
int shield_open(const struct rpath *rp, int flags, mode_t mode);
int shield_close(int fd);

/* ---- preload_dir.c ---- */

void dirs_atfork_prepare(void);
void dirs_atfork_release(bool child);

#endif /* FSHIELD_PRELOAD_I_H */
