// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests of the fspf module (fspf/fspf.h): paths, regions, entries,
 * chunk seal/open, and the encoding with every error path of the decoder.
 *
 * Body-structure errors sit behind the root tag, so a test cannot reach them
 * under a real key. Under the all-zero key it can: the key is public, so
 * this file opens a zero-key fspf, edits the plaintext body (and the header
 * counts), re-seals it exactly as fspf(5) says (AES-256-GCM, all-zero key,
 * nonce = header bytes 48..59, AD = the 96 header bytes, tag at the end) and
 * checks that the decoder's post-verification checks refuse it.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fspf.h"
#include "tap.h"

#define HDR FSPF_HEADER_BYTES
#define TAG FSH_TAG_BYTES

/* ---- little-endian helpers (test-local, independent of fspf_i.h) ---- */

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void set16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void set32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void set64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- building models ---- */

static struct fspf *fspf_or_die(void)
{
	struct fspf *f = NULL;

	if (fspf_new(&f) || !f)
		abort();
	return f;
}

static int region_full(struct fspf *f, const char *path, const char *kernel,
		       uint8_t protection, uint8_t storage, uint32_t key_size,
		       uint32_t chunk_size, const char **why_ret)
{
	struct fspf_region r = {
	    .path = (char *)path,
	    .kernel = (char *)kernel,
	    .protection = protection,
	    .storage = storage,
	    .key_size = key_size,
	    .chunk_size = chunk_size,
	};
	const char *why = NULL;
	int err = fspf_region_add(f, &r, &why);

	if (why_ret)
		*why_ret = why;
	return err;
}

/* A kernel region when @kernel is set, an ephemeral one otherwise. */
static int region(struct fspf *f, const char *path, const char *kernel,
		  uint8_t protection, uint32_t key_size, uint32_t chunk_size)
{
	return region_full(f, path, kernel, protection,
			   kernel ? FSPF_KERNEL : FSPF_EPHEMERAL, key_size,
			   chunk_size, NULL);
}

struct espec {
	const char *path;
	uint8_t type;
	uint64_t size;
	const char *target;
};

static char g_bad_path[FSPF_PATH_MAX_BYTES];
static const char *g_why;

/*
 * Put @n entries in one call. On failure the offending path is copied to
 * g_bad_path (path_ret points into our array, which we free).
 */
static int put(struct fspf *f, const struct espec *s, size_t n)
{
	struct fspf_entry *v = calloc(n ? n : 1, sizeof(*v));
	const char *bad = NULL;
	int err;

	if (!v)
		abort();
	for (size_t i = 0; i < n; i++) {
		v[i].path = s[i].path ? strdup(s[i].path) : NULL;
		v[i].target = s[i].target ? strdup(s[i].target) : NULL;
		v[i].type = s[i].type;
		v[i].size = s[i].size;
		v[i].mode = s[i].type == FSPF_DIR ? 0755 : 0640;
		v[i].uid = 1000 + (uint32_t)i;
		v[i].gid = 2000 + (uint32_t)i;
		v[i].mtime_ns = 1700000000123456789LL + (int64_t)i;
	}
	g_why = NULL;
	g_bad_path[0] = '\0';
	err = fspf_entries_put(f, v, n, &g_why, &bad);
	if (err && bad)
		snprintf(g_bad_path, sizeof(g_bad_path), "%s", bad);
	for (size_t i = 0; i < n; i++) {
		if (!err && (v[i].path || v[i].target))
			abort(); /* the fspf must have taken them over */
		free(v[i].path);
		free(v[i].target);
	}
	free(v);
	return err;
}

static int put1(struct fspf *f, const char *path, uint8_t type, uint64_t size,
		const char *target)
{
	struct espec s = {path, type, size, target};

	return put(f, &s, 1);
}

/* Protect every chunk of every file with random contents. */
static int seal_all_chunks(struct fspf *f)
{
	uint8_t *in = malloc(FSPF_MAX_CHUNK_BYTES), *out;
	int err = 0;

	out = malloc(FSPF_MAX_CHUNK_BYTES);
	if (!in || !out)
		abort();
	for (size_t i = 0; !err && i < fspf_entry_count(f); i++) {
		struct fspf_entry *e = fspf_entry(f, i);
		const struct fspf_region *r = fspf_entry_region(f, e);
		struct fsh_aead *aead = NULL;

		if (e->type != FSPF_FILE || !e->chunk_count)
			continue;
		err = fsh_aead_new(fspf_entry_key(f, e), r->key_size, &aead);
		for (uint64_t c = 0; !err && c < e->chunk_count; c++) {
			uint64_t left = e->size - c * r->chunk_size;
			size_t n = left < r->chunk_size ? left : r->chunk_size;

			fsh_random(in, n);
			err = fspf_chunk_seal(aead, r, e, c, in, out, n);
		}
		fsh_aead_free(aead);
	}
	free(in);
	free(out);
	return err;
}

/*
 * The reference model, sorted:
 *   regions: /  /auth  /data  /eph  /k24  /tmp
 *   entries: 0 /auth/c      file 1025 (3 chunks of 512, key 16)
 *            1 /data        dir (the embed point)
 *            2 /data/a      file 5000 (2 chunks of 4096, key 32)
 *            3 /data/empty  file 0 (no chunk, key 32)
 *            4 /data/link   symlink -> "a"
 *            5 /data/sub    dir
 *            6 /data/sub/b  file 4096 (1 chunk, key 32)
 *            7 /k24/d       file 10 (1 chunk of 1024, key 24)
 */
#define M_CHUNKS 7
#define M_KEYS (16 + 32 + 32 + 32 + 24)

static struct fspf *model(void)
{
	static const struct espec es[] = {
	    {"/data/sub/b", FSPF_FILE, 4096, NULL},
	    {"/data", FSPF_DIR, 0, NULL},
	    {"/data/a", FSPF_FILE, 5000, NULL},
	    {"/data/link", FSPF_SYMLINK, 0, "a"},
	    {"/data/empty", FSPF_FILE, 0, NULL},
	    {"/data/sub", FSPF_DIR, 0, NULL},
	    {"/auth/c", FSPF_FILE, 1025, NULL},
	    {"/k24/d", FSPF_FILE, 10, NULL},
	};
	struct fspf *f = fspf_or_die();

	if (region(f, "/", "/host", FSPF_NOT_PROTECTED, 0, 0) ||
	    region(f, "/data", "/srv/data", FSPF_ENCRYPTED, 32, 4096) ||
	    region(f, "/auth", "/srv/auth", FSPF_AUTHENTICATED, 16, 512) ||
	    region(f, "/k24", "/srv/k24", FSPF_ENCRYPTED, 24, 1024) ||
	    region(f, "/eph", NULL, FSPF_ENCRYPTED, 32, 4096) ||
	    region(f, "/tmp", NULL, FSPF_NOT_PROTECTED, 0, 0) ||
	    put(f, es, sizeof(es) / sizeof(es[0])) || seal_all_chunks(f))
		abort();
	return f;
}

static uint64_t key_size_of(const struct fspf *f, const struct fspf_entry *e)
{
	const struct fspf_region *r = fspf_entry_region(f, e);

	return r ? r->key_size : 0;
}

/* Every field of both models equal. */
static bool models_equal(const struct fspf *a, const struct fspf *b)
{
	unsigned long before = g_tap.bad;

	if (!CHECK_INT(fspf_region_count(b), fspf_region_count(a)) ||
	    !CHECK_INT(fspf_entry_count(b), fspf_entry_count(a)))
		return false;
	for (size_t i = 0; i < fspf_region_count(a); i++) {
		const struct fspf_region *x = fspf_region(a, i);
		const struct fspf_region *y = fspf_region(b, i);

		CHECK_STR(y->path, x->path);
		CHECK_STR(y->kernel, x->kernel);
		CHECK_INT(y->protection, x->protection);
		CHECK_INT(y->storage, x->storage);
		CHECK_INT(y->key_size, x->key_size);
		CHECK_INT(y->chunk_size, x->chunk_size);
	}
	for (size_t i = 0; i < fspf_entry_count(a); i++) {
		const struct fspf_entry *x = fspf_entry(a, i);
		const struct fspf_entry *y = fspf_entry(b, i);

		CHECK_STR(y->path, x->path);
		CHECK_STR(y->target, x->target);
		CHECK_INT(y->size, x->size);
		CHECK_INT(y->mode, x->mode);
		CHECK_INT(y->uid, x->uid);
		CHECK_INT(y->gid, x->gid);
		CHECK_INT(y->type, x->type);
		CHECK_INT(y->mtime_ns, x->mtime_ns);
		CHECK_MEM(y->id, x->id, FSPF_ID_BYTES);
		CHECK_INT(y->chunk_count, x->chunk_count);
		if (x->chunk_count && y->chunk_count == x->chunk_count)
			CHECK_MEM(y->chunks, x->chunks,
				  x->chunk_count * sizeof(*x->chunks));
		if (x->type == FSPF_FILE) {
			uint64_t ks = key_size_of(a, x);

			CHECK_INT(key_size_of(b, y), ks);
			CHECK_MEM(fspf_entry_key(b, y), fspf_entry_key(a, x),
				  ks);
		}
	}
	return g_tap.bad == before;
}

static struct fsh_key *key_or_die(void)
{
	struct fsh_key *k = NULL;

	if (fsh_key_generate(FSH_FSPF_KEY_BYTES, &k))
		abort();
	return k;
}

static void encode_or_die(const struct fspf *f, const struct fsh_key *key,
			  uint8_t **buf, size_t *size)
{
	if (fspf_encode(f, key, buf, size, NULL))
		abort();
}

/* ---- a plaintext view of a zero-key encoding, and its re-seal ---- */

struct plain {
	uint8_t *b; /* header || plaintext body || tag slot */
	size_t n;
};

static uint32_t p_rc(const struct plain *p)
{
	return get32(p->b + 16);
}
static uint32_t p_ec(const struct plain *p)
{
	return get32(p->b + 20);
}
static uint64_t p_cc(const struct plain *p)
{
	return get64(p->b + 24);
}
static uint64_t p_ss(const struct plain *p)
{
	return get64(p->b + 32);
}
static uint64_t p_ks(const struct plain *p)
{
	return get64(p->b + 40);
}

static size_t p_entries(const struct plain *p)
{
	return HDR + (size_t)p_rc(p) * FSPF_REGION_RECORD_BYTES;
}

static size_t p_chunks(const struct plain *p)
{
	return p_entries(p) + (size_t)p_ec(p) * FSPF_ENTRY_RECORD_BYTES;
}

static size_t p_strings(const struct plain *p)
{
	return p_chunks(p) + (size_t)p_cc(p) * FSPF_CHUNK_RECORD_BYTES;
}

static size_t p_keys(const struct plain *p)
{
	return p_strings(p) + (size_t)p_ss(p);
}

static uint8_t *rrec(struct plain *p, size_t i)
{
	return p->b + HDR + i * FSPF_REGION_RECORD_BYTES;
}

static uint8_t *erec(struct plain *p, size_t i)
{
	return p->b + p_entries(p) + i * FSPF_ENTRY_RECORD_BYTES;
}

/* The bytes of string (off, len) of entry/region record field at @ref. */
static uint8_t *p_str(struct plain *p, const uint8_t *ref)
{
	return p->b + p_strings(p) + get32(ref);
}

static void zero_aead(struct fsh_aead **aead)
{
	static const uint8_t zero[FSH_FSPF_KEY_BYTES];

	if (fsh_aead_new(zero, sizeof(zero), aead))
		abort();
}

/* Open a zero-key encoding into a plaintext view. */
static int p_open(const uint8_t *enc, size_t n, struct plain *p)
{
	struct fsh_aead *aead;
	struct fsh_span sp;
	int err;

	p->b = malloc(n);
	p->n = n;
	if (!p->b)
		abort();
	memcpy(p->b, enc, n);
	zero_aead(&aead);
	sp = (struct fsh_span){p->b + HDR, p->b + HDR, n - HDR - TAG};
	err = fsh_aead_open(aead, p->b + 48, p->b, HDR, &sp, 1, p->b + n - TAG);
	fsh_aead_free(aead);
	return err;
}

static void p_copy(const struct plain *from, struct plain *to)
{
	to->n = from->n;
	to->b = malloc(from->n);
	if (!to->b)
		abort();
	memcpy(to->b, from->b, from->n);
}

static void p_free(struct plain *p)
{
	free(p->b);
	p->b = NULL;
}

/* Seal a copy of @p under the zero key: a well-tagged encoding. */
static uint8_t *p_seal(const struct plain *p)
{
	struct fsh_aead *aead;
	struct fsh_span sp;
	uint8_t *out = malloc(p->n);

	if (!out || p->n < HDR + TAG)
		abort();
	memcpy(out, p->b, p->n);
	zero_aead(&aead);
	sp = (struct fsh_span){out + HDR, out + HDR, p->n - HDR - TAG};
	if (fsh_aead_seal(aead, out + 48, out, HDR, &sp, 1, out + p->n - TAG))
		abort();
	fsh_aead_free(aead);
	return out;
}

/* Re-seal and decode: the decoder's verdict on the edited plaintext. */
static int p_decode(const struct plain *p, struct fspf **f_ret)
{
	struct fspf *f = NULL;
	uint8_t *enc = p_seal(p);
	int err = fspf_decode(enc, p->n, NULL, &f, NULL);

	free(enc);
	if (!err && f_ret)
		*f_ret = f;
	else
		fspf_free(f);
	return err;
}

/* Replace @del bytes at @off with @n bytes of @ins. */
static void p_splice(struct plain *p, size_t off, size_t del, const void *ins,
		     size_t n)
{
	uint8_t *b = malloc(p->n - del + n);

	if (!b || off + del > p->n)
		abort();
	memcpy(b, p->b, off);
	if (n)
		memcpy(b + off, ins, n);
	memcpy(b + off + n, p->b + off + del, p->n - off - del);
	free(p->b);
	p->b = b;
	p->n = p->n - del + n;
}

