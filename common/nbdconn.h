/* SPDX-License-Identifier: MIT */
/*
 * One NBD client for vmemtrans: a small pool of libnbd handles per
 * sub-host, shared by the direct backend of vmemfs and by the pager
 * inside QEMU.
 *
 * What it promises:
 *
 *  - Bounded time.  Every call returns by its deadline (plus the time of
 *    a few non-blocking syscalls): connects use libnbd's asynchronous
 *    API, and host names are looked up off the caller's thread (one
 *    lookup thread at a time per sub-host, detached), because
 *    getaddrinfo() cannot be bounded and a silent resolver holds it for
 *    ten seconds or more.  The caller waits for a lookup at most until
 *    its deadline; the lookup goes on, and its answer serves later
 *    calls.  Names are looked up again after a connect or a connection
 *    failed.
 *
 *  - An error reply is an answer.  When the server refuses a request
 *    (NBD error reply: EIO, EINVAL, ENOSPC, ...), that request fails and
 *    nothing else: the connection is kept and the sub-host is up.  Only a
 *    connection that cannot be made, breaks, or stays silent until the
 *    deadline makes the sub-host "down".
 *
 *  - An export smaller than @min_size (the end of the sub-host's home
 *    range) is refused at connect with a message giving both sizes: no
 *    request is ever sent to it, so a short export cannot look like a
 *    server that fails at random.
 *
 *  - One retry: a pooled connection that fails before the deadline may
 *    have died while idle (the server restarted), which says nothing
 *    about the sub-host now, so the requests are sent once more on a
 *    new connection before the sub-host is called down.  Reads, writes,
 *    discards and zeroes of the same bytes are idempotent, so repeating
 *    them is harmless.
 *
 *  - After the sub-host was found down, the other idle connections are
 *    closed too (what broke one most likely broke them all), and for
 *    @quiet_ms no new connect is tried: a burst of callers does not turn
 *    into a burst of doomed connects.  The first call after the quiet
 *    time tries again, so recovery needs no timer.
 *
 * Thread-safety: every function may be called from any number of
 * threads at once on the same pool.  A handle serves one call at a time;
 * the pool's mutex guards only bookkeeping, never a network wait.
 * @event is called without any lock held, from the calling thread.
 *
 * Error convention: functions return 0 (or a non-negative count), or
 * -errno with a message in @err that does not repeat the URI (callers
 * name the sub-host the way their logs do): the peer convention of
 * common/errors.h.
 */
#ifndef VMEM_COMMON_NBDCONN_H
#define VMEM_COMMON_NBDCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "timeutil.h"
#include "tls.h"

struct nbdconn;

/* What nbdconn_new() tells the owner of a pool about it. */
enum nbdconn_event {
	NBDCONN_CONNECTED,	/* a new connection is ready */
	NBDCONN_DOWN,		/* first failure since it last answered */
	NBDCONN_UP,		/* a connect worked after NBDCONN_DOWN */
};

struct nbdconn_params {
	/* nbd[s]://[USER@]HOST[:PORT][/EXPORT] or nbd[s]+unix:// */
	const char *uri;
	/*
	 * TLS (copied): NULL or mode OFF for clear NBD.  With REQUIRE a
	 * connect succeeds only if TLS was negotiated with these
	 * credentials (an nbds:// URI always requires it); a failed
	 * handshake is a failed connect, the sub-host down like one that
	 * does not answer, and the message says it was TLS.
	 */
	const struct vmem_tls *tls;
	uint64_t min_size;	/* smallest acceptable export; 0: any */
	unsigned int max_conns;	/* connections at once; 0: no limit */
	unsigned int max_idle;	/* connected handles kept between calls */
	unsigned int window;	/* requests in flight per call (>= 1) */
	uint64_t quiet_ms;	/* no new connect this long after DOWN */
	/* Optional.  @msg says why (DOWN) and is NULL otherwise. */
	void (*event)(void *opaque, enum nbdconn_event ev, const char *msg);
	void *opaque;
};

/*
 * Contacts nobody: connections are made by the first calls that need
 * them.  Returns NULL on ENOMEM (message in @err).
 */
