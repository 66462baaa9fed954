// SPDX-License-Identifier: MIT
/*
 * The userfaultfd remote pager.  Contract in pager.h, design in README.md.
 *
 * Locking.  RAM is cut into chunk-size units ("chunks").  Every move of a
 * chunk's pages (in or out) runs under that chunk's lock, a mutex from a
 * striped table, so a fetch and an eviction of the same pages never
 * interleave.  A thread blocks on at most one chunk lock at a time; while
 * holding one it only ever *try*-locks others (to pick eviction victims),
 * so there is no lock-order cycle.  No code path that holds a chunk lock
 * touches the registered mapping (pread/UFFDIO_COPY only), so a lock
 * holder can never wait on a fault that needs the same lock.
 *
 * Accounting.  Per chunk we keep the resident bytes as last counted with
 * SEEK_DATA under the chunk lock; the global count moves by the delta of
 * each recount, so it converges on the truth even if someone else adds
 * pages.  A fetch reserves its bytes before installing them, so resident +
 * reserved never passes local_limit while eviction can find victims.
 */
#include "../common/presence.h"
#include "pager.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../common/evictseq.h"
#include "remote.h"

#define PAGE		4096ULL
#define NSTRIPES	4096
#define MAX_FAULT_THREADS 16
#define DEFAULT_CHUNK	(64ULL << 10)
#define DEFAULT_TIMEOUT_MS 2000
#define MAX_BACKOFF_MS	1000
#define LOG_EVERY_MS	5000
#define MSG_BATCH	16
/*
 * A chunk paged in by one of the last YOUNG_MIN page-ins is never evicted
 * (see young()).  8 covers the chunks one guest instruction can need at
 * once (source, destination, page-table walks) for a couple of vCPUs.
 */
#define YOUNG_MIN	8

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

struct sub {
	char *uri;
	size_t orig;				/* index in the params */
	uint64_t start, end;
	struct vp_remote *remote;
	uint64_t bytes_in, bytes_out, errors;	/* atomics */
	bool up;				/* atomic */
	/* Eviction skips a failing sub-host until this time (ms). */
	uint64_t evict_after_ms;		/* atomic */
	/* Rate limiting of the loud messages. */
	pthread_mutex_t log_mu;
	uint64_t last_log_ms;
	uint64_t suppressed;
};

struct buf {
	struct buf *next;
	char *data;
};

struct vmem_pager {
	char *base;
	uint64_t size, cs, nchunks, limit, timeout_ms;
	unsigned int cshift;
	bool quiet;
	int fd, uffd, stop_efd;
	struct vmem_seq_map *seq;

	struct sub *subs;
	size_t n_subs;

	pthread_mutex_t stripes[NSTRIPES];
	uint32_t *chunk_res;	/* under the chunk lock */
	uint8_t *chunk_ref;	/* atomic: second chance for CLOCK */
	uint16_t *chunk_pin;	/* atomic: page_in in progress */
	uint8_t *chunk_homed;	/* constant */
	/* atomic: pagein_seq when the chunk was last paged in */
	uint32_t *chunk_stamp;

	pthread_mutex_t acct_mu;
	pthread_cond_t acct_cv;	/* wakes the eviction thread */
	uint64_t resident;	/* atomic */
	uint64_t reserved;	/* under acct_mu */
	uint64_t headroom;	/* evictor keeps this much free */
	uint64_t hand;		/* atomic CLOCK hand (chunk index) */
	uint64_t pagein_seq;	/* atomic: chunk page-ins so far */
	/* atomic: resident bytes and resident chunks that have a home */
	uint64_t homed_res, homed_nres;

	pthread_mutex_t buf_mu;
	struct buf *free_bufs;
	char *zeros;

	unsigned int n_threads;
	pthread_t fault_thr[MAX_FAULT_THREADS];
	pthread_t evict_thr;
	bool running, has_evictor;
	bool stopping;		/* atomic */

	struct vmem_pager_stats st;	/* counters updated atomically */
	uint64_t over_log_ms;
};

#define ADD(field, v) __atomic_fetch_add(&(field), (v), __ATOMIC_RELAXED)
#define LOAD(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)
#define STORE(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logmsg(struct vmem_pager *pg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void logmsg(struct vmem_pager *pg, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (pg->quiet)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "vmempager: %s\n", line);
}

/*
 * A sub-host failure: say so at once, then at most every LOG_EVERY_MS with
 * the number of failures in between, so a dead sub-host is loud but does
 * not flood the log while vCPUs retry.
 */
static void sub_failed(struct vmem_pager *pg, struct sub *s, const char *msg)
{
	uint64_t now = now_ms(), n = 0;
	bool say = false;

	ADD(s->errors, 1);
	STORE(s->up, false);
	pthread_mutex_lock(&s->log_mu);
	if (s->last_log_ms == 0 || now - s->last_log_ms >= LOG_EVERY_MS) {
		say = true;
		n = s->suppressed;
		s->suppressed = 0;
		s->last_log_ms = now;
	} else {
		s->suppressed++;
	}
	pthread_mutex_unlock(&s->log_mu);
	if (say)
		logmsg(pg, "SUB-HOST FAILING: %s (%" PRIu64
		       " more failures not shown); retrying", msg, n);
}

