// SPDX-License-Identifier: MIT
/*
 * The direct backend: read the memory that is not on the main host from
 * its home sub-host over NBD, without the VM's involvement.
 *
 * Each sub-host has a small pool of libnbd connections.  A thread takes
 * one idle connection for a whole fetch, pipelines every chunk request of
 * the fetch on it and gives it back.  The pool's mutex guards only the
 * bookkeeping, never a network wait, and each sub-host has its own pool:
 * a dead or stalled sub-host therefore costs only the readers of its own
 * range, and those get -EIO within the VM's timeout.
 *
 * Connections are made lazily, from fetch(), with libnbd's asynchronous
 * connect and a deadline: a sub-host whose packets vanish (a netns that
 * is gone, a stopped server) must not hang a reader past the timeout.
 * After a failure a sub-host is left alone for DIRECT_RETRY_MS, so that a
 * burst of readers does not turn into a burst of doomed connects; the
 * first read after that tries again, so recovery needs no timer thread.
 *
 * Requests to a sub-host are always whole aligned chunks (clipped to the
 * home range), whatever the reader asked for: that is the unit the cache
 * keeps and the unit the config's chunk-size promises.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libnbd.h>

#include "backend.h"
#include "cache.h"
#include "log.h"
#include "memfile.h"
#include "stats.h"

#define DIRECT_POOL 4			/* connections per sub-host */
#define DIRECT_RETRY_MS 100		/* quiet time after a failure */
#define DIRECT_STACK_PIECES 16		/* pieces kept off the heap */
/*
 * Requests in flight per fetch.  Deep queues do not pay: measured with
 * nbdkit on loopback, 64K reads ran at 2.9-3.2 GiB/s with 4 in flight and
 * 2.0-2.2 GiB/s with 16 (the server's threads contend), and a 1 MiB read
 * of 64K chunks went from 0.52x to 0.62x raw libnbd with a window of 4.
 */
#define DIRECT_WINDOW 4

struct direct_conn {
	struct nbd_handle *nbd;		/* NULL: not connected */
	bool busy;			/* owned by a fetch right now */
};

struct direct_sub {
	char *uri;
	uint64_t start, end;		/* home range */
	struct vmem_subhost_stats *st;

	pthread_mutex_t lock;		/* guards the fields below */
	pthread_cond_t idle;		/* a connection was given back */
	uint64_t retry_at_ns;		/* no new connection before this */
	bool down;			/* last attempt failed (for the log) */
	struct direct_conn conn[DIRECT_POOL];
};

struct direct {
	const struct vmem_memfile *mf;	/* may be NULL: no eviction seq */
	struct vmem_stats *stats;
	struct vmem_stats own_stats;	/* used when the caller gave none */
	uint64_t chunk;
	uint64_t timeout_ns;
	struct vmem_cache *cache;	/* NULL: keep nothing */
	size_t n_subs;
	struct direct_sub *subs;
};

/* One chunk-aligned request of a fetch. */
struct piece {
	uint64_t off;			/* RAM (= export) offset */
	size_t len;			/* chunk, or less where clipped */
	unsigned char *dst;		/* where the sub-host's bytes land */
	bool in_place;			/* dst is inside the caller's buffer */
	bool whole;			/* a full aligned chunk: cacheable */
	bool need;			/* not served by the cache */
	bool quiet;			/* no page move in flight at start */
	uint64_t token;			/* eviction sequence of the chunk */
	uint64_t t0;			/* when the request was sent */
	struct wait_ctx *ctx;
};

struct wait_ctx {
	struct vmem_subhost_stats *st;
	unsigned int pending;		/* requests sent and not answered */
	unsigned int ok;		/* requests answered with data */
	int err;			/* first error reported */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Milliseconds left until @deadline, rounded up; 0 when it has passed. */
static int ms_left(uint64_t deadline)
{
	uint64_t now = now_ns(), ms;

	if (now >= deadline)
		return 0;
	ms = (deadline - now + 999999) / 1000000;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

static struct timespec abs_monotonic(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000ull),
		.tv_nsec = (long)(ns % 1000000000ull),
	};

	return ts;
}

/* ---- connection pool ---------------------------------------------- */

/*
 * Take an idle connection of @s, preferring one that is already
 * connected.  Waits for one to come back until @deadline.  Returns NULL
 * when none came, or when a new connection would be needed while the
 * sub-host is still in its quiet time after a failure.
 */
