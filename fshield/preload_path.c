// SPDX-License-Identifier: Apache-2.0
/*
 * libfshield-preload: which paths are the shield's. A path the program
 * gives is made absolute (against the current directory or the directory
 * descriptor) and normal, component by component: "." and ".." are taken
 * lexically, and a symlink is followed only where the shield answers for
 * it (the fspf records it); host symlinks are left to the kernel. A path
 * that never meets a protected region goes to libc exactly as the program
 * gave it, so that the host's own semantics stay untouched.
 *
 * The current directory: chdir() into a protected directory cannot move
 * the kernel's (the directory need not exist on the host), so the shield
 * keeps it (vcwd) and resolves relative paths against it until the next
 * chdir() elsewhere. It is this process's only: a program it execs starts
 * in the kernel's directory (fshield-preload(8), LIMITS).
 */
#include <stdlib.h>
#include <string.h>

#include "preload_i.h"

/* As the kernel: at most this many symlinks on the way. */
#define SYMLINK_MAX_COUNT 40

static pthread_mutex_t g_vcwd_lock = PTHREAD_MUTEX_INITIALIZER;
static char *g_vcwd; /* protected current directory, or NULL */

void vcwd_atfork_prepare(void)
{
	pthread_mutex_lock(&g_vcwd_lock);
}

void vcwd_atfork_release(bool child)
{
	if (child)
		pthread_mutex_init(&g_vcwd_lock, NULL);
	else
		pthread_mutex_unlock(&g_vcwd_lock);
}

bool vcwd_get(char *buf, size_t size)
{
	bool set;

	if (!__atomic_load_n(&g_vcwd, __ATOMIC_ACQUIRE))
		return false;
	pthread_mutex_lock(&g_vcwd_lock);
	set = g_vcwd != NULL;
	if (set)
		snprintf(buf, size, "%s", g_vcwd);
	pthread_mutex_unlock(&g_vcwd_lock);
	return set;
}

void vcwd_set(const char *path)
{
	char *old, *copy = path ? strdup(path) : NULL;

	pthread_mutex_lock(&g_vcwd_lock);
	old = g_vcwd;
	__atomic_store_n(&g_vcwd, copy, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&g_vcwd_lock);
	free(old);
}

