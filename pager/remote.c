// SPDX-License-Identifier: MIT
/*
 * NBD access for the pager: the shared client (common/nbdconn.c) with
 * the pager's pool shape, and ranges cut into requests a server takes.
 */
#include "remote.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/nbdconn.h"

/* Idle handles kept per sub-host; more may exist while busy. */
#define POOL_MAX 8
/*
 * Biggest single NBD request: nbdkit and most servers accept 32 MiB, and
 * splitting larger moves lets the pieces travel pipelined.
 */
#define REQ_MAX (4ULL << 20)
/* Enough requests in flight to cover the largest chunk (16 MiB). */
#define INFLIGHT_MAX 64

struct vp_remote {
	char *uri;
	struct nbdconn *nc;
};

struct vp_remote *vp_remote_new(const char *uri, uint64_t home_end,
				const struct vmem_tls *tls)
{
	struct nbdconn_params p = {
		.uri = uri,
		.tls = tls,
		.min_size = home_end,
		.max_conns = 0,		/* fault threads never wait for one */
		.max_idle = POOL_MAX,
		.window = INFLIGHT_MAX,
		.quiet_ms = 0,		/* the pager backs off by itself */
	};
	struct vp_remote *r = calloc(1, sizeof(*r));
	char err[64];

	if (!r)
		return NULL;
	r->uri = strdup(uri);
	r->nc = nbdconn_new(&p, err, sizeof(err));
	if (!r->uri || !r->nc) {
		vp_remote_free(r);
		errno = ENOMEM;
		return NULL;
	}
	return r;
}

void vp_remote_free(struct vp_remote *r)
{
	if (!r)
		return;
	nbdconn_free(r->nc);
	free(r->uri);
	free(r);
}

/* Cut [off, off+len) into REQ_MAX requests; @buf may be NULL (discard). */
static size_t cut(struct nbdconn_req *rq, size_t max, enum nbdconn_op op,
		  char *buf, uint64_t off, uint64_t len)
{
	size_t n = 0;

	while (len > 0 && n < max) {
		uint64_t l = len < REQ_MAX ? len : REQ_MAX;

		rq[n] = (struct nbdconn_req){
			.op = op, .buf = buf, .off = off, .len = l,
		};
		n++;
		if (buf)
			buf += l;
		off += l;
		len -= l;
	}
	return n;
}

/* Run @n requests; 0, or -1 with errno and "URI: what: why" in @err. */
static int run(struct vp_remote *r, struct nbdconn_req *rq, size_t n,
	       uint64_t timeout_ms, const char *what, char *err,
	       size_t errlen)
{
	char why[256];
	int rc = nbdconn_run(r->nc, rq, n, vmem_deadline_ns(timeout_ms), why,
			     sizeof(why));
	int e;

	if (rc == 0)
		return 0;
	e = -rc;
	if (rc == NBDCONN_REFUSED) {
		e = EIO;
		for (size_t i = 0; i < n; i++) {
			if (rq[i].answered && rq[i].err) {
				e = rq[i].err;
				break;
			}
		}
	}
	snprintf(err, errlen, "%s: %s: %s", r->uri, what, why);
	errno = e;
	return -1;
}

static struct nbdconn_req *alloc_reqs(struct vp_remote *r, size_t max,
				      char *err, size_t errlen)
{
	struct nbdconn_req *rq = calloc(max ? max : 1, sizeof(*rq));

	if (!rq) {
		snprintf(err, errlen, "%s: out of memory", r->uri);
		errno = ENOMEM;
	}
	return rq;
}

static int run_range(struct vp_remote *r, enum nbdconn_op op, char *buf,
		     uint64_t len, uint64_t off, uint64_t timeout_ms,
		     const char *what, char *err, size_t errlen)
{
	size_t max = len / REQ_MAX + 1, n;
	struct nbdconn_req *rq = alloc_reqs(r, max, err, errlen);
	int rc;

	if (!rq)
		return -1;
	n = cut(rq, max, op, buf, off, len);
	rc = run(r, rq, n, timeout_ms, what, err, errlen);
	free(rq);
	return rc;
}

int vp_remote_pread(struct vp_remote *r, void *buf, uint64_t len,
		    uint64_t off, uint64_t timeout_ms, char *err,
		    size_t errlen)
{
	return run_range(r, NBDCONN_READ, buf, len, off, timeout_ms, "read",
			 err, errlen);
}

int vp_remote_discard(struct vp_remote *r, uint64_t len, uint64_t off,
		      uint64_t timeout_ms, char *err, size_t errlen)
{
	return run_range(r, NBDCONN_DISCARD, NULL, len, off, timeout_ms,
			 "trim", err, errlen);
}

/* @n runs of @op, cut into requests and all pipelined on one handle. */
static int run_runs(struct vp_remote *r, enum nbdconn_op op,
		    void *const *bufs, const uint64_t *offs,
		    const uint64_t *lens, size_t n, uint64_t timeout_ms,
		    const char *what, char *err, size_t errlen)
{
	size_t max = 0, k = 0;
	struct nbdconn_req *rq;
	int rc;

	for (size_t i = 0; i < n; i++)
		max += lens[i] / REQ_MAX + 1;
	rq = alloc_reqs(r, max, err, errlen);
	if (!rq)
		return -1;
	for (size_t i = 0; i < n; i++)
		k += cut(rq + k, max - k, op, bufs ? bufs[i] : NULL, offs[i],
			 lens[i]);
	rc = run(r, rq, k, timeout_ms, what, err, errlen);
	free(rq);
	return rc;
}

int vp_remote_pwritev(struct vp_remote *r, void *const *bufs,
		      const uint64_t *offs, const uint64_t *lens, size_t n,
		      uint64_t timeout_ms, char *err, size_t errlen)
{
	return run_runs(r, NBDCONN_WRITE, bufs, offs, lens, n, timeout_ms,
			"write", err, errlen);
}

int vp_remote_preadv(struct vp_remote *r, void *const *bufs,
		     const uint64_t *offs, const uint64_t *lens, size_t n,
		     uint64_t timeout_ms, char *err, size_t errlen)
{
	return run_runs(r, NBDCONN_READ, bufs, offs, lens, n, timeout_ms,
			"read", err, errlen);
}

int vp_remote_discardv(struct vp_remote *r, const uint64_t *offs,
		       const uint64_t *lens, size_t n, uint64_t timeout_ms,
		       char *err, size_t errlen)
{
	return run_runs(r, NBDCONN_DISCARD, NULL, offs, lens, n, timeout_ms,
			"trim", err, errlen);
}
