// SPDX-License-Identifier: MIT
/*
 * Trimming off the critical path.  Moving a page in ends with discarding
 * its copy on the home sub-host ("a page lives in one place").  That is a
 * second NBD round trip per move, and nobody waits for its result: the
 * page is already installed and its waiters woken.  So a move queues the
 * discard here, and one trim thread sends the queued discards in batches,
 * pipelined, one round trip per batch and sub-host.
 *
 * What this promises (README.md, "Trimming"):
 *   - A page is never lost.  A discard is queued only after the page is
 *     installed in the memory file, and it is sent only if the chunk was
 *     not moved out since (each move-out bumps the chunk's generation
 *     under the chunk lock; a queued discard carries the generation of its
 *     move-in and is dropped when they differ).  The check is made under
 *     the chunk lock, which also marks the chunk "trim in flight"; a
 *     move-out (under the same lock) first waits until no discard of
 *     its chunk is in flight.  So a discard can never overtake the write
 *     of a later move-out on the wire.
 *   - A discard that is late, dropped, failed, or lost with the process
 *     leaves a stale copy on the sub-host, which is harmless by the rule
 *     that a page's home copy is read only while the page is a hole in
 *     the memory file, and a page becomes a hole only by a move-out that
 *     first writes the page home, replacing the stale copy.
 *   - Bounded: at most TRIM_QMAX discards wait; beyond that (or with no
 *     trim thread running) the mover discards synchronously, as before.
 *
 * The trim thread only ever try-locks a chunk lock, one at a time, and
 * holds none across network I/O: a busy chunk's discard waits for the
 * next round.  A move-out waits for an in-flight discard while holding
 * its chunk lock, which the trim thread never needs to finish one.
 */
#include "pager_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../common/timeutil.h"
#include "remote.h"

/* How long the trim thread lets discards gather before it sends them. */
#define TRIM_LINGER_MS 2
/* How long the trim thread waits before it tries busy chunks again. */
#define TRIM_BUSY_NAP_MS 1

/* Discard now, under the caller's chunk lock, as the move did before. */
static void trim_now(struct vmem_pager *pg, struct sub *sh, uint64_t s,
		     uint64_t len)
{
	char err[256];

	if (vp_remote_discard(sh->remote, len, s, pg->timeout_ms, err,
			      sizeof(err)) == -1)
		vp_sub_failed(pg, sh, err);
	ADD(pg->st.trims, 1);
}

void vp_trim_queue(struct vmem_pager *pg, struct sub *sh, uint64_t c,
		   uint64_t s, uint64_t e)
{
	struct vp_trim *t;

	pthread_mutex_lock(&pg->trim_mu);
	if (!pg->has_trimmer || pg->trim_n >= TRIM_QMAX) {
		pthread_mutex_unlock(&pg->trim_mu);
		trim_now(pg, sh, s, e - s);
		return;
	}
	t = &pg->trim_q[(pg->trim_head + pg->trim_n) % TRIM_QMAX];
	*t = (struct vp_trim){
		.sh = sh, .c = c, .off = s, .len = e - s,
		.gen = pg->chunk_evgen[c],
	};
	pg->trim_n++;
	/* A lingering thread waits for a full batch (or its time). */
	if (pg->trim_idle || pg->trim_n >= TRIM_BATCH)
		pthread_cond_signal(&pg->trim_cv);
	pthread_mutex_unlock(&pg->trim_mu);
}

void vp_trim_moved_out(struct vmem_pager *pg, uint64_t c)
{
	pg->chunk_evgen[c]++;
	if (!LOAD(pg->chunk_trimming[c]))
		return;
	/* Bounded: a discard in flight ends within timeout_ms. */
	pthread_mutex_lock(&pg->trim_mu);
	while (LOAD(pg->chunk_trimming[c]))
		pthread_cond_wait(&pg->trim_done_cv, &pg->trim_mu);
	pthread_mutex_unlock(&pg->trim_mu);
}

/* Take up to TRIM_BATCH entries: first the carried-over busy ones. */
static size_t take(struct vmem_pager *pg, struct vp_trim *batch)
{
	size_t n = 0;

	while (n < TRIM_BATCH && pg->trim_ncarry > 0)
		batch[n++] = pg->trim_carry[--pg->trim_ncarry];
	while (n < TRIM_BATCH && pg->trim_n > 0) {
		batch[n++] = pg->trim_q[pg->trim_head];
		pg->trim_head = (pg->trim_head + 1) % TRIM_QMAX;
		pg->trim_n--;
	}
	return n;
}

/*
 * Check each entry under its chunk lock (try only): drop what a move-out
 * superseded, mark the rest in flight; send them per sub-host without
 * any lock; clear the marks.  Entries whose chunk is busy go to the
 * carry-over list; returns how many did.
 */
