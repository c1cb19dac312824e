// SPDX-License-Identifier: Apache-2.0
/*
 * A plain driver for the fuzz targets, for builds without libFuzzer: feeds
 * every file named on the command line (or found in a directory named
 * there) to LLVMFuzzerTestOneInput() once. Runs the seed corpus as an
 * ordinary test; a violated invariant aborts.
 *
 *   fuzz_fspf_decode_plain [--require-valid] FILE|DIR...
 *
 * --require-valid: fail unless some input decoded as an fspf and some as a
 * plaintext body, i.e. the seeds still reach the parser.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf = NULL;
	long size;

	if (!fp || fseek(fp, 0, SEEK_END) || (size = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET)) {
		fprintf(stderr, "fuzz_main: %s: %s\n", path, strerror(errno));
		if (fp)
			fclose(fp);
		return -1;
	}
	buf = malloc(size ? (size_t)size : 1);
	if (!buf || fread(buf, 1, (size_t)size, fp) != (size_t)size) {
		fprintf(stderr, "fuzz_main: %s: cannot read\n", path);
		free(buf);
		fclose(fp);
		return -1;
	}
	fclose(fp);
	LLVMFuzzerTestOneInput(buf, (size_t)size);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned int inputs = 0, bad = 0;
	unsigned long counts[2];
	const char *names[2];
	int require_valid = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		DIR *d;
		struct dirent *de;

		if (strcmp(argv[i], "--require-valid") == 0) {
			require_valid = 1;
			continue;
		}
		if (stat(argv[i], &st)) {
			fprintf(stderr, "fuzz_main: %s: %s\n", argv[i],
				strerror(errno));
			bad++;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			bad += run_file(argv[i]) != 0;
			inputs++;
			continue;
		}
		d = opendir(argv[i]);
		if (!d) {
			bad++;
			continue;
		}
		while ((de = readdir(d))) {
			char path[4096];

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i],
				 de->d_name);
			bad += run_file(path) != 0;
			inputs++;
		}
		closedir(d);
	}
	fuzz_stats(counts, names);
	printf("fuzz_main: %u inputs, %u unreadable; %lu %s, %lu %s\n",
	       inputs, bad, counts[0], names[0], counts[1], names[1]);
	if (require_valid && (!counts[0] || !counts[1])) {
		fprintf(stderr, "fuzz_main: the seeds no longer reach the parser: "
				"regenerate them (see tests/fuzz/meson.build)\n");
		return 1;
	}
	return inputs == 0 || bad ? 1 : 0;
}
