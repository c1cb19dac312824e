// SPDX-License-Identifier: Apache-2.0
/*
 * libc_probe: C library functions that do their file work with calls of
 * their own, which the preload layer must answer all the same (preload.sh,
 * case libc-walkers).
 *   libc_probe scandir DIR         names (alphasort; not . and ..), one a line
 *   libc_probe scandirat DIR NAME  scandirat() of NAME relative to DIR
 *   libc_probe glob PATTERN        the matches (GLOB_MARK), one a line
 *   libc_probe utime PATH SECONDS  utime(3): access and modification time
 * Exit 0, or 1 with "libc_probe: <what>: <strerror>" on stderr.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	fprintf(stderr, "usage: libc_probe scandir DIR | scandirat DIR NAME | glob PATTERN | utime PATH SECONDS\n");
	return 2;
}
