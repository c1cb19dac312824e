// SPDX-License-Identifier: Apache-2.0
/*
 * libfshield-preload: the shield for unmodified, dynamically linked
 * programs, loaded with LD_PRELOAD and configured by the environment only
 * (see fshield-preload(8)). This file: start-up (the volume is opened
 * before main(), or refused with one line and exit status 1), logging, and
 * the table that attaches shield state to protected descriptors; with
 * SCONE_FSPF_MUTABLE, the lock placeholders and the commit at exit.
 *
 * Protected descriptors are real kernel descriptors (a directory opened
 * read-only, so that a program that gets one without the shield reads
 * EISDIR, never stored bytes), numbered, polled and closed on exec by the
 * kernel; the table maps their numbers to a shared struct pfile.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "fsh_crypto.h"
#include "preload_i.h"

/* Start-up refused: the host program ends with this status. */
#define REFUSE_STATUS 1
#define KEY_HEX_MAX_BYTES 256

struct real_fns g_real;
struct fshield_volume *g_vol;
int g_ready;
bool g_mutable;
bool g_strict;
bool g_forked;
int g_dlopen_mode;
__thread int t_depth __attribute__((tls_model("initial-exec")));

static int g_log_level;
static const char *g_fspf_path;
/*
 * SCONE_FSPF_MUTABLE: the volume let go while this process waits for a
 * child (volume_yield()), taken back on the next call into the runtime;
 * written under g_runtime_lock held for writing. The expected tag then
 * comes from the tag file when the start took it from there.
 */
static bool g_suspended;
static bool g_tag_from_file;
static bool g_resume_failed;
static time_t g_resume_failed_at;
/* SCONE_FSPF_MUTABLE: the directory of the lock placeholders. */
static int g_lock_dirfd = -1;
static dev_t g_lock_dev;	/* g_lock_dirfd's, checked before emptying it */
static ino_t g_lock_ino;
static int g_log_fd = STDERR_FILENO;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
/*
 * Readers: calls into the runtime; writer: fork(), so that a child never
 * inherits a runtime lock held by a thread it does not have.
 */
static pthread_rwlock_t g_runtime_lock =
	PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static pthread_mutex_t g_table_lock = PTHREAD_MUTEX_INITIALIZER;

void *real_resolve(void **slot, const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	__atomic_store_n(slot, p, __ATOMIC_RELEASE);
	return p;
}

/* ---- logging ---- */

