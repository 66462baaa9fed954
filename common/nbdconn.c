// SPDX-License-Identifier: MIT
/*
 * The NBD client shared by vmemfs and the pager (contract in nbdconn.h).
 *
 * A pool counts its connections (busy and idle) against max_conns and
 * keeps at most max_idle connected handles between calls.  A call takes
 * an idle handle, or the right to connect a new one, or waits for one to
 * come back until its deadline.
 *
 * Host names: libnbd's nbd_aio_connect_uri() calls getaddrinfo() on the
 * caller's thread, unbounded.  So for nbd[s]://NAME URIs the pool looks
 * the name up itself, on a detached thread, and hands libnbd the same URI
 * with the numeric address in place of the name (for a numeric host
 * glibc's getaddrinfo() only parses).  One exception: X.509 checks the
 * server's certificate against the host as the URI names it, so with
 * tls-certificates the name stays, and libnbd looks it up once ours
 * answered (from the same resolver, fresh: it rarely waits then).
 *
 * TLS: libnbd's (GnuTLS); the pool only sets the mode and credentials on
 * each new handle before connecting.  nbds:// makes libnbd require TLS
 * by itself; nbd:// keeps the mode set here.  The lookup state is reference
 * counted between the pool and that thread, so a pool can be freed while
 * a lookup still hangs in the resolver.
 */
#include "nbdconn.h"
#include "timeutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libnbd.h>

#define LOOKUP_ADDRS 8		/* addresses kept from one lookup */
#define NBD_DEFAULT_PORT "10809"

/* ---- name lookup ------------------------------------------------------ */

struct lookup {
	char *host, *port;	/* immutable: read by the thread unlocked */
	char *head;		/* "nbds://USER@": the URI before the host */
	pthread_mutex_t mu;	/* guards the rest */
	pthread_cond_t done;	/* a lookup finished */
	unsigned int refs;	/* the pool, and a running thread */
	bool running;
	uint64_t gen;		/* lookups finished so far */
	int gai;		/* the last one's result: 0 or EAI_* */
	int sys;		/* its errno, for EAI_SYSTEM */
	struct sockaddr_storage addr[LOOKUP_ADDRS];
	unsigned int n;		/* usable addresses; 0: look up (again) */
	unsigned int next;	/* the one to connect to */
};

static void lookup_unref_locked(struct lookup *lk)
{
	bool last = --lk->refs == 0;

	pthread_mutex_unlock(&lk->mu);
	if (!last)
		return;
	pthread_cond_destroy(&lk->done);
	pthread_mutex_destroy(&lk->mu);
	free(lk->host);
	free(lk->port);
	free(lk->head);
	free(lk);
}

static void *lookup_thread(void *arg)
{
	struct lookup *lk = arg;
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_ADDRCONFIG,
	}, *res = NULL, *ai;
	int rc = getaddrinfo(lk->host, lk->port, &hints, &res);
	int sys = errno;

	pthread_mutex_lock(&lk->mu);
	lk->gai = rc;
	lk->sys = sys;
	lk->n = 0;
	lk->next = 0;
	for (ai = rc == 0 ? res : NULL; ai && lk->n < LOOKUP_ADDRS;
	     ai = ai->ai_next) {
		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(lk->addr[0]))
			continue;
		memcpy(&lk->addr[lk->n++], ai->ai_addr, ai->ai_addrlen);
	}
	if (rc == 0 && lk->n == 0)
		lk->gai = EAI_NONAME;
	lk->running = false;
	lk->gen++;
	pthread_cond_broadcast(&lk->done);
	lookup_unref_locked(lk);
	if (res)
		freeaddrinfo(res);
	return NULL;
}

/* Called with lk->mu held.  Signals are for the process's own threads. */
static int lookup_start(struct lookup *lk)
{
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t t;
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&t, &attr, lookup_thread, lk);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc)
		return -rc;
	lk->refs++;
	lk->running = true;
	return 0;
}

/*
 * Put into @uri the pool's URI with the host replaced by an address of
 * it, looking the name up first if no address is known; wait for that
 * at most until @deadline.  *@idx says which address it was.
 */
