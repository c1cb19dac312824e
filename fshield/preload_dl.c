// SPDX-License-Identifier: Apache-2.0
/*
 * libfshield-preload: dlopen() and dlmopen() under SCONE_ALLOW_DLOPEN
 * (fshield-preload(8)). Unset (or 0): no new code is loaded after start;
 * dlopen(NULL), RTLD_NOLOAD and objects already loaded keep working. 1: a
 * library in a protected region (authenticated, encrypted, ephemeral)
 * loads, nothing else. 2 (debug only): anything loads, logged.
 *
 * A protected library is never loaded from its stored form: the loader
 * would read the host's file after our check (and the ciphertext of an
 * encrypted one). It is read through the runtime (every chunk verified,
 * decrypted) into a memfd that is then sealed against any change, and the
 * loader gets "/proc/self/fd/N". The memfd stays open for the life of the
 * process: a later dlopen of the same path gives the loader the same name,
 * so that it finds the object it already has (one copy, one handle), and
 * one that was unloaded meanwhile is loaded again from the same sealed
 * bytes. The library's own dependencies (DT_NEEDED) are the loader's
 * business: it resolves them from the host without asking us.
 *
 * A refusal is a dlopen() error: NULL, and a dlerror() message that says
 * why. The loader writes dlerror() itself, so the message is the name of
 * a file the loader is asked (with RTLD_NOLOAD: it maps nothing) to find
 * under /proc/self/, where nobody can create one.
 */
#include <link.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "preload_i.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

