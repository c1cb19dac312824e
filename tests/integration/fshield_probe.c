// SPDX-License-Identifier: Apache-2.0
/*
 * fshield_probe: drive libfshield from the shell tests.
 *   fshield_probe FSPF ROOT (cat|ls|stat|readlink|preads) PATH
 * Key (hex) from FSHIELD_PROBE_KEY, expected tag (hex) from
 * FSHIELD_PROBE_TAG ("none": no rollback protection). Library log lines go
 * to stderr. Exit 0 on success, 1 with "error: <op>: <strerror>" otherwise.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsh_crypto.h"
#include "fshield.h"

static void log_stderr(void *ctx, int level, const char *msg)
{
	fprintf(stderr, "fshield[%d]: %s\n", level, msg);
}

static int fail(const char *op, int err)
{
	fprintf(stderr, "error: %s: %s\n", op, strerror(-err));
	return 1;
}

static int print_entry(void *ctx, const char *name, const struct stat *st)
{
	printf("%c %04o %lld %s\n",
	       S_ISDIR(st->st_mode) ? 'd' : S_ISLNK(st->st_mode) ? 'l' : 'f',
	       (unsigned)(st->st_mode & 07777), (long long)st->st_size, name);
	return 0;
}

/*
 * mtcheck: 4 threads read random ranges of one open file at once and
 * compare them with a single-threaded read of it.
 */
struct mt {
	struct fshield_file *f;
	const uint8_t *ref;
	uint64_t size;
	unsigned seed;
	int err;
};

static void *mt_main(void *arg)
{
	struct mt *m = arg;
	uint8_t buf[20000];

	for (int i = 0; i < 2000 && !m->err; i++) {
		uint64_t off = m->size ? (uint64_t)rand_r(&m->seed) % m->size : 0;
		size_t len = (size_t)rand_r(&m->seed) % sizeof(buf);
		ssize_t n = fshield_pread(m->f, buf, len, off);
		size_t want = off + len > m->size ? (size_t)(m->size - off) : len;

		if (n < 0)
			m->err = (int)n;
		else if ((size_t)n != want || memcmp(buf, m->ref + off, want))
			m->err = -EPROTO;
	}
	return NULL;
}

static int mtcheck(struct fshield_volume *vol, const char *path)
{
	struct fshield_file *f = NULL;
	struct mt m[4];
	pthread_t t[4];
	uint8_t *ref = NULL;
	struct stat st;
	ssize_t n;
	int err = fshield_open(vol, path, O_RDONLY, 0, &f);

	if (!err)
		err = fshield_fstat(f, &st);
	if (!err && !(ref = malloc((size_t)st.st_size + 1)))
		err = -ENOMEM;
	if (!err) {
		n = fshield_pread(f, ref, (size_t)st.st_size, 0);
		err = n < 0 ? (int)n : n != st.st_size ? -EPROTO : 0;
	}
	for (int i = 0; !err && i < 4; i++) {
		m[i] = (struct mt){ f, ref, (uint64_t)st.st_size, 7u + (unsigned)i, 0 };
		pthread_create(&t[i], NULL, mt_main, &m[i]);
	}
	for (int i = 0; !err && i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; !err && i < 4; i++)
		err = m[i].err;
	free(ref);
	fshield_close(f);
	return err;
}

int main(int argc, char **argv)
{
	uint8_t key[FSHIELD_KEY_BYTES], tag[FSHIELD_TAG_BYTES];
	const char *khex = getenv("FSHIELD_PROBE_KEY");
	const char *thex = getenv("FSHIELD_PROBE_TAG");
	struct fshield_config cfg = { 0 };
	struct fshield_volume *vol;
	struct fshield_file *f = NULL;
	char buf[65536];
	struct stat st;
	int err;

	if (argc != 5) {
		fprintf(stderr, "usage: fshield_probe FSPF ROOT OP PATH\n");
		return 2;
	}
	cfg.fspf_path = argv[1];
	cfg.root = argv[2];
	cfg.log = log_stderr;
	if (khex && fsh_hex_decode(khex, strlen(khex), key, sizeof(key)) == 0)
		cfg.key = key;
	if (thex && !strcmp(thex, "none"))
		cfg.flags |= FSHIELD_NO_ROLLBACK_PROTECTION;
	else if (thex && fsh_hex_decode(thex, strlen(thex), tag, sizeof(tag)) == 0)
		cfg.expected_tag = tag;
	err = fshield_volume_open(&cfg, &vol);
	if (err)
		return fail("open volume", err);
	if (!strcmp(argv[3], "ls")) {
		err = fshield_readdir(vol, argv[4], print_entry, NULL);
	} else if (!strcmp(argv[3], "mtcheck")) {
		err = mtcheck(vol, argv[4]);
	} else if (!strcmp(argv[3], "stat")) {
		err = fshield_stat(vol, argv[4], &st);
		if (!err)
			print_entry(NULL, argv[4], &st);
	} else if (!strcmp(argv[3], "readlink")) {
		ssize_t n = fshield_readlink(vol, argv[4], buf, sizeof(buf));

		err = n < 0 ? (int)n : 0;
		if (!err)
			printf("%s\n", buf);
	} else if (!strcmp(argv[3], "cat") || !strcmp(argv[3], "preads")) {
		/* preads: odd-sized reads crossing chunk boundaries. */
		size_t step = !strcmp(argv[3], "cat") ? sizeof(buf) : 1000;
		uint64_t off = 0;

		err = fshield_open(vol, argv[4], O_RDONLY, 0, &f);
		while (!err) {
			ssize_t n = fshield_pread(f, buf, step, off);

			if (n < 0)
				err = (int)n;
			if (n <= 0)
				break;
			fwrite(buf, 1, (size_t)n, stdout);
			off += (uint64_t)n;
		}
		fshield_close(f);
	} else {
		fprintf(stderr, "unknown op '%s'\n", argv[3]);
		fshield_volume_close(vol);
		return 2;
	}
	fshield_volume_close(vol);
	return err ? fail(argv[3], err) : 0;
}
