// SPDX-License-Identifier: MIT
/*
 * Unit tests for vmemfs/cache.c: which entries an LRU with a byte budget
 * keeps, TTL expiry, eviction-token mismatch, byte accounting, and many
 * threads getting and putting at once without ever seeing wrong bytes.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../vmemfs/cache.h"
#include "lib/suite.h"

#define CHUNK 4096u

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* Content of the chunk with key @key in version @ver: every 8-byte word
 * differs, and so does every (key, version) pair. */
static void fill(unsigned char *buf, uint64_t key, uint64_t ver)
{
	for (unsigned int i = 0; i < CHUNK / 8; i++) {
		uint64_t w = (key * 0x9e3779b97f4a7c15ull) ^ (ver << 48) ^ i;

		memcpy(buf + 8 * i, &w, 8);
	}
}

static bool holds(const unsigned char *buf, uint64_t key, uint64_t ver)
{
	unsigned char want[CHUNK];

	fill(want, key, ver);
	return memcmp(buf, want, CHUNK) == 0;
}

static void put(struct vmem_cache *c, uint64_t n, uint64_t ver,
		uint64_t token)
{
	unsigned char buf[CHUNK];

	fill(buf, n * CHUNK, ver);
	vmem_cache_put(c, n * CHUNK, buf, token);
}

/* Get chunk number @n: true and content checked when present. */
static bool get(struct vmem_cache *c, uint64_t n, uint64_t ver,
		uint64_t token)
{
	unsigned char buf[CHUNK];

	memset(buf, 0xa5, sizeof(buf));
	if (!vmem_cache_get(c, n * CHUNK, buf, token))
		return false;
	ck_assert_msg(holds(buf, n * CHUNK, ver),
		      "chunk %llu: wrong bytes", (unsigned long long)n);
	return true;
}

/* ---- construction --------------------------------------------------- */

START_TEST(no_cache_when_too_small)
{
	struct vmem_cache *c;

	ck_assert_ptr_null(vmem_cache_new(0, CHUNK, 100));
	ck_assert_ptr_null(vmem_cache_new(CHUNK - 1, CHUNK, 100));
	ck_assert_ptr_null(vmem_cache_new(4 * CHUNK, 0, 100));
	/* Entries would be stale on arrival: nothing worth keeping. */
	ck_assert_ptr_null(vmem_cache_new(4 * CHUNK, CHUNK, 0));
	ck_assert_uint_eq(vmem_cache_bytes(NULL), 0);
	vmem_cache_free(NULL);

	c = vmem_cache_new(CHUNK, CHUNK, 100);
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(vmem_cache_bytes(c), 0);
	vmem_cache_free(c);
}
END_TEST

/* ---- LRU and bytes -------------------------------------------------- */

START_TEST(lru_evicts_least_recently_used)
{
	/* Four and a half chunks of budget hold four chunks. */
	struct vmem_cache *c = vmem_cache_new(4 * CHUNK + CHUNK / 2, CHUNK,
					      10000);

	for (uint64_t n = 0; n < 4; n++) {
		put(c, n, 0, 7);
		ck_assert_uint_eq(vmem_cache_bytes(c), (n + 1) * CHUNK);
	}
	/* Use 0 and 2: recency order is now 2, 0, 3, 1 (1 is oldest). */
	ck_assert(get(c, 0, 0, 7));
	ck_assert(get(c, 2, 0, 7));

	put(c, 4, 0, 7);
	ck_assert_uint_eq(vmem_cache_bytes(c), 4 * CHUNK);
	ck_assert(!get(c, 1, 0, 7));

	/* Order: 4, 2, 0, 3.  Two more puts push out 3 and then 0. */
	put(c, 5, 0, 7);
	ck_assert(!get(c, 3, 0, 7));
	put(c, 6, 0, 7);
	ck_assert(!get(c, 0, 0, 7));
	ck_assert_uint_eq(vmem_cache_bytes(c), 4 * CHUNK);

	ck_assert(get(c, 2, 0, 7));
	ck_assert(get(c, 4, 0, 7));
	ck_assert(get(c, 5, 0, 7));
	ck_assert(get(c, 6, 0, 7));
	vmem_cache_free(c);
}
END_TEST

