// SPDX-License-Identifier: MIT
/*
 * Eviction: CLOCK over chunks that spares the youngest, the reservation
 * that keeps the memory file under local-limit, the eviction thread that
 * keeps headroom free, and the write-protect sequence that moves a
 * chunk's pages to their home.  Policy and bound: pager/README.md.
 */
#include "pager_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/evictseq.h"
#include "../common/timeutil.h"
#include "remote.h"

/*
 * A chunk paged in by one of the last YOUNG_MIN page-ins is never evicted
 * (see young()).  8 covers the chunks one guest instruction can need at
 * once (source, destination, page-table walks) for a couple of vCPUs.
 */
#define YOUNG_MIN	8

#define MAX_RUNS 64

/*
 * Move the resident pages of [s, e) (one home, one chunk, chunk lock held)
 * to sub-host @sh.  The write-protect window is what makes it safe while
 * the VM runs: a writer blocks from before we read the page until after it
 * is gone, then takes a MISSING fault and refetches what we wrote.
 * Returns bytes moved, or -1 with errno and @err set (errno is taken
 * where the failure happened: the clean-up after it makes calls of its
 * own).  On -1 every page not yet
 * punched is still local and authoritative; a punched one is on the
 * sub-host, which acknowledged the write first.
 */
int64_t vp_evict_range(struct vmem_pager *pg, struct sub *sh,
		       uint64_t s, uint64_t e, uint64_t timeout_ms,
		       char *err, size_t errlen)
{
	uint64_t offs[MAX_RUNS], lens[MAX_RUNS], ds, de, moved = 0;
	void *bufs[MAX_RUNS];
	struct buf *b;
	size_t n = 0;
	int64_t rc = -1;
	int err_no = EIO;

	while (n < MAX_RUNS && vp_next_data(pg, s, e, &ds, &de)) {
		offs[n] = ds;
		lens[n] = de - ds;
		n++;
		s = de;
	}
	if (n == 0)
		return 0;
	b = vp_buf_get(pg);
	if (!b) {
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return -1;
	}
	/* Before anything goes home: no queued discard may follow it. */
	vp_trim_moved_out(pg, offs[0] >> pg->cshift);
	vmem_seq_move_begin(pg->seq, offs[0],
			    offs[n - 1] + lens[n - 1] - offs[0]);
	for (size_t i = 0; i < n; i++) {
		if (vp_uffd_wp(pg, offs[i], lens[i], true) == -1) {
			err_no = errno;
			snprintf(err, errlen, "UFFDIO_WRITEPROTECT: %s",
				 strerror(errno));
			for (size_t j = 0; j < i; j++)
				vp_uffd_wp(pg, offs[j], lens[j], false);
			goto out;
		}
	}
	/*
	 * Read through the file, not the mapping: the content is the same
	 * page cache, and a read of the file can never fault into us.
	 */
	for (size_t i = 0; i < n; i++) {
		char *dst = b->data + (offs[i] - offs[0]);
		uint64_t got = 0;

		while (got < lens[i]) {
			ssize_t r = pread(pg->fd, dst + got, lens[i] - got,
					  (off_t)(offs[i] + got));

			if (r <= 0) {
				err_no = r == 0 ? EIO : errno;
				snprintf(err, errlen, "pread memory file: %s",
					 r == 0 ? "short" : strerror(errno));
				goto unprotect;
			}
			got += (uint64_t)r;
		}
		bufs[i] = dst;
	}
	if (vp_remote_pwritev(sh->remote, bufs, offs, lens, n, timeout_ms,
			      err, errlen) == -1) {
		err_no = errno;
		vp_sub_failed(pg, sh, err);
		goto unprotect;
	}
	vp_sub_ok(pg, sh);
	for (size_t i = 0; i < n; i++) {
		if (fallocate(pg->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)offs[i], (off_t)lens[i]) == -1) {
			/* The sub-host has a copy; keeping ours is safe. */
			err_no = errno;
			snprintf(err, errlen, "punch memory file: %s",
				 strerror(errno));
			goto unprotect;
		}
		moved += lens[i];
	}
	rc = (int64_t)moved;
