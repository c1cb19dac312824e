// SPDX-License-Identifier: Apache-2.0
/*
 * passthrough: a trivial FUSE file system that mirrors a host directory, the
 * baseline of mount_bench.sh. It measures what FUSE itself costs (the
 * round trips to a user-space daemon, the copies through it), so that the
 * benchmark can tell that cost apart from what fshield adds on top.
 *
 * For the comparison to be fair it runs FUSE exactly as `scone-fspf mount`
 * does (tools/mount.c); the settings that matter for speed are:
 *  - the high-level API, path-based, with fuse_new() and no init callback,
 *    so libfuse's defaults: attr_timeout and entry_timeout 1 s, no
 *    kernel_cache, auto_cache or writeback_cache, no direct_io;
 *  - the same mount options, "default_permissions" (the kernel checks the
 *    modes, no access callback), and nothing more: "ro" left aside since
 *    the baseline must take writes;
 *  - the multithreaded loop, fuse_loop_mt(fuse, 0): no clone_fd, libfuse's
 *    default number of idle threads;
 *  - read() and write() through a buffer in the daemon (pread/pwrite, no
 *    read_buf/write_buf splicing), as fshield has to see every byte;
 *  - readdir with full stats (readdirplus) when the kernel asks for it, as
 *    the mount hands over the runtime's stats.
 * Usage: passthrough SOURCE_DIR MOUNTPOINT   (foreground; ends on unmount,
 * SIGINT, SIGTERM or SIGHUP). Not installed.
 */
#define FUSE_USE_VERSION 31

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define PASSTHROUGH_OPTIONS \
	"default_permissions,fsname=passthrough,subtype=passthrough"

static int g_src = -1; /* the source directory, O_PATH */

/* @path ("/a/b") relative to the source directory ("a/b", or "."). */
static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static int fd_of(const struct fuse_file_info *fi)
{
	return (int)fi->fh;
}

static int pt_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	int ret = fi ? fstat(fd_of(fi), st)
		     : fstatat(g_src, rel(path), st, AT_SYMLINK_NOFOLLOW);

	return ret < 0 ? -errno : 0;
}