#define COPY_BUF_BYTES (64 * 1024)
#define REFUSAL_MAX_BYTES 1024
/* Attempts to find a /proc/self/fd/N name the loader has not seen yet. */
#define FRESH_NAME_TRIES 16
#define MEMFD_SEALS                                                          \
	(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

/* A protected library verified into a sealed memfd (kept for ever). */
struct dl_copy {
	struct dl_copy *next;
	int fd;
	dev_t dev;
	ino_t ino;
	char path[]; /* in the protected tree */
};

static pthread_mutex_t g_dl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dl_copy *g_dl_copies;

/* The real dlopen(), or dlmopen() in @lmid when @m. */
static void *real_load(bool m, Lmid_t lmid, const char *name, int flags)
{
	return m ? REAL(dlmopen)(lmid, name, flags) : REAL(dlopen)(name, flags);
}

/*
 * Refuse a load: NULL, with dlerror() saying why (@fmt). Logged as a
 * warning (SCONE_LOG=4).
 */
__attribute__((format(printf, 1, 2))) static void *refuse_load(const char *fmt,
							       ...)
{
	char msg[REFUSAL_MAX_BYTES];
	va_list ap;
	int n;

	n = snprintf(msg, sizeof(msg), "/proc/self/fshield-preload: ");
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	plog(FSHIELD_LOG_WARNING, "dlopen: %s", msg + n);
	/*
	 * RTLD_NOLOAD: whatever the name, the loader only looks for an object
	 * it already has; none is named like this.
	 */
	if (REAL(dlopen)(msg, RTLD_LAZY | RTLD_NOLOAD))
		plog(FSHIELD_LOG_ERR, "dlopen: the refusal found an object");
	return NULL;
}

/* The copy of @path, if its memfd is still ours (the program may close it). */
static struct dl_copy *copy_find(const char *path)
{
	struct dl_copy *c;
	struct stat st;

	pthread_mutex_lock(&g_dl_lock);
	for (c = g_dl_copies; c; c = c->next)
		if (!strcmp(c->path, path))
			break;
	pthread_mutex_unlock(&g_dl_lock);
	if (c && (REAL(fstat)(c->fd, &st) || st.st_dev != c->dev ||
		  st.st_ino != c->ino ||
		  REAL(fcntl)(c->fd, F_GET_SEALS) != MEMFD_SEALS))
		return NULL; /* a copy will be made anew (the old one leaks) */
	return c;
}

static void copy_add(const char *path, int fd)
{
	size_t len = strlen(path) + 1;
	struct dl_copy *c = malloc(sizeof(*c) + len);
	struct stat st;

	if (!c || REAL(fstat)(fd, &st)) {
		free(c);
		return; /* not cached: the next dlopen makes a copy of its own */
	}
	c->fd = fd;
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	memcpy(c->path, path, len);
	pthread_mutex_lock(&g_dl_lock);
	c->next = g_dl_copies;
	g_dl_copies = c;
	pthread_mutex_unlock(&g_dl_lock);
}

static int memfd_new(const char *path)
{
	const char *base = strrchr(path, '/');
	int fd = memfd_create(base ? base + 1 : path,
			      MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);

	if (fd < 0 && errno == EINVAL) /* kernels before 6.3 */
		fd = memfd_create(base ? base + 1 : path,
				  MFD_CLOEXEC | MFD_ALLOW_SEALING);
	return fd < 0 ? -errno : fd;
}

/*
 * Protected file @path, verified and decrypted, into a new sealed memfd.
 * Return: the memfd, or a negative errno (-EIO: a chunk failed).
 */
static int copy_make(const char *path)
{
	struct fshield_file *file = NULL;
	uint64_t off = 0;
	struct stat st;
	char *buf;
	int fd, err;

	buf = malloc(COPY_BUF_BYTES);
	if (!buf)
		return -ENOMEM;
	fd = memfd_new(path);
	if (fd < 0) {
		err = fd;
		goto out;
	}
	shield_enter();
	err = fshield_open(g_vol, path, O_RDONLY, 0, &file);
	if (!err)
		err = fshield_fstat(file, &st);
	if (!err && !S_ISREG(st.st_mode))
		err = -EACCES;
	while (!err) {
		ssize_t n = fshield_pread(file, buf, COPY_BUF_BYTES, off);
		ssize_t done = 0;

		if (n <= 0) {
			err = (int)n;
			break;
		}
		while (!err && done < n) {
			ssize_t w = REAL(write)(fd, buf + done, (size_t)(n - done));

			if (w < 0 && errno != EINTR)
				err = -errno;
			else if (w > 0)
				done += w;
		}
		off += (uint64_t)n;
	}
	if (!err && off != (uint64_t)st.st_size)
		err = -EIO;
	fshield_close(file);
	shield_leave();
	if (!err && REAL(fcntl)(fd, F_ADD_SEALS, MEMFD_SEALS) < 0)
		err = -errno;
out:
	free(buf);
	if (err && fd >= 0)
		REAL(close)(fd);
	return err ? err : fd;
}

/*
 * A descriptor for @fd whose /proc/self/fd name no loaded object has (a
 * memfd of ours that the program closed may have left its name to one):
 * @fd itself, or a duplicate of it (@fd is then closed).
 */
static int fresh_name(int fd, char *name, size_t size)
{
	for (int i = 0; i < FRESH_NAME_TRIES; i++) {
		void *h;
		int dup;

		snprintf(name, size, "/proc/self/fd/%d", fd);
		h = REAL(dlopen)(name, RTLD_LAZY | RTLD_NOLOAD);
		if (!h) {
			dlerror();
			return fd;
		}
		dlclose(h);
		dup = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, fd + 1);
		REAL(close)(fd);
		if (dup < 0)
			return -errno;
		fd = dup;
	}
	REAL(close)(fd);
	return -EMFILE;
}

struct loaded {
	const char *a, *b; /* the names looked for */
	char name[PATH_MAX];
};

static int loaded_one(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct loaded *l = arg;
	const char *n = info->dlpi_name;

	if (!n || !*n || (strcmp(n, l->a) && strcmp(n, l->b)))
		return 0;
	snprintf(l->name, sizeof(l->name), "%s", n);
	return 1;
}

/*
 * A library the loader already has under name @a or @b (one it loaded at
 * start, from the host, as it loaded the program): that object, not a
 * second copy of it (two libcs in one process). By name only: the
 * host's file is not looked at.
 */