unprotect:
	/* The pte is gone after the punch: the woken writer faults MISSING. */
	for (size_t i = 0; i < n; i++)
		vp_uffd_wp(pg, offs[i], lens[i], false);
	ADD(sh->bytes_out, moved);
	ADD(pg->st.bytes_out, moved);
out:
	vmem_seq_move_end(pg->seq, offs[0],
			  offs[n - 1] + lens[n - 1] - offs[0]);
	vp_buf_put(pg, b);
	if (rc < 0)
		errno = err_no;
	return rc;
}

/*
 * Evict chunk @c (lock held): every homed part whose sub-host is not in
 * its failure back-off.  Returns bytes moved.
 */
static uint64_t evict_chunk(struct vmem_pager *pg, uint64_t c)
{
	uint64_t s = c << pg->cshift, moved = 0, now = vmem_now_ms();
	uint64_t e = s + pg->cs < pg->size ? s + pg->cs : pg->size;
	char err[256];

	while (s < e) {
		uint64_t re = vp_home_run_end(pg, s, e);
		struct sub *sh = vp_home_of(pg, s);

		while (sh && LOAD(sh->evict_after_ms) <= now) {
			int64_t r = vp_evict_range(pg, sh, s, re,
						   pg->timeout_ms, err,
						   sizeof(err));

			if (r < 0)
				STORE(sh->evict_after_ms, now + MAX_BACKOFF_MS);
			if (r <= 0)
				break;
			moved += (uint64_t)r;
		}
		s = re;
	}
	if (moved)
		vp_recount(pg, c);
	return moved;
}

/*
 * Whether chunk @c came in too recently to be evicted: it is one of the
 * chunks of the last max(YOUNG_MIN, resident homed chunks / 2) page-ins.
 *
 * Why.  A fault is resolved when the chunk is installed and the faulting
 * thread woken, but that thread (a vCPU) uses the page only once it runs
 * again.  The CLOCK hand measures age in sweeps, and when few homed chunks
 * are resident (unhomed memory fills the budget) a sweep takes
 * microseconds: the second chance expired before the vCPU ran, the chunk
 * went out, the vCPU faulted again, and the guest made one page of
 * progress per chunk fetched, or none.  Age in page-ins cannot run out
 * while nothing else comes in.  Half the resident homed chunks keeps the
 * policy FIFO-like without ever protecting all of them: the oldest
 * resident chunk is at least as old as their number, so there is a victim
 * whenever more than YOUNG_MIN homed chunks are resident.
 */
static bool young(struct vmem_pager *pg, uint64_t c)
{
	uint64_t n = LOAD(pg->homed_nres) / 2;
	uint32_t age = (uint32_t)LOAD(pg->pagein_seq) -
		       LOAD(pg->chunk_stamp[c]);

	return age < (n > YOUNG_MIN ? n : YOUNG_MIN);
}

/*
 * One step of CLOCK: sweep from the hand for a resident, homed, unpinned,
 * not young chunk whose reference bit is clear (clearing set bits on the
 * way), that is not @own and whose lock is free, and evict it.  Two
 * revolutions at most.  Returns bytes evicted (0 = found nothing); *busy
 * (may be NULL) tells whether a candidate was skipped only because
 * another thread held its lock, i.e. whether trying again soon may help.
 */
static uint64_t clock_evict(struct vmem_pager *pg, uint64_t own, bool *busy)
{
	if (busy)
		*busy = false;
	for (uint64_t i = 0; i < 2 * pg->nchunks; i++) {
		uint64_t c = ADD(pg->hand, 1) % pg->nchunks;
		pthread_mutex_t *mu;
		uint64_t got;

		if (c == own || !pg->chunk_homed[c] ||
		    LOAD(pg->chunk_res[c]) == 0 || LOAD(pg->chunk_pin[c]) ||
		    young(pg, c))
			continue;
		if (__atomic_exchange_n(&pg->chunk_ref[c], 0,
					__ATOMIC_RELAXED))
			continue;
		mu = vp_chunk_lock(pg, c);
		if (pthread_mutex_trylock(mu)) {
			if (busy)
				*busy = true;
			continue;
		}
		got = 0;
		if (!LOAD(pg->chunk_pin[c]))
			got = evict_chunk(pg, c);
		pthread_mutex_unlock(mu);
		if (got) {
			ADD(pg->st.evictions, 1);
			return got;
		}
	}
	return 0;
}