void plog(int level, const char *fmt, ...)
{
	int saved = errno;
	char msg[1200];
	va_list ap;
	int n;

	if (level > g_log_level) {
		errno = saved;
		return;
	}
	n = snprintf(msg, sizeof(msg), "fshield-preload[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(msg);
	msg[n++] = '\n';
	if (REAL(write)(g_log_fd, msg, (size_t)n) < 0) {
		/* nowhere else to say it */
	}
	errno = saved;
}

static void runtime_log(void *ctx, int level, const char *msg)
{
	plog(level, "%s", msg);
}

/* ---- start-up ---- */

/* The one line a refused start prints, whatever SCONE_LOG says; then exit. */
__attribute__((noreturn)) static void refuse(const char *fspf,
					     const char *why)
{
	char msg[1024];
	int n;

	n = snprintf(msg, sizeof(msg),
		     "fshield-preload: refusing to start %s: fspf '%s': %s\n",
		     program_invocation_short_name, fspf ? fspf : "(none)",
		     why);
	if (n > (int)sizeof(msg) - 1)
		n = (int)sizeof(msg) - 1;
	if (REAL(write)(STDERR_FILENO, msg, (size_t)n) < 0) {
		/* the exit status still says it */
	}
	_exit(REFUSE_STATUS);
}

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* Up to @size - 1 bytes of descriptor @fd, from its start when it can. */
static ssize_t read_small(int fd, char *buf, size_t size)
{
	ssize_t n = REAL(pread64)(fd, buf, size - 1, 0);

	if (n < 0 && errno == ESPIPE)
		n = REAL(read)(fd, buf, size - 1);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static int key_from_file(const char *path, char *hex, size_t size)
{
	struct stat st;
	ssize_t n;
	int fd = REAL(open64)(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return -errno;
	if (REAL(fstat)(fd, &st) == 0 && (st.st_mode & 077))
		plog(FSHIELD_LOG_WARNING,
		     "the key file '%s' can be read by others (mode %04o)",
		     path, (unsigned)(st.st_mode & 07777));
	n = read_small(fd, hex, size);
	REAL(close)(fd);
	return n < 0 ? -errno : 0;
}

static int key_from_fd(const char *num, char *hex, size_t size)
{
	char *end;
	long fd = strtol(num, &end, 10);

	if (*end || fd < 0 || fd > INT_MAX)
		return -EINVAL;
	/* Left open: a program it execs reads it again at its start. */
	return read_small((int)fd, hex, size) < 0 ? -errno : 0;
}

/*
 * The fspf key from exactly one of SCONE_FSPF_KEY, SCONE_FSPF_KEY_FILE and
 * SCONE_FSPF_KEY_FD. Every copy of it is wiped here; the caller wipes @key.
 */
static const char *read_key(uint8_t key[FSHIELD_KEY_BYTES])
{
	const char *text = env("SCONE_FSPF_KEY");
	const char *file = env("SCONE_FSPF_KEY_FILE");
	const char *fd = env("SCONE_FSPF_KEY_FD");
	char hex[KEY_HEX_MAX_BYTES];
	const char *why = NULL;
	int err = 0;

	if (!!text + !!file + !!fd != 1)
		return text || file || fd
			       ? "give the key one way only (SCONE_FSPF_KEY, SCONE_FSPF_KEY_FILE or SCONE_FSPF_KEY_FD)"
			       : "no key: set SCONE_FSPF_KEY, SCONE_FSPF_KEY_FILE or SCONE_FSPF_KEY_FD";
	hex[0] = '\0';
	if (file)
		err = key_from_file(file, hex, sizeof(hex));
	else if (fd)
		err = key_from_fd(fd, hex, sizeof(hex));
	if (err)
		why = file ? "cannot read the key file (SCONE_FSPF_KEY_FILE)"
			   : "cannot read the key descriptor (SCONE_FSPF_KEY_FD)";
	else if (fsh_hex_decode(text ? text : hex, strlen(text ? text : hex),
				key, FSHIELD_KEY_BYTES))
		why = "the key is not 64 hex digits";
	fsh_wipe(hex, sizeof(hex));
	return why;
}

/*
 * The expected tag from the tag file SCONE_FSPF_TAG_FILE, when it exists
 * (as scone-fspf mount --tag-file): @buf gets its first line.
 */
static const char *tag_from_file(const char *path, char *buf, size_t size)
{
	int fd = REAL(open64)(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	ssize_t n;

	if (fd < 0)
		return errno == ENOENT ? NULL : "cannot read the tag file (SCONE_FSPF_TAG_FILE)";
	n = read_small(fd, buf, size);
	REAL(close)(fd);
	if (n < 0)
		return "cannot read the tag file (SCONE_FSPF_TAG_FILE)";
	buf[strcspn(buf, "\r\n")] = '\0';
	return NULL;
}

static const char *read_tag(uint8_t tag[FSHIELD_TAG_BYTES], unsigned *flags)
{
	const char *hex = env("SCONE_FSPF_TAG");
	const char *none = env("SCONE_FSPF_NO_ROLLBACK_PROTECTION");
	const char *file = env("SCONE_FSPF_TAG_FILE");
	char buf[KEY_HEX_MAX_BYTES] = "";

	if (!hex && file) {
		const char *why = tag_from_file(file, buf, sizeof(buf));

		if (why)
			return why;
		if (buf[0] && fsh_hex_decode(buf, strlen(buf), tag,
					     FSHIELD_TAG_BYTES))
			return "the tag file (SCONE_FSPF_TAG_FILE) does not hold 32 hex digits";
		if (buf[0] && none)
			return "SCONE_FSPF_TAG_FILE names a tag and SCONE_FSPF_NO_ROLLBACK_PROTECTION is set";
		if (buf[0]) {
			/* it may lag behind its writer's last commits */
			if (!(*flags & FSHIELD_TAG_EXACT))
				*flags |= FSHIELD_TAG_OR_NEWER;
			return NULL;
		}
	}
	if (hex && none)
		return "SCONE_FSPF_TAG and SCONE_FSPF_NO_ROLLBACK_PROTECTION exclude each other";
	if (!hex) {
		if (!none || strcmp(none, "1"))
			return "no expected tag: set SCONE_FSPF_TAG (or SCONE_FSPF_NO_ROLLBACK_PROTECTION=1 to run without rollback protection)";
		*flags |= FSHIELD_NO_ROLLBACK_PROTECTION;
		return NULL;
	}
	if (fsh_hex_decode(hex, strlen(hex), tag, FSHIELD_TAG_BYTES))
		return "SCONE_FSPF_TAG is not 32 hex digits";
	return NULL;
}

/*
 * SCONE_FSPF_LOCK_WAIT: seconds to wait at start for another process's
 * hold of the fspf (a writer, or the readers a writer waits for) to end;
 * default 10, 0: refused at once.
 */
static const char *read_lock_wait(unsigned *ms)
{
	const char *v = env("SCONE_FSPF_LOCK_WAIT");
	char *end;
	unsigned long sec;

	*ms = 10000;
	if (!v)
		return NULL;
	errno = 0;
	sec = strtoul(v, &end, 10);
	if (errno || *end || end == v || sec > 86400)
		return "SCONE_FSPF_LOCK_WAIT must be a number of seconds (0 to 86400)";
	*ms = (unsigned)sec * 1000;
	return NULL;
}

/* SCONE_ALLOW_DLOPEN: unset, empty or 0, 1, or 2 (fshield-preload(8)). */
static const char *read_dlopen_mode(int *mode)
{
	const char *v = env("SCONE_ALLOW_DLOPEN");

	if (!v || !strcmp(v, "0"))
		*mode = 0;
	else if (!strcmp(v, "1"))
		*mode = 1;
	else if (!strcmp(v, "2"))
		*mode = 2;
	else
		return "SCONE_ALLOW_DLOPEN must be 0, 1 or 2";
	return NULL;
}

static void log_setup(void)
{
	const char *level = env("SCONE_LOG");
	const char *file = env("SCONE_LOG_FILE");

	if (level) {
		char *end;
		long v = strtol(level, &end, 10);

		g_log_level = *end || v < 0 ? 0 : v > 7 ? 7 : (int)v;
	}
	if (file && g_log_level) {
		int fd = REAL(open64)(file, O_WRONLY | O_APPEND | O_CREAT |
						    O_CLOEXEC | O_NOCTTY,
				      0600);

		if (fd >= 0)
			g_log_fd = fd;
		else
			plog(FSHIELD_LOG_WARNING,
			     "cannot open SCONE_LOG_FILE '%s': %s; logging to stderr",
			     file, strerror(errno));
	}
}

static void atfork_prepare(void)
{
	vcwd_atfork_prepare();
	dirs_atfork_prepare();
	pthread_rwlock_wrlock(&g_runtime_lock);
	pthread_mutex_lock(&g_table_lock);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&g_table_lock);
	pthread_rwlock_unlock(&g_runtime_lock);
	dirs_atfork_release(false);
	vcwd_atfork_release(false);
}

/*
 * In the child the locks are made anew: glibc's rwlock knows its writer by
 * thread id, which the child's only thread does not share.
 */
static void atfork_child(void)
{
	pthread_rwlockattr_t attr;

	pthread_mutex_init(&g_table_lock, NULL);
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr,
				      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&g_runtime_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	dirs_atfork_release(true);
	vcwd_atfork_release(true);
	/* The parent's volume: read here, written and committed there only. */
	g_forked = true;
}

/* ---- lock placeholders (SCONE_FSPF_MUTABLE) ---- */

/*
 * A writable volume's protected files get, as the kernel's half of their
 * descriptors, a file of the directory "<fspf>.locks" (one per protected
 * path, made on first use, empty for ever): fcntl() and flock() locks on
 * it are the kernel's own, between descriptions, threads and forked
 * children, and a program that gets the descriptor without the shield
 * reads and writes an empty scratch file, never the stored form. The
 * directory is the writer's alone (the volume's flock), emptied when it
 * starts and when it exits. It lies on the untrusted host: it is used only
 * as a real directory of ours, mode 0700, never through a symlink.
 */
static void lock_dir_clear(void)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd;

	t_depth++;
	/* Still our directory (a program may have taken its number): */
	if (REAL(fstat)(g_lock_dirfd, &st) < 0 || st.st_dev != g_lock_dev ||
	    st.st_ino != g_lock_ino) {
		plog(FSHIELD_LOG_ERR, "the directory of the lock placeholders is no longer ours: not emptied");
		t_depth--;
		return;
	}
	fd = REAL(dup)(g_lock_dirfd);
	d = fd < 0 ? NULL : REAL(fdopendir)(fd);
	if (!d && fd >= 0)
		REAL(close)(fd);
	if (d) /* the dup shares the offset of the last listing */
		REAL(rewinddir)(d);
	while (d && (de = REAL(readdir)(d)))
		if (de->d_name[0] != '.')
			REAL(unlinkat)(g_lock_dirfd, de->d_name, 0);
	if (d)
		REAL(closedir)(d);
	t_depth--;
}

static const char *lock_dir_make(const char *fspf)
{
	char path[PATH_MAX];
	struct stat st;
	int fd = -1;

	if ((size_t)snprintf(path, sizeof(path), "%s.locks", fspf) <
		    sizeof(path) &&
	    (REAL(mkdir)(path, 0700) == 0 || errno == EEXIST))
		fd = REAL(open64)(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						O_CLOEXEC);
	if (fd < 0)
		return "cannot create the directory of the lock placeholders (<fspf>.locks)";
	if (REAL(fstat)(fd, &st) < 0 || st.st_uid != geteuid() ||
	    (st.st_mode & 077)) {
		REAL(close)(fd);
		return "the directory of the lock placeholders (<fspf>.locks) is not ours alone (owner, mode 0700)";
	}
	/* Out of the way of numbers a program picks itself (see fd_high()). */
	g_lock_dirfd = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, 960);
	if (g_lock_dirfd < 0)
		g_lock_dirfd = fd;
	else
		REAL(close)(fd);
	g_lock_dev = st.st_dev;
	g_lock_ino = st.st_ino;
	lock_dir_clear();
	return NULL;
}

int lock_placeholder(const char *path, int flags)
{
	char name[32];
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a: a name per path */
	int fd;

	for (const char *c = path; *c; c++)
		h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
	if (g_lock_dirfd < 0)
		return -EBADF;
	snprintf(name, sizeof(name), "%016llx", (unsigned long long)h);
	fd = REAL(openat64)(g_lock_dirfd, name,
			    (flags & (O_ACCMODE | O_CLOEXEC)) | O_CREAT |
				    O_NOFOLLOW | O_NOCTTY,
			    0600);
	return fd < 0 ? -errno : fd;
}

static void init_once(void)
{
	struct fshield_config cfg = { 0 };
	uint8_t key[FSHIELD_KEY_BYTES], tag[FSHIELD_TAG_BYTES];
	struct fshield_volume *vol = NULL;
	const char *why;
	int err;

	cfg.fspf_path = env("SCONE_FSPF");
	if (!cfg.fspf_path)
		return; /* not asked for: pass everything through */
	t_depth++;
	log_setup();
	why = read_key(key);
	/* SCONE_FSPF_TAG_EXACT=1: the tag file names exactly the state */
	if (env("SCONE_FSPF_TAG_EXACT") &&
	    strcmp(env("SCONE_FSPF_TAG_EXACT"), "0")) {
		cfg.flags |= FSHIELD_TAG_EXACT;
		if (!why && !env("SCONE_FSPF_TAG_FILE"))
			why = "SCONE_FSPF_TAG_EXACT is about a tag file, and SCONE_FSPF_TAG_FILE is not set";
	}
	if (!why)
		why = read_tag(tag, &cfg.flags);
	g_mutable = env("SCONE_FSPF_MUTABLE") &&
		    strcmp(env("SCONE_FSPF_MUTABLE"), "0");
	g_strict = env("SCONE_FSPF_STRICT") &&
		   strcmp(env("SCONE_FSPF_STRICT"), "0");
	if (!why)
		why = read_dlopen_mode(&g_dlopen_mode);
	if (!why && g_mutable) {
		cfg.flags |= FSHIELD_WRITABLE;
		cfg.tag_path = env("SCONE_FSPF_TAG_FILE");
		g_tag_from_file = cfg.tag_path && !env("SCONE_FSPF_TAG");
		/* read again once the lock is ours: a writer we waited for
		 * may have committed meanwhile (our parent, at its wait) */
		if (g_tag_from_file)
			cfg.flags |= FSHIELD_TAG_FROM_FILE;
	}
	if (!why)
		why = read_lock_wait(&cfg.lock_wait_ms);
	if (why) {
		fsh_wipe(key, sizeof(key));
		refuse(cfg.fspf_path, why);
	}
	cfg.root = env("FSHIELD_ROOT");
	cfg.key = key;
	cfg.expected_tag = cfg.flags & FSHIELD_NO_ROLLBACK_PROTECTION ? NULL
								      : tag;
	cfg.log = runtime_log;
	err = fshield_volume_open(&cfg, &vol);
	fsh_wipe(key, sizeof(key));
	if (err)
		refuse(cfg.fspf_path, fshield_strerror(err));
	why = g_mutable ? lock_dir_make(cfg.fspf_path) : NULL;
	if (why) {
		fshield_volume_close(vol);
		refuse(cfg.fspf_path, why);
	}
	g_fspf_path = cfg.fspf_path;
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	plog(FSHIELD_LOG_INFO, "shielding %s with '%s'%s%s",
	     program_invocation_short_name, cfg.fspf_path,
	     cfg.root ? "" : " (root /)", g_mutable ? ", writable" : "");
	if (g_dlopen_mode == 2)
		plog(FSHIELD_LOG_WARNING,
		     "SCONE_ALLOW_DLOPEN=2: any library may be loaded, protected or not (debug only)");
	g_vol = vol;
	t_depth--;
}

void preload_init(void)
{
	pthread_once(&g_once, init_once);
	__atomic_store_n(&g_ready, 1, __ATOMIC_RELEASE);
}

/*
 * At exit() of the process that opened a writable volume: what is not
 * committed yet is (stdio streams on protected files flushed first, every
 * protected file closed). A forked child never commits its parent's
 * volume; _exit() and fatal signals skip this (fshield-preload(8)).
 */
__attribute__((destructor)) static void preload_dtor(void)
{
	struct fshield_volume *vol = g_vol;
	int err;

	if (!vol || !g_mutable || g_forked || t_depth)
		return;
	/* let go for a child that may still write: nothing of ours is left */
	if (__atomic_load_n(&g_suspended, __ATOMIC_ACQUIRE))
		return;
	fflush(NULL);
	fd_close_files();
	__atomic_store_n(&g_vol, NULL, __ATOMIC_RELEASE);
	t_depth++;
	err = fshield_volume_close(vol);
	if (err) {
		char msg[1024];
		int n = snprintf(msg, sizeof(msg),
				 "fshield-preload: %s: the final commit of fspf '%s' failed: %s\n",
				 program_invocation_short_name, g_fspf_path,
				 fshield_strerror(err));

		if (n > (int)sizeof(msg) - 1)
			n = (int)sizeof(msg) - 1;
		if (REAL(write)(STDERR_FILENO, msg, (size_t)n) < 0) {
			/* nowhere else to say it */
		}
	}
	lock_dir_clear();
	t_depth--;
}

/* Before main(); the interposers also start the shield on first use. */
__attribute__((constructor)) static void preload_ctor(void)
{
	if (!t_depth)
		preload_init();
}

/*
 * Take a suspended volume back (g_runtime_lock held for writing: no call
 * in the runtime). At the tag the tag file names once the lock is ours,
 * when the start took its tag from there (a child committed meanwhile),
 * else at our own: another
 * writer's commit then leaves the volume suspended, and every call fails
 * with EBUSY, logged. A forked child never takes its parent's lock.
 */
static void volume_resume(void)
{
	int err;

	struct timespec now;

	if (!g_suspended || g_forked)
		return;
	/* after a failed attempt, the calls of the next second fail at once */
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (g_resume_failed && now.tv_sec - g_resume_failed_at <= 1)
		return;
	/* NULL: the tag file's tag, read with the lock (FSHIELD_TAG_FROM_FILE) */
	err = fshield_volume_resume(g_vol, NULL);
	g_resume_failed = err != 0;
	if (err) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		g_resume_failed_at = now.tv_sec;
		plog(FSHIELD_LOG_ERR,
		     "cannot take fspf '%s' back after a child: %s; its files fail with EBUSY",
		     g_fspf_path, fshield_strerror(err));
		return;
	}
	g_suspended = false;
	plog(FSHIELD_LOG_DEBUG, "took fspf '%s' back", g_fspf_path);
}