/* Append @s to the string table (no existing offset moves). */
static uint32_t p_add_string(struct plain *p, const char *s, size_t len)
{
	uint32_t off = (uint32_t)p_ss(p);

	p_splice(p, p_keys(p), 0, s, len);
	set64(p->b + 32, p_ss(p) + len);
	return off;
}

static void p_set_ref(uint8_t *ref, uint32_t off, uint32_t len)
{
	set32(ref, off);
	set32(ref + 4, len);
}

/*
 * Rebuild the string table in the encoder's order (region path, kernel;
 * entry path, target) from the current references, as the decoder demands,
 * so that an edit tests only what it means to.
 */
static void p_canon(struct plain *p)
{
	size_t rc = p_rc(p), ec = p_ec(p), cap = p_ss(p) + 1, n = 0;
	uint8_t *nb = malloc(cap), *old = malloc(p_ss(p) + 1);
	uint32_t *offs = calloc(2 * (rc + ec) + 1, sizeof(*offs));
	size_t k = 0;

	if (!nb || !old || !offs)
		abort();
	memcpy(old, p->b + p_strings(p), p_ss(p));
	for (size_t i = 0; i < rc + ec; i++) {
		uint8_t *rec = i < rc ? rrec(p, i) : erec(p, i - rc);

		for (int f = 0; f < 2; f++) {
			uint32_t o = get32(rec + 8 * f), l = get32(rec + 8 * f + 4);

			offs[k++] = (uint32_t)n;
			if (!l)
				continue;
			if ((uint64_t)o + l > p_ss(p))
				abort();
			memcpy(nb + n, old + o, l);
			n += l;
		}
	}
	p_splice(p, p_strings(p), p_ss(p), nb, n);
	set64(p->b + 32, n);
	k = 0;
	for (size_t i = 0; i < rc + ec; i++) {
		uint8_t *rec = i < rc ? rrec(p, i) : erec(p, i - rc);

		for (int f = 0; f < 2; f++, k++)
			if (get32(rec + 8 * f + 4))
				set32(rec + 8 * f, offs[k]);
	}
	free(offs);
	free(old);
	free(nb);
}


/* The reference model, encoded under the zero key and opened. */
static struct plain g_base;
static struct fspf *g_model;

static void base_init(void)
{
	uint8_t *enc;
	size_t n;

	g_model = model();
	encode_or_die(g_model, NULL, &enc, &n);
	if (p_open(enc, n, &g_base))
		abort();
	free(enc);
	if (p_rc(&g_base) != 6 || p_ec(&g_base) != 8 ||
	    p_cc(&g_base) != M_CHUNKS || p_ks(&g_base) != M_KEYS)
		abort();
}

/* ---- paths ---- */

static void test_path_normalize(void)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
	    {"/", "/"},
	    {"//", "/"},
	    {"///", "/"},
	    {"/a", "/a"},
	    {"/a/", "/a"},
	    {"//a//b///", "/a/b"},
	    {"/a/b/c", "/a/b/c"},
	    {"/...", "/..."},
	    {"/.a/a./..b", "/.a/a./..b"},
	    {"/a b/\tc", "/a b/\tc"},
	};
	static const char *const bad[] = {
	    "",	     "a",      "a/b",	  "./a",   "/.",   "/..",    "/a/.",
	    "/a/..", "/a/./b", "/a/../b", "/../a", "//./", "/a/.//",
	};
	char out[FSPF_PATH_MAX_BYTES];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		memset(out, 'x', sizeof(out));
		if (CHECK_INT(fspf_path_normalize(ok[i].in, out), 0))
			CHECK_STR(out, ok[i].out);
		CHECK(fspf_path_valid(ok[i].out, strlen(ok[i].out)));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!CHECK_INT(fspf_path_normalize(bad[i], out), -EINVAL))
			tap_diag("normalize accepted \"%s\"", bad[i]);
	CHECK_INT(fspf_path_normalize(NULL, out), -EINVAL);

	/* Length limit: a normal path of 4095 bytes fits, 4096 does not. */
	{
		char *p = malloc(FSPF_PATH_MAX_BYTES + 2);

		REQUIRE(p != NULL);
		p[0] = '/';
		memset(p + 1, 'x', FSPF_PATH_MAX_BYTES);
		p[FSPF_PATH_MAX_BYTES - 1] = '\0'; /* 4095 bytes */
		CHECK_INT(fspf_path_normalize(p, out), 0);
		CHECK_INT(strlen(out), FSPF_PATH_MAX_BYTES - 1);
		CHECK(fspf_path_valid(p, FSPF_PATH_MAX_BYTES - 1));
		p[FSPF_PATH_MAX_BYTES - 1] = 'x';
		p[FSPF_PATH_MAX_BYTES] = '\0'; /* 4096 bytes */
		CHECK_INT(fspf_path_normalize(p, out), -EINVAL);
		CHECK(!fspf_path_valid(p, FSPF_PATH_MAX_BYTES));
		/* Slashes that collapse bring it back under the limit. */
		p[0] = '/';
		p[1] = '/';
		CHECK_INT(fspf_path_normalize(p, out), 0);
		free(p);
	}
}

static void test_path_valid(void)
{
	static const char *const good[] = {"/",	   "/a",      "/a/b",
					   "/...", "/a.b/.c", "/a b"};
	static const char *const bad[] = {"",	     "a",    "//",  "/a/",
					  "/a//b",   "/.",   "/..", "/a/.",
					  "/a/../b", "/./a", "a/b"};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!CHECK(fspf_path_valid(good[i], strlen(good[i]))))
			tap_diag("refused \"%s\"", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!CHECK(!fspf_path_valid(bad[i], strlen(bad[i]))))
			tap_diag("accepted \"%s\"", bad[i]);
	/* The length is the authority: a NUL inside is refused. */
	CHECK(!fspf_path_valid("/a\0b", 4));
	CHECK(fspf_path_valid("/ab/c", 3));
	CHECK(!fspf_path_valid("/ab/c", 4));
	CHECK(!fspf_path_valid("/", 0));
}

static void test_path_contains(void)
{
	CHECK(fspf_path_contains("/", "/"));
	CHECK(fspf_path_contains("/", "/a"));
	CHECK(fspf_path_contains("/", "/a/b/c"));
	CHECK(fspf_path_contains("/data", "/data"));
	CHECK(fspf_path_contains("/data", "/data/x"));
	CHECK(fspf_path_contains("/data", "/data/x/y"));
	CHECK(!fspf_path_contains("/data", "/database"));
	CHECK(!fspf_path_contains("/data", "/data.d/x"));
	CHECK(!fspf_path_contains("/data", "/dat"));
	CHECK(!fspf_path_contains("/data", "/"));
	CHECK(!fspf_path_contains("/data/x", "/data"));
	CHECK(!fspf_path_contains("/database", "/data"));
	CHECK(fspf_path_contains("/a/b", "/a/b/c"));
	CHECK(!fspf_path_contains("/a/b", "/a/bc"));
}

/* ---- regions ---- */

static void test_region_add_rules(void)
{
	struct fspf *f = fspf_or_die();
	const char *why = "unset";

	/* The first region need not be "/". */
	CHECK_INT(region_full(f, "/data", "/k/data", FSPF_ENCRYPTED,
			      FSPF_KERNEL, 32, 4096, &why),
		  0);
	CHECK(why == NULL);
	/* A second one needs "/". */
	CHECK_INT(region_full(f, "/other", "/k/other", FSPF_ENCRYPTED,
			      FSPF_KERNEL, 32, 4096, &why),
		  -EINVAL);
	CHECK(why != NULL);
	/* Duplicate, also after normalisation. */
	CHECK_INT(region_full(f, "/data", "/k/d2", FSPF_AUTHENTICATED,
			      FSPF_KERNEL, 16, 512, &why),
		  -EEXIST);
	CHECK(why != NULL);
	CHECK_INT(region(f, "//data/", "/k/d3", FSPF_ENCRYPTED, 32, 4096),
		  -EEXIST);
	/* Then "/", then others are fine. */
	CHECK_INT(region(f, "/", NULL, FSPF_NOT_PROTECTED, 0, 0), 0);
	CHECK_INT(region(f, "/", NULL, FSPF_NOT_PROTECTED, 0, 0), -EEXIST);
	CHECK_INT(region(f, "/other//", "/k/other", FSPF_ENCRYPTED, 32, 4096),
		  0);
	CHECK_INT(fspf_region_count(f), 3);
	CHECK_STR(fspf_region(f, 0)->path, "/");
	CHECK_STR(fspf_region(f, 1)->path, "/data");
	CHECK_STR(fspf_region(f, 2)->path, "/other");
	CHECK_STR(fspf_region(f, 2)->kernel, "/k/other");
	CHECK(fspf_region(f, 3) == NULL);

	/* Embed points: absolute, no "." or "..". */
	CHECK_INT(region_full(f, "rel", NULL, FSPF_NOT_PROTECTED,
			      FSPF_EPHEMERAL, 0, 0, &why),
		  -EINVAL);
	CHECK(why != NULL);
	CHECK_INT(region(f, "/a/../b", NULL, FSPF_NOT_PROTECTED, 0, 0),
		  -EINVAL);
	CHECK_INT(region(f, "/a/./b", NULL, FSPF_NOT_PROTECTED, 0, 0), -EINVAL);
	CHECK_INT(region(f, "", NULL, FSPF_NOT_PROTECTED, 0, 0), -EINVAL);

	/* Chunk sizes. */
	static const struct {
		uint32_t chunk;
		int want;
	} chunks[] = {
	    {0, -EINVAL},
	    {1, -EINVAL},
	    {FSPF_MIN_CHUNK_BYTES - 1, -EINVAL},
	    {FSPF_MIN_CHUNK_BYTES, 0},
	    {4096, 0},
	    {1000, 0}, /* not a power of two: allowed by the spec */
	    {FSPF_MAX_CHUNK_BYTES, 0},
	    {FSPF_MAX_CHUNK_BYTES + 1, -EINVAL},
	    {UINT32_MAX, -EINVAL},
	};
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		char path[32], kern[32];

		snprintf(path, sizeof(path), "/c%zu", i);
		snprintf(kern, sizeof(kern), "/kc/%zu", i);
		if (!CHECK_INT(region_full(f, path, kern, FSPF_AUTHENTICATED,
					   FSPF_KERNEL, 32, chunks[i].chunk,
					   &why),
			       chunks[i].want))
			tap_diag("chunk size %u", chunks[i].chunk);
		if (chunks[i].want)
			CHECK(why != NULL);
	}
	/* Key sizes. */
	for (uint32_t k = 0; k <= 64; k++) {
		char path[32], kern[32];
		int want = k == 16 || k == 24 || k == 32 ? 0 : -EINVAL;

		snprintf(path, sizeof(path), "/k%u", k);
		snprintf(kern, sizeof(kern), "/kk/%u", k);
		if (!CHECK_INT(region(f, path, kern, FSPF_ENCRYPTED, k, 4096),
			       want))
			tap_diag("key size %u", k);
	}
	/* Not protected: no key, no chunk size. */
	CHECK_INT(region(f, "/np1", NULL, FSPF_NOT_PROTECTED, 32, 0), -EINVAL);
	CHECK_INT(region(f, "/np2", NULL, FSPF_NOT_PROTECTED, 0, 4096),
		  -EINVAL);
	CHECK_INT(region(f, "/np3", NULL, FSPF_NOT_PROTECTED, 0, 0), 0);
	/* Protection and storage values; kernel iff kernel storage. */
	CHECK_INT(region(f, "/p3", "/kp3", 3, 32, 4096), -EINVAL);
	CHECK_INT(
	    region_full(f, "/s2", NULL, FSPF_ENCRYPTED, 2, 32, 4096, NULL),
	    -EINVAL);
	CHECK_INT(region_full(f, "/kn", NULL, FSPF_ENCRYPTED, FSPF_KERNEL, 32,
			      4096, NULL),
		  -EINVAL);
	CHECK_INT(region_full(f, "/ek", "/kek", FSPF_ENCRYPTED, FSPF_EPHEMERAL,
			      32, 4096, NULL),
		  -EINVAL);
	CHECK_INT(region(f, "/ke", "", FSPF_ENCRYPTED, 32, 4096), -EINVAL);
	/* A protected ephemeral region is allowed. */
	CHECK_INT(region(f, "/eph", NULL, FSPF_ENCRYPTED, 32, 4096), 0);

	/* Still sorted by path ('/' below every other byte). */
	for (size_t i = 1; i < fspf_region_count(f); i++) {
		const char *a = fspf_region(f, i - 1)->path;
		const char *b = fspf_region(f, i)->path;

		CHECK(strcmp(a, b) != 0);
	}
	fspf_free(f);
}

static void test_region_order(void)
{
	static const char *const add[] = {"/b",	    "/a.b", "/a/b", "/a",
					  "/a/b/c", "/ab",  "/a-"};
	static const char *const want[] = {"/",	  "/a",	  "/a/b", "/a/b/c",
					   "/a-", "/a.b", "/ab",  "/b"};
	struct fspf *f = fspf_or_die();

	REQUIRE_INT(region(f, "/", NULL, FSPF_NOT_PROTECTED, 0, 0), 0);
	for (size_t i = 0; i < sizeof(add) / sizeof(add[0]); i++)
		CHECK_INT(region(f, add[i], NULL, FSPF_NOT_PROTECTED, 0, 0), 0);
	REQUIRE_INT(fspf_region_count(f), 8);
	for (size_t i = 0; i < 8; i++)
		CHECK_STR(fspf_region(f, i)->path, want[i]);
	fspf_free(f);
}

