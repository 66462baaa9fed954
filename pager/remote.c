// SPDX-License-Identifier: MIT
/*
 * NBD access for the pager: a pool of libnbd handles per sub-host, and
 * every request driven with the aio API under a deadline.
 */
#include "remote.h"

#include <errno.h>
#include <inttypes.h>
#include <libnbd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	pthread_mutex_t mu;
	struct nbd_handle *idle[POOL_MAX];
	int n_idle;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = now_ms();

	if (now >= deadline)
		return 0;
	return deadline - now > 60000 ? 60000 : (int)(deadline - now);
}

/* A healthy handle says goodbye (NBD_CMD_DISC) so the server does not
 * log a reset connection; a failed one is just dropped. */
static void close_handle(struct nbd_handle *h, bool healthy)
{
	if (healthy && nbd_aio_is_ready(h))
		nbd_shutdown(h, 0);
	nbd_close(h);
}

struct vp_remote *vp_remote_new(const char *uri)
{
	struct vp_remote *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->uri = strdup(uri);
	if (!r->uri) {
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->mu, NULL);
	return r;
}

void vp_remote_free(struct vp_remote *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->n_idle; i++)
		close_handle(r->idle[i], true);
	pthread_mutex_destroy(&r->mu);
	free(r->uri);
	free(r);
}

const char *vp_remote_uri(const struct vp_remote *r)
{
	return r->uri;
}

static void set_err(char *err, size_t errlen, const struct vp_remote *r,
		    const char *what, int e)
{
	const char *msg = nbd_get_error();

	if (e == ETIMEDOUT || !msg)
		msg = strerror(e);
	snprintf(err, errlen, "%s: %s: %s", r->uri, what, msg);
}

static struct nbd_handle *connect_one(struct vp_remote *r, uint64_t deadline,
				      char *err, size_t errlen)
{
	struct nbd_handle *h = nbd_create();
	int e;

	if (!h) {
		set_err(err, errlen, r, "nbd_create", ENOMEM);
		errno = ENOMEM;
		return NULL;
	}
	if (nbd_aio_connect_uri(h, r->uri) == -1)
		goto fail;
	while (nbd_aio_is_connecting(h)) {
		int ms = remaining_ms(deadline);

		if (ms == 0) {
			errno = ETIMEDOUT;
			goto fail;
		}
		if (nbd_poll(h, ms) == -1)
			goto fail;
	}
	if (!nbd_aio_is_ready(h)) {
		errno = ECONNREFUSED;
		goto fail;
	}
	return h;
fail:
	e = nbd_get_errno() ? nbd_get_errno() : (errno ? errno : EIO);
	set_err(err, errlen, r, "connect", e);
	nbd_close(h);
	errno = e;
	return NULL;
}

static struct nbd_handle *get_handle(struct vp_remote *r, uint64_t deadline,
				     bool *reused, char *err, size_t errlen)
{
	struct nbd_handle *h = NULL;

	pthread_mutex_lock(&r->mu);
	if (r->n_idle > 0)
		h = r->idle[--r->n_idle];
	pthread_mutex_unlock(&r->mu);
	*reused = h != NULL;
	if (h)
		return h;
	return connect_one(r, deadline, err, errlen);
}

/* After a transport failure the other idle handles are likely dead too. */
static void drop_idle(struct vp_remote *r)
{
	struct nbd_handle *old[POOL_MAX];
	int n;

	pthread_mutex_lock(&r->mu);
	n = r->n_idle;
	memcpy(old, r->idle, sizeof(old));
	r->n_idle = 0;
	pthread_mutex_unlock(&r->mu);
	for (int i = 0; i < n; i++)
		nbd_close(old[i]);
}

static void put_handle(struct vp_remote *r, struct nbd_handle *h, bool ok)
{
	if (ok) {
		pthread_mutex_lock(&r->mu);
		if (r->n_idle < POOL_MAX) {
			r->idle[r->n_idle++] = h;
			h = NULL;
		}
		pthread_mutex_unlock(&r->mu);
	}
	if (h)
		close_handle(h, ok);
}

/*
 * Wait for @n cookies.  Returns 0, or -1 with errno; on error the handle
 * must be closed (commands may still be in flight into caller buffers,
 * and nbd_close() is what guarantees they never land).
 */
