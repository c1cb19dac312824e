/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The records of a writable volume's journal (see journal() in fshield.c):
 * an operation byte, 'C' (created: one path) or 'R' (renamed: two paths),
 * then its paths, each NUL-terminated. The journal lives on the host, so
 * it is untrusted input: this parser is bounds-checked and fuzzed
 * (tests/fuzz/fuzz_journal.c); what it yields is only ever a path that the
 * runtime checks again before acting on it.
 */
#ifndef FSHIELD_JOURNAL_H
#define FSHIELD_JOURNAL_H

#include <stddef.h>
#include <string.h>

struct journal_rec {
	char op;       /* 'C' or 'R' */
	const char *a; /* the path created, or renamed from */
	const char *b; /* renamed to; NULL for 'C' */
};

/* The NUL-terminated string at @off of @buf[0..@len), or NULL. */
static inline const char *journal_str(const char *buf, size_t len,
				      size_t *off)
{
	const char *s = buf + *off, *nul;

	if (*off >= len)
		return NULL;
	nul = memchr(s, '\0', len - *off);
	if (!nul)
		return NULL;
	*off += (size_t)(nul - s) + 1;
	return s;
}

/*
 * journal_next() - the record at *@off of @buf[0..@len), advancing *@off.
 * Return: 1 and the record in *@r, or 0 at the end or at a record that is
 * unknown or cut short (the last one, when the writer died writing it):
 * nothing after it is read.
 */
static inline int journal_next(const char *buf, size_t len, size_t *off,
			       struct journal_rec *r)
{
	size_t o = *off;

	if (o >= len || (buf[o] != 'C' && buf[o] != 'R'))
		return 0;
	r->op = buf[o++];
	r->a = journal_str(buf, len, &o);
	r->b = r->op == 'R' ? journal_str(buf, len, &o) : NULL;
	if (!r->a || (r->op == 'R' && !r->b))
		return 0;
	*off = o;
	return 1;
}

#endif /* FSHIELD_JOURNAL_H */