static void test_region_kernel_overlap(void)
{
	struct fspf *f = fspf_or_die();
	const char *why = NULL;

	REQUIRE_INT(region(f, "/", "/k", FSPF_ENCRYPTED, 32, 4096), 0);
	/* kernel(B) = kernel(A) + X with path(B) = path(A) + X: consistent. */
	CHECK_INT(region(f, "/a", "/k/a", FSPF_ENCRYPTED, 32, 4096), 0);
	CHECK_INT(region(f, "/a/b/c", "/k/a/b/c", FSPF_AUTHENTICATED, 16, 512),
		  0);
	/* The same host files under another path: inconsistent. */
	CHECK_INT(region_full(f, "/b", "/k/x", FSPF_ENCRYPTED, FSPF_KERNEL, 32,
			      4096, &why),
		  -EINVAL);
	CHECK(why != NULL);
	CHECK_INT(region(f, "/c", "/k", FSPF_ENCRYPTED, 32, 4096), -EINVAL);
	CHECK_INT(region(f, "/d", "/k/a", FSPF_ENCRYPTED, 32, 4096), -EINVAL);
	/* The other way round: the new kernel dir contains an old one. */
	CHECK_INT(region(f, "/z", "/", FSPF_ENCRYPTED, 32, 4096), -EINVAL);
	/* A trailing slash in the kernel dir does not hide an overlap. */
	CHECK_INT(region(f, "/e", "/k/f/", FSPF_ENCRYPTED, 32, 4096), -EINVAL);
	/* Component-wise: /kx is not below /k. */
	CHECK_INT(region(f, "/f", "/kx", FSPF_ENCRYPTED, 32, 4096), 0);
	CHECK_INT(region(f, "/g", "/k2/g", FSPF_ENCRYPTED, 32, 4096), 0);
	CHECK_INT(region(f, "/g/h", "/k2/g/h", FSPF_ENCRYPTED, 32, 4096), 0);
	CHECK_INT(region(f, "/i", "/k2/g/h/i", FSPF_ENCRYPTED, 32, 4096),
		  -EINVAL);
	CHECK_INT(region(f, "/g/h/i", "/k2/g/h/i", FSPF_ENCRYPTED, 32, 4096),
		  0);
	/* A not-protected region may overlap anything. */
	CHECK_INT(region(f, "/np", "/k/a", FSPF_NOT_PROTECTED, 0, 0), 0);
	CHECK_INT(region(f, "/np2", "/k", FSPF_NOT_PROTECTED, 0, 0), 0);
	fspf_free(f);

	/* With "/" nested below another region's kernel dir. */
	f = fspf_or_die();
	REQUIRE_INT(region(f, "/a", "/k/a", FSPF_ENCRYPTED, 32, 4096), 0);
	CHECK_INT(region(f, "/", "/k", FSPF_AUTHENTICATED, 32, 4096), 0);
	fspf_free(f);
	f = fspf_or_die();
	REQUIRE_INT(region(f, "/a", "/k/b", FSPF_ENCRYPTED, 32, 4096), 0);
	CHECK_INT(region(f, "/", "/k", FSPF_AUTHENTICATED, 32, 4096), -EINVAL);
	fspf_free(f);
}

/*
 * Regression: kernel directories were compared as strings, so another
 * spelling of the same host directory ("/srv//x", "/srv/./x" against
 * "/srv/x") escaped the overlap rule, and a trailing slash made a
 * consistent nesting look inconsistent. They are normalised now.
 */
static void test_region_kernel_spelling(void)
{
	struct fspf *f = fspf_or_die();

	REQUIRE_INT(region(f, "/", NULL, FSPF_NOT_PROTECTED, 0, 0), 0);
	REQUIRE_INT(region(f, "/x", "/srv/x", FSPF_ENCRYPTED, 32, 4096), 0);
	if (!CHECK_INT(region(f, "/y", "/srv//x", FSPF_AUTHENTICATED, 32, 4096),
		       -EINVAL))
		tap_diag("/srv//x accepted beside /srv/x");
	if (!CHECK_INT(
		region(f, "/z", "/srv/./x", FSPF_AUTHENTICATED, 32, 4096),
		-EINVAL))
		tap_diag("/srv/./x accepted beside /srv/x");
	fspf_free(f);
	/* /srv/x/sub/ is /srv/x + /sub: consistent with /x/sub. */
	f = fspf_or_die();
	REQUIRE_INT(region(f, "/", NULL, FSPF_NOT_PROTECTED, 0, 0), 0);
	REQUIRE_INT(region(f, "/x", "/srv/x", FSPF_ENCRYPTED, 32, 4096), 0);
	if (!CHECK_INT(
		region(f, "/x/sub", "/srv/x/sub/", FSPF_ENCRYPTED, 32, 4096),
		0))
		tap_diag("/srv/x/sub/ refused for /x/sub");
	fspf_free(f);
}

/* Regression: a volume's relative kernel directory "." was refused. */
static void test_region_kernel_relative(void)
{
	static const char *const forms[][2] = {
		{ ".", "." }, { "./", "." }, { "./data/", "data" },
		{ "data//x/.", "data/x" },
	};

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		struct fspf *f = fspf_or_die();
		struct fspf *back = NULL;
		uint8_t *buf = NULL;
		size_t size = 0;

		REQUIRE_INT(region(f, "/", forms[i][0], FSPF_ENCRYPTED, 32, 4096),
			    0);
		CHECK_STR(fspf_region(f, 0)->kernel, forms[i][1]);
		REQUIRE_INT(fspf_encode(f, NULL, &buf, &size, NULL), 0);
		CHECK_INT(fspf_decode(buf, size, NULL, &back, NULL), 0);
		if (back)
			CHECK_STR(fspf_region(back, 0)->kernel, forms[i][1]);
		fspf_free(back);
		free(buf);
		fspf_free(f);
	}
	{
		struct fspf *f = fspf_or_die();

		CHECK_INT(region(f, "/", "../up", FSPF_ENCRYPTED, 32, 4096),
			  -EINVAL);
		fspf_free(f);
	}
}

/*
 * Regression: a symlink recorded above an embed point let extract write
 * outside its output directory. Neither order of adding is accepted.
 */
static void test_region_below_symlink(void)
{
	static const struct espec link_a[] = {
		{ "/a", FSPF_SYMLINK, 0, "/tmp/elsewhere" },
	};
	static const struct espec file_a[] = {
		{ "/a", FSPF_FILE, 5, NULL },
	};
	struct fspf *f = fspf_or_die();

	/* The symlink first, then a region below it. */
	REQUIRE_INT(region(f, "/", "/k", FSPF_AUTHENTICATED, 32, 4096), 0);
	REQUIRE_INT(put(f, link_a, 1), 0);
	CHECK_INT(region(f, "/a/b", "/k/a/b", FSPF_AUTHENTICATED, 32, 4096),
		  -EINVAL);
	fspf_free(f);
	/* The region first, then a symlink or a file above it. */
	f = fspf_or_die();
	REQUIRE_INT(region(f, "/", "/k", FSPF_AUTHENTICATED, 32, 4096), 0);
	REQUIRE_INT(region(f, "/a/b", "/k/a/b", FSPF_AUTHENTICATED, 32, 4096),
		    0);
	CHECK_INT(put(f, link_a, 1), -EINVAL);
	CHECK_STR(g_bad_path, "/a");
	CHECK_INT(put(f, file_a, 1), -EINVAL);
	CHECK_INT(fspf_entry_count(f), 0);
	fspf_free(f);
}

static void test_region_takeover(void)
{
	struct fspf *f = fspf_or_die();
	static const struct espec es[] = {
	    {"/data", FSPF_DIR, 0, NULL},
	    {"/data/x", FSPF_FILE, 10, NULL},
	    {"/top", FSPF_FILE, 1, NULL},
	};
	const char *why = NULL;

	REQUIRE_INT(region(f, "/", "/k", FSPF_ENCRYPTED, 32, 4096), 0);
	REQUIRE_INT(put(f, es, 3), 0);
	/* Would take /data and /data/x away from "/". */
	CHECK_INT(region_full(f, "/data", "/k/data", FSPF_ENCRYPTED,
			      FSPF_KERNEL, 32, 4096, &why),
		  -EINVAL);
	CHECK(why != NULL);
	CHECK_INT(region(f, "/data/x", "/k/data/x", FSPF_ENCRYPTED, 32, 4096),
		  -EINVAL);
	CHECK_INT(region(f, "/top", "/k/top", FSPF_ENCRYPTED, 32, 4096),
		  -EINVAL);
	/* Takes nothing: fine ("/dat" does not contain "/data"). */
	CHECK_INT(region(f, "/dat", "/k/dat", FSPF_ENCRYPTED, 32, 4096), 0);
	CHECK_INT(region(f, "/data/y", "/k/data/y", FSPF_ENCRYPTED, 32, 4096),
		  0);
	CHECK_INT(region(f, "/t", "/k/t", FSPF_ENCRYPTED, 32, 4096), 0);
	CHECK_INT(fspf_region_count(f), 4);
	fspf_free(f);

	/* Entries of a nested region stay where they are when "/" comes. */
	f = fspf_or_die();
	REQUIRE_INT(region(f, "/data", "/k/data", FSPF_ENCRYPTED, 32, 4096), 0);
	REQUIRE_INT(put1(f, "/data/x", FSPF_FILE, 1, NULL), 0);
	CHECK_INT(region(f, "/", "/k", FSPF_AUTHENTICATED, 16, 512), 0);
	/* A region inside /data would take /data/x from /data. */
	CHECK_INT(region(f, "/data/x", "/k/data/x", FSPF_ENCRYPTED, 32, 4096),
		  -EINVAL);
	fspf_free(f);
}

static void test_region_limit(void)
{
	struct fspf *f = fspf_or_die();
	uint8_t *buf = NULL;
	size_t size = 0;
	struct fspf *back = NULL;

	REQUIRE_INT(region(f, "/", NULL, FSPF_NOT_PROTECTED, 0, 0), 0);
	for (unsigned int i = 1; i < FSPF_MAX_REGIONS; i++) {
		char path[32];

		snprintf(path, sizeof(path), "/r%u", i);
		if (!CHECK_INT(region(f, path, NULL, FSPF_NOT_PROTECTED, 0, 0),
			       0))
			break;
	}
	CHECK_INT(fspf_region_count(f), FSPF_MAX_REGIONS);
	CHECK_INT(region(f, "/one-too-many", NULL, FSPF_NOT_PROTECTED, 0, 0),
		  -EINVAL);
	/* The largest region table encodes and decodes. */
	CHECK_INT(fspf_encode(f, NULL, &buf, &size, NULL), 0);
	CHECK_INT(fspf_decode(buf, size, NULL, &back, NULL), 0);
	if (back)
		models_equal(f, back);
	fspf_free(back);
	/* One region more, well sealed and consistent in size: refused. */
	if (buf) {
		struct plain p;
		uint8_t rec[FSPF_REGION_RECORD_BYTES] = {0};
		uint32_t off;

		REQUIRE_INT(p_open(buf, size, &p), 0);
		off = p_add_string(&p, "/~", 2); /* sorts last */
		p_set_ref(rec, off, 2);
		rec[17] = FSPF_EPHEMERAL;
		p_splice(&p, p_entries(&p), 0, rec, sizeof(rec));
		set32(p.b + 16, FSPF_MAX_REGIONS + 1);
		CHECK_INT(p_decode(&p, NULL), -EUCLEAN);
		p_free(&p);
	}
	free(buf);
	fspf_free(f);
}

static void test_region_lookup(void)
{
	struct fspf *f = fspf_or_die();
	size_t i = 99;
	static const struct {
		const char *path, *region;
	} cases[] = {
	    {"/", "/"},
	    {"/x", "/"},
	    {"/data", "/data"},
	    {"/data/x", "/data"},
	    {"/data/sub", "/data/sub"},
	    {"/data/sub/y/z", "/data/sub"},
	    {"/data/subway", "/data"},
	    {"/database", "/database"},
	    {"/database/x", "/database"},
	    {"/datab", "/"},
	    {"/dat", "/"},
	};

	CHECK_INT(fspf_region_lookup(f, "/x", &i), -ENOENT);
	CHECK_INT(i, 99);
	REQUIRE_INT(region(f, "/data", NULL, FSPF_NOT_PROTECTED, 0, 0), 0);
	CHECK_INT(fspf_region_lookup(f, "/x", &i), -ENOENT);
	CHECK_INT(fspf_region_lookup(f, "/database", &i), -ENOENT);
	CHECK_INT(fspf_region_lookup(f, "/data/q", &i), 0);
	REQUIRE_INT(region(f, "/", NULL, FSPF_NOT_PROTECTED, 0, 0), 0);
	REQUIRE_INT(region(f, "/database", NULL, FSPF_NOT_PROTECTED, 0, 0), 0);
	REQUIRE_INT(region(f, "/data/sub", NULL, FSPF_NOT_PROTECTED, 0, 0), 0);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		i = 99;
		if (CHECK_INT(fspf_region_lookup(f, cases[c].path, &i), 0) &&
		    !CHECK_STR(fspf_region(f, i)->path, cases[c].region))
			tap_diag("lookup \"%s\"", cases[c].path);
	}
	fspf_free(f);
}

/* ---- entries ---- */