void shield_enter(void)
{
	t_depth++;
	pthread_rwlock_rdlock(&g_runtime_lock);
	if (!__atomic_load_n(&g_suspended, __ATOMIC_ACQUIRE) || g_forked)
		return;
	pthread_rwlock_unlock(&g_runtime_lock);
	pthread_rwlock_wrlock(&g_runtime_lock);
	{
		int saved = errno;

		volume_resume();
		errno = saved;
	}
	pthread_rwlock_unlock(&g_runtime_lock);
	pthread_rwlock_rdlock(&g_runtime_lock);
}

void shield_enter_regions(void)
{
	t_depth++;
	pthread_rwlock_rdlock(&g_runtime_lock);
}

/*
 * Before this process blocks waiting for a child: with no protected file
 * open, commit and let go of the volume, so that the child (a program
 * started with the same environment) can write the tree. Taken back on
 * the next call into the runtime (shield_enter()).
 */
void volume_yield(void)
{
	int err, saved = errno;

	if (!shield_on() || !shield_writes() ||
	    __atomic_load_n(&g_suspended, __ATOMIC_ACQUIRE))
		return;
	t_depth++;
	/*
	 * Never waited for: a thread in the runtime (or a signal handler
	 * that interrupted one, waiting in SIGCHLD) keeps the volume.
	 */
	if (pthread_rwlock_trywrlock(&g_runtime_lock)) {
		t_depth--;
		errno = saved;
		return;
	}
	err = g_suspended ? 0 : fshield_volume_suspend(g_vol);
	if (!err && !g_suspended) {
		__atomic_store_n(&g_suspended, true, __ATOMIC_RELEASE);
		plog(FSHIELD_LOG_DEBUG, "let go of fspf '%s' for a child",
		     g_fspf_path);
	} else if (err) {
		plog(FSHIELD_LOG_INFO,
		     "keeping fspf '%s' while waiting for a child: %s",
		     g_fspf_path,
		     err == -EBUSY ? "a protected file is open"
				   : fshield_strerror(err));
	}
	pthread_rwlock_unlock(&g_runtime_lock);
	t_depth--;
	errno = saved;
}

