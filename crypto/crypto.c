// SPDX-License-Identifier: Apache-2.0
/*
 * The crypto core. OpenSSL does bulk AES-GCM (it is the fastest AES-GCM on
 * this class of machine); libsodium does secret memory, randomness, the key
 * check hash and constant-time comparisons.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sodium.h>

#include "fsh_crypto.h"

/* EVP lengths are int: feed it at most this much per call. */
#define EVP_PIECE_BYTES (1u << 30)

static const char KEY_CHECK_LABEL[] = "fshield fspf key check v1";

struct fsh_key {
	size_t size;
	uint8_t bytes[FSH_KEY_MAX_BYTES];
};

struct fsh_aead {
	EVP_CIPHER_CTX *ctx;
};

static pthread_once_t g_init_once = PTHREAD_ONCE_INIT;
static int g_init_status;

static void init_once(void)
{
	g_init_status = sodium_init() < 0 ? -EIO : 0;
}

int fsh_crypto_init(void)
{
	pthread_once(&g_init_once, init_once);
	return g_init_status;
}

/*
 * The one translation of OpenSSL failures: drop the error queue (a library
 * prints nothing) and report an I/O-class error.
 */
static int openssl_error(void)
{
	ERR_clear_error();
	return -EIO;
}

void fsh_random(void *buf, size_t size)
{
	(void)fsh_crypto_init();
	randombytes_buf(buf, size);
}

int fsh_nonces(uint8_t *nonces, size_t count)
{
	size_t size = count * FSH_NONCE_BYTES;

	if (count > SIZE_MAX / FSH_NONCE_BYTES)
		return -EINVAL;
	while (size) {
		size_t n = size < EVP_PIECE_BYTES ? size : EVP_PIECE_BYTES;

		if (RAND_bytes(nonces, (int)n) != 1)
			return openssl_error();
		nonces += n;
		size -= n;
	}
	return 0;
}

int fsh_nonce(uint8_t nonce[FSH_NONCE_BYTES])
{
	return fsh_nonces(nonce, 1);
}

bool fsh_memeq(const void *a, const void *b, size_t size)
{
	return sodium_memcmp(a, b, size) == 0;
}

bool fsh_is_zero(const void *buf, size_t size)
{
	return sodium_is_zero(buf, size) == 1;
}

void fsh_wipe(void *buf, size_t size)
{
	if (buf)
		sodium_memzero(buf, size);
}

void *fsh_secure_alloc(size_t size)
{
	void *p;

	if (fsh_crypto_init() < 0)
		return NULL;
	p = sodium_malloc(size ? size : 1);
	if (p)
		sodium_memzero(p, size ? size : 1);
	return p;
}

void fsh_secure_free(void *ptr)
{
	sodium_free(ptr); /* wipes, unlocks, NULL-safe */
}

static bool key_size_ok(size_t size)
{
	return size == 16 || size == 24 || size == 32;
}

int fsh_key_new(size_t size, struct fsh_key **key_ret)
{
	struct fsh_key *key;

	if (!key_size_ok(size))
		return -EINVAL;
	key = fsh_secure_alloc(sizeof(*key));
	if (!key)
		return -ENOMEM;
	key->size = size;
	*key_ret = key;
	return 0;
}

int fsh_key_generate(size_t size, struct fsh_key **key_ret)
{
	struct fsh_key *key;
	int err = fsh_key_new(size, &key);

	if (err)
		return err;
	fsh_random(key->bytes, size);
	*key_ret = key;
	return 0;
}

int fsh_key_from_hex(const char *hex, size_t hex_size, size_t size,
		     struct fsh_key **key_ret)
{
	struct fsh_key *key;
	int err = fsh_key_new(size, &key);

	if (err)
		return err;
	err = fsh_hex_decode(hex, hex_size, key->bytes, size);
	if (err) {
		fsh_key_free(key);
		return err;
	}
	*key_ret = key;
	return 0;
}