static void test_entries_put_basic(void)
{
	struct fspf *f = fspf_or_die();
	static const struct espec es[] = {
	    {"/d/sub/f2", FSPF_FILE, 8193, NULL},
	    {"/d", FSPF_DIR, 77, NULL},
	    {"/d/sub", FSPF_DIR, 0, NULL},
	    {"/d/f1", FSPF_FILE, 4096, NULL},
	    {"/d/l", FSPF_SYMLINK, 999, "../target"},
	    {"/d/z", FSPF_FILE, 0, NULL},
	    {"/a/f", FSPF_FILE, 1, NULL},
	};
	const struct fspf_entry *e, *e2;

	REQUIRE_INT(region(f, "/", "/k", FSPF_AUTHENTICATED, 16, 512), 0);
	REQUIRE_INT(region(f, "/d", "/kd", FSPF_ENCRYPTED, 24, 4096), 0);
	REQUIRE_INT(region(f, "/a", "/ka", FSPF_ENCRYPTED, 32, 4096), 0);
	CHECK_INT(put(f, NULL, 0), 0);
	REQUIRE_INT(put(f, es, sizeof(es) / sizeof(es[0])), 0);
	REQUIRE_INT(fspf_entry_count(f), 7);
	/* Sorted: "/a/f" "/d" "/d/f1" "/d/l" "/d/sub" "/d/sub/f2" "/d/z". */
	CHECK_STR(fspf_entry(f, 0)->path, "/a/f");
	CHECK_STR(fspf_entry(f, 1)->path, "/d");
	CHECK_STR(fspf_entry(f, 2)->path, "/d/f1");
	CHECK_STR(fspf_entry(f, 3)->path, "/d/l");
	CHECK_STR(fspf_entry(f, 4)->path, "/d/sub");
	CHECK_STR(fspf_entry(f, 5)->path, "/d/sub/f2");
	CHECK_STR(fspf_entry(f, 6)->path, "/d/z");
	CHECK(fspf_entry(f, 7) == NULL);

	e = fspf_entry_find(f, "/d");
	REQUIRE(e != NULL);
	CHECK_INT(e->size, 0); /* a directory has size 0 */
	CHECK_INT(e->chunk_count, 0);
	CHECK(fsh_is_zero(e->id, FSPF_ID_BYTES));
	CHECK_INT(e->mode, 0755);

	e = fspf_entry_find(f, "/d/l");
	REQUIRE(e != NULL);
	CHECK_STR(e->target, "../target");
	CHECK_INT(e->size, 9); /* a symlink: the target's length */
	CHECK_INT(e->chunk_count, 0);

	e = fspf_entry_find(f, "/d/sub/f2");
	REQUIRE(e != NULL);
	CHECK_INT(e->size, 8193);
	CHECK_INT(e->chunk_count, 3);
	CHECK(e->chunks != NULL);
	if (e->chunks)
		CHECK(fsh_is_zero(e->chunks, 3 * sizeof(*e->chunks)));
	CHECK(!fsh_is_zero(e->id, FSPF_ID_BYTES));
	CHECK(!fsh_is_zero(fspf_entry_key(f, e), 24));
	CHECK_STR(fspf_entry_region(f, e)->path, "/d");
	CHECK_INT(e->mode, 0640);
	CHECK_INT(e->mtime_ns, 1700000000123456789LL);

	e2 = fspf_entry_find(f, "/d/f1");
	REQUIRE(e2 != NULL);
	CHECK_INT(e2->chunk_count, 1);
	CHECK(memcmp(e->id, e2->id, FSPF_ID_BYTES) != 0);
	CHECK(memcmp(fspf_entry_key(f, e), fspf_entry_key(f, e2), 24) != 0);
	CHECK_INT(fspf_entry_find(f, "/d/z")->chunk_count, 0);
	CHECK_INT(fspf_entry_find(f, "/a/f")->chunk_count, 1);
	CHECK_STR(fspf_entry_region(f, fspf_entry_find(f, "/a/f"))->path, "/a");

	CHECK(fspf_entry_find(f, "/d/sub/f") == NULL);
	CHECK(fspf_entry_find(f, "/") == NULL);

	/* Ranges are contiguous subtrees. */
	{
		size_t first, end;

		fspf_entry_range(f, "/d", &first, &end);
		CHECK_INT(first, 1);
		CHECK_INT(end, 7);
		fspf_entry_range(f, "/d/sub", &first, &end);
		CHECK_INT(first, 4);
		CHECK_INT(end, 6);
		fspf_entry_range(f, "/", &first, &end);
		CHECK_INT(first, 0);
		CHECK_INT(end, 7);
		fspf_entry_range(f, "/d/s", &first, &end);
		CHECK_INT(end - first, 0);
		fspf_entry_range(f, "/zzz", &first, &end);
		CHECK_INT(end - first, 0);
	}
	fspf_free(f);
}

static void test_entries_put_replace(void)
{
	struct fspf *f = fspf_or_die();
	static const struct espec es[] = {
	    {"/x", FSPF_DIR, 0, NULL},
	    {"/x/f", FSPF_FILE, 100, NULL},
	    {"/x/g", FSPF_FILE, 5000, NULL},
	};
	uint8_t old_id[FSPF_ID_BYTES], old_key[32];
	struct fspf_entry *e;

	REQUIRE_INT(region(f, "/", "/k", FSPF_ENCRYPTED, 32, 4096), 0);
	REQUIRE_INT(put(f, es, 3), 0);
	e = fspf_entry_find(f, "/x/f");
	REQUIRE(e != NULL);
	memcpy(old_id, e->id, sizeof(old_id));
	memcpy(old_key, fspf_entry_key(f, e), 32);

	/* A file replaced by a file: new id, new key, new chunk table. */
	REQUIRE_INT(put1(f, "/x/f", FSPF_FILE, 9000, NULL), 0);
	CHECK_INT(fspf_entry_count(f), 3);
	e = fspf_entry_find(f, "/x/f");
	REQUIRE(e != NULL);
	CHECK_INT(e->size, 9000);
	CHECK_INT(e->chunk_count, 3);
	CHECK(memcmp(e->id, old_id, sizeof(old_id)) != 0);
	CHECK(memcmp(fspf_entry_key(f, e), old_key, 32) != 0);

	/* A file replaced by a directory, and by a symlink. */
	REQUIRE_INT(put1(f, "/x/f", FSPF_DIR, 0, NULL), 0);
	e = fspf_entry_find(f, "/x/f");
	REQUIRE(e != NULL);
	CHECK_INT(e->type, FSPF_DIR);
	CHECK_INT(e->chunk_count, 0);
	CHECK(fsh_is_zero(e->id, FSPF_ID_BYTES));
	REQUIRE_INT(put1(f, "/x/g", FSPF_SYMLINK, 0, "f"), 0);
	CHECK_INT(fspf_entry_find(f, "/x/g")->type, FSPF_SYMLINK);
	CHECK_INT(fspf_entry_count(f), 3);

	/* A directory with children replaced by a file orphans them. */
	REQUIRE_INT(put1(f, "/x/f/child", FSPF_FILE, 1, NULL), 0);
	CHECK_INT(put1(f, "/x/f", FSPF_FILE, 1, NULL), -EINVAL);
	CHECK_STR(g_bad_path, "/x/f/child");
	CHECK(g_why != NULL);
	CHECK_INT(fspf_entry_find(f, "/x/f")->type, FSPF_DIR); /* unchanged */

	/* The same path twice in one call: the last one wins. */
	{
		static const struct espec two[] = {
		    {"/x/h", FSPF_FILE, 1, NULL},
		    {"/x/h", FSPF_SYMLINK, 0, "target"},
		};

		REQUIRE_INT(put(f, two, 2), 0);
		e = fspf_entry_find(f, "/x/h");
		REQUIRE(e != NULL);
		CHECK_INT(e->type, FSPF_SYMLINK);
		CHECK_STR(e->target, "target");
	}
	/* Many replacements reuse key slots: the model stays consistent. */
	for (int i = 0; i < 300; i++) {
		REQUIRE_INT(put1(f, "/x/r", FSPF_FILE, (uint64_t)i * 100, NULL),
			    0);
	}
	{
		uint8_t *buf;
		size_t n;
		struct fspf *back = NULL;

		REQUIRE_INT(seal_all_chunks(f), 0);
		REQUIRE_INT(fspf_encode(f, NULL, &buf, &n, NULL), 0);
		CHECK_INT(fspf_decode(buf, n, NULL, &back, NULL), 0);
		if (back)
			models_equal(f, back);
		fspf_free(back);
		free(buf);
	}
	fspf_free(f);
}

static void test_entries_put_refused(void)
{
	struct fspf *f = fspf_or_die();
	static const struct espec ok[] = {
	    {"/e", FSPF_DIR, 0, NULL},
	    {"/e/f", FSPF_FILE, 1, NULL},
	};

	/* No region at all. */
	CHECK_INT(put1(f, "/a", FSPF_FILE, 1, NULL), -EINVAL);
	CHECK_STR(g_bad_path, "/a");
	CHECK(g_why != NULL);

	REQUIRE_INT(region(f, "/", "/k", FSPF_NOT_PROTECTED, 0, 0), 0);
	REQUIRE_INT(region(f, "/e", "/ke", FSPF_ENCRYPTED, 32, 4096), 0);
	REQUIRE_INT(region(f, "/eph", NULL, FSPF_ENCRYPTED, 32, 4096), 0);
	REQUIRE_INT(region(f, "/e/np", "/ke/np", FSPF_NOT_PROTECTED, 0, 0), 0);
	REQUIRE_INT(put(f, ok, 2), 0);

	/* Not-protected regions and ephemeral regions are refused. */
	CHECK_INT(put1(f, "/a", FSPF_FILE, 1, NULL), -EINVAL);
	CHECK_STR(g_bad_path, "/a");
	CHECK_INT(put1(f, "/e/np/x", FSPF_FILE, 1, NULL), -EINVAL);
	CHECK_INT(put1(f, "/e/np", FSPF_DIR, 0, NULL), -EINVAL);
	CHECK_INT(put1(f, "/eph/x", FSPF_FILE, 1, NULL), -EINVAL);
	/* The parent must be recorded (or be the embed point). */
	CHECK_INT(put1(f, "/e/x/y", FSPF_FILE, 1, NULL), -EINVAL);
	CHECK_STR(g_bad_path, "/e/x/y");
	/* ... and must be a directory. */
	CHECK_INT(put1(f, "/e/f/y", FSPF_FILE, 1, NULL), -EINVAL);
	CHECK_STR(g_bad_path, "/e/f/y");
	/* A parent given in the same call, in any order, is fine. */
	{
		static const struct espec pc[] = {
		    {"/e/x/y/z", FSPF_FILE, 3, NULL},
		    {"/e/x/y", FSPF_DIR, 0, NULL},
		    {"/e/x", FSPF_DIR, 0, NULL},
		};

		CHECK_INT(put(f, pc, 3), 0);
	}
	/* The embed point itself must be a directory. */
	CHECK_INT(put1(f, "/e", FSPF_FILE, 1, NULL), -EINVAL);
	CHECK_INT(put1(f, "/e", FSPF_SYMLINK, 0, "x"), -EINVAL);
	CHECK_INT(put1(f, "/e", FSPF_DIR, 0, NULL), 0);
	/* Bad fields. */
	CHECK_INT(put1(f, "e/rel", FSPF_FILE, 1, NULL), -EINVAL);
	CHECK_INT(put1(f, "/e/./x", FSPF_FILE, 1, NULL), -EINVAL);
	CHECK_INT(put1(f, "/e/x/", FSPF_FILE, 1, NULL), -EINVAL);
	CHECK_INT(put1(f, NULL, FSPF_FILE, 1, NULL), -EINVAL);
	CHECK_INT(put1(f, "/e/t0", 0, 1, NULL), -EINVAL);
	CHECK_INT(put1(f, "/e/t4", 4, 1, NULL), -EINVAL);
	CHECK_INT(put1(f, "/e/ft", FSPF_FILE, 1, "x"), -EINVAL);
	CHECK_INT(put1(f, "/e/dt", FSPF_DIR, 0, "x"), -EINVAL);
	CHECK_INT(put1(f, "/e/sn", FSPF_SYMLINK, 0, NULL), -EINVAL);
	CHECK_INT(put1(f, "/e/se", FSPF_SYMLINK, 0, ""), -EINVAL);
	{
		struct fspf_entry e = {0};
		const char *why, *bad;

		e.path = strdup("/e/mode");
		e.type = FSPF_FILE;
		e.mode = 010644;
		REQUIRE(e.path != NULL);
		CHECK_INT(fspf_entries_put(f, &e, 1, &why, &bad), -EINVAL);
		CHECK(bad == e.path);
		CHECK(e.path != NULL); /* still the caller's on failure */
		e.mode = 07777;
		CHECK_INT(fspf_entries_put(f, &e, 1, &why, &bad), 0);
		CHECK(e.path == NULL); /* taken over on success */
	}
	/* One bad entry refuses the whole call. */
	{
		static const struct espec mix[] = {
		    {"/e/good", FSPF_FILE, 1, NULL},
		    {"/e/bad/x", FSPF_FILE, 1, NULL},
		};
		size_t n = fspf_entry_count(f);

		CHECK_INT(put(f, mix, 2), -EINVAL);
		CHECK_INT(fspf_entry_count(f), n);
		CHECK(fspf_entry_find(f, "/e/good") == NULL);
	}
	fspf_free(f);
}

/* ---- chunks ---- */

static void test_chunk_count(void)
{
	CHECK_INT(fspf_chunk_count(0, 4096), 0);
	CHECK_INT(fspf_chunk_count(1, 4096), 1);
	CHECK_INT(fspf_chunk_count(4096, 4096), 1);
	CHECK_INT(fspf_chunk_count(4097, 4096), 2);
	CHECK_INT(fspf_chunk_count(UINT64_MAX, 512), UINT64_MAX / 512 + 1);
	CHECK_INT(fspf_chunk_count(100, 0), 0);
}

