// SPDX-License-Identifier: Apache-2.0
/*
 * mount: show a protected tree through FUSE, read-only, or read-write with
 * --rw (commits at every fsync and at unmount). Every answer comes from the
 * runtime API (fshield.h): this file knows neither the crypto nor the fspf
 * format, as the preload layer will not either.
 */
#define FUSE_USE_VERSION 31

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "cli.h"
#include "fshield.h"

_Static_assert(FSHIELD_KEY_BYTES == FSH_FSPF_KEY_BYTES,
	       "the runtime takes the fspf key the CLI parses");
_Static_assert(FSHIELD_TAG_BYTES == FSH_TAG_BYTES,
	       "the runtime takes the tag the CLI parses");

/*
 * What every mount gets ("ro," first without --rw); -o adds to it
 * (allow_other only when asked).
 */
#define MOUNT_DEFAULT_OPTIONS "default_permissions,fsname=fshield,subtype=fshield"

static const char MOUNT_USAGE[] =
	"Usage: scone-fspf mount FSPF MOUNTPOINT [--root DIR] [-f|--foreground]\n"
	"       [--rw] [-o FUSE_OPTIONS] [--no-rollback-protection] [--allow-unencrypted]\n"
	"       [--key-file FILE | --key-fd N] [--expected-tag HEX]\n"
	"       [--tag-file FILE [--tag-exact]]\n"
	"Show the protected tree of FSPF at MOUNTPOINT, every byte verified:\n"
	"read-only, or with --rw read-write, committed at every fsync and at\n"
	"unmount (with --rw, --tag-file receives each new tag). See scone-fspf(1).\n";

/*
 * A file the kernel has open; listed so that none outlives the volume, and
 * with its path, for libfuse's way with an open file that is unlinked: it
 * renames it to a ".fuse_hidden..." name, uses that name while the file is
 * open, and unlinks it at the last release. Here the rename is an unlink
 * in the runtime (which keeps the open file working; nothing is recorded
 * under the hidden name) and the hidden name is answered from the handle.
 */
struct open_file {
	struct fshield_file *file;
	char *path;   /* mc->lock; as opened, following renames */
	char *hidden; /* mc->lock; the hidden name once unlinked, or NULL */
	bool writable; /* opened for writing */
	struct open_file *prev, *next;
};

struct mount_ctx {
	struct fshield_volume *vol;
	bool rw;
	const char *statfs_dir; /* host directory whose statvfs the mount reports */
	bool use_syslog; /* set once, before the FUSE threads start */
	pthread_mutex_t lock; /* guards @files */
	struct open_file files; /* list head */
};

static struct mount_ctx *ctx(void)
{
	return fuse_get_context()->private_data;
}

static struct fshield_file *file_of(const struct fuse_file_info *fi)
{
	return ((struct open_file *)(uintptr_t)fi->fh)->file;
}

/*
 * The runtime's messages: on stderr while it is a terminal's (foreground,
 * or until the daemon detaches), then to syslog. Debug lines are dropped.
 */
static void log_msg(void *arg, int level, const char *msg)
{
	struct mount_ctx *mc = arg;

	if (level > FSHIELD_LOG_INFO)
		return;
	if (mc->use_syslog) {
		syslog(level, "fshield: %s", msg);
		return;
	}
	fprintf(stderr, "fshield: %s%s\n",
		level <= FSHIELD_LOG_ERR     ? "error: " :
		level == FSHIELD_LOG_WARNING ? "warning: " :
					       "",
		msg);
}

static bool is_hidden(const char *path)
{
	const char *slash = strrchr(path, '/');

	return !strncmp(slash ? slash + 1 : path, ".fuse_hidden", 12);
}

/*
 * The open file now known by hidden name @path, one opened for writing
 * when there is one (truncate(2) by that name: the handle's access mode
 * is not the caller's). mc->lock held.
 */
static struct open_file *hidden_file(struct mount_ctx *mc, const char *path)
{
	struct open_file *found = NULL;

	for (struct open_file *of = mc->files.next; of != &mc->files;
	     of = of->next) {
		if (!of->hidden || strcmp(of->hidden, path))
			continue;
		if (of->writable)
			return of;
		if (!found)
			found = of;
	}
	return found;
}

/*
 * The open file a request is about: its handle's or, without one, the file
 * known by hidden name @path, with mc->lock held (*locked) until by_done().
 * NULL: the request goes by path.
 */