static void sub_ok(struct vmem_pager *pg, struct sub *s)
{
	if (LOAD(s->up))
		return;
	if (__atomic_exchange_n(&s->up, true, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&s->log_mu);
	if (s->last_log_ms) {
		logmsg(pg, "sub-host %s is answering again", s->uri);
		s->last_log_ms = 0;
		s->suppressed = 0;
	}
	pthread_mutex_unlock(&s->log_mu);
}

/* Sleep @ms or until stop; true when stopping. */
static bool nap(struct vmem_pager *pg, uint64_t ms)
{
	struct pollfd p = { .fd = pg->stop_efd, .events = POLLIN };

	if (LOAD(pg->stopping))
		return true;
	poll(&p, 1, (int)ms);
	return LOAD(pg->stopping);
}

/* ---- chunks, homes and the data map ---- */

static pthread_mutex_t *chunk_lock(struct vmem_pager *pg, uint64_t c)
{
	return &pg->stripes[c % NSTRIPES];
}

/*
 * page_in/page_out must answer within their timeout even when a fault
 * thread holds the chunk while it waits for a dead sub-host.
 */
static int lock_until(struct vmem_pager *pg, uint64_t c, uint64_t deadline,
		      char *err, size_t errlen)
{
	uint64_t left = deadline > now_ms() ? deadline - now_ms() : 0;
	struct timespec ts;
	int e;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(left / 1000);
	ts.tv_nsec += (long)(left % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	e = pthread_mutex_timedlock(chunk_lock(pg, c), &ts);
	if (e == 0)
		return 0;
	snprintf(err, errlen, "RAM at %#" PRIx64 " is busy (a sub-host may "
		 "be down): %s", c << pg->cshift, strerror(e));
	errno = e;
	return -1;
}

static struct sub *home_of(struct vmem_pager *pg, uint64_t off)
{
	for (size_t i = 0; i < pg->n_subs; i++)
		if (off >= pg->subs[i].start && off < pg->subs[i].end)
			return &pg->subs[i];
	return NULL;
}

/* End of the run of RAM from @off that shares @off's home, <= @limit. */
static uint64_t home_run_end(struct vmem_pager *pg, uint64_t off,
			     uint64_t limit)
{
	struct sub *s = home_of(pg, off);
	uint64_t end = limit;

	if (s)
		return s->end < end ? s->end : end;
	for (size_t i = 0; i < pg->n_subs; i++)
		if (pg->subs[i].start > off && pg->subs[i].start < end)
			end = pg->subs[i].start;
	return end;
}

/*
 * Next data run of the memory file in [off, end): true and the run in
 * (*ds, *de), or false when there is none.  SEEK_DATA on shmem is exact to
 * the page, which is what makes the file's data map the resident set.
 */
static bool next_data(struct vmem_pager *pg, uint64_t off, uint64_t end,
		      uint64_t *ds, uint64_t *de)
{
	uint64_t pages;
	int64_t n;
	off_t d, h;

	if (off >= end)
		return false;
	/*
	 * The common answers, "all of it" and "none of it", at a cost
	 * bounded by the range (common/presence.h): SEEK_HOLE below walks
	 * the whole data run, which made every page-in of a VM with a large
	 * resident set cost milliseconds.
	 */
	n = vmem_pages_present(pg->fd, off, end, &pages);
	if (n == 0)
		return false;
	if (n > 0 && (uint64_t)n == pages && !(off & 4095) && !(end & 4095)) {
		*ds = off;
		*de = end;
		return true;
	}
	d = lseek(pg->fd, (off_t)off, SEEK_DATA);
	if (d < 0 || (uint64_t)d >= end)
		return false;
	/* [d, end) holds a hole unless all of it is data: then SEEK_HOLE
	 * would run past end, so ask cachestat instead. */
	n = vmem_pages_present(pg->fd, (uint64_t)d, end, &pages);
	if (n > 0 && (uint64_t)n == pages && !(end & 4095)) {
		*ds = (uint64_t)d;
		*de = end;
		return true;
	}
	h = lseek(pg->fd, d, SEEK_HOLE);
	if (h < 0 || (uint64_t)h > end)
		h = (off_t)end;
	*ds = (uint64_t)d;
	*de = (uint64_t)h;
	return true;
}

static uint64_t count_data(struct vmem_pager *pg, uint64_t off, uint64_t end)
{
	uint64_t ds, de, n = 0;

	while (next_data(pg, off, end, &ds, &de)) {
		n += de - ds;
		off = de;
	}
	return n;
}

/* Recount chunk @c (its lock held) and move the global count along. */
static void recount(struct vmem_pager *pg, uint64_t c)
{
	uint64_t s = c << pg->cshift;
	uint64_t e = s + pg->cs < pg->size ? s + pg->cs : pg->size;
	uint64_t n = count_data(pg, s, e), old = pg->chunk_res[c];

	STORE(pg->chunk_res[c], (uint32_t)n);
	if (n >= old)
		ADD(pg->resident, n - old);
	else
		__atomic_fetch_sub(&pg->resident, old - n, __ATOMIC_RELAXED);
	if (!pg->chunk_homed[c])
		return;
	if (n >= old)
		ADD(pg->homed_res, n - old);
	else
		__atomic_fetch_sub(&pg->homed_res, old - n, __ATOMIC_RELAXED);
	if (!old && n)
		ADD(pg->homed_nres, 1);
	else if (old && !n)
		__atomic_fetch_sub(&pg->homed_nres, 1, __ATOMIC_RELAXED);
}

/* What is resident before we start, in one pass over the data map. */
static void count_initial(struct vmem_pager *pg)
{
	uint64_t off = 0, ds, de;

	while (next_data(pg, off, pg->size, &ds, &de)) {
		while (ds < de) {
			uint64_t c = ds >> pg->cshift;
			uint64_t ce = (c + 1) << pg->cshift;
			uint64_t e = ce < de ? ce : de;

			if (pg->chunk_homed[c]) {
				if (!pg->chunk_res[c])
					pg->homed_nres++;
				pg->homed_res += e - ds;
			}
			pg->chunk_res[c] += (uint32_t)(e - ds);
			pg->resident += e - ds;
			ds = e;
		}
		off = de;
	}
}

static struct buf *buf_get(struct vmem_pager *pg)
{
	struct buf *b;

	pthread_mutex_lock(&pg->buf_mu);
	b = pg->free_bufs;
	if (b)
		pg->free_bufs = b->next;
	pthread_mutex_unlock(&pg->buf_mu);
	if (b)
		return b;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	if (posix_memalign((void **)&b->data, PAGE, pg->cs)) {
		free(b);
		return NULL;
	}
	return b;
}

static void buf_put(struct vmem_pager *pg, struct buf *b)
{
	pthread_mutex_lock(&pg->buf_mu);
	b->next = pg->free_bufs;
	pg->free_bufs = b;
	pthread_mutex_unlock(&pg->buf_mu);
}

/* ---- userfaultfd primitives ---- */

/*
 * Install @len bytes of @src at file offset @off, skipping pages that are
 * already present (EEXIST): they are newer than anything we fetched.
 * Returns the bytes installed, or -1 on an unexpected error.
 */
static int64_t uffd_install(struct vmem_pager *pg, const char *src,
			    uint64_t off, uint64_t len)
{
	uint64_t done = 0, installed = 0;

	while (done < len) {
		struct uffdio_copy cp = {
			.dst = (uintptr_t)(pg->base + off + done),
			.src = (uintptr_t)(src + done),
			.len = len - done,
			.mode = 0,
		};

		if (ioctl(pg->uffd, UFFDIO_COPY, &cp) == 0) {
			installed += len - done;
			break;
		}
		if (cp.copy > 0) {		/* partial: EAGAIN */
			done += (uint64_t)cp.copy;
			installed += (uint64_t)cp.copy;
			continue;
		}
		if (errno == EEXIST) {
			done += PAGE;
			continue;
		}
		if (errno == EAGAIN || errno == EINTR)
			continue;
		return -1;
	}
	return (int64_t)installed;
}

static int uffd_wp(struct vmem_pager *pg, uint64_t off, uint64_t len,
		   bool protect)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)(pg->base + off), .len = len },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	while (ioctl(pg->uffd, UFFDIO_WRITEPROTECT, &wp) == -1)
		if (errno != EAGAIN && errno != EINTR)
			return -1;
	return 0;
}

