// SPDX-License-Identifier: Apache-2.0
/*
 * crypto_bench: throughput of the chunk primitives on this machine, and of
 * the alternatives DESIGN.md weighed against them, measured in the same run
 * so that the ratios mean something:
 *
 *   (a) fsh_aead_seal/open (AES-256-GCM through our crypto core, OpenSSL)
 *   (b) libsodium crypto_aead_aes256gcm (one-shot and precomputed key)
 *   (c) fsh_aead_mac (GMAC) against keyed BLAKE2b (crypto_generichash) for
 *       authenticated chunks
 *   (d) fsh_nonce (OpenSSL DRBG) against randombytes_buf, per 12-byte nonce
 *   (e) fspf_chunk_seal/open, the whole per-chunk path addf and verify run
 *   (f) scaling: the same operations in one thread per CPU at once
 *
 * It prints figures and ratios; it never judges them (no thresholds). The
 * only failure is a wrong answer: both AES-GCM backends must agree byte for
 * byte, and every seal must open.
 *
 * Usage: crypto_bench [--seconds S] [--chunk BYTES] [--threads N]
 * Environment: CRYPTO_BENCH_SECONDS (default 1 per measurement).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sodium.h>

#include "fsh_crypto.h"
#include "fspf.h"

#define AD_BYTES 32 /* the chunk AD: id[16] || le64 index || le32 len || le32 domain */
#define REPEAT_COUNT 3 /* best of */
#define NONCE_BATCH_COUNT 2048 /* nonces of one 8 MiB addf segment */

static double g_seconds = 1.0;
static size_t g_chunk = 4096;
static unsigned g_threads;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "crypto_bench: error: %s\n", what);
	exit(1);
}

/*
 * One operation under test; it returns 0 or fails the run. @arg is the
 * case's state. It is called in batches between clock reads.
 */
typedef int (*op_fn)(void *arg);

/* Operations per second of @op: best of REPEAT_COUNT runs of g_seconds each. */
static double measure(op_fn op, void *arg)
{
	double best = 0;

	for (int i = 0; i < 64; i++) /* warm up caches, DRBG, key tables */
		if (op(arg))
			die("operation failed during warm-up");
	for (int r = 0; r < REPEAT_COUNT; r++) {
		double t0 = now_s(), t;
		uint64_t n = 0;

		do {
			for (int k = 0; k < 64; k++)
				if (op(arg))
					die("operation failed");
			n += 64;
			t = now_s() - t0;
		} while (t < g_seconds / REPEAT_COUNT);
		if (n / t > best)
			best = n / t;
	}
	return best;
}

static double mbps(double ops, size_t bytes)
{
	return ops * (double)bytes / 1e6;
}

/* ---- the cases ---- */

struct state {
	uint8_t key[32];
	uint8_t nonce[FSH_NONCE_BYTES];
	uint8_t ad[AD_BYTES];
	uint8_t tag[FSH_TAG_BYTES];
	uint8_t *plain; /* g_chunk bytes */
	uint8_t *buf;   /* g_chunk bytes, work area */
	struct fsh_aead *aead;
	crypto_aead_aes256gcm_state *sodium_ctx; /* NULL without AES-NI */
	/* fspf_chunk_seal/open */
	struct fspf *fspf;
	struct fspf_entry *entry; /* in the fspf's table */
	const struct fspf_region *region;
	uint64_t index;
	uint8_t (*nonces)[FSH_NONCE_BYTES];
};

static int op_fsh_seal(void *arg)
{
	struct state *s = arg;
	struct fsh_span span = { s->plain, s->buf, g_chunk };

	return fsh_aead_seal(s->aead, s->nonce, s->ad, AD_BYTES, &span, 1,
			     s->tag);
}