static struct fshield_file *by_file(const char *path, struct fuse_file_info *fi,
				    bool *locked)
{
	struct mount_ctx *mc = ctx();
	struct open_file *of;

	*locked = false;
	if (fi)
		return file_of(fi);
	if (!is_hidden(path))
		return NULL;
	pthread_mutex_lock(&mc->lock);
	of = hidden_file(mc, path);
	if (of) {
		*locked = true;
		return of->file;
	}
	pthread_mutex_unlock(&mc->lock);
	return NULL;
}

static int by_done(bool locked, int err)
{
	if (locked)
		pthread_mutex_unlock(&ctx()->lock);
	return err;
}

static int fs_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	bool locked;
	struct fshield_file *f = by_file(path, fi, &locked);

	return by_done(locked, f ? fshield_fstat(f, st)
				 : fshield_stat(ctx()->vol, path, st));
}

struct fill {
	void *buf;
	fuse_fill_dir_t filler;
	enum fuse_fill_dir_flags flags;
};

static int fill_one(void *arg, const char *name, const struct stat *st)
{
	struct fill *f = arg;

	/* With offset 0 the filler only fails when it cannot grow its buffer. */
	return f->filler(f->buf, name, st, 0, f->flags) ? -ENOMEM : 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		      off_t offset, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	/* The runtime's stats are complete: hand them over with readdirplus. */
	struct fill f = { buf, filler,
			  (flags & FUSE_READDIR_PLUS) ? FUSE_FILL_DIR_PLUS : 0 };

	if (filler(buf, ".", NULL, 0, 0) || filler(buf, "..", NULL, 0, 0))
		return -ENOMEM;
	return fshield_readdir(ctx()->vol, path, fill_one, &f);
}

static int fs_readlink(const char *path, char *buf, size_t size)
{
	ssize_t n = fshield_readlink(ctx()->vol, path, buf, size);

	return n < 0 ? (int)n : 0;
}

/*
 * A new entry belongs to the caller, as on any file system: the daemon
 * (root, typically) creates it, then hands it over.
 */
static int give_to_caller(struct mount_ctx *mc, const char *path)
{
	const struct fuse_context *fc = fuse_get_context();

	if (fc->uid == geteuid() && fc->gid == getegid())
		return 0;
	return fshield_chown(mc->vol, path, fc->uid, fc->gid);
}

static int open_common(const char *path, struct fuse_file_info *fi,
		       int flags, mode_t mode)
{
	struct mount_ctx *mc = ctx();
	struct open_file *of;
	int err;

	if (!mc->rw && ((flags & O_ACCMODE) != O_RDONLY ||
			(flags & (O_TRUNC | O_CREAT))))
		return -EROFS;
	of = calloc(1, sizeof(*of));
	if (!of || !(of->path = strdup(path))) {
		free(of);
		return -ENOMEM;
	}
	err = fshield_open(mc->vol, path,
			   flags & (O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC |
				    O_APPEND),
			   mode, &of->file);
	if (!err && (flags & O_CREAT))
		err = give_to_caller(mc, path);
	if (err) {
		fshield_close(of->file);
		free(of->path);
		free(of);
		return err;
	}
	of->writable = (flags & O_ACCMODE) != O_RDONLY;
	pthread_mutex_lock(&mc->lock);
	of->next = mc->files.next;
	of->prev = &mc->files;
	of->next->prev = of;
	mc->files.next = of;
	pthread_mutex_unlock(&mc->lock);
	fi->fh = (uintptr_t)of;
	return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	return open_common(path, fi, fi->flags, 0);
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	return open_common(path, fi, fi->flags | O_CREAT, mode);
}

static int fs_write(const char *path, const char *buf, size_t size,
		    off_t offset, struct fuse_file_info *fi)
{
	ssize_t n;

	if (offset < 0 || size > INT_MAX)
		return -EINVAL;
	n = fshield_pwrite(file_of(fi), buf, size, (uint64_t)offset);
	return (int)n;
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	return fshield_fsync(file_of(fi), datasync);
}

static int fs_fsyncdir(const char *path, int datasync,
		       struct fuse_file_info *fi)
{
	return fshield_commit(ctx()->vol, NULL);
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	bool locked;
	struct fshield_file *f;

