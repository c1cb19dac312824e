// SPDX-License-Identifier: Apache-2.0
/*
 * Writes the seed corpus of fuzz_fspf_decode into the directory given:
 * a few small encoded fspfs (zero key and the fuzz target's fixed key), and
 * the same kind of models in the "plaintext body" form the target's second
 * half reads (header || plaintext body || 16 bytes). Encodings use fresh
 * nonces, ids and keys, so each run writes different (equally good) seeds.
 *
 *   gen_corpus tests/fuzz/corpus/fspf_decode
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fspf.h"
#include "fuzz_fspf.h"

#define HDR FSPF_HEADER_BYTES
#define TAG FSH_TAG_BYTES

static void die(const char *what, int err)
{
	fprintf(stderr, "gen_corpus: %s: %s\n", what, fspf_strerror(err));
	exit(1);
}

static void region(struct fspf *f, const char *path, const char *kernel,
		   uint8_t protection, uint32_t key_size, uint32_t chunk_size)
{
	struct fspf_region r = {
	    .path = (char *)path,
	    .kernel = (char *)kernel,
	    .protection = protection,
	    .storage = kernel ? FSPF_KERNEL : FSPF_EPHEMERAL,
	    .key_size = key_size,
	    .chunk_size = chunk_size,
	};
	const char *why;
	int err = fspf_region_add(f, &r, &why);

	if (err)
		die(why ? why : path, err);
}

static void entry(struct fspf *f, const char *path, uint8_t type, uint64_t size,
		  const char *target)
{
	struct fspf_entry e = {
	    .path = strdup(path),
	    .target = target ? strdup(target) : NULL,
	    .size = size,
	    .mode = type == FSPF_DIR ? 0755 : 0644,
	    .uid = 1000,
	    .gid = 1000,
	    .type = type,
	    .mtime_ns = 1700000000000000000LL,
	};
	const char *why, *bad;
	int err = fspf_entries_put(f, &e, 1, &why, &bad);

	if (err)
		die(why ? why : path, err);
}

/* Give every chunk record a real nonce and tag. */
static void seal_chunks(struct fspf *f)
{
	static uint8_t in[4096], out[4096];

	for (size_t i = 0; i < fspf_entry_count(f); i++) {
		struct fspf_entry *e = fspf_entry(f, i);
		const struct fspf_region *r = fspf_entry_region(f, e);
		struct fsh_aead *aead;
		int err;

		if (e->type != FSPF_FILE || !e->chunk_count)
			continue;
		err = fsh_aead_new(fspf_entry_key(f, e), r->key_size, &aead);
		for (uint64_t c = 0; !err && c < e->chunk_count; c++) {
			uint64_t left = e->size - c * r->chunk_size;

			err = fspf_chunk_seal(
			    aead, r, e, c, in, out,
			    left < r->chunk_size ? left : r->chunk_size);
		}
		fsh_aead_free(aead);
		if (err)
			die("seal", err);
	}
}

static struct fspf *model_small(void)
{
	struct fspf *f;
	int err = fspf_new(&f);

	if (err)
		die("new", err);
	region(f, "/", "/host", FSPF_NOT_PROTECTED, 0, 0);
	region(f, "/data", "/srv/data", FSPF_ENCRYPTED, 32, 4096);
	region(f, "/auth", "/srv/auth", FSPF_AUTHENTICATED, 16, 512);
	region(f, "/tmp", NULL, FSPF_NOT_PROTECTED, 0, 0);
	entry(f, "/data", FSPF_DIR, 0, NULL);
	entry(f, "/data/a", FSPF_FILE, 5000, NULL);
	entry(f, "/data/sub", FSPF_DIR, 0, NULL);
	entry(f, "/data/sub/l", FSPF_SYMLINK, 0, "../a");
	entry(f, "/data/sub/e", FSPF_FILE, 0, NULL);
	entry(f, "/auth/c", FSPF_FILE, 1025, NULL);
	seal_chunks(f);
	return f;
}

static struct fspf *model_nested(void)
{
	struct fspf *f;
	int err = fspf_new(&f);