/* Opens the ciphertext and tag that cross_check() left in s->buf and s->tag. */
static int op_fsh_open(void *arg)
{
	struct state *s = arg;
	struct fsh_span span = { s->buf, s->plain, g_chunk };

	return fsh_aead_open(s->aead, s->nonce, s->ad, AD_BYTES, &span, 1,
			     s->tag);
}

static int op_sodium_seal(void *arg)
{
	struct state *s = arg;

	return crypto_aead_aes256gcm_encrypt_detached(
		s->buf, s->tag, NULL, s->plain, g_chunk, s->ad, AD_BYTES, NULL,
		s->nonce, s->key);
}

static int op_sodium_open(void *arg)
{
	struct state *s = arg;

	return crypto_aead_aes256gcm_decrypt_detached(
		s->plain, NULL, s->buf, g_chunk, s->tag, s->ad, AD_BYTES,
		s->nonce, s->key);
}

static int op_sodium_seal_afternm(void *arg)
{
	struct state *s = arg;

	return crypto_aead_aes256gcm_encrypt_detached_afternm(
		s->buf, s->tag, NULL, s->plain, g_chunk, s->ad, AD_BYTES, NULL,
		s->nonce, s->sodium_ctx);
}

static int op_sodium_open_afternm(void *arg)
{
	struct state *s = arg;

	return crypto_aead_aes256gcm_decrypt_detached_afternm(
		s->plain, NULL, s->buf, g_chunk, s->tag, s->ad, AD_BYTES,
		s->nonce, s->sodium_ctx);
}

static int op_gmac(void *arg)
{
	struct state *s = arg;

	return fsh_aead_mac(s->aead, s->nonce, s->ad, AD_BYTES, s->plain,
			    g_chunk, s->tag);
}

static int op_gmac_verify(void *arg)
{
	struct state *s = arg;

	return fsh_aead_mac_verify(s->aead, s->nonce, s->ad, AD_BYTES, s->plain,
				   g_chunk, s->tag);
}

/* What an authenticated chunk costs by GMAC: a fresh nonce and the MAC. */
static int op_gmac_with_nonce(void *arg)
{
	struct state *s = arg;
	int err = fsh_nonce(s->nonce);

	return err ? err : op_gmac(arg);
}

/* The keyed-hash alternative: BLAKE2b-128 keyed with 32 bytes over AD || chunk. */
static int op_blake2b(void *arg)
{
	struct state *s = arg;
	crypto_generichash_state st;

	if (crypto_generichash_init(&st, s->key, 32, FSH_TAG_BYTES) ||
	    crypto_generichash_update(&st, s->ad, AD_BYTES) ||
	    crypto_generichash_update(&st, s->plain, g_chunk) ||
	    crypto_generichash_final(&st, s->tag, FSH_TAG_BYTES))
		return -EIO;
	return 0;
}

static int op_blake2b_verify(void *arg)
{
	struct state *s = arg;
	uint8_t want[FSH_TAG_BYTES];
	int err;

	memcpy(want, s->tag, sizeof(want));
	err = op_blake2b(arg);
	if (!err && sodium_memcmp(want, s->tag, sizeof(want)))
		err = -EBADMSG;
	return err;
}

static int op_nonce_fsh(void *arg)
{
	struct state *s = arg;

	return fsh_nonce(s->nonce);
}

static int op_nonce_sodium(void *arg)
{
	struct state *s = arg;

	randombytes_buf(s->nonce, FSH_NONCE_BYTES);
	return 0;
}

/* One RAND_bytes call for a whole segment's nonces: per call, not per nonce. */
static int op_nonce_batch(void *arg)
{
	struct state *s = arg;

	return RAND_bytes((uint8_t *)s->nonces,
			  NONCE_BATCH_COUNT * FSH_NONCE_BYTES) == 1
		       ? 0
		       : -EIO;
}

static int op_chunk_seal(void *arg)
{
	struct state *s = arg;
	int err = fspf_chunk_seal(s->aead, s->region, s->entry, s->index,
				  s->plain, s->buf, g_chunk);

	s->index = (s->index + 1) % s->entry->chunk_count;
	return err;
}

