// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for the fspf parser.
 *
 * (a) The input as an encoded fspf: fspf_peek() and fspf_decode() with no
 *     key and with a fixed key. This mostly exercises the clear header and
 *     the root tag, since random bytes almost never carry a valid tag.
 * (b) The input as header || plaintext body || 16 bytes: the counts come
 *     from the input's header fields (bytes 16..47, strings_size is whatever
 *     is left), the rest of the header is made valid for the all-zero key,
 *     and the body is sealed under that public key. This is how the fuzzer
 *     reaches the parser behind the tag. Whatever decodes must encode and
 *     decode again to the same model, under the zero key and a real key.
 *
 * Any violated invariant calls abort(), which libFuzzer reports as a crash.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fspf.h"
#include "fuzz.h"
#include "fuzz_fspf.h"

#define HDR FSPF_HEADER_BYTES
#define TAG FSH_TAG_BYTES

static struct fsh_key *g_key;
static struct fsh_aead *g_zero_aead;
static uint8_t g_zero_check[FSH_KEY_CHECK_BYTES];
static unsigned long g_raw_ok, g_body_ok;

void fuzz_stats(unsigned long counts[2], const char *names[2])
{
	counts[0] = g_raw_ok;
	counts[1] = g_body_ok;
	names[0] = "decoded as fspf";
	names[1] = "as plaintext body";
}

static void die(const char *why)
{
	fprintf(stderr, "fuzz_fspf_decode: invariant violated: %s\n", why);
	abort();
}