static void *load_loaded(const char *a, const char *b, int flags)
{
	struct loaded l = { a, b, "" };

	if (!dl_iterate_phdr(loaded_one, &l))
		return NULL;
	return REAL(dlopen)(l.name, flags | RTLD_NOLOAD);
}

/* Protected library @path (normal, in the tree): from its sealed copy. */
static void *load_protected(bool m, Lmid_t lmid, const char *path, int flags)
{
	char name[64];
	struct dl_copy *c;
	void *h;
	int fd;

	if (!g_dlopen_mode)
		return refuse_load("%s is protected, but SCONE_ALLOW_DLOPEN is not set: no library is loaded after start", path);
	c = copy_find(path);
	if (c) {
		snprintf(name, sizeof(name), "/proc/self/fd/%d", c->fd);
		plog(FSHIELD_LOG_DEBUG, "dlopen %s: its verified copy %s", path,
		     name);
		return real_load(m, lmid, name, flags);
	}
	fd = copy_make(path);
	if (fd >= 0)
		fd = fresh_name(fd, name, sizeof(name));
	if (fd < 0)
		return refuse_load("%s cannot be loaded: %s", path,
				   strerror(-fd));
	plog(FSHIELD_LOG_DEBUG, "dlopen %s: verified into %s", path, name);
	h = real_load(m, lmid, name, flags);
	if (!h) {
		REAL(close)(fd); /* not an object the loader takes: its error */
		return NULL;
	}
	copy_add(path, fd);
	return h;
}

/* The directory @dir plus "/" plus @name into @buf; false when too long. */
static bool join(char *buf, size_t size, const char *dir, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);

	return n > 0 && (size_t)n < size;
}

/*
 * Name @name without a slash, not loaded yet, with SCONE_ALLOW_DLOPEN 1 or
 * 2: the directories the loader would search for @caller (LD_LIBRARY_PATH,
 * its RPATH and RUNPATH, the system directories; dlinfo(RTLD_DI_SERINFO)),
 * in order, the first that holds it decides. The loader's cache
 * (ld.so.cache) is the host's and is not consulted: a library only it
 * names is refused under 1 and left to the loader under 2.
 */