static struct direct_conn *pool_get(struct direct_sub *s, uint64_t deadline)
{
	struct direct_conn *c;
	struct timespec ts = abs_monotonic(deadline);

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct direct_conn *fresh = NULL;

		c = NULL;
		for (unsigned int i = 0; i < DIRECT_POOL; i++) {
			if (s->conn[i].busy)
				continue;
			if (s->conn[i].nbd) {
				c = &s->conn[i];
				break;
			}
			if (!fresh)
				fresh = &s->conn[i];
		}
		if (!c)
			c = fresh;
		if (c)
			break;
		if (pthread_cond_timedwait(&s->idle, &s->lock, &ts) ==
		    ETIMEDOUT) {
			pthread_mutex_unlock(&s->lock);
			return NULL;
		}
	}
	if (!c->nbd && now_ns() < s->retry_at_ns) {
		pthread_mutex_unlock(&s->lock);
		return NULL;
	}
	c->busy = true;
	pthread_mutex_unlock(&s->lock);
	return c;
}

static void pool_put(struct direct_sub *s, struct direct_conn *c)
{
	pthread_mutex_lock(&s->lock);
	c->busy = false;
	pthread_cond_signal(&s->idle);
	pthread_mutex_unlock(&s->lock);
}

/*
 * @c failed: close it (its state is unknown, answers may still be on the
 * way) and the idle connections too, since whatever broke this one most
 * likely broke them (a restarted server leaves them all half dead).
 * With @quiet_time, also keep new connects away for a while.
 * Closing happens outside the lock: it is a syscall per handle.
 */
static void pool_fail(struct direct_sub *s, struct direct_conn *c,
		      bool quiet_time, const char *why)
{
	struct nbd_handle *dead[DIRECT_POOL];
	unsigned int n = 0;
	bool log_it = false;

	pthread_mutex_lock(&s->lock);
	if (c->nbd)
		dead[n++] = c->nbd;
	c->nbd = NULL;
	for (unsigned int i = 0; i < DIRECT_POOL; i++) {
		if (!s->conn[i].busy && s->conn[i].nbd) {
			dead[n++] = s->conn[i].nbd;
			s->conn[i].nbd = NULL;
		}
	}
	if (quiet_time) {
		s->retry_at_ns = now_ns() + DIRECT_RETRY_MS * 1000000ull;
		log_it = !s->down;
		s->down = true;
	}
	c->busy = false;
	/* Everyone waiting re-checks: the quiet time may send them away. */
	pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->lock);

	while (n)
		nbd_close(dead[--n]);
	if (log_it)
		vmem_log(LOG_WARNING,
			 "sub-host %s: %s; reads of its range fail until it answers again",
			 s->uri, why);
}

/* Connect @c to @s before @deadline without ever blocking on the peer. */
static int conn_open(struct direct_sub *s, struct direct_conn *c,
		     uint64_t deadline, char *why, size_t whylen)
{
	struct nbd_handle *nbd = nbd_create();
	bool was_down;

	if (!nbd) {
		snprintf(why, whylen, "%s", nbd_get_error());
		return -1;
	}
	/* libnbd zeroes read buffers before each read by default, to hide
	 * stale memory on failure.  We never hand out a failed read's
	 * buffer, so that would be a wasted pass over every byte. */
	nbd_set_pread_initialize(nbd, false);
	if (nbd_aio_connect_uri(nbd, s->uri) == -1)
		goto fail;
	while (!nbd_aio_is_ready(nbd)) {
		int ms;

		if (nbd_aio_is_dead(nbd) || nbd_aio_is_closed(nbd)) {
			snprintf(why, whylen, "connection lost during handshake");
			goto out;
		}
		ms = ms_left(deadline);
		if (ms == 0) {
			snprintf(why, whylen, "no handshake within the timeout");
			goto out;
		}
		if (nbd_poll(nbd, ms) == -1)
			goto fail;
	}
	c->nbd = nbd;
	vmem_stat_add(s->st->connects, 1);

	pthread_mutex_lock(&s->lock);
	was_down = s->down;
	s->down = false;
	s->retry_at_ns = 0;	/* it answers: others may connect at once */
	pthread_mutex_unlock(&s->lock);
	if (was_down)
		vmem_log(LOG_NOTICE, "sub-host %s answers again", s->uri);
	return 0;

fail:
	snprintf(why, whylen, "%s", nbd_get_error());
out:
	nbd_close(nbd);
	return -1;
}