	if (err)
		die("new", err);
	region(f, "/", "/k", FSPF_ENCRYPTED, 24, 1024);
	region(f, "/a", "/k/a", FSPF_AUTHENTICATED, 32, 512);
	region(f, "/a/b", "/k/a/b", FSPF_ENCRYPTED, 16, 16384);
	region(f, "/e", NULL, FSPF_ENCRYPTED, 32, 4096);
	entry(f, "/x", FSPF_FILE, 3000, NULL);
	entry(f, "/y", FSPF_DIR, 0, NULL);
	entry(f, "/y/z", FSPF_SYMLINK, 0, "/x");
	entry(f, "/a/f", FSPF_FILE, 513, NULL);
	entry(f, "/a/b/g", FSPF_FILE, 1, NULL);
	entry(f, "/a/b", FSPF_DIR, 0, NULL);
	seal_chunks(f);
	return f;
}

static struct fspf *model_empty(void)
{
	struct fspf *f;
	int err = fspf_new(&f);

	if (err)
		die("new", err);
	return f;
}

static void write_file(const char *dir, const char *name, const uint8_t *buf,
		       size_t size)
{
	char path[4096];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "wb");
	if (!fp || fwrite(buf, 1, size, fp) != size || fclose(fp)) {
		fprintf(stderr, "gen_corpus: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	if (size >= 4096) {
		fprintf(stderr, "gen_corpus: %s: %zu bytes, keep seeds small\n",
			path, size);
		exit(1);
	}
}

/* NAME.fspf, and optionally its plaintext-body form body-NAME.bin. */
static void emit(const char *dir, const char *name, struct fspf *f,
		 const struct fsh_key *key, bool body)
{
	uint8_t *buf;
	size_t size;
	char file_name[256];
	int err = fspf_encode(f, key, &buf, &size, NULL);

	if (err)
		die("encode", err);
	snprintf(file_name, sizeof(file_name), "%s.fspf", name);
	write_file(dir, file_name, buf, size);
	if (body) {
		static const uint8_t zero[FSH_FSPF_KEY_BYTES];
		struct fsh_aead *aead;
		struct fsh_span sp = {buf + HDR, buf + HDR, size - HDR - TAG};

		if (key)
			die("body form needs the zero key", -EINVAL);
		err = fsh_aead_new(zero, sizeof(zero), &aead);
		if (!err)
			err = fsh_aead_open(aead, buf + 48, buf, HDR, &sp, 1,
					    buf + size - TAG);
		fsh_aead_free(aead);
		if (err)
			die("open", err);
		memset(buf + size - TAG, 0, TAG);
		snprintf(file_name, sizeof(file_name), "body-%s.bin", name);
		write_file(dir, file_name, buf, size);
	}
	free(buf);
}

int main(int argc, char **argv)
{
	struct fsh_key *key = NULL;
	struct fspf *f;
	int err;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus DIR\n");
		return 2;
	}
	err = fsh_key_new(FSH_FSPF_KEY_BYTES, &key);
	if (err)
		die("key", err);
	fuzz_fixed_key(fsh_key_bytes_mut(key));

	f = model_empty();
	emit(argv[1], "empty-zero", f, NULL, false);
	fspf_free(f);
	f = model_small();
	emit(argv[1], "small-zero", f, NULL, true);
	emit(argv[1], "small-key", f, key, false);
	fspf_free(f);
	f = model_nested();
	emit(argv[1], "nested-zero", f, NULL, true);
	emit(argv[1], "nested-key", f, key, false);
	fspf_free(f);
	/* Version 1.1: a lineage of three earlier tags. */
	f = model_small();
	for (int i = 0; i < 3; i++) {
		uint8_t tag[FSH_TAG_BYTES];

		memset(tag, 0xa0 + i, sizeof(tag));
		fspf_lineage_push(f, tag);
	}
	emit(argv[1], "lineage-zero", f, NULL, true);
	emit(argv[1], "lineage-key", f, key, false);
	fspf_free(f);
	fsh_key_free(key);
	return 0;
}
