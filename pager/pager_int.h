/* SPDX-License-Identifier: MIT */
/*
 * The pager's internals, shared by its files; not for users (they have
 * pager.h).  Design in README.md.
 *
 *   pager.c     the public API: parameters, new/start/stop/free,
 *               page_in/page_out, stats; messages, sub-host health,
 *               naps and buffers for the other files
 *   datamap.c   chunks, homes and the data map; residency accounting
 *   uffd.c      userfaultfd: register, install, write-protect, wake
 *   evict.c     eviction: CLOCK, reservation under local-limit, the
 *               eviction thread, the write-protect move-out
 *   fault.c     the fault path: moving pages in, the fault threads
 *   pagein.c    page_in(): lists of ranges, batched, pipelined
 *   trim.c      discarding sub-host copies off the critical path
 *   ctl.c       the control socket (page-in requests off QEMU's loop)
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
 *
 * Errors: functions that can fail return -1 (or a negative count) with
 * errno set and a message in (err, errlen), as the public API does.
 * Names that leave a file start with vp_ (they are linked into QEMU).
 */
#ifndef VMEM_PAGER_INT_H
#define VMEM_PAGER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/memunits.h"
#include "pager.h"

#define PAGE		VMEM_PAGE_SIZE
#define NSTRIPES	4096
#define MAX_FAULT_THREADS 16
#define DEFAULT_CHUNK	VMEM_CHUNK_DEFAULT
#define DEFAULT_TIMEOUT_MS 2000
#define MAX_BACKOFF_MS	1000
#define LOG_EVERY_MS	5000

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

/* A queued discard of [off, off + len) of chunk c on @sh (trim.c). */
struct vp_trim {
	struct sub *sh;
	uint64_t c, off, len;
	uint32_t gen;		/* chunk_evgen[c] when it was moved in */
};

#define TRIM_QMAX	4096
#define TRIM_BATCH	64

/* One chunk's part of a fetch (fault.c, pagein.c). */
struct vp_piece {
	uint64_t c, s, e;	/* [s, e) inside chunk c: in */
	uint64_t hs, he, absent;	/* the holes' span and bytes */
	struct buf *b;
};

/* Pieces one fetch takes at most: 16 x 64K = 1 MiB in one round trip. */
#define VP_MAX_PIECES	16

struct vp_ctl;

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
	/* Move-outs of the chunk so far, under the chunk lock (trim.c). */
	uint32_t *chunk_evgen;
	/* atomic: discards of the chunk in flight (trim.c) */
	uint16_t *chunk_trimming;

	/* The trim queue (trim.c), under trim_mu. */
	pthread_mutex_t trim_mu;
	pthread_cond_t trim_cv;		/* wakes the trim thread */
	pthread_cond_t trim_done_cv;	/* a batch finished, or a discard */
	struct vp_trim *trim_q;		/* ring of TRIM_QMAX */
	size_t trim_head, trim_n;
	struct vp_trim trim_carry[TRIM_BATCH];	/* busy chunks, retried */
	size_t trim_ncarry, trim_busy;
	bool trim_hold, has_trimmer, trim_lingered, trim_idle;
	pthread_t trim_thr;

	struct vp_ctl *ctl;		/* the control socket, or NULL */
	/* atomic: fetches between their start and their discards' queueing */
	uint64_t moving_in;

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

/* ---- pager.c: services for the other files ---- */

