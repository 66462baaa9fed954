// SPDX-License-Identifier: MIT
/*
 * The values of vmemtrans.conf: numbers, sizes, ranges, durations, and
 * the checks of sub-host URIs and ranges (contract in config_values.h).
 *
 * libc only: the QEMU glue and the pager link this file as it is.
 */
#include "config_values.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"	/* VMEM_RAM_MAX */
#include "memunits.h"

/*
 * Digits of a decimal or 0x-hex number.  Own loop rather than strtoull:
 * strtoull accepts signs and leading blanks and folds overflow into
 * ULLONG_MAX, none of which a config value should get away with.
 * Garbage wins over overflow so "99999999999999999999zz" is reported as
 * malformed, not as too large.
 */
static int parse_number(const char *s, const char **endp, uint64_t *out)
{
	unsigned int base = 10;
	uint64_t v = 0;
	bool overflow = false;
	const char *p = s;
	const char *digits;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	digits = p;
	for (;; p++) {
		unsigned int d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			break;
		if (v > (UINT64_MAX - d) / base)
			overflow = true;
		else
			v = v * base + d;
	}
	if (p == digits)
		return VMEM_VAL_BAD;
	*endp = p;
	*out = v;
	return overflow ? VMEM_VAL_OVERFLOW : VMEM_VAL_OK;
}

int vmem_scan_size(const char *s, uint64_t *out)
{
	const char *p;
	uint64_t v;
	unsigned int shift = 0;
	int r;

	r = parse_number(s, &p, &v);
	if (r == VMEM_VAL_BAD)
		return r;
	switch (*p) {
	case 'K': case 'k':
		shift = 10;
		break;
	case 'M': case 'm':
		shift = 20;
		break;
	case 'G': case 'g':
		shift = 30;
		break;
	case 'T': case 't':
		shift = 40;
		break;
	}
	if (shift)
		p++;
	if (*p)
		return VMEM_VAL_BAD;
	if (r == VMEM_VAL_OVERFLOW || (shift && v > (UINT64_MAX >> shift)))
		return VMEM_VAL_OVERFLOW;
	*out = v << shift;
	return VMEM_VAL_OK;
}

int vmem_scan_range(const char *s, uint64_t *start, uint64_t *end)
{
	const char *dash = strchr(s, '-');
	char first[64];
	uint64_t a, b;
	size_t n;
	int r1, r2;

	if (!dash || (size_t)(dash - s) >= sizeof(first))
		return VMEM_VAL_BAD;
	n = dash - s;
	memcpy(first, s, n);
	first[n] = '\0';
	r1 = vmem_scan_size(first, &a);
	r2 = vmem_scan_size(dash + 1, &b);
	if (r1 == VMEM_VAL_BAD || r2 == VMEM_VAL_BAD)
		return VMEM_VAL_BAD;
	if (r1 || r2)
		return VMEM_VAL_OVERFLOW;
	/* Both ends even for an empty range: vmem_range_problem says why. */
	*start = a;
	*end = b;
	return a < b ? VMEM_VAL_OK : VMEM_VAL_EMPTY_RANGE;
}

int vmem_scan_duration(const char *s, uint64_t *out_ms)
{
	const char *p;
	uint64_t v;
	int r;

	/* Decimal only: a hex duration would only ever be a typo. */
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		return VMEM_VAL_BAD;
	r = parse_number(s, &p, &v);
	if (r == VMEM_VAL_BAD)
		return r;
	if (strcmp(p, "ms") == 0) {
		if (r)
			return r;
		*out_ms = v;
		return VMEM_VAL_OK;
	}
	if (strcmp(p, "s") == 0) {
		if (r || v > UINT64_MAX / 1000)
			return VMEM_VAL_OVERFLOW;
		*out_ms = v * 1000;
		return VMEM_VAL_OK;
	}
	return VMEM_VAL_BAD;
}

int vmem_parse_size(const char *s, uint64_t *out)
{
	return s && vmem_scan_size(s, out) == VMEM_VAL_OK ? 0 : -1;
}

int vmem_parse_range(const char *s, uint64_t *start, uint64_t *end)
{
	uint64_t a, b;

	if (!s || vmem_scan_range(s, &a, &b) != VMEM_VAL_OK)
		return -1;
	*start = a;
	*end = b;
	return 0;
}

int vmem_parse_duration_ms(const char *s, uint64_t *out_ms)
{
	return s && vmem_scan_duration(s, out_ms) == VMEM_VAL_OK ? 0 : -1;
}

