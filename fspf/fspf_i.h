/* SPDX-License-Identifier: Apache-2.0 */
/* Internal to fspf/: little-endian helpers and the bounds-checked reader. */
#ifndef FSPF_I_H
#define FSPF_I_H

#include <stdint.h>
#include <string.h>

static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/*
 * A cursor over untrusted bytes: every read checks the bounds and a failed
 * read poisons the cursor, so a parser checks once at the end of a record.
 */
struct cursor {
	const uint8_t *p;
	size_t left;
	int bad;
};

static inline const uint8_t *cur_take(struct cursor *c, size_t n)
{
	const uint8_t *p;

	if (c->bad || c->left < n) {
		c->bad = 1;
		return NULL;
	}
	p = c->p;
	c->p += n;
	c->left -= n;
	return p;
}

static inline uint8_t cur_u8(struct cursor *c)
{
	const uint8_t *p = cur_take(c, 1);

	return p ? p[0] : 0;
}

static inline uint16_t cur_le16(struct cursor *c)
{
	const uint8_t *p = cur_take(c, 2);

	return p ? get_le16(p) : 0;
}

static inline uint32_t cur_le32(struct cursor *c)
{
	const uint8_t *p = cur_take(c, 4);

	return p ? get_le32(p) : 0;
}

static inline uint64_t cur_le64(struct cursor *c)
{
	const uint8_t *p = cur_take(c, 8);

	return p ? get_le64(p) : 0;
}

/* Copy @n bytes out; a poisoned cursor yields zeros. */
static inline void cur_copy(struct cursor *c, void *out, size_t n)
{
	const uint8_t *p = cur_take(c, n);

	if (p)
		memcpy(out, p, n);
	else
		memset(out, 0, n);
}

/* True when the next @n bytes exist and are all zero (reserved fields). */
static inline int cur_zero(struct cursor *c, size_t n)
{
	const uint8_t *p = cur_take(c, n);

	if (!p)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

#endif /* FSPF_I_H */
