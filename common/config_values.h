/* SPDX-License-Identifier: MIT */
/*
 * The values of vmemtrans.conf, parsed and checked one at a time, without
 * a file or a line at hand (config.c adds those to the messages).  Also
 * used for what QEMU reports (query-vmem's sub-hosts) and by tools.
 *
 * Sizes:     decimal or 0x-hex, optional K/M/G/T suffix (powers of 1024)
 * Ranges:    START-END, both sizes, END exclusive
 * Durations: NUMBERms or NUMBERs, decimal only
 *
 * Numbers have no sign, no blanks and no overflow: a value that does not
 * fit in 64 bits is refused, never clamped.
 *
 * Errors: the vmem_scan_* functions return a vmem_val_result, so the
 * caller can tell a malformed value from a too large one; vmem_parse_*
 * fold that into 0 / -1.  The *_problem checks return NULL or the
 * reason as text.
 *
 * libc only: the QEMU glue and the pager link this as it is.
 */
#ifndef VMEM_CONFIG_VALUES_H
#define VMEM_CONFIG_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vmem_val_result {
	VMEM_VAL_OK = 0,
	VMEM_VAL_BAD = -1,		/* not a number of the expected shape */
	VMEM_VAL_OVERFLOW = -2,		/* does not fit in 64 bits */
	VMEM_VAL_EMPTY_RANGE = -3,	/* START >= END (both ends are set) */
};

/* A size, a range, a duration; *out only set on VMEM_VAL_OK (ranges:
 * also on VMEM_VAL_EMPTY_RANGE, so the caller can say why). */
int vmem_scan_size(const char *s, uint64_t *out);
int vmem_scan_range(const char *s, uint64_t *start, uint64_t *end);
int vmem_scan_duration(const char *s, uint64_t *out_ms);

/*
 * The same for tests and for other tools: 0 on success, -1 on a
 * malformed, overflowing (or, for a range, empty) value.
 */
int vmem_parse_size(const char *s, uint64_t *out);
int vmem_parse_range(const char *s, uint64_t *start, uint64_t *end);
int vmem_parse_duration_ms(const char *s, uint64_t *out_ms);

/*
 * The checks of the config's own subhost lines, for sub-hosts that come
 * from elsewhere (QEMU's query-vmem): NULL when fine, else the reason, to
 * follow "URI '...' " or "range '...' " in a message.  The URI check is
 * light (scheme, host or socket, port): libnbd parses for real at
 * connect time.  The range check is START < END, both 4K-aligned, END at
 * most VMEM_RAM_MAX; that it ends within ram-size and overlaps nothing
 * is for the caller to check.
 */
const char *vmem_uri_problem(const char *uri);

/* nbds:// or nbds+unix://: libnbd requires TLS for it. */
bool vmem_uri_is_tls(const char *uri);
/* A unix socket, or a TCP host that is loopback: 127.0.0.0/8, [::1],
 * localhost.  Only these may carry guest memory in clear by default. */
bool vmem_uri_is_loopback(const char *uri);
const char *vmem_range_problem(uint64_t start, uint64_t end);

/* @v as the shortest exact "64K"/"2G"/"12345", for messages. */
void vmem_format_size(uint64_t v, char *buf, size_t len);
/* @ms as "2s" when whole seconds, else "500ms". */
void vmem_format_duration(uint64_t ms, char *buf, size_t len);

#endif
