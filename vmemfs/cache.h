/* SPDX-License-Identifier: MIT */
/*
 * The direct backend's cache of fetched chunks.  Deliberately small: what
 * it keeps costs main-host memory and goes stale.  An entry is used only
 * while younger than the TTL and while no page move has begun since it
 * was fetched (its eviction sequence token still matches).
 */
#ifndef VMEMFS_CACHE_H
#define VMEMFS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vmem_cache;

/* @capacity bytes of @chunk-sized entries (capacity < chunk: no cache, NULL). */
struct vmem_cache *vmem_cache_new(uint64_t capacity, uint64_t chunk,
				  uint64_t ttl_ms);
void vmem_cache_free(struct vmem_cache *c);

/*
 * Copy the chunk at @chunk_off into @dst if a fresh entry exists whose
 * token equals @token.  Stale entries found are dropped.
 */
bool vmem_cache_get(struct vmem_cache *c, uint64_t chunk_off, void *dst,
		    uint64_t token);
/* Insert or replace, evicting the least recently used entry if full. */
void vmem_cache_put(struct vmem_cache *c, uint64_t chunk_off, const void *src,
		    uint64_t token);
/* Bytes currently held (for stats and tests). */
uint64_t vmem_cache_bytes(struct vmem_cache *c);

#endif