static int lookup_uri(struct lookup *lk, const char *tail, uint64_t deadline,
		      char *uri, size_t urilen, unsigned int *idx,
		      char *why, size_t whylen)
{
	struct timespec ts = vmem_timespec(deadline);
	char a[INET6_ADDRSTRLEN];
	uint64_t gen;
	int rc;

	pthread_mutex_lock(&lk->mu);
	gen = lk->gen;
	while (lk->n == 0) {
		if (lk->gen != gen && lk->gai != 0) {
			const char *m = lk->gai == EAI_SYSTEM ?
					strerror(lk->sys) : gai_strerror(lk->gai);

			snprintf(why, whylen, "name lookup of %s failed: %s",
				 lk->host, m);
			pthread_mutex_unlock(&lk->mu);
			return -EHOSTUNREACH;
		}
		if (!lk->running) {
			rc = lookup_start(lk);
			if (rc < 0) {
				snprintf(why, whylen,
					 "cannot start a name lookup of %s: %s",
					 lk->host, strerror(-rc));
				pthread_mutex_unlock(&lk->mu);
				return rc;
			}
		}
		if (pthread_cond_timedwait(&lk->done, &lk->mu, &ts) ==
		    ETIMEDOUT && lk->n == 0) {
			snprintf(why, whylen,
				 "name lookup of %s did not finish within the timeout",
				 lk->host);
			pthread_mutex_unlock(&lk->mu);
			return -ETIMEDOUT;
		}
	}
	*idx = lk->next;
	if (lk->addr[*idx].ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)&lk->addr[*idx];

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(uri, urilen, "%s[%s]:%s%s", lk->head, a, lk->port,
			 tail);
	} else {
		const struct sockaddr_in *s4 = (const void *)&lk->addr[*idx];

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(uri, urilen, "%s%s:%s%s", lk->head, a, lk->port, tail);
	}
	pthread_mutex_unlock(&lk->mu);
	return 0;
}

/* Address @idx did not take a connection: the next one gets the next
 * connect, and after the last one the name is looked up again. */
static void lookup_skip(struct lookup *lk, unsigned int idx)
{
	pthread_mutex_lock(&lk->mu);
	if (lk->n && lk->next == idx && ++lk->next >= lk->n)
		lk->n = lk->next = 0;
	pthread_mutex_unlock(&lk->mu);
}

static void lookup_forget(struct lookup *lk)
{
	pthread_mutex_lock(&lk->mu);
	lk->n = lk->next = 0;
	pthread_mutex_unlock(&lk->mu);
}

/*
 * For nbd[s]://[USER@]HOST[:PORT]... with a HOST that is not a numeric
 * address, a lookup for it, and in *@tail where the URI goes on after
 * the port.  NULL with *@tail NULL when no lookup is needed, NULL with
 * *@tail set on ENOMEM.
 */
static struct lookup *lookup_new(const char *uri, const char **tail)
{
	struct in6_addr a6;
	struct lookup *lk;
	const char *h, *he, *p, *at;
	size_t plen = 0;

	*tail = NULL;
	if (strncmp(uri, "nbd://", 6) == 0)
		h = uri + 6;
	else if (strncmp(uri, "nbds://", 7) == 0)
		h = uri + 7;
	else
		return NULL;
	at = h + strcspn(h, "@/?");
	if (*at == '@')
		h = at + 1;
	if (*h == '[')
		return NULL;	/* [IPv6]: numeric by definition */
	he = h + strcspn(h, ":/?");
	if (he == h)
		return NULL;	/* libnbd will say what is wrong */
	p = he;
	if (*p == ':') {
		p++;
		plen = strspn(p, "0123456789");
	}
	lk = calloc(1, sizeof(*lk));
	if (!lk) {
		*tail = uri;
		return NULL;
	}
	lk->host = strndup(h, (size_t)(he - h));
	lk->port = plen ? strndup(p, plen) : strdup(NBD_DEFAULT_PORT);
	lk->head = strndup(uri, (size_t)(h - uri));
	if (!lk->host || !lk->port || !lk->head) {
		free(lk->host);
		free(lk->port);
		free(lk->head);
		free(lk);
		*tail = uri;
		return NULL;
	}
	if (inet_pton(AF_INET, lk->host, &a6) == 1 ||
	    inet_pton(AF_INET6, lk->host, &a6) == 1) {
		free(lk->host);
		free(lk->port);
		free(lk->head);
		free(lk);
		return NULL;
	}
	*tail = p + plen;
	pthread_mutex_init(&lk->mu, NULL);
	vmem_cond_init_monotonic(&lk->done);
	lk->refs = 1;
	return lk;
}