/* ---- waiting for children ---- */

EXPORT pid_t wait(int *status)
{
	volume_yield();
	return REAL(wait)(status);
}

EXPORT pid_t waitpid(pid_t pid, int *status, int options)
{
	if (!(options & WNOHANG))
		volume_yield();
	return REAL(waitpid)(pid, status, options);
}

EXPORT int waitid(idtype_t type, id_t id, siginfo_t *info, int options)
{
	if (!(options & WNOHANG))
		volume_yield();
	return REAL(waitid)(type, id, info, options);
}

EXPORT pid_t wait3(int *status, int options, struct rusage *usage)
{
	if (!(options & WNOHANG))
		volume_yield();
	return REAL(wait3)(status, options, usage);
}

EXPORT pid_t wait4(pid_t pid, int *status, int options, struct rusage *usage)
{
	if (!(options & WNOHANG))
		volume_yield();
	return REAL(wait4)(pid, status, options, usage);
}

/* system(3) and pclose(3) wait with libc's own calls. */
EXPORT int system(const char *command)
{
	if (command)
		volume_yield();
	return REAL(system)(command);
}

EXPORT int pclose(FILE *stream)
{
	volume_yield();
	return REAL(pclose)(stream);
}

void shield_leave(void)
{
	int saved = errno;

	pthread_rwlock_unlock(&g_runtime_lock);
	t_depth--;
	errno = saved;
}