static void chunk_case(uint8_t protection)
{
	struct fspf *f = fspf_or_die();
	const struct fspf_region *r;
	struct fspf_entry *e, *e2;
	struct fsh_aead *aead = NULL, *aead2 = NULL;
	enum { C = 1024, SIZE = 2 * C + 100 };
	uint8_t pt[SIZE], st[SIZE], out[SIZE], buf[C];
	uint64_t idx;

	REQUIRE_INT(region(f, "/", "/k", protection, 32, C), 0);
	REQUIRE_INT(put1(f, "/f", FSPF_FILE, SIZE, NULL), 0);
	REQUIRE_INT(put1(f, "/g", FSPF_FILE, SIZE, NULL), 0);
	e = fspf_entry_find(f, "/f");
	e2 = fspf_entry_find(f, "/g");
	r = fspf_entry_region(f, e);
	REQUIRE(e && e2 && r);
	REQUIRE_INT(e->chunk_count, 3);
	REQUIRE_INT(fsh_aead_new(fspf_entry_key(f, e), 32, &aead), 0);
	REQUIRE_INT(fsh_aead_new(fspf_entry_key(f, e2), 32, &aead2), 0);
	fsh_random(pt, sizeof(pt));

	/* Seal all chunks of both files (stored bytes in st for /f). */
	for (idx = 0; idx < 3; idx++) {
		size_t off = idx * C, n = idx < 2 ? C : 100;

		memset(st + off, 0, n);
		CHECK_INT(
		    fspf_chunk_seal(aead, r, e, idx, pt + off, st + off, n), 0);
		CHECK(!fsh_is_zero(e->chunks[idx].tag, 16));
		CHECK(!fsh_is_zero(e->chunks[idx].nonce, 12));
		if (protection == FSPF_ENCRYPTED)
			CHECK(memcmp(st + off, pt + off, n) != 0);
		else
			memcpy(st + off, pt + off, n); /* stored in plain */
		/* /g holds other bytes: same-content chunks may verify. */
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)(pt[off + i] ^ 0x5a);
		CHECK_INT(fspf_chunk_seal(aead2, r, e2, idx, buf, buf, n), 0);
	}
	/* Fresh nonces for every chunk. */
	CHECK(memcmp(e->chunks[0].nonce, e->chunks[1].nonce, 12) != 0);

	/* Open into a separate buffer and in place. */
	for (idx = 0; idx < 3; idx++) {
		size_t off = idx * C, n = idx < 2 ? C : 100;

		memset(out, 0, sizeof(out));
		CHECK_INT(fspf_chunk_open(aead, r, e, idx, st + off, out, n),
			  0);
		CHECK_MEM(out, pt + off, n);
		memcpy(buf, st + off, n);
		CHECK_INT(fspf_chunk_open(aead, r, e, idx, buf, buf, n), 0);
		CHECK_MEM(buf, pt + off, n);
	}

	/* Every tampered byte of a stored chunk: -EBADMSG, output wiped. */
	for (size_t i = 0; i < C; i += 7) {
		memcpy(buf, st, C);
		buf[i] ^= 0x01;
		memset(out, 0xa5, C);
		CHECK_INT(fspf_chunk_open(aead, r, e, 0, buf, out, C),
			  -EBADMSG);
		CHECK(fsh_is_zero(out, C));
	}
	/*
	 * In place too (regression): an authenticated chunk opened in place
	 * must be wiped on failure, as fspf.h promises.
	 */
	memcpy(buf, st, C);
	buf[C / 2] ^= 0x80;
	CHECK_INT(fspf_chunk_open(aead, r, e, 0, buf, buf, C), -EBADMSG);
	if (!CHECK(fsh_is_zero(buf, C)))
		tap_diag("%s region: in-place open left unverified bytes",
			 protection == FSPF_ENCRYPTED ? "encrypted"
						      : "authenticated");

	/* A tampered record (nonce or tag). */
	for (size_t bit = 0; bit < 8 * sizeof(struct fspf_chunk); bit++) {
		uint8_t *rec = (uint8_t *)&e->chunks[1];

		rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		CHECK_INT(fspf_chunk_open(aead, r, e, 1, st + C, out, C),
			  -EBADMSG);
		rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	/* Swapped chunks: chunk 0's bytes at index 1, even with its record. */
	CHECK_INT(fspf_chunk_open(aead, r, e, 1, st, out, C), -EBADMSG);
	{
		struct fspf_chunk saved = e->chunks[1];

		e->chunks[1] = e->chunks[0];
		CHECK_INT(fspf_chunk_open(aead, r, e, 1, st, out, C), -EBADMSG);
		e->chunks[1] = saved;
	}
	/* Truncated last chunk: the length is in the AD. */
	CHECK_INT(fspf_chunk_open(aead, r, e, 2, st + 2 * C, out, 99),
		  -EBADMSG);
	/* Another file: its key, or its id with our key and records. */
	CHECK_INT(fspf_chunk_open(aead2, r, e2, 0, st, out, C), -EBADMSG);
	{
		struct fspf_entry other = *e;

		other.id[0] ^= 1;
		CHECK_INT(fspf_chunk_open(aead, r, &other, 0, st, out, C),
			  -EBADMSG);
	}
	/* The other protection's domain does not open it. */
	{
		struct fspf_region other = *r;

		other.protection = protection == FSPF_ENCRYPTED
				       ? FSPF_AUTHENTICATED
				       : FSPF_ENCRYPTED;
		CHECK_INT(fspf_chunk_open(aead, &other, e, 0, st, out, C),
			  -EBADMSG);
	}
	/* Bad arguments. */
	CHECK_INT(fspf_chunk_seal(aead, r, e, 3, pt, out, C), -EINVAL);
	CHECK_INT(fspf_chunk_seal(aead, r, e, 0, pt, out, 0), -EINVAL);
	CHECK_INT(fspf_chunk_seal(aead, r, e, 0, pt, out, C + 1), -EINVAL);
	CHECK_INT(fspf_chunk_open(aead, r, e, 3, st, out, C), -EINVAL);
	CHECK_INT(fspf_chunk_open(aead, r, e, 0, st, out, 0), -EINVAL);
	CHECK_INT(fspf_chunk_open(aead, r, e, 0, st, out, C + 1), -EINVAL);
	{
		struct fspf_region np = *r;
		struct fspf_chunk saved = e->chunks[0];

		np.protection = FSPF_NOT_PROTECTED;
		CHECK_INT(fspf_chunk_seal(aead, &np, e, 0, pt, out, C),
			  -EINVAL);
		/*
		 * Regression: a refused seal (-EINVAL) must leave the stored
		 * record as it was; it used to draw a fresh nonce first.
		 */
		if (!CHECK_MEM(&e->chunks[0], &saved, sizeof(saved)))
			tap_diag("a refused seal changed the chunk record");
		e->chunks[0] = saved;
		CHECK_INT(fspf_chunk_open(aead, &np, e, 0, st, out, C),
			  -EINVAL);
	}
	/* Still opens after all that. */
	CHECK_INT(fspf_chunk_open(aead, r, e, 0, st, out, C), 0);
	CHECK_MEM(out, pt, C);
	fsh_aead_free(aead);
	fsh_aead_free(aead2);
	fspf_free(f);
}

static void test_chunk_encrypted(void)
{
	chunk_case(FSPF_ENCRYPTED);
}

static void test_chunk_authenticated(void)
{
	chunk_case(FSPF_AUTHENTICATED);
}

/* ---- encode / decode ---- */

static void test_roundtrip(void)
{
	struct fspf *f = model(), *back = NULL;
	struct fsh_key *key = key_or_die(), *other = key_or_die();
	struct fspf_info info;
	uint8_t *buf = NULL, *buf2 = NULL, tag[16], tag2[16], tag3[16];
	size_t n = 0, n2 = 0;

	/* Zero key. */
	REQUIRE_INT(fspf_encode(f, NULL, &buf, &n, tag), 0);
	CHECK_INT(fspf_peek(buf, n, &info), 0);
	CHECK_INT(info.major, 1);
	CHECK_INT(info.minor, 0);
	CHECK_INT(info.flags, FSPF_F_ZERO_KEY);
	CHECK_INT(info.region_count, 6);
	CHECK_INT(info.entry_count, 8);
	CHECK_INT(info.chunk_count, M_CHUNKS);
	CHECK_MEM(info.tag, tag, 16);
	CHECK_MEM(buf + n - 16, tag, 16);
	CHECK_INT(get64(buf + 40), M_KEYS);
	CHECK(fsh_is_zero(buf + 76, 20));
	CHECK_INT(fspf_decode(buf, n, NULL, &back, tag2), 0);
	CHECK_MEM(tag2, tag, 16);
	if (back) {
		models_equal(f, back);
		CHECK(!fspf_is_encrypted(back));
	}
	fspf_free(back);
	back = NULL;
	/* A zero-key fspf also opens when a key is given. */
	CHECK_INT(fspf_decode(buf, n, key, &back, NULL), 0);
	if (back) {
		models_equal(f, back);
		CHECK(!fspf_is_encrypted(back));
	}
	fspf_free(back);
	back = NULL;
	/* Fresh nonce every time: another tag. */
	REQUIRE_INT(fspf_encode(f, NULL, &buf2, &n2, tag3), 0);
	CHECK_INT(n2, n);
	CHECK(memcmp(buf2 + 48, buf + 48, 12) != 0);
	CHECK(memcmp(tag3, tag, 16) != 0);
	free(buf2);
	free(buf);

	/* Real key. */
	REQUIRE_INT(fspf_encode(f, key, &buf, &n, tag), 0);
	CHECK_INT(fspf_peek(buf, n, &info), 0);
	CHECK_INT(info.flags, 0);
	CHECK_INT(fspf_decode(buf, n, key, &back, tag2), 0);
	CHECK_MEM(tag2, tag, 16);
	if (back) {
		models_equal(f, back);
		CHECK(fspf_is_encrypted(back));
		/* Decode, encode, decode: still equal. */
		REQUIRE_INT(fspf_encode(back, key, &buf2, &n2, NULL), 0);
		fspf_free(back);
		back = NULL;
		CHECK_INT(fspf_decode(buf2, n2, key, &back, NULL), 0);
		if (back)
			models_equal(f, back);
		free(buf2);
	}
	fspf_free(back);
	back = NULL;
	/* Wrong key, no key. */
	back = (struct fspf *)&back;
	memset(tag2, 0x33, 16);
	CHECK_INT(fspf_decode(buf, n, other, &back, tag2), -EKEYREJECTED);
	CHECK_INT(fspf_decode(buf, n, NULL, &back, tag2), -ENOKEY);
	CHECK(back == (struct fspf *)&back); /* untouched on failure */
	CHECK(tag2[0] == 0x33 && tag2[15] == 0x33);
	back = NULL;
	/* An all-zero key given as a real key is still a key. */
	{
		struct fsh_key *zero = NULL;

		REQUIRE_INT(fsh_key_new(32, &zero), 0);
		CHECK_INT(fspf_decode(buf, n, zero, &back, NULL),
			  -EKEYREJECTED);
		fsh_key_free(zero);
	}
	free(buf);
	/* Keys of other sizes are not fspf keys. */
	{
		struct fsh_key *k16 = NULL;

		REQUIRE_INT(fsh_key_generate(16, &k16), 0);
		buf = NULL;
		CHECK_INT(fspf_encode(f, k16, &buf, &n, NULL), -EINVAL);
		CHECK(buf == NULL);
		fsh_key_free(k16);
	}
	fsh_key_free(key);
	fsh_key_free(other);
	fspf_free(f);
}

static void test_roundtrip_empty(void)
{
	struct fspf *f = fspf_or_die(), *back = NULL;
	struct fsh_key *key = key_or_die();
	uint8_t *buf = NULL;
	size_t n = 0;

	REQUIRE_INT(fspf_encode(f, NULL, &buf, &n, NULL), 0);
	CHECK_INT(n, HDR + TAG);
	CHECK_INT(fspf_decode(buf, n, NULL, &back, NULL), 0);
	if (back)
		CHECK(models_equal(f, back));
	fspf_free(back);
	back = NULL;
	free(buf);
	REQUIRE_INT(fspf_encode(f, key, &buf, &n, NULL), 0);
	CHECK_INT(fspf_decode(buf, n, key, &back, NULL), 0);
	if (back) {
		CHECK_INT(fspf_region_count(back), 0);
		CHECK(fspf_is_encrypted(back));
	}
	fspf_free(back);
	free(buf);
	fsh_key_free(key);
	fspf_free(f);
}

/* After a decode the model accepts more entries and round-trips again. */
static void test_decode_then_edit(void)
{
	struct fspf *f = model(), *back = NULL, *again = NULL;
	struct fsh_key *key = key_or_die();
	uint8_t *buf = NULL;
	size_t n = 0;

	REQUIRE_INT(fspf_encode(f, key, &buf, &n, NULL), 0);
	REQUIRE_INT(fspf_decode(buf, n, key, &back, NULL), 0);
	free(buf);
	CHECK_INT(put1(back, "/data/a", FSPF_FILE, 12345, NULL), 0);
	CHECK_INT(put1(back, "/data/new", FSPF_FILE, 1, NULL), 0);
	CHECK_INT(put1(back, "/data/sub/b", FSPF_DIR, 0, NULL), 0);
	for (int i = 0; i < 100; i++) {
		char p[32];

		snprintf(p, sizeof(p), "/k24/f%d", i);
		CHECK_INT(put1(back, p, FSPF_FILE, (uint64_t)i, NULL), 0);
	}
	CHECK_INT(region(back, "/more", "/srv/more", FSPF_ENCRYPTED, 16, 512),
		  0);
	CHECK_INT(seal_all_chunks(back), 0);
	REQUIRE_INT(fspf_encode(back, key, &buf, &n, NULL), 0);
	CHECK_INT(fspf_decode(buf, n, key, &again, NULL), 0);
	if (again)
		models_equal(back, again);
	/* Entries kept their keys across both round trips. */
	{
		const struct fspf_entry *x = fspf_entry_find(f, "/auth/c");
		const struct fspf_entry *y =
		    again ? fspf_entry_find(again, "/auth/c") : NULL;

		if (CHECK(x && y))
			CHECK_MEM(fspf_entry_key(again, y),
				  fspf_entry_key(f, x), 16);
	}
	free(buf);
	fspf_free(again);
	fspf_free(back);
	fspf_free(f);
	fsh_key_free(key);
}

