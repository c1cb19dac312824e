/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fshield crypto core: AES-GCM seal/open and GMAC, keys in locked memory,
 * randomness, constant-time helpers and hex codecs. Bytes only: nothing here
 * knows about paths, files or the fspf format.
 *
 * Every function returns 0 or a negative errno. A failed tag is always
 * -EBADMSG. Results come back through *_ret parameters written only on
 * success.
 */
#ifndef FSH_CRYPTO_H
#define FSH_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FSH_NONCE_BYTES 12
#define FSH_TAG_BYTES 16
#define FSH_KEY_MAX_BYTES 32
#define FSH_FSPF_KEY_BYTES 32
#define FSH_KEY_CHECK_BYTES 16

#define FSH_TAG_HEX_BYTES (2 * FSH_TAG_BYTES)
#define FSH_FSPF_KEY_HEX_BYTES (2 * FSH_FSPF_KEY_BYTES)

#define FSH_WUR __attribute__((warn_unused_result))

/**
 * fsh_crypto_init() - initialise libsodium and check the AES-GCM backend.
 *
 * Idempotent and thread-safe; every other function may call it.
 * Return: 0, or -EIO if a backend cannot be initialised.
 */
int fsh_crypto_init(void);

/**
 * fsh_random() - fill @buf with @size bytes from the operating system's CSPRNG.
 */
void fsh_random(void *buf, size_t size);

/**
 * fsh_nonces() - @count fresh random 96-bit nonces, back to back at
 * @nonces, from OpenSSL's DRBG (seeded by the OS, fork-safe). One call
 * costs about as much as sealing a 4 KiB chunk: draw nonces in batches.
 * Return: 0, or -EIO when the DRBG fails.
 */
int fsh_nonces(uint8_t *nonces, size_t count);

/** fsh_nonce() - one nonce: fsh_nonces(@nonce, 1). */
int fsh_nonce(uint8_t nonce[FSH_NONCE_BYTES]);

/**
 * fsh_memeq() - compare two buffers in constant time.
 * Return: true when the @size bytes at @a and @b are equal.
 */
bool fsh_memeq(const void *a, const void *b, size_t size);

/** fsh_is_zero() - constant-time test that @size bytes at @buf are all zero. */
bool fsh_is_zero(const void *buf, size_t size);

/** fsh_wipe() - zero @size bytes at @buf in a way the compiler cannot elide. */
void fsh_wipe(void *buf, size_t size);

/*
 * Secret memory: allocations that are mlock()ed, guarded by inaccessible
 * pages, excluded from core dumps and wiped when freed (libsodium's
 * sodium_malloc()). Use for keys and for any buffer that holds key bytes.
 */

/** fsh_secure_alloc() - zeroed secret buffer of @size bytes, or NULL. */
void *fsh_secure_alloc(size_t size);

/** fsh_secure_free() - wipe and free a buffer from fsh_secure_alloc(). NULL-safe. */
void fsh_secure_free(void *ptr);

/**
 * struct fsh_key - a key of 16, 24 or 32 bytes in secret memory.
 *
 * Allocated by fsh_key_new() and friends, freed by fsh_key_free().
 */
struct fsh_key;

/**
 * fsh_key_new() - a new all-zero key of @size bytes (16, 24 or 32).
 * Return: 0, -EINVAL for a bad size, -ENOMEM.
 */
int fsh_key_new(size_t size, struct fsh_key **key_ret);

/** fsh_key_generate() - a new random key of @size bytes (16, 24 or 32). */
int fsh_key_generate(size_t size, struct fsh_key **key_ret);

/**
 * fsh_key_from_hex() - parse a key of @size bytes from hex text.
 *
 * Leading and trailing white space is ignored; anything else that is not
 * exactly 2 * @size hex digits is refused. @hex is not modified (the caller
 * wipes it).
 * Return: 0, -EINVAL for malformed text, -ENOMEM.
 */
int fsh_key_from_hex(const char *hex, size_t hex_size, size_t size,
		     struct fsh_key **key_ret);

/** fsh_key_dup() - a copy of @key in new secret memory. */
int fsh_key_dup(const struct fsh_key *key, struct fsh_key **key_ret);

