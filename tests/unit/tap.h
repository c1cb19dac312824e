/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tiny test harness printing TAP (version 12, plan at the end).
 *
 * Each test case is a function run by TAP_RUN(); inside it, CHECK() and
 * friends record failures with file, line and values as "#" diagnostics,
 * and the case reports one "ok N - name" or "not ok N - name". A program
 * ends with "return tap_done();", which prints the plan and gives a non-zero
 * exit status when anything failed.
 *
 * Everything is static inline so that a test program that does not use a
 * helper gets no unused-function warning under -Werror.
 */
#ifndef TAP_H
#define TAP_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tap_state {
	unsigned int cases;   /* test cases run */
	unsigned int failed;  /* test cases that failed */
	unsigned long checks; /* checks evaluated */
	unsigned long bad;    /* failed checks in the current case */
};

static struct tap_state g_tap;

static inline void tap_diag(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

/* Record one check; diagnostics for at most a few failures per case. */
static inline bool tap_check(bool ok, const char *file, int line,
			     const char *what)
{
	g_tap.checks++;
	if (ok)
		return true;
	if (g_tap.bad++ < 20)
		tap_diag("%s:%d: check failed: %s", file, line, what);
	return false;
}

static inline bool tap_check_int(long long got, long long want,
				 const char *file, int line, const char *what)
{
	g_tap.checks++;
	if (got == want)
		return true;
	if (g_tap.bad++ < 20)
		tap_diag("%s:%d: %s: got %lld, want %lld", file, line, what,
			 got, want);
	return false;
}

static inline bool tap_check_mem(const void *got, const void *want, size_t size,
				 const char *file, int line, const char *what)
{
	const uint8_t *g = got, *w = want;

	g_tap.checks++;
	if (memcmp(got, want, size) == 0)
		return true;
	if (g_tap.bad++ < 20) {
		size_t i = 0;

		while (g[i] == w[i])
			i++;
		tap_diag("%s:%d: %s: %zu bytes differ first at %zu "
			 "(got %02x, want %02x)",
			 file, line, what, size, i, g[i], w[i]);
	}
	return false;
}

static inline bool tap_check_str(const char *got, const char *want,
				 const char *file, int line, const char *what)
{
	g_tap.checks++;
	if ((!got && !want) || (got && want && strcmp(got, want) == 0))
		return true;
	if (g_tap.bad++ < 20)
		tap_diag("%s:%d: %s: got \"%s\", want \"%s\"", file, line, what,
			 got ? got : "(null)", want ? want : "(null)");
	return false;
}

#define CHECK(cond) tap_check(!!(cond), __FILE__, __LINE__, #cond)
#define CHECK_INT(got, want)                                                   \
	tap_check_int((long long)(got), (long long)(want), __FILE__, __LINE__, \
		      #got " == " #want)
#define CHECK_MEM(got, want, size)                               \
	tap_check_mem((got), (want), (size), __FILE__, __LINE__, \
		      #got " == " #want)
#define CHECK_STR(got, want) \
	tap_check_str((got), (want), __FILE__, __LINE__, #got " == " #want)

/* Abort the current case (not the program) when a precondition fails. */
#define REQUIRE(cond)             \
	do {                      \
		if (!CHECK(cond)) \
			return;   \
	} while (0)
#define REQUIRE_INT(got, want)             \
	do {                               \
		if (!CHECK_INT(got, want)) \
			return;            \
	} while (0)

static inline void tap_run(const char *name, void (*fn)(void))
{
	g_tap.bad = 0;
	fn();
	g_tap.cases++;
	if (g_tap.bad) {
		g_tap.failed++;
		printf("not ok %u - %s (%lu failed checks)\n", g_tap.cases,
		       name, g_tap.bad);
	} else {
		printf("ok %u - %s\n", g_tap.cases, name);
	}
	fflush(stdout);
}

#define TAP_RUN(fn) tap_run(#fn, fn)

static inline int tap_done(void)
{
	printf("1..%u\n", g_tap.cases);
	tap_diag("%u cases, %u failed, %lu checks", g_tap.cases, g_tap.failed,
		 g_tap.checks);
	return g_tap.failed ? 1 : 0;
}

/* Test-local hex reader, independent of the code under test. */
static inline size_t tap_unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;

	for (; hex[0] && hex[1]; hex += 2) {
		char b[3] = {hex[0], hex[1], 0};

		if (n == cap)
			abort();
		out[n++] = (uint8_t)strtoul(b, NULL, 16);
	}
	return n;
}

#endif /* TAP_H */