/* ---- the pool --------------------------------------------------------- */

struct nbdconn {
	char *uri;
	struct lookup *lk;		/* NULL: nothing to look up */
	const char *tail;		/* in uri, after HOST[:PORT] */
	uint64_t min_size;
	enum vmem_tls_mode tls;		/* OFF: clear NBD */
	char *psk_file, *certificates, *username;	/* NULL: unset */
	bool keep_name;			/* connect by name (X.509) */
	unsigned int max_conns, max_idle, window;
	uint64_t quiet_ns;
	void (*event)(void *opaque, enum nbdconn_event ev, const char *msg);
	void *opaque;

	pthread_mutex_t mu;		/* guards the fields below */
	pthread_cond_t back;		/* a connection was given back */
	unsigned int live;		/* connections, busy and idle */
	unsigned int n_idle;
	struct nbd_handle **idle;	/* max_idle entries */
	bool down;			/* since the last DOWN event */
	uint64_t retry_at_ns;		/* no new connect before this */
};

/* Per call, on the caller's stack: what the completion callbacks count. */
struct run {
	unsigned int pending;		/* sent and not answered */
	bool refused;			/* a reply carried an error */
};

static void tell(struct nbdconn *c, enum nbdconn_event ev, const char *msg)
{
	if (c->event)
		c->event(c->opaque, ev, msg);
}

/* A healthy handle says goodbye (NBD_CMD_DISC, queued without waiting)
 * so the server does not log a reset connection; a failed one is just
 * dropped. */
static void close_handle(struct nbd_handle *h, bool healthy)
{
	if (healthy && nbd_aio_is_ready(h))
		nbd_aio_disconnect(h, 0);
	nbd_close(h);
}

struct nbdconn *nbdconn_new(const struct nbdconn_params *p, char *err,
			    size_t errlen)
{
	struct nbdconn *c = calloc(1, sizeof(*c));

	if (!c)
		goto nomem;
	c->uri = strdup(p->uri);
	c->idle = calloc(p->max_idle ? p->max_idle : 1, sizeof(*c->idle));
	if (!c->uri || !c->idle)
		goto nomem;
	c->lk = lookup_new(c->uri, &c->tail);
	if (!c->lk && c->tail)
		goto nomem;
	c->tls = p->tls && p->tls->mode ? p->tls->mode : VMEM_TLS_OFF;
	if (c->tls != VMEM_TLS_OFF) {
		if ((p->tls->psk_file &&
		     !(c->psk_file = strdup(p->tls->psk_file))) ||
		    (p->tls->certificates &&
		     !(c->certificates = strdup(p->tls->certificates))) ||
		    (p->tls->username &&
		     !(c->username = strdup(p->tls->username))))
			goto nomem;
		c->keep_name = c->certificates != NULL;
	}
	c->min_size = p->min_size;
	c->max_conns = p->max_conns;
	c->max_idle = p->max_idle;
	c->window = p->window ? p->window : 1;
	c->quiet_ns = p->quiet_ms * VMEM_NS_PER_MS;
	c->event = p->event;
	c->opaque = p->opaque;
	pthread_mutex_init(&c->mu, NULL);
	vmem_cond_init_monotonic(&c->back);
	return c;
nomem:
	snprintf(err, errlen, "out of memory");
	if (c) {
		if (c->lk) {
			pthread_mutex_lock(&c->lk->mu);
			lookup_unref_locked(c->lk);
		}
		free(c->psk_file);
		free(c->certificates);
		free(c->username);
		free(c->idle);
		free(c->uri);
		free(c);
	}
	return NULL;
}

void nbdconn_free(struct nbdconn *c)
{
	if (!c)
		return;
	for (unsigned int i = 0; i < c->n_idle; i++)
		close_handle(c->idle[i], true);
	if (c->lk) {
		pthread_mutex_lock(&c->lk->mu);
		lookup_unref_locked(c->lk);
	}
	pthread_cond_destroy(&c->back);
	pthread_mutex_destroy(&c->mu);
	free(c->psk_file);
	free(c->certificates);
	free(c->username);
	free(c->idle);
	free(c->uri);
	free(c);
}

