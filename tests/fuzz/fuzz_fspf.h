/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by the fspf decode fuzz target and its seed-corpus generator: the
 * fixed key the target tries besides no key at all. Seeds sealed under it
 * let the fuzzer reach the real-key path of fspf_decode().
 */
#ifndef FUZZ_FSPF_H
#define FUZZ_FSPF_H

#include <stddef.h>
#include <stdint.h>

/* 00 01 02 .. 1f */
static inline void fuzz_fixed_key(uint8_t key[32])
{
	for (size_t i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
}

#endif /* FUZZ_FSPF_H */
