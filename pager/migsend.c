// SPDX-License-Identifier: MIT
/*
 * Cold pages of a split migration to their sub-hosts (migsend.h), on
 * vmemtrans' NBD client (common/nbdconn.h).
 */
#include "migsend.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/memunits.h"
#include "../common/nbdconn.h"
#include "../common/timeutil.h"

#define PG		VMEM_PAGE_SIZE
#define REQ_BYTES	(1ULL << 20)	/* coalesced write, at most */
#define BATCH		16		/* requests in flight per sub-host */
#define TRIM_BYTES	(32ULL << 20)	/* biggest discard request */

struct dest {
	const struct vmem_subhost *sh;
	struct nbdconn *nc;
	struct nbdconn_req req[BATCH];
	char *buf[BATCH];
	size_t nreq;
	struct vmem_cold_sender_stats st;
};

struct vmem_cold_sender {
	const struct vmem_plan *plan;
	uint64_t timeout_ms;
	struct dest *d;
	size_t n;
	uint64_t *sent;		/* per page: may be non-zero remotely */
	uint64_t new_bytes;
	bool failed;
	char why[512];
};

static bool page_is_zero(const void *p)
{
	const uint64_t *q = p;

	for (size_t i = 0; i < PG / sizeof(*q); i++)
		if (q[i])
			return false;
	return true;
}