/*
 * What addf does: fspf_chunks_seal over a run of BATCH_CHUNKS chunks (nonces
 * drawn in one call). Counted per chunk by the caller.
 */
#define BATCH_CHUNKS 64
static int op_chunks_seal(void *arg)
{
	static uint8_t *buf;
	struct state *s = arg;

	if (!buf && !(buf = calloc(BATCH_CHUNKS, g_chunk)))
		return -ENOMEM;
	return fspf_chunks_seal(s->aead, s->region, s->entry, 0, buf, buf,
				BATCH_CHUNKS * g_chunk);
}

/* Opens chunk 0, sealed in s->buf by setup; s->plain receives it. */
static int op_chunk_open(void *arg)
{
	struct state *s = arg;

	return fspf_chunk_open(s->aead, s->region, s->entry, 0, s->buf,
			       s->plain, g_chunk);
}

/* ---- setup ---- */

#define CHUNKS_PER_ENTRY 4096u

static void state_init(struct state *s, uint8_t protection)
{
	struct fspf_region r = {
		.path = "/",
		.kernel = "/nonexistent-bench",
		.protection = protection,
		.storage = FSPF_KERNEL,
		.key_size = 32,
		.chunk_size = (uint32_t)g_chunk,
	};
	struct fspf_entry e = { 0 };
	const char *why, *bad;

	memset(s, 0, sizeof(*s));
	s->plain = malloc(g_chunk);
	s->buf = malloc(g_chunk);
	s->nonces = malloc(NONCE_BATCH_COUNT * FSH_NONCE_BYTES);
	if (!s->plain || !s->buf || !s->nonces)
		die("out of memory");
	fsh_random(s->key, sizeof(s->key));
	fsh_random(s->nonce, sizeof(s->nonce));
	fsh_random(s->ad, sizeof(s->ad));
	fsh_random(s->plain, g_chunk);
	if (fsh_aead_new(s->key, sizeof(s->key), &s->aead))
		die("fsh_aead_new failed");
	if (crypto_aead_aes256gcm_is_available()) {
		s->sodium_ctx = sodium_malloc(sizeof(*s->sodium_ctx));
		if (!s->sodium_ctx ||
		    crypto_aead_aes256gcm_beforenm(s->sodium_ctx, s->key))
			die("crypto_aead_aes256gcm_beforenm failed");
	}

	/* A one-file fspf for the chunk path, keyed by the entry's own key. */
	if (fspf_new(&s->fspf))
		die("fspf_new failed");
	r.path = strdup(r.path);
	r.kernel = strdup(r.kernel);
	if (!r.path || !r.kernel || fspf_region_add(s->fspf, &r, &why))
		die("fspf_region_add failed");
	e.path = strdup("/bench");
	e.type = FSPF_FILE;
	e.mode = 0644;
	e.size = (uint64_t)CHUNKS_PER_ENTRY * g_chunk;
	if (!e.path || fspf_entries_put(s->fspf, &e, 1, &why, &bad))
		die("fspf_entries_put failed");
	s->entry = fspf_entry_find(s->fspf, "/bench");
	if (!s->entry)
		die("fspf_entry_find failed");
	s->region = fspf_entry_region(s->fspf, s->entry);
	fsh_aead_free(s->aead);
	if (fsh_aead_new(fspf_entry_key(s->fspf, s->entry), s->region->key_size,
			 &s->aead))
		die("fsh_aead_new failed");
	free(r.path);
	free(r.kernel);
}

/*
 * Seal chunk 0 into s->buf for the open benchmark (op_chunk_seal overwrites
 * the records and s->buf, so this runs right before measuring op_chunk_open).
 */