	if (size < 0)
		return -EINVAL;
	f = by_file(path, fi, &locked);
	return by_done(locked,
		       f ? fshield_ftruncate(f, (uint64_t)size)
			 : fshield_truncate(ctx()->vol, path, (uint64_t)size));
}

static int fs_mkdir(const char *path, mode_t mode)
{
	int err = fshield_mkdir(ctx()->vol, path, mode);

	return err ? err : give_to_caller(ctx(), path);
}

static int fs_symlink(const char *target, const char *path)
{
	int err = fshield_symlink(ctx()->vol, target, path);

	return err ? err : give_to_caller(ctx(), path);
}

static int fs_unlink(const char *path)
{
	struct mount_ctx *mc = ctx();
	struct open_file *of;
	bool was_hidden = false;

	if (is_hidden(path)) {
		pthread_mutex_lock(&mc->lock);
		while ((of = hidden_file(mc, path))) { /* the last release */
			free(of->hidden);
			of->hidden = NULL;
			was_hidden = true;
		}
		pthread_mutex_unlock(&mc->lock);
		if (was_hidden)
			return 0; /* unlinked in the runtime already */
	}
	return fshield_unlink(mc->vol, path);
}

static int fs_rmdir(const char *path)
{
	return fshield_rmdir(ctx()->vol, path);
}

/* Whether @path is @dir or below it; the rest after @dir in *@rest. */
static bool below(const char *dir, const char *path, const char **rest)
{
	size_t n = strlen(dir);

	if (strncmp(path, dir, n) || (path[n] && path[n] != '/'))
		return false;
	*rest = path + n;
	return true;
}

static int fs_rename(const char *from, const char *to, unsigned int flags)
{
	struct mount_ctx *mc = ctx();
	struct open_file *of;
	const char *rest;
	int err;

	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL; /* RENAME_EXCHANGE, RENAME_WHITEOUT */
	if (is_hidden(to) && !is_hidden(from)) {
		/* libfuse hides an open file it unlinks: unlink it here. */
		err = fshield_unlink(mc->vol, from);
		if (err)
			return err;
		pthread_mutex_lock(&mc->lock);
		for (of = mc->files.next; of != &mc->files; of = of->next) {
			if (of->hidden || strcmp(of->path, from))
				continue;
			of->hidden = strdup(to);
			if (!of->hidden)
				err = -ENOMEM; /* getattr on it fails: ENOENT */
		}
		pthread_mutex_unlock(&mc->lock);
		return err;
	}
	err = fshield_rename(mc->vol, from, to,
			     flags & RENAME_NOREPLACE ? FSHIELD_RENAME_NOREPLACE
						      : 0);
	if (err)
		return err;
	/* The names below a renamed directory follow, hidden ones too. */
	pthread_mutex_lock(&mc->lock);
	for (of = mc->files.next; of != &mc->files; of = of->next) {
		char **name = of->hidden ? &of->hidden : &of->path, *moved;

		if (!below(from, *name, &rest))
			continue;
		if (asprintf(&moved, "%s%s", to, rest) >= 0) {
			free(*name);
			*name = moved;
		}
	}
	pthread_mutex_unlock(&mc->lock);
	return 0;
}

/*
 * Attributes go to the open file when the kernel names one (a handle or a
 * hidden name): fchmod(2) and futimens(2) of a file unlinked while open.
 */
static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	bool locked;
	struct fshield_file *f = by_file(path, fi, &locked);

	return by_done(locked, f ? fshield_fchmod(f, mode)
				 : fshield_chmod(ctx()->vol, path, mode));
}

static int fs_chown(const char *path, uid_t uid, gid_t gid,
		    struct fuse_file_info *fi)
{
	bool locked;
	struct fshield_file *f = by_file(path, fi, &locked);

	return by_done(locked, f ? fshield_fchown(f, uid, gid)
				 : fshield_chown(ctx()->vol, path, uid, gid));
}

static int fs_utimens(const char *path, const struct timespec tv[2],
		      struct fuse_file_info *fi)
{
	bool locked;
	struct fshield_file *f = by_file(path, fi, &locked);

	return by_done(locked, f ? fshield_futimens(f, tv)
				 : fshield_utimens(ctx()->vol, path, tv));
}

/*
 * All of the request or an error: without direct_io the kernel takes a
 * short read for the end of the file, so a read that stops at a chunk that
 * failed must fail as a whole (the kernel then retries page by page, and
 * the pages before the bad chunk still read).
 */
