/* SPDX-License-Identifier: MIT */
/*
 * The units guest memory is handled in, the one place they are spelled.
 *
 * VMEM_PAGE_SIZE: the page of the memory file and of the guest: x86-64
 * and arm64 with 4K pages.  Ranges, ram-size and local-limit are
 * multiples of it; presence is asked page by page.
 *
 * Chunks: the unit moved between the main host and a sub-host (the
 * pager's) and fetched from a sub-host (vmemfs's direct backend).  A
 * power of two from VMEM_CHUNK_MIN (one page: the finest a move can be)
 * to VMEM_CHUNK_MAX (16M: the pager keeps a few chunks of bounce buffer
 * per fault thread, and one NBD request must stay far below the 32M most
 * servers take).  The config refuses anything else, and the pager and
 * the backends check again with vmem_chunk_size_ok() for callers that
 * did not come through the config.
 *
 * libc only: QEMU's build links common/ and pager/ as they are.
 */
#ifndef VMEM_MEMUNITS_H
#define VMEM_MEMUNITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define VMEM_PAGE_SIZE		4096ULL
#define VMEM_CHUNK_MIN		VMEM_PAGE_SIZE
#define VMEM_CHUNK_MAX		(16ULL << 20)
#define VMEM_CHUNK_DEFAULT	(64ULL << 10)

/* @v is a positive multiple of the page size. */
static inline bool vmem_page_multiple(uint64_t v)
{
	return v && v % VMEM_PAGE_SIZE == 0;
}

/* @v is a chunk size: a power of two in VMEM_CHUNK_MIN..VMEM_CHUNK_MAX. */
static inline bool vmem_chunk_size_ok(uint64_t v)
{
	return v >= VMEM_CHUNK_MIN && v <= VMEM_CHUNK_MAX && !(v & (v - 1));
}

/* @v rounded down / up to a page boundary. */
static inline uint64_t vmem_page_floor(uint64_t v)
{
	return v & ~(VMEM_PAGE_SIZE - 1);
}

static inline uint64_t vmem_page_ceil(uint64_t v)
{
	return (v + VMEM_PAGE_SIZE - 1) & ~(VMEM_PAGE_SIZE - 1);
}

/*
 * @len (> 0) bytes at @p are all zero.  Most pages with data differ in
 * their first bytes: this returns after one compare for them.
 */
static inline bool vmem_is_zero(const unsigned char *p, size_t len)
{
	return p[0] == 0 && memcmp(p, p + 1, len - 1) == 0;
}

#endif
