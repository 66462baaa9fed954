// SPDX-License-Identifier: MIT
/*
 * The direct backend's chunk cache.
 *
 * Every entry sits on three structures under one mutex: a hash chain (find
 * by chunk offset), an LRU list (whom to evict when full) and an age list
 * in order of insertion (whom to drop when older than the TTL).  Insertion
 * time only grows, so the expired entries are always at the old end of the
 * age list and each operation can drop them in O(expired) without a scan:
 * stale data is not kept longer than until the next cache operation.
 *
 * The copy into the caller's buffer is done outside the lock: a hit takes
 * a reference, unlocks, copies and drops the reference.  The table holds
 * one reference of its own; whoever drops the last one frees the entry.
 * An entry being copied out while it is evicted therefore outlives its
 * eviction briefly, so the memory held can exceed the capacity by the
 * entries in the middle of a copy; vmem_cache_bytes() counts only the
 * entries in the table.
 */
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include "../common/timeutil.h"
#include "cache.h"

struct cache_entry {
	uint64_t key;			/* chunk offset */
	uint64_t token;			/* eviction sequence at fetch time */
	uint64_t born_ns;		/* CLOCK_MONOTONIC at insertion */
	unsigned int refs;		/* table's own + readers copying out */
	struct cache_entry *hnext;	/* hash chain; free list once dropped */
	struct cache_entry *lru_prev, *lru_next;	/* head: most recent */
	struct cache_entry *age_prev, *age_next;	/* head: oldest */
	unsigned char data[];
};

struct vmem_cache {
	pthread_mutex_t lock;
	uint64_t chunk;
	uint64_t ttl_ns;
	uint64_t capacity;
	uint64_t bytes;			/* chunk * entries in the table */
	struct cache_entry **buckets;
	uint64_t mask;			/* n_buckets - 1 */
	struct cache_entry *lru_head, *lru_tail;
	struct cache_entry *age_head, *age_tail;
};

static uint64_t bucket_of(const struct vmem_cache *c, uint64_t key)
{
	/* Chunk offsets are multiples of a power of two: divide that out and
	 * spread with a Fibonacci multiply so neighbours do not collide. */
	uint64_t h = (key / c->chunk) * 0x9e3779b97f4a7c15ull;

	return (h >> 32) & c->mask;
}