static int fs_read(const char *path, char *buf, size_t size, off_t offset,
		   struct fuse_file_info *fi)
{
	struct fshield_file *file = file_of(fi);
	size_t done = 0;

	if (offset < 0 || size > INT_MAX)
		return -EINVAL;
	while (done < size) {
		ssize_t n = fshield_pread(file, buf + done, size - done,
					  (uint64_t)offset + done);

		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (int)done;
}

static void unlink_file(struct mount_ctx *mc, struct open_file *of)
{
	pthread_mutex_lock(&mc->lock);
	of->prev->next = of->next;
	of->next->prev = of->prev;
	pthread_mutex_unlock(&mc->lock);
	fshield_close(of->file);
	free(of->path);
	free(of->hidden);
	free(of);
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	unlink_file(ctx(), (struct open_file *)(uintptr_t)fi->fh);
	return 0;
}

static int fs_statfs(const char *path, struct statvfs *sv)
{
	if (statvfs(ctx()->statfs_dir, sv) < 0)
		memset(sv, 0, sizeof(*sv));
	if (!sv->f_namemax)
		sv->f_namemax = NAME_MAX;
	if (!ctx()->rw)
		sv->f_flag |= ST_RDONLY;
	return 0;
}

static const struct fuse_operations g_ops = {
	.getattr = fs_getattr,
	.readlink = fs_readlink,
	.open = fs_open,
	.read = fs_read,
	.statfs = fs_statfs,
	.release = fs_release,
	.readdir = fs_readdir,
	.create = fs_create,
	.write = fs_write,
	.fsync = fs_fsync,
	.fsyncdir = fs_fsyncdir,
	.truncate = fs_truncate,
	.mkdir = fs_mkdir,
	.symlink = fs_symlink,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.rename = fs_rename,
	.chmod = fs_chmod,
	.chown = fs_chown,
	.utimens = fs_utimens,
};

static void report_open_error(const char *fspf, int err,
			      const uint8_t *expected, bool have_key)
{
	char hex[FSH_TAG_HEX_BYTES + 1];

	switch (err) {
	case -ESTALE:
		cli_tag_hex(expected, hex);
		cli_error("cannot mount '%s': %s (expected %s)", fspf,
			  fshield_strerror(err), hex);
		break;
	case -ENOKEY:
		cli_error("cannot mount '%s': the fspf is encrypted: give its key with --key-file, --key-fd or SCONE_FSPF_KEY",
			  fspf);
		break;
	case -EPERM:
		if (have_key) {
			cli_error("cannot mount '%s': a key was given but the fspf is not encrypted: anyone could have written it (it is sealed under the all-zero key)",
				  fspf);
			break;
		}
		cli_error("cannot mount '%s': it is not encrypted yet (sealed under the all-zero key), so anyone could have written it; run 'scone-fspf encrypt' first, or pass --allow-unencrypted to mount it anyway for debugging",
			  fspf);
		break;
	default:
		cli_error("cannot mount '%s': %s", fspf, fshield_strerror(err));
	}
}

/*
 * @path made absolute without resolving symlinks (a volume's relative
 * kernel directory lies next to the fspf as named). NULL: out of memory or
 * no working directory (printed).
 */
static char *absolute(const char *path)
{
	char cwd[PATH_MAX], *out = NULL;

	if (path[0] != '/' && !getcwd(cwd, sizeof(cwd))) {
		cli_error("cannot find the working directory: %s", strerror(errno));
		return NULL;
	}
	if (path[0] == '/')
		out = strdup(path);
	else if (asprintf(&out, "%s/%s", strcmp(cwd, "/") ? cwd : "", path) < 0)
		out = NULL;
	if (!out)
		cli_error("out of memory");
	return out;
}

/* Whether @path is @dir or lies below it (both canonical). */
static bool is_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (!strcmp(dir, "/"))
		return true;
	return !strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/');
}

/*
 * The daemon's start, by hand rather than fuse_daemonize(): the child opens
 * the volume, so that the key it holds stays in locked memory (mlock is not
 * inherited across fork), and still reports a refused volume on the
 * terminal. The parent exits once the mount is ready, with the child's exit
 * status if it is not.
 * Return: -1 in the child (*@ready_fd set), else the parent's exit status.
 */