/*
 * fspf.h: fspf_encode() returns -EINVAL "when @fspf breaks a rule of the
 * format". A caller can break rules through the mutable fspf_entry(); the
 * encoder must not write an fspf that its own decoder refuses.
 */
static void test_encode_refuses_broken_model(void)
{
	struct fspf *f = model(), *back = NULL;
	struct fspf_entry *e = fspf_entry(f, 2); /* /data/a */
	uint8_t *buf = NULL;
	size_t n = 0;
	int err;

	REQUIRE(e != NULL);
	e->mode = 0170777;
	err = fspf_encode(f, NULL, &buf, &n, NULL);
	if (err == 0) {
		int derr = fspf_decode(buf, n, NULL, &back, NULL);

		if (!CHECK_INT(derr, 0))
			tap_diag("fspf_encode() wrote mode 0%o without "
				 "complaint, its decoder says %d",
				 e->mode, derr);
		fspf_free(back);
		free(buf);
	} else {
		CHECK_INT(err, -EINVAL);
	}
	fspf_free(f);
}

/* Every prefix of a valid encoding is refused without a crash. */
static void test_truncated(void)
{
	struct fspf *f = model(), *back = NULL;
	struct fsh_key *key = key_or_die();

	for (int variant = 0; variant < 2; variant++) {
		const struct fsh_key *k = variant ? key : NULL;
		uint8_t *buf, *copy;
		size_t n;

		encode_or_die(f, k, &buf, &n);
		for (size_t len = 0; len < n; len++) {
			struct fspf_info info;
			int want = -EUCLEAN; /* the magic is intact */
			int err;

			/* An exact-size copy, so ASan sees any overread. */
			copy = malloc(len ? len : 1);
			REQUIRE(copy != NULL);
			memcpy(copy, buf, len);
			err = fspf_peek(copy, len, &info);
			if (!CHECK_INT(err, want))
				tap_diag("peek, length %zu", len);
			err = fspf_decode(copy, len, k, &back, NULL);
			if (!CHECK_INT(err, want))
				tap_diag("decode, length %zu", len);
			if (!err)
				fspf_free(back);
			free(copy);
		}
		/* One byte more: refused too. */
		copy = malloc(n + 1);
		REQUIRE(copy != NULL);
		memcpy(copy, buf, n);
		copy[n] = 0;
		CHECK_INT(fspf_decode(copy, n + 1, k, &back, NULL), -EUCLEAN);
		free(copy);
		free(buf);
	}
	fsh_key_free(key);
	fspf_free(f);
}

/* The error a single flipped bit must give, by where it lands. */
static int flip_want(size_t byte, unsigned int bit, bool zero_key)
{
	if (byte < 8)
		return -EMEDIUMTYPE;
	if (byte == 10 && bit == 0) /* 1.0 -> 1.1: a lineage, of none */
		return -EUCLEAN;
	if (byte < 12)
		return -EPROTONOSUPPORT;
	if (byte < 16) { /* flags */
		if (byte == 12 && bit == 0)
			return zero_key ? -ENOKEY : -EBADMSG;
		return -EUCLEAN;
	}
	if (byte < 48) /* counts and sizes: the total size no longer fits */
		return -EUCLEAN;
	if (byte < 60) /* nonce */
		return -EBADMSG;
	if (byte < 76) /* key check */
		return zero_key ? -EBADMSG : -EKEYREJECTED;
	if (byte < HDR) /* reserved */
		return -EUCLEAN;
	return -EBADMSG; /* body and tag */
}

static void test_bit_flips(void)
{
	struct fspf *f = model(), *back = NULL;
	struct fsh_key *key = key_or_die();

	for (int variant = 0; variant < 2; variant++) {
		const struct fsh_key *k = variant ? key : NULL;
		uint8_t *buf;
		size_t n;
		unsigned long before = g_tap.bad;

		encode_or_die(f, k, &buf, &n);
		for (size_t byte = 0; byte < n; byte++) {
			for (unsigned int bit = 0; bit < 8; bit++) {
				int want = flip_want(byte, bit, !variant);
				int err;

				buf[byte] ^= (uint8_t)(1u << bit);
				back = NULL;
				err = fspf_decode(buf, n, k, &back, NULL);
				if (!CHECK_INT(err, want))
					tap_diag("%s key, byte %zu bit %u",
						 variant ? "real" : "zero",
						 byte, bit);
				if (!err)
					fspf_free(back);
				buf[byte] ^= (uint8_t)(1u << bit);
			}
		}
		/* A flipped zero-key flag with the key given: wrong key. */
		if (!variant) {
			buf[12] ^= 1;
			CHECK_INT(fspf_decode(buf, n, key, &back, NULL),
				  -EKEYREJECTED);
			buf[12] ^= 1;
		}
		/* The original still decodes. */
		CHECK_INT(fspf_decode(buf, n, k, &back, NULL), 0);
		fspf_free(back);
		free(buf);
		if (g_tap.bad != before)
			tap_diag("(%s key)", variant ? "real" : "zero");
	}
	fsh_key_free(key);
	fspf_free(f);
}

static void test_header_fields(void)
{
	struct fspf *f = model(), *back = NULL;
	struct fspf_info info;
	uint8_t *buf;
	size_t n;

	encode_or_die(f, NULL, &buf, &n);
	/* Magic. */
	for (size_t i = 0; i < 8; i++) {
		uint8_t save = buf[i];

		buf[i] = (uint8_t)(save + 1);
		CHECK_INT(fspf_peek(buf, n, &info), -EMEDIUMTYPE);
		CHECK_INT(fspf_decode(buf, n, NULL, &back, NULL), -EMEDIUMTYPE);
		buf[i] = save;
	}
	/* Short input: bad magic says so; a good one is just truncated. */
	CHECK_INT(fspf_peek((const uint8_t *)"NOTFSPF!x", 9, &info),
		  -EMEDIUMTYPE);
	CHECK_INT(fspf_peek(buf, 9, &info), -EUCLEAN);
	CHECK_INT(fspf_peek(buf, 0, &info), -EUCLEAN);
	/* Versions. */
	{
		static const uint16_t v[][2] = {
		    {0, 0}, {2, 0}, {1, 2}, {1, 0xffff}, {0xffff, 0},
		};

		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
			set16(buf + 8, v[i][0]);
			set16(buf + 10, v[i][1]);
			CHECK_INT(fspf_peek(buf, n, &info), -EPROTONOSUPPORT);
			CHECK_INT(fspf_decode(buf, n, NULL, &back, NULL),
				  -EPROTONOSUPPORT);
		}
		set16(buf + 8, 1);
		set16(buf + 10, 0);
	}
	/* Flags other than bit 0. */
	for (unsigned int bit = 1; bit < 32; bit++) {
		set32(buf + 12, FSPF_F_ZERO_KEY | 1u << bit);
		CHECK_INT(fspf_peek(buf, n, &info), -EUCLEAN);
		CHECK_INT(fspf_decode(buf, n, NULL, &back, NULL), -EUCLEAN);
	}
	set32(buf + 12, FSPF_F_ZERO_KEY);
	/* Every reserved byte, any non-zero value. */
	for (size_t i = 76; i < HDR; i++) {
		for (unsigned int v = 1; v < 256; v <<= 1) {
			buf[i] = (uint8_t)v;
			CHECK_INT(fspf_peek(buf, n, &info), -EUCLEAN);
			CHECK_INT(fspf_decode(buf, n, NULL, &back, NULL),
				  -EUCLEAN);
		}
		buf[i] = 0;
	}
	/* Size mismatches in each count, and counts that overflow. */
	{
		static const struct {
			size_t off;
			int width;
			uint64_t delta;
		} c[] = {
		    {16, 4, 1},
		    {20, 4, 1},
		    {24, 8, 1},
		    {32, 8, 1},
		    {40, 8, 1},
		    {16, 4, 0x10000},
		    {24, 8, UINT64_MAX / 28},
		    {24, 8, UINT64_MAX / 2},
		    {32, 8, UINT64_MAX - 100},
		    {40, 8, UINT64_MAX / 4},
		    {32, 8, SIZE_MAX - 200},
		};

		for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
			uint8_t save[8];

			memcpy(save, buf + c[i].off, 8);
			if (c[i].width == 4)
				set32(buf + c[i].off, get32(buf + c[i].off) +
							  (uint32_t)c[i].delta);
			else
				set64(buf + c[i].off,
				      get64(buf + c[i].off) + c[i].delta);
			if (!CHECK_INT(fspf_peek(buf, n, &info), -EUCLEAN))
				tap_diag("count at %zu + %llu", c[i].off,
					 (unsigned long long)c[i].delta);
			CHECK_INT(fspf_decode(buf, n, NULL, &back, NULL),
				  -EUCLEAN);
			memcpy(buf + c[i].off, save, 8);
		}
	}
	CHECK_INT(fspf_decode(buf, n, NULL, &back, NULL), 0);
	fspf_free(back);
	free(buf);
	fspf_free(f);
}

/* ---- body structure, reached through the zero-key re-seal ---- */

#define EXPECT_BODY(p, want, what)                         \
	do {                                               \
		int err_ = p_decode((p), NULL);            \
		if (!CHECK_INT(err_, (want)))              \
			tap_diag("body case: %s", (what)); \
	} while (0)

/* The helper itself: an unchanged body re-seals to the same model. */
static void test_reseal_control(void)
{
	struct plain p;
	struct fspf *back = NULL;

	p_copy(&g_base, &p);
	CHECK_INT(p_decode(&p, &back), 0);
	if (back)
		models_equal(g_model, back);
	fspf_free(back);
	/* Harmless edits decode: size within the same chunk count, mode. */
	set64(erec(&p, 2) + 16, 5001);
	set32(erec(&p, 2) + 24, 07777);
	EXPECT_BODY(&p, 0, "size 5000 -> 5001, mode 07777");
	p_free(&p);
}

static void test_body_region_records(void)
{
	struct plain p;

	/* Reserved byte 19 and bytes 24..31 of every region record. */
	for (size_t r = 0; r < 6; r++) {
		static const size_t res[] = {19, 24, 25, 26, 27,
					     28, 29, 30, 31};

		for (size_t i = 0; i < sizeof(res) / sizeof(res[0]); i++) {
			p_copy(&g_base, &p);
			rrec(&p, r)[res[i]] = 0x40;
			if (!CHECK_INT(p_decode(&p, NULL), -EUCLEAN))
				tap_diag("region %zu reserved byte %zu", r,
					 res[i]);
			p_free(&p);
		}
	}
	/* Regions: 0 /  1 /auth  2 /data  3 /eph  4 /k24  5 /tmp */
	p_copy(&g_base, &p);
	rrec(&p, 2)[16] = 3;
	EXPECT_BODY(&p, -EUCLEAN, "protection 3");
	p_free(&p);
	p_copy(&g_base, &p);
	rrec(&p, 3)[17] = 2;
	EXPECT_BODY(&p, -EUCLEAN, "storage 2");
	p_free(&p);
	p_copy(&g_base, &p);
	rrec(&p, 2)[18] = 20;
	EXPECT_BODY(&p, -EUCLEAN, "key size 20");
	p_free(&p);
	p_copy(&g_base, &p);
	rrec(&p, 3)[18] = 0;
	EXPECT_BODY(&p, -EUCLEAN, "key size 0 on a protected region");
	p_free(&p);
	p_copy(&g_base, &p);
	rrec(&p, 0)[18] = 16;
	EXPECT_BODY(&p, -EUCLEAN, "key size on a not-protected region");
	p_free(&p);
	p_copy(&g_base, &p);
	set32(rrec(&p, 5) + 20, 4096);
	EXPECT_BODY(&p, -EUCLEAN, "chunk size on a not-protected region");
	p_free(&p);
	{
		static const uint32_t bad[] = {0, 511, FSPF_MAX_CHUNK_BYTES + 1,
					       UINT32_MAX};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			p_copy(&g_base, &p);
			set32(rrec(&p, 3) + 20, bad[i]); /* /eph: no files */
			if (!CHECK_INT(p_decode(&p, NULL), -EUCLEAN))
				tap_diag("chunk size %u", bad[i]);
			p_free(&p);
		}
		/* The limits themselves are fine. */
		p_copy(&g_base, &p);
		set32(rrec(&p, 3) + 20, FSPF_MAX_CHUNK_BYTES);
		EXPECT_BODY(&p, 0, "chunk size 16 MiB");
		set32(rrec(&p, 3) + 20, FSPF_MIN_CHUNK_BYTES);
		EXPECT_BODY(&p, 0, "chunk size 512");
		p_free(&p);
	}
	/* An ephemeral region with a kernel reference. */
	p_copy(&g_base, &p);
	p_set_ref(rrec(&p, 5) + 8, 0, 1);
	EXPECT_BODY(&p, -EUCLEAN, "ephemeral region with kernel ref");
	p_free(&p);
	p_copy(&g_base, &p);
	p_set_ref(rrec(&p, 5) + 8, 1, 0);
	EXPECT_BODY(&p, -EUCLEAN, "ephemeral region with kernel offset");
	p_free(&p);
	/* A kernel region without one, or with a bad one. */
	p_copy(&g_base, &p);
	p_set_ref(rrec(&p, 2) + 8, 0, 0);
	EXPECT_BODY(&p, -EUCLEAN, "kernel region without kernel dir");
	p_free(&p);
	p_copy(&g_base, &p);
	p_set_ref(rrec(&p, 2) + 8, (uint32_t)p_ss(&p), 1);
	EXPECT_BODY(&p, -EUCLEAN, "kernel dir out of bounds");
	p_free(&p);
	/* Storage turned ephemeral while the kernel ref stays. */
	p_copy(&g_base, &p);
	rrec(&p, 0)[17] = FSPF_EPHEMERAL;
	EXPECT_BODY(&p, -EUCLEAN, "ephemeral with kernel ref (storage)");
	p_free(&p);
	/* Storage turned kernel without a kernel ref. */
	p_copy(&g_base, &p);
	rrec(&p, 5)[17] = FSPF_KERNEL;
	EXPECT_BODY(&p, -EUCLEAN, "kernel storage without kernel ref");
	p_free(&p);
	/* Unsorted and duplicate regions. */
	p_copy(&g_base, &p);
	{
		uint8_t tmp[FSPF_REGION_RECORD_BYTES];

		memcpy(tmp, rrec(&p, 3), sizeof(tmp));
		memcpy(rrec(&p, 3), rrec(&p, 5), sizeof(tmp));
		memcpy(rrec(&p, 5), tmp, sizeof(tmp));
	}
	EXPECT_BODY(&p, -EUCLEAN, "regions /eph and /tmp swapped");
	p_free(&p);
	p_copy(&g_base, &p);
	memcpy(rrec(&p, 4), rrec(&p, 3), 8);
	EXPECT_BODY(&p, -EUCLEAN, "two regions at /eph");
	p_free(&p);
	/* A duplicate that breaks nothing else: /tmp twice, at the end. */
	p_copy(&g_base, &p);
	{
		uint8_t rec[FSPF_REGION_RECORD_BYTES];

		memcpy(rec, rrec(&p, 5), sizeof(rec));
		p_splice(&p, p_entries(&p), 0, rec, sizeof(rec));
		set32(p.b + 16, 7);
	}
	EXPECT_BODY(&p, -EUCLEAN, "two regions at /tmp");
	p_free(&p);
	/* More than one region and the first is not "/". */
	p_copy(&g_base, &p);
	{
		uint32_t off = p_add_string(&p, "/a", 2);

		p_set_ref(rrec(&p, 0), off, 2);
		p_canon(&p);
	}
	EXPECT_BODY(&p, -EUCLEAN, "no \"/\" region among several");
	p_free(&p);
	/* Region paths that are not absolute and normal. */
	{
		static const char *const bad[] = {"/tmp/", "tmp",    "/tmp/.",
						  "//tmp", "/tm\0p", ""};
		static const size_t len[] = {5, 3, 6, 5, 5, 0};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			uint32_t off;

			p_copy(&g_base, &p);
			off = p_add_string(&p, bad[i], len[i]);
			p_set_ref(rrec(&p, 5), off, (uint32_t)len[i]);
			p_canon(&p);
			if (!CHECK_INT(p_decode(&p, NULL), -EUCLEAN))
				tap_diag("region path case %zu", i);
			p_free(&p);
		}
	}
}