static size_t run_batch(struct vmem_pager *pg, struct vp_trim *batch,
			size_t n, struct vp_trim *carry)
{
	bool live[TRIM_BATCH], sent[TRIM_BATCH];
	uint64_t offs[TRIM_BATCH], lens[TRIM_BATCH];
	size_t ncarry = 0;
	char err[256];

	for (size_t i = 0; i < n; i++) {
		pthread_mutex_t *mu = vp_chunk_lock(pg, batch[i].c);

		live[i] = sent[i] = false;
		if (pthread_mutex_trylock(mu)) {
			carry[ncarry++] = batch[i];
			continue;
		}
		if (pg->chunk_evgen[batch[i].c] != batch[i].gen) {
			/* Moved out since: its home copy is the new one. */
			ADD(pg->st.trims_dropped, 1);
		} else {
			ADD(pg->chunk_trimming[batch[i].c], 1);
			live[i] = true;
		}
		pthread_mutex_unlock(mu);
	}
	/* One pipelined round trip per sub-host. */
	for (size_t i = 0; i < n; i++) {
		struct sub *sh = batch[i].sh;
		size_t m = 0;

		if (!live[i] || sent[i])
			continue;
		for (size_t k = i; k < n; k++) {
			if (!live[k] || sent[k] || batch[k].sh != sh)
				continue;
			offs[m] = batch[k].off;
			lens[m] = batch[k].len;
			m++;
			sent[k] = true;
		}
		if (vp_remote_discardv(sh->remote, offs, lens, m,
				       pg->timeout_ms, err, sizeof(err)) == -1)
			vp_sub_failed(pg, sh, err);
		ADD(pg->st.trims, m);
	}
	for (size_t i = 0; i < n; i++)
		if (live[i])
			__atomic_fetch_sub(&pg->chunk_trimming[batch[i].c], 1,
					   __ATOMIC_RELEASE);
	return ncarry;
}

void *vp_trim_thread(void *arg)
{
	struct vmem_pager *pg = arg;
	struct vp_trim batch[TRIM_BATCH], carry[TRIM_BATCH];

	pthread_mutex_lock(&pg->trim_mu);
	while (!LOAD(pg->stopping)) {
		size_t n, nc;

		if (pg->trim_hold || (pg->trim_n == 0 &&
				      pg->trim_ncarry == 0)) {
			pg->trim_idle = true;
			pthread_cond_wait(&pg->trim_cv, &pg->trim_mu);
			pg->trim_idle = false;
			continue;
		}
		if (pg->trim_n < TRIM_BATCH && !pg->trim_ncarry &&
		    !pg->trim_lingered) {
			/* A little later, a batch: one round trip for many
			 * moves, and none between a page-in's read and the
			 * next one's. */
			struct timespec ts = vmem_timespec(
				vmem_deadline_ns(TRIM_LINGER_MS));

			pg->trim_lingered = true;
			pthread_cond_timedwait(&pg->trim_cv, &pg->trim_mu, &ts);
			continue;
		}
		pg->trim_lingered = false;
		n = take(pg, batch);
		pg->trim_busy = n;
		pthread_mutex_unlock(&pg->trim_mu);

		nc = run_batch(pg, batch, n, carry);

		pthread_mutex_lock(&pg->trim_mu);
		memcpy(pg->trim_carry, carry, nc * sizeof(carry[0]));
		pg->trim_ncarry = nc;
		pg->trim_busy = 0;
		pthread_cond_broadcast(&pg->trim_done_cv);
		if (nc == n && nc > 0) {
			/* Every chunk busy: let their holders go on. */
			pthread_mutex_unlock(&pg->trim_mu);
			vp_nap(pg, TRIM_BUSY_NAP_MS);
			pthread_mutex_lock(&pg->trim_mu);
		}
	}
	pthread_mutex_unlock(&pg->trim_mu);
	return NULL;
}

/*
 * Polls (1 ms): the moves that have not queued their discard yet signal
 * nothing, and this is for tests and shutdown, not a fast path.
 */
int vmem_pager_trim_flush(struct vmem_pager *pg, uint64_t timeout_ms)
{
	uint64_t deadline = vmem_deadline_ns(timeout_ms);

	for (;;) {
		bool idle, stuck;

		pthread_mutex_lock(&pg->trim_mu);
		idle = !pg->trim_n && !pg->trim_ncarry && !pg->trim_busy &&
		       !LOAD(pg->moving_in);
		stuck = !pg->has_trimmer || pg->trim_hold;
		pthread_mutex_unlock(&pg->trim_mu);
		if (idle)
			return 0;
		if (stuck) {
			errno = EAGAIN;
			return -1;
		}
		if (vmem_ms_left(deadline) == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (vp_nap(pg, 1)) {
			errno = EAGAIN;
			return -1;
		}
	}
}

void vmem_pager_trim_hold(struct vmem_pager *pg, bool hold)
{
	pthread_mutex_lock(&pg->trim_mu);
	pg->trim_hold = hold;
	pthread_cond_broadcast(&pg->trim_cv);
	pthread_cond_broadcast(&pg->trim_done_cv);
	pthread_mutex_unlock(&pg->trim_mu);
}

size_t vmem_pager_trims_pending(struct vmem_pager *pg)
{
	size_t n;

	pthread_mutex_lock(&pg->trim_mu);
	n = pg->trim_n + pg->trim_ncarry + pg->trim_busy;
	pthread_mutex_unlock(&pg->trim_mu);
	return n;
}