static int daemon_fork(int *ready_fd)
{
	int pfd[2], status;
	pid_t pid;
	ssize_t n;
	char c;

	fflush(NULL);
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		cli_error("mount: cannot create a pipe: %s", strerror(errno));
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		cli_error("mount: cannot fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return 1;
	}
	if (pid == 0) {
		close(pfd[0]);
		*ready_fd = pfd[1];
		if (setsid() < 0) /* cannot fail in a fresh child; be loud if it does */
			cli_warn("mount: setsid: %s", strerror(errno));
		return -1;
	}
	close(pfd[1]);
	do
		n = read(pfd[0], &c, 1);
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n == 1)
		return 0; /* the mount is up; the daemon owns it */
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			cli_error("mount: cannot wait for the daemon: %s",
				  strerror(errno));
			return 1;
		}
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status) ? WEXITSTATUS(status) : 1;
	cli_error("mount: the daemon died of signal %d before the mount was ready",
		  WTERMSIG(status));
	return 1;
}

/* In the daemon, once mounted: detach from the terminal, release the parent. */
static void daemon_ready(struct mount_ctx *mc, int ready_fd)
{
	int fd = open("/dev/null", O_RDWR);

	openlog("scone-fspf", LOG_PID, LOG_DAEMON);
	mc->use_syslog = true;
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	if (write(ready_fd, "", 1) != 1)
		syslog(LOG_WARNING, "fshield: cannot tell the parent the mount is ready: %m");
	close(ready_fd);
}

/* Whether the comma-separated FUSE options @opts hold @opt. */
static bool has_option(const char *opts, const char *opt)
{
	size_t n = strlen(opt);

	for (const char *p = opts; p; p = strchr(p, ','), p = p ? p + 1 : p)
		if (!strncmp(p, opt, n) && (p[n] == ',' || !p[n]))
			return true;
	return false;
}

/* -o: add @opts to @all. */
static int add_fuse_options(char **all, const char *opts)
{
	char *grown;

	if (asprintf(&grown, "%s,%s", *all, opts) < 0) {
		cli_error("out of memory");
		return 1;
	}
	free(*all);
	*all = grown;
	return 0;
}