static void uffd_wake(struct vmem_pager *pg, uint64_t off, uint64_t len)
{
	struct uffdio_range r = {
		.start = (uintptr_t)(pg->base + off),
		.len = len,
	};

	ioctl(pg->uffd, UFFDIO_WAKE, &r);
}

/* ---- eviction ---- */

#define MAX_RUNS 64

/*
 * Move the resident pages of [s, e) (one home, one chunk, chunk lock held)
 * to sub-host @sh.  The write-protect window is what makes it safe while
 * the VM runs: a writer blocks from before we read the page until after it
 * is gone, then takes a MISSING fault and refetches what we wrote.
 * Returns bytes moved, or -1 with @err set.  On -1 every page not yet
 * punched is still local and authoritative; a punched one is on the
 * sub-host, which acknowledged the write first.
 */
static int64_t evict_range(struct vmem_pager *pg, struct sub *sh,
			   uint64_t s, uint64_t e, uint64_t timeout_ms,
			   char *err, size_t errlen)
{
	uint64_t offs[MAX_RUNS], lens[MAX_RUNS], ds, de, moved = 0;
	void *bufs[MAX_RUNS];
	struct buf *b;
	size_t n = 0;
	int64_t rc = -1;

	while (n < MAX_RUNS && next_data(pg, s, e, &ds, &de)) {
		offs[n] = ds;
		lens[n] = de - ds;
		n++;
		s = de;
	}
	if (n == 0)
		return 0;
	b = buf_get(pg);
	if (!b) {
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return -1;
	}
	vmem_seq_move_begin(pg->seq, offs[0],
			    offs[n - 1] + lens[n - 1] - offs[0]);
	for (size_t i = 0; i < n; i++) {
		if (uffd_wp(pg, offs[i], lens[i], true) == -1) {
			snprintf(err, errlen, "UFFDIO_WRITEPROTECT: %s",
				 strerror(errno));
			for (size_t j = 0; j < i; j++)
				uffd_wp(pg, offs[j], lens[j], false);
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
		sub_failed(pg, sh, err);
		goto unprotect;
	}
	sub_ok(pg, sh);
	for (size_t i = 0; i < n; i++) {
		if (fallocate(pg->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)offs[i], (off_t)lens[i]) == -1) {
			/* The sub-host has a copy; keeping ours is safe. */
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
		uffd_wp(pg, offs[i], lens[i], false);
	ADD(sh->bytes_out, moved);
	ADD(pg->st.bytes_out, moved);
out:
	vmem_seq_move_end(pg->seq, offs[0],
			  offs[n - 1] + lens[n - 1] - offs[0]);
	buf_put(pg, b);
	return rc;
}

/*
 * Evict chunk @c (lock held): every homed part whose sub-host is not in
 * its failure back-off.  Returns bytes moved.
 */
static uint64_t evict_chunk(struct vmem_pager *pg, uint64_t c)
{
	uint64_t s = c << pg->cshift, moved = 0, now = now_ms();
	uint64_t e = s + pg->cs < pg->size ? s + pg->cs : pg->size;
	char err[256];

	while (s < e) {
		uint64_t re = home_run_end(pg, s, e);
		struct sub *sh = home_of(pg, s);

		while (sh && LOAD(sh->evict_after_ms) <= now) {
			int64_t r = evict_range(pg, sh, s, re, pg->timeout_ms,
						err, sizeof(err));

			if (r < 0)
				STORE(sh->evict_after_ms, now + MAX_BACKOFF_MS);
			if (r <= 0)
				break;
			moved += (uint64_t)r;
		}
		s = re;
	}
	if (moved)
		recount(pg, c);
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
		mu = chunk_lock(pg, c);
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
static void reserve(struct vmem_pager *pg, uint64_t need, uint64_t own)
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
			uint64_t now = now_ms();

			ADD(pg->st.over_limit, 1);
			if (now - pg->over_log_ms >= LOG_EVERY_MS) {
				pg->over_log_ms = now;
				logmsg(pg, "over local-limit: nothing evictable "
				       "(resident %" PRIu64 ", limit %" PRIu64
				       ")", LOAD(pg->resident), pg->limit);
			}
			break;
		}
		pthread_mutex_unlock(&pg->acct_mu);
		nap(pg, 1);
		pthread_mutex_lock(&pg->acct_mu);
	}
	pg->reserved += need;
	if (over(pg, 0, headroom(pg)))
		pthread_cond_signal(&pg->acct_cv);
	pthread_mutex_unlock(&pg->acct_mu);
}

static void unreserve(struct vmem_pager *pg, uint64_t need)
{
	if (!pg->limit)
		return;
	pthread_mutex_lock(&pg->acct_mu);
	pg->reserved -= need;
	pthread_mutex_unlock(&pg->acct_mu);
}