/*
 * An idle handle in *@h, or *@h = NULL and the right to connect one, or
 * -errno when neither came before @deadline or the pool is quiet.
 */
static int pool_get(struct nbdconn *c, uint64_t deadline,
		    struct nbd_handle **h, char *why, size_t whylen)
{
	struct timespec ts = vmem_timespec(deadline);

	pthread_mutex_lock(&c->mu);
	for (;;) {
		if (c->n_idle) {
			*h = c->idle[--c->n_idle];
			break;
		}
		if (!c->max_conns || c->live < c->max_conns) {
			if (vmem_now_ns() < c->retry_at_ns) {
				pthread_mutex_unlock(&c->mu);
				snprintf(why, whylen,
					 "not tried again yet after a failure");
				return -EAGAIN;
			}
			c->live++;
			*h = NULL;
			break;
		}
		if (pthread_cond_timedwait(&c->back, &c->mu, &ts) ==
		    ETIMEDOUT) {
			pthread_mutex_unlock(&c->mu);
			snprintf(why, whylen,
				 "no connection free within the timeout");
			return -ETIMEDOUT;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return 0;
}

static void pool_put(struct nbdconn *c, struct nbd_handle *h)
{
	pthread_mutex_lock(&c->mu);
	if (c->n_idle < c->max_idle) {
		c->idle[c->n_idle++] = h;
		h = NULL;
	} else {
		c->live--;
	}
	pthread_cond_signal(&c->back);
	pthread_mutex_unlock(&c->mu);
	if (h)
		close_handle(h, true);
}

/*
 * The call's connection @h (NULL: its connect failed) is gone: close it
 * (its state is unknown, answers may still be on the way) and the idle
 * ones too, since whatever broke this one most likely broke them.  With
 * @down, the sub-host is down: quiet time, and the event the first time.
 * Closing happens outside the lock: it is a syscall per handle.
 */
static void pool_fail(struct nbdconn *c, struct nbd_handle *h, bool down,
		      const char *why)
{
	struct nbd_handle **dead = NULL;
	unsigned int n = 0;
	bool first = false;

	pthread_mutex_lock(&c->mu);
	if (c->n_idle) {
		dead = malloc(c->n_idle * sizeof(*dead));
		if (dead) {
			n = c->n_idle;
			memcpy(dead, c->idle, n * sizeof(*dead));
			c->live -= n;
			c->n_idle = 0;
		}
	}
	c->live--;
	if (down) {
		c->retry_at_ns = vmem_now_ns() + c->quiet_ns;
		first = !c->down;
		c->down = true;
	}
	/* Everyone waiting re-checks: the quiet time may send them away. */
	pthread_cond_broadcast(&c->back);
	pthread_mutex_unlock(&c->mu);

	if (h)
		nbd_close(h);
	while (n)
		nbd_close(dead[--n]);
	free(dead);
	if (c->lk)
		lookup_forget(c->lk);
	if (first)
		tell(c, NBDCONN_DOWN, why);
}

static void set_why_nbd(char *why, size_t whylen, int e)
{
	const char *m = nbd_get_error();

	snprintf(why, whylen, "%s", m && *m ? m : strerror(e));
}

static int nbd_err(void)
{
	int e = nbd_get_errno();

	return e > 0 ? e : EIO;
}

static bool is_dead(struct nbd_handle *h)
{
	return nbd_aio_is_dead(h) || nbd_aio_is_closed(h);
}

/* The pool's TLS mode and credentials on a new handle. */
static int set_tls(struct nbdconn *c, struct nbd_handle *h)
{
	if (c->tls == VMEM_TLS_OFF)
		return nbd_set_tls(h, LIBNBD_TLS_DISABLE);
	if (nbd_set_tls(h, c->tls == VMEM_TLS_REQUIRE ? LIBNBD_TLS_REQUIRE :
			LIBNBD_TLS_ALLOW) == -1)
		return -1;
	if (c->psk_file && nbd_set_tls_psk_file(h, c->psk_file) == -1)
		return -1;
	if (c->certificates &&
	    nbd_set_tls_certificates(h, c->certificates) == -1)
		return -1;
	if (c->username && nbd_set_tls_username(h, c->username) == -1)
		return -1;
	return nbd_set_tls_verify_peer(h, true);
}

/*
 * libnbd's messages for a failed TLS set-up are GnuTLS's ("Decryption
 * has failed", "Error in the pull function"): say what they are about,
 * and which credentials were used, so the operator knows where to look.
 * A server that wants TLS from a clear client gets its own hint.
 */
static void explain_tls(const struct nbdconn *c, char *why, size_t whylen)
{
	char m[256];

	snprintf(m, sizeof(m), "%s", why);
	if (c->tls == VMEM_TLS_OFF) {
		if (strstr(m, "TLS") || strstr(m, "tls"))
			snprintf(why, whylen,
				 "%s (the server requires TLS: use nbds:// with tls-psk or tls-certificates)",
				 m);
		return;
	}
	/* Not every failed handshake is TLS's: a wrong export name is not. */
	if (strstr(m, "gnutls") || strstr(m, "TLS") || strstr(m, "tls") ||
	    strstr(m, "PSK") || strstr(m, "certificate"))
		snprintf(why, whylen, "TLS (%s, %s %s%s%s) failed: %s",
			 vmem_tls_mode_name(c->tls),
			 c->psk_file ? "PSK" : "X.509",
			 c->psk_file ? c->psk_file : c->certificates,
			 c->username ? " as " : "",
			 c->username ? c->username : "", m);
}

/* Connect a new handle before @deadline without ever blocking on the
 * peer (nor on the resolver). */
static int conn_open(struct nbdconn *c, uint64_t deadline,
		     struct nbd_handle **out, char *why, size_t whylen)
{
	const char *uri = c->uri;
	char *numeric = NULL;
	struct nbd_handle *h;
	unsigned int idx = 0;
	int64_t size;
	bool was_down;
	int e;

	if (c->lk) {
		size_t len = strlen(c->uri) + INET6_ADDRSTRLEN + 16;

		numeric = malloc(len);
		if (!numeric) {
			snprintf(why, whylen, "out of memory");
			return -ENOMEM;
		}
		e = -lookup_uri(c->lk, c->tail, deadline, numeric, len, &idx,
				why, whylen);
		if (e) {
			free(numeric);
			return -e;
		}
		uri = c->keep_name ? c->uri : numeric;
	}
	h = nbd_create();
	if (!h) {
		set_why_nbd(why, whylen, ENOMEM);
		free(numeric);
		return -ENOMEM;
	}
	/* libnbd zeroes read buffers before each read by default, to hide
	 * stale memory on failure.  No caller uses a failed read's buffer,
	 * so that would be a wasted pass over every byte. */
	nbd_set_pread_initialize(h, false);
	if (set_tls(c, h) == -1)
		goto fail;
	if (nbd_aio_connect_uri(h, uri) == -1)
		goto fail;
	while (!nbd_aio_is_ready(h)) {
		int ms;

		if (is_dead(h)) {
			/* libnbd's own reason (a refused TLS handshake, a
			 * server that wants TLS) is worth more than ours. */
			const char *m = nbd_get_error();

			if (c->tls != VMEM_TLS_OFF || (m && *m))
				goto fail;
			snprintf(why, whylen,
				 "connection lost during handshake");
			e = ECONNRESET;
			goto out;
		}
		ms = vmem_ms_left(deadline);
		if (ms == 0) {
			snprintf(why, whylen, "no handshake within the timeout");
			e = ETIMEDOUT;
			goto out;
		}
		if (nbd_poll(h, ms) == -1)
			goto fail;
	}
	size = nbd_get_size(h);
	if (size < 0)
		goto fail;
	if ((uint64_t)size < c->min_size) {
		snprintf(why, whylen,
			 "export is %lld bytes, smaller than the end of its home range (%llu): refused",
			 (long long)size, (unsigned long long)c->min_size);
		close_handle(h, true);
		free(numeric);
		return -ENXIO;
	}
	free(numeric);
	*out = h;

	pthread_mutex_lock(&c->mu);
	was_down = c->down;
	c->down = false;
	c->retry_at_ns = 0;	/* it answers: others may connect at once */
	pthread_mutex_unlock(&c->mu);
	tell(c, NBDCONN_CONNECTED, NULL);
	if (was_down)
		tell(c, NBDCONN_UP, NULL);
	return 0;

fail:
	e = nbd_err();
	set_why_nbd(why, whylen, e);
	explain_tls(c, why, whylen);
out:
	nbd_close(h);
	free(numeric);
	if (c->lk)
		lookup_skip(c->lk, idx);
	return -e;
}

/* One command of @user_data (a request, maybe of several) answered. */
static int req_done(void *user_data, int *error)
{
	struct nbdconn_req *r = user_data;
	struct run *run = r->run_;

	if (*error && !r->err)
		r->err = *error;
	/* A refused part ends the request: no more of it is sent. */
	if (--r->left_ == 0 && (r->issued_ == r->len || r->err)) {
		r->answered = true;
		r->ns = vmem_now_ns() - r->ns;
	}
	if (*error)
		run->refused = true;
	run->pending--;
	/* Not retired here (return 1) but by retire_done(): libnbd 1.14
	 * reads the command after a failed first send, and a command
	 * retired from its own callback is freed by then. */
	return 0;
}

/* Retire the commands whose callbacks have run, so a pooled handle does
 * not collect them for its whole life. */
static void retire_done(struct nbd_handle *h)
{
	int64_t cookie;

	while ((cookie = nbd_aio_peek_command_completed(h)) > 0)
		nbd_aio_command_completed(h, (uint64_t)cookie);
}

static const char *op_name(enum nbdconn_op op)
{
	return op == NBDCONN_READ ? "read" :
	       op == NBDCONN_WRITE ? "write" :
	       op == NBDCONN_FLUSH ? "flush" :
	       op == NBDCONN_ZERO ? "write zeroes" : "discard";
}

/*
 * The longest read or write @h may send: the server's advertised maximum
 * block size, else the 32M the NBD protocol lets a client assume, cut to
 * a multiple of the advertised minimum so that no part breaks alignment.
 */
static uint64_t max_payload(struct nbd_handle *h)
{
	const uint64_t dflt = 32u << 20;
	int64_t mx = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
	int64_t mn = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
	uint64_t m = mx > 0 && (uint64_t)mx < dflt ? (uint64_t)mx : dflt;

	if (mn > 1 && (uint64_t)mn <= m)
		m -= m % (uint64_t)mn;
	return m;
}

/*
 * Send the next command of @q: all of what is left of it, or @max of it
 * for a read or write.  q->issued_ counts it before it goes, so that a
 * completion that comes at once knows whether it was the last; on
 * failure it is taken back.
 */
static int64_t issue(struct nbd_handle *h, struct nbdconn_req *q, uint64_t max)
{
	nbd_completion_callback cb = {
		.callback = req_done, .user_data = q,
	};
	uint64_t at = q->issued_, len = q->len - at;
	char *buf = q->buf ? (char *)q->buf + at : NULL;
	int64_t cookie = -1;

	if ((q->op == NBDCONN_READ || q->op == NBDCONN_WRITE) && len > max)
		len = max;
	q->issued_ += len;
	q->left_++;
	switch (q->op) {
	case NBDCONN_READ:
		cookie = nbd_aio_pread(h, buf, len, q->off + at, cb, 0);
		break;
	case NBDCONN_WRITE:
		cookie = nbd_aio_pwrite(h, buf, len, q->off + at, cb, 0);
		break;
	case NBDCONN_DISCARD:
		if (nbd_can_trim(h) == 1)
			cookie = nbd_aio_trim(h, len, q->off + at, cb, 0);
		else
			cookie = nbd_aio_zero(h, len, q->off + at, cb, 0);
		break;
	case NBDCONN_ZERO:
		cookie = nbd_aio_zero(h, len, q->off + at, cb, 0);
		break;
	case NBDCONN_FLUSH:
		cookie = nbd_aio_flush(h, cb, 0);
		break;
	}
	if (cookie == -1) {
		q->issued_ -= len;
		q->left_--;
	}
	return cookie;
}

/*
 * Send the requests on @h, up to the window at a time, and wait for all
 * answers.  0, NBDCONN_REFUSED, or -errno with *@timed_out when the
 * deadline ran out rather than the connection failing.  @run belongs to
 * the caller because requests still in flight on failure are only
 * dropped when the caller closes the handle.
 */
static int run_on(struct nbdconn *c, struct nbd_handle *h,
		  struct nbdconn_req *r, size_t n, struct run *run,
		  uint64_t deadline, bool *timed_out, char *why, size_t whylen)
{
	uint64_t max = max_payload(h);
	size_t next = 0;
	int e;

	*run = (struct run){ 0 };
	for (size_t i = 0; i < n; i++) {
		r[i].run_ = run;
		r[i].issued_ = 0;
		r[i].left_ = 0;
		r[i].parts = 0;
	}
	for (;;) {
		int ms;

		/* Top up the window: pipelined, but bounded, so a huge call
		 * does not queue thousands of commands in libnbd at once. */
		while (!run->refused && next < n && run->pending < c->window) {
			struct nbdconn_req *q = &r[next];

			if (!q->sent)
				q->ns = vmem_now_ns();
			if (q->op == NBDCONN_FLUSH && nbd_can_flush(h) != 1) {
				/* No volatile cache to flush. */
				q->answered = true;
				q->ns = 0;
				next++;
				continue;
			}
			/* Counted first: if the handle is already dead,
			 * libnbd may complete it before returning. */
			run->pending++;
			if (issue(h, q, max) == -1) {
				run->pending--;
				e = nbd_err();
				set_why_nbd(why, whylen, e);
				if (is_dead(h))
					return -e;
				/* libnbd itself refused it (a range past the
				 * export's end, say): still only this one. */
				q->answered = q->left_ == 0;
				q->err = e;
				run->refused = true;
				break;
			}
			q->sent = true;
			q->parts++;
			if (q->issued_ == q->len)
				next++;
		}
		retire_done(h);
		if (is_dead(h)) {
			snprintf(why, whylen, "connection lost");
			return -ECONNRESET;
		}
		if (!run->pending && (run->refused || next == n))
			break;

		ms = vmem_ms_left(deadline);
		if (ms == 0) {
			snprintf(why, whylen, "no answer within the timeout");
			*timed_out = true;
			return -ETIMEDOUT;
		}
		if (nbd_poll(h, ms) == -1) {
			e = nbd_err();
			set_why_nbd(why, whylen, e);
			return -e;
		}
	}
	if (!run->refused)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (r[i].answered && r[i].err) {
			snprintf(why, whylen,
				 "%s of [%llu, +%llu) refused by the server: %s",
				 op_name(r[i].op), (unsigned long long)r[i].off,
				 (unsigned long long)r[i].len,
				 strerror(r[i].err));
			break;
		}
	}
	return NBDCONN_REFUSED;
}

int nbdconn_run(struct nbdconn *c, struct nbdconn_req *reqs, size_t n,
		uint64_t deadline_ns, char *err, size_t errlen)
{
	char why[512] = "";
	struct run run;
	bool flush = false;
	int rc;

	if (n == 0)
		return 0;	/* nothing to ask: no connection needed */
	for (size_t i = 0; i < n; i++)
		flush |= reqs[i].op == NBDCONN_FLUSH;
	for (int attempt = 0;; attempt++) {
		struct nbd_handle *h;
		bool fresh = false, timed_out = false;

		for (size_t i = 0; i < n; i++) {
			reqs[i].sent = reqs[i].answered = false;
			reqs[i].err = 0;
		}
		rc = pool_get(c, deadline_ns, &h, why, sizeof(why));
		if (rc < 0)
			break;
		if (!h) {
			rc = conn_open(c, deadline_ns, &h, why, sizeof(why));
			if (rc < 0) {
				pool_fail(c, NULL, true, why);
				break;
			}
			fresh = true;
		}
		rc = run_on(c, h, reqs, n, &run, deadline_ns, &timed_out, why,
			    sizeof(why));
		if (rc >= 0) {
			pool_put(c, h);
			break;
		}
		if (fresh || timed_out || attempt > 0 || flush ||
		    vmem_ms_left(deadline_ns) == 0) {
			pool_fail(c, h, true, why);
			break;
		}
		/* A stale pooled connection: not the sub-host's fault yet. */
		pool_fail(c, h, false, why);
	}
	if (rc)
		snprintf(err, errlen, "%s", why);
	return rc;
}
