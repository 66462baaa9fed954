// SPDX-License-Identifier: MIT
/*
 * The direct backend: read the memory that is not on the main host from
 * its home sub-host over NBD, without the VM's involvement.
 *
 * Each sub-host has a small pool of libnbd connections (common/nbdconn.h
 * says what it promises).  A thread takes one idle connection for a whole
 * fetch, pipelines every chunk request of the fetch on it and gives it
 * back.  Each sub-host has its own pool: a dead or stalled sub-host
 * therefore costs only the readers of its own range, and those get -EIO
 * within the VM's timeout.  A request the server refuses (an NBD error
 * reply) fails that read with -EIO and nothing else.
 *
 * Connections are made lazily, from fetch(), with a deadline on the name
 * lookup, the connect and the handshake: a sub-host whose packets vanish
 * (a netns that is gone, a stopped server, a silent resolver) must not
 * hang a reader past the timeout.  After the sub-host was found down it
 * is left alone for DIRECT_RETRY_MS, so that a burst of readers does not
 * turn into a burst of doomed connects; the first read after that tries
 * again, so recovery needs no timer thread.
 *
 * What is fetched is always whole aligned chunks (clipped to the home
 * range), whatever the reader asked for: that is the unit the cache
 * keeps and the unit the config's chunk-size promises.  chunk-size is
 * not the size of a request, though: adjacent chunks of one fetch that
 * land next to each other in the caller's buffer go out as one request
 * (nbdconn cuts it to the server's maximum block size), so a 1 MiB read
 * of 64K chunks is one 1 MiB NBD read, not sixteen.  A chunk that sticks
 * out of the caller's buffer (the first and the last of an unaligned
 * read) lands in a spare buffer, and a chunk the cache served is not
 * asked for, so those split the run: at most one request more each.
 * With fetch-merge = off every chunk is a request of its own, as the
 * paper's direct fetch sends them (for comparisons with it).
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/memunits.h"
#include "../common/nbdconn.h"
#include "backend.h"
#include "cache.h"
#include "log.h"
#include "memfile.h"
#include "stats.h"

#define DIRECT_POOL 4			/* connections per sub-host */
#define DIRECT_RETRY_MS 100		/* quiet time after a failure */
#define DIRECT_STACK_PIECES 16		/* pieces kept off the heap */
/*
 * NBD commands in flight per fetch: the head, middle and tail requests of
 * an unaligned read, and the parts of a request longer than the server's
 * maximum block size.  Deep queues do not pay: measured with nbdkit on
 * loopback, 64K reads ran at 2.9-3.2 GiB/s with 4 in flight and 2.0-2.2
 * GiB/s with 16 (the server's threads contend).
 */
#define DIRECT_WINDOW 4

struct direct_sub {
	char *uri;
	uint64_t start, end;		/* home range */
	struct vmem_subhost_stats *st;
	struct nbdconn *nc;		/* the connection pool */
	long refused_log_sec;		/* for vmem_log_should() */
};

struct direct {
	const struct vmem_memfile *mf;	/* may be NULL: no eviction seq */
	struct vmem_stats *stats;
	uint64_t cache_hits;		/* chunks served from the cache */
	uint64_t cache_misses;		/* cacheable chunks it did not have */
	uint64_t chunk;
	bool merge;			/* fetch-merge: adjacent chunks as one */
	uint64_t timeout_ms;
	struct vmem_cache *cache;	/* NULL: keep nothing */
	size_t n_subs;
	struct direct_sub *subs;
};

/* One chunk-aligned part of a fetch. */
struct piece {
	uint64_t off;			/* RAM (= export) offset */
	size_t len;			/* chunk, or less where clipped */
	unsigned char *dst;		/* where the sub-host's bytes land */
	bool in_place;			/* dst is inside the caller's buffer */
	bool whole;			/* a full aligned chunk: cacheable */
	bool need;			/* not served by the cache */
	bool quiet;			/* no page move in flight at start */
	uint64_t token;			/* eviction sequence of the chunk */
};

/* ---- the sub-host's connections (common/nbdconn) -------------------- */

static void sub_event(void *opaque, enum nbdconn_event ev, const char *msg)
{
	struct direct_sub *s = opaque;

	switch (ev) {
	case NBDCONN_CONNECTED:
		vmem_stat_add(s->st->connects, 1);
		break;
	case NBDCONN_DOWN:
		vmem_log(LOG_WARNING,
			 "sub-host %s: %s; reads of its range fail until it answers again",
			 s->uri, msg);
		break;
	case NBDCONN_UP:
		vmem_log(LOG_NOTICE, "sub-host %s answers again", s->uri);
		break;
	}
}

/* The server refused a request: worth a line, but not one per read when
 * a disk goes bad under a busy reader. */
static void log_refused(struct direct_sub *s, const char *why)
{
	if (vmem_log_should(&s->refused_log_sec))
		vmem_log(LOG_WARNING,
			 "sub-host %s: %s; that read fails with EIO, the sub-host stays up (one such line a second at most)",
			 s->uri, why);
}

/*
 * Fetch the needed pieces from sub-host @s on one of its connections
 * (see nbdconn.h for the retry on a stale connection and for what makes
 * a sub-host down).  0 or -EIO; @rq has room for every piece.
 */
static int fetch_remote(struct direct_sub *s, struct piece *pieces, size_t n,
			struct nbdconn_req *rq, bool merge, uint64_t deadline)
{
	char why[256] = "";
	size_t k = 0;
	unsigned int ok = 0, sent = 0;
	int rc;