/* Keeps headroom free so that faults rarely have to evict themselves. */
static void *evict_thread(void *arg)
{
	struct vmem_pager *pg = arg;

	while (!LOAD(pg->stopping)) {
		bool work;

		pthread_mutex_lock(&pg->acct_mu);
		if (!over(pg, 0, headroom(pg))) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&pg->acct_cv, &pg->acct_mu,
					       &ts);
		}
		work = over(pg, 0, headroom(pg));
		pthread_mutex_unlock(&pg->acct_mu);
		if (work && !LOAD(pg->stopping) &&
		    clock_evict(pg, UINT64_MAX, NULL) == 0)
			nap(pg, 20);
	}
	return NULL;
}

/* ---- moving pages in ---- */

enum retry { RETRY_FOREVER, RETRY_DEADLINE };

/*
 * Make [s, e) resident (one home or none, inside chunk @c, lock held):
 * fetch the span from the first to the last hole in one request, install
 * only the holes, wake waiters, then discard the span on the sub-host.
 * RETRY_FOREVER is the fault path; RETRY_DEADLINE gives up at @deadline.
 */
static int fetch_range(struct vmem_pager *pg, uint64_t c, uint64_t s,
		       uint64_t e, enum retry mode, uint64_t deadline,
		       char *err, size_t errlen)
{
	uint64_t hs = UINT64_MAX, he = 0, absent = 0, pos = s, ds, de;
	uint64_t backoff = 10, installed = 0;
	struct sub *sh = home_of(pg, s);
	struct buf *b = NULL;
	const char *src;
	int rc = -1;

	/* The holes of [s, e). */
	while (pos < e) {
		uint64_t hend = e;

		if (next_data(pg, pos, e, &ds, &de))
			hend = ds;
		else
			de = e;
		if (hend > pos) {
			if (hs == UINT64_MAX)
				hs = pos;
			he = hend;
			absent += hend - pos;
		}
		pos = de;
	}
	if (absent == 0)
		return 0;

	reserve(pg, absent, c);
	vmem_seq_move_begin(pg->seq, hs, he - hs);
	if (sh) {
		b = buf_get(pg);
		if (!b) {
			snprintf(err, errlen, "out of memory");
			errno = ENOMEM;
			goto out;
		}
		for (;;) {
			uint64_t t = pg->timeout_ms;

			if (mode == RETRY_DEADLINE) {
				uint64_t now = now_ms();

				if (now >= deadline) {
					/* err holds the last failure */
					errno = ETIMEDOUT;
					goto out;
				}
				if (deadline - now < t)
					t = deadline - now;
			}
			if (vp_remote_pread(sh->remote, b->data, he - hs, hs,
					    t, err, errlen) == 0)
				break;
			sub_failed(pg, sh, err);
			ADD(pg->st.retries, 1);
			if (nap(pg, backoff)) {
				snprintf(err, errlen, "pager stopping");
				errno = ECANCELED;
				goto out;
			}
			backoff = backoff * 2 > MAX_BACKOFF_MS ?
				  MAX_BACKOFF_MS : backoff * 2;
		}
		sub_ok(pg, sh);
		src = b->data;
	} else {
		src = pg->zeros;
	}

	/* Install hole by hole: present pages may be newer than the fetch. */
	pos = hs;
	while (pos < he) {
		uint64_t hend = he;
		int64_t r;

		if (next_data(pg, pos, he, &ds, &de))
			hend = ds;
		else
			de = he;
		if (hend > pos) {
			r = uffd_install(pg, src + (pos - hs), pos, hend - pos);
			if (r < 0) {
				snprintf(err, errlen, "UFFDIO_COPY: %s",
					 strerror(errno));
				goto out;
			}
			installed += (uint64_t)r;
		}
		pos = de;
	}
	rc = 0;
	if (sh) {
		ADD(sh->bytes_in, installed);
		ADD(pg->st.bytes_in, installed);
		/*
		 * One place only.  A failed discard leaves a stale copy on
		 * the sub-host, which is never read while the page is local
		 * and is overwritten when it is evicted: report, go on.
		 */
		if (vp_remote_discard(sh->remote, he - hs, hs, pg->timeout_ms,
				      err, errlen) == -1)
			sub_failed(pg, sh, err);
	} else {
		ADD(pg->st.bytes_zero, installed);
	}
	ADD(pg->st.page_ins, 1);
	STORE(pg->chunk_stamp[c], (uint32_t)(ADD(pg->pagein_seq, 1) + 1));
out:
	recount(pg, c);
	unreserve(pg, absent);
	vmem_seq_move_end(pg->seq, hs, he - hs);
	STORE(pg->chunk_ref[c], 1);
	if (b)
		buf_put(pg, b);
	return rc;
}

/* ---- the fault threads ---- */

static void handle_missing(struct vmem_pager *pg, uint64_t off)
{
	uint64_t c = off >> pg->cshift;
	uint64_t cs = c << pg->cshift;
	uint64_t ce = cs + pg->cs < pg->size ? cs + pg->cs : pg->size;
	uint64_t s, e;
	char err[256];

	/* The window: the chunk, clipped to the faulting page's home run. */
	s = cs;
	while (home_run_end(pg, s, ce) <= off)
		s = home_run_end(pg, s, ce);
	e = home_run_end(pg, s, ce);

	/*
	 * Sub-host errors are retried inside fetch_range; anything else
	 * (no memory, a failed UFFDIO_COPY) is retried here, because the
	 * kernel will not deliver this fault again and a vCPU cannot be
	 * told EIO.
	 */
	for (uint64_t t = 100;; t = t * 2 > MAX_BACKOFF_MS ? MAX_BACKOFF_MS :
	     t * 2) {
		int rc;

		pthread_mutex_lock(chunk_lock(pg, c));
		rc = fetch_range(pg, c, s, e, RETRY_FOREVER, 0, err,
				 sizeof(err));
		pthread_mutex_unlock(chunk_lock(pg, c));
		if (rc == 0 || LOAD(pg->stopping))
			break;
		logmsg(pg, "fault at %#" PRIx64 ": %s; retrying", off, err);
		if (nap(pg, t))
			break;
	}
	/* A racing installer may have beaten us to the page. */
	uffd_wake(pg, off, PAGE);
}