/* A line on stderr, "vmempager: ...", unless the pager is quiet. */
void vp_logmsg(struct vmem_pager *pg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A request to @s failed (counted, logged at a bounded rate); it is up. */
void vp_sub_failed(struct vmem_pager *pg, struct sub *s, const char *msg);
void vp_sub_ok(struct vmem_pager *pg, struct sub *s);
/* Sleep @ms or until the pager stops; true when stopping. */
bool vp_nap(struct vmem_pager *pg, uint64_t ms);
/* A chunk-sized, page-aligned buffer from the pool; NULL when out of
 * memory. */
struct buf *vp_buf_get(struct vmem_pager *pg);
void vp_buf_put(struct vmem_pager *pg, struct buf *b);

/* ---- datamap.c: chunks, homes and the data map ---- */

static inline pthread_mutex_t *vp_chunk_lock(struct vmem_pager *pg,
					     uint64_t c)
{
	return &pg->stripes[c % NSTRIPES];
}

/* Take chunk @c's lock, giving up at @deadline (vmem_deadline_ns()): 0,
 * or -1 with errno and @err. */
int vp_lock_until(struct vmem_pager *pg, uint64_t c, uint64_t deadline,
		  char *err, size_t errlen);
/* The sub-host whose home range holds @off, or NULL. */
struct sub *vp_home_of(struct vmem_pager *pg, uint64_t off);
/* End of the run of RAM from @off that shares @off's home, <= @limit. */
uint64_t vp_home_run_end(struct vmem_pager *pg, uint64_t off,
			 uint64_t limit);
/* The next data run of the memory file in [off, end) in (*ds, *de). */
bool vp_next_data(struct vmem_pager *pg, uint64_t off, uint64_t end,
		  uint64_t *ds, uint64_t *de);
/* Data bytes of the memory file in [off, end). */
uint64_t vp_count_data(struct vmem_pager *pg, uint64_t off, uint64_t end);
/* Recount chunk @c (its lock held) and move the global counts along. */
void vp_recount(struct vmem_pager *pg, uint64_t c);
/* Count what is resident before the threads start. */
void vp_count_initial(struct vmem_pager *pg);

/* ---- uffd.c: userfaultfd ---- */

/* Open userfaultfd and register the whole mapping MISSING|WP. */
int vp_uffd_setup(struct vmem_pager *pg, char *err, size_t errlen);
/* Install [off, off + len) from @src, skipping present pages: bytes
 * installed, or -1 with errno. */
int64_t vp_uffd_install(struct vmem_pager *pg, const char *src,
			uint64_t off, uint64_t len);
/* Write-protect (or un-protect and wake) [off, off + len): 0 or -1. */
int vp_uffd_wp(struct vmem_pager *pg, uint64_t off, uint64_t len,
	       bool protect);
/* Wake the threads waiting on a fault in [off, off + len). */
void vp_uffd_wake(struct vmem_pager *pg, uint64_t off, uint64_t len);

/* ---- evict.c: eviction ---- */

/* Move the resident pages of [s, e) (one home, one chunk, its lock held)
 * to sub-host @sh: bytes moved, or -1 with errno and @err. */
int64_t vp_evict_range(struct vmem_pager *pg, struct sub *sh,
		       uint64_t s, uint64_t e, uint64_t timeout_ms,
		       char *err, size_t errlen);
/* Reserve @need bytes under local-limit, evicting chunks other than
 * @own; unreserve them once they are counted as resident. */
void vp_reserve(struct vmem_pager *pg, uint64_t need, uint64_t own);
void vp_unreserve(struct vmem_pager *pg, uint64_t need);
/* The eviction thread (pthread start routine; @arg is the pager). */
void *vp_evict_thread(void *arg);

/* ---- fault.c: the fault path ---- */

/* How long vp_fetch_range() retries a failing sub-host. */
enum vp_retry { RETRY_FOREVER, RETRY_DEADLINE };

/* Make the @n (<= VP_MAX_PIECES) pieces resident, all homed on @sh (or
 * all without a home: @sh NULL), every piece's chunk lock held: their
 * reads pipelined in one go.  0, or -1 with errno and @err. */
int vp_fetch_pieces(struct vmem_pager *pg, struct vp_piece *pc, size_t n,
		    struct sub *sh, enum vp_retry mode, uint64_t deadline,
		    char *err, size_t errlen);

/* Make [s, e) (one home or none, inside chunk @c, its lock held)
 * resident: 0, or -1 with errno and @err. */
int vp_fetch_range(struct vmem_pager *pg, uint64_t c, uint64_t s,
		   uint64_t e, enum vp_retry mode, uint64_t deadline,
		   char *err, size_t errlen);
/* A fault thread (pthread start routine; @arg is the pager). */
void *vp_fault_thread(void *arg);

/* ---- trim.c: discards off the critical path ---- */

/* Queue the discard of [s, e) of chunk @c (its lock held, the pages just
 * installed) on @sh; discards at once when the queue is full or no trim
 * thread runs. */
void vp_trim_queue(struct vmem_pager *pg, struct sub *sh, uint64_t c,
		   uint64_t s, uint64_t e);
/* Chunk @c (its lock held) is being moved out: drop its queued discards
 * and wait for those in flight. */
void vp_trim_moved_out(struct vmem_pager *pg, uint64_t c);
/* The trim thread (pthread start routine; @arg is the pager). */
void *vp_trim_thread(void *arg);

/* ---- ctl.c: the control socket ---- */

/* Bind and listen on @path (mode 0600); NULL with @err on failure. */
struct vp_ctl *vp_ctl_new(struct vmem_pager *pg, const char *path,
			  char *err, size_t errlen);
int vp_ctl_start(struct vp_ctl *c);
void vp_ctl_stop(struct vp_ctl *c);
void vp_ctl_free(struct vp_ctl *c);
const char *vp_ctl_path(const struct vp_ctl *c);

#endif
