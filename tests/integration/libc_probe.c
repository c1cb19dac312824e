// SPDX-License-Identifier: Apache-2.0
/*
 * libc_probe: C library functions that do their file work with calls of
 * their own, which the preload layer must answer all the same (preload.sh,
 * case libc-walkers).
 *   libc_probe scandir DIR         names (alphasort; not . and ..), one a line
 *   libc_probe scandirat DIR NAME  scandirat() of NAME relative to DIR
 *   libc_probe glob PATTERN        the matches (GLOB_MARK), one a line
 *   libc_probe utime PATH SECONDS  utime(3): access and modification time
 *   libc_probe nftw DIR [phys,depth,chdir,mount,skip]  one line a visit:
 *                                  type level name size (dirs: -) [cwd]
 *   libc_probe ftw DIR             the same through ftw(3)
 *   libc_probe sigchld FILE        forks 2000 children, reaped by wait(2) in
 *                                  a SIGCHLD handler, while it reads FILE
 *                                  (killed by SIGALRM after 20 s if stuck)
 * Exit 0, or 1 with "libc_probe: <what>: <strerror>" on stderr.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <ftw.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utime.h>

static int not_dots(const struct dirent *de)
{
	return strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
}

static int print_list(struct dirent **v, int n, const char *what)
{
	if (n < 0) {
		fprintf(stderr, "libc_probe: %s: %s\n", what, strerror(errno));
		return 1;
	}
	for (int i = 0; i < n; i++) {
		printf("%s\n", v[i]->d_name);
		free(v[i]);
	}
	free(v);
	return 0;
}

static const char *type_name(int type)
{
	switch (type) {
	case FTW_F: return "F";
	case FTW_D: return "D";
	case FTW_DNR: return "DNR";
	case FTW_DP: return "DP";
	case FTW_NS: return "NS";
	case FTW_SL: return "SL";
	case FTW_SLN: return "SLN";
	}
	return "?";
}

static int g_chdir;
static char g_start[4096];

/*
 * The current directory's last name, "." while it is the one the walk
 * began in (FTW_CHDIR: where the callback runs).
 */
static const char *cwd_name(char *buf, size_t size)
{
	const char *slash;

	if (!getcwd(buf, size))
		return "?";
	if (!strcmp(buf, g_start))
		return ".";
	slash = strrchr(buf, '/');
	return slash && slash[1] ? slash + 1 : buf;
}

static void visit(const char *path, const struct stat *st, int type,
		  int level, const char *name)
{
	char cwd[4096];

	if (type == FTW_F)
		printf("%s %d %s %lld", type_name(type), level, name,
		       (long long)st->st_size);
	else
		printf("%s %d %s -", type_name(type), level, name);
	printf(g_chdir ? " %s\n" : "\n", cwd_name(cwd, sizeof(cwd)));
}

static int g_skip_lib;

static int on_nftw(const char *path, const struct stat *st, int type,
		   struct FTW *f)
{
	visit(path, st, type, f->level, f->level ? path + f->base : ".");
	/* "skip": FTW_ACTIONRETVAL, and directories named lib not entered */
	if (g_skip_lib && type == FTW_D && !strcmp(path + f->base, "lib"))
		return FTW_SKIP_SUBTREE;
	return 0;
}

static int on_ftw(const char *path, const struct stat *st, int type)
{
	const char *slash = strrchr(path, '/');

	visit(path, st, type, -1, slash ? slash + 1 : path);
	return 0;
}

static volatile sig_atomic_t g_reaped;

static void on_chld(int sig)
{
	int saved = errno;

	while (wait(NULL) > 0) /* blocking: the case a shield must survive */
		g_reaped++;
	errno = saved;
}

static int sigchld(const char *path)
{
	char buf[4096];
	long reads = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0) {
		fprintf(stderr, "libc_probe: %s: %s\n", path, strerror(errno));
		return 1;
	}
	alarm(20);
	signal(SIGCHLD, on_chld);
	for (int i = 0; i < 2000; i++) {
		pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		for (int j = 0; j < 20; j++)
			reads += pread(fd, buf, sizeof(buf), 0) > 0;
	}
	printf("reads %ld\n", reads);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct dirent **v;
	glob_t g;
	int fd, r;

	if (argc == 3 && !strcmp(argv[1], "scandir"))
		return print_list(v, scandir(argv[2], &v, not_dots, alphasort),
				  argv[2]);
	if (argc == 4 && !strcmp(argv[1], "scandirat")) {
		fd = open(argv[2], O_RDONLY | O_DIRECTORY);
		if (fd < 0) {
			fprintf(stderr, "libc_probe: %s: %s\n", argv[2],
				strerror(errno));
			return 1;
		}
		r = print_list(v, scandirat(fd, argv[3], &v, not_dots,
					    alphasort),
			       argv[3]);
		close(fd);
		return r;
	}
	if (argc == 3 && !strcmp(argv[1], "glob")) {
		r = glob(argv[2], GLOB_MARK, NULL, &g);
		if (r && r != GLOB_NOMATCH) {
			fprintf(stderr, "libc_probe: glob %s: error %d\n",
				argv[2], r);
			return 1;
		}
		for (size_t i = 0; !r && i < g.gl_pathc; i++)
			printf("%s\n", g.gl_pathv[i]);
		globfree(&g);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "utime")) {
		struct utimbuf t = { atol(argv[3]), atol(argv[3]) };

		if (utime(argv[2], &t) == 0)
			return 0;
		fprintf(stderr, "libc_probe: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	if ((argc == 3 || argc == 4) && !strcmp(argv[1], "nftw")) {
		const char *o = argc == 4 ? argv[3] : "";
		int flags = (strstr(o, "phys") ? FTW_PHYS : 0) |
			    (strstr(o, "depth") ? FTW_DEPTH : 0) |
			    (strstr(o, "chdir") ? FTW_CHDIR : 0) |
			    (strstr(o, "mount") ? FTW_MOUNT : 0) |
			    (strstr(o, "skip") ? FTW_ACTIONRETVAL : 0);

		g_chdir = flags & FTW_CHDIR;
		g_skip_lib = flags & FTW_ACTIONRETVAL;
		if (!getcwd(g_start, sizeof(g_start)))
			return 1;
		if (nftw(argv[2], on_nftw, 8, flags) == 0)
			return 0;
		fprintf(stderr, "libc_probe: nftw %s: %s\n", argv[2],
			strerror(errno));
		return 1;
	}
	if (argc == 3 && !strcmp(argv[1], "ftw")) {
		if (ftw(argv[2], on_ftw, 8) == 0)
			return 0;
		fprintf(stderr, "libc_probe: ftw %s: %s\n", argv[2],
			strerror(errno));
		return 1;
	}
	if (argc == 3 && !strcmp(argv[1], "sigchld"))
		return sigchld(argv[2]);
	fprintf(stderr, "usage: libc_probe scandir DIR | scandirat DIR NAME | glob PATTERN | utime PATH SECONDS | nftw DIR [FLAGS] | ftw DIR\n");
	return 2;
}