/** fsh_key_free() - wipe and free @key. NULL-safe. */
void fsh_key_free(struct fsh_key *key);

const uint8_t *fsh_key_bytes(const struct fsh_key *key);
uint8_t *fsh_key_bytes_mut(struct fsh_key *key);
size_t fsh_key_size(const struct fsh_key *key);
bool fsh_key_is_zero(const struct fsh_key *key);

/**
 * fsh_key_check() - a 16-byte check value of @key.
 *
 * A keyed BLAKE2b of a fixed label: it tells a wrong key from a tampered
 * ciphertext and reveals nothing useful about a random key.
 */
void fsh_key_check(const struct fsh_key *key,
		   uint8_t check[FSH_KEY_CHECK_BYTES]);

/**
 * struct fsh_aead - an AES-GCM context bound to one key (AES-128/192/256 by
 * the key's size). Not thread-safe: use one per thread. The key schedule
 * lives in OpenSSL's memory and is cleansed by fsh_aead_free().
 */
struct fsh_aead;

/** fsh_aead_new() - a context for @key_size (16, 24, 32) bytes of @key. */
int fsh_aead_new(const uint8_t *key, size_t key_size,
		 struct fsh_aead **aead_ret);

/** fsh_aead_free() - free @aead and cleanse its key schedule. NULL-safe. */
void fsh_aead_free(struct fsh_aead *aead);

/**
 * struct fsh_span - one piece of a message: @size bytes from @in to @out.
 * @out may equal @in (in place); for a GMAC, @out is ignored.
 */
struct fsh_span {
	const uint8_t *in;
	uint8_t *out;
	size_t size;
};

/**
 * fsh_aead_seal() - encrypt the concatenation of @spans and authenticate it
 * together with @ad under @nonce.
 *
 * Return: 0 and the tag in @tag, or -EIO on a backend failure.
 */
int fsh_aead_seal(struct fsh_aead *aead, const uint8_t nonce[FSH_NONCE_BYTES],
		  const void *ad, size_t ad_size, const struct fsh_span *spans,
		  size_t span_count, uint8_t tag[FSH_TAG_BYTES]);

/**
 * fsh_aead_open() - decrypt and verify what fsh_aead_seal() produced.
 *
 * Verify before release: the caller must not use any output unless this
 * returns 0. On failure every output span is wiped.
 * Return: 0, -EBADMSG when the tag does not verify, -EIO on a backend failure.
 */
FSH_WUR int fsh_aead_open(struct fsh_aead *aead,
			  const uint8_t nonce[FSH_NONCE_BYTES], const void *ad,
			  size_t ad_size, const struct fsh_span *spans,
			  size_t span_count, const uint8_t tag[FSH_TAG_BYTES]);

/**
 * fsh_aead_mac() - GMAC: a tag over @ad followed by @data, nothing encrypted.
 */
int fsh_aead_mac(struct fsh_aead *aead, const uint8_t nonce[FSH_NONCE_BYTES],
		 const void *ad, size_t ad_size, const void *data,
		 size_t data_size, uint8_t tag[FSH_TAG_BYTES]);

/**
 * fsh_aead_mac_verify() - check a tag made by fsh_aead_mac(), in constant time.
 * Return: 0, -EBADMSG when it does not match, -EIO on a backend failure.
 */
FSH_WUR int fsh_aead_mac_verify(struct fsh_aead *aead,
				const uint8_t nonce[FSH_NONCE_BYTES],
				const void *ad, size_t ad_size, const void *data,
				size_t data_size,
				const uint8_t tag[FSH_TAG_BYTES]);

/**
 * fsh_hex_encode() - lower-case hex of @size bytes into @hex, which must
 * hold 2 * @size + 1 bytes (NUL-terminated).
 */
void fsh_hex_encode(const void *bin, size_t size, char *hex);

/**
 * fsh_hex_decode() - exactly 2 * @size hex digits (surrounding white space
 * ignored) into @size bytes at @bin. Constant time in the digits.
 * Return: 0 or -EINVAL.
 */
int fsh_hex_decode(const char *hex, size_t hex_size, void *bin, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* FSH_CRYPTO_H */