/* The directory that relative @path starts from, into @base. */
static int base_dir(int dirfd, char *base, size_t size)
{
	struct pfile *pf;
	char link[64];
	ssize_t n;

	if (dirfd == AT_FDCWD) {
		if (vcwd_get(base, size))
			return 0;
		return REAL(getcwd)(base, size) ? 0 : -errno;
	}
	pf = fd_get(dirfd);
	if (pf) {
		int err = pf->type == S_IFDIR ? 0 : -ENOTDIR;

		snprintf(base, size, "%s", pf->path);
		pfile_put(pf);
		return err;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
	n = REAL(readlink)(link, base, size - 1);
	if (n < 0)
		return -errno;
	base[n] = '\0';
	/* Not a directory that has a path ("pipe:[...]", "... (deleted)"). */
	return base[0] == '/' ? 0 : -ENOTDIR;
}

static int protected(const char *path)
{
	int r;

	shield_enter_regions();
	r = fshield_is_protected(g_vol, *path ? path : "/");
	shield_leave();
	return r;
}

/*
 * Append component @name (of @len bytes) to normal path @out (of *@outlen
 * bytes, "" for "/"), "." and ".." lexically.
 */
static int push(char *out, size_t *outlen, const char *name, size_t len)
{
	if (!len || (len == 1 && name[0] == '.'))
		return 0;
	if (len == 2 && name[0] == '.' && name[1] == '.') {
		while (*outlen && out[*outlen - 1] != '/')
			(*outlen)--;
		if (*outlen)
			(*outlen)--;
		out[*outlen] = '\0';
		return 0;
	}
	if (*outlen + 1 + len >= PATH_MAX)
		return -ENAMETOOLONG;
	out[(*outlen)++] = '/';
	memcpy(out + *outlen, name, len);
	*outlen += len;
	out[*outlen] = '\0';
	return 0;
}

/*
 * Symlink rp->path (protected): its target, then @todo, into @todo (of
 * PATH_MAX bytes).
 */
static __attribute__((noinline)) int follow_link(struct rpath *rp,
						 char *todo)
{
	char target[PATH_MAX], tail[PATH_MAX];
	ssize_t n;

	snprintf(tail, sizeof(tail), "%s", todo);
	shield_enter();
	n = fshield_readlink(g_vol, rp->path, target, sizeof(target));
	shield_leave();
	if (n < 0)
		return (int)n;
	if ((size_t)n + 1 + strlen(tail) >= PATH_MAX)
		return -ENAMETOOLONG;
	memcpy(todo, target, (size_t)n);
	todo[n] = '/';
	strcpy(todo + n + 1, tail);
	return 0;
}

/*
 * Walk @todo (a buffer of PATH_MAX bytes, used up) onto rp->path. A
 * protected symlink is replaced by its target (the last component only
 * when @follow), the rest of the path appended to it.
 */
static int walk(char *todo, bool follow, struct rpath *rp)
{
	size_t outlen = strlen(rp->path);
	char *p = todo;
	int links = 0, err;

	while (*p) {
		char *name = p + strspn(p, "/");
		size_t len = strcspn(name, "/"), keep = outlen;
		struct stat st;
		bool last;

		p = name + len;
		last = !p[strspn(p, "/")];
		err = push(rp->path, &outlen, name, len);
		if (err)
			return err;
		if (outlen <= keep || protected(rp->path) != 1)
			continue;
		rp->prot = rp->rewritten = true;
		if (last && !follow)
			continue;
		shield_enter();
		err = fshield_stat(g_vol, rp->path, &st);
		shield_leave();
		if (err == -ENOENT && last)
			continue; /* the caller's call reports it, or creates it */
		if (err)
			return err;
		if (S_ISLNK(st.st_mode)) {
			if (++links > SYMLINK_MAX_COUNT)
				return -ELOOP;
			memmove(todo, p, strlen(p) + 1);
			err = follow_link(rp, todo);
			if (err)
				return err;
			p = todo;
			/* Relative to the link's directory; absolute from "/". */
			outlen = todo[0] == '/' ? 0 : keep;
			rp->path[outlen] = '\0';
			continue;
		}
		if (!last && !S_ISDIR(st.st_mode))
			return -ENOTDIR;
	}
	return 0;
}

static int route(int dirfd, const char *path, bool follow, struct rpath *rp,
		 const char **libc_path, int *libc_dirfd)
{
	char todo[PATH_MAX];
	size_t len;
	int err;

	*libc_path = path;
	*libc_dirfd = dirfd;
	if (!path || !shield_on())
		return 0;
	len = strlen(path);
	if (!len)
		return 0; /* ENOENT, or AT_EMPTY_PATH: the caller's business */
	if (len >= sizeof(todo))
		return -ENAMETOOLONG;
	memcpy(todo, path, len + 1);
	rp->path[0] = '\0';
	rp->prot = rp->rewritten = false;
	rp->slash = path[len - 1] == '/';
	if (path[0] != '/') {
		err = base_dir(dirfd, rp->path, sizeof(rp->path));
		if (err)
			return 0; /* libc finds the same error, or its own */
		if (!strcmp(rp->path, "/"))
			rp->path[0] = '\0';
		/* A protected base (a directory of the shield): rewritten. */
		if (*rp->path && protected(rp->path) == 1)
			rp->rewritten = true;
	}
	err = walk(todo, follow, rp);
	if (err)
		return err;
	if (!rp->path[0])
		strcpy(rp->path, "/");
	rp->prot = protected(rp->path) == 1;
	if (rp->prot)
		return 1;
	if (rp->rewritten) {
		*libc_path = rp->path;
		*libc_dirfd = AT_FDCWD;
	}
	return 0;
}

/*
 * Strict mode (SCONE_FSPF_STRICT): a path the shield does not answer is
 * refused (EACCES) rather than given to the host, so that nothing outside
 * authenticated and encrypted regions is read or written by accident.
 */
int path_route(int dirfd, const char *path, bool follow, struct rpath *rp,
	       const char **libc_path, int *libc_dirfd)
{
	int r = route(dirfd, path, follow, rp, libc_path, libc_dirfd);

	if (!r && g_strict && !t_depth && path && *path && g_vol) {
		plog(FSHIELD_LOG_INFO, "strict mode: refusing '%s', which is not protected", path);
		return -EACCES;
	}
	return r;
}

/* ---- the current directory ---- */

static int chdir_shield(const struct rpath *rp)
{
	struct stat st;
	int err;

	err = shield_stat_path(rp->path, &st);
	if (err)
		return fail_with(err);
	if (!S_ISDIR(st.st_mode))
		return fail_with(-ENOTDIR);
	vcwd_set(rp->path);
	return 0;
}

EXPORT int chdir(const char *path)
{
	const char *lp;
	struct rpath rp;
	int dfd, r = path_route(AT_FDCWD, path, true, &rp, &lp, &dfd);

	if (r < 0)
		return fail_with(r);
	if (r)
		return chdir_shield(&rp);
	r = REAL(chdir)(lp);
	if (!r)
		vcwd_set(NULL);
	return r;
}

EXPORT int fchdir(int fd)
{
	struct pfile *pf = shield_on() ? fd_get(fd) : NULL;
	int r;

	if (pf) {
		r = pf->type == S_IFDIR ? 0 : -ENOTDIR;
		if (!r)
			vcwd_set(pf->path);
		pfile_put(pf);
		return r ? fail_with(r) : 0;
	}
	r = REAL(fchdir)(fd);
	if (!r)
		vcwd_set(NULL);
	return r;
}

static char *cwd_copy(char *buf, size_t size, const char *cwd)
{
	size_t len = strlen(cwd) + 1;

	if (!buf) {
		if (size && size < len) {
			errno = ERANGE;
			return NULL;
		}
		buf = malloc(size > len ? size : len);
		if (!buf)
			return NULL;
	} else if (size < len) {
		errno = size ? ERANGE : EINVAL;
		return NULL;
	}
	memcpy(buf, cwd, len);
	return buf;
}

EXPORT char *getcwd(char *buf, size_t size)
{
	char cwd[PATH_MAX];

	if (!t_depth && vcwd_get(cwd, sizeof(cwd)))
		return cwd_copy(buf, size, cwd);
	return REAL(getcwd)(buf, size);
}

EXPORT char *__getcwd_chk(char *buf, size_t size, size_t buflen)
{
	if (size > buflen)
		__chk_fail();
	return getcwd(buf, size);
}

EXPORT char *get_current_dir_name(void)
{
	char cwd[PATH_MAX];

	if (!t_depth && vcwd_get(cwd, sizeof(cwd)))
		return strdup(cwd);
	return REAL(get_current_dir_name)();
}