static int fail(struct vmem_cold_sender *s, char *err, size_t errlen,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(struct vmem_cold_sender *s, char *err, size_t errlen,
		const char *fmt, ...)
{
	va_list ap;

	if (!s->failed) {
		va_start(ap, fmt);
		vsnprintf(s->why, sizeof(s->why), fmt, ap);
		va_end(ap);
		s->failed = true;
	}
	snprintf(err, errlen, "%s", s->why);
	errno = EIO;
	return -1;
}

static int run_batch(struct vmem_cold_sender *s, struct dest *d,
		     char *err, size_t errlen)
{
	char why[256] = "";
	int rc;

	if (!d->nreq)
		return 0;
	rc = nbdconn_run(d->nc, d->req, d->nreq,
			 vmem_deadline_ns(s->timeout_ms), why, sizeof(why));
	if (rc == NBDCONN_REFUSED) {
		for (size_t i = 0; i < d->nreq; i++)
			if (d->req[i].err)
				snprintf(why, sizeof(why), "write of %" PRIu64
					 " bytes at %#" PRIx64 " refused: %s",
					 d->req[i].len, d->req[i].off,
					 strerror(d->req[i].err));
	}
	if (rc != 0)
		return fail(s, err, errlen, "sub-host %s: %s", d->sh->uri,
			    why[0] ? why : strerror(-rc));
	d->st.requests += d->nreq;
	d->nreq = 0;
	return 0;
}

static int discard_home(struct vmem_cold_sender *s, struct dest *d,
			char *err, size_t errlen)
{
	uint64_t off = d->sh->start;

	while (off < d->sh->end) {
		struct nbdconn_req q[BATCH];
		size_t n = 0;
		char why[256] = "";
		int rc;

		memset(q, 0, sizeof(q));
		while (n < BATCH && off < d->sh->end) {
			uint64_t len = d->sh->end - off;

			if (len > TRIM_BYTES)
				len = TRIM_BYTES;
			/* Zeroes, not a trim: a trim is a hint the server
			 * may ignore, and the zero pages left out below
			 * must read as zeros. */
			q[n].op = NBDCONN_ZERO;
			q[n].off = off;
			q[n].len = len;
			n++;
			off += len;
		}
		rc = nbdconn_run(d->nc, q, n, vmem_deadline_ns(s->timeout_ms),
				 why, sizeof(why));
		if (rc != 0)
			return fail(s, err, errlen, "sub-host %s: zeroing "
				    "its home range [%#" PRIx64 ", %#" PRIx64
				    ") at setup: %s", d->sh->uri, d->sh->start,
				    d->sh->end, rc == NBDCONN_REFUSED ?
				    "refused" : why[0] ? why : strerror(-rc));
	}
	return 0;
}

struct vmem_cold_sender *vmem_cold_sender_new(const struct vmem_plan *plan,
					      const struct vmem_vm *vm,
					      char *err, size_t errlen)
{
	struct vmem_cold_sender *s = calloc(1, sizeof(*s));
	uint64_t pages = plan->size / PG;

	if (!s)
		goto oom;
	s->plan = plan;
	s->timeout_ms = vm->timeout_ms ? vm->timeout_ms : 2000;
	s->n = vm->n_subhosts;
	s->d = calloc(s->n + 1, sizeof(*s->d));
	s->sent = calloc((pages + 63) / 64, sizeof(*s->sent));
	if (!s->d || !s->sent)
		goto oom;
	for (size_t i = 0; i < s->n; i++) {
		struct dest *d = &s->d[i];
		struct nbdconn_params p = {
			.uri = vm->subhosts[i].uri,
			.tls = &vm->subhosts[i].tls,	/* the same TLS as the pager's */
			.min_size = vm->subhosts[i].end,
			.max_conns = 1,
			.max_idle = 1,
			.window = BATCH,
			.quiet_ms = 0,
		};

		d->sh = &vm->subhosts[i];
		d->st.uri = d->sh->uri;
		d->nc = nbdconn_new(&p, err, errlen);
		if (!d->nc)
			goto fail;
		for (size_t k = 0; k < BATCH; k++) {
			d->buf[k] = malloc(REQ_BYTES);
			if (!d->buf[k])
				goto oom;
		}
		if (discard_home(s, d, err, errlen) < 0)
			goto fail;
	}
	return s;
oom:
	snprintf(err, errlen, "out of memory for the cold-page sender");
	errno = ENOMEM;
fail:
	vmem_cold_sender_free(s);
	return NULL;
}

void vmem_cold_sender_free(struct vmem_cold_sender *s)
{
	if (!s)
		return;
	for (size_t i = 0; s->d && i < s->n; i++) {
		if (s->d[i].nc)
			nbdconn_free(s->d[i].nc);
		for (size_t k = 0; k < BATCH; k++)
			free(s->d[i].buf[k]);
	}
	free(s->d);
	free(s->sent);
	free(s);
}

/* Is [off, off + PG) in a request of @d not yet sent? */
static bool queued(const struct dest *d, uint64_t off)
{
	for (size_t i = 0; i < d->nreq; i++)
		if (off >= d->req[i].off &&
		    off < d->req[i].off + d->req[i].len)
			return true;
	return false;
}

int vmem_cold_sender_page(struct vmem_cold_sender *s, uint64_t off,
			  const void *page, char *err, size_t errlen)
{
	const struct vmem_plan_window *w;
	struct nbdconn_req *q;
	struct dest *d;
	uint64_t pn = off / PG, bit = 1ULL << (pn % 64);

	if (s->failed)
		return fail(s, err, errlen, "%s", "");
	if (off >= s->plan->size || off % PG) {
		snprintf(err, errlen, "page offset %#" PRIx64 " outside RAM "
			 "or not page aligned", off);
		errno = EINVAL;
		return -1;
	}
	w = &s->plan->w[vmem_plan_find(s->plan, off)];
	if (w->main)
		return 0;
	d = &s->d[w->home];
	if (page_is_zero(page)) {
		if (!(s->sent[pn / 64] & bit) && !queued(d, off)) {
			d->st.zero_skipped++;
			return 1;
		}
		s->sent[pn / 64] &= ~bit;
	} else {
		s->sent[pn / 64] |= bit;
	}
	if (queued(d, off) && run_batch(s, d, err, errlen) < 0)
		return -1;
	q = d->nreq ? &d->req[d->nreq - 1] : NULL;
	if (!q || q->off + q->len != off || q->len + PG > REQ_BYTES) {
		if (d->nreq == BATCH && run_batch(s, d, err, errlen) < 0)
			return -1;
		q = &d->req[d->nreq];
		memset(q, 0, sizeof(*q));
		q->op = NBDCONN_WRITE;
		q->buf = d->buf[d->nreq];
		q->off = off;
		d->nreq++;
	}
	memcpy((char *)q->buf + q->len, page, PG);
	q->len += PG;
	d->st.bytes += PG;
	d->st.pages++;
	s->new_bytes += PG;
	return 1;
}

/*
 * NBD FLUSH on @d's connection, in a call of its own: the server
 * acknowledged every write of @d before it goes, so it covers them all.
 */
static int flush_one(struct vmem_cold_sender *s, struct dest *d,
		     char *err, size_t errlen)
{
	struct nbdconn_req q = { .op = NBDCONN_FLUSH };
	char why[256] = "";
	int rc;

	rc = nbdconn_run(d->nc, &q, 1, vmem_deadline_ns(s->timeout_ms), why,
			 sizeof(why));
	if (rc != 0)
		return fail(s, err, errlen, "sub-host %s: flush before the "
			    "commit: %s", d->sh->uri, rc == NBDCONN_REFUSED ?
			    (q.err ? strerror(q.err) : "refused") :
			    why[0] ? why : strerror(-rc));
	if (q.parts)
		d->st.flushes++;
	return 0;
}

int vmem_cold_sender_drain(struct vmem_cold_sender *s, char *err,
			   size_t errlen)
{
	if (s->failed)
		return fail(s, err, errlen, "%s", "");
	/* Every write answered everywhere first, then the flushes. */
	for (size_t i = 0; i < s->n; i++)
		if (run_batch(s, &s->d[i], err, errlen) < 0)
			return -1;
	for (size_t i = 0; i < s->n; i++)
		if (flush_one(s, &s->d[i], err, errlen) < 0)
			return -1;
	return 0;
}

uint64_t vmem_cold_sender_take_new_bytes(struct vmem_cold_sender *s)
{
	uint64_t b = s->new_bytes;

	s->new_bytes = 0;
	return b;
}

size_t vmem_cold_sender_n(const struct vmem_cold_sender *s)
{
	return s->n;
}

void vmem_cold_sender_get_stats(const struct vmem_cold_sender *s, size_t i,
				struct vmem_cold_sender_stats *st)
{
	*st = s->d[i].st;
}