static void *load_searched(bool m, Lmid_t lmid, const char *name, int flags,
			   const void *caller)
{
	Dl_serinfo size, *si = NULL;
	struct link_map *lm = NULL;
	char cand[PATH_MAX];
	Dl_info info;
	void *h = NULL;
	bool found = false;

	if (!dladdr1(caller, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
		lm = REAL(dlopen)(NULL, RTLD_LAZY | RTLD_NOLOAD);
	if (lm && !dlinfo(lm, RTLD_DI_SERINFOSIZE, &size) &&
	    (si = malloc(size.dls_size))) {
		*si = size;
		if (dlinfo(lm, RTLD_DI_SERINFO, si)) {
			free(si);
			si = NULL;
		}
	}
	for (unsigned int i = 0; si && i < si->dls_cnt && !found; i++) {
		const char *dir = si->dls_serpath[i].dls_name;
		const char *lp;
		struct rpath rp;
		struct stat st;
		int dfd, r;

		if (!*dir || !join(cand, sizeof(cand), dir, name))
			continue;
		r = path_route(AT_FDCWD, cand, true, &rp, &lp, &dfd);
		if (r == -EACCES && g_strict && REAL(stat)(cand, &st) == 0 &&
		    S_ISREG(st.st_mode)) {
			found = true;
			h = refuse_load("%s is %s, which lies outside the protected regions (SCONE_FSPF_STRICT)", name, cand);
		} else if (r == 1) {
			found = shield_stat_path(rp.path, &st) == 0 &&
				S_ISREG(st.st_mode);
			if (found)
				h = load_protected(m, lmid, rp.path, flags);
		} else if (r == 0 && REAL(stat)(lp, &st) == 0 &&
			   S_ISREG(st.st_mode)) {
			found = true;
			if (g_dlopen_mode == 2) {
				plog(FSHIELD_LOG_WARNING,
				     "dlopen %s: %s, which is not protected (SCONE_ALLOW_DLOPEN=2: debug only)",
				     name, cand);
				h = real_load(m, lmid, cand, flags);
			} else {
				h = refuse_load("%s is %s, which lies outside the protected regions (SCONE_ALLOW_DLOPEN=1)", name, cand);
			}
		}
	}
	free(si);
	if (found)
		return h;
	if (g_dlopen_mode == 2 && !g_strict) {
		plog(FSHIELD_LOG_WARNING,
		     "dlopen %s: left to the loader (SCONE_ALLOW_DLOPEN=2: debug only)",
		     name);
		return real_load(m, lmid, name, flags);
	}
	return refuse_load("%s is in no protected directory of the search path (SCONE_ALLOW_DLOPEN=1)", name);
}

/*
 * A library not in a protected region: loaded only when the loader has it
 * already (nothing new is mapped) or with SCONE_ALLOW_DLOPEN=2.
 */
static void *load_host(bool m, Lmid_t lmid, const char *name,
		       const char *libc_name, int flags)
{
	void *h = real_load(m, lmid, libc_name, flags | RTLD_NOLOAD);

	if (h)
		return h;
	dlerror();
	if (g_dlopen_mode == 2) {
		plog(FSHIELD_LOG_WARNING,
		     "dlopen %s: not protected (SCONE_ALLOW_DLOPEN=2: debug only)",
		     name);
		return real_load(m, lmid, libc_name, flags);
	}
	return refuse_load("%s lies outside the protected regions (SCONE_ALLOW_DLOPEN=%s)", name, g_dlopen_mode ? "1" : "unset");
}

static void *load(bool m, Lmid_t lmid, const char *name, int flags,
		  const void *caller)
{
	const char *lp;
	struct rpath rp;
	int dfd, r;

	if (!strchr(name, '/')) {
		void *h = real_load(m, lmid, name, flags | RTLD_NOLOAD);

		if (h || (flags & RTLD_NOLOAD))
			return h;
		dlerror();
		if (!g_dlopen_mode)
			return refuse_load("%s is not loaded yet, and SCONE_ALLOW_DLOPEN is not set: no library is loaded after start", name);
		return load_searched(m, lmid, name, flags, caller);
	}
	r = path_route(AT_FDCWD, name, true, &rp, &lp, &dfd);
	if (r < 0)
		return refuse_load("%s: %s", name, strerror(-r));
	if (r == 0)
		return flags & RTLD_NOLOAD ? real_load(m, lmid, lp, flags)
					   : load_host(m, lmid, name, lp, flags);
	if (!m) {
		void *h = load_loaded(name, rp.path, flags);

		if (h)
			return h;
	}
	if (flags & RTLD_NOLOAD) {
		struct dl_copy *c = copy_find(rp.path);
		char copy[64];

		if (!c)
			return refuse_load("%s is not loaded", name);
		snprintf(copy, sizeof(copy), "/proc/self/fd/%d", c->fd);
		return real_load(m, lmid, copy, flags);
	}
	return load_protected(m, lmid, rp.path, flags);
}

EXPORT void *dlopen(const char *name, int flags)
{
	const void *caller = __builtin_return_address(0);
	int saved = errno;
	void *h;

	if (!name || !shield_on())
		return REAL(dlopen)(name, flags);
	h = load(false, LM_ID_BASE, name, flags, caller);
	errno = saved;
	return h;
}

EXPORT void *dlmopen(Lmid_t lmid, const char *name, int flags)
{
	const void *caller = __builtin_return_address(0);
	int saved = errno;
	void *h;

	if (!name || !shield_on())
		return REAL(dlmopen)(lmid, name, flags);
	h = load(true, lmid, name, flags, caller);
	errno = saved;
	return h;
}
