// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for fsh_hex_decode() (crypto/), the parser of the text
 * of tag files (the runtime's, the preload layer's and scone-fspf's, all
 * host-writable) and of hex keys: whatever the bytes, it succeeds exactly
 * when they are 2 * N hex digits with only white space around them, the
 * bytes then encode back to those digits, and on failure the output is
 * untouched or wiped (it may be a key). Any violated invariant aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fsh_crypto.h"
#include "fuzz.h"

static unsigned long g_tags, g_keys;

void fuzz_stats(unsigned long counts[2], const char *names[2])
{
	counts[0] = g_tags;
	counts[1] = g_keys;
	names[0] = "decoded as a tag";
	names[1] = "decoded as a key";
}

static bool space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool xdigit(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

static char lower(char c)
{
	return c >= 'A' && c <= 'F' ? (char)(c - 'A' + 'a') : c;
}

/* The model: what fsh_hex_decode() must accept, for @n bytes out. */
static bool well_formed(const char *s, size_t len, size_t n,
			const char **digits)
{
	while (len && space(*s)) {
		s++;
		len--;
	}
	while (len && space(s[len - 1]))
		len--;
	*digits = s;
	if (len != 2 * n)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!xdigit(s[i]))
			return false;
	return true;
}

static void check(const char *buf, size_t size, size_t n,
		  unsigned long *count)
{
	uint8_t bin[32];
	char hex[2 * sizeof(bin) + 1];
	const char *digits;
	bool want = well_formed(buf, size, n, &digits);
	int err;

	memset(bin, 0xa5, sizeof(bin));
	err = fsh_hex_decode(buf, size, bin, n);
	if ((err == 0) != want)
		abort();
	if (err) {
		/* untouched, or wiped: never a half-decoded key left behind */
		bool untouched = true, wiped = true;

		for (size_t i = 0; i < n; i++) {
			untouched &= bin[i] == 0xa5;
			wiped &= bin[i] == 0;
		}
		if (!untouched && !wiped)
			abort();
		return;
	}
	fsh_hex_encode(bin, n, hex);
	for (size_t i = 0; i < 2 * n; i++)
		if (hex[i] != lower(digits[i]))
			abort();
	(*count)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly @size bytes: ASan catches any read beyond. */
	char *buf = malloc(size ? size : 1);

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	check(buf, size, FSH_TAG_BYTES, &g_tags);
	check(buf, size, 32, &g_keys);
	free(buf);
	return 0;
}
