/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every fuzz target gives the plain driver (fuzz_main.c): the libFuzzer
 * entry point, and two counts of inputs that reached deep into the parser,
 * with their names, so that the driver can check that the seed corpus
 * still does (it goes stale if a format moves).
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_stats(unsigned long counts[2], const char *names[2]);

#endif /* FUZZ_H */