static void prepare_chunk_open(struct state *s)
{
	if (fspf_chunk_seal(s->aead, s->region, s->entry, 0, s->plain, s->buf,
			    g_chunk))
		die("fspf_chunk_seal failed");
	if (s->region->protection == FSPF_AUTHENTICATED)
		memcpy(s->buf, s->plain, g_chunk);
}

/* A context for the raw primitives under s->key (setup rebinds s->aead). */
static void state_raw_key(struct state *s)
{
	fsh_aead_free(s->aead);
	if (fsh_aead_new(s->key, sizeof(s->key), &s->aead))
		die("fsh_aead_new failed");
}

static void state_free(struct state *s)
{
	fsh_aead_free(s->aead);
	sodium_free(s->sodium_ctx);
	fspf_free(s->fspf);
	free(s->plain);
	free(s->buf);
	free(s->nonces);
}

/* Both AES-256-GCM backends must produce the same ciphertext and tag. */
static void cross_check(struct state *s)
{
	uint8_t *c1 = malloc(g_chunk), *c2 = malloc(g_chunk), *p = malloc(g_chunk);
	uint8_t t1[FSH_TAG_BYTES], t2[FSH_TAG_BYTES];
	struct fsh_span span = { s->plain, c1, g_chunk };
	struct fsh_span back = { c1, p, g_chunk };

	if (!c1 || !c2 || !p)
		die("out of memory");
	if (fsh_aead_seal(s->aead, s->nonce, s->ad, AD_BYTES, &span, 1, t1) ||
	    fsh_aead_open(s->aead, s->nonce, s->ad, AD_BYTES, &back, 1, t1) ||
	    memcmp(p, s->plain, g_chunk))
		die("fsh_aead_seal/open do not round-trip");
	if (s->sodium_ctx) {
		if (crypto_aead_aes256gcm_encrypt_detached(c2, t2, NULL, s->plain,
							   g_chunk, s->ad,
							   AD_BYTES, NULL,
							   s->nonce, s->key) ||
		    memcmp(c1, c2, g_chunk) || memcmp(t1, t2, sizeof(t1)))
			die("OpenSSL and libsodium AES-256-GCM disagree");
	}
	/* Leave a valid ciphertext and tag in s->buf / s->tag for the open cases. */
	memcpy(s->buf, c1, g_chunk);
	memcpy(s->tag, t1, sizeof(t1));
	free(c1);
	free(c2);
	free(p);
}

/* ---- all cores ---- */

struct mt_arg {
	pthread_barrier_t *barrier;
	uint8_t protection;
	bool raw_key; /* the raw primitives (state_raw_key) rather than an entry's key */
	op_fn op;
	double seconds;
	uint64_t ops;
	double elapsed;
	int err;
};

static void *mt_main(void *p)
{
	struct mt_arg *a = p;
	struct state s;
	double t0, t = 0;

	state_init(&s, a->protection);
	if (a->raw_key) {
		state_raw_key(&s);
		cross_check(&s);
	}
	pthread_barrier_wait(a->barrier);
	t0 = now_s();
	do {
		for (int k = 0; k < 64 && !a->err; k++)
			a->err = a->op(&s);
		a->ops += 64;
		t = now_s() - t0;
	} while (t < a->seconds && !a->err);
	a->elapsed = t;
	state_free(&s);
	return NULL;
}

/*
 * Aggregate operations per second of @op in @threads threads at once, best
 * of REPEAT_COUNT runs like measure().
 */