static void test_body_entry_records(void)
{
	struct plain p;

	/* Reserved bytes 37..39 of every entry record. */
	for (size_t e = 0; e < 8; e++) {
		for (size_t b = 37; b < 40; b++) {
			p_copy(&g_base, &p);
			erec(&p, e)[b] = 1;
			if (!CHECK_INT(p_decode(&p, NULL), -EUCLEAN))
				tap_diag("entry %zu reserved byte %zu", e, b);
			p_free(&p);
		}
	}
	/* Unknown types, on a directory and on a file. */
	{
		static const uint8_t types[] = {0, 4, 5, 0x81, 0xff};

		for (size_t i = 0; i < sizeof(types); i++) {
			p_copy(&g_base, &p);
			erec(&p, 5)[36] = types[i];
			if (!CHECK_INT(p_decode(&p, NULL), -EUCLEAN))
				tap_diag("dir type %u", types[i]);
			p_free(&p);
			p_copy(&g_base, &p);
			erec(&p, 7)[36] = types[i];
			if (!CHECK_INT(p_decode(&p, NULL), -EUCLEAN))
				tap_diag("file type %u", types[i]);
			p_free(&p);
		}
	}
	/* Mode beyond 07777. */
	for (unsigned int bit = 12; bit < 32; bit++) {
		p_copy(&g_base, &p);
		set32(erec(&p, 2) + 24, 0644u | 1u << bit);
		if (!CHECK_INT(p_decode(&p, NULL), -EUCLEAN))
			tap_diag("mode bit %u", bit);
		p_free(&p);
	}
	/* Unsorted and duplicate entries. */
	p_copy(&g_base, &p);
	{
		uint8_t tmp[FSPF_ENTRY_RECORD_BYTES];

		memcpy(tmp, erec(&p, 2), sizeof(tmp));
		memcpy(erec(&p, 2), erec(&p, 3), sizeof(tmp));
		memcpy(erec(&p, 3), tmp, sizeof(tmp));
	}
	EXPECT_BODY(&p, -EUCLEAN, "entries /data/a and /data/empty swapped");
	p_free(&p);
	p_copy(&g_base, &p);
	memcpy(erec(&p, 3), erec(&p, 2), 8);
	EXPECT_BODY(&p, -EUCLEAN, "two entries at /data/a");
	p_free(&p);
	/* Entries outside protected kernel regions. */
	{
		static const struct {
			size_t entry;
			const char *path;
		} c[] = {
		    {0, "/aaa"},   /* region "/": not protected */
		    {7, "/tmp/x"}, /* ephemeral, not protected */
		    {7, "/eph/x"}, /* ephemeral, encrypted */
		    {7, "/eph"},   /* the embed point of /eph */
		};

		for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
			uint32_t len = (uint32_t)strlen(c[i].path), off;

			p_copy(&g_base, &p);
			off = p_add_string(&p, c[i].path, len);
			p_set_ref(erec(&p, c[i].entry), off, len);
			p_canon(&p);
			if (!CHECK_INT(p_decode(&p, NULL), -EUCLEAN))
				tap_diag("entry at %s", c[i].path);
			p_free(&p);
		}
	}
	/* Parent not recorded: /data/sub/b -> /data/suc/b. */
	p_copy(&g_base, &p);
	{
		uint8_t *s = p_str(&p, erec(&p, 6));

		CHECK(memcmp(s, "/data/sub/b", 11) == 0);
		s[8] = 'c';
	}
	EXPECT_BODY(&p, -EUCLEAN, "parent /data/suc not recorded");
	p_free(&p);
	/* Parent is a file: the symlink moves below /data/empty. */
	p_copy(&g_base, &p);
	{
		uint32_t off = p_add_string(&p, "/data/empty/l", 13);

		p_set_ref(erec(&p, 4), off, 13);
		p_canon(&p);
	}
	EXPECT_BODY(&p, -EUCLEAN, "parent /data/empty is a file");
	p_free(&p);

	/* Strings are canonical: no unreferenced byte, no other order. */
	p_copy(&g_base, &p);
	p_add_string(&p, "/x", 2);
	EXPECT_BODY(&p, -EUCLEAN, "unreferenced bytes in the string table");
	p_free(&p);
	p_copy(&g_base, &p);
	p_canon(&p);
	CHECK_INT(p_decode(&p, NULL), 0); /* the control: canon of canon */
	{
		/* Swap the references of regions 0 and 1 (same order otherwise). */
		uint8_t a[8], b[8];

		memcpy(a, rrec(&p, 0), 8);
		memcpy(b, rrec(&p, 1), 8);
		if (get32(a + 4) == get32(b + 4)) {
			memcpy(rrec(&p, 0), b, 8);
			memcpy(rrec(&p, 1), a, 8);
			EXPECT_BODY(&p, -EUCLEAN, "strings out of order");
		}
	}
	p_free(&p);
	/* The embed point recorded as a symlink. */
	p_copy(&g_base, &p);
	erec(&p, 1)[36] = FSPF_SYMLINK;
	memcpy(erec(&p, 1) + 8, erec(&p, 4) + 8, 8);
	set64(erec(&p, 1) + 16, 1);
	EXPECT_BODY(&p, -EUCLEAN, "embed point /data is a symlink");
	p_free(&p);
	/* Directories: no size, no id, no target. */
	p_copy(&g_base, &p);
	set64(erec(&p, 5) + 16, 1);
	EXPECT_BODY(&p, -EUCLEAN, "dir with size 1");
	p_free(&p);
	for (size_t i = 0; i < FSPF_ID_BYTES; i++) {
		p_copy(&g_base, &p);
		erec(&p, 5)[48 + i] = 1;
		if (!CHECK_INT(p_decode(&p, NULL), -EUCLEAN))
			tap_diag("dir with id byte %zu", i);
		p_free(&p);
	}
	p_copy(&g_base, &p);
	memcpy(erec(&p, 5) + 8, erec(&p, 4) + 8, 8);
	EXPECT_BODY(&p, -EUCLEAN, "dir with a target");
	p_free(&p);
	/* Files: no target. */
	p_copy(&g_base, &p);
	memcpy(erec(&p, 3) + 8, erec(&p, 4) + 8, 8);
	EXPECT_BODY(&p, -EUCLEAN, "file with a target");
	p_free(&p);
	p_copy(&g_base, &p);
	p_set_ref(erec(&p, 3) + 8, 1, 0);
	EXPECT_BODY(&p, -EUCLEAN, "file with a target offset");
	p_free(&p);
	/* Symlinks: size = target length, no id, a target. */
	p_copy(&g_base, &p);
	set64(erec(&p, 4) + 16, 2);
	EXPECT_BODY(&p, -EUCLEAN, "symlink size 2, target length 1");
	p_free(&p);
	p_copy(&g_base, &p);
	set64(erec(&p, 4) + 16, 0);
	EXPECT_BODY(&p, -EUCLEAN, "symlink size 0");
	p_free(&p);
	p_copy(&g_base, &p);
	erec(&p, 4)[63] = 1;
	EXPECT_BODY(&p, -EUCLEAN, "symlink with an id");
	p_free(&p);
	p_copy(&g_base, &p);
	p_set_ref(erec(&p, 4) + 8, 0, 0);
	set64(erec(&p, 4) + 16, 0);
	EXPECT_BODY(&p, -EUCLEAN, "symlink without target");
	p_free(&p);
}

static void test_body_strings(void)
{
	struct plain p;
	const uint32_t ss = (uint32_t)p_ss(&g_base);
	/* Bad (off, len) references of entry 2's path and entry 4's target. */
	const struct {
		uint32_t off, len;
	} refs[] = {
	    {ss, 1},
	    {ss - 6, 7},
	    {0, 0},
	    {ss, 0},
	    {UINT32_MAX, 2},
	    {2, UINT32_MAX},
	    {UINT32_MAX, UINT32_MAX},
	    {0, ss + 1},
	    {0, FSPF_PATH_MAX_BYTES},
	};

	for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
		p_copy(&g_base, &p);
		p_set_ref(erec(&p, 2), refs[i].off, refs[i].len);
		if (!CHECK_INT(p_decode(&p, NULL), -EUCLEAN))
			tap_diag("path ref (%u, %u)", refs[i].off, refs[i].len);
		p_free(&p);
		p_copy(&g_base, &p);
		p_set_ref(erec(&p, 4) + 8, refs[i].off, refs[i].len);
		set64(erec(&p, 4) + 16, refs[i].len);
		if (!CHECK_INT(p_decode(&p, NULL), -EUCLEAN))
			tap_diag("target ref (%u, %u)", refs[i].off,
				 refs[i].len);
		p_free(&p);
		p_copy(&g_base, &p);
		p_set_ref(rrec(&p, 2), refs[i].off, refs[i].len);
		if (!CHECK_INT(p_decode(&p, NULL), -EUCLEAN))
			tap_diag("region path ref (%u, %u)", refs[i].off,
				 refs[i].len);
		p_free(&p);
	}
	/* A NUL inside a path and inside a target. */
	p_copy(&g_base, &p);
	p_str(&p, erec(&p, 2))[5] = '\0'; /* "/data\0a" */
	EXPECT_BODY(&p, -EUCLEAN, "NUL in a path");
	p_free(&p);
	p_copy(&g_base, &p);
	p_str(&p, erec(&p, 4) + 8)[0] = '\0';
	EXPECT_BODY(&p, -EUCLEAN, "NUL in a target");
	p_free(&p);
	/* Entry paths that are not normal (sorted where entry 2 is). */
	{
		static const char *const bad[] = {
		    "/data/..",	 "/data//a", "/data/a/",
		    "/data/./a", "/data/.",  "data/a",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			uint32_t len = (uint32_t)strlen(bad[i]), off;

			p_copy(&g_base, &p);
			off = p_add_string(&p, bad[i], len);
			p_set_ref(erec(&p, 2), off, len);
			p_canon(&p);
			if (!CHECK_INT(p_decode(&p, NULL), -EUCLEAN))
				tap_diag("entry path \"%s\"", bad[i]);
			p_free(&p);
		}
	}
	/* Path length: 4095 bytes is fine, 4096 is not (entry 6 moves). */
	{
		char *long_path = malloc(FSPF_PATH_MAX_BYTES + 1);
		struct fspf *back = NULL;

		REQUIRE(long_path != NULL);
		memcpy(long_path, "/data/", 6);
		memset(long_path + 6, 'x', FSPF_PATH_MAX_BYTES - 6);
		for (uint32_t len = FSPF_PATH_MAX_BYTES - 1;
		     len <= FSPF_PATH_MAX_BYTES; len++) {
			uint32_t off;

			p_copy(&g_base, &p);
			off = p_add_string(&p, long_path, len);
			p_set_ref(erec(&p, 6), off, len);
			p_canon(&p);
			if (len < FSPF_PATH_MAX_BYTES) {
				CHECK_INT(p_decode(&p, &back), 0);
				if (back)
					CHECK_INT(
					    strlen(fspf_entry(back, 6)->path),
					    len);
				fspf_free(back);
				back = NULL;
			} else {
				EXPECT_BODY(&p, -EUCLEAN, "path of 4096 bytes");
			}
			p_free(&p);
		}
		/* 4095 bytes through the model: encodes and decodes. */
		{
			struct fspf *f = fspf_or_die();
			struct fspf_entry e = { 0 };
			const char *why, *bad;
			uint8_t *buf = NULL;
			size_t size;

			REQUIRE_INT(region(f, "/", "/k", FSPF_ENCRYPTED, 32, 4096), 0);
			e.path = strndup(long_path, FSPF_PATH_MAX_BYTES - 1);
			e.path[5] = '\0'; /* "/data" first: the parent */
			e.type = FSPF_DIR;
			REQUIRE_INT(fspf_entries_put(f, &e, 1, &why, &bad), 0);
			e.path = strndup(long_path, FSPF_PATH_MAX_BYTES - 1);
			e.type = FSPF_FILE;
			e.size = 1;
			REQUIRE_INT(fspf_entries_put(f, &e, 1, &why, &bad), 0);
			REQUIRE_INT(fspf_encode(f, NULL, &buf, &size, NULL), 0);
			CHECK_INT(fspf_decode(buf, size, NULL, &back, NULL), 0);
			if (back)
				CHECK_INT(strlen(fspf_entry(back, 1)->path),
					  FSPF_PATH_MAX_BYTES - 1);
			fspf_free(back);
			back = NULL;
			free(buf);
			fspf_free(f);
		}
		free(long_path);
	}
}