/* ---- one fetch ---------------------------------------------------- */

static int piece_done(void *user_data, int *error)
{
	struct piece *p = user_data;
	struct wait_ctx *ctx = p->ctx;

	if (*error) {
		if (!ctx->err)
			ctx->err = *error;
	} else {
		ctx->ok++;
		vmem_stat_add(ctx->st->bytes, p->len);
		vmem_hist_add(&ctx->st->latency, now_ns() - p->t0);
	}
	ctx->pending--;
	/* Not retired here (return 1) but by retire_done(): libnbd 1.14
	 * reads the command after a failed first send, and a command
	 * retired from its own callback is freed by then. */
	return 0;
}

/* Retire the commands whose callbacks have run, so a pooled handle does
 * not collect them for its whole life. */
static void retire_done(struct nbd_handle *nbd)
{
	int64_t cookie;

	while ((cookie = nbd_aio_peek_command_completed(nbd)) > 0)
		nbd_aio_command_completed(nbd, (uint64_t)cookie);
}

/*
 * Send the needed pieces on @nbd, up to DIRECT_WINDOW at a time, and wait
 * for all answers.  Returns 0, or -1 with a reason in @why (and
 * *timed_out set when the deadline ran out rather than the connection
 * failing).  *failed is the number of pieces not delivered.  @ctx belongs
 * to the caller because requests still in flight on failure are only
 * dropped when the caller closes the handle, so it must outlive this call.
 */
static int run_pieces(struct direct_sub *s, struct nbd_handle *nbd,
		      struct piece *pieces, size_t n, uint64_t deadline,
		      struct wait_ctx *ctx, unsigned int *failed,
		      bool *timed_out, char *why, size_t whylen)
{
	unsigned int needed = 0;
	size_t next = 0;
	int rc = 0;

	*ctx = (struct wait_ctx){ .st = s->st };
	for (size_t i = 0; i < n; i++)
		needed += pieces[i].need;

	for (;;) {
		int ms;

		/* Top up the window: pipelined, but bounded, so a huge read
		 * does not queue thousands of commands in libnbd at once. */
		while (next < n && ctx->pending < DIRECT_WINDOW) {
			struct piece *p = &pieces[next++];
			nbd_completion_callback cb = {
				.callback = piece_done, .user_data = p,
			};

			if (!p->need)
				continue;
			p->ctx = ctx;
			p->t0 = now_ns();
			/* Counted first: if the handle is already dead,
			 * libnbd may complete it before returning. */
			ctx->pending++;
			if (nbd_aio_pread(nbd, p->dst, p->len, p->off, cb,
					  0) == -1) {
				ctx->pending--;
				snprintf(why, whylen, "%s", nbd_get_error());
				rc = -1;
				goto out;
			}
			vmem_stat_add(s->st->requests, 1);
		}
		retire_done(nbd);
		if (ctx->err) {
			snprintf(why, whylen, "read failed: %s",
				 strerror(ctx->err));
			rc = -1;
			goto out;
		}
		if (!ctx->pending)
			break;

		ms = ms_left(deadline);
		if (ms == 0) {
			snprintf(why, whylen, "no answer within the timeout");
			*timed_out = true;
			rc = -1;
			goto out;
		}
		if (nbd_poll(nbd, ms) == -1) {
			snprintf(why, whylen, "%s", nbd_get_error());
			rc = -1;
			goto out;
		}
	}
out:
	*failed = rc ? needed - ctx->ok : 0;
	return rc;
}

/*
 * Fetch the needed pieces from sub-host @s.  A connection that was idle
 * in the pool may have died since (the sub-host restarted): if it fails
 * before the deadline, try once more on a fresh connection before calling
 * the sub-host down.
 */