void vmem_format_size(uint64_t v, char *buf, size_t len)
{
	static const struct {
		unsigned int shift;
		char suffix;
	} units[] = { { 40, 'T' }, { 30, 'G' }, { 20, 'M' }, { 10, 'K' } };
	size_t i;

	if (!buf || !len)
		return;
	for (i = 0; v && i < sizeof(units) / sizeof(units[0]); i++) {
		uint64_t mask = (1ULL << units[i].shift) - 1;

		if (!(v & mask)) {
			snprintf(buf, len, "%" PRIu64 "%c",
				 v >> units[i].shift, units[i].suffix);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64, v);
}

void vmem_format_duration(uint64_t ms, char *buf, size_t len)
{
	if (ms && ms % 1000 == 0)
		snprintf(buf, len, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(buf, len, "%" PRIu64 "ms", ms);
}

/*
 * The part of an nbd[s]:// URI after the scheme and the user name: the
 * host (maybe [IPv6]), port, export.  NULL for other schemes.
 */
static const char *uri_authority(const char *uri)
{
	const char *p, *at;

	if (strncmp(uri, "nbd://", 6) == 0)
		p = uri + 6;
	else if (strncmp(uri, "nbds://", 7) == 0)
		p = uri + 7;
	else
		return NULL;
	/* nbds://USER@HOST: the PSK identity (libnbd takes it). */
	at = p + strcspn(p, "@/?");
	return *at == '@' ? at + 1 : p;
}

static bool uri_is_unix(const char *uri)
{
	return strncmp(uri, "nbd+unix://", 11) == 0 ||
	       strncmp(uri, "nbds+unix://", 12) == 0;
}

bool vmem_uri_is_tls(const char *uri)
{
	return strncmp(uri, "nbds://", 7) == 0 ||
	       strncmp(uri, "nbds+unix://", 12) == 0;
}

bool vmem_uri_is_loopback(const char *uri)
{
	const char *h = uri_authority(uri);
	size_t n;

	if (uri_is_unix(uri))
		return true;
	if (!h)
		return false;
	if (*h == '[')
		return strncmp(h, "[::1]", 5) == 0 ||
		       strncasecmp(h, "[::ffff:127.", 12) == 0;
	n = strcspn(h, ":/?");
	/* 127.0.0.0/8, written as the dotted quad libnbd would parse. */
	if (n > 4 && strncmp(h, "127.", 4) == 0 &&
	    strspn(h, "0123456789.") == n)
		return true;
	return n == 9 && strncasecmp(h, "localhost", 9) == 0;
}

/*
 * Light NBD URI check: right scheme, something to connect to.  libnbd
 * does the real parsing at connect time; this only catches typos early,
 * with the config line at hand.  Returns NULL when fine, else the reason.
 */
const char *vmem_uri_problem(const char *uri)
{
	const char *p, *q;

	p = uri_authority(uri);
	if (p) {
		if (*p == '[') {	/* [IPv6] */
			q = strchr(p, ']');
			if (!q || q == p + 1)
				return "has a malformed [IPv6] host";
			p = q + 1;
		} else {
			q = p + strcspn(p, ":/?");
			if (q == p)
				return "has no host (nbd[s]://[USER@]HOST[:PORT][/EXPORT])";
			p = q;
		}
		if (*p == ':') {
			unsigned long port = 0;

			for (q = ++p; *q >= '0' && *q <= '9' && port <= 65535;
			     q++)
				port = port * 10 + (*q - '0');
			if (q == p || port == 0 || port > 65535 ||
			    (*q && *q != '/' && *q != '?'))
				return "has a bad port (1..65535)";
			p = q;
		}
		if (*p && *p != '/' && *p != '?')
			return "has junk after the host";
		return NULL;
	}
	if (uri_is_unix(uri)) {
		p = strstr(uri, "://") + 3;
		if (*p != '/')
			return "must have an empty host "
			       "(nbd[s]+unix:///EXPORT?socket=PATH)";
		q = strchr(p, '?');
		while (q) {
			q++;
			if (strncmp(q, "socket=", 7) == 0 &&
			    q[7] && q[7] != '&')
				return NULL;
			q = strchr(q, '&');
		}
		return "lacks ?socket=PATH";
	}
	return "is not an nbd://, nbds://, nbd+unix:// or nbds+unix:// URI";
}

/* The messages below spell the limit out. */
_Static_assert(VMEM_RAM_MAX == 4096ULL << 40, "messages say 4096T");

const char *vmem_range_problem(uint64_t start, uint64_t end)
{
	if (start >= end)
		return "is empty (START must be below END)";
	if (end > VMEM_RAM_MAX)
		return "ends above the largest supported ram-size 4096T";
	if (start % VMEM_PAGE_SIZE || end % VMEM_PAGE_SIZE)
		return "is not 4K-aligned";
	return NULL;
}