static void init(void)
{
	static const uint8_t zero[FSH_FSPF_KEY_BYTES];
	struct fsh_key *zk = NULL;

	if (g_key)
		return;
	if (fsh_crypto_init() || fsh_key_new(FSH_FSPF_KEY_BYTES, &g_key) ||
	    fsh_key_new(FSH_FSPF_KEY_BYTES, &zk) ||
	    fsh_aead_new(zero, sizeof(zero), &g_zero_aead))
		die("init");
	fuzz_fixed_key(fsh_key_bytes_mut(g_key));
	fsh_key_check(zk, g_zero_check);
	fsh_key_free(zk);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void same_model(const struct fspf *a, const struct fspf *b)
{
	if (fspf_region_count(a) != fspf_region_count(b) ||
	    fspf_entry_count(a) != fspf_entry_count(b))
		die("counts differ after a round trip");
	for (size_t i = 0; i < fspf_region_count(a); i++) {
		const struct fspf_region *x = fspf_region(a, i);
		const struct fspf_region *y = fspf_region(b, i);

		if (!str_eq(x->path, y->path) ||
		    !str_eq(x->kernel, y->kernel) ||
		    x->protection != y->protection ||
		    x->storage != y->storage || x->key_size != y->key_size ||
		    x->chunk_size != y->chunk_size)
			die("region differs after a round trip");
	}
	for (size_t i = 0; i < fspf_entry_count(a); i++) {
		const struct fspf_entry *x = fspf_entry(a, i);
		const struct fspf_entry *y = fspf_entry(b, i);

		if (!str_eq(x->path, y->path) ||
		    !str_eq(x->target, y->target) || x->size != y->size ||
		    x->mode != y->mode || x->uid != y->uid ||
		    x->gid != y->gid || x->type != y->type ||
		    x->mtime_ns != y->mtime_ns ||
		    memcmp(x->id, y->id, FSPF_ID_BYTES) != 0 ||
		    x->chunk_count != y->chunk_count ||
		    (x->chunk_count &&
		     memcmp(x->chunks, y->chunks,
			    x->chunk_count * sizeof(*x->chunks)) != 0))
			die("entry differs after a round trip");
		if (x->type == FSPF_FILE) {
			const struct fspf_region *r = fspf_entry_region(a, x);

			if (!r || memcmp(fspf_entry_key(a, x),
					 fspf_entry_key(b, y), r->key_size))
				die("file key differs after a round trip");
		}
	}
}

/* Encode @f under @key, decode, compare: any failure is a bug. */
static void round_trip(const struct fspf *f, const struct fsh_key *key)
{
	struct fspf *back = NULL;
	struct fspf_info info;
	uint8_t *buf = NULL, tag[TAG], tag2[TAG];
	size_t size = 0;

	if (fspf_encode(f, key, &buf, &size, tag))
		die("a decoded fspf does not encode");
	if (fspf_peek(buf, size, &info) || memcmp(info.tag, tag, TAG))
		die("an encoded fspf does not peek");
	if (fspf_decode(buf, size, key, &back, tag2))
		die("an encoded fspf does not decode");
	if (memcmp(tag, tag2, TAG))
		die("decode reports another tag");
	if (fspf_is_encrypted(back) != (key != NULL))
		die("encrypted flag wrong after a round trip");
	same_model(f, back);
	fspf_free(back);
	free(buf);
}

/* (a) The raw input as an encoded fspf. */
static void decode_raw(const uint8_t *data, size_t size)
{
	const struct fsh_key *keys[2] = {NULL, g_key};
	struct fspf_info info;
	int peek = fspf_peek(data, size, &info);

	for (int i = 0; i < 2; i++) {
		struct fspf *f = NULL;
		uint8_t tag[TAG];
		int err = fspf_decode(data, size, keys[i], &f, tag);

		if (err && f)
			die("fspf_ret written on failure");
		if (!err) {
			if (peek || memcmp(tag, info.tag, TAG))
				die("decodes but does not peek");
			g_raw_ok++;
			round_trip(f, NULL);
			round_trip(f, g_key);
			fspf_free(f);
		} else if (peek && err != peek) {
			die("decode and peek disagree on the header");
		}
	}
}

/* (b) The input as header || plaintext body || tag slot, zero-key sealed. */
static void decode_body(const uint8_t *data, size_t size)
{
	uint64_t rc, ec, cc, ks, lc, fixed, avail;
	struct fsh_span span;
	struct fspf *f = NULL;
	uint8_t *buf;
	int err;

	if (size < HDR + TAG)
		return;
	rc = get_le(data + 16, 4);
	ec = get_le(data + 20, 4);
	cc = get_le(data + 24, 8);
	ks = get_le(data + 40, 8);
	/* 1.0 without a lineage, or 1.1 with 1 to FSPF_LINEAGE_MAX tags */
	lc = data[76] % (FSPF_LINEAGE_MAX + 1);
	avail = size - HDR - TAG;
	/* All of these are far below 2^64 / 64 or refused here. */
	if (cc > avail || ks > avail)
		return;
	fixed = rc * FSPF_REGION_RECORD_BYTES + ec * FSPF_ENTRY_RECORD_BYTES +
		cc * FSPF_CHUNK_RECORD_BYTES + lc * FSH_TAG_BYTES + ks;
	if (fixed > avail)
		return;
	buf = malloc(size);
	if (!buf)
		return;
	memcpy(buf, data, size);
	memcpy(buf, "FSHFSPF", 8); /* with its NUL */
	buf[8] = FSPF_VERSION_MAJOR;
	buf[9] = 0;
	buf[10] = lc ? FSPF_VERSION_MINOR : 0;
	buf[11] = 0;
	memset(buf + 12, 0, 4);
	buf[12] = FSPF_F_ZERO_KEY;
	put_le64(buf + 32, avail - fixed);
	memcpy(buf + 60, g_zero_check, sizeof(g_zero_check));
	memset(buf + 76, 0, HDR - 76);
	put_le64(buf + 76, lc); /* a 32-bit field, then reserved zeros */
	span = (struct fsh_span){buf + HDR, buf + HDR, avail};
	if (fsh_aead_seal(g_zero_aead, buf + 48, buf, HDR, &span, 1,
			  buf + size - TAG))
		die("zero-key seal");
	if (fspf_peek(buf, size, &(struct fspf_info){0}) &&
	    rc <= FSPF_MAX_REGIONS)
		die("a well-formed header does not peek");
	err = fspf_decode(buf, size, NULL, &f, NULL);
	if (err == -EBADMSG || err == -EKEYREJECTED || err == -ENOKEY)
		die("a zero-key seal does not verify");
	if (!err) {
		if (fspf_is_encrypted(f))
			die("zero-key fspf reported encrypted");
		g_body_ok++;
		round_trip(f, NULL);
		round_trip(f, g_key);
		fspf_free(f);
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init();
	decode_raw(data, size);
	decode_body(data, size);
	return 0;
}