static bool over(struct vmem_pager *pg, uint64_t need, uint64_t slack)
{
	return LOAD(pg->resident) + pg->reserved + need + slack > pg->limit;
}

/*
 * The free space the eviction thread keeps: pg->headroom, but at most an
 * eighth of the room that homed memory has, i.e. of the limit minus what
 * unhomed memory (which never leaves) holds.  When unhomed memory fills
 * most of the budget, a fixed headroom would be larger than that room, and
 * keeping it would mean evicting every homed chunk the moment it arrives.
 */
static uint64_t headroom(struct vmem_pager *pg)
{
	uint64_t res = LOAD(pg->resident), hres = LOAD(pg->homed_res);
	uint64_t unhomed = res > hres ? res - hres : 0;
	uint64_t room = pg->limit > unhomed ? pg->limit - unhomed : 0;

	return room / 8 < pg->headroom ? room / 8 : pg->headroom;
}

/*
 * Reserve @need bytes under local_limit before installing them, evicting
 * other chunks until they fit.  When nothing can be evicted (all resident
 * memory unhomed, young, pinned or busy) we go over the limit rather than
 * stall the VM, and say so.  Only chunks busy in another thread's hands
 * are worth a short wait; the other reasons do not pass in milliseconds.
 */
void vp_reserve(struct vmem_pager *pg, uint64_t need, uint64_t own)
{
	int idle = 0;

	if (!pg->limit)
		return;
	pthread_mutex_lock(&pg->acct_mu);
	while (over(pg, need, 0)) {
		uint64_t got;
		bool busy;

		pthread_cond_signal(&pg->acct_cv);
		pthread_mutex_unlock(&pg->acct_mu);
		got = clock_evict(pg, own, &busy);
		pthread_mutex_lock(&pg->acct_mu);
		if (got) {
			idle = 0;
			continue;
		}
		if (!busy || ++idle >= 3 || LOAD(pg->stopping)) {
			uint64_t now = vmem_now_ms();

			ADD(pg->st.over_limit, 1);
			if (now - pg->over_log_ms >= LOG_EVERY_MS) {
				pg->over_log_ms = now;
				vp_logmsg(pg, "over local-limit: nothing "
					  "evictable (resident %" PRIu64
					  ", limit %" PRIu64 ")",
					  LOAD(pg->resident), pg->limit);
			}
			break;
		}
		pthread_mutex_unlock(&pg->acct_mu);
		vp_nap(pg, 1);
		pthread_mutex_lock(&pg->acct_mu);
	}
	pg->reserved += need;
	if (over(pg, 0, headroom(pg)))
		pthread_cond_signal(&pg->acct_cv);
	pthread_mutex_unlock(&pg->acct_mu);
}

void vp_unreserve(struct vmem_pager *pg, uint64_t need)
{
	if (!pg->limit)
		return;
	pthread_mutex_lock(&pg->acct_mu);
	pg->reserved -= need;
	pthread_mutex_unlock(&pg->acct_mu);
}

/*
 * Keeps headroom free so that faults rarely have to evict themselves.  A
 * fault that goes over the headroom wakes it; the 200 ms sleeps find what
 * no fault announced (pages a recount found that nobody reserved).
 */
void *vp_evict_thread(void *arg)
{
	struct vmem_pager *pg = arg;

	while (!LOAD(pg->stopping)) {
		bool work;

		pthread_mutex_lock(&pg->acct_mu);
		if (!over(pg, 0, headroom(pg))) {
			/* acct_cv counts on CLOCK_MONOTONIC (pager.c). */
			struct timespec ts =
				vmem_timespec(vmem_deadline_ns(200));

			pthread_cond_timedwait(&pg->acct_cv, &pg->acct_mu,
					       &ts);
		}
		work = over(pg, 0, headroom(pg));
		pthread_mutex_unlock(&pg->acct_mu);
		if (work && !LOAD(pg->stopping) &&
		    clock_evict(pg, UINT64_MAX, NULL) == 0)
			vp_nap(pg, 20);
	}
	return NULL;
}