/*
 * A writer hit a page being evicted.  The evictor un-protects (and so
 * wakes it) before it drops the chunk lock; if we get the lock, make sure
 * nothing is left protected, else the holder will do it.
 */
static void handle_wp(struct vmem_pager *pg, uint64_t off)
{
	pthread_mutex_t *mu = chunk_lock(pg, off >> pg->cshift);

	ADD(pg->st.wp_faults, 1);
	if (pthread_mutex_trylock(mu) == 0) {
		uffd_wp(pg, off, PAGE, false);
		pthread_mutex_unlock(mu);
	}
}

static void *fault_thread(void *arg)
{
	struct vmem_pager *pg = arg;
	struct uffd_msg msgs[MSG_BATCH];
	struct pollfd pfd[2] = {
		{ .fd = pg->uffd, .events = POLLIN },
		{ .fd = pg->stop_efd, .events = POLLIN },
	};

	while (!LOAD(pg->stopping)) {
		ssize_t n;

		if (poll(pfd, 2, -1) == -1 && errno != EINTR)
			break;
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

/* ---- setup ---- */

static int open_uffd(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int dev;

	if (fd >= 0)
		return fd;
	/* vm.unprivileged_userfaultfd=0 without CAP_SYS_PTRACE */
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -1;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	close(dev);
	return fd;
}

static int setup_uffd(struct vmem_pager *pg, char *err, size_t errlen)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_MISSING_SHMEM |
			    UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
	};
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)pg->base, .len = pg->size },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	uint64_t need = (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_WAKE) |
			(1ULL << _UFFDIO_WRITEPROTECT);

	pg->uffd = open_uffd();
	if (pg->uffd < 0) {
		snprintf(err, errlen, "userfaultfd: %s", strerror(errno));
		return -1;
	}
	if (ioctl(pg->uffd, UFFDIO_API, &api) == -1) {
		snprintf(err, errlen, "UFFDIO_API (shmem MISSING+WP): %s",
			 strerror(errno));
		return -1;
	}
	if (ioctl(pg->uffd, UFFDIO_REGISTER, &reg) == -1) {
		snprintf(err, errlen, "UFFDIO_REGISTER MISSING|WP of the "
			 "memory mapping: %s (is it a MAP_SHARED mapping of "
			 "a shmem file?)", strerror(errno));
		return -1;
	}
	if ((reg.ioctls & need) != need) {
		snprintf(err, errlen, "userfaultfd lacks COPY/WAKE/"
			 "WRITEPROTECT on this mapping");
		return -1;
	}
	return 0;
}

static int open_seq(struct vmem_pager *pg, const struct vmem_pager_params *p,
		    char *err, size_t errlen)
{
	char path[4096];
	struct stat st;
	void *m;
	int fd;

	if (p->seq_path)
		snprintf(path, sizeof(path), "%s", p->seq_path);
	else if (p->mem_path)
		snprintf(path, sizeof(path), "%s%s", p->mem_path,
			 VMEM_SEQ_SUFFIX);
	else {
		snprintf(err, errlen, "need seq_path or mem_path");
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) == -1 ||
	    (st.st_size < VMEM_SEQ_FILE_SIZE &&
	     ftruncate(fd, VMEM_SEQ_FILE_SIZE) == -1)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	m = mmap(NULL, VMEM_SEQ_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		 fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		snprintf(err, errlen, "mmap %s: %s", path, strerror(errno));
		return -1;
	}
	pg->seq = m;
	/*
	 * We are the only mover.  A pair left with begun != done by a mover
	 * that died mid-move would make readers retry forever; the counters
	 * stay monotonic, so this cannot validate a stale token.
	 */
	for (int i = 0; i < VMEM_SEQ_STRIPES; i++) {
		struct vmem_seq_pair *sp = &pg->seq->pair[i];
		uint64_t b = __atomic_load_n(&sp->begun, __ATOMIC_ACQUIRE);

		if (__atomic_load_n(&sp->done, __ATOMIC_ACQUIRE) != b)
			__atomic_store_n(&sp->done, b, __ATOMIC_RELEASE);
	}
	return 0;
}