static int pt_readlink(const char *path, char *buf, size_t size)
{
	ssize_t n;

	if (!size)
		return -EINVAL;
	n = readlinkat(g_src, rel(path), buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int pt_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		      off_t offset, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	struct dirent *de;
	DIR *dir;
	int fd, ret = 0;

	fd = openat(g_src, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		ret = -errno;
		close(fd);
		return ret;
	}
	while ((errno = 0, de = readdir(dir))) {
		struct stat st = { .st_ino = de->d_ino,
				   .st_mode = (mode_t)DTTOIF(de->d_type) };
		enum fuse_fill_dir_flags fill = 0;

		if ((flags & FUSE_READDIR_PLUS) &&
		    fstatat(dirfd(dir), de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0)
			fill = FUSE_FILL_DIR_PLUS;
		if (filler(buf, de->d_name, &st, 0, fill)) {
			ret = -ENOMEM;
			break;
		}
	}
	if (!de && errno)
		ret = -errno;
	closedir(dir);
	return ret;
}

static int pt_mkdir(const char *path, mode_t mode)
{
	return mkdirat(g_src, rel(path), mode) < 0 ? -errno : 0;
}

static int pt_symlink(const char *target, const char *path)
{
	return symlinkat(target, g_src, rel(path)) < 0 ? -errno : 0;
}

static int pt_unlink(const char *path)
{
	return unlinkat(g_src, rel(path), 0) < 0 ? -errno : 0;
}

static int pt_rmdir(const char *path)
{
	return unlinkat(g_src, rel(path), AT_REMOVEDIR) < 0 ? -errno : 0;
}

static int pt_rename(const char *from, const char *to, unsigned int flags)
{
	return renameat2(g_src, rel(from), g_src, rel(to), flags) < 0 ? -errno
								       : 0;
}

static int pt_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int ret = fi ? fchmod(fd_of(fi), mode)
		     : fchmodat(g_src, rel(path), mode, 0);

	return ret < 0 ? -errno : 0;
}

static int pt_chown(const char *path, uid_t uid, gid_t gid,
		    struct fuse_file_info *fi)
{
	int ret = fi ? fchown(fd_of(fi), uid, gid)
		     : fchownat(g_src, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW);

	return ret < 0 ? -errno : 0;
}

static int pt_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	int fd, ret;

	if (fi)
		return ftruncate(fd_of(fi), size) < 0 ? -errno : 0;
	fd = openat(g_src, rel(path), O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = ftruncate(fd, size) < 0 ? -errno : 0;
	close(fd);
	return ret;
}

static int pt_utimens(const char *path, const struct timespec tv[2],
		      struct fuse_file_info *fi)
{
	int ret = fi ? futimens(fd_of(fi), tv)
		     : utimensat(g_src, rel(path), tv, AT_SYMLINK_NOFOLLOW);

	return ret < 0 ? -errno : 0;
}

static int pt_open(const char *path, struct fuse_file_info *fi)
{
	int fd = openat(g_src, rel(path), fi->flags | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int pt_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int fd = openat(g_src, rel(path), fi->flags | O_CREAT | O_CLOEXEC,
			mode);

	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

/* All of the request, as the mount's read: a short count means the end. */
static int pt_read(const char *path, char *buf, size_t size, off_t offset,
		   struct fuse_file_info *fi)
{
	size_t done = 0;

	if (size > INT_MAX)
		return -EINVAL;
	while (done < size) {
		ssize_t n = pread(fd_of(fi), buf + done, size - done,
				  offset + (off_t)done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (int)done;
}

static int pt_write(const char *path, const char *buf, size_t size,
		    off_t offset, struct fuse_file_info *fi)
{
	size_t done = 0;

	if (size > INT_MAX)
		return -EINVAL;
	while (done < size) {
		ssize_t n = pwrite(fd_of(fi), buf + done, size - done,
				   offset + (off_t)done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return done ? (int)done : -errno;
		}
		done += (size_t)n;
	}
	return (int)done;
}

static int pt_statfs(const char *path, struct statvfs *sv)
{
	return fstatvfs(g_src, sv) < 0 ? -errno : 0;
}

static int pt_release(const char *path, struct fuse_file_info *fi)
{
	close(fd_of(fi));
	return 0;
}

static int pt_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	int ret = datasync ? fdatasync(fd_of(fi)) : fsync(fd_of(fi));

	return ret < 0 ? -errno : 0;
}

static const struct fuse_operations g_ops = {
	.getattr = pt_getattr,
	.readlink = pt_readlink,
	.mkdir = pt_mkdir,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.symlink = pt_symlink,
	.rename = pt_rename,
	.chmod = pt_chmod,
	.chown = pt_chown,
	.truncate = pt_truncate,
	.open = pt_open,
	.read = pt_read,
	.write = pt_write,
	.statfs = pt_statfs,
	.release = pt_release,
	.fsync = pt_fsync,
	.readdir = pt_readdir,
	.create = pt_create,
	.utimens = pt_utimens,
};

int main(int argc, char **argv)
{
	char prog[] = "passthrough", dash_o[] = "-o", opts[] = PASSTHROUGH_OPTIONS;
	char *fargv[] = { prog, dash_o, opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse *fuse;
	int ret = 1;

	if (argc != 3) {
		fprintf(stderr, "Usage: passthrough SOURCE_DIR MOUNTPOINT\n");
		return 2;
	}
	g_src = open(argv[1], O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (g_src < 0) {
		fprintf(stderr, "passthrough: error: bad source '%s': %s\n",
			argv[1], strerror(errno));
		return 1;
	}
	fuse = fuse_new(&args, &g_ops, sizeof(g_ops), NULL);
	fuse_opt_free_args(&args);
	if (!fuse) {
		fprintf(stderr, "passthrough: error: FUSE refused the options '%s'\n",
			PASSTHROUGH_OPTIONS);
		goto out_src;
	}
	if (fuse_mount(fuse, argv[2])) {
		fprintf(stderr, "passthrough: error: cannot mount on '%s'\n",
			argv[2]);
		goto out_fuse;
	}
	if (fuse_set_signal_handlers(fuse_get_session(fuse))) {
		fprintf(stderr, "passthrough: error: cannot set up the signal handlers\n");
		goto out_unmount;
	}
	ret = fuse_loop_mt(fuse, 0) < 0 ? 1 : 0;
	fuse_remove_signal_handlers(fuse_get_session(fuse));
out_unmount:
	fuse_unmount(fuse);
out_fuse:
	fuse_destroy(fuse);
out_src:
	close(g_src);
	return ret;
}
