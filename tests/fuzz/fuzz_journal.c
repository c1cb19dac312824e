// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for the journal a writable volume keeps in its lock file
 * on the host (fshield/journal.h): whatever the bytes, journal_next() only
 * yields 'C' and 'R' records whose paths are NUL-terminated strings inside
 * the input, advances strictly, and stops for good at the first record it
 * does not take. Any violated invariant aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "journal.h"

static unsigned long g_creates, g_renames;

void fuzz_stats(unsigned long counts[2], const char *names[2])
{
	counts[0] = g_creates;
	counts[1] = g_renames;
	names[0] = "had a create record";
	names[1] = "had a rename record";
}

static void check_str(const char *s, const char *buf, size_t len)
{
	if (!s || s < buf || s >= buf + len ||
	    !memchr(s, '\0', len - (size_t)(s - buf)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly @size bytes: ASan catches any read beyond. */
	char *buf = malloc(size ? size : 1);
	struct journal_rec r;
	size_t off = 0, prev;
	int creates = 0, renames = 0;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	for (;;) {
		prev = off;
		if (!journal_next(buf, size, &off, &r)) {
			if (off != prev)
				abort(); /* a refused record must not advance */
			break;
		}
		if (off <= prev || off > size)
			abort();
		check_str(r.a, buf, size);
		if (r.op == 'C') {
			creates = 1;
			if (r.b)
				abort();
		} else if (r.op == 'R') {
			renames = 1;
			check_str(r.b, buf, size);
		} else {
			abort();
		}
	}
	g_creates += creates;
	g_renames += renames;
	free(buf);
	return 0;
}
