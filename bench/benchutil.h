/* SPDX-License-Identifier: MIT */
/*
 * What the benchmark clients (memread, ids_reader) share: the clock they
 * time with and the way they read sizes from the command line.  Header
 * only: each bench program is one .c file (Makefile: bench/%.c).
 */
#ifndef VMEM_BENCH_BENCHUTIL_H
#define VMEM_BENCH_BENCHUTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* Monotonic seconds. */
static inline double bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * A size: a number (strtoull base 0) with an optional K, M, G or T
 * (powers of 1024, either case).  Returns 0, or -1 for anything else,
 * trailing characters or a value that does not fit in 64 bits.
 */
static inline int bench_parse_size(const char *s, uint64_t *out)
{
	unsigned int shift = 0;
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

#endif
