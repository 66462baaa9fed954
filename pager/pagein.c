// SPDX-License-Identifier: MIT
/*
 * page_in(): making ranges resident on request (QMP vmem-page-in, the
 * control socket, tests).
 *
 * What this promises, beyond pager.h:
 *   - One call may carry a list of ranges (all chunks of one vmemfs read
 *     in one command, one reply).  Ranges may overlap and come in any
 *     order; the chunks they touch are each fetched once.
 *   - The chunks are taken in batches of up to VP_MAX_PIECES chunks
 *     (and about BATCH_BYTES) that share one home: a batch holds all its chunk locks and sends all its
 *     reads pipelined on one connection, so a 1 MiB read of 64K chunks is
 *     one round trip, not sixteen.  Large requests are spread over up to
 *     PAGE_IN_WORKERS threads, each with its own connection; a long one
 *     (over LONG_BYTES) runs on niced helpers only, so that it
 *     does not take the CPU from the VM's vCPUs.
 *   - Lock order: a batch blocks (with the deadline) only on its first
 *     chunk's lock and only try-locks the others; a busy chunk ends the
 *     batch and starts the next one.  So a batch never waits while it
 *     holds a lock, as the rule in pager_int.h asks.
 *   - What is installed is exactly what a fault would install (the same
 *     vp_fetch_pieces()); this file changes only how requests are grouped.
 */
#include "pager_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../common/timeutil.h"

#define PAGE_IN_WORKERS 4
/*
 * A batch stops growing at this many bytes: enough for one round trip
 * to carry a 1 MiB read of small chunks, small enough that the workers'
 * reads and installs still overlap when chunks are large.
 */
#define BATCH_BYTES (1ULL << 20)

/* One chunk's share of the request: [s, e) inside chunk c. */
struct item {
	uint64_t c, s, e;
};

struct page_in_job {
	struct vmem_pager *pg;
	struct item *it;
	size_t n;
	size_t next;			/* atomic: next slice to take */
	bool failed;			/* atomic */
	bool background;		/* helpers run niced */
	pthread_t caller;
	pthread_mutex_t mu;		/* first error */
	int err_no;
	char err[256];
};

static int cmp_item(const void *a, const void *b)
{
	const struct item *x = a, *y = b;

	if (x->c != y->c)
		return x->c < y->c ? -1 : 1;
	return x->s < y->s ? -1 : x->s > y->s;
}

/* Is @it one home run with a sub-host, so that it can join a batch? */
static struct sub *batchable(struct vmem_pager *pg, const struct item *it)
{
	if (vp_home_run_end(pg, it->s, it->e) != it->e)
		return NULL;
	return vp_home_of(pg, it->s);
}

static void job_fail(struct page_in_job *j, const char *err, int e)
{
	pthread_mutex_lock(&j->mu);
	if (!j->failed) {
		snprintf(j->err, sizeof(j->err), "%s", err);
		j->err_no = e ? e : EIO;
	}
	STORE(j->failed, true);
	pthread_mutex_unlock(&j->mu);
}

/* An item that cannot be batched (no home, or two homes in the chunk):
 * home run by home run, as a fault does. */
static int one_item(struct vmem_pager *pg, const struct item *it,
		    uint64_t deadline, char *err, size_t errlen)
{
	uint64_t pos = it->s;
	int rc = 0;

	while (rc == 0 && pos < it->e) {
		uint64_t re = vp_home_run_end(pg, pos, it->e);

		rc = vp_fetch_range(pg, it->c, pos, re, RETRY_DEADLINE,
				    deadline, err, errlen);
		pos = re;
	}
	return rc;
}

/*
 * Items [i, end) of the job: lock a batch, fetch it, unlock, go on.
 * Returns 0 or -1 with errno and @err.
 */
