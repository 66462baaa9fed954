// SPDX-License-Identifier: MIT
/*
 * The fault path: moving a window of pages in (fetch, install the holes,
 * wake, trim the sub-host), which page_in() uses too, and the fault
 * threads that read userfaultfd events.
 */
#include "pager_int.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/evictseq.h"
#include "../common/timeutil.h"
#include "plan.h"
#include "remote.h"

#define MSG_BATCH	16

/* The holes of [s, e): the span from the first to the last in *hs, *he;
 * returns their bytes (0: nothing to fetch). */
static uint64_t find_holes(struct vmem_pager *pg, uint64_t s, uint64_t e,
			   uint64_t *hs, uint64_t *he)
{
	uint64_t absent = 0, pos = s, ds, de;

	*hs = *he = s;
	while (pos < e) {
		uint64_t hend = e;

		if (vp_next_data(pg, pos, e, &ds, &de))
			hend = ds;
		else
			de = e;
		if (hend > pos) {
			if (absent == 0)
				*hs = pos;
			*he = hend;
			absent += hend - pos;
		}
		pos = de;
	}
	return absent;
}

/* Install the holes of [hs, he) from @src (which holds [hs, he)), hole by
 * hole: present pages may be newer than the fetch.  Bytes installed, or
 * -1 with errno and @err. */
static int64_t install_holes(struct vmem_pager *pg, const char *src,
			     uint64_t hs, uint64_t he, char *err,
			     size_t errlen)
{
	uint64_t pos = hs, ds, de, installed = 0;

	while (pos < he) {
		uint64_t hend = he;
		int64_t r;

		if (vp_next_data(pg, pos, he, &ds, &de))
			hend = ds;
		else
			de = he;
		if (hend > pos) {
			r = vp_uffd_install(pg, src + (pos - hs), pos,
					    hend - pos);
			if (r < 0) {
				snprintf(err, errlen, "UFFDIO_COPY: %s",
					 strerror(errno));
				return -1;
			}
			installed += (uint64_t)r;
		}
		pos = de;
	}
	return (int64_t)installed;
}

/*
 * Make the pieces resident: each piece's holes span is fetched as one
 * request, all pieces' requests pipelined on one connection (one round
 * trip when they fit its window), only holes are installed, waiters are
 * woken by the install, and the sub-host's copies are queued for
 * discarding (trim.c), off this path.  RETRY_FOREVER is the fault path;
 * RETRY_DEADLINE gives up at @deadline (common/timeutil.h).
 */
int vp_fetch_pieces(struct vmem_pager *pg, struct vp_piece *pc, size_t n,
		    struct sub *sh, enum vp_retry mode, uint64_t deadline,
		    char *err, size_t errlen)
{
	void *bufs[VP_MAX_PIECES];
	uint64_t offs[VP_MAX_PIECES], lens[VP_MAX_PIECES];
	uint64_t total = 0, backoff = 10;
	size_t m = 0;
	int rc = -1, err_no = 0;

	if (n > VP_MAX_PIECES) {
		snprintf(err, errlen, "too many pieces");
		errno = EINVAL;
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		pc[i].b = NULL;
		pc[i].absent = find_holes(pg, pc[i].s, pc[i].e, &pc[i].hs,
					  &pc[i].he);
		total += pc[i].absent;
	}
	if (total == 0)
		return 0;

	ADD(pg->moving_in, 1);	/* for vmem_pager_trim_flush() */
	vp_reserve(pg, total, pc[0].c);
	for (size_t i = 0; i < n; i++) {
		if (!pc[i].absent)
			continue;
		vmem_seq_move_begin(pg->seq, pc[i].hs, pc[i].he - pc[i].hs);
		if (sh) {
			pc[i].b = vp_buf_get(pg);
			if (!pc[i].b) {
				snprintf(err, errlen, "out of memory");
				errno = ENOMEM;
				goto out;
			}
			bufs[m] = pc[i].b->data;
			offs[m] = pc[i].hs;
			lens[m] = pc[i].he - pc[i].hs;
			m++;
		}
	}
	while (sh) {
		uint64_t t = pg->timeout_ms;

		if (mode == RETRY_DEADLINE) {
			uint64_t left = (uint64_t)vmem_ms_left(deadline);

			if (left == 0) {
				/* err holds the last failure */
				errno = ETIMEDOUT;
				goto out;
			}
			if (left < t)
				t = left;
		}
		if (vp_remote_preadv(sh->remote, bufs, offs, lens, m, t, err,
				     errlen) == 0)
			break;
		vp_sub_failed(pg, sh, err);
		ADD(pg->st.retries, 1);
		if (vp_nap(pg, backoff)) {
			snprintf(err, errlen, "pager stopping");
			errno = ECANCELED;
			goto out;
		}
		backoff = backoff * 2 > MAX_BACKOFF_MS ? MAX_BACKOFF_MS :
			  backoff * 2;
	}
	if (sh)
		vp_sub_ok(pg, sh);

	for (size_t i = 0; i < n; i++) {
		const char *src = sh ? (pc[i].b ? pc[i].b->data : NULL) :
				  pg->zeros;
		int64_t r;

		if (!pc[i].absent)
			continue;
		r = install_holes(pg, src, pc[i].hs, pc[i].he, err, errlen);
		if (r < 0)
			goto out;
		if (sh) {
			ADD(sh->bytes_in, (uint64_t)r);
			ADD(pg->st.bytes_in, (uint64_t)r);
			/* One place only; stale copies are harmless. */
			vp_trim_queue(pg, sh, pc[i].c, pc[i].hs, pc[i].he);
		} else {
			ADD(pg->st.bytes_zero, (uint64_t)r);
		}
		ADD(pg->st.page_ins, 1);
		STORE(pg->chunk_stamp[pc[i].c],
		      (uint32_t)(ADD(pg->pagein_seq, 1) + 1));
	}
	rc = 0;
out:
	/* The recount probes the data map (cachestat, lseek: ENXIO past
	 * the last data), which must not replace the failure's errno. */
	err_no = errno;
	for (size_t i = 0; i < n; i++) {
		if (!pc[i].absent)
			continue;
		vp_recount(pg, pc[i].c);
		vmem_seq_move_end(pg->seq, pc[i].hs, pc[i].he - pc[i].hs);
		STORE(pg->chunk_ref[pc[i].c], 1);
		if (pc[i].b)
			vp_buf_put(pg, pc[i].b);
		pc[i].b = NULL;
	}
	vp_unreserve(pg, total);
	__atomic_fetch_sub(&pg->moving_in, 1, __ATOMIC_RELEASE);
	if (rc)
		errno = err_no;
	return rc;
}