/* ---- the table of protected descriptors ---- */

/* Two levels, allocated as used: descriptors up to 2^20. */
#define FD_PAGE_FDS 1024
#define FD_PAGES 1024

static struct pfile **g_fd_pages[FD_PAGES];

static struct pfile **fd_slot(int fd, bool create)
{
	struct pfile **page;

	if (fd < 0 || fd >= FD_PAGE_FDS * FD_PAGES)
		return NULL;
	page = __atomic_load_n(&g_fd_pages[fd / FD_PAGE_FDS], __ATOMIC_ACQUIRE);
	if (!page && create) { /* under g_table_lock */
		page = calloc(FD_PAGE_FDS, sizeof(*page));
		if (!page)
			return NULL;
		__atomic_store_n(&g_fd_pages[fd / FD_PAGE_FDS], page,
				 __ATOMIC_RELEASE);
	}
	return page ? &page[fd % FD_PAGE_FDS] : NULL;
}

struct pfile *pfile_new(const char *path, mode_t type, int flags,
			struct fshield_file *file)
{
	struct pfile *pf = calloc(1, sizeof(*pf));

	if (!pf || !(pf->path = strdup(path))) {
		free(pf);
		return NULL;
	}
	pthread_mutex_init(&pf->lock, NULL);
	pf->type = type;
	pf->flags = flags;
	pf->file = file;
	return pf;
}