START_TEST(put_replaces_in_place)
{
	struct vmem_cache *c = vmem_cache_new(2 * CHUNK, CHUNK, 10000);

	put(c, 1, 0, 3);
	put(c, 2, 0, 3);
	/* Replacing 1 must not evict 2, and must make 1 the most recent. */
	put(c, 1, 1, 4);
	ck_assert_uint_eq(vmem_cache_bytes(c), 2 * CHUNK);
	ck_assert(get(c, 2, 0, 3));
	ck_assert(get(c, 1, 1, 4));
	put(c, 3, 0, 3);		/* evicts 2, now the least recent */
	ck_assert(!get(c, 2, 0, 3));
	ck_assert(get(c, 1, 1, 4));
	ck_assert(get(c, 3, 0, 3));
	vmem_cache_free(c);
}
END_TEST

START_TEST(keys_far_apart_and_colliding)
{
	/* Many keys in a small table: chains and big offsets must work. */
	struct vmem_cache *c = vmem_cache_new(64 * CHUNK, CHUNK, 10000);

	for (uint64_t n = 0; n < 64; n++)
		put(c, n * 1024 * 1024 + n, 0, 1);
	for (uint64_t n = 0; n < 64; n++)
		ck_assert(get(c, n * 1024 * 1024 + n, 0, 1));
	ck_assert(!get(c, 5, 0, 1));
	ck_assert_uint_eq(vmem_cache_bytes(c), 64 * CHUNK);
	vmem_cache_free(c);
}
END_TEST

/* ---- token ---------------------------------------------------------- */

START_TEST(token_mismatch_drops)
{
	struct vmem_cache *c = vmem_cache_new(8 * CHUNK, CHUNK, 10000);

	put(c, 1, 0, 5);
	put(c, 2, 0, 5);
	ck_assert_uint_eq(vmem_cache_bytes(c), 2 * CHUNK);
	/* A page move began: token 6.  The entry is useless for good. */
	ck_assert(!get(c, 1, 0, 6));
	ck_assert_uint_eq(vmem_cache_bytes(c), CHUNK);
	ck_assert(!get(c, 1, 0, 5));
	ck_assert(get(c, 2, 0, 5));
	vmem_cache_free(c);
}
END_TEST

/* ---- TTL ------------------------------------------------------------ */

START_TEST(ttl_expires)
{
	const uint64_t ttl_ms = 20;
	struct vmem_cache *c = vmem_cache_new(8 * CHUNK, CHUNK, ttl_ms);
	uint64_t t_put, t_got;
	bool hit;

	t_put = mono_ns();
	put(c, 1, 0, 0);
	hit = get(c, 1, 0, 0);
	t_got = mono_ns();
	/* Only a stall longer than the TTL may turn this into a miss. */
	ck_assert(hit || t_got - t_put > ttl_ms * 1000000);

	sleep_ms(2 * ttl_ms);
	ck_assert(!get(c, 1, 0, 0));
	ck_assert_uint_eq(vmem_cache_bytes(c), 0);

	/* Expired data is let go without anyone asking for it. */
	put(c, 2, 0, 0);
	put(c, 3, 0, 0);
	ck_assert_uint_eq(vmem_cache_bytes(c), 2 * CHUNK);
	sleep_ms(2 * ttl_ms);
	ck_assert_uint_eq(vmem_cache_bytes(c), 0);
	vmem_cache_free(c);
}
END_TEST

START_TEST(ttl_counts_from_fetch_not_use)
{
	/* A get must not make an entry younger: the data stays as old as
	 * the fetch that brought it. */
	const uint64_t ttl_ms = 60;
	struct vmem_cache *c = vmem_cache_new(8 * CHUNK, CHUNK, ttl_ms);
	uint64_t t_put = mono_ns(), t0, t1;
	bool hit;

	put(c, 1, 0, 0);
	put(c, 2, 0, 0);
	for (int i = 0; i < 3; i++) {
		sleep_ms(ttl_ms / 3);
		t0 = mono_ns();
		hit = get(c, 1, 0, 0);
		t1 = mono_ns();
		if (t1 - t_put <= ttl_ms * 1000000)
			ck_assert(hit);
		if (t0 - t_put > ttl_ms * 1000000 + 1000000)
			ck_assert(!hit);
	}
	sleep_ms(ttl_ms);
	ck_assert(!get(c, 1, 0, 0));
	/* The entry nobody used expired just the same. */
	ck_assert(!get(c, 2, 0, 0));
	vmem_cache_free(c);
}
END_TEST