static int cmp_sub(const void *a, const void *b)
{
	const struct sub *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

void vmem_pager_params_from_vm(struct vmem_pager_params *p,
			       const struct vmem_vm *vm,
			       struct vmem_pager_subhost *subs)
{
	p->size = vm->ram_size;
	p->chunk_size = vm->chunk_size;
	p->local_limit = vm->local_limit >= vm->ram_size ? 0 : vm->local_limit;
	p->timeout_ms = vm->timeout_ms;
	p->mem_path = vm->memory_file;
	p->seq_path = NULL;
	for (size_t i = 0; i < vm->n_subhosts; i++) {
		subs[i].uri = vm->subhosts[i].uri;
		subs[i].start = vm->subhosts[i].start;
		subs[i].end = vm->subhosts[i].end;
	}
	p->subhosts = subs;
	p->n_subhosts = vm->n_subhosts;
}

static int check_params(const struct vmem_pager_params *p, char *err,
			size_t errlen)
{
	uint64_t cs = p->chunk_size ? p->chunk_size : DEFAULT_CHUNK;
	unsigned int nt = p->n_fault_threads ? p->n_fault_threads : 2;
	struct stat st;

	if (!p->host_addr || (uintptr_t)p->host_addr % PAGE) {
		snprintf(err, errlen, "host_addr must be page aligned");
		return -1;
	}
	if (!p->size || p->size % PAGE) {
		snprintf(err, errlen, "size must be a non-zero multiple of %llu",
			 PAGE);
		return -1;
	}
	if (cs < PAGE || cs > (16ULL << 20) || (cs & (cs - 1))) {
		snprintf(err, errlen, "chunk size %" PRIu64 " is not a power "
			 "of two in 4K..16M", cs);
		return -1;
	}
	if (p->local_limit && p->local_limit < (uint64_t)(nt + 2) * cs) {
		snprintf(err, errlen, "local limit %" PRIu64 " is below "
			 "(fault threads + 2) * chunk size = %" PRIu64,
			 p->local_limit, (uint64_t)(nt + 2) * cs);
		return -1;
	}
	if (nt > MAX_FAULT_THREADS) {
		snprintf(err, errlen, "at most %d fault threads",
			 MAX_FAULT_THREADS);
		return -1;
	}
	if (fstat(p->mem_fd, &st) == -1 || (uint64_t)st.st_size < p->size) {
		snprintf(err, errlen, "memory file fd: %s",
			 errno ? strerror(errno) : "smaller than size");
		return -1;
	}
	for (size_t i = 0; i < p->n_subhosts; i++) {
		const struct vmem_pager_subhost *s = &p->subhosts[i];

		if (!s->uri || s->start >= s->end || s->end > p->size ||
		    s->start % PAGE || s->end % PAGE) {
			snprintf(err, errlen, "sub-host %zu (%s): range must be "
				 "page aligned, non-empty and inside RAM", i,
				 s->uri ? s->uri : "no URI");
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			const struct vmem_pager_subhost *t = &p->subhosts[j];

			if (s->start < t->end && t->start < s->end) {
				snprintf(err, errlen, "sub-hosts %s and %s "
					 "overlap", t->uri, s->uri);
				return -1;
			}
		}
	}
	return 0;
}

struct vmem_pager *vmem_pager_new(const struct vmem_pager_params *p,
				  char *err, size_t errlen)
{
	struct vmem_pager *pg;

	errno = 0;
	if (check_params(p, err, errlen))
		return NULL;
	pg = calloc(1, sizeof(*pg));
	if (!pg)
		goto nomem;
	pg->fd = pg->uffd = pg->stop_efd = -1;
	pg->base = p->host_addr;
	pg->size = p->size;
	pg->cs = p->chunk_size ? p->chunk_size : DEFAULT_CHUNK;
	pg->cshift = (unsigned int)__builtin_ctzll(pg->cs);
	pg->nchunks = (pg->size + pg->cs - 1) >> pg->cshift;
	pg->limit = p->local_limit < p->size ? p->local_limit : 0;
	pg->headroom = pg->limit / 16 > 2 * pg->cs ? pg->limit / 16 :
		       2 * pg->cs;
	pg->timeout_ms = p->timeout_ms ? p->timeout_ms : DEFAULT_TIMEOUT_MS;
	pg->quiet = p->quiet;
	pg->n_threads = p->n_fault_threads ? p->n_fault_threads : 2;
	pthread_mutex_init(&pg->acct_mu, NULL);
	pthread_cond_init(&pg->acct_cv, NULL);
	pthread_mutex_init(&pg->buf_mu, NULL);
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_init(&pg->stripes[i], NULL);

	pg->chunk_res = calloc(pg->nchunks, sizeof(*pg->chunk_res));
	pg->chunk_ref = calloc(pg->nchunks, 1);
	pg->chunk_pin = calloc(pg->nchunks, sizeof(*pg->chunk_pin));
	pg->chunk_homed = calloc(pg->nchunks, 1);
	pg->chunk_stamp = calloc(pg->nchunks, sizeof(*pg->chunk_stamp));
	/* Chunks resident from before we started are not young. */
	pg->pagein_seq = 1ULL << 31;
	pg->zeros = aligned_alloc(PAGE, pg->cs);
	pg->subs = calloc(p->n_subhosts ? p->n_subhosts : 1,
			  sizeof(*pg->subs));
	if (!pg->chunk_res || !pg->chunk_ref || !pg->chunk_pin ||
	    !pg->chunk_homed || !pg->chunk_stamp || !pg->zeros || !pg->subs)
		goto nomem;
	memset(pg->zeros, 0, pg->cs);
	pg->n_subs = p->n_subhosts;
	for (size_t i = 0; i < pg->n_subs; i++) {
		struct sub *s = &pg->subs[i];

		s->uri = strdup(p->subhosts[i].uri);
		s->orig = i;
		s->start = p->subhosts[i].start;
		s->end = p->subhosts[i].end;
		s->up = true;
		pthread_mutex_init(&s->log_mu, NULL);
		if (!s->uri)
			goto nomem;
	}
	qsort(pg->subs, pg->n_subs, sizeof(*pg->subs), cmp_sub);
	for (size_t i = 0; i < pg->n_subs; i++) {
		struct sub *s = &pg->subs[i];

		s->remote = vp_remote_new(s->uri, s->end);
		if (!s->remote)
			goto nomem;
		for (uint64_t c = s->start >> pg->cshift;
		     c < pg->nchunks && (c << pg->cshift) < s->end; c++)
			pg->chunk_homed[c] = 1;
	}

	pg->fd = fcntl(p->mem_fd, F_DUPFD_CLOEXEC, 0);
	pg->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (pg->fd < 0 || pg->stop_efd < 0) {
		snprintf(err, errlen, "fd: %s", strerror(errno));
		goto fail;
	}
	/* next_data() trusts cachestat, which is the data map on tmpfs
	 * only (common/presence.h). */
	{
		enum vmem_datamap_kind kind;

		if (vmem_datamap_kind(pg->fd, p->mem_path ? p->mem_path :
				      "memory file", &kind, err, errlen) < 0)
			goto fail;
		if (kind != VMEM_DATAMAP_SHMEM) {
			snprintf(err, errlen, "%s: the pager needs the memory "
				 "file on tmpfs", p->mem_path ? p->mem_path :
				 "memory file");
			goto fail;
		}
	}
	if (open_seq(pg, p, err, errlen) || setup_uffd(pg, err, errlen))
		goto fail;
	count_initial(pg);
	pg->st.ram_size = pg->size;
	pg->st.local_limit = pg->limit;
	pg->st.chunk_size = pg->cs;
	pg->st.n_subhosts = pg->n_subs;
	return pg;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	vmem_pager_free(pg);
	return NULL;
}

int vmem_pager_start(struct vmem_pager *pg)
{
	uint64_t v;
	int e;

	if (pg->running)
		return 0;
	/* Drain a stop request left from a previous vmem_pager_stop(). */
	while (read(pg->stop_efd, &v, sizeof(v)) > 0)
		;
	STORE(pg->stopping, false);
	for (unsigned int i = 0; i < pg->n_threads; i++) {
		e = pthread_create(&pg->fault_thr[i], NULL, fault_thread, pg);
		if (e) {
			STORE(pg->stopping, true);
			v = 1;
			if (write(pg->stop_efd, &v, sizeof(v)) < 0)
				logmsg(pg, "stop: %s", strerror(errno));
			while (i-- > 0)
				pthread_join(pg->fault_thr[i], NULL);
			errno = e;
			return -1;
		}
	}
	pg->has_evictor = false;
	if (pg->limit) {
		e = pthread_create(&pg->evict_thr, NULL, evict_thread, pg);
		if (e == 0)
			pg->has_evictor = true;
		else
			logmsg(pg, "no eviction thread (%s); faults will "
			       "evict for themselves", strerror(e));
	}
	pg->running = true;
	return 0;
}

void vmem_pager_stop(struct vmem_pager *pg)
{
	uint64_t one = 1;

	if (!pg || !pg->running)
		return;
	STORE(pg->stopping, true);
	if (write(pg->stop_efd, &one, sizeof(one)) < 0)
		logmsg(pg, "stop: %s", strerror(errno));
	pthread_mutex_lock(&pg->acct_mu);
	pthread_cond_broadcast(&pg->acct_cv);
	pthread_mutex_unlock(&pg->acct_mu);
	for (unsigned int i = 0; i < pg->n_threads; i++)
		pthread_join(pg->fault_thr[i], NULL);
	if (pg->has_evictor)
		pthread_join(pg->evict_thr, NULL);
	pg->running = false;
}

void vmem_pager_free(struct vmem_pager *pg)
{
	struct buf *b;

	if (!pg)
		return;
	vmem_pager_stop(pg);
	if (pg->uffd >= 0) {
		struct uffdio_range r = {
			.start = (uintptr_t)pg->base, .len = pg->size,
		};

		ioctl(pg->uffd, UFFDIO_UNREGISTER, &r);
		close(pg->uffd);
	}
	if (pg->stop_efd >= 0)
		close(pg->stop_efd);
	if (pg->fd >= 0)
		close(pg->fd);
	if (pg->seq)
		munmap(pg->seq, VMEM_SEQ_FILE_SIZE);
	for (size_t i = 0; pg->subs && i < pg->n_subs; i++) {
		vp_remote_free(pg->subs[i].remote);
		pthread_mutex_destroy(&pg->subs[i].log_mu);
		free(pg->subs[i].uri);
	}
	while ((b = pg->free_bufs)) {
		pg->free_bufs = b->next;
		free(b->data);
		free(b);
	}
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_destroy(&pg->stripes[i]);
	pthread_mutex_destroy(&pg->acct_mu);
	pthread_cond_destroy(&pg->acct_cv);
	pthread_mutex_destroy(&pg->buf_mu);
	free(pg->subs);
	free(pg->zeros);
	free(pg->chunk_res);
	free(pg->chunk_ref);
	free(pg->chunk_pin);
	free(pg->chunk_homed);
	free(pg->chunk_stamp);
	free(pg);
}

/* ---- page_in / page_out ---- */

static int clip(struct vmem_pager *pg, uint64_t *off, uint64_t *len,
		char *err, size_t errlen)
{
	uint64_t s = *off & ~(PAGE - 1), e;

	if (*len == 0 || *off >= pg->size || *len > pg->size - *off) {
		snprintf(err, errlen, "range %#" PRIx64 "+%#" PRIx64
			 " is not inside RAM (%#" PRIx64 ")", *off, *len,
			 pg->size);
		errno = EINVAL;
		return -1;
	}
	e = (*off + *len + PAGE - 1) & ~(PAGE - 1);
	*off = s;
	*len = e - s;
	return 0;
}

/*
 * page_in() of many chunks is spread over a few threads, each with its
 * own pooled NBD connection, so requests overlap on the wire.  Each
 * worker runs the same locked fetch as a fault, one chunk at a time, so
 * this changes speed only, never what is installed.
 */
#define PAGE_IN_WORKERS 4

struct page_in_job {
	struct vmem_pager *pg;
	uint64_t offset, end;
	uint64_t next_c, last_c;	/* atomic: next chunk to take */
	bool failed;			/* atomic */
	pthread_mutex_t mu;		/* first error */
	int err_no;
	char err[256];
};

static void *page_in_worker(void *arg)
{
	struct page_in_job *j = arg;
	struct vmem_pager *pg = j->pg;
	char err[256];

	while (!LOAD(j->failed)) {
		uint64_t c = ADD(j->next_c, 1), pos, end;
		uint64_t deadline = now_ms() + pg->timeout_ms;
		int rc;

		if (c > j->last_c)
			break;
		pos = c << pg->cshift > j->offset ? c << pg->cshift : j->offset;
		end = (c + 1) << pg->cshift < j->end ? (c + 1) << pg->cshift :
		      j->end;
		rc = lock_until(pg, c, deadline, err, sizeof(err));
		if (rc == 0) {
			while (rc == 0 && pos < end) {
				uint64_t e = home_run_end(pg, pos, end);

				rc = fetch_range(pg, c, pos, e, RETRY_DEADLINE,
						 deadline, err, sizeof(err));
				pos = e;
			}
			STORE(pg->chunk_ref[c], 1);
			pthread_mutex_unlock(chunk_lock(pg, c));
		}
		if (rc) {
			int e = errno;

			pthread_mutex_lock(&j->mu);
			if (!j->failed) {
				snprintf(j->err, sizeof(j->err), "%s", err);
				j->err_no = e ? e : EIO;
			}
			STORE(j->failed, true);
			pthread_mutex_unlock(&j->mu);
		}
	}
	return NULL;
}

int vmem_pager_page_in(struct vmem_pager *pg, uint64_t offset,
		       uint64_t length, char *err, size_t errlen)
{
	struct page_in_job j = { .pg = pg };
	pthread_t helpers[PAGE_IN_WORKERS - 1];
	unsigned int n_helpers = 0;
	uint64_t end, c0, c1;
	int rc = 0;

	if (clip(pg, &offset, &length, err, errlen))
		return -1;
	end = offset + length;
	if (pg->limit && length + (pg->n_threads + PAGE_IN_WORKERS) * pg->cs >
	    pg->limit) {
		snprintf(err, errlen, "cannot hold %" PRIu64 " bytes resident "
			 "under local-limit %" PRIu64, length, pg->limit);
		errno = EFBIG;
		return -1;
	}
	c0 = offset >> pg->cshift;
	c1 = (end - 1) >> pg->cshift;
	for (uint64_t c = c0; c <= c1; c++)
		ADD(pg->chunk_pin[c], 1);

	j.offset = offset;
	j.end = end;
	j.next_c = c0;
	j.last_c = c1;
	pthread_mutex_init(&j.mu, NULL);
	while (n_helpers < PAGE_IN_WORKERS - 1 && n_helpers < c1 - c0 &&
	       pthread_create(&helpers[n_helpers], NULL, page_in_worker,
			      &j) == 0)
		n_helpers++;
	page_in_worker(&j);
	for (unsigned int i = 0; i < n_helpers; i++)
		pthread_join(helpers[i], NULL);
	pthread_mutex_destroy(&j.mu);

	if (j.failed) {
		snprintf(err, errlen, "%s", j.err);
		errno = j.err_no;
		rc = -1;
	} else if (count_data(pg, offset, end) != length) {
		/* Someone punched it behind our back (not the pager). */
		snprintf(err, errlen, "range was punched while paging in");
		errno = EAGAIN;
		rc = -1;
	}
	for (uint64_t c = c0; c <= c1; c++)
		__atomic_fetch_sub(&pg->chunk_pin[c], 1, __ATOMIC_RELAXED);
	return rc;
}

int vmem_pager_page_out(struct vmem_pager *pg, uint64_t offset,
			uint64_t length, char *err, size_t errlen)
{
	uint64_t deadline = now_ms() + pg->timeout_ms, end, pos;
	uint64_t backoff = 10;

	if (clip(pg, &offset, &length, err, errlen))
		return -1;
	end = offset + length;
	for (pos = offset; pos < end;) {
		uint64_t c = pos >> pg->cshift;
		uint64_t ce = (c + 1) << pg->cshift;
		uint64_t e = home_run_end(pg, pos, ce < end ? ce : end);
		struct sub *sh = home_of(pg, pos);
		int64_t r = 0;

		if (sh) {
			uint64_t now = now_ms(), t = pg->timeout_ms;

			if (now >= deadline) {
				snprintf(err, errlen, "%s: no progress for %"
					 PRIu64 " ms", sh->uri,
					 pg->timeout_ms);
				errno = ETIMEDOUT;
				return -1;
			}
			if (deadline - now < t)
				t = deadline - now;
			/*
			 * Under the lock nothing can refill the range, so
			 * looping until no data is left terminates.
			 */
			if (lock_until(pg, c, deadline, err, errlen))
				return -1;
			while ((r = evict_range(pg, sh, pos, e, t, err,
						errlen)) > 0)
				ADD(pg->st.page_outs, 1);
			recount(pg, c);
			pthread_mutex_unlock(chunk_lock(pg, c));
			if (r < 0) {
				int ee = errno;

				ADD(pg->st.retries, 1);
				if (nap(pg, backoff) || now_ms() >= deadline) {
					errno = ee ? ee : EIO;
					return -1;
				}
				backoff = backoff * 2 > MAX_BACKOFF_MS ?
					  MAX_BACKOFF_MS : backoff * 2;
				continue;	/* same range again */
			}
			/* The timeout bounds a stall, not a long range. */
			deadline = now_ms() + pg->timeout_ms;
			backoff = 10;
		}
		pos = e;
	}
	return 0;
}

void vmem_pager_get_stats(struct vmem_pager *pg, struct vmem_pager_stats *s,
			  struct vmem_pager_subhost_stats *sh, size_t n_sh)
{
	s->ram_size = pg->size;
	s->local_limit = pg->limit;
	s->chunk_size = pg->cs;
	s->resident_bytes = LOAD(pg->resident);
	s->faults = LOAD(pg->st.faults);
	s->wp_faults = LOAD(pg->st.wp_faults);
	s->page_ins = LOAD(pg->st.page_ins);
	s->page_outs = LOAD(pg->st.page_outs);
	s->evictions = LOAD(pg->st.evictions);
	s->bytes_in = LOAD(pg->st.bytes_in);
	s->bytes_zero = LOAD(pg->st.bytes_zero);
	s->bytes_out = LOAD(pg->st.bytes_out);
	s->retries = LOAD(pg->st.retries);
	s->over_limit = LOAD(pg->st.over_limit);
	s->n_subhosts = pg->n_subs;
	for (size_t i = 0; sh && i < pg->n_subs; i++) {
		struct sub *x = &pg->subs[i];
		struct vmem_pager_subhost_stats *o = &sh[x->orig];

		if (x->orig >= n_sh)
			continue;
		o->uri = x->uri;
		o->start = x->start;
		o->end = x->end;
		o->bytes_in = LOAD(x->bytes_in);
		o->bytes_out = LOAD(x->bytes_out);
		o->errors = LOAD(x->errors);
		o->up = LOAD(x->up);
	}
}

uint64_t vmem_pager_resident_in(struct vmem_pager *pg, uint64_t start,
				uint64_t end)
{
	uint64_t n = 0;

	if (end > pg->size)
		end = pg->size;
	while (start < end) {
		uint64_t c = start >> pg->cshift, cs = c << pg->cshift;
		uint64_t ce = cs + pg->cs < pg->size ? cs + pg->cs : pg->size;
		uint64_t e = ce < end ? ce : end, part = e - start, pages;
		uint64_t res = LOAD(pg->chunk_res[c]);
		int64_t k;

		if (start == cs && e == ce) {
			n += res;
		} else if (res == ce - cs) {
			n += part;
		} else if (res) {
			/* The range cuts the chunk: count the cut part. */
			k = vmem_pages_present(pg->fd, start, e, &pages);
			if (k < 0 || (uint64_t)k * PAGE > part)
				n += res < part ? res : part;
			else
				n += (uint64_t)k * PAGE;
		}
		start = e;
	}
	return n;
}