struct nbdconn *nbdconn_new(const struct nbdconn_params *p, char *err,
			    size_t errlen);
/*
 * Closes every handle; a name lookup still running finishes on its own.
 * Only once no nbdconn_run() on @c is running any more.
 */
void nbdconn_free(struct nbdconn *c);

enum nbdconn_op {
	NBDCONN_READ,
	NBDCONN_WRITE,
	/* Reads as zeros afterwards: trim when the export can, else
	 * write-zeroes that may punch holes. */
	NBDCONN_DISCARD,
	/*
	 * Reads as zeros afterwards, whatever the server: NBD write
	 * zeroes (it may punch holes).  NBD TRIM is only a hint (the
	 * protocol promises nothing about the contents afterwards;
	 * qemu-nbd ignores it by default), which is fine for dropping a
	 * stale copy but not for a range whose pages are then left out
	 * as zeros.  A server without write zeroes fails the request.
	 */
	NBDCONN_ZERO,
	/*
	 * Everything the server acknowledged before this was sent is on
	 * stable storage (NBD_CMD_FLUSH): give it a call of its own after
	 * the writes' call returned.  Against a server that does not
	 * advertise flush (it has no volatile cache) nothing goes out and
	 * the request succeeds with parts == 0.  Never retried on a new
	 * connection (the writes it covers went on the old one).  It goes
	 * on whichever pooled connection is free, so it covers writes of
	 * other connections only when the server advertises multi-conn:
	 * a pool of max_conns 1 (the migration sender's) has no such case.
	 */
	NBDCONN_FLUSH,
};

struct nbdconn_req {
	/* in */
	enum nbdconn_op op;
	void *buf;		/* READ: filled, WRITE: sent, else unused */
	uint64_t off;		/* FLUSH: unused (0) */
	uint64_t len;		/* any length: see below; FLUSH: 0 */
	/* out */
	bool sent;		/* it went on the wire (on the last try) */
	bool answered;		/* the server replied to all of it */
	int err;		/* 0, or the errno of the server's refusal */
	unsigned int parts;	/* NBD commands it went out as */
	uint64_t ns;		/* from sending its first to the last reply */
	/* private to nbdconn */
	void *run_;
	uint64_t issued_;	/* bytes of it sent so far */
	unsigned int left_;	/* its commands not answered yet */
};

/* nbdconn_run()'s result when the server refused some requests. */
#define NBDCONN_REFUSED 1

/*
 * Send the @n requests on one connection, at most @window NBD commands in
 * flight, and wait for their replies until @deadline_ns (CLOCK_MONOTONIC).
 * A read or write longer than the server's maximum block size (what it
 * advertised, or the protocol's 32M when it said nothing) goes out as
 * several commands of at most that size, pipelined like the rest; it
 * succeeds only if every one of them does (answered and err are about
 * the whole request, parts says how many commands it took).  Discards
 * and zeroes go out whole.
 * Returns:
 *   0                 every request succeeded;
 *   NBDCONN_REFUSED   the server answered, and refused at least one
 *                     request (those have answered and err != 0).
 *                     Requests not sent yet are not sent then (sent ==
 *                     false).  The sub-host stays up;
 *   -ETIMEDOUT        the deadline passed (no connection free, name
 *                     lookup, handshake or replies not done in time);
 *   -EAGAIN           the sub-host is in its quiet time after DOWN;
 *   -ENXIO            the export is smaller than min_size;
 *   -errno            the connection could not be made or broke.
 * answered and err are meaningful after 0 and NBDCONN_REFUSED only.
 * On anything but 0, READ buffers hold undefined bytes.  The buffers
 * must stay valid until this returns, and not longer: a connection with
 * requests still in flight is closed before it returns.
 */
int nbdconn_run(struct nbdconn *c, struct nbdconn_req *reqs, size_t n,
		uint64_t deadline_ns, char *err, size_t errlen);

/*
 * The deadline for nbdconn_run() @timeout_ms from now: vmem_deadline_ns()
 * of timeutil.h under the name the tests know.
 */
static inline uint64_t nbdconn_deadline(uint64_t timeout_ms)
{
	return vmem_deadline_ns(timeout_ms);
}

#endif