int fsh_key_dup(const struct fsh_key *key, struct fsh_key **key_ret)
{
	struct fsh_key *copy;
	int err = fsh_key_new(key->size, &copy);

	if (err)
		return err;
	memcpy(copy->bytes, key->bytes, key->size);
	*key_ret = copy;
	return 0;
}

void fsh_key_free(struct fsh_key *key)
{
	fsh_secure_free(key);
}

const uint8_t *fsh_key_bytes(const struct fsh_key *key)
{
	return key->bytes;
}

uint8_t *fsh_key_bytes_mut(struct fsh_key *key)
{
	return key->bytes;
}

size_t fsh_key_size(const struct fsh_key *key)
{
	return key->size;
}

bool fsh_key_is_zero(const struct fsh_key *key)
{
	return fsh_is_zero(key->bytes, key->size);
}

void fsh_key_check(const struct fsh_key *key,
		   uint8_t check[FSH_KEY_CHECK_BYTES])
{
	(void)fsh_crypto_init();
	crypto_generichash(check, FSH_KEY_CHECK_BYTES,
			   (const uint8_t *)KEY_CHECK_LABEL,
			   sizeof(KEY_CHECK_LABEL) - 1, key->bytes, key->size);
}

static const EVP_CIPHER *gcm_cipher(size_t key_size)
{
	switch (key_size) {
	case 16:
		return EVP_aes_128_gcm();
	case 24:
		return EVP_aes_192_gcm();
	case 32:
		return EVP_aes_256_gcm();
	default:
		return NULL;
	}
}

int fsh_aead_new(const uint8_t *key, size_t key_size,
		 struct fsh_aead **aead_ret)
{
	const EVP_CIPHER *cipher = gcm_cipher(key_size);
	struct fsh_aead *aead;

	if (!cipher)
		return -EINVAL;
	aead = calloc(1, sizeof(*aead));
	if (!aead)
		return -ENOMEM;
	aead->ctx = EVP_CIPHER_CTX_new();
	if (!aead->ctx) {
		free(aead);
		return -ENOMEM;
	}
	/* The key schedule is computed once here; each message only sets a nonce. */
	if (EVP_EncryptInit_ex(aead->ctx, cipher, NULL, key, NULL) != 1) {
		fsh_aead_free(aead);
		return openssl_error();
	}
	*aead_ret = aead;
	return 0;
}

void fsh_aead_free(struct fsh_aead *aead)
{
	if (!aead)
		return;
	EVP_CIPHER_CTX_free(aead->ctx); /* cleanses the key schedule */
	free(aead);
}

static int feed_ad(EVP_CIPHER_CTX *ctx, const uint8_t *ad, size_t size)
{
	int outl;

	while (size) {
		size_t n = size < EVP_PIECE_BYTES ? size : EVP_PIECE_BYTES;

		if (EVP_CipherUpdate(ctx, NULL, &outl, ad, (int)n) != 1)
			return openssl_error();
		ad += n;
		size -= n;
	}
	return 0;
}

static int feed_span(EVP_CIPHER_CTX *ctx, const struct fsh_span *span)
{
	const uint8_t *in = span->in;
	uint8_t *out = span->out;
	size_t size = span->size;
	int outl;

	while (size) {
		size_t n = size < EVP_PIECE_BYTES ? size : EVP_PIECE_BYTES;

		if (EVP_CipherUpdate(ctx, out, &outl, in, (int)n) != 1 ||
		    (size_t)outl != n)
			return openssl_error();
		in += n;
		out += n;
		size -= n;
	}
	return 0;
}

static int start(struct fsh_aead *aead, const uint8_t *nonce, int enc,
		 const void *ad, size_t ad_size)
{
	if (EVP_CipherInit_ex(aead->ctx, NULL, NULL, NULL, nonce, enc) != 1)
		return openssl_error();
	return feed_ad(aead->ctx, ad, ad_size);
}