static int fetch_remote(struct direct_sub *s, struct piece *pieces, size_t n,
			uint64_t deadline)
{
	char why[256] = "";
	struct wait_ctx ctx;

	for (int attempt = 0; attempt < 2; attempt++) {
		struct direct_conn *c;
		bool fresh = false, timed_out = false;
		unsigned int failed = 0;

		c = pool_get(s, deadline);
		if (!c) {
			vmem_stat_add(s->st->errors, 1);
			return -EIO;
		}
		if (!c->nbd) {
			if (conn_open(s, c, deadline, why, sizeof(why)) < 0) {
				vmem_stat_add(s->st->errors, 1);
				pool_fail(s, c, true, why);
				return -EIO;
			}
			fresh = true;
		}
		if (run_pieces(s, c->nbd, pieces, n, deadline, &ctx, &failed,
			       &timed_out, why, sizeof(why)) == 0) {
			pool_put(s, c);
			return 0;
		}
		if (fresh || timed_out || ms_left(deadline) == 0) {
			vmem_stat_add(s->st->errors, failed ? failed : 1);
			pool_fail(s, c, true, why);
			return -EIO;
		}
		/* A stale pooled connection: not the sub-host's fault yet. */
		pool_fail(s, c, false, why);
	}
	return -EIO;
}

static int direct_fetch(void *h, unsigned int home, void *buf, uint64_t off,
			size_t len)
{
	struct direct *d = h;
	struct direct_sub *s;
	struct piece stack_pieces[DIRECT_STACK_PIECES], *pieces = stack_pieces;
	unsigned char *out = buf, *spare = NULL;
	uint64_t chunk = d->chunk, first, last, deadline, end = off + len;
	size_t n, n_need = 0, n_spare = 0;
	int rc = 0;

	if (home >= d->n_subs)
		return -EINVAL;
	s = &d->subs[home];
	if (len == 0)
		return VMEM_FETCH_DATA;
	if (off < s->start || end > s->end || end < off)
		return -EINVAL;
	deadline = now_ns() + d->timeout_ns;

	first = off & ~(chunk - 1);
	last = (end - 1) & ~(chunk - 1);
	n = (size_t)((last - first) / chunk) + 1;
	if (n > DIRECT_STACK_PIECES) {
		pieces = malloc(n * sizeof(*pieces));
		if (!pieces)
			return -ENOMEM;
	}

	for (size_t i = 0; i < n; i++) {
		struct piece *p = &pieces[i];
		uint64_t cs = first + i * chunk;
		uint64_t ps = cs > s->start ? cs : s->start;
		uint64_t pe = cs + chunk < s->end ? cs + chunk : s->end;

		*p = (struct piece){
			.off = ps,
			.len = (size_t)(pe - ps),
			.whole = ps == cs && pe == cs + chunk,
			.in_place = ps >= off && pe <= end,
			.need = true,
		};
		if (p->in_place)
			p->dst = out + (ps - off);
		else
			n_spare++;	/* only the first and the last */
	}
	/* Pieces that stick out of the caller's buffer land in a spare
	 * chunk each and are copied from there. */
	if (n_spare) {
		unsigned char *next;

		spare = malloc(n_spare * chunk);
		if (!spare) {
			rc = -ENOMEM;
			goto out;
		}
		next = spare;
		for (size_t i = 0; i < n; i++) {
			if (!pieces[i].in_place) {
				pieces[i].dst = next;
				next += chunk;
			}
		}
	}

	for (size_t i = 0; i < n; i++) {
		struct piece *p = &pieces[i];
		uint64_t cs = first + i * chunk;

		/* Clipped pieces are not cached: the same aligned chunk
		 * offset names different bytes on the neighbouring home. */
		if (d->cache && p->whole) {
			p->quiet = true;
			p->token = d->mf ? vmem_memfile_seq_begin(d->mf, cs, chunk,
								  &p->quiet)
					 : 0;
			if (vmem_cache_get(d->cache, cs, p->dst, p->token)) {
				p->need = false;
				vmem_stat_add(d->stats->cache_hits, 1);
			} else {
				vmem_stat_add(d->stats->cache_misses, 1);
			}
		}
		if (p->need)
			n_need++;
	}

	if (n_need) {
		rc = fetch_remote(s, pieces, n, deadline);
		if (rc < 0)
			goto out;
	}

	for (size_t i = 0; i < n; i++) {
		struct piece *p = &pieces[i];

		if (!p->in_place) {
			uint64_t a = p->off > off ? p->off : off;
			uint64_t b = p->off + p->len < end ? p->off + p->len
							    : end;

			memcpy(out + (a - off), p->dst + (a - p->off), b - a);
		}
		/* Keep it only if no page move was in flight or began
		 * while it travelled: otherwise the sub-host's copy may
		 * already be obsolete, or about to be. */
		if (d->cache && p->whole && p->need && p->quiet &&
		    (!d->mf || vmem_memfile_seq_valid(d->mf, p->off, chunk,
						      p->token)))
			vmem_cache_put(d->cache, p->off, p->dst, p->token);
	}
	rc = VMEM_FETCH_DATA;
out:
	free(spare);
	if (pieces != stack_pieces)
		free(pieces);
	return rc;
}