static double measure_mt(op_fn op, uint8_t protection, bool raw_key,
			 unsigned threads)
{
	pthread_t *tid = calloc(threads, sizeof(*tid));
	struct mt_arg *args = calloc(threads, sizeof(*args));
	pthread_barrier_t barrier;
	double best = 0;

	if (!tid || !args)
		die("out of memory");
	for (int r = 0; r < REPEAT_COUNT; r++) {
		double total = 0;

		pthread_barrier_init(&barrier, NULL, threads);
		for (unsigned i = 0; i < threads; i++) {
			args[i] = (struct mt_arg){ &barrier, protection, raw_key,
						   op, g_seconds / REPEAT_COUNT,
						   0, 0, 0 };
			if (pthread_create(&tid[i], NULL, mt_main, &args[i]))
				die("pthread_create failed");
		}
		for (unsigned i = 0; i < threads; i++) {
			pthread_join(tid[i], NULL);
			if (args[i].err)
				die("operation failed in a thread");
			total += args[i].ops / args[i].elapsed;
		}
		pthread_barrier_destroy(&barrier);
		if (total > best)
			best = total;
	}
	free(tid);
	free(args);
	return best;
}

/* ---- report ---- */

/* Other processes skew every figure: say how busy the machine was. */
static void print_loadavg(const char *when)
{
	char buf[128] = "unknown";
	FILE *f = fopen("/proc/loadavg", "r");

	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			strcpy(buf, "unknown");
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
	printf("  load average %s: %s\n", when, buf);
}

static void row(const char *name, double ops, size_t bytes)
{
	printf("  %-46s %10.1f MB/s  %8.1f ns/op\n", name, mbps(ops, bytes),
	       1e9 / ops);
}

static void ratio(const char *what, double r)
{
	printf("  ratio %-52s %6.2fx\n", what, r);
}