	for (size_t i = 0; i < n; i++) {
		const struct piece *p = &pieces[i];
		struct nbdconn_req *prev = k ? &rq[k - 1] : NULL;

		if (!p->need)
			continue;
		/* Next to the previous request on the export and in
		 * memory: the same request, longer. */
		if (merge && prev && prev->off + prev->len == p->off &&
		    (unsigned char *)prev->buf + prev->len == p->dst) {
			prev->len += p->len;
			continue;
		}
		rq[k++] = (struct nbdconn_req){
			.op = NBDCONN_READ, .buf = p->dst,
			.off = p->off, .len = p->len,
		};
	}
	rc = nbdconn_run(s->nc, rq, k, deadline, why, sizeof(why));
	for (size_t i = 0; i < k; i++) {
		if (!rq[i].sent)
			continue;
		sent += rq[i].parts;
		if (rc >= 0 && rq[i].answered && !rq[i].err) {
			ok += rq[i].parts;
			vmem_stat_add(s->st->bytes, rq[i].len);
			vmem_hist_add(&s->st->latency, rq[i].ns);
		}
	}
	vmem_stat_add(s->st->requests, sent);
	if (rc == 0)
		return 0;
	vmem_stat_add(s->st->errors, sent ? sent - ok : 1);
	if (rc == NBDCONN_REFUSED)
		log_refused(s, why);
	return -EIO;
}

static int direct_fetch(void *h, unsigned int home, void *buf, uint64_t off,
			size_t len)
{
	struct direct *d = h;
	struct direct_sub *s;
	struct piece stack_pieces[DIRECT_STACK_PIECES], *pieces = stack_pieces;
	struct nbdconn_req stack_rq[DIRECT_STACK_PIECES], *rq = stack_rq;
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
	deadline = vmem_deadline_ns(d->timeout_ms);

	first = off & ~(chunk - 1);
	last = (end - 1) & ~(chunk - 1);
	n = (size_t)((last - first) / chunk) + 1;
	if (n > DIRECT_STACK_PIECES) {
		pieces = malloc(n * sizeof(*pieces));
		rq = malloc(n * sizeof(*rq));
		if (!pieces || !rq) {
			rc = -ENOMEM;
			goto out;
		}
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
				vmem_stat_add(d->cache_hits, 1);
			} else {
				vmem_stat_add(d->cache_misses, 1);
			}
		}
		if (p->need)
			n_need++;
	}

	if (n_need) {
		rc = fetch_remote(s, pieces, n, rq, d->merge, deadline);
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
	if (rq != stack_rq)
		free(rq);
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

		nbdconn_free(s->nc);
		free(s->uri);
	}
	free(d->subs);
	vmem_cache_free(d->cache);
	free(d);
}

static void *direct_open(const struct vmem_vm *vm,
			 const struct vmem_memfile *mf,
			 struct vmem_stats *stats, struct vmem_qmp *qmp,
			 char *err, size_t errlen)
{
	struct direct *d;

	(void)qmp;	/* the VM is never asked: that is the point */
	if (!vmem_chunk_size_ok(vm->chunk_size)) {
		snprintf(err, errlen, "direct backend: bad chunk-size %llu",
			 (unsigned long long)vm->chunk_size);
		return NULL;
	}
	if (vm->timeout_ms == 0) {
		snprintf(err, errlen, "direct backend: timeout must be > 0");
		return NULL;
	}
	if (!stats || stats->n_subhosts < vm->n_subhosts) {
		snprintf(err, errlen,
			 "direct backend: stats for %zu sub-hosts, need %zu",
			 stats ? stats->n_subhosts : 0, vm->n_subhosts);
		return NULL;
	}

	d = calloc(1, sizeof(*d));
	if (!d)
		goto nomem;
	d->mf = mf && mf->seq ? mf : NULL;
	d->chunk = vm->chunk_size;
	d->merge = !vm->fetch_merge_off;
	d->timeout_ms = vm->timeout_ms;
	d->stats = stats;
	d->subs = calloc(vm->n_subhosts + 1, sizeof(*d->subs));
	if (!d->subs)
		goto nomem;
	for (size_t i = 0; i < vm->n_subhosts; i++) {
		struct direct_sub *s = &d->subs[i];
		struct nbdconn_params p = {
			.uri = vm->subhosts[i].uri,
			.tls = &vm->subhosts[i].tls,
			/* Export offsets are RAM offsets: anything shorter
			 * than the home's end is refused at connect. */
			.min_size = vm->subhosts[i].end,
			.max_conns = DIRECT_POOL,
			.max_idle = DIRECT_POOL,
			.window = DIRECT_WINDOW,
			.quiet_ms = DIRECT_RETRY_MS,
			.event = sub_event,
			.opaque = s,
		};

		s->uri = strdup(vm->subhosts[i].uri);
		s->st = &d->stats->sub[i];
		s->start = vm->subhosts[i].start;
		s->end = vm->subhosts[i].end;
		d->n_subs++;	/* direct_close() frees what is set */
		if (!s->uri)
			goto nomem;
		s->nc = nbdconn_new(&p, err, errlen);
		if (!s->nc)
			goto nomem;
	}

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

static void direct_stats_json(void *h, struct json_object *o)
{
	struct direct *d = h;

	json_object_object_add(o, "cache_hits", json_object_new_uint64(
		__atomic_load_n(&d->cache_hits, __ATOMIC_RELAXED)));
	json_object_object_add(o, "cache_misses", json_object_new_uint64(
		__atomic_load_n(&d->cache_misses, __ATOMIC_RELAXED)));
}

const struct vmem_backend_ops vmem_backend_direct = {
	.info = { .name = "direct" },
	.open = direct_open,
	.close = direct_close,
	.fetch = direct_fetch,
	.stats_json = direct_stats_json,
};