START_TEST(put_after_expiry_is_fresh)
{
	const uint64_t ttl_ms = 20;
	struct vmem_cache *c = vmem_cache_new(8 * CHUNK, CHUNK, ttl_ms);
	uint64_t t;
	bool hit;

	put(c, 1, 0, 0);
	sleep_ms(2 * ttl_ms);
	t = mono_ns();
	put(c, 1, 1, 0);
	hit = get(c, 1, 1, 0);
	ck_assert(hit || mono_ns() - t > ttl_ms * 1000000);
	ck_assert_uint_le(vmem_cache_bytes(c), CHUNK);
	vmem_cache_free(c);
}
END_TEST

/* ---- threads -------------------------------------------------------- */

#define T_THREADS 8
#define T_KEYS 256
#define T_CAP 64
#define T_OPS 20000

struct tstate {
	struct vmem_cache *c;
	unsigned int seed;
	unsigned long hits, bad;
};

static void *hammer(void *arg)
{
	struct tstate *t = arg;
	unsigned char buf[CHUNK];

	for (int i = 0; i < T_OPS; i++) {
		uint64_t key = (uint64_t)(rand_r(&t->seed) % T_KEYS) * CHUNK;
		/* The token is a function of the key, except that now and
		 * then a thread asks with a wrong one (a move began). */
		uint64_t token = key / CHUNK % 3;

		if (rand_r(&t->seed) % 50 == 0)
			token += 100;
		if (vmem_cache_get(t->c, key, buf, token)) {
			t->hits++;
			if (!holds(buf, key, 0))
				t->bad++;
		} else {
			fill(buf, key, 0);
			vmem_cache_put(t->c, key, buf, key / CHUNK % 3);
		}
	}
	return NULL;
}

START_TEST(threads_see_only_right_bytes)
{
	struct vmem_cache *c = vmem_cache_new(T_CAP * CHUNK, CHUNK, 10000);
	pthread_t th[T_THREADS];
	struct tstate st[T_THREADS];
	unsigned long hits = 0, bad = 0;

	for (int i = 0; i < T_THREADS; i++) {
		st[i] = (struct tstate){ .c = c, .seed = 1234u + (unsigned)i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, &st[i]),
				 0);
	}
	for (int i = 0; i < T_THREADS; i++) {
		pthread_join(th[i], NULL);
		hits += st[i].hits;
		bad += st[i].bad;
	}
	ck_assert_uint_eq(bad, 0);
	/* 64 of 256 keys fit: about a quarter of the gets should hit. */
	ck_assert_uint_gt(hits, T_THREADS * T_OPS / 10);
	ck_assert_uint_lt(hits, T_THREADS * T_OPS / 2);
	/* Wrong-token gets may have dropped a few since the last put. */
	ck_assert_uint_le(vmem_cache_bytes(c), T_CAP * CHUNK);
	ck_assert_uint_ge(vmem_cache_bytes(c), T_CAP * CHUNK / 2);

	/* Whatever is left is intact, and the bytes are what it holds. */
	{
		uint64_t n = 0, bytes = vmem_cache_bytes(c);

		for (uint64_t k = 0; k < T_KEYS; k++)
			if (get(c, k, 0, k % 3))
				n++;
		ck_assert_uint_eq(n * CHUNK, bytes);
	}
	vmem_cache_free(c);
}
END_TEST

static Suite *cache_suite(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = vt_tcase_checked(s, "core", NULL, NULL, 30);

	tcase_add_test(tc, no_cache_when_too_small);
	tcase_add_test(tc, lru_evicts_least_recently_used);
	tcase_add_test(tc, put_replaces_in_place);
	tcase_add_test(tc, keys_far_apart_and_colliding);
	tcase_add_test(tc, token_mismatch_drops);
	tcase_add_test(tc, ttl_expires);
	tcase_add_test(tc, ttl_counts_from_fetch_not_use);
	tcase_add_test(tc, put_after_expiry_is_fresh);
	tcase_add_test(tc, threads_see_only_right_bytes);
	return s;
}

int main(void)
{
	return vt_run_suite(cache_suite());
}