static int run_slice(struct page_in_job *j, size_t i, size_t end,
		     char *err, size_t errlen)
{
	struct vmem_pager *pg = j->pg;
	struct vp_piece pc[VP_MAX_PIECES];
	uint32_t stripes[VP_MAX_PIECES];

	while (i < end && !LOAD(j->failed)) {
		uint64_t deadline = vmem_deadline_ns(pg->timeout_ms);
		uint64_t bytes;
		struct sub *sh;
		size_t n = 0;
		int rc;

		if (vp_lock_until(pg, j->it[i].c, deadline, err, errlen))
			return -1;
		sh = batchable(pg, &j->it[i]);
		if (!sh) {
			rc = one_item(pg, &j->it[i], deadline, err, errlen);
			STORE(pg->chunk_ref[j->it[i].c], 1);
			pthread_mutex_unlock(vp_chunk_lock(pg, j->it[i].c));
			if (rc)
				return -1;
			i++;
			continue;
		}
		pc[0] = (struct vp_piece){ .c = j->it[i].c, .s = j->it[i].s,
					   .e = j->it[i].e };
		stripes[0] = (uint32_t)(j->it[i].c % NSTRIPES);
		n = 1;
		bytes = j->it[i].e - j->it[i].s;
		/* Grow the batch with chunks we can lock without waiting. */
		while (i + n < end && n < VP_MAX_PIECES &&
		       bytes < BATCH_BYTES) {
			const struct item *x = &j->it[i + n];
			uint32_t st = (uint32_t)(x->c % NSTRIPES);
			bool clash = false;

			for (size_t k = 0; k < n && !clash; k++)
				clash = stripes[k] == st;
			if (clash || batchable(pg, x) != sh ||
			    pthread_mutex_trylock(&pg->stripes[st]))
				break;
			pc[n] = (struct vp_piece){ .c = x->c, .s = x->s,
						   .e = x->e };
			stripes[n] = st;
			bytes += x->e - x->s;
			n++;
		}
		rc = vp_fetch_pieces(pg, pc, n, sh, RETRY_DEADLINE, deadline,
				     err, errlen);
		for (size_t k = 0; k < n; k++) {
			/* Asked for: referenced, fetched or not (CLOCK). */
			STORE(pg->chunk_ref[pc[k].c], 1);
			pthread_mutex_unlock(&pg->stripes[stripes[k]]);
		}
		if (rc)
			return -1;
		i += n;
	}
	return 0;
}

/*
 * How much a long page-in's helpers yield to the vCPUs (nice).  At 10 a
 * guest's counter loop still kept only 0.66-0.74x of its rate during a
 * 256 MiB page-in on two CPUs; at 19, 0.91-0.94x (bench_qemu (c)).
 */
#define BACKGROUND_NICE 19
/* A page-in of more than this many bytes is long (background). */
#define LONG_BYTES (16ULL << 20)

/* Slices of this many items are what a worker takes at a time. */
#define SLICE (4 * VP_MAX_PIECES)

static void *page_in_worker(void *arg)
{
	struct page_in_job *j = arg;
	char err[256];

	/*
	 * A long page-in is background work: it must not take the CPU from
	 * the vCPUs of the VM it pages for.  The caller's own thread (QEMU's
	 * main loop, a control-socket thread) is left alone.
	 */
	if (j->background && !pthread_equal(pthread_self(), j->caller))
		/* If not allowed, it runs as it is: still correct. */
		(void)setpriority(PRIO_PROCESS, (id_t)gettid(),
				  BACKGROUND_NICE);

	while (!LOAD(j->failed)) {
		size_t i = ADD(j->next, SLICE);
		size_t end = i + SLICE < j->n ? i + SLICE : j->n;

		if (i >= j->n)
			break;
		if (run_slice(j, i, end, err, sizeof(err)))
			job_fail(j, err, errno);
	}
	return NULL;
}

/*
 * The chunks of the ranges, sorted, each once with the hull of what the
 * ranges ask of it.  Returns the count (0 with errno on failure) and the
 * bytes in *bytes.
 */
