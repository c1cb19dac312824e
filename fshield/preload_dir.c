// SPDX-License-Identifier: Apache-2.0
/*
 * libfshield-preload: directory streams. glibc reads a DIR with getdents
 * system calls of its own, which nothing can interpose, so a protected
 * directory gets a DIR of ours: the listing the fspf records (through
 * fshield_readdir()), taken at opendir() and at rewinddir(). The readdir
 * family tells ours from libc's by a list of the live ones; while none is
 * open, a libc DIR costs one load.
 */
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "preload_i.h"

struct pdir_entry {
	char *name;
	ino_t ino;
	unsigned char type;
};

struct pdir {
	struct pdir *next;		/* g_dirs */
	int fd;				/* its protected descriptor */
	pthread_mutex_t lock;
	struct pdir_entry *v;
	size_t count, pos;
	struct dirent64 de;		/* what readdir() returned last */
};

static pthread_mutex_t g_dirs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pdir *g_dirs;

void dirs_atfork_prepare(void)
{
	pthread_mutex_lock(&g_dirs_lock);
}

void dirs_atfork_release(bool child)
{
	if (child)
		pthread_mutex_init(&g_dirs_lock, NULL);
	else
		pthread_mutex_unlock(&g_dirs_lock);
}

/* Ours, or NULL for a DIR of libc. */
static struct pdir *pdir_of(DIR *d)
{
	struct pdir *p;

	if (!__atomic_load_n(&g_dirs, __ATOMIC_ACQUIRE) || t_depth)
		return NULL;
	pthread_mutex_lock(&g_dirs_lock);
	for (p = g_dirs; p && p != (struct pdir *)d; p = p->next)
		;
	pthread_mutex_unlock(&g_dirs_lock);
	return p;
}

static unsigned char dtype_of(mode_t mode)
{
	return S_ISDIR(mode) ? DT_DIR : S_ISLNK(mode) ? DT_LNK
		: S_ISREG(mode) ? DT_REG : DT_UNKNOWN;
}

static void entries_free(struct pdir *p)
{
	for (size_t i = 0; i < p->count; i++)
		free(p->v[i].name);
	free(p->v);
	p->v = NULL;
	p->count = p->pos = 0;
}

struct collect {
	struct pdir *p;
	size_t cap;
};