static int wait_cookies(struct nbd_handle *h, const int64_t *cookies,
			size_t n, uint64_t deadline)
{
	size_t done = 0;

	while (done < n) {
		int rc = nbd_aio_command_completed(h, cookies[done]);
		int ms;

		if (rc == 1) {
			done++;
			continue;
		}
		if (rc == -1) {
			errno = nbd_get_errno() ? nbd_get_errno() : EIO;
			return -1;
		}
		ms = remaining_ms(deadline);
		if (ms == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (nbd_poll(h, ms) == -1) {
			errno = nbd_get_errno() ? nbd_get_errno() : EIO;
			return -1;
		}
	}
	return 0;
}

enum op { OP_READ, OP_WRITE, OP_DISCARD };

struct piece {
	char *buf;
	uint64_t off, len;
};

/*
 * Issue the pieces (each <= REQ_MAX) with up to INFLIGHT_MAX in flight on
 * one handle, and wait for all of them.
 */
static int run_pieces(struct vp_remote *r, enum op op,
		      const struct piece *pc, size_t n, uint64_t timeout_ms,
		      const char *what, char *err, size_t errlen)
{
	uint64_t deadline = now_ms() + timeout_ms;
	int64_t cookies[INFLIGHT_MAX];
	struct nbd_handle *h;
	bool reused, again = true;
	size_t i;
	int e;

retry:
	i = 0;
	h = get_handle(r, deadline, &reused, err, errlen);
	if (!h)
		return -1;
	while (i < n) {
		size_t k = 0;

		for (; k < INFLIGHT_MAX && i + k < n; k++) {
			const struct piece *p = &pc[i + k];
			int64_t c;

			if (op == OP_READ)
				c = nbd_aio_pread(h, p->buf, p->len, p->off,
						  NBD_NULL_COMPLETION, 0);
			else if (op == OP_WRITE)
				c = nbd_aio_pwrite(h, p->buf, p->len, p->off,
						   NBD_NULL_COMPLETION, 0);
			else if (nbd_can_trim(h) == 1)
				c = nbd_aio_trim(h, p->len, p->off,
						 NBD_NULL_COMPLETION, 0);
			else
				c = nbd_aio_zero(h, p->len, p->off,
						 NBD_NULL_COMPLETION, 0);
			if (c == -1) {
				errno = nbd_get_errno() ? nbd_get_errno() : EIO;
				goto fail;
			}
			cookies[k] = c;
		}
		if (wait_cookies(h, cookies, k, deadline) == -1)
			goto fail;
		i += k;
	}
	put_handle(r, h, true);
	return 0;
fail:
	e = errno;
	set_err(err, errlen, r, what, e);
	put_handle(r, h, false);
	/*
	 * A pooled connection that died while idle (sub-host restarted)
	 * says nothing about the sub-host now: retry once on a new one.
	 * Repeating reads, writes and trims of the same bytes is harmless.
	 */
	if (reused && again && e != ETIMEDOUT) {
		again = false;
		drop_idle(r);
		goto retry;
	}
	errno = e;
	return -1;
}

/* Cut [off, off+len) into REQ_MAX pieces; @buf may be NULL (discard). */
static size_t cut(struct piece *pc, size_t max, char *buf, uint64_t off,
		  uint64_t len)
{
	size_t n = 0;

	while (len > 0 && n < max) {
		uint64_t l = len < REQ_MAX ? len : REQ_MAX;

		pc[n].buf = buf;
		pc[n].off = off;
		pc[n].len = l;
		n++;
		if (buf)
			buf += l;
		off += l;
		len -= l;
	}
	return n;
}

static int run_range(struct vp_remote *r, enum op op, char *buf,
		     uint64_t len, uint64_t off, uint64_t timeout_ms,
		     const char *what, char *err, size_t errlen)
{
	size_t max = len / REQ_MAX + 1, n;
	struct piece *pc = calloc(max, sizeof(*pc));
	int rc;

	if (!pc) {
		snprintf(err, errlen, "%s: out of memory", r->uri);
		errno = ENOMEM;
		return -1;
	}
	n = cut(pc, max, buf, off, len);
	rc = run_pieces(r, op, pc, n, timeout_ms, what, err, errlen);
	free(pc);
	return rc;
}

int vp_remote_pread(struct vp_remote *r, void *buf, uint64_t len,
		    uint64_t off, uint64_t timeout_ms, char *err,
		    size_t errlen)
{
	return run_range(r, OP_READ, buf, len, off, timeout_ms, "read",
			 err, errlen);
}

int vp_remote_discard(struct vp_remote *r, uint64_t len, uint64_t off,
		      uint64_t timeout_ms, char *err, size_t errlen)
{
	return run_range(r, OP_DISCARD, NULL, len, off, timeout_ms, "trim",
			 err, errlen);
}

int vp_remote_pwritev(struct vp_remote *r, void *const *bufs,
		      const uint64_t *offs, const uint64_t *lens, size_t n,
		      uint64_t timeout_ms, char *err, size_t errlen)
{
	size_t max = 0, k = 0;
	struct piece *pc;
	int rc;

	for (size_t i = 0; i < n; i++)
		max += lens[i] / REQ_MAX + 1;
	pc = calloc(max ? max : 1, sizeof(*pc));
	if (!pc) {
		snprintf(err, errlen, "%s: out of memory", r->uri);
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		k += cut(pc + k, max - k, bufs[i], offs[i], lens[i]);
	rc = run_pieces(r, OP_WRITE, pc, k, timeout_ms, "write", err, errlen);
	free(pc);
	return rc;
}