/*
 * Make [s, e) resident (one home or none, inside chunk @c, lock held):
 * one piece.
 */
int vp_fetch_range(struct vmem_pager *pg, uint64_t c, uint64_t s,
		   uint64_t e, enum vp_retry mode, uint64_t deadline,
		   char *err, size_t errlen)
{
	struct vp_piece p = { .c = c, .s = s, .e = e };

	return vp_fetch_pieces(pg, &p, 1, vp_home_of(pg, s), mode, deadline,
			       err, errlen);
}

/* ---- the fault threads ---- */

static void sub_range(const void *ctx, size_t i, uint64_t *s, uint64_t *e)
{
	const struct vmem_pager *pg = ctx;

	*s = pg->subs[i].start;
	*e = pg->subs[i].end;
}

static void handle_missing(struct vmem_pager *pg, uint64_t off)
{
	uint64_t c = off >> pg->cshift;
	struct vmem_home_set homes = { pg, pg->n_subs, sub_range };
	uint64_t s, e;
	long home;
	char err[256];

	/* The window: the chunk, clipped to the faulting page's home run,
	 * cut by the function split migration's plan uses (plan.h). */
	vmem_fault_window(&homes, pg->size, pg->cs, off, &s, &e, &home);

	/*
	 * Sub-host errors are retried inside fetch_range; anything else
	 * (no memory, a failed UFFDIO_COPY) is retried here, because the
	 * kernel will not deliver this fault again and a vCPU cannot be
	 * told EIO.
	 */
	for (uint64_t t = 100;; t = t * 2 > MAX_BACKOFF_MS ? MAX_BACKOFF_MS :
	     t * 2) {
		int rc;

		pthread_mutex_lock(vp_chunk_lock(pg, c));
		rc = vp_fetch_range(pg, c, s, e, RETRY_FOREVER, 0, err,
				    sizeof(err));
		pthread_mutex_unlock(vp_chunk_lock(pg, c));
		if (rc == 0 || LOAD(pg->stopping))
			break;
		vp_logmsg(pg, "fault at %#" PRIx64 ": %s; retrying", off, err);
		if (vp_nap(pg, t))
			break;
	}
	/* A racing installer may have beaten us to the page. */
	vp_uffd_wake(pg, off, PAGE);
}

/*
 * A writer hit a page being evicted.  The evictor un-protects (and so
 * wakes it) before it drops the chunk lock; if we get the lock, make sure
 * nothing is left protected, else the holder will do it.
 */
static void handle_wp(struct vmem_pager *pg, uint64_t off)
{
	pthread_mutex_t *mu = vp_chunk_lock(pg, off >> pg->cshift);

	ADD(pg->st.wp_faults, 1);
	if (pthread_mutex_trylock(mu) == 0) {
		vp_uffd_wp(pg, off, PAGE, false);
		pthread_mutex_unlock(mu);
	}
}

/*
 * A fault thread never leaves before the pager stops: the faults it would
 * have served (those of every vCPU, once no thread is left) would wait
 * forever, with nothing in the log.  A failed poll (ENOMEM) is said, at
 * most every LOG_EVERY_MS, and tried again.
 */
void *vp_fault_thread(void *arg)
{
	struct vmem_pager *pg = arg;
	struct uffd_msg msgs[MSG_BATCH];
	struct pollfd pfd[2] = {
		{ .fd = pg->uffd, .events = POLLIN },
		{ .fd = pg->stop_efd, .events = POLLIN },
	};
	uint64_t last_log_ms = 0, suppressed = 0;

	while (!LOAD(pg->stopping)) {
		ssize_t n;

		if (poll(pfd, 2, -1) == -1 && errno != EINTR) {
			uint64_t now = vmem_now_ms();
			int e = errno;

			if (!last_log_ms || now - last_log_ms >= LOG_EVERY_MS) {
				vp_logmsg(pg, "fault thread: poll of the "
					  "userfaultfd: %s (%" PRIu64 " more "
					  "failures not shown); retrying",
					  strerror(e), suppressed);
				last_log_ms = now;
				suppressed = 0;
			} else {
				suppressed++;
			}
			if (vp_nap(pg, 10))
				break;
			continue;
		}
		if (LOAD(pg->stopping))
			break;
		n = read(pg->uffd, msgs, sizeof(msgs));
		if (n <= 0)
			continue;	/* another thread took it */
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			uint64_t off;

			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			off = (msgs[i].arg.pagefault.address -
			       (uintptr_t)pg->base) & ~(PAGE - 1);
			if (off >= pg->size)
				continue;
			if (msgs[i].arg.pagefault.flags &
			    UFFD_PAGEFAULT_FLAG_WP) {
				handle_wp(pg, off);
			} else {
				ADD(pg->st.faults, 1);
				handle_missing(pg, off);
			}
		}
	}
	return NULL;
}