static int entry_add(struct collect *c, const char *name, ino_t ino,
		     unsigned char type)
{
	struct pdir *p = c->p;

	if (p->count == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 32;
		struct pdir_entry *v = realloc(p->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->v = v;
		c->cap = cap;
	}
	p->v[p->count].name = strdup(name);
	if (!p->v[p->count].name)
		return -ENOMEM;
	p->v[p->count].ino = ino;
	p->v[p->count++].type = type;
	return 0;
}

static int collect_one(void *ctx, const char *name, const struct stat *st)
{
	return entry_add(ctx, name, st->st_ino, dtype_of(st->st_mode));
}

/* The listing of @path: ".", "..", then what the fspf records. */
static int pdir_fill(struct pdir *p, const char *path)
{
	struct collect c = { p, 0 };
	struct stat st;
	int err;

	entries_free(p);
	err = shield_stat_path(path, &st);
	if (!err)
		err = entry_add(&c, ".", st.st_ino, DT_DIR);
	if (!err)
		err = entry_add(&c, "..", 0, DT_DIR);
	if (!err) {
		shield_enter();
		err = fshield_readdir(g_vol, path, collect_one, &c);
		shield_leave();
	}
	if (err)
		entries_free(p);
	return err;
}

/* A DIR of ours over protected directory descriptor @fd (owned on success). */
static DIR *pdir_new(int fd)
{
	struct pfile *pf = fd_get(fd);
	struct pdir *p;
	int err;

	if (!pf)
		return NULL;
	if (pf->type != S_IFDIR || (pf->flags & O_PATH)) {
		err = pf->type != S_IFDIR ? -ENOTDIR : -EBADF;
		pfile_put(pf);
		errno = -err;
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	err = p ? pdir_fill(p, pf->path) : -ENOMEM;
	pfile_put(pf);
	if (err) {
		free(p);
		errno = -err;
		return NULL;
	}
	p->fd = fd;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_lock(&g_dirs_lock);
	p->next = g_dirs;
	__atomic_store_n(&g_dirs, p, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&g_dirs_lock);
	return (DIR *)p;
}

EXPORT DIR *opendir(const char *path)
{
	const char *lp;
	struct rpath rp;
	int ldfd, fd, r = path_route(AT_FDCWD, path, true, &rp, &lp, &ldfd);
	DIR *d;

	if (!r)
		return REAL(opendir)(lp);
	fd = r < 0 ? r : shield_open(&rp, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	d = pdir_new(fd);
	if (!d) {
		int saved = errno;

		shield_close(fd);
		errno = saved;
	}
	return d;
}

EXPORT DIR *fdopendir(int fd)
{
	struct pfile *pf = shield_on() ? fd_get(fd) : NULL;

	if (!pf)
		return REAL(fdopendir)(fd);
	pfile_put(pf);
	return pdir_new(fd);
}

static struct dirent64 *pdir_next(struct pdir *p)
{
	struct dirent64 *de = NULL;

	pthread_mutex_lock(&p->lock);
	if (p->pos < p->count) {
		const struct pdir_entry *e = &p->v[p->pos++];

		de = &p->de;
		memset(de, 0, sizeof(*de));
		de->d_ino = e->ino;
		de->d_off = (off64_t)p->pos;
		de->d_reclen = sizeof(*de);
		de->d_type = e->type;
		snprintf(de->d_name, sizeof(de->d_name), "%s", e->name);
	}
	pthread_mutex_unlock(&p->lock);
	return de; /* end of the listing: NULL, errno untouched */
}

EXPORT struct dirent *readdir(DIR *d)
{
	struct pdir *p = pdir_of(d);

	return p ? (struct dirent *)pdir_next(p) : REAL(readdir)(d);
}

EXPORT struct dirent64 *readdir64(DIR *d)
{
	struct pdir *p = pdir_of(d);

	return p ? pdir_next(p) : REAL(readdir64)(d);
}

/* readdir_r(): deprecated, still used; both layouts are one. */
static int pdir_next_r(struct pdir *p, struct dirent64 *entry,
		       struct dirent64 **result)
{
	struct dirent64 *de = pdir_next(p);

	if (de)
		memcpy(entry, de, sizeof(*entry));
	*result = de ? entry : NULL;
	return 0;
}

EXPORT int readdir_r(DIR *d, struct dirent *entry, struct dirent **result)
{
	struct pdir *p = pdir_of(d);

	if (!p)
		return REAL(readdir_r)(d, entry, result);
	return pdir_next_r(p, (struct dirent64 *)entry,
			   (struct dirent64 **)result);
}

EXPORT int readdir64_r(DIR *d, struct dirent64 *entry,
		       struct dirent64 **result)
{
	struct pdir *p = pdir_of(d);

	if (!p)
		return REAL(readdir64_r)(d, entry, result);
	return pdir_next_r(p, entry, result);
}

EXPORT int closedir(DIR *d)
{
	struct pdir *p = pdir_of(d), **pp;

	if (!p)
		return REAL(closedir)(d);
	pthread_mutex_lock(&g_dirs_lock);
	for (pp = &g_dirs; *pp && *pp != p; pp = &(*pp)->next)
		;
	if (*pp)
		__atomic_store_n(pp, p->next, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&g_dirs_lock);
	entries_free(p);
	pthread_mutex_destroy(&p->lock);
	shield_close(p->fd);
	free(p);
	return 0;
}

EXPORT int dirfd(DIR *d)
{
	struct pdir *p = pdir_of(d);

	return p ? p->fd : REAL(dirfd)(d);
}

/* Listed afresh, as POSIX wants of rewinddir(). */
EXPORT void rewinddir(DIR *d)
{
	struct pdir *p = pdir_of(d);
	struct pfile *pf;

	if (!p) {
		REAL(rewinddir)(d);
		return;
	}
	pf = fd_get(p->fd);
	pthread_mutex_lock(&p->lock);
	if (!pf || pdir_fill(p, pf->path))
		p->pos = p->count; /* gone: an empty listing */
	pthread_mutex_unlock(&p->lock);
	pfile_put(pf);
}

EXPORT long telldir(DIR *d)
{
	struct pdir *p = pdir_of(d);
	long pos;

	if (!p)
		return REAL(telldir)(d);
	pthread_mutex_lock(&p->lock);
	pos = (long)p->pos;
	pthread_mutex_unlock(&p->lock);
	return pos;
}

EXPORT void seekdir(DIR *d, long pos)
{
	struct pdir *p = pdir_of(d);

	if (!p) {
		REAL(seekdir)(d, pos);
		return;
	}
	pthread_mutex_lock(&p->lock);
	p->pos = pos < 0 ? 0 : (size_t)pos > p->count ? p->count : (size_t)pos;
	pthread_mutex_unlock(&p->lock);
}

/* ---- scandir(3) and glob(3): libc's call its own directory functions ---- */

/* A copy of @de as scandir() hands entries out: one malloc each. */
static struct dirent64 *dirent_dup(const struct dirent64 *de)
{
	size_t len = offsetof(struct dirent64, d_name) + strlen(de->d_name) + 1;
	struct dirent64 *copy = malloc(len < sizeof(*copy) ? sizeof(*copy) : len);

	if (copy) {
		memcpy(copy, de, len);
		copy->d_reclen = (unsigned short)len;
	}
	return copy;
}

struct scan_sort {
	int (*compar)(const struct dirent64 **, const struct dirent64 **);
};

static int scan_compare(const void *a, const void *b, void *arg)
{
	const struct scan_sort *s = arg;

	return s->compar((const struct dirent64 **)a,
			 (const struct dirent64 **)b);
}

/*
 * scandir() of the protected directory @rp, as libc's: the entries the
 * filter keeps, sorted by @compar; -1 and errno on failure (nothing is
 * left allocated).
 */
static int scan_protected(
	struct rpath *rp, struct dirent64 ***list,
	int (*filter)(const struct dirent64 *),
	int (*compar)(const struct dirent64 **, const struct dirent64 **))
{
	struct scan_sort sort = { compar };
	struct dirent64 **v = NULL, *de;
	size_t n = 0, cap = 0;
	int fd = shield_open(rp, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	int err = 0;
	DIR *d;

	if (fd < 0) {
		errno = -fd;
		return -1;
	}
	d = pdir_new(fd);
	if (!d) {
		err = errno;
		shield_close(fd);
		errno = err;
		return -1;
	}
	while (!err && (de = pdir_next((struct pdir *)d))) {
		struct dirent64 *copy, **bigger;

		if (filter && !filter(de))
			continue;
		if (n == INT_MAX) {
			err = EOVERFLOW;
			break;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			bigger = realloc(v, cap * sizeof(*v));
			if (!bigger) {
				err = ENOMEM;
				break;
			}
			v = bigger;
		}
		copy = dirent_dup(de);
		if (!copy)
			err = ENOMEM;
		else
			v[n++] = copy;
	}
	closedir(d);
	if (err) {
		while (n)
			free(v[--n]);
		free(v);
		errno = err;
		return -1;
	}
	if (compar && n > 1)
		qsort_r(v, n, sizeof(*v), scan_compare, &sort);
	*list = v;
	return (int)n;
}

typedef int (*scan_filter)(const struct dirent64 *);
typedef int (*scan_compar)(const struct dirent64 **, const struct dirent64 **);

/* The one body of the four names: struct dirent and dirent64 are one. */
#define SCANDIRAT(dirfd, path, list, filter, compar, libc_call)              \
	do {                                                                 \
		const char *lp;                                              \
		struct rpath rp;                                             \
		int ldfd, r = path_route(dirfd, path, true, &rp, &lp, &ldfd); \
		if (!r)                                                      \
			return libc_call;                                    \
		if (r < 0) {                                                 \
			errno = -r;                                          \
			return -1;                                           \
		}                                                            \
		return scan_protected(&rp, (struct dirent64 ***)(list),      \
				      (scan_filter)(filter),                 \
				      (scan_compar)(compar));                \
	} while (0)

EXPORT int scandirat(int dirfd, const char *path, struct dirent ***list,
		     int (*filter)(const struct dirent *),
		     int (*compar)(const struct dirent **,
				   const struct dirent **))
{
	SCANDIRAT(dirfd, path, list, filter, compar,
		  REAL(scandirat)(ldfd, lp, list, filter, compar));
}

EXPORT int scandirat64(int dirfd, const char *path, struct dirent64 ***list,
		       int (*filter)(const struct dirent64 *),
		       int (*compar)(const struct dirent64 **,
				     const struct dirent64 **))
{
	SCANDIRAT(dirfd, path, list, filter, compar,
		  REAL(scandirat64)(ldfd, lp, list, filter, compar));
}

EXPORT int scandir(const char *path, struct dirent ***list,
		   int (*filter)(const struct dirent *),
		   int (*compar)(const struct dirent **, const struct dirent **))
{
	return scandirat(AT_FDCWD, path, list, filter, compar);
}

EXPORT int scandir64(const char *path, struct dirent64 ***list,
		     int (*filter)(const struct dirent64 *),
		     int (*compar)(const struct dirent64 **,
				   const struct dirent64 **))
{
	return scandirat64(AT_FDCWD, path, list, filter, compar);
}

/*
 * glob(3) reads directories with libc's internal calls, unless it is given
 * functions of its own (GLOB_ALTDIRFUNC): ours, which answer protected
 * directories from the fspf and pass the rest to libc. A caller's own
 * functions are left alone.
 */
static void *glob_opendir(const char *path)
{
	return opendir(path);
}

static void *glob_readdir(void *d)
{
	return readdir64(d);
}

static void glob_closedir(void *d)
{
	closedir(d);
}

EXPORT int glob(const char *pattern, int flags,
		int (*errfunc)(const char *, int), glob_t *g)
{
	if (!shield_on() || (flags & GLOB_ALTDIRFUNC))
		return REAL(glob)(pattern, flags, errfunc, g);
	g->gl_opendir = glob_opendir;
	g->gl_readdir = (struct dirent * (*)(void *)) glob_readdir;
	g->gl_closedir = glob_closedir;
	g->gl_stat = stat;
	g->gl_lstat = lstat;
	return REAL(glob)(pattern, flags | GLOB_ALTDIRFUNC, errfunc, g);
}

EXPORT int glob64(const char *pattern, int flags,
		  int (*errfunc)(const char *, int), glob64_t *g)
{
	if (!shield_on() || (flags & GLOB_ALTDIRFUNC))
		return REAL(glob64)(pattern, flags, errfunc, g);
	g->gl_opendir = glob_opendir;
	g->gl_readdir = (struct dirent64 * (*)(void *)) glob_readdir;
	g->gl_closedir = glob_closedir;
	g->gl_stat = stat64;
	g->gl_lstat = lstat64;
	return REAL(glob64)(pattern, flags | GLOB_ALTDIRFUNC, errfunc, g);
}

/*
 * ftw(3) and nftw(3) walk with libc's internal calls: with the shield on,
 * the walk is ours, made of the interposed lstat/stat/opendir/readdir/
 * chdir, so that protected directories anywhere below the start are
 * listed from the fspf and the rest from the host, as libc would.
 */
struct walk {
	int (*fn)(const char *, const struct stat *, int, struct FTW *);
	int (*ftw_fn)(const char *, const struct stat *, int);
	int flags;
	dev_t dev;
	char *path; /* the current path, grown as needed */
	size_t cap;
	void *seen; /* tsearch() tree of the directories visited, as libc's */
};

struct walk_dir {
	dev_t dev;
	ino_t ino;
};

static int walk_dir_cmp(const void *a, const void *b)
{
	const struct walk_dir *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/*
 * True the first time directory @st is met: a symbolic link back up (or
 * a second way to one) is neither entered nor reported again, as libc.
 */
static bool walk_first_visit(struct walk *w, const struct stat *st)
{
	struct walk_dir key = { st->st_dev, st->st_ino }, *d;
	void *found;

	if (tfind(&key, &w->seen, walk_dir_cmp))
		return false;
	d = malloc(sizeof(*d));
	if (!d)
		return true; /* no memory to remember it: visited anyway */
	*d = key;
	found = tsearch(d, &w->seen, walk_dir_cmp);
	if (!found || *(struct walk_dir **)found != d)
		free(d);
	return true;
}

static int walk_call(struct walk *w, const struct stat *st, int type,
		     int base, int level)
{
	struct FTW f = { base, level };

	return w->fn ? w->fn(w->path, st, type, &f)
		     : w->ftw_fn(w->path, st, type);
}

/*
 * A result of the callback: go on (0), or what the walk returns. With
 * FTW_ACTIONRETVAL, FTW_SKIP_SUBTREE and FTW_SKIP_SIBLINGS are the
 * caller's to act on.
 */
static bool walk_stops(const struct walk *w, int r)
{
	if (w->flags & FTW_ACTIONRETVAL)
		return r == FTW_STOP;
	return r != 0;
}

/*
 * The names in directory @path (not . and ..), NULL-terminated, their
 * number in *@count; NULL (errno) when it cannot be read.
 */
static char **walk_names(const char *path, size_t *count)
{
	struct dirent64 *de;
	char **v = NULL, **bigger;
	size_t n = 0, cap = 0;
	DIR *d = opendir(path);
	int err = 0;

	if (!d)
		return NULL;
	errno = 0;
	while (!err && (de = readdir64(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n + 1 >= cap) {
			cap = cap ? 2 * cap : 16;
			bigger = realloc(v, cap * sizeof(*v));
			if (!bigger) {
				err = ENOMEM;
				break;
			}
			v = bigger;
		}
		v[n] = strdup(de->d_name);
		if (!v[n])
			err = ENOMEM;
		else
			n++;
	}
	if (!err && errno)
		err = errno;
	closedir(d);
	if (err || !v) {
		while (n)
			free(v[--n]);
		free(v);
		if (!err) { /* empty */
			v = calloc(1, sizeof(*v));
			*count = 0;
			return v;
		}
		errno = err;
		return NULL;
	}
	v[n] = NULL; /* room kept above */
	*count = n;
	return v;
}

/* chdir() to the directory part of w->path, its last name at @base > 0. */
static int walk_chdir_up(struct walk *w, int base)
{
	size_t end = base > 1 ? (size_t)base - 1 : (size_t)base;
	char saved = w->path[end];
	int r;

	w->path[end] = '\0';
	r = chdir(end ? w->path : "/");
	w->path[end] = saved;
	return r;
}

/*
 * Visit w->path (@len bytes, its last name at @base) at depth @level.
 * Return: 0 to go on, FTW_SKIP_SIBLINGS (FTW_ACTIONRETVAL), -1 on an
 * error, or the callback's value that stops the walk.
 */
static int walk_visit(struct walk *w, size_t len, int base, int level)
{
	bool phys = w->flags & FTW_PHYS, act = w->flags & FTW_ACTIONRETVAL;
	bool cd = w->flags & FTW_CHDIR, entered = true;
	/* With FTW_CHDIR the current directory is the one above. */
	const char *rel = cd ? w->path + base : w->path;
	size_t count = 0, dlen = len;
	char **names = NULL;
	struct stat st;
	int type, back = -1, r = 0;

	if ((phys ? lstat(rel, &st) : stat(rel, &st)) < 0) {
		if (errno != EACCES && errno != ENOENT)
			return -1;
		type = FTW_NS;
		if (!phys && lstat(rel, &st) == 0 && S_ISLNK(st.st_mode))
			type = FTW_SLN;
		else if (!level)
			return -1; /* the start: nothing to report, as libc */
	} else if (S_ISDIR(st.st_mode)) {
		type = FTW_D;
	} else {
		type = S_ISLNK(st.st_mode) ? FTW_SL : FTW_F;
	}
	if (type == FTW_D && level && (w->flags & FTW_MOUNT) &&
	    st.st_dev != w->dev)
		return 0; /* another file system: not entered, not reported */
	if (type == FTW_D && !walk_first_visit(w, &st))
		return 0;
	if (type != FTW_D) {
		r = walk_call(w, &st, type, base, level);
		return walk_stops(w, r) || (act && r == FTW_SKIP_SIBLINGS) ? r
									    : 0;
	}
	names = walk_names(rel, &count);
	if (!names) {
		if (errno != EACCES)
			return -1;
		r = walk_call(w, &st, FTW_DNR, base, level);
		return walk_stops(w, r) || (act && r == FTW_SKIP_SIBLINGS) ? r
									    : 0;
	}
	if (!(w->flags & FTW_DEPTH)) {
		r = walk_call(w, &st, FTW_D, base, level);
		if (walk_stops(w, r) || (act && r == FTW_SKIP_SIBLINGS)) {
			entered = false; /* nor the rest of its directory */
		} else {
			entered = !(act && r == FTW_SKIP_SUBTREE);
			r = 0;
		}
	}
	if (entered && cd) { /* in it for its entries and its FTW_DP */
		back = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (back < 0 || chdir(rel) < 0) {
			r = -1;
			entered = false;
		}
	}
	if (!entered)
		count = 0;
	if (dlen && w->path[dlen - 1] == '/')
		dlen--; /* "/" or "dir/": one slash before the names */
	for (size_t i = 0; i < count; i++) {
		size_t nlen = strlen(names[i]), need = dlen + nlen + 2;

		if (need > w->cap) {
			char *bigger = realloc(w->path, 2 * need);

			if (!bigger) {
				r = -1;
				break;
			}
			w->path = bigger;
			w->cap = 2 * need;
		}
		w->path[dlen] = '/';
		memcpy(w->path + dlen + 1, names[i], nlen + 1);
		r = walk_visit(w, dlen + 1 + nlen, (int)dlen + 1, level + 1);
		if (r)
			break;
	}
	if (dlen < len)
		w->path[dlen] = '/';
	w->path[len] = '\0';
	if (act && r == FTW_SKIP_SIBLINGS && count)
		r = 0; /* a child's: the rest of this directory is skipped */
	if (!r && (w->flags & FTW_DEPTH)) {
		r = walk_call(w, &st, FTW_DP, base, level);
		if (!walk_stops(w, r) && !(act && r == FTW_SKIP_SIBLINGS))
			r = 0;
	}
	if (back >= 0) {
		if (entered && fchdir(back) < 0 && !r)
			r = -1;
		close(back);
	}
	for (char **name = names; *name; name++)
		free(*name);
	free(names);
	return r;
}

static int walk(const char *path, struct walk *w)
{
	size_t len = strlen(path);
	const char *slash;
	struct stat st;
	int r, saved, cwd = -1;

	if (!*path) {
		errno = ENOENT;
		return -1;
	}
	if ((w->flags & FTW_CHDIR) &&
	    (cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	if ((w->flags & FTW_MOUNT) && stat(path, &st) == 0)
		w->dev = st.st_dev;
	w->cap = len + 256;
	w->path = malloc(w->cap);
	if (!w->path) {
		if (cwd >= 0)
			close(cwd);
		errno = ENOMEM;
		return -1;
	}
	memcpy(w->path, path, len + 1);
	/* Its last name: after the last slash that is not a trailing one. */
	while (len > 1 && w->path[len - 1] == '/')
		len--;
	slash = memrchr(w->path, '/', len);
	if (w->flags & FTW_CHDIR) {
		/* The start's own directory first, as libc does. */
		if (slash && walk_chdir_up(w, (int)(slash - w->path) + 1) < 0) {
			close(cwd);
			free(w->path);
			return -1;
		}
	}
	r = walk_visit(w, strlen(w->path), slash ? (int)(slash - w->path) + 1 : 0,
		       0);
	saved = errno;
	if (cwd >= 0) {
		if (fchdir(cwd) < 0 && !r)
			r = -1;
		else
			errno = saved;
		close(cwd);
	}
	free(w->path);
	tdestroy(w->seen, free);
	if ((w->flags & FTW_ACTIONRETVAL) && r == FTW_SKIP_SIBLINGS)
		r = 0;
	return r;
}

EXPORT int nftw(const char *path,
		int (*fn)(const char *, const struct stat *, int, struct FTW *),
		int nopenfd, int flags)
{
	struct walk w = { .fn = fn, .flags = flags };

	if (!shield_on())
		return REAL(nftw)(path, fn, nopenfd, flags);
	return walk(path, &w);
}

EXPORT int nftw64(const char *path,
		  int (*fn)(const char *, const struct stat64 *, int,
			    struct FTW *),
		  int nopenfd, int flags)
{
	struct walk w = {
		.fn = (int (*)(const char *, const struct stat *, int,
			       struct FTW *))fn,
		.flags = flags,
	};

	if (!shield_on())
		return REAL(nftw64)(path, fn, nopenfd, flags);
	return walk(path, &w);
}

/* ftw(): nftw() with no flags, symbolic links followed. */
EXPORT int ftw(const char *path,
	       int (*fn)(const char *, const struct stat *, int), int nopenfd)
{
	struct walk w = { .ftw_fn = fn };

	if (!shield_on())
		return REAL(ftw)(path, fn, nopenfd);
	return walk(path, &w);
}

EXPORT int ftw64(const char *path,
		 int (*fn)(const char *, const struct stat64 *, int),
		 int nopenfd)
{
	struct walk w = {
		.ftw_fn = (int (*)(const char *, const struct stat *, int))fn,
	};

	if (!shield_on())
		return REAL(ftw64)(path, fn, nopenfd);
	return walk(path, &w);
}