int cmd_mount(int argc, char **argv)
{
	enum { OPT_ROOT = OPT_FIRST_FREE, OPT_NO_ROLLBACK, OPT_RW };
	static const struct option opts[] = {
		{ "root", required_argument, NULL, OPT_ROOT },
		{ "rw", no_argument, NULL, OPT_RW },
		{ "foreground", no_argument, NULL, 'f' },
		{ "no-rollback-protection", no_argument, NULL, OPT_NO_ROLLBACK },
		{ "allow-unencrypted", no_argument, NULL, OPT_ALLOW_UNENCRYPTED },
		{ "help", no_argument, NULL, 'h' },
		KEY_LONG_OPTIONS,
		{ 0 },
	};
	struct key_opts ko = KEY_OPTS_INIT;
	struct mount_ctx mc = { .statfs_dir = "/" };
	struct fshield_config cfg = { 0 };
	uint8_t expected[FSH_TAG_BYTES];
	struct fsh_key *key = NULL;
	struct fuse *fuse = NULL;
	struct stat st;
	const char *fspf_arg, *root_arg = NULL;
	char *fuse_opts = NULL, *fspf_abs = NULL, *root_abs = NULL;
	char *root_real = NULL, *mnt_real = NULL, *fspf_dir = NULL;
	bool foreground = false, no_rollback = false, mounted = false;
	bool have_key = false;
	const char *tag_out = NULL;
	char *tag_out_abs = NULL;
	int c, ret, have, err, ready_fd = -1;

	mc.files.next = mc.files.prev = &mc.files;
	fuse_opts = strdup(MOUNT_DEFAULT_OPTIONS);
	if (!fuse_opts) {
		cli_error("out of memory");
		return 1;
	}
	while ((c = getopt_long(argc, argv, ":fo:h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_ROOT:
			root_arg = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'o':
			if ((ret = add_fuse_options(&fuse_opts, optarg)))
				goto out_free;
			break;
		case OPT_NO_ROLLBACK:
			no_rollback = true;
			break;
		case OPT_RW:
			mc.rw = true;
			break;
		case 'h':
			fputs(MOUNT_USAGE, stdout);
			ret = 0;
			goto out_free;
		default:
			if ((ret = key_opts_option(&ko, c, "mount", argv)))
				goto out_free;
		}
	}
	if (argc - optind < 2) {
		ret = cli_usage("mount: expected FSPF and MOUNTPOINT");
		goto out_free;
	}
	if (argc - optind > 2) {
		ret = cli_unexpected("mount", argv[optind + 2]);
		goto out_free;
	}
	fspf_arg = argv[optind];
	if (has_option(fuse_opts, "rw") && !mc.rw) {
		ret = cli_usage("mount: -o rw: pass --rw for a read-write mount");
		goto out_free;
	}
	if (has_option(fuse_opts, "ro") && mc.rw) {
		ret = cli_usage("mount: -o ro contradicts --rw");
		goto out_free;
	}
	if (!mc.rw) {
		char *grown;

		if (asprintf(&grown, "ro,%s", fuse_opts) < 0) {
			cli_error("out of memory");
			ret = 1;
			goto out_free;
		}
		free(fuse_opts);
		fuse_opts = grown;
	}

	/*
	 * Everything is made absolute now: the daemon works from "/", and
	 * the unmount needs the mount point as mounted.
	 */
	ret = 1;
	mnt_real = realpath(argv[optind + 1], NULL);
	if (!mnt_real || stat(mnt_real, &st) < 0) {
		cli_error("cannot mount on '%s': %s", argv[optind + 1],
			  strerror(errno));
		goto out_free;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_error("cannot mount on '%s': not a directory",
			  argv[optind + 1]);
		goto out_free;
	}
	if (!(fspf_abs = absolute(fspf_arg)))
		goto out_free;
	if (root_arg) {
		if (!(root_abs = absolute(root_arg)))
			goto out_free;
		root_real = realpath(root_arg, NULL);
		if (!root_real || stat(root_real, &st) < 0) {
			cli_error("bad root '%s': %s", root_arg, strerror(errno));
			goto out_free;
		}
		if (!S_ISDIR(st.st_mode)) {
			cli_error("bad root '%s': not a directory", root_arg);
			goto out_free;
		}
		mc.statfs_dir = root_real;
	}
	/*
	 * The daemon reads the host tree; had it to go through its own
	 * mount, every thread would end up waiting on itself.
	 */
	fspf_dir = realpath(fspf_arg, NULL);
	if (fspf_dir && strrchr(fspf_dir, '/'))
		*strrchr(fspf_dir, '/') = '\0';
	if ((root_real && is_within(root_real, mnt_real)) ||
	    (fspf_dir && *fspf_dir && is_within(fspf_dir, mnt_real))) {
		cli_error("cannot mount on '%s': it would hide the %s it reads",
			  argv[optind + 1],
			  root_real && is_within(root_real, mnt_real)
				  ? "root directory" : "fspf");
		goto out_free;
	}

	if (!foreground) {
		ret = daemon_fork(&ready_fd);
		if (ret >= 0)
			goto out_free; /* the parent, done */
		ret = 1;
	}

	/* The key is read in the process that keeps it. */
	if ((ret = cli_get_key(&ko, &key)))
		goto out_free;
	/*
	 * --rw: the tag file names the current state. It is the expected tag
	 * when it exists (and no --expected-tag is given), and receives each
	 * new tag.
	 */
	if (mc.rw && ko.tag_file) {
		tag_out = ko.tag_file;
		if (!(tag_out_abs = absolute(tag_out))) {
			ret = 1;
			goto out_free;
		}
		if (ko.tag_hex || access(ko.tag_file, F_OK) < 0)
			ko.tag_file = NULL;
	}
	have = cli_get_expected_tag(&ko, expected);
	if (have < 0) {
		ret = -have;
		goto out_free;
	}
	if (have && no_rollback) {
		ret = cli_usage("mount: give an expected tag or --no-rollback-protection, not both");
		goto out_free;
	}
	ret = 1;
	if (!have && !no_rollback) {
		cli_error("cannot mount '%s': no expected tag: give it with --expected-tag, --tag-file or SCONE_FSPF_TAG, or pass --no-rollback-protection to accept any state of the tree",
			  fspf_arg);
		goto out_free;
	}
	/*
	 * No warning here: the runtime warns through log_msg, before the
	 * daemon detaches, of no rollback protection and of an fspf that was
	 * never encrypted.
	 */
	cfg.fspf_path = fspf_abs;
	cfg.root = root_abs;
	have_key = key != NULL;
	cfg.key = key ? fsh_key_bytes(key) : NULL; /* copied by the runtime */
	cfg.expected_tag = have ? expected : NULL;
	cfg.flags = (no_rollback ? FSHIELD_NO_ROLLBACK_PROTECTION : 0) |
		    (ko.allow_unencrypted ? FSHIELD_ALLOW_UNENCRYPTED : 0) |
		    (mc.rw ? FSHIELD_WRITABLE | FSHIELD_COMMIT_EXPLICIT : 0) |
		    /* a tag file may lag behind its writer's last commits */
		    (have && ko.tag_file && !ko.tag_exact ? FSHIELD_TAG_OR_NEWER
							   : 0) |
		    (ko.tag_exact ? FSHIELD_TAG_EXACT : 0);
	cfg.tag_path = tag_out_abs;
	cfg.log = log_msg;
	cfg.log_ctx = &mc;
	pthread_mutex_init(&mc.lock, NULL);
	err = fshield_volume_open(&cfg, &mc.vol);
	cfg.key = NULL;
	fsh_key_free(key);
	key = NULL;
	if (err) {
		report_open_error(fspf_arg, err, expected, have_key);
		goto out;
	}
	if (!have_key && have) {
		/* Opened without a key: it was never encrypted. */
		cli_error("cannot mount '%s': the fspf is not encrypted, so an expected tag proves nothing (anyone can seal one with any tag); use --no-rollback-protection",
			  fspf_arg);
		goto out;
	}

	{
		char prog[] = "scone-fspf", dash_o[] = "-o";
		char *fargv[] = { prog, dash_o, fuse_opts, NULL };
		struct fuse_args args = FUSE_ARGS_INIT(3, fargv);

		fuse = fuse_new(&args, &g_ops, sizeof(g_ops), &mc);
		fuse_opt_free_args(&args);
	}
	if (!fuse) {
		cli_error("cannot mount '%s': FUSE refused the options '%s' (see above)",
			  fspf_arg, fuse_opts);
		goto out;
	}
	if (fuse_mount(fuse, mnt_real)) {
		cli_error("cannot mount '%s' on '%s' (see above)", fspf_arg,
			  argv[optind + 1]);
		goto out;
	}
	mounted = true;
	if (fuse_set_signal_handlers(fuse_get_session(fuse))) {
		cli_error("cannot set up the signal handlers");
		goto out;
	}
	if (chdir("/") < 0) /* hold no directory busy */
		cli_warn("mount: cannot change to '/': %s", strerror(errno));
	if (ready_fd >= 0) {
		daemon_ready(&mc, ready_fd);
		ready_fd = -1;
	}
	/* SIGTERM, SIGINT, SIGHUP and an unmount from outside all end the loop. */
	err = fuse_loop_mt(fuse, 0);
	fuse_remove_signal_handlers(fuse_get_session(fuse));
	ret = err < 0 ? 1 : 0;
	if (err < 0)
		log_msg(&mc, FSHIELD_LOG_ERR, "the FUSE session failed");
out:
	if (fuse) {
		if (mounted)
			fuse_unmount(fuse);
		fuse_destroy(fuse);
	}
	/* Files the kernel did not release (a lazy unmount) go before the volume. */
	while (mc.files.next != &mc.files)
		unlink_file(&mc, mc.files.next);
	if (mc.vol && mc.rw) {
		uint8_t tag[FSHIELD_TAG_BYTES];
		char hex[FSH_TAG_HEX_BYTES + 1];

		err = fshield_commit(mc.vol, tag);
		if (err) {
			log_msg(&mc, FSHIELD_LOG_ERR,
				"the final commit failed: the fspf stays at its last committed state");
			ret = 1;
		} else {
			cli_tag_hex(tag, hex);
			if (mc.use_syslog)
				syslog(LOG_NOTICE,
				       "fshield: committed file system protection file %s AES-GCM tag: %s",
				       fspf_abs, hex);
			else
				printf("Committed file system protection file %s AES-GCM tag: %s\n",
				       fspf_arg, hex);
		}
	}
	if (fshield_volume_close(mc.vol))
		ret = 1;
	pthread_mutex_destroy(&mc.lock);
	if (mc.use_syslog)
		closelog();
out_free:
	fsh_key_free(key);
	if (ready_fd >= 0)
		close(ready_fd);
	free(fuse_opts);
	free(fspf_abs);
	free(root_abs);
	free(root_real);
	free(mnt_real);
	free(fspf_dir);
	free(tag_out_abs);
	return ret;
}