static void usage(void)
{
	fprintf(stderr, "usage: crypto_bench [--seconds S] [--chunk BYTES] [--threads N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *env = getenv("CRYPTO_BENCH_SECONDS");
	struct state s;
	double seal, open_, so_seal = 0, so_open = 0, so_seal_nm = 0,
			    so_open_nm = 0, gmac, gmac_v, gmac_n, b2, b2_v, n_fsh,
			    n_so, n_batch, c_seal_e, c_batch_e, c_open_e, c_seal_a, c_open_a,
			    mt_seal, mt_nonce, mt_nonce_so, mt_e, mt_a;
	bool sodium_aes;

	if (env)
		g_seconds = strtod(env, NULL);
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (!strcmp(argv[i], "--seconds"))
			g_seconds = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--chunk"))
			g_chunk = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--threads"))
			g_threads = (unsigned)strtoul(argv[++i], NULL, 0);
		else
			usage();
	}
	if (g_seconds <= 0 || g_chunk < FSPF_MIN_CHUNK_BYTES ||
	    g_chunk > FSPF_MAX_CHUNK_BYTES)
		usage();
	if (!g_threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		g_threads = n > 0 ? (unsigned)n : 1;
	}
	if (fsh_crypto_init())
		die("fsh_crypto_init failed");
	sodium_aes = crypto_aead_aes256gcm_is_available();

	printf("crypto_bench: %zu-byte chunks, %d bytes of AD, best of %d x %.2f s per figure\n",
	       g_chunk, AD_BYTES, REPEAT_COUNT, g_seconds / REPEAT_COUNT);
	printf("  %s, libsodium %s, %u online CPUs; MB = 10^6 bytes\n",
	       OpenSSL_version(OPENSSL_VERSION), sodium_version_string(),
	       g_threads);
	print_loadavg("before");

	state_init(&s, FSPF_ENCRYPTED);
	state_raw_key(&s);
	cross_check(&s);

	printf("\n(a) AES-256-GCM, our crypto core (OpenSSL EVP, key schedule kept per context)\n");
	seal = measure(op_fsh_seal, &s);
	row("fsh_aead_seal", seal, g_chunk);
	open_ = measure(op_fsh_open, &s);
	row("fsh_aead_open", open_, g_chunk);

	printf("\n(b) AES-256-GCM, libsodium (alternative backend)\n");
	if (sodium_aes) {
		cross_check(&s);
		so_seal = measure(op_sodium_seal, &s);
		row("crypto_aead_aes256gcm_encrypt_detached", so_seal, g_chunk);
		so_open = measure(op_sodium_open, &s);
		row("crypto_aead_aes256gcm_decrypt_detached", so_open, g_chunk);
		so_seal_nm = measure(op_sodium_seal_afternm, &s);
		row("  ..._encrypt_detached_afternm (beforenm)", so_seal_nm, g_chunk);
		so_open_nm = measure(op_sodium_open_afternm, &s);
		row("  ..._decrypt_detached_afternm (beforenm)", so_open_nm, g_chunk);
		ratio("seal: fsh / libsodium (one-shot)", seal / so_seal);
		ratio("seal: fsh / libsodium (precomputed key)", seal / so_seal_nm);
		ratio("open: fsh / libsodium (one-shot)", open_ / so_open);
		ratio("open: fsh / libsodium (precomputed key)", open_ / so_open_nm);
	} else {
		printf("  not available on this CPU (libsodium needs AES-NI and PCLMUL)\n");
	}

	printf("\n(c) authenticated chunks: GMAC (fsh_aead_mac) vs keyed BLAKE2b-128\n");
	gmac = measure(op_gmac, &s);
	row("fsh_aead_mac (GMAC)", gmac, g_chunk);
	if (op_gmac(&s))
		die("fsh_aead_mac failed");
	gmac_v = measure(op_gmac_verify, &s);
	row("fsh_aead_mac_verify", gmac_v, g_chunk);
	gmac_n = measure(op_gmac_with_nonce, &s);
	row("fsh_nonce + fsh_aead_mac (a sealed chunk)", gmac_n, g_chunk);
	b2 = measure(op_blake2b, &s);
	row("crypto_generichash keyed (BLAKE2b-128)", b2, g_chunk);
	b2_v = measure(op_blake2b_verify, &s);
	row("crypto_generichash keyed + sodium_memcmp", b2_v, g_chunk);
	ratio("MAC:    GMAC / BLAKE2b", gmac / b2);
	ratio("verify: GMAC / BLAKE2b", gmac_v / b2_v);
	ratio("seal incl. nonce: GMAC+nonce / BLAKE2b (no nonce)", gmac_n / b2);
	ratio("GMAC / AES-GCM seal (authenticated vs encrypted)", gmac / seal);

	printf("\n(d) nonces: per 12-byte nonce\n");
	n_fsh = measure(op_nonce_fsh, &s);
	printf("  %-46s %10.2f M/s   %8.1f ns/nonce\n", "fsh_nonce (OpenSSL RAND_bytes)",
	       n_fsh / 1e6, 1e9 / n_fsh);
	n_so = measure(op_nonce_sodium, &s);
	printf("  %-46s %10.2f M/s   %8.1f ns/nonce\n", "randombytes_buf (libsodium)",
	       n_so / 1e6, 1e9 / n_so);
	n_batch = measure(op_nonce_batch, &s) * NONCE_BATCH_COUNT;
	printf("  %-46s %10.2f M/s   %8.1f ns/nonce\n",
	       "RAND_bytes, 2048 nonces per call (batched)", n_batch / 1e6,
	       1e9 / n_batch);
	ratio("fsh_nonce / randombytes_buf (nonces per second)", n_fsh / n_so);
	ratio("batched RAND_bytes / fsh_nonce (nonces per second)", n_batch / n_fsh);
	printf("  fsh_nonce takes %.1f%% of the time of one %zu-byte AES-GCM seal\n",
	       100.0 * seal / n_fsh, g_chunk);

	state_free(&s);

	printf("\n(e) the whole chunk path: fspf_chunk_seal/open (nonce + AD + AEAD)\n");
	state_init(&s, FSPF_ENCRYPTED);
	c_seal_e = measure(op_chunk_seal, &s);
	row("fspf_chunk_seal, encrypted", c_seal_e, g_chunk);
	c_batch_e = measure(op_chunks_seal, &s) * BATCH_CHUNKS;
	row("fspf_chunks_seal (64 per call), encrypted", c_batch_e, g_chunk);
	prepare_chunk_open(&s);
	c_open_e = measure(op_chunk_open, &s);
	row("fspf_chunk_open, encrypted", c_open_e, g_chunk);
	state_free(&s);
	state_init(&s, FSPF_AUTHENTICATED);
	c_seal_a = measure(op_chunk_seal, &s);
	row("fspf_chunk_seal, authenticated", c_seal_a, g_chunk);
	prepare_chunk_open(&s);
	c_open_a = measure(op_chunk_open, &s);
	row("fspf_chunk_open, authenticated", c_open_a, g_chunk);
	state_free(&s);
	ratio("fspf_chunk_seal (encrypted) / fsh_aead_seal", c_seal_e / seal);
	ratio("fspf_chunks_seal (encrypted, batched) / fsh_aead_seal",
	      c_batch_e / seal);
	ratio("fspf_chunk_open (encrypted) / fsh_aead_open", c_open_e / open_);

	printf("\n(f) scaling: %u threads at once, aggregate (one context and buffer per thread)\n",
	       g_threads);
	mt_seal = measure_mt(op_fsh_seal, FSPF_ENCRYPTED, true, g_threads);
	row("fsh_aead_seal, all threads", mt_seal, g_chunk);
	mt_nonce = measure_mt(op_nonce_fsh, FSPF_ENCRYPTED, true, g_threads);
	printf("  %-46s %10.2f M/s   %8.1f ns/nonce\n", "fsh_nonce, all threads",
	       mt_nonce / 1e6, 1e9 / mt_nonce);
	mt_nonce_so = measure_mt(op_nonce_sodium, FSPF_ENCRYPTED, true, g_threads);
	printf("  %-46s %10.2f M/s   %8.1f ns/nonce\n", "randombytes_buf, all threads",
	       mt_nonce_so / 1e6, 1e9 / mt_nonce_so);
	mt_e = measure_mt(op_chunk_seal, FSPF_ENCRYPTED, false, g_threads);
	row("fspf_chunk_seal, encrypted, all threads", mt_e, g_chunk);
	mt_a = measure_mt(op_chunk_seal, FSPF_AUTHENTICATED, false, g_threads);
	row("fspf_chunk_seal, authenticated, all threads", mt_a, g_chunk);
	ratio("all threads / one thread: fsh_aead_seal", mt_seal / seal);
	ratio("all threads / one thread: fsh_nonce", mt_nonce / n_fsh);
	ratio("all threads / one thread: randombytes_buf", mt_nonce_so / n_so);
	ratio("all threads / one thread: fspf_chunk_seal, encrypted", mt_e / c_seal_e);
	ratio("all threads / one thread: fspf_chunk_seal, authent.", mt_a / c_seal_a);
	printf("  (fspf_chunk_seal on all threads is the crypto ceiling of addf here)\n");
	if (g_threads > 1 && mt_seal / seal < 0.75 * g_threads)
		printf("  note: fsh_aead_seal shares nothing between threads, yet scaled only %.2fx on %u threads:\n"
		       "        other processes were using the CPUs; section (f) is not meaningful in this run\n",
		       mt_seal / seal, g_threads);
	print_loadavg("after");

	printf("\nsummary: AES-256-GCM seal %.0f MB/s (OpenSSL) vs %.0f MB/s (libsodium); "
	       "GMAC %.0f MB/s vs BLAKE2b %.0f MB/s; nonce %.0f ns (OpenSSL) vs %.0f ns (libsodium)\n",
	       mbps(seal, g_chunk), sodium_aes ? mbps(so_seal_nm, g_chunk) : 0.0,
	       mbps(gmac, g_chunk), mbps(b2, g_chunk), 1e9 / n_fsh, 1e9 / n_so);
	return 0;
}