/* ---- open / close ------------------------------------------------- */

static void direct_close(void *h)
{
	struct direct *d = h;

	if (!d)
		return;
	for (size_t i = 0; i < d->n_subs; i++) {
		struct direct_sub *s = &d->subs[i];

		for (unsigned int j = 0; j < DIRECT_POOL; j++)
			nbd_close(s->conn[j].nbd);
		pthread_cond_destroy(&s->idle);
		pthread_mutex_destroy(&s->lock);
		free(s->uri);
	}
	free(d->subs);
	vmem_cache_free(d->cache);
	free(d->own_stats.sub);
	free(d);
}

static void *direct_open(const struct vmem_vm *vm,
			 const struct vmem_memfile *mf,
			 struct vmem_stats *stats, struct vmem_qmp *qmp,
			 char *err, size_t errlen)
{
	struct direct *d;
	pthread_condattr_t ca;

	(void)qmp;	/* the VM is never asked: that is the point */
	if (vm->chunk_size < 4096 || (vm->chunk_size & (vm->chunk_size - 1))) {
		snprintf(err, errlen, "direct backend: bad chunk-size %llu",
			 (unsigned long long)vm->chunk_size);
		return NULL;
	}
	if (vm->timeout_ms == 0) {
		snprintf(err, errlen, "direct backend: timeout must be > 0");
		return NULL;
	}
	if (stats && stats->n_subhosts < vm->n_subhosts) {
		snprintf(err, errlen,
			 "direct backend: stats for %zu sub-hosts, need %zu",
			 stats->n_subhosts, vm->n_subhosts);
		return NULL;
	}

	d = calloc(1, sizeof(*d));
	if (!d)
		goto nomem;
	d->mf = mf && mf->seq ? mf : NULL;
	d->chunk = vm->chunk_size;
	d->timeout_ns = vm->timeout_ms * 1000000ull;
	d->stats = stats;
	if (!stats) {
		/* Counting into a private sink keeps fetch() free of
		 * NULL checks on the hot path. */
		d->own_stats.n_subhosts = vm->n_subhosts;
		d->own_stats.sub = calloc(vm->n_subhosts + 1,
					  sizeof(*d->own_stats.sub));
		if (!d->own_stats.sub)
			goto nomem;
		d->stats = &d->own_stats;
	}
	d->subs = calloc(vm->n_subhosts + 1, sizeof(*d->subs));
	if (!d->subs)
		goto nomem;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	for (size_t i = 0; i < vm->n_subhosts; i++) {
		struct direct_sub *s = &d->subs[i];

		s->uri = strdup(vm->subhosts[i].uri);
		if (!s->uri) {
			pthread_condattr_destroy(&ca);
			goto nomem;
		}
		s->start = vm->subhosts[i].start;
		s->end = vm->subhosts[i].end;
		s->st = &d->stats->sub[i];
		pthread_mutex_init(&s->lock, NULL);
		pthread_cond_init(&s->idle, &ca);
		d->n_subs++;
	}
	pthread_condattr_destroy(&ca);

	/*
	 * NULL when cache-size is 0 (or below one chunk): fetch everything.
	 * Without an eviction sequence file nothing tells us that a page
	 * moved after we cached its chunk: a page that was local when the
	 * chunk was fetched is a hole (zeros) in the sub-host's copy, and
	 * once it moves out the cache would serve those zeros as its data.
	 * The TTL alone cannot bound that, so no sequence, no cache.
	 */
	if (mf && mf->seq)
		d->cache = vmem_cache_new(vm->cache_size, vm->chunk_size,
					  vm->cache_ttl_ms);
	else if (vm->cache_size)
		vmem_log(LOG_NOTICE, "VM %s: no eviction sequence file beside %s: "
			 "fetched data is not cached", vm->name, vm->memory_file);
	return d;

nomem:
	snprintf(err, errlen, "direct backend: out of memory");
	direct_close(d);
	return NULL;
}

const struct vmem_backend_ops vmem_backend_direct = {
	.name = "direct",
	.open = direct_open,
	.close = direct_close,
	.fetch = direct_fetch,
};