static void test_body_counts(void)
{
	struct plain p;
	uint8_t junk[32] = {0};

	/* File sizes that disagree with the chunk records. */
	{
		static const struct {
			size_t entry;
			uint64_t size;
			const char *what;
		} c[] = {
		    {2, 9096, "/data/a needs 3 chunks, has 2"},
		    {2, 4096, "/data/a needs 1 chunk, has 2"},
		    {3, 1, "/data/empty needs 1 chunk, has 0"},
		    {7, 0, "/k24/d needs 0 chunks, has 1"},
		    {0, UINT64_MAX, "/auth/c needs 2^55 chunks"},
		    {0, (uint64_t)1 << 63, "/auth/c needs 2^54 chunks"},
		};

		for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
			p_copy(&g_base, &p);
			set64(erec(&p, c[i].entry) + 16, c[i].size);
			EXPECT_BODY(&p, -EUCLEAN, c[i].what);
			p_free(&p);
		}
	}
	/* One chunk record too many, one too few. */
	p_copy(&g_base, &p);
	p_splice(&p, p_strings(&p), 0, junk, FSPF_CHUNK_RECORD_BYTES);
	set64(p.b + 24, M_CHUNKS + 1);
	EXPECT_BODY(&p, -EUCLEAN, "an extra chunk record");
	p_free(&p);
	p_copy(&g_base, &p);
	p_splice(&p, p_strings(&p) - FSPF_CHUNK_RECORD_BYTES,
		 FSPF_CHUNK_RECORD_BYTES, NULL, 0);
	set64(p.b + 24, M_CHUNKS - 1);
	EXPECT_BODY(&p, -EUCLEAN, "a missing chunk record");
	p_free(&p);
	/* A key byte too many, one too few. */
	p_copy(&g_base, &p);
	p_splice(&p, p.n - TAG, 0, junk, 1);
	set64(p.b + 40, M_KEYS + 1);
	EXPECT_BODY(&p, -EUCLEAN, "an extra key byte");
	p_free(&p);
	p_copy(&g_base, &p);
	p_splice(&p, p.n - TAG - 1, 1, NULL, 0);
	set64(p.b + 40, M_KEYS - 1);
	EXPECT_BODY(&p, -EUCLEAN, "a missing key byte");
	p_free(&p);
	p_copy(&g_base, &p);
	p_splice(&p, p.n - TAG, 0, junk, 32);
	set64(p.b + 40, M_KEYS + 32);
	EXPECT_BODY(&p, -EUCLEAN, "a whole extra key");
	p_free(&p);
	/* A file turned directory leaves its key unclaimed. */
	p_copy(&g_base, &p);
	erec(&p, 3)[36] = FSPF_DIR;
	memset(erec(&p, 3) + 48, 0, FSPF_ID_BYTES);
	EXPECT_BODY(&p, -EUCLEAN, "file /data/empty turned directory");
	p_free(&p);
	/* An extra entry record (zero-filled) and a missing one. */
	p_copy(&g_base, &p);
	p_splice(&p, p_chunks(&p), 0, junk, 32);
	p_splice(&p, p_chunks(&p), 0, junk, 32);
	set32(p.b + 20, 9);
	EXPECT_BODY(&p, -EUCLEAN, "an extra, empty entry record");
	p_free(&p);
	p_copy(&g_base, &p);
	p_splice(&p, p_chunks(&p) - FSPF_ENTRY_RECORD_BYTES,
		 FSPF_ENTRY_RECORD_BYTES, NULL, 0);
	set32(p.b + 20, 7);
	EXPECT_BODY(&p, -EUCLEAN, "last entry record missing");
	p_free(&p);
	/* An extra region record (zero-filled). */
	p_copy(&g_base, &p);
	p_splice(&p, p_entries(&p), 0, junk, 32);
	set32(p.b + 16, 7);
	EXPECT_BODY(&p, -EUCLEAN, "an extra, empty region record");
	p_free(&p);
}

/* ---- files ---- */

/* The lineage: 1.1 names it, 1.0 has none; newest first, at most 16. */
static void test_lineage(void)
{
	struct fspf *f = model(), *back = NULL;
	struct fsh_key *key = key_or_die();
	struct fspf_info info;
	const uint8_t *tags;
	uint8_t t[20][16], own[16], *buf;
	size_t n;

	for (int i = 0; i < 20; i++)
		memset(t[i], 0x40 + i, 16);
	CHECK_INT(fspf_lineage(f, &tags), 0);
	for (int i = 0; i < 3; i++)
		fspf_lineage_push(f, t[i]);
	REQUIRE_INT(fspf_encode(f, key, &buf, &n, own), 0);
	CHECK_INT(fspf_peek(buf, n, &info), 0);
	CHECK_INT(info.minor, 1);
	CHECK_INT(info.lineage_count, 3);
	CHECK_INT(get32(buf + 76), 3);
	CHECK(fsh_is_zero(buf + 80, 16));
	REQUIRE_INT(fspf_decode(buf, n, key, &back, NULL), 0);
	CHECK_INT(fspf_lineage(back, &tags), 3);
	CHECK_MEM(tags, t[2], 16); /* newest first */
	CHECK_MEM(tags + 32, t[0], 16);
	CHECK_INT(fspf_descent(back, own, own), 0);
	CHECK_INT(fspf_descent(back, own, t[2]), 1);
	CHECK_INT(fspf_descent(back, own, t[0]), 3);
	CHECK_INT(fspf_descent(back, own, t[3]), -1);
	CHECK_INT(fspf_descent(back, t[2], t[2]), 0);
	fspf_free(back);
	back = NULL;
	/* The header must agree with itself and with the size. */
	{
		static const struct {
			size_t off;
			uint32_t v;
		} bad[] = {
		    {10, 0},  /* 1.0 with a lineage */
		    {76, 0},  /* 1.1 without one */
		    {76, 2},  /* sizes no longer fit */
		    {76, 4},
		    {76, 17}, /* more than FSPF_LINEAGE_MAX */
		    {76, 0xffffffff},
		    {80, 1},  /* reserved */
		    {92, 0x1000000},
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			uint8_t save[4];

			memcpy(save, buf + bad[i].off, 4);
			if (bad[i].off == 10)
				set16(buf + 10, (uint16_t)bad[i].v);
			else
				set32(buf + bad[i].off, bad[i].v);
			if (!CHECK_INT(fspf_peek(buf, n, &info), -EUCLEAN))
				tap_diag("header case %zu", i);
			CHECK_INT(fspf_decode(buf, n, key, &back, NULL),
				  -EUCLEAN);
			memcpy(buf + bad[i].off, save, 4);
		}
	}
	/* A changed tag of the lineage breaks the seal. */
	buf[HDR + n - HDR - 16 - 1 - M_KEYS] ^= 1;
	CHECK_INT(fspf_decode(buf, n, key, &back, NULL), -EBADMSG);
	free(buf);
	/* Past 16, the oldest go; set and clear. */
	for (int i = 3; i < 20; i++)
		fspf_lineage_push(f, t[i]);
	CHECK_INT(fspf_lineage(f, &tags), FSPF_LINEAGE_MAX);
	CHECK_MEM(tags, t[19], 16);
	CHECK_MEM(tags + 15 * 16, t[4], 16);
	CHECK_INT(fspf_descent(f, own, t[4]), 16);
	CHECK_INT(fspf_descent(f, own, t[3]), -1);
	fspf_lineage_set(f, t[0], 2);
	CHECK_INT(fspf_lineage(f, &tags), 2);
	CHECK_MEM(tags + 16, t[1], 16);
	fspf_lineage_set(f, NULL, 0);
	CHECK_INT(fspf_lineage(f, &tags), 0);
	/* Without one: written as 1.0, as before lineages existed. */
	REQUIRE_INT(fspf_encode(f, key, &buf, &n, NULL), 0);
	CHECK_INT(fspf_peek(buf, n, &info), 0);
	CHECK_INT(info.minor, 0);
	CHECK_INT(info.lineage_count, 0);
	free(buf);
	fsh_key_free(key);
	fspf_free(f);
}

static void test_store_load(void)
{
	char dir[] = "/tmp/fspf-unit-XXXXXX", path[64];
	struct fspf *f = model(), *back = NULL;
	struct fsh_key *key = key_or_die();
	struct fspf_pending *pend = NULL;
	uint8_t tag[16], tag2[16];
	struct stat st;
	size_t files = 0;

	REQUIRE(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/x.fspf", dir);
	CHECK_INT(fspf_load(path, key, &back, NULL), -ENOENT);
	CHECK_INT(fspf_store(f, path, key, tag), 0);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0600);
	CHECK_INT(fspf_load(path, key, &back, tag2), 0);
	CHECK_MEM(tag2, tag, 16);
	if (back)
		models_equal(f, back);
	fspf_free(back);
	back = NULL;
	CHECK_INT(fspf_load(path, NULL, &back, NULL), -ENOKEY);
	CHECK_INT(fspf_load(dir, key, &back, NULL), -EMEDIUMTYPE);

	/* Begin then abort: the old file is untouched, no temporary left. */
	CHECK_INT(fspf_store_begin(f, path, NULL, &pend, tag2), 0);
	fspf_store_abort(pend);
	fspf_store_abort(NULL);
	CHECK_INT(fspf_load(path, key, &back, tag2), 0);
	CHECK_MEM(tag2, tag, 16);
	fspf_free(back);
	back = NULL;
	/* Begin then finish: the new one is in place. */
	CHECK_INT(fspf_store_begin(f, path, NULL, &pend, tag), 0);
	CHECK_INT(fspf_store_finish(pend), 0);
	CHECK_INT(fspf_load(path, NULL, &back, tag2), 0);
	CHECK_MEM(tag2, tag, 16);
	fspf_free(back);
	{
		DIR *d = opendir(dir);
		struct dirent *de;

		REQUIRE(d != NULL);
		while ((de = readdir(d)))
			files += de->d_name[0] != '.';
		closedir(d);
	}
	CHECK_INT(files, 1);
	/* Into a directory that does not exist. */
	snprintf(path, sizeof(path), "%s/none/x.fspf", dir);
	CHECK_INT(fspf_store(f, path, NULL, NULL), -ENOENT);
	snprintf(path, sizeof(path), "%s/x.fspf", dir);
	unlink(path);
	rmdir(dir);
	fsh_key_free(key);
	fspf_free(f);
}

static void test_strerror(void)
{
	static const int errs[] = {-EMEDIUMTYPE,  -EPROTONOSUPPORT, -EUCLEAN,
				   -EKEYREJECTED, -ENOKEY,	    -EBADMSG};

	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		const char *s = fspf_strerror(errs[i]);

		CHECK(s != NULL && *s);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(s, fspf_strerror(errs[j])) != 0);
	}
	CHECK(fspf_strerror(-ENOENT) != NULL);
}

int main(void)
{
	if (fsh_crypto_init() != 0) {
		printf("Bail out! fsh_crypto_init failed\n");
		return 1;
	}
	base_init();
	TAP_RUN(test_path_normalize);
	TAP_RUN(test_path_valid);
	TAP_RUN(test_path_contains);
	TAP_RUN(test_region_add_rules);
	TAP_RUN(test_region_order);
	TAP_RUN(test_region_kernel_overlap);
	TAP_RUN(test_region_kernel_spelling);
	TAP_RUN(test_region_kernel_relative);
	TAP_RUN(test_region_below_symlink);
	TAP_RUN(test_region_takeover);
	TAP_RUN(test_region_limit);
	TAP_RUN(test_region_lookup);
	TAP_RUN(test_entries_put_basic);
	TAP_RUN(test_entries_put_replace);
	TAP_RUN(test_entries_put_refused);
	TAP_RUN(test_chunk_count);
	TAP_RUN(test_chunk_encrypted);
	TAP_RUN(test_chunk_authenticated);
	TAP_RUN(test_roundtrip);
	TAP_RUN(test_roundtrip_empty);
	TAP_RUN(test_decode_then_edit);
	TAP_RUN(test_encode_refuses_broken_model);
	TAP_RUN(test_truncated);
	TAP_RUN(test_bit_flips);
	TAP_RUN(test_header_fields);
	TAP_RUN(test_lineage);
	TAP_RUN(test_reseal_control);
	TAP_RUN(test_body_region_records);
	TAP_RUN(test_body_entry_records);
	TAP_RUN(test_body_strings);
	TAP_RUN(test_body_counts);
	TAP_RUN(test_store_load);
	TAP_RUN(test_strerror);
	p_free(&g_base);
	fspf_free(g_model);
	return tap_done();
}