/*
 * Closing a file that wrote commits the volume (its error is close()'s);
 * a forked child leaves that to its parent and only forgets the file.
 */
static int pfile_free(struct pfile *pf)
{
	int err = 0;

	if (pf->file && !(g_forked && g_mutable)) {
		shield_enter();
		err = fshield_close(pf->file);
		shield_leave();
	}
	pthread_mutex_destroy(&pf->lock);
	free(pf->path);
	free(pf);
	return err;
}

/* A reference to the description of @fd, or NULL: not protected. */
struct pfile *fd_get(int fd)
{
	struct pfile **slot = fd_slot(fd, false), *pf;

	if (!slot || !__atomic_load_n(slot, __ATOMIC_ACQUIRE))
		return NULL;
	pthread_mutex_lock(&g_table_lock);
	pf = *slot;
	if (pf)
		pf->refs++;
	pthread_mutex_unlock(&g_table_lock);
	return pf;
}

int pfile_put(struct pfile *pf)
{
	unsigned refs;

	if (!pf)
		return 0;
	pthread_mutex_lock(&g_table_lock);
	refs = --pf->refs;
	pthread_mutex_unlock(&g_table_lock);
	return refs ? 0 : pfile_free(pf);
}

/* @fd now refers to @pf (a reference of its own); what it had is dropped. */
void fd_install(int fd, struct pfile *pf)
{
	struct pfile **slot, *old = NULL;

	pthread_mutex_lock(&g_table_lock);
	slot = fd_slot(fd, true);
	if (slot) {
		old = *slot;
		pf->refs++;
		__atomic_store_n(slot, pf, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&g_table_lock);
	if (!slot)
		plog(FSHIELD_LOG_ERR, "descriptor %d is beyond the shield's table",
		     fd);
	pfile_put(old);
}

int fd_drop(int fd)
{
	struct pfile **slot = fd_slot(fd, false), *old;

	if (!slot || !__atomic_load_n(slot, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&g_table_lock);
	old = *slot;
	__atomic_store_n(slot, NULL, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&g_table_lock);
	return pfile_put(old);
}

void fd_close_files(void)
{
	for (unsigned int p = 0; p < FD_PAGES; p++) {
		struct pfile **page = __atomic_load_n(&g_fd_pages[p],
						      __ATOMIC_ACQUIRE);

		for (unsigned int i = 0; page && i < FD_PAGE_FDS; i++) {
			struct fshield_file *file = NULL;

			pthread_mutex_lock(&g_table_lock);
			if (page[i]) {
				file = page[i]->file;
				page[i]->file = NULL;
			}
			pthread_mutex_unlock(&g_table_lock);
			if (file) {
				shield_enter();
				fshield_close(file);
				shield_leave();
			}
		}
	}
}

void fd_drop_range(unsigned int first, unsigned int last)
{
	unsigned int end = FD_PAGE_FDS * FD_PAGES;

	for (unsigned int fd = first; fd <= last && fd < end; fd++) {
		if (!__atomic_load_n(&g_fd_pages[fd / FD_PAGE_FDS],
				     __ATOMIC_ACQUIRE)) {
			fd |= FD_PAGE_FDS - 1; /* a whole empty page */
			continue;
		}
		fd_drop((int)fd);
	}
}