int fsh_aead_seal(struct fsh_aead *aead, const uint8_t nonce[FSH_NONCE_BYTES],
		  const void *ad, size_t ad_size, const struct fsh_span *spans,
		  size_t span_count, uint8_t tag[FSH_TAG_BYTES])
{
	uint8_t scratch[16];
	int outl, err;

	err = start(aead, nonce, 1, ad, ad_size);
	for (size_t i = 0; !err && i < span_count; i++)
		err = feed_span(aead->ctx, &spans[i]);
	if (err)
		return err;
	if (EVP_EncryptFinal_ex(aead->ctx, scratch, &outl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(aead->ctx, EVP_CTRL_GCM_GET_TAG, FSH_TAG_BYTES,
				tag) != 1)
		return openssl_error();
	return 0;
}

static void wipe_spans(const struct fsh_span *spans, size_t span_count)
{
	for (size_t i = 0; i < span_count; i++)
		fsh_wipe(spans[i].out, spans[i].size);
}

int fsh_aead_open(struct fsh_aead *aead, const uint8_t nonce[FSH_NONCE_BYTES],
		  const void *ad, size_t ad_size, const struct fsh_span *spans,
		  size_t span_count, const uint8_t tag[FSH_TAG_BYTES])
{
	uint8_t scratch[16];
	uint8_t want[FSH_TAG_BYTES];
	int outl, err;

	err = start(aead, nonce, 0, ad, ad_size);
	for (size_t i = 0; !err && i < span_count; i++)
		err = feed_span(aead->ctx, &spans[i]);
	if (err)
		goto fail;
	memcpy(want, tag, FSH_TAG_BYTES);
	if (EVP_CIPHER_CTX_ctrl(aead->ctx, EVP_CTRL_GCM_SET_TAG, FSH_TAG_BYTES,
				want) != 1) {
		err = openssl_error();
		goto fail;
	}
	/* OpenSSL compares the tag in constant time. */
	if (EVP_DecryptFinal_ex(aead->ctx, scratch, &outl) != 1) {
		ERR_clear_error();
		err = -EBADMSG;
		goto fail;
	}
	return 0;
fail:
	wipe_spans(spans, span_count);
	return err;
}

int fsh_aead_mac(struct fsh_aead *aead, const uint8_t nonce[FSH_NONCE_BYTES],
		 const void *ad, size_t ad_size, const void *data,
		 size_t data_size, uint8_t tag[FSH_TAG_BYTES])
{
	uint8_t scratch[16];
	int outl, err;

	err = start(aead, nonce, 1, ad, ad_size);
	if (!err)
		err = feed_ad(aead->ctx, data, data_size);
	if (err)
		return err;
	if (EVP_EncryptFinal_ex(aead->ctx, scratch, &outl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(aead->ctx, EVP_CTRL_GCM_GET_TAG, FSH_TAG_BYTES,
				tag) != 1)
		return openssl_error();
	return 0;
}

int fsh_aead_mac_verify(struct fsh_aead *aead,
			const uint8_t nonce[FSH_NONCE_BYTES], const void *ad,
			size_t ad_size, const void *data, size_t data_size,
			const uint8_t tag[FSH_TAG_BYTES])
{
	uint8_t got[FSH_TAG_BYTES];
	int err;

	err = fsh_aead_mac(aead, nonce, ad, ad_size, data, data_size, got);
	if (!err && !fsh_memeq(got, tag, FSH_TAG_BYTES))
		err = -EBADMSG;
	fsh_wipe(got, sizeof(got));
	return err;
}

void fsh_hex_encode(const void *bin, size_t size, char *hex)
{
	sodium_bin2hex(hex, 2 * size + 1, bin, size);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int fsh_hex_decode(const char *hex, size_t hex_size, void *bin, size_t size)
{
	size_t bin_len = 0;
	const char *end = NULL;

	while (hex_size && is_space(*hex)) {
		hex++;
		hex_size--;
	}
	while (hex_size && is_space(hex[hex_size - 1]))
		hex_size--;
	if (hex_size != 2 * size)
		return -EINVAL;
	if (sodium_hex2bin(bin, size, hex, hex_size, NULL, &bin_len, &end) !=
		    0 ||
	    bin_len != size || end != hex + hex_size) {
		fsh_wipe(bin, size);
		return -EINVAL;
	}
	return 0;
}