static size_t chunk_items(struct vmem_pager *pg,
			  const struct vmem_pager_range *r, size_t nr,
			  struct item **out, uint64_t *bytes, char *err,
			  size_t errlen)
{
	size_t n = 0, cap = 0, k, w;
	struct item *it = NULL;

	for (size_t i = 0; i < nr; i++) {
		uint64_t off = r[i].offset, len = r[i].length, s, e;

		if (len == 0 || off >= pg->size || len > pg->size - off) {
			snprintf(err, errlen, "range %zu: %#" PRIx64 "+%#"
				 PRIx64 " is not inside RAM (%#" PRIx64 ")",
				 i, off, len, pg->size);
			errno = EINVAL;
			goto fail;
		}
		s = off & ~(PAGE - 1);
		e = (off + len + PAGE - 1) & ~(PAGE - 1);
		cap += ((e - 1) >> pg->cshift) - (s >> pg->cshift) + 1;
	}
	it = calloc(cap ? cap : 1, sizeof(*it));
	if (!it) {
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < nr; i++) {
		uint64_t s = r[i].offset & ~(PAGE - 1);
		uint64_t e = (r[i].offset + r[i].length + PAGE - 1) &
			     ~(PAGE - 1);

		while (s < e) {
			uint64_t c = s >> pg->cshift;
			uint64_t ce = (c + 1) << pg->cshift;
			uint64_t x = ce < e ? ce : e;

			it[n++] = (struct item){ .c = c, .s = s, .e = x };
			s = x;
		}
	}
	qsort(it, n, sizeof(*it), cmp_item);
	*bytes = 0;
	w = 0;
	for (size_t i = 0; i < n; i = k) {
		struct item m = it[i];

		for (k = i + 1; k < n && it[k].c == m.c; k++) {
			if (it[k].s < m.s)
				m.s = it[k].s;
			if (it[k].e > m.e)
				m.e = it[k].e;
		}
		*bytes += m.e - m.s;
		it[w++] = m;
	}
	n = w;
	*out = it;
	return n;
fail:
	free(it);
	return 0;
}

int vmem_pager_page_in_ranges(struct vmem_pager *pg,
			      const struct vmem_pager_range *r, size_t nr,
			      char *err, size_t errlen)
{
	struct page_in_job j = { .pg = pg };
	pthread_t helpers[PAGE_IN_WORKERS];
	unsigned int n_helpers = 0;
	uint64_t bytes = 0;
	int rc = 0;

	if (nr == 0 || nr > VMEM_PAGER_MAX_RANGES) {
		snprintf(err, errlen, "%zu ranges: give 1 to %d", nr,
			 VMEM_PAGER_MAX_RANGES);
		errno = EINVAL;
		return -1;
	}
	j.n = chunk_items(pg, r, nr, &j.it, &bytes, err, errlen);
	if (j.n == 0)
		return -1;
	if (pg->limit && bytes + (pg->n_threads + PAGE_IN_WORKERS) * pg->cs >
	    pg->limit) {
		snprintf(err, errlen, "cannot hold %" PRIu64 " bytes resident "
			 "under local-limit %" PRIu64, bytes, pg->limit);
		free(j.it);
		errno = EFBIG;
		return -1;
	}
	for (size_t i = 0; i < j.n; i++)
		ADD(pg->chunk_pin[j.it[i].c], 1);

	pthread_mutex_init(&j.mu, NULL);
	/*
	 * A long page-in runs on PAGE_IN_WORKERS niced helpers while the
	 * caller only waits; a short one on the caller (and helpers), at
	 * its priority, because someone waits for it.
	 */
	j.caller = pthread_self();
	j.background = bytes > LONG_BYTES;
	while (n_helpers < PAGE_IN_WORKERS - (j.background ? 0 : 1) &&
	       (n_helpers + 1) * SLICE < j.n + (j.background ? SLICE : 0) &&
	       pthread_create(&helpers[n_helpers], NULL, page_in_worker,
			      &j) == 0)
		n_helpers++;
	if (!j.background || n_helpers == 0)
		page_in_worker(&j);
	for (unsigned int i = 0; i < n_helpers; i++)
		pthread_join(helpers[i], NULL);
	pthread_mutex_destroy(&j.mu);

	if (j.failed) {
		snprintf(err, errlen, "%s", j.err);
		errno = j.err_no;
		rc = -1;
	} else {
		for (size_t i = 0; i < j.n; i++) {
			if (vp_count_data(pg, j.it[i].s, j.it[i].e) !=
			    j.it[i].e - j.it[i].s) {
				/* Someone punched it behind our back (not
				 * the pager). */
				snprintf(err, errlen, "range was punched "
					 "while paging in");
				errno = EAGAIN;
				rc = -1;
				break;
			}
		}
	}
	for (size_t i = 0; i < j.n; i++)
		__atomic_fetch_sub(&pg->chunk_pin[j.it[i].c], 1,
				   __ATOMIC_RELAXED);
	free(j.it);
	return rc;
}

int vmem_pager_page_in(struct vmem_pager *pg, uint64_t offset,
		       uint64_t length, char *err, size_t errlen)
{
	struct vmem_pager_range r = { offset, length };

	return vmem_pager_page_in_ranges(pg, &r, 1, err, errlen);
}