struct vmem_cache *vmem_cache_new(uint64_t capacity, uint64_t chunk,
				  uint64_t ttl_ms)
{
	struct vmem_cache *c;
	uint64_t entries, n = 16;

	/* A TTL of 0 would make every entry stale on arrival: keeping data
	 * that can never be used only costs memory, so it is no cache. */
	if (chunk == 0 || capacity < chunk || ttl_ms == 0)
		return NULL;
	entries = capacity / chunk;
	while (n < 2 * entries && n < (1ull << 22))
		n <<= 1;

	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->buckets = calloc(n, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	c->chunk = chunk;
	c->capacity = entries * chunk;
	c->ttl_ns = ttl_ms > UINT64_MAX / 1000000 ? UINT64_MAX
						   : ttl_ms * 1000000;
	c->mask = n - 1;
	return c;
}

void vmem_cache_free(struct vmem_cache *c)
{
	struct cache_entry *e, *next;

	if (!c)
		return;
	/* No reader may still be inside the cache when it is freed. */
	for (e = c->lru_head; e; e = next) {
		next = e->lru_next;
		free(e);
	}
	pthread_mutex_destroy(&c->lock);
	free(c->buckets);
	free(c);
}

/*
 * Take @e out of the table (lock held) and drop the table's reference.
 * When that was the last one, @e goes on *@dead to be freed after unlock.
 */
static void unlink_entry(struct vmem_cache *c, struct cache_entry *e,
			 struct cache_entry **dead)
{
	struct cache_entry **pp = &c->buckets[bucket_of(c, e->key)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;

	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		c->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		c->lru_tail = e->lru_prev;

	if (e->age_prev)
		e->age_prev->age_next = e->age_next;
	else
		c->age_head = e->age_next;
	if (e->age_next)
		e->age_next->age_prev = e->age_prev;
	else
		c->age_tail = e->age_prev;

	c->bytes -= c->chunk;
	if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		e->hnext = *dead;
		*dead = e;
	}
}

static void free_dead(struct cache_entry *dead)
{
	while (dead) {
		struct cache_entry *next = dead->hnext;

		free(dead);
		dead = next;
	}
}

static bool expired(const struct vmem_cache *c, const struct cache_entry *e,
		    uint64_t now)
{
	return now - e->born_ns > c->ttl_ns;
}

/* Drop every entry past its TTL; they are all at the age list's head. */
static void prune(struct vmem_cache *c, uint64_t now,
		  struct cache_entry **dead)
{
	while (c->age_head && expired(c, c->age_head, now))
		unlink_entry(c, c->age_head, dead);
}

static void lru_to_front(struct vmem_cache *c, struct cache_entry *e)
{
	if (c->lru_head == e)
		return;
	e->lru_prev->lru_next = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		c->lru_tail = e->lru_prev;
	e->lru_prev = NULL;
	e->lru_next = c->lru_head;
	c->lru_head->lru_prev = e;
	c->lru_head = e;
}

static struct cache_entry *find(struct vmem_cache *c, uint64_t key)
{
	struct cache_entry *e = c->buckets[bucket_of(c, key)];

	while (e && e->key != key)
		e = e->hnext;
	return e;
}

bool vmem_cache_get(struct vmem_cache *c, uint64_t chunk_off, void *dst,
		    uint64_t token)
{
	struct cache_entry *e, *dead = NULL;
	uint64_t now = vmem_now_ns();

	pthread_mutex_lock(&c->lock);
	prune(c, now, &dead);
	e = find(c, chunk_off);
	if (e && e->token != token) {
		/* A page move began since this was fetched: the sub-host's
		 * copy may have changed, and it can never match again. */
		unlink_entry(c, e, &dead);
		e = NULL;
	}
	if (e) {
		__atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
		lru_to_front(c, e);
	}
	pthread_mutex_unlock(&c->lock);
	free_dead(dead);
	if (!e)
		return false;

	memcpy(dst, e->data, c->chunk);
	if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(e);
	return true;
}

void vmem_cache_put(struct vmem_cache *c, uint64_t chunk_off, const void *src,
		    uint64_t token)
{
	struct cache_entry *e, *old, *dead = NULL;
	struct cache_entry **bucket;

	e = malloc(sizeof(*e) + c->chunk);
	if (!e)
		return;		/* a cache may always forget */
	memcpy(e->data, src, c->chunk);
	e->key = chunk_off;
	e->token = token;
	e->refs = 1;

	pthread_mutex_lock(&c->lock);
	e->born_ns = vmem_now_ns();	/* under the lock: the age list stays sorted */
	prune(c, e->born_ns, &dead);
	old = find(c, chunk_off);
	if (old)
		unlink_entry(c, old, &dead);
	while (c->bytes + c->chunk > c->capacity)
		unlink_entry(c, c->lru_tail, &dead);

	bucket = &c->buckets[bucket_of(c, chunk_off)];
	e->hnext = *bucket;
	*bucket = e;

	e->lru_prev = NULL;
	e->lru_next = c->lru_head;
	if (c->lru_head)
		c->lru_head->lru_prev = e;
	else
		c->lru_tail = e;
	c->lru_head = e;

	e->age_next = NULL;
	e->age_prev = c->age_tail;
	if (c->age_tail)
		c->age_tail->age_next = e;
	else
		c->age_head = e;
	c->age_tail = e;

	c->bytes += c->chunk;
	pthread_mutex_unlock(&c->lock);
	free_dead(dead);
}

uint64_t vmem_cache_bytes(struct vmem_cache *c)
{
	struct cache_entry *dead = NULL;
	uint64_t b;

	if (!c)
		return 0;
	/* Expired data is dropped here too, so a `stats` reader that polls
	 * this also frees what nobody can use any more. */
	pthread_mutex_lock(&c->lock);
	prune(c, vmem_now_ns(), &dead);
	b = c->bytes;
	pthread_mutex_unlock(&c->lock);
	free_dead(dead);
	return b;
}
